package pipeline_test

import (
	"strings"
	"testing"

	"github.com/albatros-ci/albatros/forge/gitea"
	"github.com/albatros-ci/albatros/forge/github"
	"github.com/albatros-ci/albatros/pipeline"
	"github.com/albatros-ci/albatros/registry"
)

func TestForgesChoosesTheForge(t *testing.T) {
	const (
		giteaClone  = "https://git.example.com/org/app.git"
		githubClone = "https://github.com/org/app.git"
		gheClone    = "https://ghe.example.com/org/app.git"
	)
	withGitea := func(url, token string) *registry.Repo {
		r := &registry.Repo{}
		r.Gitea = registry.Access{URL: url, Token: token}
		return r
	}
	withGitHub := func(url, token string) *registry.Repo {
		return &registry.Repo{GitHub: &registry.Access{URL: url, Token: token}}
	}
	botDefaults := pipeline.Forges{GiteaURL: "https://git.example.com", GiteaToken: "gitea-tok", GitHubToken: "gh-tok"}
	cases := []struct {
		name   string
		forges pipeline.Forges
		entry  *registry.Repo
		clone  string
		want   string // "gitea", "github", or an error substring
	}{
		{"original entry with gitea fields", pipeline.Forges{}, withGitea("https://git.example.com", "t"), giteaClone, "gitea"},
		{"entry without gitea fields uses the bot's", botDefaults, &registry.Repo{}, giteaClone, "gitea"},
		{"nothing for gitea at all", pipeline.Forges{}, &registry.Repo{}, giteaClone, "no gitea url and token"},
		{"clone URL not on the gitea server", botDefaults, &registry.Repo{}, "https://elsewhere.example.com/org/app.git", "is not on the gitea server"},
		{"entry on github with its token", pipeline.Forges{}, withGitHub("", "entry-tok"), githubClone, "github"},
		{"entry on github with the bot's token", botDefaults, withGitHub("", ""), githubClone, "github"},
		{"entry on github enterprise", pipeline.Forges{}, withGitHub("https://ghe.example.com/api/v3/", "t"), gheClone, "github"},
		{"entry on github without any token", pipeline.Forges{}, withGitHub("", ""), githubClone, "no github token"},
		{"github.com clone with the bot's github token", botDefaults, &registry.Repo{}, githubClone, "github"},
		{"github.com clone without a github token", pipeline.Forges{GiteaURL: "https://github.com", GiteaToken: "x"}, &registry.Repo{}, githubClone, "gitea"},
		{"explicit gitea fields win over the host", botDefaults, withGitea("https://github.com", "t"), githubClone, "gitea"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, repo, err := c.forges.For(c.entry, c.clone)
			switch c.want {
			case "gitea", "github":
				if err != nil {
					t.Fatalf("error %v, want %s", err, c.want)
				}
				_, isGitea := f.(*gitea.Client)
				_, isGitHub := f.(*github.Client)
				if (c.want == "gitea") != isGitea || (c.want == "github") != isGitHub {
					t.Fatalf("got %T, want %s", f, c.want)
				}
				if repo.Owner != "org" || repo.Name != "app" || repo.CloneURL != c.clone {
					t.Fatalf("repository %+v", repo)
				}
			default:
				if err == nil || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("error %v, want one saying %q", err, c.want)
				}
			}
		})
	}
}
