package install

import (
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	sdk "code.gitea.io/sdk/gitea"

	"github.com/albatros-ci/albatros/testenv"
)

var nonceRE = regexp.MustCompile(`name="nonce" value="([A-Za-z0-9]+)"`)

// runPage reads the history page as c's user: whether it shows the Run button, and its
// request id.
func runPage(t *testing.T, c *client, path string) (nonce, body string) {
	t.Helper()
	resp, body := c.get(path)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: %d", path, resp.StatusCode)
	}
	if m := nonceRE.FindStringSubmatch(body); m != nil {
		return m[1], body
	}
	return "", body
}

// runAs posts the Run form as c's user and returns the answer, not followed.
func runAs(t *testing.T, c *client, path string, form url.Values) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, c.bot.URL+path+"/run", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := noRedirects(c).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// The Run button: a trusted user's run gets the secrets, a writer's runs without them, a
// stranger sees no button and their forged POST gets 403, as an anonymous one does; a
// declared parameter reaches the build's meta, an undeclared one is refused with a clear
// error (nothing dispatched), as is a commit that is not the branch's, and a parameter
// the builder does not declare is refused when the settings are saved.
func TestRunButton(t *testing.T) {
	p, owner := installed(t)
	repo := p.g.CreateRepo(t, p.owner, p.org, "app")
	writer, stranger := p.g.CreateUser(t, testenv.UniqueName("writer")), p.g.CreateUser(t, testenv.UniqueName("stranger"))
	p.g.AddCollaborator(t, p.owner, repo, writer.Name)
	// A build succeeds only with the secret, and says which target it ran for.
	head := p.g.Push(t, p.owner, repo, "main", "", script(`echo "target=$NOMAD_META_TARGET"; [ -n "$DEPLOY_TOKEN" ] || { echo "no secret"; exit 7; }`+"\n"), "app")
	p.g.WaitStatus(t, repo, head, "albatros/default", sdk.StatusFailure, 90*time.Second) // its pusher is not trusted yet
	other := p.g.Push(t, p.owner, repo, "other", "main", script("echo other\n"), "not on main")

	settings := "/orgs/" + p.org + "/repos/app/settings"
	if resp, body := owner.post(settings, url.Values{"users": {p.owner.Name}, "params": {"TARGET choice staging,production"}}); resp.StatusCode != 200 || !strings.Contains(body, "Settings saved") {
		t.Fatalf("settings: %d\n%s", resp.StatusCode, body)
	}
	if resp, body := owner.post(settings, url.Values{"users": {p.owner.Name}, "params": {"TARGET choice staging,production\nREGION string eu"}}); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "does not declare REGION") {
		t.Errorf("a parameter the builder does not declare: %d, want 400 saying so\n%s", resp.StatusCode, body)
	}
	if resp, _ := owner.post("/orgs/"+p.org+"/repos/app/secrets", url.Values{"name": {"DEPLOY_TOKEN"}, "value": {"run-s3cr3t"}}); resp.StatusCode != 200 {
		t.Fatalf("secret: %d", resp.StatusCode)
	}
	history := "/builds/" + p.org + "/app"

	// The owner, trusted: with the secret, and the parameter in the build's meta.
	nonce, body := runPage(t, owner, history)
	if nonce == "" || !strings.Contains(body, "the build gets the repository's secrets") || !strings.Contains(body, `name="param.TARGET"`) || !strings.Contains(body, `value="`+head+`"`) {
		t.Fatalf("the owner's history page has no Run form of a trusted user, with the head it shows:\n%s", body)
	}
	// With the secrets, a run names its commit: the head may have moved since the page.
	if resp, body := runAs(t, owner, history, url.Values{"nonce": {nonce}, "branch": {"main"}}); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "names its commit") {
		t.Errorf("a trusted run without its commit: %d, want 400\n%s", resp.StatusCode, body)
	}
	resp, _ := runAs(t, owner, history, url.Values{"nonce": {nonce}, "branch": {"main"}, "commit": {head}, "flavor": {"default"}, "param.TARGET": {"production"}})
	trustedLog := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(trustedLog, "/logs/") {
		t.Fatalf("the owner's run: %d to %q", resp.StatusCode, trustedLog)
	}
	// The same form sent twice is one run.
	if again, _ := runAs(t, owner, history, url.Values{"nonce": {nonce}, "branch": {"main"}, "commit": {head}, "flavor": {"default"}, "param.TARGET": {"production"}}); again.Header.Get("Location") != trustedLog {
		t.Errorf("the same form twice: %q, then %q", trustedLog, again.Header.Get("Location"))
	}
	// Its status, before the writer's run takes the context (a newer build's status is
	// the one a context shows).
	if got := runFinal(t, p, repo, head, trustedLog); got != sdk.StatusSuccess {
		t.Errorf("the trusted run: %s, want success (with the secret)", got)
	}
	_, job := jobFromLink(t, trustedLog)
	if meta := jobs(t, repo)[job]; meta["TARGET"] != "production" || meta["COMMIT"] != head || meta["BRANCH"] != "main" {
		t.Errorf("the run's meta: %v", meta)
	}

	// A writer: the button, without the secrets.
	wc := newClient(t, owner.bot)
	wc.signIn(writer)
	nonce, body = runPage(t, wc, history)
	if nonce == "" || !strings.Contains(body, "runs without the repository's secrets") {
		t.Fatalf("the writer's history page has no Run form without secrets:\n%s", body)
	}
	resp, body = runAs(t, wc, history, url.Values{"nonce": {nonce}, "branch": {"main"}, "param.EVIL": {"1"}})
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "EVIL") || !strings.Contains(body, "not a parameter the repository") {
		t.Errorf("an undeclared parameter: %d, want 400 naming it\n%s", resp.StatusCode, body)
	}
	resp, body = runAs(t, wc, history, url.Values{"nonce": {nonce}, "branch": {"main"}, "commit": {other}})
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "not one of the last") {
		t.Errorf("a commit of another branch: %d, want 400\n%s", resp.StatusCode, body)
	}
	resp, _ = runAs(t, wc, history, url.Values{"nonce": {nonce}, "branch": {"main"}, "commit": {head}, "param.TARGET": {"staging"}})
	writerLog := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(writerLog, "/logs/") || writerLog == trustedLog {
		t.Fatalf("the writer's run: %d to %q", resp.StatusCode, writerLog)
	}

	// A stranger and an anonymous visitor: no button, and their POSTs refused.
	sc := newClient(t, owner.bot)
	sc.signIn(stranger)
	if nonce, _ := runPage(t, sc, history); nonce != "" {
		t.Error("a stranger sees the Run button")
	}
	for who, c := range map[string]*client{"a stranger": sc, "an anonymous visitor": newClient(t, owner.bot)} {
		if resp, _ := runAs(t, c, history, url.Values{"nonce": {"AAAAAAAAAAAAAAAAAAAAAAAAAA"}, "branch": {"main"}}); resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s's run: %d, want 403", who, resp.StatusCode)
		}
	}

	// Both runs end on the commit, on their own context: the trusted one green (it had the
	// secret), the writer's red (it had not).
	if got := runFinal(t, p, repo, head, writerLog); got != sdk.StatusFailure {
		t.Errorf("the writer's run: %s, want failure (no secret)", got)
	}
	n := 0
	for _, meta := range jobs(t, repo) {
		if meta["COMMIT"] == head {
			n++
		}
	}
	if n != 3 { // the push's and the two runs': the refused ones made none
		t.Errorf("%d builds of the head in Nomad, want 3", n)
	}
}

// runFinal waits for the final status of the run whose log is at logPath, on the commit's
// albatros/default/run context.
func runFinal(t *testing.T, p *project, repo *testenv.Repo, sha, logPath string) sdk.StatusState {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		for _, s := range p.g.Statuses(t, repo, sha) {
			if s.Context == "albatros/default/run" && s.State != sdk.StatusPending && strings.HasSuffix(s.TargetURL, logPath) {
				return s.State
			}
		}
		time.Sleep(time.Second)
	}
	t.Fatalf("no final status of the run %s", logPath)
	return ""
}
