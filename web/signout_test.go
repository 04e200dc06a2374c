package web

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/albatros-ci/albatros/registry"
)

// Signing out ends the session for good: a copy of its cookie, replayed afterwards, is no
// session on the replica that signed out (at once) nor on any other (on one that never
// saw the session at once, on one that did within liveFor); the pages then send it to sign
// in. The sign-out is kept in Consul until the session would have expired.
func TestSignOutEndsTheSessionEverywhere(t *testing.T) {
	h := newHarness(t)
	a, b := h.replica("https://ci.example.com"), h.replica("https://ci.example.com")
	sess := a.sessionOf(t, a.signIn(t, "/login?next=/orgs"))
	s := a.open(t, sess)
	for name, rp := range map[string]*replica{"a": a, "b": b} {
		if w := rp.do("GET", "/orgs", sess); w.Code != http.StatusOK {
			t.Fatalf("replica %s before signing out: %d", name, w.Code)
		}
	}

	w := a.do("POST", "/logout", sess)
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/" {
		t.Fatalf("logout: %d to %q", w.Code, w.Header().Get("Location"))
	}
	if cleared := cookieOf(t, w, a.sessionCookie); cleared.Value != "" || cleared.MaxAge >= 0 {
		t.Errorf("the cookie is not cleared: %+v", cleared)
	}
	if until, ok := h.sessions.Until(s.ID); !ok || !until.Equal(time.Unix(s.Expires, 0)) {
		t.Errorf("sign-out recorded until %v (%v), want the session's expiry %v", until, ok, time.Unix(s.Expires, 0))
	}

	// b answered from Consul less than liveFor ago; that answer has aged out for this test.
	b.signedOut.mu.Lock()
	b.signedOut.live[s.ID] = time.Now().Add(-liveFor)
	b.signedOut.mu.Unlock()
	c := h.replica("https://ci.example.com") // a replica that never saw the session
	for name, rp := range map[string]*replica{"the replica that signed out": a, "another replica": b, "a fresh replica": c} {
		for _, page := range []string{"/orgs", "/orgs/acme", "/logs/ci/builder/dispatch-1"} {
			w := rp.do("GET", page, sess)
			if w.Code != http.StatusSeeOther || !strings.HasPrefix(w.Header().Get("Location"), "/login?next=") {
				t.Errorf("%s, %s with the replayed cookie: %d to %q, want a sign-in", name, page, w.Code, w.Header().Get("Location"))
			}
		}
		if w := rp.do("GET", "/", sess); strings.Contains(w.Body.String(), "signed in as") {
			t.Errorf("%s: the home page shows the signed-out user", name)
		}
		if _, err := rp.readSession(httptestRequest(sess)); !errors.Is(err, errNoSession) {
			t.Errorf("%s: the replayed cookie is %v, want no session", name, err)
		}
	}
	// Signing in again makes a new session, not the old one back.
	again := a.sessionOf(t, a.signIn(t, "/login?next=/orgs", sess))
	if id := a.open(t, again).ID; id == s.ID {
		t.Error("signing in after signing out gave the signed-out session's ID again")
	}
	if w := c.do("GET", "/orgs", again); w.Code != http.StatusOK {
		t.Errorf("the new session: %d", w.Code)
	}
}

// Consul is asked once per request however often the request reads its session, and its
// "not signed out" is trusted for liveFor; a session this replica just made is not asked
// about at all.
func TestSignOutCheckIsCheap(t *testing.T) {
	h := newHarness(t)
	a, b := h.replica("http://127.0.0.1:8080"), h.replica("http://127.0.0.1:8080")
	sess := a.sessionOf(t, a.signIn(t, "/login?next=/orgs"))
	id := a.open(t, sess).ID
	a.do("GET", "/orgs", sess)
	if n := h.sessions.Asked(); n != 0 {
		t.Errorf("Consul asked %d times about a session this replica just made", n)
	}
	b.do("GET", "/orgs", sess) // reads its session three times: the page, its header, the list
	b.do("GET", "/orgs", sess)
	if n := h.sessions.Asked(); n != 1 {
		t.Errorf("Consul asked %d times for two requests within liveFor, want 1", n)
	}
	b.signedOut.mu.Lock()
	b.signedOut.live[id] = time.Now().Add(-liveFor)
	b.signedOut.mu.Unlock()
	b.do("GET", "/orgs", sess)
	if n := h.sessions.Asked(); n != 2 {
		t.Errorf("Consul asked %d times, want again once liveFor passed", n)
	}
}

// When Consul cannot say whether a session was signed out, the pages that need one answer
// 503, never "signed in" (a signed-out cookie would get in) nor a sign-in (Gitea would send
// the browser straight back, in a loop); pages that do not need one show no user. Signing
// out then signs nothing out, and says so: the session stays for trying again.
func TestSignOutCheckFailsClosed(t *testing.T) {
	h := newHarness(t)
	a := h.replica("http://127.0.0.1:8080")
	sess := a.sessionOf(t, a.signIn(t, "/login?next=/orgs"))
	h.sessions.SetErr(fmt.Errorf("%w: consul get: connection refused", registry.ErrUnavailable))
	b := h.replica("http://127.0.0.1:8080")
	for _, page := range []string{"/orgs", "/orgs/acme", "/logs/ci/builder/dispatch-1"} {
		w := b.do("GET", page, sess)
		if w.Code != http.StatusServiceUnavailable || strings.Contains(w.Body.String(), "private build output") {
			t.Errorf("%s with Consul down: %d to %q, want 503", page, w.Code, w.Header().Get("Location"))
		}
	}
	if w := b.do("GET", "/", sess); w.Code != http.StatusOK || strings.Contains(w.Body.String(), "signed in as") {
		t.Errorf("home with Consul down: %d, signed in shown: %v", w.Code, strings.Contains(w.Body.String(), "signed in as"))
	}
	w := a.do("POST", "/logout", sess)
	if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), "Not signed out") {
		t.Errorf("logout with Consul down: %d\n%s", w.Code, w.Body)
	}
	for _, c := range w.Result().Cookies() {
		if c.Name == a.sessionCookie {
			t.Errorf("logout with Consul down cleared the cookie: %+v", c)
		}
	}
	h.sessions.SetErr(nil)
	if w := b.do("GET", "/orgs", sess); w.Code != http.StatusOK {
		t.Errorf("/orgs once Consul is back: %d", w.Code)
	}
	if w := a.do("POST", "/logout", sess); w.Code != http.StatusSeeOther {
		t.Errorf("logout once Consul is back: %d", w.Code)
	}
	for name, rp := range map[string]*replica{"the replica that signed out": a, "a fresh replica": h.replica("http://127.0.0.1:8080")} {
		if w := rp.do("GET", "/orgs", sess); w.Code != http.StatusSeeOther {
			t.Errorf("%s, /orgs after signing out: %d", name, w.Code)
		}
	}
}

// Without a store of sign-outs nobody can sign in: a session could not be ended.
func TestNoSessionsNoSignIn(t *testing.T) {
	wb := New(Config{BaseURL: "http://127.0.0.1:8080", OAuth: testWeb(t, key1).cfg.OAuth, Keys: testWeb(t, key1).cfg.Keys})
	if wb.cfg.OAuth != nil || wb.cfg.DisabledReason == "" {
		t.Errorf("sign-in enabled without Sessions: %+v", wb.cfg)
	}
}

func httptestRequest(c *http.Cookie) *http.Request {
	req, _ := http.NewRequest("GET", "/", nil)
	req.AddCookie(c)
	return req
}
