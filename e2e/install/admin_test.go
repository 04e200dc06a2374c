package install

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	sdk "code.gitea.io/sdk/gitea"

	"github.com/albatros-ci/albatros/testenv"
	"github.com/albatros-ci/albatros/web"
)

// adminURLs are the admin routes of the bot's own router, made concrete for an
// organization and a repository.
func adminURLs(org, repo string, github bool) []web.Route {
	var out []web.Route
	for _, rt := range (&web.Web{}).Routes() {
		if !rt.Admin || strings.HasPrefix(rt.Pattern, "/github/") != github {
			continue
		}
		rt.Pattern = strings.NewReplacer("{org}", org, "{repo}", repo).Replace(rt.Pattern)
		out = append(out, rt)
	}
	return out
}

// noRedirects is a client that shows redirects instead of following them.
func noRedirects(c *client) *http.Client {
	h := *c.http
	h.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &h
}

// Every admin URL, table-driven over the router's own list: an anonymous visitor is sent
// to sign in, a signed-in user who does not own the organization gets 403, and nothing
// changes.
func TestAdminURLsNeedAnOwner(t *testing.T) {
	p, _ := installed(t)
	repo := p.g.CreateRepo(t, p.owner, p.org, "app")
	before := string(p.record())
	hooks := len(p.hooks())

	anonymous := noRedirects(newClient(t, bot(t)))
	stranger := newClient(t, bot(t))
	other := env.Gitea(t).CreateUser(t, testenv.UniqueName("stranger"))
	stranger.signIn(other)
	member := newClient(t, bot(t))
	// A member of the organization (in a team with write access) is not an owner either.
	writer := env.Gitea(t).CreateUser(t, testenv.UniqueName("writer"))
	team, _, err := p.g.Client(t, p.owner.Token).CreateTeam(p.org, sdk.CreateTeamOption{Name: "devs", Permission: sdk.AccessModeWrite, IncludesAllRepositories: true, Units: []sdk.RepoUnitType{sdk.RepoUnitCode, sdk.RepoUnitPulls}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.g.Client(t, p.owner.Token).AddTeamMember(team.ID, writer.Name); err != nil {
		t.Fatal(err)
	}
	member.signIn(writer)

	form := url.Values{"name": {"LEAK"}, "value": {"x"}, "users": {"mallory"}, "flavors": {"evil"}}
	// send is the status a signed-in client gets for rt, the form posted to a POST route.
	send := func(c *client, rt web.Route) int {
		if rt.Method == http.MethodGet {
			r, _ := c.get(rt.Pattern)
			return r.StatusCode
		}
		r, _ := c.post(rt.Pattern, form)
		return r.StatusCode
	}
	// This bot has no GitHub App: the App's accounts' pages are not served, to anyone.
	for _, rt := range adminURLs(p.org, repo.Name, true) {
		for name, c := range map[string]*client{"stranger": stranger, "member": member} {
			if code := send(c, rt); code != http.StatusNotFound {
				t.Errorf("%s %s %s on a bot without a GitHub App: %d, want 404", name, rt.Method, rt.Pattern, code)
			}
		}
	}
	routes := adminURLs(p.org, repo.Name, false)
	if len(routes) < 10 {
		t.Fatalf("only %d admin routes: %+v", len(routes), routes)
	}
	for _, rt := range routes {
		req, _ := http.NewRequest(rt.Method, bot(t).URL+rt.Pattern, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := anonymous.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/login?next=") {
			t.Errorf("anonymous %s %s: %d to %q, want a redirect to sign in", rt.Method, rt.Pattern, resp.StatusCode, loc)
		}
		for name, c := range map[string]*client{"stranger": stranger, "member": member} {
			if code := send(c, rt); code != http.StatusForbidden {
				t.Errorf("%s %s %s: %d, want 403", name, rt.Method, rt.Pattern, code)
			}
		}
	}
	if after := string(p.record()); after != before {
		t.Errorf("the installation changed:\nbefore %s\nafter  %s", before, after)
	}
	if n := len(p.hooks()); n != hooks || !p.botIsOwner() {
		t.Errorf("hooks %d (was %d), bot owner %v: something was uninstalled", n, hooks, p.botIsOwner())
	}
}

// A POST from another site is refused before it changes anything, also with the owner's
// session cookie; a tampered cookie is no session.
func TestCrossSitePostsAndTamperedCookies(t *testing.T) {
	p, c := installed(t)
	before := string(p.record())
	for name, h := range map[string]http.Header{
		"Sec-Fetch-Site: cross-site": {"Sec-Fetch-Site": {"cross-site"}},
		"Origin of another site":     {"Origin": {"http://evil.example.com"}},
	} {
		for _, path := range []string{"/orgs/" + p.org + "/secrets", "/orgs/" + p.org + "/settings", "/orgs/" + p.org + "/uninstall"} {
			resp, _ := c.do(http.MethodPost, bot(t).URL+path, url.Values{"name": {"LEAK"}, "value": {"x"}, "users": {"mallory"}}, h)
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("%s, POST %s: %d, want 403", name, path, resp.StatusCode)
			}
		}
	}
	if after := string(p.record()); after != before {
		t.Errorf("a cross-site post changed the installation:\nbefore %s\nafter  %s", before, after)
	}
	if !p.botIsOwner() || len(p.hooks()) != 1 {
		t.Error("a cross-site post uninstalled")
	}
	// The same request from the bot's own page goes through.
	resp, page := c.do(http.MethodPost, bot(t).URL+"/orgs/"+p.org+"/settings", url.Values{"users": {p.owner.Name}}, http.Header{"Origin": {bot(t).URL}, "Sec-Fetch-Site": {"same-origin"}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "Settings saved") {
		t.Fatalf("same-origin post: %d\n%s", resp.StatusCode, page)
	}

	// Tampered session cookies: one byte changed, or another value altogether.
	u, _ := url.Parse(bot(t).URL)
	var session *http.Cookie
	for _, ck := range c.http.Jar.Cookies(u) {
		if ck.Name == "albatros_session" {
			session = ck
		}
	}
	if session == nil {
		t.Fatal("no session cookie after sign-in")
	}
	flipped := []byte(session.Value)
	flipped[len(flipped)/2] ^= 0x01
	for name, value := range map[string]string{"one byte changed": string(flipped), "garbage": "eyJsb2dpbiI6Im93bmVyIn0", "empty": ""} {
		req, _ := http.NewRequest(http.MethodGet, bot(t).URL+"/orgs/"+p.org, nil)
		req.AddCookie(&http.Cookie{Name: "albatros_session", Value: value})
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
			t.Errorf("%s session cookie: %d, want a redirect to sign in", name, resp.StatusCode)
		}
	}
}
