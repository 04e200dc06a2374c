package web

import (
	"github.com/albatros-ci/albatros/forge/forgetest"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// Each sign-in asks Gitea for what its flow does with the user's token: a reader's (a log,
// any page but the organization pages) only read:user, to say who the user is; the
// organization pages and installing what listing and installing need.
func TestScopesPerFlow(t *testing.T) {
	h := newHarness(t)
	rp := h.replica("http://127.0.0.1:8080")
	reader, owner := "read:user", "read:user write:organization"
	for target, want := range map[string]string{
		"/login?next=" + url.QueryEscape("/logs/ci/builder/dispatch-1"): reader,
		"/login?next=" + url.QueryEscape("/build?namespace=ci&job=x"):   reader,
		"/login":                            reader,
		"/login?next=/orgsfoo":              reader,
		"/login?next=https://evil.example/": reader,
		// A private log's visitor, sent to sign in by AllowLog.
		"/logs/ci/builder/dispatch-1":                        reader,
		"/login?next=/orgs":                                  owner,
		"/login?next=" + url.QueryEscape("/orgs?done=saved"): owner,
		"/login?next=/orgs/acme":                             owner,
		"/login?next=/orgs/acme/repos/app":                   owner,
		"/orgs":                                              owner, // the organizations, signed out
		"/orgs/acme":                                         owner, // an organization's page, signed out
	} {
		u, _ := rp.authorize(t, target)
		if got := u.Query().Get("scope"); got != want {
			t.Errorf("%s asks %q, want %q", target, got, want)
		}
	}
	// Install (POST /orgs/{org}/install, for an owner already signed in) goes round Gitea
	// again for a token of the user's own.
	sess := rp.sessionOf(t, rp.signIn(t, "/login?next=/orgs"))
	w := rp.do("POST", "/orgs/acme/install", sess)
	u, err := url.Parse(w.Header().Get("Location"))
	if w.Code != http.StatusSeeOther || err != nil || u.Path != "/login/oauth/authorize" {
		t.Fatalf("install: %d to %q", w.Code, w.Header().Get("Location"))
	}
	if got := u.Query().Get("scope"); got != owner {
		t.Errorf("install asks %q, want %q", got, owner)
	}
}

// A reader's sign-in asks Gitea who the user is, and nothing else: no introspection, no
// organizations. Its session lists none, and lands on the page it started from.
func TestReaderSignIn(t *testing.T) {
	h := newHarness(t)
	rp := h.replica("http://127.0.0.1:8080")
	log := "/logs/ci/builder/dispatch-1"
	w := rp.signIn(t, log)
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != log {
		t.Fatalf("callback: %d to %q, want back to %s\n%s", w.Code, w.Header().Get("Location"), log, w.Body)
	}
	if calls := h.user.called(); !slices.Equal(calls, []string{"Me"}) {
		t.Errorf("the reader's token was used for %v, want only Me", calls)
	}
	if n := h.gitea.introspected(); n != 0 {
		t.Errorf("%d introspections for a reader", n)
	}
	sess := rp.sessionOf(t, w)
	if s := rp.open(t, sess); s.Login != "alice" || s.Listed || s.Orgs != nil {
		t.Errorf("reader's session %+v", s)
	}
	if w := rp.do("GET", log, sess); w.Code != http.StatusOK || w.Body.String() != "private build output" {
		t.Errorf("the log, signed in: %d %s", w.Code, w.Body)
	}
}

// The organizations page needs the list made at an owner's sign-in: a reader's session is
// sent to sign in again, asking OwnerScopes, and comes back listed, in the same session.
func TestReaderSignsInAgainForTheOrganizations(t *testing.T) {
	h := newHarness(t)
	rp := h.replica("http://127.0.0.1:8080")
	sess := rp.sessionOf(t, rp.signIn(t, "/logs/ci/builder/dispatch-1"))
	w := rp.do("GET", "/orgs", sess)
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/login?next=%2Forgs" {
		t.Fatalf("/orgs with a reader's session: %d to %q, want a sign-in", w.Code, w.Header().Get("Location"))
	}
	u, _ := rp.authorize(t, w.Header().Get("Location"))
	if got := u.Query().Get("scope"); got != "read:user write:organization" {
		t.Errorf("the sign-in again asks %q", got)
	}
	again := rp.signIn(t, "/orgs", sess)
	if again.Code != http.StatusSeeOther || again.Header().Get("Location") != "/orgs" {
		t.Fatalf("callback: %d to %q", again.Code, again.Header().Get("Location"))
	}
	listed := rp.sessionOf(t, again)
	s, before := rp.open(t, listed), rp.open(t, sess)
	if !s.Listed || !slices.Equal(s.Orgs, []string{"acme"}) || s.ID != before.ID {
		t.Errorf("session after signing in again %+v (was %+v): want acme listed, same ID", s, before)
	}
	if w := rp.do("GET", "/orgs", listed); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `id="org-acme"`) {
		t.Errorf("/orgs: %d\n%s", w.Code, w.Body)
	}
}

