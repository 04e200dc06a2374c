package e2e

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/albatros-ci/albatros/forge/forgetest"
)

// fakeGitHub speaks GitHub's documented REST API for commit statuses, and records them; it
// serves its one repository (GET /repos/{owner}/{repo}) as GitHub's published example shows
// a repository, public.
type fakeGitHub struct {
	token string
	repo  map[string]any
	mu    sync.Mutex
	got   []map[string]any // in the order received, each with "sha" and "repo" added
}

func (f *fakeGitHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+f.token {
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(`{"message":"Bad credentials","documentation_url":"https://docs.github.com/rest"}`))
		return
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	// POST /repos/{owner}/{repo}/statuses/{sha}
	case r.Method == http.MethodPost && len(parts) == 5 && parts[0] == "repos" && parts[3] == "statuses":
		var s map[string]any
		if err := json.NewDecoder(r.Body).Decode(&s); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		s["id"] = len(f.got) + 1
		s["sha"], s["repo"] = parts[4], parts[1]+"/"+parts[2]
		f.got = append(f.got, s)
		f.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(s)
	// GET /repos/{owner}/{repo}/commits/{ref}/statuses, newest first
	case r.Method == http.MethodGet && len(parts) == 6 && parts[3] == "commits" && parts[5] == "statuses":
		f.mu.Lock()
		var out []map[string]any
		for i := len(f.got) - 1; i >= 0; i-- {
			if f.got[i]["sha"] == parts[4] && f.got[i]["repo"] == parts[1]+"/"+parts[2] {
				out = append(out, f.got[i])
			}
		}
		f.mu.Unlock()
		json.NewEncoder(w).Encode(out)
	// GET /repos/{owner}/{repo}
	case r.Method == http.MethodGet && len(parts) == 3 && parts[0] == "repos":
		f.mu.Lock()
		repo := f.repo
		f.mu.Unlock()
		if repo == nil || repo["full_name"] != parts[1]+"/"+parts[2] {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		json.NewEncoder(w).Encode(repo)
	default:
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"message":"Not Found","documentation_url":"https://docs.github.com/rest"}`))
	}
}

func (f *fakeGitHub) states(sha string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, s := range f.got {
		if s["sha"] == sha {
			out = append(out, s["state"].(string))
		}
	}
	return out
}

func (f *fakeGitHub) last(sha string) map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := len(f.got) - 1; i >= 0; i-- {
		if f.got[i]["sha"] == sha {
			return f.got[i]
		}
	}
	return nil
}

// TestGitHubPushBuildsAndReports sends the bot GitHub's published push example, signed as
// GitHub signs, pointed at a repository the builder can clone; the build runs in Nomad and
// its statuses reach the GitHub API.
func TestGitHubPushBuildsAndReports(t *testing.T) {
	gh := &fakeGitHub{token: "ghp_e2e-" + t.Name()}
	api := httptest.NewServer(gh)
	defer api.Close()

	// The repository lives on the test's Gitea only so that the builder can clone it; for
	// the bot it is a GitHub repository (its entry's github field).
	p := newProject(t, entry{
		"hook":   map[string]string{"secret": "gh-secret"},
		"github": map[string]string{"url": api.URL + "/", "token": gh.token},
	}, "")
	sha := p.push("main", script(printEnv))

	// GitHub's own published example of a push delivery (see forge/forgetest/testdata/github).
	example, err := fs.ReadFile(forgetest.GitHub, "push_branch.json")
	if err != nil {
		t.Fatal(err)
	}
	var payload map[string]any
	if err := json.Unmarshal(example, &payload); err != nil {
		t.Fatal(err)
	}
	repo := payload["repository"].(map[string]any)
	repo["clone_url"], repo["full_name"], repo["name"], repo["html_url"] = p.repo.CloneURL, p.repo.FullName(), p.repo.Name, p.repo.HTMLURL
	repo["owner"].(map[string]any)["login"] = p.repo.Owner
	gh.mu.Lock()
	gh.repo = repo // the example's repository is public ("private": false)
	gh.mu.Unlock()
	payload["after"], payload["ref"] = sha, "refs/heads/main"
	body, _ := json.Marshal(payload)
	mac := hmac.New(sha256.New, []byte("gh-secret"))
	mac.Write(body)
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("X-GitHub-Event", "push")
	h.Set("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
	h.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))

	if code, answer := send(t, "/webhook/github", h, body); code != http.StatusAccepted {
		t.Fatalf("GitHub delivery answered %d %q", code, answer)
	}
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		if st := gh.states(sha); len(st) > 0 && st[len(st)-1] == "success" {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if st := gh.states(sha); len(st) != 2 || st[0] != "pending" || st[1] != "success" {
		t.Fatalf("statuses on GitHub: %v, want [pending success]", st)
	}
	last := gh.last(sha)
	link, _ := last["target_url"].(string)
	if last["context"] != "albatros/default" || last["repo"] != p.repo.FullName() || !strings.HasPrefix(link, bot(t).URL+"/logs/ci/") {
		t.Fatalf("final status %v", last)
	}
	_, page := get(t, link)
	if !strings.Contains(page, "COMMIT="+sha+" BRANCH=main FLAVOR=default") {
		t.Fatalf("log page:\n%s", page)
	}
	// A wrong signature is refused and reaches nothing.
	h.Set("X-Hub-Signature-256", "sha256="+strings.Repeat("0", 64))
	if code, _ := send(t, "/webhook/github", h, body); code != http.StatusForbidden {
		t.Fatalf("mis-signed GitHub delivery answered %d", code)
	}
}
