// Package githubtest is a fake of GitHub for tests: an httptest server that speaks the REST
// endpoints Albatros calls as GitHub documents them (status codes, pagination with Link,
// rate-limit headers, a GitHub App's JWT and installation tokens that expire, the App
// manifest conversion, OAuth sign-in), holding repositories, users, teams, pull requests and
// installations set up by the test, and recording what the bot writes (statuses, comments,
// reactions). Its web side serves what github.com serves the bot's users: the OAuth pages,
// the App manifest form's answer, and clones of its repositories (each passed on to a real
// git server the test names, a Gitea, so that a builder can clone them).
//
// It also makes deliveries as GitHub makes them: payloads in the shape of GitHub's
// published examples (forge/forgetest's testdata), filled with the fake's objects, signed
// with the App's webhook secret.
//
// It is for tests only; it does not pretend to be GitHub beyond what the bot calls.
package githubtest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v4"
)

// App is the fake's GitHub App: the one the bot acts as.
type App struct {
	ID   int64
	Slug string
	// Key is the App's private key, KeyPEM the same as GitHub hands it out (PKCS#1 PEM).
	Key    *rsa.PrivateKey
	KeyPEM []byte
	// WebhookSecret signs the deliveries (Deliver).
	WebhookSecret string
	// ClientID and ClientSecret are the App's OAuth client.
	ClientID, ClientSecret string
}

// BotID is the numeric id of the App's bot user, <slug>[bot], author of its comments.
const BotID = 41898282

// Server is the fake GitHub.
type Server struct {
	// URL is the web side (github.com's part), API the REST API's base with its trailing
	// slash (URL + "/api/v3/", as a GitHub Enterprise Server lays them out).
	URL, API string
	App      App
	// TokenTTL is how long an installation token lasts (an hour, as GitHub's).
	TokenTTL time.Duration

	srv *httptest.Server
	mu  sync.Mutex
	st  state
}

// New starts a fake GitHub with an App of its own; Close stops it.
func New() (*Server, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	s := &Server{
		App: App{
			ID: 4242, Slug: "albatros-ci", Key: key,
			KeyPEM:        pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}),
			WebhookSecret: "whsec-" + random(8), ClientID: "Iv1." + random(8), ClientSecret: random(20),
		},
		TokenTTL: time.Hour,
		st:       newState(),
	}
	s.srv = httptest.NewServer(s.routes())
	s.URL = s.srv.URL
	s.API = s.srv.URL + "/api/v3/"
	return s, nil
}

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

func random(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// routes is the API (under /api/v3/) and the web side.
func (s *Server) routes() http.Handler {
	api := http.NewServeMux()
	// As the App (JWT).
	api.HandleFunc("GET /app", s.asApp(s.getApp))
	api.HandleFunc("POST /app/installations/{id}/access_tokens", s.asApp(s.createToken))
	api.HandleFunc("GET /app/installations/{id}", s.asApp(s.getInstallation))
	api.HandleFunc("GET /app/installations", s.asApp(s.listInstallations))
	api.HandleFunc("POST /app-manifests/{code}/conversions", s.convertManifest)
	// As an installation (its token) or a signed-in user (an OAuth token).
	api.HandleFunc("GET /installation/repositories", s.asInstallation(s.installationRepos))
	api.HandleFunc("GET /user", s.asUser(s.getUser))
	api.HandleFunc("GET /user/installations", s.asUser(s.userInstallations))
	api.HandleFunc("GET /user/memberships/orgs/{org}", s.asUser(s.userOrgMembership))
	api.HandleFunc("GET /users/{login}", s.asAnyone(s.getUserByLogin))
	api.HandleFunc("GET /orgs/{org}", s.asAnyone(s.getOrg))
	api.HandleFunc("GET /orgs/{org}/memberships/{login}", s.asAnyone(s.orgMembership))
	api.HandleFunc("GET /orgs/{org}/teams/{slug}", s.asAnyone(s.getTeam))
	api.HandleFunc("GET /orgs/{org}/teams/{slug}/memberships/{login}", s.asAnyone(s.teamMembershipBySlug))
	api.HandleFunc("GET /organizations/{orgid}/team/{teamid}/memberships/{login}", s.asAnyone(s.teamMembershipByID))
	api.HandleFunc("GET /repos/{owner}/{repo}", s.onRepo(s.getRepo))
	api.HandleFunc("GET /repos/{owner}/{repo}/branches/{branch}", s.onRepo(s.getBranch))
	api.HandleFunc("POST /repos/{owner}/{repo}/statuses/{sha}", s.onRepo(s.createStatus))
	api.HandleFunc("GET /repos/{owner}/{repo}/commits/{ref}/statuses", s.onRepo(s.listStatuses))
	api.HandleFunc("GET /repos/{owner}/{repo}/collaborators/{login}/permission", s.onRepo(s.permission))
	api.HandleFunc("GET /repos/{owner}/{repo}/issues/{number}/comments", s.onRepo(s.listComments))
	api.HandleFunc("POST /repos/{owner}/{repo}/issues/{number}/comments", s.onRepo(s.createComment))
	api.HandleFunc("PATCH /repos/{owner}/{repo}/issues/comments/{id}", s.onRepo(s.editComment))
	api.HandleFunc("POST /repos/{owner}/{repo}/issues/comments/{id}/reactions", s.onRepo(s.react))
	api.HandleFunc("GET /repos/{owner}/{repo}/pulls", s.onRepo(s.listPulls))
	api.HandleFunc("GET /repos/{owner}/{repo}/pulls/{number}", s.onRepo(s.getPull))
	api.HandleFunc("GET /repos/{owner}/{repo}/pulls/{number}/commits", s.onRepo(s.pullCommits))

	web := http.NewServeMux()
	web.Handle("/api/v3/", http.StripPrefix("/api/v3", api))
	web.HandleFunc("GET /login/oauth/authorize", s.authorize)
	web.HandleFunc("POST /login/oauth/authorize", s.signIn)
	web.HandleFunc("POST /login/oauth/access_token", s.accessToken)
	web.HandleFunc("POST /settings/apps/new", s.newAppFromManifest)
	web.HandleFunc("POST /organizations/{org}/settings/apps/new", s.newAppFromManifest)
	web.HandleFunc("/{owner}/{repo}/", s.clone)
	return web
}

// apiError answers as GitHub does: a JSON message and its documentation URL.
func apiError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"message": msg, "documentation_url": "https://docs.github.com/rest"})
}

