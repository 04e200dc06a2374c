package web

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/albatros-ci/albatros/archive"
	"github.com/albatros-ci/albatros/forge"
	"github.com/albatros-ci/albatros/forge/forgetest"
	"github.com/albatros-ci/albatros/registry"
)

// visibility is a forge that says whether repositories are private, and nothing else.
type visibility struct {
	*forgetest.Forge
	private bool
}

func (v visibility) IsPrivate(context.Context, forge.Repo) (bool, error) { return v.private, nil }

// someRecords is a registry where only the repositories in known have an entry.
type someRecords struct {
	fakeRecords
	known map[string]bool
	// entries, when set, are the entries of the repositories in known.
	entries map[string]*registry.Repo
}

func (s someRecords) Repo(_ context.Context, cloneURL string) (*registry.Repo, error) {
	if !s.known[cloneURL] {
		return nil, registry.ErrNotFound
	}
	if e := s.entries[cloneURL]; e != nil {
		return e, nil
	}
	return &registry.Repo{}, nil
}

const gitea = "https://git.example.com"

func historyServer(t *testing.T, private bool) (string, *archive.Archive) {
	t.Helper()
	dir, err := archive.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return historyServerOn(t, archive.New(dir, archive.Options{}), private)
}

func archiveBuilds(t *testing.T, a *archive.Archive, n int) {
	t.Helper()
	t0 := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	for i := range n {
		rec := archive.Record{
			Namespace: "ci", JobID: fmt.Sprintf("builder/dispatch-albatros-k%020d-%d-x", i, i), Builder: "builder",
			Repo: gitea + "/org/app.git", Commit: fmt.Sprintf("%02x%038x", i, 0), Branch: "main", Flavor: "default",
			Cause: "push", Sender: "alice", State: []string{"success", "failure"}[i%2], Reason: "done",
			Queued: t0.Add(time.Duration(i) * time.Minute),
		}
		if i%5 == 4 {
			rec.Branch, rec.PR = "feature", 9
		}
		if _, err := a.Write(context.Background(), rec, nil); err != nil {
			t.Fatal(err)
		}
	}
}

