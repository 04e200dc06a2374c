package web

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/albatros-ci/albatros/registry/registrytest"
	"github.com/albatros-ci/albatros/seal"
)

func testWeb(t *testing.T, key string) *Web {
	t.Helper()
	k, err := seal.New([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	return New(Config{
		BaseURL: "https://ci.example.com/", GiteaURL: "https://git.example.com", Keys: k, Sessions: &registrytest.Sessions{},
		OAuth: &oauth2.Config{ClientID: "id", Endpoint: oauth2.Endpoint{AuthURL: "https://git.example.com/login/oauth/authorize", TokenURL: "https://git.example.com/login/oauth/access_token"}, RedirectURL: "https://ci.example.com" + RedirectPath},
		Log:   slog.New(slog.DiscardHandler),
	})
}

const key1 = "session-test-key-0123456789abcdef-1"

// cookieOf returns the cookie name that w set.
func cookieOf(t *testing.T, w *httptest.ResponseRecorder, name string) *http.Cookie {
	t.Helper()
	for _, c := range w.Result().Cookies() {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no %s cookie set (set: %v)", name, w.Result().Header.Values("Set-Cookie"))
	return nil
}

// Over https the session and sign-in cookies are __Host- cookies: Secure, Path=/, no
// Domain, as browsers require of the prefix; over http (tests, make demo) they keep plain
// names and are not Secure, which would keep them from coming back. Either way they are
// HttpOnly, SameSite=Lax, and do not show what they hold.
func TestCookieNames(t *testing.T) {
	for _, c := range []struct {
		baseURL, session, flow string
		secure                 bool
	}{
		{"https://ci.example.com/", "__Host-albatros_session", "__Host-albatros_oauth", true},
		{"http://127.0.0.1:8080", "albatros_session", "albatros_oauth", false},
	} {
		rp := newHarness(t).replica(c.baseURL)
		w := rp.do("GET", "/login?next=/orgs")
		flow := cookieOf(t, w, c.flow)
		signedIn := rp.signIn(t, "/login?next=/orgs")
		sess := cookieOf(t, signedIn, c.session)
		for _, ck := range []*http.Cookie{flow, sess} {
			if ck.Secure != c.secure || ck.Path != "/" || ck.Domain != "" || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode {
				t.Errorf("%s: cookie %s: %+v", c.baseURL, ck.Name, ck)
			}
		}
		if sess.MaxAge != int(SessionLength/time.Second) || flow.MaxAge != int(flowLength/time.Second) {
			t.Errorf("%s: max ages %d and %d", c.baseURL, sess.MaxAge, flow.MaxAge)
		}
		if strings.Contains(sess.Value, "alice") {
			t.Errorf("%s: the session cookie shows its content: %s", c.baseURL, sess.Value)
		}
		if s := rp.open(t, sess); s.Login != "alice" || len(s.ID) < 20 || !s.Listed || !slices.Equal(s.Orgs, []string{"acme"}) {
			t.Errorf("%s: session %+v", c.baseURL, s)
		}
		// The pages read the session back.
		if w := rp.do("GET", "/orgs", sess); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "signed in as <strong>alice") {
			t.Errorf("%s: /orgs with the session: %d", c.baseURL, w.Code)
		}
	}
	// Over https, a cookie of the plain name (which any site under the same domain may
	// set) is no session, even sealed by the bot.
	rp := newHarness(t).replica("https://ci.example.com")
	sess := rp.sessionOf(t, rp.signIn(t, "/login?next=/orgs"))
	sess.Name = sessionName
	if w := rp.do("GET", "/orgs", sess); w.Code != http.StatusSeeOther {
		t.Errorf("over https, a session under the plain name %s opens: %d", sessionName, w.Code)
	}
}

func TestSessionRefused(t *testing.T) {
	wb := testWeb(t, key1)
	other := testWeb(t, "session-test-key-0123456789abcdef-2")
	seal := func(w *Web, v any, purpose string) string {
		s, err := w.sealJSON(v, purpose)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	good := seal(wb, session{ID: "id-1", Login: "alice", Expires: time.Now().Add(time.Hour).Unix()}, sessionPurpose)
	flipped := []byte(good)
	flipped[len(flipped)/2] ^= 1
	cases := map[string]string{
		"expired":                 seal(wb, session{ID: "id-1", Login: "alice", Expires: time.Now().Add(-time.Second).Unix()}, sessionPurpose),
		"tampered":                string(flipped),
		"sealed by another key":   seal(other, session{ID: "id-1", Login: "alice", Expires: time.Now().Add(time.Hour).Unix()}, sessionPurpose),
		"an OAuth2 state instead": seal(wb, session{ID: "id-1", Login: "alice", Expires: time.Now().Add(time.Hour).Unix()}, flowPurpose),
		"no login":                seal(wb, session{ID: "id-1", Expires: time.Now().Add(time.Hour).Unix()}, sessionPurpose),
		// Made before sessions had IDs: it could not be signed out.
		"no ID":      seal(wb, session{Login: "alice", Expires: time.Now().Add(time.Hour).Unix()}, sessionPurpose),
		"not sealed": "eyJsb2dpbiI6ImFsaWNlIiwiZXhwIjo5OTk5OTk5OTk5OX0",
		"empty":      "",
	}
	for name, value := range cases {
		req := httptest.NewRequest("GET", "/", nil)
		req.AddCookie(&http.Cookie{Name: wb.sessionCookie, Value: value})
		if s, ok := wb.session(req); ok {
			t.Errorf("%s: session %+v accepted", name, s)
		}
	}
	req := httptest.NewRequest("GET", "/", nil)
	req.AddCookie(&http.Cookie{Name: wb.sessionCookie, Value: good})
	if _, ok := wb.session(req); !ok {
		t.Error("the good session is refused")
	}
}

// A sign-in starts with a sealed state bound to a cookie of this browser and a PKCE
// challenge; a callback whose state does not match this browser's flow, or came too late,
// is refused before any code is exchanged.
func TestSignInFlow(t *testing.T) {
	wb := testWeb(t, key1)
	w := httptest.NewRecorder()
	wb.login(w, httptest.NewRequest("GET", "/login?next=/orgs/acme", nil))
	if w.Code != http.StatusSeeOther {
		t.Fatalf("login: %d", w.Code)
	}
	loc := w.Result().Header.Get("Location")
	if !strings.HasPrefix(loc, "https://git.example.com/login/oauth/authorize?") || !strings.Contains(loc, "code_challenge_method=S256") || !strings.Contains(loc, "code_challenge=") {
		t.Fatalf("authorize URL %s", loc)
	}
	nonce := cookieOf(t, w, wb.flowCookie)
	state := loc[strings.Index(loc, "state=")+len("state="):]
	if i := strings.IndexByte(state, '&'); i >= 0 {
		state = state[:i]
	}
	if strings.Contains(state, "orgs") {
		t.Errorf("the state shows its content: %s", state)
	}

	expired, _ := wb.sealJSON(flow{Nonce: nonce.Value, Verifier: "v", Next: "/", Expires: time.Now().Add(-time.Second).Unix()}, flowPurpose)
	for name, c := range map[string]struct {
		state  string
		cookie *http.Cookie
	}{
		"no flow cookie":        {state, nil},
		"another flow's cookie": {state, &http.Cookie{Name: wb.flowCookie, Value: "another-nonce"}},
		"state altered":         {state[:len(state)-2] + "xx", nonce},
		"expired flow":          {expired, nonce},
		"no state":              {"", nonce},
	} {
		req := httptest.NewRequest("GET", RedirectPath+"?code=c&state="+c.state, nil)
		if c.cookie != nil {
			req.AddCookie(c.cookie)
		}
		w := httptest.NewRecorder()
		wb.callback(w, req)
		body, _ := io.ReadAll(w.Result().Body)
		if w.Code != http.StatusBadRequest || !strings.Contains(string(body), "Sign-in refused") {
			t.Errorf("%s: %d\n%s", name, w.Code, body)
		}
	}
}

func TestLocalPath(t *testing.T) {
	for in, want := range map[string]string{
		"/orgs":                     "/orgs",
		"/orgs/acme?done=saved":     "/orgs/acme?done=saved",
		"":                          "/",
		"https://evil.example.com/": "/",
		"//evil.example.com/x":      "/",
		"/\\evil.example.com":       "/",
		"orgs":                      "/",
		"javascript:alert(1)":       "/",
		"/./%5Cevil.example.com":    "/",
		"/.//evil.example.com":      "/evil.example.com",
		"/orgs/../\\evil":           "/",
		"/a/../b":                   "/b",
		"/%2F%2Fevil.example.com":   "/%2F%2Fevil.example.com",
		"/x\nLocation: y":           "/",
	} {
		if got := localPath(in); got != want {
			t.Errorf("localPath(%q) = %q, want %q", in, got, want)
		}
	}
}
