package pipeline

import (
	"errors"
	"net/http"
	"net/url"

	"github.com/albatros-ci/albatros/forge"
	"github.com/albatros-ci/albatros/forge/gitea"
	"github.com/albatros-ci/albatros/forge/github"
	"github.com/albatros-ci/albatros/registry"
)

// Forges finds the forge of a registered repository and the access to use there:
//
//   - an entry with a github field is on GitHub (its url, else the bot's GitHub API URL,
//     else github.com; its token, else the bot's GitHub token);
//   - a repository cloned from github.com, with no gitea field, is on GitHub too when the
//     bot has a GitHub token;
//   - any other is on Gitea: the entry's gitea.url and gitea.token (the original Albatros's
//     fields), else the bot's Gitea defaults.
type Forges struct {
	GiteaURL, GiteaToken   string
	GitHubURL, GitHubToken string
	HTTP                   *http.Client
}

// For implements ForgeFor.
func (f Forges) For(entry *registry.Repo, cloneURL string) (forge.Forge, forge.Repo, error) {
	if gh := f.github(entry, cloneURL); gh != nil {
		repo, err := github.RepoFromCloneURL(cloneURL)
		if err != nil {
			return nil, forge.Repo{}, err
		}
		if gh.Token == "" {
			return nil, forge.Repo{}, errors.New("no github token: set it in the repository's entry (github.token) or give the bot one (ALBATROS_GITHUB_TOKEN)")
		}
		c, err := github.New(gh.URL, gh.Token, f.HTTP)
		if err != nil {
			return nil, forge.Repo{}, err
		}
		return c, repo, nil
	}
	base, token := entry.Gitea.URL, entry.Gitea.Token
	if base == "" {
		base = f.GiteaURL
	}
	if token == "" {
		token = f.GiteaToken
	}
	if base == "" || token == "" {
		return nil, forge.Repo{}, errors.New("no gitea url and token: set them in the repository's entry (gitea.url, gitea.token) or give the bot defaults (ALBATROS_GITEA_URL, ALBATROS_GITEA_TOKEN)")
	}
	repo, err := gitea.RepoFromCloneURL(base, cloneURL)
	if err != nil {
		return nil, forge.Repo{}, err
	}
	return gitea.New(base, token, f.HTTP), repo, nil
}

// github returns the GitHub access for the repository, or nil when it is not on GitHub.
func (f Forges) github(entry *registry.Repo, cloneURL string) *registry.Access {
	acc := registry.Access{URL: f.GitHubURL, Token: f.GitHubToken}
	switch {
	case entry.GitHub != nil:
		if entry.GitHub.URL != "" {
			acc.URL = entry.GitHub.URL
		}
		if entry.GitHub.Token != "" {
			acc.Token = entry.GitHub.Token
		}
		return &acc
	case entry.Gitea.URL == "" && f.GitHubToken != "":
		if u, err := url.Parse(cloneURL); err == nil && u.Host == "github.com" {
			return &acc
		}
	}
	return nil
}