func fetch(t *testing.T, u string) (*http.Response, string) {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestHistoryPage(t *testing.T) {
	base, a := historyServer(t, false)
	archiveBuilds(t, a, 60)
	resp, page := fetch(t, base+"/builds/org/app")
	if resp.StatusCode != 200 {
		t.Fatalf("history: %d %s", resp.StatusCode, page)
	}
	if n := strings.Count(page, ">log</a>"); n != 50 {
		t.Errorf("%d builds on the first page, want 50", n)
	}
	newest, oldest := fmt.Sprintf("%02x%038x", 59, 0)[:10], fmt.Sprintf("%02x%038x", 0, 0)[:10]
	if !strings.Contains(page, newest) || strings.Contains(page, ">"+oldest+"<") {
		t.Errorf("the first page does not start with the newest build")
	}
	if !strings.Contains(page, `id="older"`) || !strings.Contains(page, "push by alice") {
		t.Errorf("no link to older builds, or no cause")
	}
	if !strings.Contains(page, "[![build](https://ci.example.com/badge/org/app.svg?branch=main)](https://ci.example.com/builds/org/app?branch=main)") {
		t.Errorf("no badge markdown on the page")
	}
	i := strings.Index(page, `id="older" href="`) + len(`id="older" href="`)
	older := strings.ReplaceAll(page[i:i+strings.Index(page[i:], `"`)], "&amp;", "&")
	_, page2 := fetch(t, base+older)
	if n := strings.Count(page2, ">log</a>"); n != 10 || !strings.Contains(page2, ">"+oldest+"<") {
		t.Errorf("second page: %d builds", n)
	}
	_, prs := fetch(t, base+"/builds/org/app?pr=9")
	if n := strings.Count(prs, ">log</a>"); n != 12 {
		t.Errorf("pull request 9: %d builds, want 12", n)
	}
	_, failed := fetch(t, base+"/builds/org/app?branch=main&state=failure")
	if n := strings.Count(failed, ">log</a>"); n != 24 || strings.Contains(failed, "✅") {
		t.Errorf("main's failures: %d builds", n)
	}
	for _, bad := range []string{"?pr=x", "?state=weird", "?after=../../etc", "?pr=1&branch=main"} {
		if resp, _ := fetch(t, base+"/builds/org/app"+bad); resp.StatusCode != 400 {
			t.Errorf("%s: %d, want 400", bad, resp.StatusCode)
		}
	}
	if resp, _ := fetch(t, base+"/builds/org/bad..name"); resp.StatusCode != 404 {
		t.Errorf("a name that is no repository's: %d", resp.StatusCode)
	}
}

func TestHistoryOfAPrivateRepository(t *testing.T) {
	base, a := historyServer(t, true)
	archiveBuilds(t, a, 3)
	resp, page := fetch(t, base+"/builds/org/app")
	if resp.StatusCode != http.StatusForbidden || strings.Contains(page, ">log</a>") {
		t.Errorf("a private repository's history to an anonymous visitor (nobody can sign in here): %d", resp.StatusCode)
	}
	if resp, body := fetch(t, base+"/badge/org/app.svg"); resp.StatusCode != 404 || strings.Contains(body, "<svg") {
		t.Errorf("a private repository's badge: %d", resp.StatusCode)
	}
}

func TestBadge(t *testing.T) {
	base, a := historyServer(t, false)
	if resp, body := fetch(t, base+"/badge/org/app.svg"); resp.StatusCode != 200 || !strings.Contains(body, "unknown") {
		t.Errorf("no build yet: %d %s", resp.StatusCode, body)
	}
	archiveBuilds(t, a, 4) // the newest push of main (3) failed
	base, _ = historyServerOn(t, a, false)
	resp, body := fetch(t, base+"/badge/org/app.svg?branch=main&flavor=default")
	if resp.StatusCode != 200 || !strings.Contains(body, "failing") || !strings.HasPrefix(body, "<svg") {
		t.Fatalf("badge: %d %s", resp.StatusCode, body)
	}
	if ct, cc := resp.Header.Get("Content-Type"), resp.Header.Get("Cache-Control"); ct != "image/svg+xml" || !strings.Contains(cc, "max-age=") {
		t.Errorf("headers: %q %q", ct, cc)
	}
	if _, body := fetch(t, base+"/badge/org/app.svg?branch=dev"); !strings.Contains(body, "unknown") {
		t.Errorf("a branch never built: %s", body)
	}
	for _, bad := range []string{"/badge/org/other.svg", "/badge/org/app.png", "/badge/org/app.svg?flavor=%3Cscript%3E"} {
		if resp, _ := fetch(t, base+bad); resp.StatusCode != 404 {
			t.Errorf("%s: %d, want 404", bad, resp.StatusCode)
		}
	}
}

// listCounting is a store that counts its listings.
type listCounting struct {
	archive.Store
	lists atomic.Int64
}

func (s *listCounting) List(ctx context.Context, prefix, after string, limit int) ([]string, error) {
	s.lists.Add(1)
	return s.Store.List(ctx, prefix, after, limit)
}

// A badge of a flavor the repository does not build is unknown, and asking for it costs
// the archive nothing, however many such names are asked for: a visitor cannot make the
// bot scan a busy branch's builds with names of their choosing.
func TestBadgeOfAnUndeclaredFlavorReadsNothing(t *testing.T) {
	dir, err := archive.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	st := &listCounting{Store: dir}
	a := archive.New(st, archive.Options{})
	archiveBuilds(t, a, 4)
	base, _ := historyServerOn(t, a, false, &registry.Repo{Flavors: []string{"default", "nix"}})
	if _, body := fetch(t, base+"/badge/org/app.svg?branch=main&flavor=default"); !strings.Contains(body, "failing") {
		t.Fatalf("a declared flavor: %s", body)
	}
	before := st.lists.Load()
	for i := range 20 {
		resp, body := fetch(t, fmt.Sprintf("%s/badge/org/app.svg?branch=main&flavor=x%d", base, i))
		if resp.StatusCode != 200 || !strings.Contains(body, "unknown") {
			t.Fatalf("undeclared flavor x%d: %d %s", i, resp.StatusCode, body)
		}
	}
	if n := st.lists.Load() - before; n != 0 {
		t.Errorf("20 badges of undeclared flavors listed the archive %d times, want none", n)
	}
	if _, body := fetch(t, base+"/badge/org/app.svg?branch=main&flavor=nix"); !strings.Contains(body, "unknown") {
		t.Errorf("a declared flavor never built: %s", body)
	}
}

// historyServerOn is historyServer on an archive of its own (already filled, say), with a
// fresh badge cache.
func historyServerOn(t *testing.T, a *archive.Archive, private bool, entry ...*registry.Repo) (string, *archive.Archive) {
	t.Helper()
	records := someRecords{known: map[string]bool{gitea + "/org/app.git": true}}
	if len(entry) > 0 {
		records.entries = map[string]*registry.Repo{gitea + "/org/app.git": entry[0]}
	}
	wb := New(Config{
		BaseURL: "https://ci.example.com", GiteaURL: gitea, Archive: a,
		Records: records,
		Forge: func(_ *registry.Repo, cloneURL string) (forge.Forge, forge.Repo, error) {
			return visibility{Forge: &forgetest.Forge{}, private: private}, forge.Repo{CloneURL: cloneURL}, nil
		},
		Log: slog.New(slog.DiscardHandler),
	})
	mux := http.NewServeMux()
	wb.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL, a
}

// A repository's history and badge are those of the builds made for whoever holds its name
// now: an organization that installs the bot on a name another organization gave up sees
// none of the earlier one's builds; and the name must be the bot's, exactly.
func TestHistoryIsTheNameHoldersOnly(t *testing.T) {
	dir, err := archive.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a := archive.New(dir, archive.Options{})
	archiveBuilds(t, a, 4) // a hand-written entry's: the newest push of main failed
	t0 := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	for i, state := range []string{"success", "success", "success"} {
		rec := archive.Record{
			Namespace: "ci", JobID: fmt.Sprintf("builder/dispatch-albatros-korg42-%d-x", i), Builder: "builder",
			Repo: gitea + "/org/app.git", OrgID: 42, Commit: fmt.Sprintf("42%038x", i), Branch: "main", Flavor: "default",
			Cause: "push", State: state, Queued: t0.Add(time.Duration(i) * time.Minute),
		}
		if _, err := a.Write(context.Background(), rec, nil); err != nil {
			t.Fatal(err)
		}
	}
	holders := []struct {
		name   string
		entry  *registry.Repo
		builds int
		badge  string
	}{
		{"a hand-written entry", &registry.Repo{}, 4, "failing"},
		{"organization 42's installation", &registry.Repo{Installed: true, OrgID: 42}, 3, "passing"},
		{"organization 43's installation", &registry.Repo{Installed: true, OrgID: 43}, 0, "unknown"},
	}
	for _, h := range holders {
		base, _ := historyServerOn(t, a, false, h.entry)
		resp, page := fetch(t, base+"/builds/org/app")
		if n := strings.Count(page, ">log</a>"); resp.StatusCode != 200 || n != h.builds || (h.builds != 3 && strings.Contains(page, "42000000")) {
			t.Errorf("%s: history %d with %d builds, want %d", h.name, resp.StatusCode, n, h.builds)
		}
		if _, body := fetch(t, base+"/badge/org/app.svg?branch=main"); !strings.Contains(body, h.badge) {
			t.Errorf("%s: badge %s, want %s", h.name, body, h.badge)
		}
	}
	base, _ := historyServerOn(t, a, false)
	for _, path := range []string{"/builds/Org/App", "/builds/org/gone", "/badge/ORG/app.svg"} {
		if resp, page := fetch(t, base+path); resp.StatusCode != 404 || strings.Contains(page, ">log</a>") {
			t.Errorf("%s, a name the bot does not build exactly: %d", path, resp.StatusCode)
		}
	}
}
