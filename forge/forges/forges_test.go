package forges_test

import (
	"strings"
	"testing"

	"github.com/albatros-ci/albatros/forge/forges"
	"github.com/albatros-ci/albatros/forge/gitea"
	"github.com/albatros-ci/albatros/forge/github"
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
	botDefaults := forges.Config{Access: map[string]registry.Access{"gitea": {URL: "https://git.example.com", Token: "gitea-tok"}, "github": {URL: "", Token: "gh-tok"}}}
	cases := []struct {
		name   string
		forges forges.Config
		entry  *registry.Repo
		clone  string
		want   string // "gitea", "github", or an error substring
	}{
		{"original entry with gitea fields", forges.Config{}, withGitea("https://git.example.com", "t"), giteaClone, "gitea"},
		{"entry without gitea fields uses the bot's", botDefaults, &registry.Repo{}, giteaClone, "gitea"},
		{"nothing for gitea at all", forges.Config{}, &registry.Repo{}, giteaClone, "no gitea url and token"},
		{"clone URL not on the gitea server", botDefaults, &registry.Repo{}, "https://elsewhere.example.com/org/app.git", "is not on the gitea server"},
		{"entry on github with its token", forges.Config{}, withGitHub("", "entry-tok"), githubClone, "github"},
		{"entry on github with the bot's token", botDefaults, withGitHub("", ""), githubClone, "github"},
		{"entry on github enterprise", forges.Config{}, withGitHub("https://ghe.example.com/api/v3/", "t"), gheClone, "github"},
		{"entry on github without any token", forges.Config{}, withGitHub("", ""), githubClone, "no github token"},
		{"github.com clone with the bot's github token", botDefaults, &registry.Repo{}, githubClone, "github"},
		{"github.com clone without a github token", forges.Config{Access: map[string]registry.Access{"gitea": {URL: "https://github.com", Token: "x"}}}, &registry.Repo{}, githubClone, "gitea"},
		{"explicit gitea fields win over the host", botDefaults, withGitea("https://github.com", "t"), githubClone, "gitea"},
		// An entry that names Gitea (its token alone) is Gitea's, whatever its clone URL: a
		// github.com one is then refused, not sent to GitHub with the bot's token.
		{"a gitea token alone names gitea", botDefaults, withGitea("", "t"), githubClone, "is not on the gitea server"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, repo, err := forges.New(c.forges).For(c.entry, c.clone)
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

// A client is made once per server and token, and reused: one transport, pooled connections.
func TestForgesReusesClients(t *testing.T) {
	fs := forges.New(forges.Config{Access: map[string]registry.Access{"gitea": {URL: "https://git.example.com", Token: "bot"}, "github": {URL: "", Token: "gh"}}})
	e := &registry.Repo{}
	a, _, _ := fs.For(e, "https://git.example.com/org/app.git")
	b, _, _ := fs.For(e, "https://git.example.com/other/lib.git")
	if a == nil || a != b {
		t.Errorf("two repositories of one server and token got clients %p and %p, want one", a, b)
	}
	own := &registry.Repo{}
	own.Gitea = registry.Access{URL: "https://git.example.com", Token: "the-repo's"}
	c, _, _ := fs.For(own, "https://git.example.com/org/app.git")
	if c == a {
		t.Error("a repository with its own token got the bot's client")
	}
	g1, _, _ := fs.For(e, "https://github.com/org/app.git")
	g2, _, _ := fs.For(e, "https://github.com/org/lib.git")
	if g1 == nil || g1 != g2 {
		t.Errorf("github clients %p and %p, want one", g1, g2)
	}
}

// The table is complete: each row names its forge once, routes its own endpoint, and has
// everything For and the intake use.
func TestDriversTable(t *testing.T) {
	names, paths := map[string]bool{}, map[string]bool{}
	for _, d := range forges.Drivers {
		if d.Name == "" || names[d.Name] || paths[d.Path()] {
			t.Errorf("driver %q: empty or repeated name or path %s", d.Name, d.Path())
		}
		names[d.Name], paths[d.Path()] = true, true
		if d.Verify == nil || d.Parse == nil || d.Entry == nil || d.Repo == nil || d.New == nil || d.Missing == "" || d.MaxBody <= 0 || d.EventHeader == "" || d.DeliveryHeader == "" {
			t.Errorf("driver %s lacks a field: %+v", d.Name, d)
		}
		if got, ok := forges.ByName(d.Name); !ok || got.Name != d.Name {
			t.Errorf("ByName(%q) = %v, %v", d.Name, got.Name, ok)
		}
	}
	if _, ok := forges.ByName("gitlab"); ok {
		t.Error("ByName found a forge that has no row")
	}
	if last := forges.Drivers[len(forges.Drivers)-1]; last.Name != "gitea" {
		t.Errorf("the fallback is %s, want gitea (the original Albatros's)", last.Name)
	}
}
