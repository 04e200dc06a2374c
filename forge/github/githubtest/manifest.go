package githubtest

import (
	"encoding/json"
	"html/template"
	"net/http"
	"net/url"
	"time"
)

// Manifest is an App manifest as the bot posts it to GitHub's new-App form (GitHub's
// "Registering a GitHub App from a manifest").
type Manifest struct {
	Name           string `json:"name"`
	URL            string `json:"url"`
	HookAttributes struct {
		URL    string `json:"url"`
		Active *bool  `json:"active"`
	} `json:"hook_attributes"`
	RedirectURL        string            `json:"redirect_url"`
	CallbackURLs       []string          `json:"callback_urls"`
	Description        string            `json:"description"`
	Public             bool              `json:"public"`
	DefaultEvents      []string          `json:"default_events"`
	DefaultPermissions map[string]string `json:"default_permissions"`
	RequestOAuth       bool              `json:"request_oauth_on_install"`
	SetupURL           string            `json:"setup_url"`

	// Org is the organization the App was made for ("" for the user's own).
	Org     string `json:"-"`
	state   string
	expires time.Time
}

var createPage = template.Must(template.New("").Parse(`<!doctype html><title>Create GitHub App</title>
<h1>Create GitHub App {{.Name}}</h1>
<p>Webhook: {{.Hook}}</p>
<a id="create" href="{{.Next}}">Create GitHub App for {{.Owner}}</a>`))

// newAppFromManifest is GitHub's new-App form posted with a manifest: it shows the App to
// create, whose button sends the user to the manifest's redirect_url with a code.
func (s *Server) newAppFromManifest(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var m Manifest
	if err := json.Unmarshal([]byte(r.PostForm.Get("manifest")), &m); err != nil || m.URL == "" || m.HookAttributes.URL == "" || m.RedirectURL == "" {
		http.Error(w, "Invalid GitHub App configuration: the manifest needs url, hook_attributes.url and redirect_url", http.StatusUnprocessableEntity)
		return
	}
	m.Org, m.state, m.expires = r.PathValue("org"), r.URL.Query().Get("state"), time.Now().Add(time.Hour)
	code := random(10)
	s.mu.Lock()
	s.st.manifests[code] = &m
	s.mu.Unlock()
	next, err := url.Parse(m.RedirectURL)
	if err != nil {
		http.Error(w, err.Error(), http.StatusUnprocessableEntity)
		return
	}
	q := next.Query()
	q.Set("code", code)
	if m.state != "" {
		q.Set("state", m.state)
	}
	next.RawQuery = q.Encode()
	owner := m.Org
	if owner == "" {
		owner = "your account"
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = createPage.Execute(w, map[string]string{"Name": m.Name, "Hook": m.HookAttributes.URL, "Next": next.String(), "Owner": owner})
}

// convertManifest: POST /app-manifests/{code}/conversions, once per code within the hour;
// no authentication. It answers the App made: id, slug, pem, webhook_secret, client_id and
// client_secret.
func (s *Server) convertManifest(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.st.manifests[r.PathValue("code")]
	delete(s.st.manifests, r.PathValue("code"))
	if m == nil || time.Now().After(m.expires) {
		apiError(w, http.StatusNotFound, "Not Found")
		return
	}
	s.st.created = m
	if m.Name != "" {
		s.App.Slug = slugOf(m.Name)
	}
	owner := s.userJSON("octocat", 1, "User")
	if m.Org != "" {
		owner = s.accountJSON(m.Org)
	}
	reply(w, http.StatusCreated, map[string]any{
		"id": s.App.ID, "slug": s.App.Slug, "node_id": "A_1", "name": m.Name, "owner": owner, "description": m.Description,
		"external_url": m.URL, "html_url": s.URL + "/apps/" + s.App.Slug, "created_at": time.Now().UTC().Format(time.RFC3339),
		"permissions": m.DefaultPermissions, "events": m.DefaultEvents,
		"client_id": s.App.ClientID, "client_secret": s.App.ClientSecret, "webhook_secret": s.App.WebhookSecret, "pem": string(s.App.KeyPEM),
	})
}

// Created is the manifest of the App made through the manifest flow, nil before.
func (s *Server) Created() *Manifest {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st.created == nil {
		return nil
	}
	m := *s.st.created
	return &m
}

// slugOf is the slug GitHub makes of an App's name: lower case, runs of other characters
// as one dash.
func slugOf(name string) string {
	var out []rune
	dash := false
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			out, dash = append(out, r), false
		case r >= 'A' && r <= 'Z':
			out, dash = append(out, r+'a'-'A'), false
		case !dash && len(out) > 0:
			out, dash = append(out, '-'), true
		}
	}
	if dash {
		out = out[:len(out)-1]
	}
	return string(out)
}
