package github_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"unicode/utf8"

	"github.com/albatros-ci/albatros/forge"
	"github.com/albatros-ci/albatros/forge/github"
)

const (
	token = "ghp_16C7e42F292c6912E7710c838347Ae178B4a"
	sha   = "6dcb09b5b57875f334f61aebed695e2e4193db5e"
)

var helloWorld = forge.Repo{CloneURL: "https://github.com/octocat/Hello-World.git", FullName: "octocat/Hello-World",
	Owner: "octocat", Name: "Hello-World", HTMLURL: "https://github.com/octocat/Hello-World"}

// repoStatus is a commit status as GitHub's REST API documents it
// (https://docs.github.com/rest/commits/statuses).
type repoStatus struct {
	URL         string `json:"url"`
	AvatarURL   string `json:"avatar_url"`
	ID          int64  `json:"id"`
	NodeID      string `json:"node_id"`
	State       string `json:"state"`
	Description string `json:"description"`
	TargetURL   string `json:"target_url"`
	Context     string `json:"context"`
	CreatedAt   string `json:"created_at"`
	UpdatedAt   string `json:"updated_at"`
	Creator     struct {
		Login string `json:"login"`
		ID    int64  `json:"id"`
		Type  string `json:"type"`
	} `json:"creator"`
}

// request is one request the fake received.
type request struct {
	Method, Path, Authorization string
	Body                        map[string]any
}

// fakeGitHub speaks GitHub's REST API for commit statuses, under an optional path prefix
// (/api/v3 on GitHub Enterprise Server): it keeps the statuses written, validates them as
// GitHub documents (401 without the token, 422 for a bad state or a description over 140
// characters), and records every request.
type fakeGitHub struct {
	prefix string

	mu       sync.Mutex
	requests []request
	statuses map[string][]repoStatus // by owner/repo@sha, oldest first
	nextID   int64
}

func newFake(t *testing.T, prefix string) (*fakeGitHub, *httptest.Server) {
	f := &fakeGitHub{prefix: prefix, statuses: map[string][]repoStatus{}, nextID: 1}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeGitHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	var body map[string]any
	_ = json.Unmarshal(raw, &body)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, request{Method: r.Method, Path: r.URL.Path, Authorization: r.Header.Get("Authorization"), Body: body})

	if r.Header.Get("Authorization") != "Bearer "+token {
		reply(w, http.StatusUnauthorized, map[string]string{"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"})
		return
	}
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, f.prefix+"/"), "/")
	switch {
	case r.Method == http.MethodPost && len(parts) == 5 && parts[0] == "repos" && parts[3] == "statuses":
		f.create(w, parts[1]+"/"+parts[2], parts[4], body)
	case r.Method == http.MethodGet && len(parts) == 6 && parts[0] == "repos" && parts[3] == "commits" && parts[5] == "statuses":
		key := parts[1] + "/" + parts[2] + "@" + parts[4]
		list := slices.Clone(f.statuses[key])
		slices.Reverse(list) // GitHub lists newest first
		reply(w, http.StatusOK, list)
	default:
		reply(w, http.StatusNotFound, map[string]string{"message": "Not Found", "documentation_url": "https://docs.github.com/rest"})
	}
}

func (f *fakeGitHub) create(w http.ResponseWriter, repo, commit string, body map[string]any) {
	s := func(k string) string { v, _ := body[k].(string); return v }
	invalid := func(field, msg string) {
		reply(w, http.StatusUnprocessableEntity, map[string]any{
			"message":           "Validation Failed",
			"errors":            []map[string]string{{"resource": "Status", "code": "custom", "field": field, "message": msg}},
			"documentation_url": "https://docs.github.com/rest/commits/statuses#create-a-commit-status",
		})
	}
	if !slices.Contains([]string{"error", "failure", "pending", "success"}, s("state")) {
		invalid("state", "state is not included in the list")
		return
	}
	if utf8.RuneCountInString(s("description")) > 140 {
		invalid("description", "description is too long (maximum is 140 characters)")
		return
	}
	st := documented(repo, commit, repoStatus{ID: f.nextID, State: s("state"), Description: s("description"), TargetURL: s("target_url"), Context: s("context")})
	f.nextID++
	f.statuses[repo+"@"+commit] = append(f.statuses[repo+"@"+commit], st)
	reply(w, http.StatusCreated, st)
}

