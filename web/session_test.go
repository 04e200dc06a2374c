package web

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/albatros-ci/albatros/seal"
)

func testWeb(t *testing.T, key string) *Web {
	t.Helper()
	k, err := seal.New([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	return New(Config{
		BaseURL: "https://ci.example.com/", GiteaURL: "https://git.example.com", Keys: k,
		OAuth: &oauth2.Config{ClientID: "id", Endpoint: oauth2.Endpoint{AuthURL: "https://git.example.com/login/oauth/authorize", TokenURL: "https://git.example.com/login/oauth/access_token"}, RedirectURL: "https://ci.example.com" + RedirectPath, Scopes: Scopes},
		Log:   slog.New(slog.DiscardHandler),
	})
}

const key1 = "session-test-key-0123456789abcdef-1"

// cookieOf returns the value of the cookie name that w set.
func cookieOf(t *testing.T, w *httptest.ResponseRecorder, name string) *http.Cookie {
	t.Helper()
	for _, c := range w.Result().Cookies() {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no %s cookie set", name)
	return nil
}

func TestSessionCookie(t *testing.T) {
	wb := testWeb(t, key1)
	w := httptest.NewRecorder()
	if err := wb.setSession(w, session{Login: "alice", Orgs: []string{"acme"}}); err != nil {
		t.Fatal(err)
	}
	c := cookieOf(t, w, sessionCookie)
	if !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.MaxAge != int(SessionLength/time.Second) {
		t.Errorf("session cookie attributes: %+v", c)
	}
	if strings.Contains(c.Value, "alice") {
		t.Errorf("the session cookie shows its content: %s", c.Value)
	}
	req := httptest.NewRequest("GET", "/orgs", nil)
	req.AddCookie(c)
	if s, ok := wb.session(req); !ok || s.Login != "alice" || len(s.Orgs) != 1 {
		t.Fatalf("session = %+v, %v", s, ok)
	}
	// Over plain http, cookies are not marked Secure (they would not come back).
	plain := New(Config{BaseURL: "http://127.0.0.1:8080", Keys: wb.cfg.Keys, Log: wb.cfg.Log})
	w2 := httptest.NewRecorder()
	_ = plain.setSession(w2, session{Login: "alice"})
	if cookieOf(t, w2, sessionCookie).Secure {
		t.Error("Secure cookie for a bot served over http")
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
	good := seal(wb, session{Login: "alice", Expires: time.Now().Add(time.Hour).Unix()}, sessionPurpose)
	flipped := []byte(good)
	flipped[len(flipped)/2] ^= 1
	cases := map[string]string{
		"expired":                 seal(wb, session{Login: "alice", Expires: time.Now().Add(-time.Second).Unix()}, sessionPurpose),
		"tampered":                string(flipped),
		"sealed by another key":   seal(other, session{Login: "alice", Expires: time.Now().Add(time.Hour).Unix()}, sessionPurpose),
		"an OAuth2 state instead": seal(wb, session{Login: "alice", Expires: time.Now().Add(time.Hour).Unix()}, flowPurpose),
		"no login":                seal(wb, session{Expires: time.Now().Add(time.Hour).Unix()}, sessionPurpose),
		"not sealed":              "eyJsb2dpbiI6ImFsaWNlIiwiZXhwIjo5OTk5OTk5OTk5OX0",
		"empty":                   "",
	}
	for name, value := range cases {
		req := httptest.NewRequest("GET", "/", nil)
		req.AddCookie(&http.Cookie{Name: sessionCookie, Value: value})
		if s, ok := wb.session(req); ok {
			t.Errorf("%s: session %+v accepted", name, s)
		}
	}
	req := httptest.NewRequest("GET", "/", nil)
	req.AddCookie(&http.Cookie{Name: sessionCookie, Value: good})
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
	if !strings.HasPrefix(loc, "https://git.example.com/login/oauth/authorize?") || !strings.Contains(loc, "code_challenge_method=S256") || !strings.Contains(loc, "code_challenge=") || !strings.Contains(loc, "scope=read%3Auser+write%3Aorganization") {
		t.Fatalf("authorize URL %s", loc)
	}
	nonce := cookieOf(t, w, flowCookie)
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
		"another flow's cookie": {state, &http.Cookie{Name: flowCookie, Value: "another-nonce"}},
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
