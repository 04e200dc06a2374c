package pipeline

import (
	"errors"
	"net/http"

	"github.com/albatros-ci/albatros/forge"
	"github.com/albatros-ci/albatros/forge/gitea"
	"github.com/albatros-ci/albatros/registry"
)

// GiteaForges finds the Gitea server and token for a repository: its registry entry's
// gitea.url and gitea.token (the original Albatros's fields), else the bot's defaults.
type GiteaForges struct {
	DefaultURL   string
	DefaultToken string
	HTTP         *http.Client
}

// For implements ForgeFor.
func (g GiteaForges) For(entry *registry.Repo, cloneURL string) (forge.Forge, forge.Repo, error) {
	base, token := entry.Gitea.URL, entry.Gitea.Token
	if base == "" {
		base = g.DefaultURL
	}
	if token == "" {
		token = g.DefaultToken
	}
	if base == "" || token == "" {
		return nil, forge.Repo{}, errors.New("no gitea url and token: set them in the repository's entry (gitea.url, gitea.token) or give the bot defaults (ALBATROS_GITEA_URL, ALBATROS_GITEA_TOKEN)")
	}
	repo, err := gitea.RepoFromCloneURL(base, cloneURL)
	if err != nil {
		return nil, forge.Repo{}, err
	}
	return gitea.New(base, token, g.HTTP), repo, nil
}