func reply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// documented fills in the fields GitHub returns with every status, as in its example.
func documented(repo, commit string, st repoStatus) repoStatus {
	st.URL = fmt.Sprintf("https://api.github.com/repos/%s/statuses/%s", repo, commit)
	st.AvatarURL = "https://github.com/images/error/octocat_happy.gif"
	st.NodeID = fmt.Sprintf("MDY6U3RhdHVz%d", st.ID)
	st.CreatedAt, st.UpdatedAt = "2012-07-20T01:19:13Z", "2012-07-20T01:19:13Z"
	st.Creator.Login, st.Creator.ID, st.Creator.Type = "octocat", 1, "User"
	return st
}

// seed stores statuses of repo@commit as if written in this order.
func (f *fakeGitHub) seed(repo, commit string, list ...repoStatus) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, st := range list {
		f.statuses[repo+"@"+commit] = append(f.statuses[repo+"@"+commit], documented(repo, commit, st))
	}
}

func (f *fakeGitHub) recorded() []request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.requests)
}

func newClient(t *testing.T, apiURL, tok string) *github.Client {
	t.Helper()
	c, err := github.New(apiURL, tok, nil)
	if err != nil {
		t.Fatalf("New(%q): %v", apiURL, err)
	}
	return c
}

func TestSetStatus(t *testing.T) {
	f, srv := newFake(t, "")
	c := newClient(t, srv.URL, token)
	st := forge.Status{Repo: helloWorld, Commit: sha, State: forge.StatePending, Context: "albatros/default",
		Description: "building", TargetURL: "https://ci.example.com/logs/ci/builder/dispatch-1"}
	if err := c.SetStatus(context.Background(), st); err != nil {
		t.Fatal(err)
	}
	reqs := f.recorded()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	r := reqs[0]
	want := map[string]any{"state": "pending", "target_url": st.TargetURL, "description": "building", "context": "albatros/default"}
	if r.Method != http.MethodPost || r.Path != "/repos/octocat/Hello-World/statuses/"+sha || r.Authorization != "Bearer "+token {
		t.Errorf("request %s %s, Authorization %q", r.Method, r.Path, r.Authorization)
	}
	for k, v := range want {
		if r.Body[k] != v {
			t.Errorf("body %s = %v, want %v", k, r.Body[k], v)
		}
	}
}

func TestSetStatusCutsLongDescriptions(t *testing.T) {
	f, srv := newFake(t, "")
	c := newClient(t, srv.URL, token)
	exact := strings.Repeat("ü", 140) // 140 characters, 280 bytes: not cut
	long := "exit status 1: " + strings.Repeat("é", 300)
	for _, desc := range []string{exact, long} {
		st := forge.Status{Repo: helloWorld, Commit: sha, State: forge.StateFailure, Context: "albatros/default", Description: desc}
		if err := c.SetStatus(context.Background(), st); err != nil {
			t.Fatalf("%d characters: %v", utf8.RuneCountInString(desc), err)
		}
	}
	reqs := f.recorded()
	if got := reqs[0].Body["description"]; got != exact {
		t.Errorf("a 140-character description became %q", got)
	}
	got, _ := reqs[1].Body["description"].(string)
	if utf8.RuneCountInString(got) != 140 || !strings.HasSuffix(got, "…") || !strings.HasPrefix(long, strings.TrimSuffix(got, "…")) || !utf8.ValidString(got) {
		t.Errorf("a long description became %q (%d characters)", got, utf8.RuneCountInString(got))
	}
}

// GitHub's 422 comes back as an error that names what was being written.
func TestSetStatusError(t *testing.T) {
	_, srv := newFake(t, "")
	c := newClient(t, srv.URL, token)
	err := c.SetStatus(context.Background(), forge.Status{Repo: helloWorld, Commit: sha, State: "bogus", Context: "albatros/nix"})
	if err == nil {
		t.Fatal("SetStatus of an invalid state succeeded")
	}
	for _, s := range []string{"albatros/nix", "bogus", "octocat/Hello-World", sha[:10], "422", "Validation Failed"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %q", err, s)
		}
	}

	bad := newClient(t, srv.URL, "not-the-token")
	if _, _, err := bad.LatestStatus(context.Background(), helloWorld, sha, "albatros/nix"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("LatestStatus with a wrong token = %v, want a 401", err)
	}
}

