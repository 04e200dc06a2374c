package server_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/albatros-ci/albatros/archive"
	"github.com/albatros-ci/albatros/orchestrator/orchestratortest"
	"github.com/albatros-ci/albatros/registry"
	"github.com/albatros-ci/albatros/registry/registrytest"
	"github.com/albatros-ci/albatros/server"
	"github.com/albatros-ci/albatros/webhook"
)

// brokenStore fails every read.
type brokenStore struct{ archive.Store }

func (brokenStore) Get(context.Context, string) (io.ReadCloser, error) {
	return nil, errors.New("s3: connection refused")
}

// gate records the repositories whose logs were asked for, and refuses them all when deny.
type gate struct {
	deny  bool
	asked []string
}

func (g *gate) AllowLog(w http.ResponseWriter, r *http.Request, cloneURL string) bool {
	g.asked = append(g.asked, cloneURL)
	if g.deny {
		http.Error(w, "private", http.StatusForbidden)
	}
	return !g.deny
}

const archivedText = "archived: token=***\n\x1b[31mred\x1b[0m\n"

func archiveFixture(t *testing.T, builds *orchestratortest.Fake, st archive.Store, logs *gate, tune ...func(*server.Config)) string {
	t.Helper()
	repos := &registrytest.Fake{Repos: map[string]*registry.Repo{repoURL: currentEntry()}}
	intake := webhook.New(repos, &fakeHandler{}, quiet(), webhook.Options{})
	cfg := server.Config{Intake: intake, Builds: builds, Repos: repos, Namespace: defaultNS, Log: quiet(), Archive: archive.New(st, archive.Options{})}
	if logs != nil {
		cfg.Logs = logs
	}
	for _, f := range tune {
		f(&cfg)
	}
	srv := httptest.NewServer(server.New(cfg))
	t.Cleanup(func() { srv.Close(); intake.Wait() })
	return srv.URL
}

func archiveBuild(t *testing.T) archive.Store {
	t.Helper()
	return archiveLog(t, archivedText)
}

func archiveLog(t *testing.T, text string, orgID ...int64) archive.Store {
	t.Helper()
	st, err := archive.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	rec := archive.Record{
		Namespace: defaultNS, JobID: buildID, Builder: "builder", Repo: repoURL, Commit: commit, Branch: "main", Flavor: "nix",
		State: "failure", Reason: "the build failed with exit code 3", Queued: time.Now().Add(-time.Hour),
	}
	if len(orgID) > 0 {
		rec.OrgID = orgID[0]
	}
	logs := func(_ context.Context, stream string, w io.Writer) error {
		if stream == "stdout" {
			_, err := io.WriteString(w, text)
			return err
		}
		return nil
	}
	if _, err := archive.New(st, archive.Options{}).Write(context.Background(), rec, logs); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestArchivedLogOnceNomadHasCollectedIt(t *testing.T) {
	st := archiveBuild(t)
	g := &gate{}
	base := archiveFixture(t, &orchestratortest.Fake{}, st, g) // Nomad knows nothing
	q := url.Values{"job": {buildID}, "namespace": {defaultNS}}
	resp, body := get(t, base+"/build?"+q.Encode())
	if resp.StatusCode != 200 || body != archivedText {
		t.Fatalf("/build: %d %q", resp.StatusCode, body)
	}
	resp, page := get(t, base+"/logs/"+defaultNS+"/"+buildID)
	if resp.StatusCode != 200 {
		t.Fatalf("/logs: %d %s", resp.StatusCode, page)
	}
	for _, want := range []string{"archived: token=***", ">red<", "failure", "the build failed with exit code 3", commit[:10]} {
		if !strings.Contains(page, want) {
			t.Errorf("archived page lacks %q", want)
		}
	}
	if resp.Header.Get("Content-Security-Policy") == "" {
		t.Error("archived page without its Content-Security-Policy")
	}
	if len(g.asked) != 2 || g.asked[0] != repoURL {
		t.Errorf("access asked for %q, want the archived build's repository twice", g.asked)
	}
	resp, _ = get(t, base+"/logs/"+defaultNS+"/builder/dispatch-albatros-k00000000000000000000-1-none")
	if resp.StatusCode != 404 {
		t.Errorf("a build in neither Nomad nor the archive: %d, want 404", resp.StatusCode)
	}
}

func TestArchivedLogWinsForAnEndedBuild(t *testing.T) {
	st := archiveBuild(t)
	b := build(t) // Nomad still knows it, dead; its client may have dropped the log
	base := archiveFixture(t, b, st, nil)
	_, body := get(t, base+"/build?"+url.Values{"job": {buildID}}.Encode())
	if body != archivedText {
		t.Fatalf("/build of an ended, archived build: %q, want the archived log", body)
	}
	if n := len(b.FollowCalls()); n != 0 {
		t.Errorf("Nomad's log read %d times, want none", n)
	}
}

func TestArchivedLogRefusals(t *testing.T) {
	st := archiveBuild(t)
	base := archiveFixture(t, &orchestratortest.Fake{}, st, &gate{deny: true})
	if resp, body := get(t, base+"/logs/"+defaultNS+"/"+buildID); resp.StatusCode != 403 || strings.Contains(body, "archived:") {
		t.Errorf("a reader refused the repository: %d %q", resp.StatusCode, body)
	}
	base = archiveFixture(t, &orchestratortest.Fake{}, brokenStore{st}, nil)
	if resp, _ := get(t, base+"/logs/"+defaultNS+"/"+buildID); resp.StatusCode != 503 {
		t.Errorf("the archive unavailable: %d, want 503", resp.StatusCode)
	}
}

// archivedLogBeingRead archives a log of size bytes, serves it on a bot tuned by tune, and
// asks for it on a connection of its own, read by the caller (closed at the test's end).
func archivedLogBeingRead(t *testing.T, size int, tune func(*server.Config)) (log, base, path string, conn net.Conn) {
	t.Helper()
	var big strings.Builder
	for big.Len() < size {
		fmt.Fprintf(&big, "line %d of a long log read slowly, or not at all\n", big.Len())
	}
	base = archiveFixture(t, &orchestratortest.Fake{}, archiveLog(t, big.String()), nil, tune)
	path = "/build?" + url.Values{"job": {buildID}, "namespace": {defaultNS}}.Encode()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path)
	return big.String(), base, path, conn
}

