package web

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"time"
)

// Cookies of the pages, by their names over http. Over https they take the __Host- prefix,
// which a browser accepts only from the bot's own host, Secure, with Path=/ and no Domain:
// no other site under the same domain can set or shadow them.
const (
	sessionName = "albatros_session"
	flowName    = "albatros_oauth"
	hostPrefix  = "__Host-"
)

// SessionLength is how long a sign-in lasts.
const SessionLength = 12 * time.Hour

// flowLength is how long a sign-in through Gitea may take.
const flowLength = 10 * time.Minute

// liveFor is how long this replica trusts Consul's answer that a session was not signed
// out: a sign-out made on another replica may take as long to close the session here. A
// sign-out made on this replica applies here at once.
const liveFor = 3 * time.Second

// askFor bounds a question to Consul about a session.
const askFor = 5 * time.Second

// session is who is signed in, sealed in the session cookie.
type session struct {
	// ID names the session for signing out: random, made at sign-in, and kept when the same
	// user signs in again in the same browser (an install is such a sign-in), so that
	// signing out ends every cookie of the session.
	ID    string `json:"id"`
	Login string `json:"login"`
	// Forge is the forge the user signed in with (github; empty for gitea): a login names
	// nobody on another forge.
	Forge string `json:"forge,omitempty"`
	// UserID is the user's numeric id on GitHub: a login can be taken by someone else
	// once its user renames, an id cannot.
	UserID int64 `json:"uid,omitempty"`
	// Listed is set when the sign-in asked OwnerScopes and listed the organizations the
	// user owned then in Orgs, for the list of organizations to install on; every action
	// checks ownership again. A reader's sign-in (ReaderScopes) lists nothing.
	Listed bool     `json:"listed,omitempty"`
	Orgs   []string `json:"orgs,omitempty"`
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
	// Owner: the sign-in is for the organization pages or installing, and asks
	// OwnerScopes; otherwise it only identifies the user (ReaderScopes).
	Owner   bool  `json:"owner,omitempty"`
	Expires int64 `json:"exp"`
	// Forge is the forge signed in with (github; empty for gitea): a flow ends at its
	// own forge's callback only.
	Forge string `json:"forge,omitempty"`
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

// errNoSession is the answer for a request without a session: no cookie, or one that is
// tampered, foreign, expired, from before sessions had IDs, or signed out.
var errNoSession = errors.New("not signed in")

// session returns the request's session; ok is false without one, and also when whether it
// was signed out could not be asked (readSession tells the two apart).
func (wb *Web) session(r *http.Request) (session, bool) {
	s, err := wb.readSession(r)
	return s, err == nil
}

// readSession returns the request's session: errNoSession without a valid, unexpired one
// that was not signed out, and another error when Consul could not say whether it was
// signed out (the pages that need a session answer 503 then: guessing either way would let
// a signed-out cookie in, or send the user round Gitea's sign-in in a loop). The answer is
// found once per request that came through Register.
func (wb *Web) readSession(r *http.Request) (session, error) {
	if m, ok := r.Context().Value(sessionMemoKey{}).(*sessionMemo); ok {
		m.once.Do(func() { m.s, m.err = wb.checkSession(r) })
		return m.s, m.err
	}
	return wb.checkSession(r)
}

// sessionMemo holds a request's session once found.
type sessionMemo struct {
	once sync.Once
	s    session
	err  error
}

type sessionMemoKey struct{}

// memoSession gives each request a place for its session, found on first use.
func memoSession(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), sessionMemoKey{}, &sessionMemo{})))
	})
}

func (wb *Web) checkSession(r *http.Request) (session, error) {
	s, ok := wb.openSession(r)
	if !ok || wb.cfg.Sessions == nil {
		return session{}, errNoSession
	}
	now := time.Now()
	switch revoked, found := wb.signedOut.known(s.ID, now); {
	case found && revoked:
		return session{}, errNoSession
	case found:
		return s, nil
	}
	ctx, cancel := context.WithTimeout(r.Context(), askFor)
	defer cancel()
	revoked, err := wb.cfg.Sessions.Revoked(ctx, s.ID)
	if err != nil {
		return session{}, fmt.Errorf("whether the session of %s was signed out: %w", s.Login, err)
	}
	if revoked {
		wb.signedOut.revoke(s.ID, time.Unix(s.Expires, 0))
		return session{}, errNoSession
	}
	wb.signedOut.alive(s.ID, now)
	return s, nil
}

// openSession opens the request's session cookie: sealed by the bot's keys, unexpired, with
// an ID. Whether it was signed out is not asked.
func (wb *Web) openSession(r *http.Request) (session, bool) {
	var s session
	if wb.cfg.Keys == nil {
		return s, false
	}
	c, err := r.Cookie(wb.sessionCookie)
	if err != nil {
		return s, false
	}
	if err := wb.openJSON(c.Value, sessionPurpose, &s); err != nil || s.ID == "" || s.Login == "" || time.Now().Unix() >= s.Expires {
		return session{}, false
	}
	return s, true
}

// setSession seals s in the session cookie, for SessionLength from now; s gets an ID when
// it has none.
func (wb *Web) setSession(w http.ResponseWriter, s session) error {
	if s.ID == "" {
		s.ID = randomString(16)
	}
	s.Expires = time.Now().Add(SessionLength).Unix()
	v, err := wb.sealJSON(s, sessionPurpose)
	if err != nil {
		return err
	}
	// Just made, or just found open: the redirect that follows need not ask Consul.
	wb.signedOut.alive(s.ID, time.Now())
	http.SetCookie(w, wb.cookie(wb.sessionCookie, v, SessionLength))
	return nil
}

// cookie is a cookie of the pages. Over https it is Secure, which its __Host- name
// requires with Path=/ and no Domain (New names the cookies).
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

// revocations is what this replica knows of sessions signed out: those it signed out, or
// found signed out, until they expire; and those Consul said were not, for liveFor.
// Forgetting is safe: Consul is asked again.
type revocations struct {
	mu   sync.Mutex
	out  map[string]time.Time // ID: when the session expires
	live map[string]time.Time // ID: when Consul said it was not signed out
}

// maxKnown bounds each map of revocations.
const maxKnown = 10000

// known reports what is known of the session id at now: found is false when Consul must
// be asked.
func (rv *revocations) known(id string, now time.Time) (revoked, found bool) {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	if until, ok := rv.out[id]; ok && now.Before(until) {
		return true, true
	}
	if at, ok := rv.live[id]; ok && now.Sub(at) < liveFor {
		return false, true
	}
	return false, false
}

// revoke remembers the session id as signed out until until.
func (rv *revocations) revoke(id string, until time.Time) {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	delete(rv.live, id)
	if rv.out == nil || len(rv.out) >= maxKnown {
		kept := map[string]time.Time{}
		now := time.Now()
		for k, u := range rv.out {
			if now.Before(u) && len(kept) < maxKnown/2 {
				kept[k] = u
			}
		}
		rv.out = kept
	}
	rv.out[id] = until
}

// alive remembers that the session id was found not signed out at at.
func (rv *revocations) alive(id string, at time.Time) {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	if _, out := rv.out[id]; out {
		return
	}
	if rv.live == nil || len(rv.live) >= maxKnown {
		rv.live = map[string]time.Time{}
	}
	rv.live[id] = at
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
