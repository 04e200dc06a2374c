package install

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	sdk "code.gitea.io/sdk/gitea"
	nomad "github.com/hashicorp/nomad/api"
)

// The admin pages keep a build once Nomad has collected it, from the archive; a private
// repository's history is its readers': an anonymous visitor is sent to sign in, its owner
// reads it.
func TestAdminPagesKeepCollectedBuilds(t *testing.T) {
	p, c := installed(t)
	repo := p.g.CreatePrivateRepo(t, p.owner, p.org, "app")
	sha := p.g.Push(t, p.owner, repo, "main", "", script("echo archived-build\n"), "a build")
	// The shipped builder clones without credentials: a private repository's build fails
	// at its clone, and is archived like any other.
	link := p.waitStatus(repo, sha, sdk.StatusFailure).TargetURL
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	logPath := u.Path
	_, rest, _ := strings.Cut(logPath, "/logs/")
	ns, job, _ := strings.Cut(rest, "/")

	nc := env.Nomad(t).Client(t)
	deadline := time.Now().Add(90 * time.Second)
	for {
		if err := nc.System().GarbageCollect(); err != nil {
			t.Fatal(err)
		}
		if _, _, err := nc.Jobs().Info(job, &nomad.QueryOptions{Namespace: ns}); err != nil {
			break // collected
		}
		if time.Now().After(deadline) {
			t.Fatalf("Nomad still holds %s", job)
		}
		time.Sleep(time.Second)
	}
	for _, page := range []string{"/orgs/" + p.org + "/repos/app", "/orgs/" + p.org} {
		resp, body := c.get(page)
		if resp.StatusCode != 200 || !strings.Contains(body, sha[:10]) || !strings.Contains(body, "/logs/"+ns+"/"+job) {
			t.Errorf("%s once Nomad collected the build: %d, the build missing", page, resp.StatusCode)
		}
	}
	resp, body := c.get("/builds/" + p.org + "/app")
	if resp.StatusCode != 200 || !strings.Contains(body, sha[:10]) {
		t.Errorf("the private repository's history to its owner: %d", resp.StatusCode)
	}
	if resp, body := c.get(logPath); resp.StatusCode != 200 || !strings.Contains(body, sha) || !strings.Contains(body, "failure") {
		t.Errorf("the collected build's log to its owner: %d", resp.StatusCode)
	}
	anonymous := noRedirects(newClient(t, c.bot))
	for _, path := range []string{"/builds/" + p.org + "/app", logPath} {
		r, err := anonymous.Get(c.bot.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != http.StatusSeeOther || !strings.HasPrefix(r.Header.Get("Location"), "/login") {
			t.Errorf("%s to an anonymous visitor: %d %s, want a redirect to sign in", path, r.StatusCode, r.Header.Get("Location"))
		}
	}
	if r, _ := anonymous.Get(c.bot.URL + "/badge/" + p.org + "/app.svg"); r.StatusCode != 404 {
		t.Errorf("a private repository's badge: %d, want 404", r.StatusCode)
	}
}
