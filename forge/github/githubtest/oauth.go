package githubtest

import (
	"encoding/json"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// grant is an OAuth authorization code, for one user, once.
type grant struct {
	login, redirect string
	expires         time.Time
}

var authorizePage = template.Must(template.New("").Parse(`<!doctype html><title>Authorize {{.App}}</title>
<h1>Authorize {{.App}}</h1>
<form method="post" action="/login/oauth/authorize">
<input type="hidden" name="client_id" value="{{.ClientID}}">
<input type="hidden" name="redirect_uri" value="{{.Redirect}}">
<input type="hidden" name="state" value="{{.State}}">
<label>Sign in as <input id="login" name="login"></label>
<button id="authorize" type="submit">Authorize {{.App}}</button>
</form>`))

// authorize is GitHub's authorization page: whoever signs in there (the form names them)
// is sent back to redirect_uri with a code.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if msg := s.checkClient(q.Get("client_id"), q.Get("redirect_uri")); msg != "" {
		http.Error(w, msg, http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = authorizePage.Execute(w, map[string]string{"App": s.App.Slug, "ClientID": q.Get("client_id"), "Redirect": q.Get("redirect_uri"), "State": q.Get("state")})
}

// checkClient says what is wrong with an OAuth request of client id to redirect, "" when
// nothing: the client must be the App's, the redirect under one of its callback URLs.
func (s *Server) checkClient(id, redirect string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id != s.App.ClientID {
		return "The client_id is not an application's"
	}
	var callbacks []string
	if s.st.created != nil {
		callbacks = s.st.created.CallbackURLs
	}
	if len(callbacks) > 0 && !slices.ContainsFunc(callbacks, func(c string) bool { return strings.HasPrefix(redirect, c) }) {
		return "The redirect_uri MUST match the registered callback URL for this application."
	}
	return ""
}

// SignIn is a user's answer on the authorization page.
func (s *Server) signIn(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	redirect := r.PostForm.Get("redirect_uri")
	if msg := s.checkClient(r.PostForm.Get("client_id"), redirect); msg != "" {
		http.Error(w, msg, http.StatusBadRequest)
		return
	}
	login := r.PostForm.Get("login")
	s.mu.Lock()
	u := s.st.users[strings.ToLower(login)]
	code := random(10)
	if u != nil {
		s.st.codes[code] = &grant{login: u.Login, redirect: redirect, expires: time.Now().Add(10 * time.Minute)}
	}
	s.mu.Unlock()
	if u == nil {
		http.Error(w, "Incorrect username or password.", http.StatusUnauthorized)
		return
	}
	to, err := url.Parse(redirect)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	qs := to.Query()
	qs.Set("code", code)
	qs.Set("state", r.PostForm.Get("state"))
	to.RawQuery = qs.Encode()
	http.Redirect(w, r, to.String(), http.StatusFound)
}

// accessToken trades a code for a user's token: POST /login/oauth/access_token.
func (s *Server) accessToken(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	id, secret := r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	if u, p, ok := r.BasicAuth(); ok {
		id, secret = u, p
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.st.codes[r.PostForm.Get("code")]
	delete(s.st.codes, r.PostForm.Get("code"))
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	switch {
	case id != s.App.ClientID || secret != s.App.ClientSecret:
		json.NewEncoder(w).Encode(map[string]string{"error": "incorrect_client_credentials", "error_description": "The client_id and/or client_secret passed are incorrect."})
		return
	case g == nil || time.Now().After(g.expires) || (r.PostForm.Has("redirect_uri") && r.PostForm.Get("redirect_uri") != g.redirect):
		json.NewEncoder(w).Encode(map[string]string{"error": "bad_verification_code", "error_description": "The code passed is incorrect or expired."})
		return
	}
	tok := "ghu_" + random(18)
	s.st.tokens[tok] = &token{user: g.login, expires: time.Now().Add(8 * time.Hour)}
	json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "bearer", "scope": "", "expires_in": 28800})
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request, u *user) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.userJSON(u.Login, u.ID, "User")
	j["created_at"] = u.Created.Format(time.RFC3339)
	reply(w, http.StatusOK, j)
}

// admins reports whether login administers installation in: it is their own account, or
// they are an admin (owner) of its organization.
func (st *state) admins(in *installation, login string) bool {
	if strings.EqualFold(in.Account, login) {
		return true
	}
	o := st.orgs[strings.ToLower(in.Account)]
	return o != nil && slices.Contains(o.Admins, strings.ToLower(login))
}

// userInstallations: the App's installations the user may administer (GitHub lists those
// the user can access; the fake, those of the user's own account and of organizations they
// administer).
func (s *Server) userInstallations(w http.ResponseWriter, r *http.Request, u *user) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var all []*installation
	for _, in := range s.st.installs {
		if s.st.admins(in, u.Login) {
			all = append(all, in)
		}
	}
	slices.SortFunc(all, func(a, b *installation) int { return int(a.ID - b.ID) })
	var out []map[string]any
	for _, in := range page(w, r, all) {
		out = append(out, s.installationJSON(in))
	}
	reply(w, http.StatusOK, map[string]any{"total_count": len(all), "installations": nonNil(out)})
}

// userOrgMembership: GET /user/memberships/orgs/{org}, the signed-in user's role there.
func (s *Server) userOrgMembership(w http.ResponseWriter, r *http.Request, u *user) {
	s.membershipOf(w, r.PathValue("org"), u)
}

// orgMembership: GET /orgs/{org}/memberships/{username}; an installation reads its own
// organization's (the members permission).
func (s *Server) orgMembership(w http.ResponseWriter, r *http.Request, c caller) {
	s.mu.Lock()
	u := s.st.users[strings.ToLower(r.PathValue("login"))]
	in := c.installation
	s.mu.Unlock()
	if u == nil || (in != nil && !strings.EqualFold(in.Account, r.PathValue("org"))) {
		apiError(w, http.StatusNotFound, "Not Found")
		return
	}
	s.membershipOf(w, r.PathValue("org"), u)
}

func (s *Server) membershipOf(w http.ResponseWriter, orgLogin string, u *user) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.st.orgs[strings.ToLower(orgLogin)]
	if o == nil {
		apiError(w, http.StatusNotFound, "Not Found")
		return
	}
	role := ""
	if slices.Contains(o.Admins, strings.ToLower(u.Login)) {
		role = "admin"
	} else {
		for _, t := range o.Teams {
			if slices.Contains(t.Members, strings.ToLower(u.Login)) {
				role = "member"
			}
		}
	}
	if role == "" {
		apiError(w, http.StatusNotFound, "Not Found")
		return
	}
	reply(w, http.StatusOK, map[string]any{"state": "active", "role": role, "organization": s.userJSON(o.Login, o.ID, "Organization"), "user": s.userJSON(u.Login, u.ID, "User")})
}
