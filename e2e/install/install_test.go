package install

import (
	"net/http"
	"strings"
	"testing"
	"time"

	sdk "code.gitea.io/sdk/gitea"
)

// Installed through the bot's pages, an organization builds every repository, also one
// created afterwards, with nobody touching Consul or Gitea's hook settings.
func TestInstallBuildsEveryRepository(t *testing.T) {
	p, c := installed(t)
	hooks := p.hooks()
	if len(hooks) != 1 || hooks[0].Config["url"] != public(t)+"/webhook/gitea" || hooks[0].Config["content_type"] != "json" || !hooks[0].Active {
		t.Fatalf("hooks after install: %+v", hooks)
	}
	if !p.botIsOwner() {
		t.Fatal("the bot account is not an owner after install")
	}
	rec := p.record()
	if rec == nil || !strings.Contains(string(rec), `"secret":"sealed:v1:`) || !strings.Contains(string(rec), p.owner.Name) {
		t.Fatalf("installation record: %s", rec)
	}

	repo := p.g.CreateRepo(t, p.owner, p.org, "made-after")
	sha := p.g.Push(t, p.owner, repo, "main", "", script("echo built by albatros\n"), "first")
	st := p.waitStatus(repo, sha, sdk.StatusSuccess)
	if !strings.HasPrefix(st.TargetURL, public(t)+"/logs/") {
		t.Fatalf("status links to %q", st.TargetURL)
	}
	// The status is the bot's own, not the installer's.
	if st.Creator == nil || st.Creator.UserName != account.Name {
		t.Errorf("status written by %+v, want the bot account %s", st.Creator, account.Name)
	}
	// The organization's page lists the repository and its build.
	resp, page := c.get("/orgs/" + p.org)
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "made-after") || !strings.Contains(page, sha[:10]) || !strings.Contains(page, "success") {
		t.Fatalf("organization page %d:\n%s", resp.StatusCode, page)
	}
}

// Uninstalling removes the webhook, the bot's ownership and the record; a push then builds
// nothing.
func TestUninstall(t *testing.T) {
	p, c := installed(t)
	repo := p.g.CreateRepo(t, p.owner, p.org, "app")
	resp, page := c.post("/orgs/"+p.org+"/uninstall", nil)
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/orgs" || !strings.Contains(page, "uninstalled") {
		t.Fatalf("uninstall ended at %s with %d:\n%s", resp.Request.URL, resp.StatusCode, page)
	}
	if hooks := p.hooks(); len(hooks) != 0 {
		t.Errorf("hooks after uninstall: %+v", hooks)
	}
	if p.botIsOwner() {
		t.Error("the bot is still an owner after uninstall")
	}
	if rec := p.record(); rec != nil {
		t.Errorf("record after uninstall: %s", rec)
	}
	sha := p.g.Push(t, p.owner, repo, "main", "", script("echo hi\n"), "after uninstall")
	time.Sleep(5 * time.Second) // a webhook would have arrived and built by now
	if got := p.g.Statuses(t, repo, sha); len(got) != 0 {
		t.Errorf("statuses after uninstall: %+v", got)
	}
	if j := jobs(t, repo); len(j) != 0 {
		t.Errorf("builds after uninstall: %v", j)
	}
	// And it installs again.
	c.install(p.org)
	sha2 := p.g.Push(t, p.owner, repo, "main", "", script("echo again\n"), "after reinstall")
	p.waitStatus(repo, sha2, sdk.StatusSuccess)
}
