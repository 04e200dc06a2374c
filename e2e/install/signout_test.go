package install

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	sdk "code.gitea.io/sdk/gitea"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/albatros-ci/albatros/testenv"
)

// A private log's reader signs in, in a real browser, from the build's status link: Gitea's
// authorize page asks the new user to grant the bot read:user and nothing else, and the
// reader lands back on the log. Signing out then ends that session for good: a copy of its
// cookie taken before, replayed afterwards, opens no session on this bot nor on another
// replica, which send it to sign in again.
func TestReaderSignInAndSignOutInTheBrowser(t *testing.T) {
	p, c := installed(t)
	private := p.g.CreatePrivateRepo(t, p.owner, p.org, "closed")
	// Trusted builds fetch a private repository with the organization's ALBATROS_GIT_TOKEN.
	c.post("/orgs/"+p.org+"/settings", url.Values{"users": {p.owner.Name}})
	if resp, _ := c.post("/orgs/"+p.org+"/secrets", url.Values{"name": {"ALBATROS_GIT_TOKEN"}, "value": {p.owner.Token}}); resp.StatusCode != http.StatusOK {
		t.Fatalf("set ALBATROS_GIT_TOKEN: %d", resp.StatusCode)
	}
	sha := p.g.Push(t, p.owner, private, "main", "", script("echo private build output\n"), "private")
	link := p.waitStatus(private, sha, sdk.StatusSuccess).TargetURL
	// A new user, who never granted the bot anything: Gitea shows its authorize page.
	reader := p.g.CreateUser(t, testenv.UniqueName("reader"))
	p.g.AddCollaborator(t, p.owner, private, reader.Name)

	ctx := browser(t)
	do, _ := testenv.Steps(t, ctx)
	do("the private log, signed out", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS("#user_name")))
	signIn(t, ctx, reader.Name, reader.Password)
	do("Gitea's authorize page", chromedp.WaitVisible(chromedp.CSS("#authorize-app")))
	scope, err := chromedp.Run(ctx, chromedp.Value(chromedp.CSS(`input[name="scope"]`)))
	if err != nil {
		t.Fatalf("the scope on Gitea's authorize page: %v", err)
	}
	if scope != "read:user" {
		t.Errorf("a log reader's sign-in asks Gitea for %q, want read:user only", scope)
	}
	shown, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(".oauth2-authorize-application-box")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(shown, "read:user") || strings.Contains(shown, "organization") {
		t.Errorf("Gitea's authorize page shows:\n%s", shown)
	}
	shot(t, ctx, "gitea-authorize-reader", false)
	do("authorize the bot", chromedp.Click(chromedp.CSS("#authorize-app")), chromedp.WaitVisible(chromedp.CSS("#result")))
	if loc, _ := chromedp.Run(ctx, chromedp.Location()); loc != link {
		t.Errorf("after authorizing, the reader is at %s, want the log %s", loc, link)
	}
	if page, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body"))); !strings.Contains(page, "private build output") {
		t.Errorf("the log page, signed in as its reader:\n%s", page)
	}

	// The session cookie, as whoever copied it holds it.
	sessionCookie := func() *network.Cookie {
		t.Helper()
		res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{link}})
		if err != nil {
			t.Fatal(err)
		}
		for _, ck := range res.Cookies {
			if ck.Name == "albatros_session" && ck.Value != "" {
				return ck
			}
		}
		return nil
	}
	copied := sessionCookie()
	if copied == nil {
		t.Fatal("no session cookie in the browser after signing in")
	}
	do("sign out", chromedp.Navigate(public(t)+"/"), chromedp.Click(chromedp.CSS(`form[action="/logout"] button`)), chromedp.WaitNotPresent(chromedp.CSS(".who")), chromedp.WaitVisible(chromedp.CSS("#install")))
	if page, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body"))); strings.Contains(page, "signed in as") {
		t.Errorf("the home page after signing out:\n%s", page)
	}
	if left := sessionCookie(); left != nil {
		t.Errorf("the browser still holds a session cookie: %+v", left)
	}

	rctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	second, err := startBotURL(rctx, t, "2s", public(t))
	if err != nil {
		t.Fatal(err)
	}
	defer second.Stop()
	second.LogOnFailure(t)
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	for _, base := range []string{public(t), bot(t).URL, second.URL} {
		for _, path := range []string{u.RequestURI(), "/orgs/" + p.org} {
			req, _ := http.NewRequest(http.MethodGet, base+path, nil)
			req.AddCookie(&http.Cookie{Name: copied.Name, Value: copied.Value})
			resp, err := http.DefaultTransport.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/login?next=") {
				t.Errorf("the copied cookie, replayed after signing out, at %s%s: %d to %q, want a sign-in", base, path, resp.StatusCode, loc)
			}
		}
	}
}