func reply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// caller is who a request comes from.
type caller struct {
	app          bool
	installation *installation // an installation token's
	user         *user         // an OAuth token's
}

// who reads a request's credentials; ok is false, and the 401 answered, when they are not
// good.
func (s *Server) who(w http.ResponseWriter, r *http.Request) (caller, bool) {
	auth := r.Header.Get("Authorization")
	scheme, cred, _ := strings.Cut(auth, " ")
	if cred == "" {
		apiError(w, http.StatusUnauthorized, "Requires authentication")
		return caller{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if strings.EqualFold(scheme, "bearer") && strings.Count(cred, ".") == 2 {
		if err := s.checkJWT(cred); err != nil {
			apiError(w, http.StatusUnauthorized, "A JSON web token could not be decoded: "+err.Error())
			return caller{}, false
		}
		return caller{app: true}, true
	}
	tok, ok := s.st.tokens[cred]
	if !ok || (!tok.expires.IsZero() && time.Now().After(tok.expires)) || tok.revoked {
		apiError(w, http.StatusUnauthorized, "Bad credentials")
		return caller{}, false
	}
	if tok.installation != 0 {
		in := s.st.installs[tok.installation]
		if in == nil || in.suspended {
			apiError(w, http.StatusUnauthorized, "Bad credentials")
			return caller{}, false
		}
		return caller{installation: in}, true
	}
	return caller{user: s.st.users[strings.ToLower(tok.user)]}, true
}

// checkJWT checks an App's JWT as GitHub does: RS256 with the App's key, issued by its id,
// not expired, lasting at most ten minutes.
func (s *Server) checkJWT(raw string) error {
	claims := &jwt.RegisteredClaims{}
	_, err := jwt.ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) {
		if t.Method != jwt.SigningMethodRS256 {
			return nil, fmt.Errorf("alg %v", t.Header["alg"])
		}
		return &s.App.Key.PublicKey, nil
	})
	if err != nil {
		return err
	}
	if claims.Issuer != strconv.FormatInt(s.App.ID, 10) {
		return fmt.Errorf("issuer %q", claims.Issuer)
	}
	if claims.ExpiresAt == nil || claims.IssuedAt == nil || claims.ExpiresAt.Sub(claims.IssuedAt.Time) > 10*time.Minute {
		return fmt.Errorf("'Expiration time' claim ('exp') is too far in the future")
	}
	s.st.jwts++
	return nil
}