// Installing from a session without the list (a reader's, whose owner check the bot made
// with its own account): the install's sign-in, with OwnerScopes, makes the list in the
// same session, then installs with the user's token.
func TestInstallSignIn(t *testing.T) {
	h := newHarness(t)
	rp := h.replica("http://127.0.0.1:8080")
	sess := rp.sessionOf(t, rp.signIn(t, "/logs/ci/builder/dispatch-1"))
	w := rp.do("POST", "/orgs/acme/install", sess)
	loc, err := url.Parse(w.Header().Get("Location"))
	if w.Code != http.StatusSeeOther || err != nil || loc.Path != "/login/oauth/authorize" {
		t.Fatalf("install: %d to %q", w.Code, w.Header().Get("Location"))
	}
	q := url.Values{"code": {"code-2"}, "state": {loc.Query().Get("state")}}
	done := rp.do("GET", RedirectPath+"?"+q.Encode(), sess, cookieOf(t, w, rp.flowCookie))
	if done.Code != http.StatusSeeOther || done.Header().Get("Location") != "/orgs/acme?done=installed" {
		t.Fatalf("install callback: %d to %q\n%s", done.Code, done.Header().Get("Location"), done.Body)
	}
	if got := h.installer.installed(); !slices.Equal(got, []string{"acme by alice"}) {
		t.Errorf("installs %v", got)
	}
	if s, before := rp.open(t, rp.sessionOf(t, done)), rp.open(t, sess); !s.Listed || !slices.Equal(s.Orgs, []string{"acme"}) || s.ID != before.ID {
		t.Errorf("session after installing %+v (was %+v): want acme listed, same ID", s, before)
	}
	if n := h.gitea.introspected(); n != 1 {
		t.Errorf("%d introspections, want the install's", n)
	}
}

// Gitea 1.26 keeps a user's grant at the scopes first granted: a reader who later signs in
// for the organization pages gets a token of read:user whatever the bot asks. The bot
// reads the grant back and says how to widen it, instead of failing on Gitea's refusals;
// nothing is listed, and no session is made of it.
func TestNarrowGrantIsExplained(t *testing.T) {
	h := newHarness(t)
	h.gitea.setGrant("read:user")
	rp := h.replica("http://127.0.0.1:8080")
	w := rp.signIn(t, "/login?next=/orgs")
	if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), h.gitea.URL+"/user/settings/applications") || !strings.Contains(w.Body.String(), "Revoke Albatros") {
		t.Fatalf("owner sign-in with a read:user grant: %d\n%s", w.Code, w.Body)
	}
	if calls := h.user.called(); !slices.Equal(calls, []string{"Me"}) {
		t.Errorf("the token was used for %v, want only Me", calls)
	}
	for _, c := range w.Result().Cookies() {
		if c.Name == rp.sessionCookie {
			t.Errorf("a session was made: %+v", c)
		}
	}
	// Once the user revoked and granted again, the sign-in goes through.
	h.gitea.setGrant("read:user write:organization")
	if w := rp.signIn(t, "/login?next=/orgs"); w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/orgs" {
		t.Errorf("owner sign-in with the whole grant: %d\n%s", w.Code, w.Body)
	}
}

func TestMissingScopes(t *testing.T) {
	for _, c := range []struct {
		granted string
		missing []string
	}{
		{"read:user write:organization", nil},
		{"read:user,write:organization", nil},
		{"write:user write:organization openid", nil},
		{"read:user", []string{"write:organization"}},
		{"read:user read:organization", []string{"write:organization"}},
		{"write:organization", []string{"read:user"}},
		{"", nil},               // no access scope: Gitea grants them all
		{"openid profile", nil}, // the same
		{"all", nil},
	} {
		if got := missingScopes(c.granted, OwnerScopes); !slices.Equal(got, c.missing) {
			t.Errorf("grant %q lacks %v, want %v", c.granted, got, c.missing)
		}
	}
}

// A log whose repository's forge cannot say whether it is private, nor who reads it
// (forge.ErrUnsupported), is served to nobody: not anonymously, not signed in.
func TestLogOfAForgeThatCannotTellItsReaders(t *testing.T) {
	h := newHarness(t)
	rp := h.replica("http://127.0.0.1:8080")
	log := "/logs/ci/builder/dispatch-1"
	h.repoForge = forgetest.WriteOnly{Forge: &forgetest.Forge{}} // TestReaderSignIn: alice reads it on one that can
	sess := rp.sessionOf(t, rp.signIn(t, "/login?next=/orgs"))
	for name, cookies := range map[string][]*http.Cookie{"anonymous": nil, "signed in": {sess}} {
		w := rp.do("GET", log, cookies...)
		if w.Code != http.StatusForbidden || strings.Contains(w.Body.String(), "private build output") {
			t.Errorf("%s, on a forge that cannot tell: %d %q, want 403", name, w.Code, w.Body)
		}
	}
}