func TestLatestStatus(t *testing.T) {
	f, srv := newFake(t, "")
	c := newClient(t, srv.URL, token)
	ctx := context.Background()
	// Written in this order, so listed newest first: the highest id of a context is neither
	// the first listed nor the first of its context.
	f.seed("octocat/Hello-World", sha,
		repoStatus{ID: 3, State: "error", Context: "albatros/default"},
		repoStatus{ID: 8, State: "success", Context: "albatros/default", Description: "passed", TargetURL: "https://ci.example.com/8"},
		repoStatus{ID: 9, State: "failure", Context: "albatros/nix"},
		repoStatus{ID: 5, State: "pending", Context: "albatros/default"},
	)
	got, ok, err := c.LatestStatus(ctx, helloWorld, sha, "albatros/default")
	want := forge.Status{Repo: helloWorld, Commit: sha, State: forge.StateSuccess, Context: "albatros/default", Description: "passed", TargetURL: "https://ci.example.com/8"}
	if err != nil || !ok || got != want {
		t.Errorf("LatestStatus = %+v, %v, %v; want %+v", got, ok, err, want)
	}
	if _, ok, err := c.LatestStatus(ctx, helloWorld, sha, "albatros/other"); ok || err != nil {
		t.Errorf("LatestStatus of a context without statuses = %v, %v", ok, err)
	}
	r := f.recorded()[0]
	if r.Method != http.MethodGet || r.Path != "/repos/octocat/Hello-World/commits/"+sha+"/statuses" || r.Authorization != "Bearer "+token {
		t.Errorf("request %s %s, Authorization %q", r.Method, r.Path, r.Authorization)
	}

	// What SetStatus writes, LatestStatus reads back.
	other := strings.Repeat("a", 40)
	for _, s := range []forge.State{forge.StatePending, forge.StateFailure} {
		if err := c.SetStatus(ctx, forge.Status{Repo: helloWorld, Commit: other, State: s, Context: "albatros/default", Description: string(s)}); err != nil {
			t.Fatal(err)
		}
	}
	if got, ok, err := c.LatestStatus(ctx, helloWorld, other, "albatros/default"); err != nil || !ok || got.State != forge.StateFailure || got.Description != "failure" {
		t.Errorf("LatestStatus after pending, failure = %+v, %v, %v", got, ok, err)
	}
}

// A GitHub Enterprise Server's API lives under /api/v3/; the base is taken as given, with or
// without its final slash.
func TestEnterpriseBaseURL(t *testing.T) {
	for _, base := range []string{"/api/v3/", "/api/v3"} {
		f, srv := newFake(t, "/api/v3")
		c := newClient(t, srv.URL+base, token)
		ctx := context.Background()
		if err := c.SetStatus(ctx, forge.Status{Repo: helloWorld, Commit: sha, State: forge.StateSuccess, Context: "albatros/default"}); err != nil {
			t.Fatalf("%s: SetStatus: %v", base, err)
		}
		if _, ok, err := c.LatestStatus(ctx, helloWorld, sha, "albatros/default"); err != nil || !ok {
			t.Fatalf("%s: LatestStatus: %v, %v", base, ok, err)
		}
		var paths []string
		for _, r := range f.recorded() {
			paths = append(paths, r.Method+" "+r.Path)
		}
		want := []string{"POST /api/v3/repos/octocat/Hello-World/statuses/" + sha, "GET /api/v3/repos/octocat/Hello-World/commits/" + sha + "/statuses"}
		if !slices.Equal(paths, want) {
			t.Errorf("%s: requests %q, want %q", base, paths, want)
		}
	}
}

// roundTripper answers every request with a created status and records where it went.
type roundTripper struct {
	mu   sync.Mutex
	reqs []*http.Request
}

func (rt *roundTripper) RoundTrip(r *http.Request) (*http.Response, error) {
	rt.mu.Lock()
	rt.reqs = append(rt.reqs, r)
	rt.mu.Unlock()
	return &http.Response{StatusCode: http.StatusCreated, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader(`{"id":1,"state":"success","context":"albatros/default"}`)), Request: r}, nil
}