// rate puts GitHub's rate-limit headers on an answer to c, counting the request; ok is
// false, and the 403 answered, when c has none left.
func (s *Server) rate(w http.ResponseWriter, c caller) bool {
	s.mu.Lock()
	key := "app"
	switch {
	case c.installation != nil:
		key = "installation:" + strconv.FormatInt(c.installation.ID, 10)
	case c.user != nil:
		key = "user:" + c.user.Login
	}
	rl, ok := s.st.rates[key]
	if !ok {
		rl = &rateLimit{limit: 5000, remaining: 5000, reset: time.Now().Add(time.Hour)}
		s.st.rates[key] = rl
	}
	if time.Now().After(rl.reset) {
		rl.remaining, rl.reset = rl.limit, time.Now().Add(time.Hour)
	}
	left := rl.remaining > 0
	if left {
		rl.remaining--
	}
	h := w.Header()
	h.Set("X-RateLimit-Limit", strconv.Itoa(rl.limit))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(rl.remaining))
	h.Set("X-RateLimit-Used", strconv.Itoa(rl.limit-rl.remaining))
	h.Set("X-RateLimit-Reset", strconv.FormatInt(rl.reset.Unix(), 10))
	h.Set("X-RateLimit-Resource", "core")
	s.mu.Unlock()
	if !left {
		apiError(w, http.StatusForbidden, "API rate limit exceeded for installation. If you reach out to GitHub Support for help, please include the request ID.")
	}
	return left
}

// asApp serves what only the App itself (its JWT) may ask.
func (s *Server) asApp(h func(http.ResponseWriter, *http.Request)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, ok := s.who(w, r)
		if !ok {
			return
		}
		if !c.app {
			apiError(w, http.StatusUnauthorized, "A JSON web token could not be decoded")
			return
		}
		if s.rate(w, c) {
			s.count(r)
			h(w, r)
		}
	}
}

// asInstallation serves what only an installation's token may ask.
func (s *Server) asInstallation(h func(http.ResponseWriter, *http.Request, *installation)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, ok := s.who(w, r)
		if !ok {
			return
		}
		if c.installation == nil {
			apiError(w, http.StatusForbidden, "This endpoint requires an installation access token")
			return
		}
		if s.rate(w, c) {
			s.count(r)
			h(w, r, c.installation)
		}
	}
}

// asUser serves what only a signed-in user's token may ask.
func (s *Server) asUser(h func(http.ResponseWriter, *http.Request, *user)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, ok := s.who(w, r)
		if !ok {
			return
		}
		if c.user == nil {
			apiError(w, http.StatusForbidden, "Resource not accessible by integration")
			return
		}
		if s.rate(w, c) {
			s.count(r)
			h(w, r, c.user)
		}
	}
}

// asAnyone serves what any token may read.
func (s *Server) asAnyone(h func(http.ResponseWriter, *http.Request, caller)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, ok := s.who(w, r)
		if !ok {
			return
		}
		if c.app {
			apiError(w, http.StatusForbidden, "A JSON web token may not read this")
			return
		}
		if s.rate(w, c) {
			s.count(r)
			h(w, r, c)
		}
	}
}

// onRepo serves a repository's endpoints to who may see it: an installation that holds
// it (or, to read, any public repository, as GitHub lets it), or a user who can read it.
// Any other gets GitHub's 404.
func (s *Server) onRepo(h func(http.ResponseWriter, *http.Request, *repo, caller)) http.HandlerFunc {
	return s.asAnyone(func(w http.ResponseWriter, r *http.Request, c caller) {
		s.mu.Lock()
		rp := s.st.repos[strings.ToLower(r.PathValue("owner")+"/"+r.PathValue("repo"))]
		visible := rp != nil && (s.st.sees(c, rp) || (r.Method == http.MethodGet && c.installation != nil && !rp.Private))
		s.mu.Unlock()
		if !visible {
			apiError(w, http.StatusNotFound, "Not Found")
			return
		}
		h(w, r, rp, c)
	})
}

// count records a request served, by method and path.
func (s *Server) count(r *http.Request) {
	s.mu.Lock()
	s.st.requests = append(s.st.requests, r.Method+" "+r.URL.Path)
	s.mu.Unlock()
}

// clone passes a git request for a repository on to the git server it is cloned from.
func (s *Server) clone(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	name := strings.TrimSuffix(r.PathValue("repo"), ".git")
	rp := s.st.repos[strings.ToLower(r.PathValue("owner")+"/"+name)]
	s.mu.Unlock()
	if rp == nil || rp.cloneFrom == "" || !strings.HasSuffix(r.PathValue("repo"), ".git") {
		http.NotFound(w, r)
		return
	}
	target, err := url.Parse(rp.cloneFrom)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	rest := strings.TrimPrefix(r.URL.Path, "/"+r.PathValue("owner")+"/"+r.PathValue("repo"))
	proxy := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.Out.URL.Scheme, pr.Out.URL.Host = target.Scheme, target.Host
		pr.Out.URL.Path = strings.TrimSuffix(target.Path, "/") + rest
		pr.Out.URL.RawPath = ""
		pr.Out.Host = target.Host
		if u := target.User; u != nil {
			p, _ := u.Password()
			pr.Out.SetBasicAuth(u.Username(), p)
		}
	}}
	proxy.ServeHTTP(w, r)
}
