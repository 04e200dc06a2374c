package web

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"
)

// Cookies of the pages.
const (
	sessionCookie = "albatros_session"
	flowCookie    = "albatros_oauth"
)

// SessionLength is how long a sign-in lasts.
const SessionLength = 12 * time.Hour

// flowLength is how long a sign-in through Gitea may take.
const flowLength = 10 * time.Minute

// session is who is signed in, sealed in the session cookie.
type session struct {
	Login string `json:"login"`
	// Orgs are the organizations the user owned when signing in, for the list of
	// organizations to install on; every action checks ownership again.
	Orgs []string `json:"orgs"`
	// Expires is when the session ends, in Unix seconds.
	Expires int64 `json:"exp"`
}

// flow is an OAuth2 sign-in under way, sealed in its state parameter.
type flow struct {
	// Nonce equals the flow cookie's value: the flow started in this browser.
	Nonce string `json:"nonce"`
	// Verifier is the PKCE code verifier.
	Verifier string `json:"verifier"`
	// Next is the local page to return to; Install, when set, the organization to install
	// Albatros on once back.
	Next    string `json:"next,omitempty"`
	Install string `json:"install,omitempty"`
	Expires int64  `json:"exp"`
}

const (
	sessionPurpose = "session"
	flowPurpose    = "oauth-state"
)

// sealJSON seals v as a cookie or URL value.
func (wb *Web) sealJSON(v any, purpose string) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString([]byte(wb.cfg.Keys.Seal(b, purpose))), nil
}

var errExpired = errors.New("expired")

// openJSON opens what sealJSON sealed for the same purpose.
func (wb *Web) openJSON(s, purpose string, v any) error {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return err
	}
	b, err := wb.cfg.Keys.Open(string(raw), purpose)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// session returns the request's session; ok is false without a valid, unexpired one (a
// tampered, foreign or old cookie is no session).
func (wb *Web) session(r *http.Request) (session, bool) {
	var s session
	if wb.cfg.Keys == nil {
		return s, false
	}
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return s, false
	}
	if err := wb.openJSON(c.Value, sessionPurpose, &s); err != nil || s.Login == "" || time.Now().Unix() >= s.Expires {
		return session{}, false
	}
	return s, true
}

func (wb *Web) setSession(w http.ResponseWriter, s session) error {
	s.Expires = time.Now().Add(SessionLength).Unix()
	v, err := wb.sealJSON(s, sessionPurpose)
	if err != nil {
		return err
	}
	http.SetCookie(w, wb.cookie(sessionCookie, v, SessionLength))
	return nil
}

func (wb *Web) cookie(name, value string, maxAge time.Duration) *http.Cookie {
	c := &http.Cookie{Name: name, Value: value, Path: "/", HttpOnly: true, Secure: wb.secure, SameSite: http.SameSiteLaxMode}
	if maxAge > 0 {
		c.MaxAge = int(maxAge / time.Second)
		c.Expires = time.Now().Add(maxAge)
	} else {
		c.MaxAge = -1
	}
	return c
}

// randomString is n random bytes, base64url.
func randomString(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// localPath keeps a redirect target on the bot: a clean path of its own (with its query),
// or "/". A path is cleaned before it is checked, as http.Redirect cleans it before it
// sends it: "/./\\evil.example.com" must not become "/\\evil.example.com".
func localPath(next string) string {
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || !strings.HasPrefix(u.Path, "/") ||
		strings.ContainsAny(next, "\\\r\n\t") || strings.ContainsAny(u.Path, "\\\r\n\t") {
		return "/"
	}
	clean := path.Clean(u.EscapedPath())
	if strings.HasPrefix(clean, "//") {
		return "/"
	}
	if u.RawQuery != "" {
		clean += "?" + u.RawQuery
	}
	return clean
}