// A reader that stops reading an archived log is dropped after Stall and its slot given
// back; while it holds the only slot, another reader is told to come back (503).
func TestArchivedLogReadersAreBounded(t *testing.T) {
	big, base, path, conn := archivedLogBeingRead(t, 32<<20, func(c *server.Config) {
		c.ArchiveReads = 1
		c.Stall = 300 * time.Millisecond
	})
	if _, err := io.ReadFull(conn, make([]byte, 1024)); err != nil { // it is being served
		t.Fatal(err)
	}
	// The stalled reader holds the slot until the bot gives up on it.
	var refused, served bool
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && !served {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		switch {
		case resp.StatusCode == 503 && resp.Header.Get("Retry-After") != "":
			refused = true
			time.Sleep(50 * time.Millisecond)
		case resp.StatusCode == 200 && n == int64(len(big)):
			served = true
		default:
			t.Fatalf("archived log: %d, %d bytes", resp.StatusCode, n)
		}
	}
	if !refused || !served {
		t.Fatalf("a second reader refused while the first held the slot: %v; served once it was dropped: %v", refused, served)
	}
	// The stalled connection was cut.
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, conn); err != nil {
		t.Errorf("the stalled reader's connection was not closed: %v", err)
	}
}

// A reader who reads an archived log, each write within Stall, but slower than
// ArchiveRate, is dropped once the log's time at that pace is over: a few such readers
// cannot hold the archived logs' slots for hours. Meanwhile the slot is theirs; then the
// next reader is served.
func TestSlowArchivedLogReaderIsDropped(t *testing.T) {
	big, base, path, conn := archivedLogBeingRead(t, 16<<20, func(c *server.Config) {
		c.ArchiveReads = 1
		c.Stall = 2 * time.Second
		c.ArchiveRate = 4 << 20 // the log's 16 MiB in 4 s
	})
	slow := make(chan int64, 1)
	go func() {
		// About 1.6 MB/s: each write waits far less than Stall, the whole far more than
		// the log's time at ArchiveRate.
		var n int64
		buf := make([]byte, 32<<10)
		_ = conn.SetReadDeadline(time.Now().Add(60 * time.Second))
		for {
			m, err := conn.Read(buf)
			n += int64(m)
			if err != nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		slow <- n
	}()
	var got int64
	select {
	case got = <-slow:
	case <-time.After(50 * time.Second):
		t.Fatal("the slow reader was not dropped")
	}
	if got >= int64(len(big)) {
		t.Fatalf("the slow reader read %d bytes, the whole log: want it dropped part-way", got)
	}
	resp, err := http.Get(base + path)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || n != int64(len(big)) {
		t.Errorf("the next reader: %d, %d bytes; want the whole log", resp.StatusCode, n)
	}
}

// An archived build of an installation is served while that organization's installation
// holds the repository's name: not once another organization's does, nor once none does.
func TestArchivedLogOfAnInstallationIsItsOwn(t *testing.T) {
	st := archiveLog(t, archivedText, 42)
	q := "/build?" + url.Values{"job": {buildID}, "namespace": {defaultNS}}.Encode()
	for _, c := range []struct {
		name  string
		repos map[string]*registry.Repo
		want  int
	}{
		{"organization 42's installation", map[string]*registry.Repo{repoURL: {Installed: true, OrgID: 42}}, 200},
		{"organization 43's installation", map[string]*registry.Repo{repoURL: {Installed: true, OrgID: 43}}, 404},
		{"a hand-written entry", map[string]*registry.Repo{repoURL: currentEntry()}, 404},
		{"no entry", map[string]*registry.Repo{}, 404},
	} {
		base := archiveFixture(t, &orchestratortest.Fake{}, st, nil, func(cfg *server.Config) {
			cfg.Repos = &registrytest.Fake{Repos: c.repos}
		})
		for _, path := range []string{q, "/logs/" + defaultNS + "/" + buildID} {
			resp, body := get(t, base+path)
			if resp.StatusCode != c.want || (c.want != 200 && strings.Contains(body, "archived:")) {
				t.Errorf("%s, %s: %d, want %d", c.name, path, resp.StatusCode, c.want)
			}
		}
	}
}
