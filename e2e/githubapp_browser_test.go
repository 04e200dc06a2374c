package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/albatros-ci/albatros/forge/github/githubtest"
	"github.com/albatros-ci/albatros/testenv"
)

// setupCode is the operator's code of the manifest flow.
const setupCode = "operator-setup-code-0123456789"

// TestGitHubAppInTheBrowser: an operator creates the bot's GitHub App through GitHub's
// manifest flow, in a real browser; an owner installs it (GitHub's installation event); a
// push of a private repository builds; its log is refused to a visitor and served once a
// reader signs in with GitHub; the account's owner signs in with GitHub and sets a secret
// on its settings page.
func TestGitHubAppInTheBrowser(t *testing.T) {
	bot(t)
	n, c := env.Nomad(t), env.Consul(t)
	gh, err := githubtest.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gh.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b, err := testenv.StartBot(ctx, botBin, append(append(n.Env(), c.Env()...),
		"ALBATROS_BUILDERS=none",
		"ALBATROS_RECONCILE_INTERVAL=0",
		"ALBATROS_CONSUL_PREFIX=albatros-ghm/",
		"ALBATROS_SECRET_KEY="+appKey,
		"ALBATROS_GITHUB_APP=manifest",
		"ALBATROS_GITHUB_SETUP_CODE="+setupCode,
		"ALBATROS_GITHUB_URL="+gh.API,
		"ALBATROS_GITHUB_WEB_URL="+gh.URL,
	))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Stop()
	b.LogOnFailure(t)
	code := setupCode

	br := testenv.Browser(t)
	do, text := testenv.Steps(t, br)

	// A wrong setup code creates nothing.
	do("the setup page", chromedp.Navigate(b.URL+"/github/setup"), chromedp.WaitVisible(chromedp.CSS("#setup")))
	testenv.Screenshot(t, br, "github-setup", "")
	do("a wrong code", chromedp.SetValue(chromedp.CSS("#code"), "not-the-code"), chromedp.Click(chromedp.CSS("#setup")), chromedp.WaitVisible(chromedp.CSS("#error")))
	// The operator's.
	do("the setup code", chromedp.SetValue(chromedp.CSS("#code"), code), chromedp.SetValue(chromedp.CSS("#name"), "Albatros e2e"),
		chromedp.Click(chromedp.CSS("#setup")), chromedp.WaitVisible(chromedp.CSS("#continue")))
	testenv.Screenshot(t, br, "github-manifest", "")
	do("continue on GitHub", chromedp.Click(chromedp.CSS("#continue")), chromedp.WaitVisible(chromedp.CSS("#create")))
	do("create the App", chromedp.Click(chromedp.CSS("#create")), chromedp.WaitVisible(chromedp.CSS("#app")))
	if strings.Contains(b.Log(), setupCode) {
		t.Fatal("the bot's log shows the setup code")
	}
	if got := text("#app"); !strings.Contains(got, "albatros-e2e") || !strings.Contains(got, "owned by octocat") {
		t.Fatalf("the setup page after creating: %q", got)
	}
	made := gh.Created()
	if made == nil || made.HookAttributes.URL != b.URL+"/webhook/github" || len(made.CallbackURLs) != 1 || made.CallbackURLs[0] != b.URL+"/login/github/callback" ||
		made.DefaultPermissions["statuses"] != "write" || made.DefaultPermissions["issues"] != "write" {
		t.Fatalf("the manifest GitHub got: %+v", made)
	}

	// An organization's owner installs the App on GitHub; GitHub tells the bot.
	git := newProject(t, nil, "")
	owner, reader := testenv.UniqueName("owner"), testenv.UniqueName("reader")
	gh.AddUser(owner)
	gh.AddUser(reader)
	gh.AddOrg(git.org, owner)
	gh.AddRepo(git.org, "app", true, git.repo.CloneURL)
	gh.SetPermission(git.org+"/app", reader, "read")
	inst := gh.Install(git.org)
	p := &ghProject{t: t, gh: gh, bot: b, git: git, org: git.org, owner: owner, full: git.org + "/app", inst: inst}
	if answer := p.deliver("installation", gh.InstallationPayload(inst, "created", owner), http.StatusOK); !strings.Contains(answer, "installed") {
		t.Fatalf("installation: %q", answer)
	}
	sha := p.push("main", owner, script(printEnv))
	list := p.waitState(sha, "albatros/default", "success")
	logURL := list[len(list)-1].TargetURL

	// The private repository's log: a visitor is sent to sign in with GitHub.
	if code, _ := getNoRedirect(t, logURL); code != http.StatusSeeOther {
		t.Fatalf("a visitor's GET of the private log: %d", code)
	}
	do("the private log", chromedp.Navigate(logURL), chromedp.WaitVisible(chromedp.CSS("#authorize")))
	do("sign in as a reader", chromedp.SetValue(chromedp.CSS("#login"), reader), chromedp.Click(chromedp.CSS("#authorize")),
		chromedp.WaitVisible(chromedp.CSS("body")))
	waitText(t, br, "body", "COMMIT="+sha)

	// The owner's settings page, after signing in with GitHub.
	testenv.Screenshot(t, br, "github-log", "")
	do("the history page", chromedp.Navigate(b.URL+"/github/builds/"+git.org+"/app"), chromedp.WaitVisible(chromedp.CSS("#history")))
	waitText(t, br, "#history", sha[:10])
	if got := text("#no-badge"); !strings.Contains(got, "private repository has no badge") {
		t.Fatalf("the private repository's history page: %q", got)
	}
	testenv.Screenshot(t, br, "github-history", "body")
	do("sign out", chromedp.Navigate(b.URL+"/"), chromedp.Click(chromedp.CSS("header form button")), chromedp.WaitVisible(chromedp.CSS("#install-github")))
	testenv.Screenshot(t, br, "github-home", "")
	do("the App's accounts", chromedp.Click(chromedp.CSS("#github-orgs")), chromedp.WaitVisible(chromedp.CSS("#authorize")))
	do("sign in as the owner", chromedp.SetValue(chromedp.CSS("#login"), owner), chromedp.Click(chromedp.CSS("#authorize")),
		chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf("#org-%s a", git.org))))
	testenv.Screenshot(t, br, "github-orgs", "")
	do("its settings", chromedp.Click(chromedp.CSS(fmt.Sprintf("#org-%s a", git.org))), chromedp.WaitVisible(chromedp.CSS("#settings-form")))
	do("set a secret", chromedp.SetValue(chromedp.CSS("#secret-name"), "DEPLOY_TOKEN"), chromedp.SetValue(chromedp.CSS("#secret-value"), "browser-set-secret"),
		chromedp.Submit(chromedp.CSS("#secret-value")), chromedp.WaitVisible(chromedp.CSS("#flash")))
	if got := text("#secrets"); !strings.Contains(got, "DEPLOY_TOKEN") || strings.Contains(got, "browser-set-secret") {
		t.Fatalf("the secrets table: %q", got)
	}
	testenv.Screenshot(t, br, "github-settings", "body")
}

// getNoRedirect fetches url without following redirects.
func getNoRedirect(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Location")
}

// waitText waits until the text of sel holds want.
func waitText(t *testing.T, ctx context.Context, sel, want string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err == nil && strings.Contains(s, want) {
			return
		}
		last = s
		time.Sleep(300 * time.Millisecond)
	}
	t.Fatalf("%s never showed %q: %q", sel, want, last)
}