// Without an API URL, or with github.com's, the client talks to api.github.com through the
// given HTTP client.
func TestNewGitHubCom(t *testing.T) {
	for _, apiURL := range []string{"", "https://api.github.com/", "https://api.github.com"} {
		rt := &roundTripper{}
		c, err := github.New(apiURL, token, &http.Client{Transport: rt})
		if err != nil {
			t.Fatalf("New(%q): %v", apiURL, err)
		}
		if err := c.SetStatus(context.Background(), forge.Status{Repo: helloWorld, Commit: sha, State: forge.StateSuccess, Context: "albatros/default"}); err != nil {
			t.Fatalf("New(%q): SetStatus: %v", apiURL, err)
		}
		if len(rt.reqs) != 1 {
			t.Fatalf("New(%q): %d requests through the given client, want 1", apiURL, len(rt.reqs))
		}
		r := rt.reqs[0]
		if got := r.URL.String(); got != "https://api.github.com/repos/octocat/Hello-World/statuses/"+sha || r.Header.Get("Authorization") != "Bearer "+token {
			t.Errorf("New(%q): request to %s, Authorization %q", apiURL, got, r.Header.Get("Authorization"))
		}
	}
}

func TestNewErrors(t *testing.T) {
	if _, err := github.New("", "", nil); err == nil {
		t.Error("New without a token succeeded")
	}
	for _, apiURL := range []string{"ftp://ghe.example.com/api/v3/", "ghe.example.com/api/v3", "http://", "http://ghe:port/"} {
		if _, err := github.New(apiURL, token, nil); err == nil {
			t.Errorf("New(%q) succeeded", apiURL)
		}
	}
}

func TestRepoFromCloneURL(t *testing.T) {
	tests := []struct {
		clone string
		want  forge.Repo
	}{
		{"https://github.com/octocat/Hello-World.git", helloWorld},
		{"https://github.com/octocat/Hello-World",
			forge.Repo{CloneURL: "https://github.com/octocat/Hello-World", FullName: "octocat/Hello-World", Owner: "octocat", Name: "Hello-World", HTMLURL: "https://github.com/octocat/Hello-World"}},
		{"https://ghe.example.com/org/my.repo.git",
			forge.Repo{CloneURL: "https://ghe.example.com/org/my.repo.git", FullName: "org/my.repo", Owner: "org", Name: "my.repo", HTMLURL: "https://ghe.example.com/org/my.repo"}},
		// The clone URL stays as given (it is the registry's key); the web page carries no
		// credentials.
		{"https://x-access-token:s3cret@github.com/octocat/Hello-World.git",
			forge.Repo{CloneURL: "https://x-access-token:s3cret@github.com/octocat/Hello-World.git", FullName: "octocat/Hello-World", Owner: "octocat", Name: "Hello-World", HTMLURL: "https://github.com/octocat/Hello-World"}},
	}
	for _, tt := range tests {
		if got, err := github.RepoFromCloneURL(tt.clone); err != nil || got != tt.want {
			t.Errorf("RepoFromCloneURL(%q) = %+v, %v; want %+v", tt.clone, got, err, tt.want)
		}
	}
	for _, clone := range []string{
		"https://github.com/", "https://github.com/octocat", "https://github.com/octocat.git", "https://github.com//Hello-World.git",
		"https://github.com/octocat/.git", "https://github.com/octocat/Hello-World/", "https://github.com/octocat/Hello-World/tree/main",
		"git@github.com:octocat/Hello-World.git", "ssh://git@github.com/octocat/Hello-World.git", "https:///octocat/Hello-World.git",
		"https://github.com/octocat/%zz.git",
	} {
		if got, err := github.RepoFromCloneURL(clone); err == nil {
			t.Errorf("RepoFromCloneURL(%q) = %+v, want an error", clone, got)
		}
	}
}

// A redirect to another host is refused: the token must not follow it there.
func TestTokenDoesNotFollowRedirectsToOtherHosts(t *testing.T) {
	var leaked atomic.Bool
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			leaked.Store(true)
		}
		w.WriteHeader(http.StatusCreated)
		w.Write([]byte(`{}`))
	}))
	defer elsewhere.Close()
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer api.Close()

	c, err := github.New(api.URL+"/", "ghp_secret", nil)
	if err != nil {
		t.Fatal(err)
	}
	err = c.SetStatus(context.Background(), forge.Status{
		Repo:   forge.Repo{Owner: "o", Name: "r", FullName: "o/r"},
		Commit: strings.Repeat("a", 40), State: forge.StatePending, Context: "albatros/default",
	})
	if err == nil || !strings.Contains(err.Error(), "refused a redirect") {
		t.Fatalf("SetStatus through a cross-host redirect: %v", err)
	}
	if leaked.Load() {
		t.Fatal("the token reached another host")
	}
}
