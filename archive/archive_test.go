package archive_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/klauspost/compress/zstd"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/albatros-ci/albatros/archive"
	"github.com/albatros-ci/albatros/orchestrator"
	"github.com/albatros-ci/albatros/testenv"
)

var env = testenv.New(testenv.Options{S3: true})

func TestMain(m *testing.M) { os.Exit(env.Run(m)) }

// eachStore runs f on each kind of store, empty: a directory, and a prefix of the real S3
// server's bucket.
func eachStore(t *testing.T, f func(t *testing.T, st archive.Store)) {
	t.Helper()
	t.Run("dir", func(t *testing.T) {
		dir, err := archive.NewDir(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		f(t, dir)
	})
	t.Run("s3", func(t *testing.T) { f(t, s3Store(t)) })
}

func s3Store(t *testing.T) archive.Store {
	t.Helper()
	s3 := env.S3(t)
	st, err := archive.NewS3(s3.Bucket, "t-"+strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())), s3.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func record(repo, job string, queued time.Time, state string) archive.Record {
	return archive.Record{
		Namespace: "ci", JobID: "builder/dispatch-albatros-k00-" + job, Builder: "builder",
		Repo: repo, Commit: strings.Repeat("a", 40), Branch: "main", Flavor: "default",
		Cause: "push", Sender: "alice", State: state, Reason: "the build passed",
		Queued: queued, Started: queued.Add(time.Second), Ended: queued.Add(3 * time.Second),
	}
}

func logsOf(stdout, stderr string) archive.Logs {
	return func(_ context.Context, stream string, w io.Writer) error {
		s := stdout
		if stream == "stderr" {
			s = stderr
		}
		_, err := io.WriteString(w, s)
		return err
	}
}

func readLog(t *testing.T, a *archive.Archive, ns, job, stream string) string {
	t.Helper()
	rc, err := a.Log(context.Background(), ns, job, stream)
	if err != nil {
		t.Fatalf("log %s: %v", stream, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestWriteOnceAndReadBack(t *testing.T) {
	eachStore(t, func(t *testing.T, st archive.Store) {
		ctx := context.Background()
		a := archive.New(st, archive.Options{})
		rec := record("https://git.example.com/org/app.git", "1", time.Now().Add(-time.Minute), "failure")
		if _, err := a.Build(ctx, rec.Namespace, rec.JobID); !errors.Is(err, archive.ErrNotFound) {
			t.Fatalf("before: %v, want ErrNotFound", err)
		}
		written, err := a.Write(ctx, rec, logsOf("hello ***\n", "warning\n"))
		if err != nil || !written {
			t.Fatalf("write: %v %v", written, err)
		}
		calls := 0
		again, err := a.Write(ctx, rec, func(context.Context, string, io.Writer) error { calls++; return nil })
		if err != nil || again || calls != 0 {
			t.Fatalf("second write: written %v, err %v, logs read %d times: want nothing written", again, err, calls)
		}
		// Another archive on the same store (a second bot, a restart) reads it.
		b := archive.New(st, archive.Options{})
		got, err := b.Build(ctx, rec.Namespace, rec.JobID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != "failure" || got.Commit != rec.Commit || got.Sender != "alice" || got.Logs["stdout"].Size != int64(len("hello ***\n")) || got.Archived.IsZero() {
			t.Fatalf("record read back: %+v", got)
		}
		if s := readLog(t, b, rec.Namespace, rec.JobID, "stdout"); s != "hello ***\n" {
			t.Fatalf("stdout %q", s)
		}
		if s := readLog(t, b, rec.Namespace, rec.JobID, "stderr"); s != "warning\n" {
			t.Fatalf("stderr %q", s)
		}
		if _, err := b.Log(ctx, "ci", "builder/dispatch-albatros-k00-none", "stdout"); !errors.Is(err, archive.ErrNotFound) {
			t.Fatalf("log of a build not archived: %v", err)
		}
	})
}

func TestLongLogIsCut(t *testing.T) {
	eachStore(t, func(t *testing.T, st archive.Store) {
		a := archive.New(st, archive.Options{MaxLog: 1 << 20, TempDir: t.TempDir()})
		rec := record("https://git.example.com/org/app.git", "big", time.Now(), "success")
		chunk := strings.Repeat("0123456789abcdef", 4096) // 64 KiB
		var offered int
		var got error
		endless := func(_ context.Context, stream string, w io.Writer) error {
			for stream == "stdout" && offered < 1<<30 { // a log of 1 GiB, were it all read
				n, err := io.WriteString(w, chunk)
				offered += n
				if err != nil {
					got = err
					return fmt.Errorf("follow: %w", err)
				}
			}
			return nil
		}
		if _, err := a.Write(context.Background(), rec, endless); err != nil {
			t.Fatal(err)
		}
		if !errors.Is(got, archive.ErrCut) || offered > 1<<20+len(chunk) {
			t.Errorf("the log's source was told %v after %d bytes; want ErrCut at 1 MiB, the rest not read", got, offered)
		}
		b, _ := a.Build(context.Background(), rec.Namespace, rec.JobID)
		info := b.Logs["stdout"]
		if !info.Truncated || info.Stored >= 1<<20 {
			t.Fatalf("log info %+v: want cut at 1 MiB, compressed", info)
		}
		s := readLog(t, a, rec.Namespace, rec.JobID, "stdout")
		if !strings.HasPrefix(s, strings.Repeat(chunk, 16)) || len(s) > 1<<20+200 || !strings.Contains(s[1<<20:], "this log was cut at 1 MiB: the rest of it was not archived") {
			t.Fatalf("cut log (%d bytes) ends %q", len(s), s[max(0, len(s)-200):])
		}
	})
}

func TestListNewestFirstFilteredAndPaged(t *testing.T) {
	eachStore(t, func(t *testing.T, st archive.Store) {
		ctx := context.Background()
		a := archive.New(st, archive.Options{})
		repo := "https://git.example.com/org/app.git"
		t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
		for i := range 12 {
			r := record(repo, fmt.Sprint(i), t0.Add(time.Duration(i)*time.Minute), []string{"success", "failure", "error"}[i%3])
			switch {
			case i%4 == 1:
				r.Branch, r.PR = "feature", 7
			case i%4 == 2:
				r.Branch = "dev"
			}
			if i == 11 {
				r.Flavor = "nix"
			}
			if _, err := a.Write(ctx, r, nil); err != nil {
				t.Fatal(err)
			}
		}
		other := record("https://git.example.com/org/other.git", "o", t0, "success")
		if _, err := a.Write(ctx, other, nil); err != nil {
			t.Fatal(err)
		}
		// The same name held by an organization's installation: another index.
		installed := record(repo, "i", t0.Add(time.Hour), "failure")
		installed.OrgID = 42
		if _, err := a.Write(ctx, installed, nil); err != nil {
			t.Fatal(err)
		}
		jobs := func(p archive.Page) string {
			var s []string
			for _, b := range p.Builds {
				s = append(s, strings.TrimPrefix(b.JobID, "builder/dispatch-albatros-k00-"))
			}
			return strings.Join(s, ",")
		}
		p1, err := a.List(ctx, archive.Query{Repo: repo, Limit: 5})
		if err != nil {
			t.Fatal(err)
		}
		if jobs(p1) != "11,10,9,8,7" || p1.Next == "" {
			t.Fatalf("page 1: %s next %q", jobs(p1), p1.Next)
		}
		p2, _ := a.List(ctx, archive.Query{Repo: repo, Limit: 5, After: p1.Next})
		p3, _ := a.List(ctx, archive.Query{Repo: repo, Limit: 5, After: p2.Next})
		if jobs(p2) != "6,5,4,3,2" || jobs(p3) != "1,0" || p3.Next != "" {
			t.Fatalf("pages 2, 3: %s / %s next %q", jobs(p2), jobs(p3), p3.Next)
		}
		for _, c := range []struct {
			q    archive.Query
			want string
		}{
			{archive.Query{Repo: repo, Branch: "main"}, "11,8,7,4,3,0"},
			{archive.Query{Repo: repo, Branch: "dev"}, "10,6,2"},
			{archive.Query{Repo: repo, PR: 7}, "9,5,1"},
			{archive.Query{Repo: repo, State: "failure"}, "10,7,4,1"},
			{archive.Query{Repo: repo, Branch: "main", State: "success"}, "3,0"},
			{archive.Query{Repo: repo, Flavor: "nix"}, "11"},
			{archive.Query{Owner: "https://git.example.com/org/", Limit: 2}, "11,10"},
			{archive.Query{Repo: "https://git.example.com/ORG/App.git", PR: 7, Limit: 1}, "9"},
			{archive.Query{Repo: repo, PR: 7, State: "failure"}, "1"},
			{archive.Query{Repo: repo, OrgID: 42}, "i"},
			{archive.Query{Repo: repo, OrgID: 42, State: "failure"}, "i"},
			{archive.Query{Owner: "https://git.example.com/org/", OrgID: 42}, "i"},
			{archive.Query{Repo: repo, OrgID: 7}, ""},
		} {
			p, err := a.List(ctx, c.q)
			if err != nil || jobs(p) != c.want {
				t.Errorf("%+v: %s (%v), want %s", c.q, jobs(p), err, c.want)
			}
		}
		if _, err := a.List(ctx, archive.Query{Repo: repo, After: "../x"}); !errors.Is(err, archive.ErrBadCursor) {
			t.Errorf("bad cursor: %v", err)
		}
		if _, err := a.List(ctx, archive.Query{Repo: repo, State: "../x"}); err == nil {
			t.Errorf("a state that is none listed")
		}
		if st, found, err := a.Latest(ctx, 0, repo, "main", "default"); err != nil || !found || st != "error" {
			t.Errorf("latest main/default: %q %v %v, want error (build 8)", st, found, err)
		}
		if st, found, _ := a.Latest(ctx, 0, repo, "main", "nix"); !found || st != "error" {
			t.Errorf("latest main/nix: %q %v, want error (build 11)", st, found)
		}
		if st, found, _ := a.Latest(ctx, 42, repo, "main", "default"); !found || st != "failure" {
			t.Errorf("latest main/default of organization 42: %q %v, want failure (build i alone)", st, found)
		}
		if _, found, _ := a.Latest(ctx, 0, repo, "feature", "default"); found {
			t.Errorf("a pull request's builds are no branch's badge")
		}
	})
}

func TestExpireDeletesOldBuildsWhole(t *testing.T) {
	eachStore(t, func(t *testing.T, st archive.Store) {
		ctx := context.Background()
		a := archive.New(st, archive.Options{})
		repo := "https://git.example.com/org/app.git"
		now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
		old := record(repo, "old", now.Add(-100*24*time.Hour), "success")
		junk := record(repo, "junk", now.Add(-100*24*time.Hour), "success")
		recent := record(repo, "recent", now.Add(-10*24*time.Hour), "success")
		for _, r := range []archive.Record{old, junk, recent} {
			if _, err := a.Write(ctx, r, logsOf("log\n", "")); err != nil {
				t.Fatal(err)
			}
		}
		// One record cut short: it hides nothing else, and is expired all the same.
		bad := "builds/" + archive.BuildKey(junk.Namespace, junk.JobID) + "/record.json"
		if err := st.Put(ctx, bad, strings.NewReader(`{"v":1,"namesp`), 14); err != nil {
			t.Fatal(err)
		}
		if p, err := archive.New(st, archive.Options{}).List(ctx, archive.Query{Repo: repo}); err != nil || len(p.Builds) != 2 {
			t.Fatalf("a list with a corrupt record: %d builds, %v; want the 2 others", len(p.Builds), err)
		}
		// A deletion cut short (the store failing) is taken up by the next.
		// The other old build is expired all the same.
		flaky := &failOnce{Store: st, key: "record.json"}
		first, err := archive.New(flaky, archive.Options{}).Expire(ctx, now.Add(-90*24*time.Hour))
		if err == nil || first != 1 {
			t.Fatalf("expiry with the store failing once: %d expired, %v; want 1 and the error", first, err)
		}
		n, err := a.Expire(ctx, now.Add(-90*24*time.Hour))
		if err != nil || n != 1 {
			t.Fatalf("expired %d (%v), want the 1 left", n, err)
		}
		b := archive.New(st, archive.Options{}) // nothing cached
		if _, err := b.Build(ctx, old.Namespace, old.JobID); !errors.Is(err, archive.ErrNotFound) {
			t.Errorf("old build still archived: %v", err)
		}
		if _, err := b.Log(ctx, old.Namespace, old.JobID, "stdout"); !errors.Is(err, archive.ErrNotFound) {
			t.Errorf("old build's log still archived: %v", err)
		}
		p, _ := b.List(ctx, archive.Query{Repo: repo})
		if len(p.Builds) != 1 || p.Builds[0].JobID != recent.JobID {
			t.Errorf("after expiry the repository lists %d builds", len(p.Builds))
		}
		if got := readLog(t, b, recent.Namespace, recent.JobID, "stdout"); got != "log\n" {
			t.Errorf("recent log %q", got)
		}
		names, _ := st.List(ctx, "repos/", "", 1000)
		var all []string
		for _, n := range names {
			sub, _ := st.List(ctx, "repos/"+n+"all/", "", 1000)
			all = append(all, sub...)
		}
		// Left: the recent build's entry, and maybe the corrupt record's (which names no
		// entries to delete: lists skip them).
		for _, e := range all {
			if !strings.Contains(e, archive.BuildKey(recent.Namespace, recent.JobID)) && !strings.Contains(e, archive.BuildKey(junk.Namespace, junk.JobID)) {
				t.Errorf("index entry left of an expired build: %s", e)
			}
		}
		if len(all) == 0 {
			t.Error("the recent build's index entry is gone")
		}
	})
}

func TestMergePrefersNomad(t *testing.T) {
	t0 := time.Now()
	live := []orchestrator.Summary{{Namespace: "ci", ID: "b", State: "running", Submitted: t0}}
	rb := record("r", "b", t0, "success")
	ra := record("r", "a", t0.Add(-time.Hour), "failure")
	rb.JobID, ra.JobID = "b", "a"
	got := archive.Merge(live, []*archive.Record{&rb, &ra}, 10)
	if len(got) != 2 || got[0].ID != "b" || got[0].State != "running" || got[1].ID != "a" || got[1].State != "failure" {
		t.Fatalf("merged: %+v", got)
	}
}

func TestStoreRefusesKeysItDoesNotMake(t *testing.T) {
	dir, _ := archive.NewDir(t.TempDir())
	for _, k := range []string{"../etc/passwd", "/abs", "a//b", "a/../b", "a b", ""} {
		if err := dir.Put(context.Background(), k, bytes.NewReader(nil), 0); err == nil {
			t.Errorf("key %q accepted", k)
		}
	}
}

func TestOpenStoreURLs(t *testing.T) {
	for _, bad := range []string{"", "/var/lib/x", "file://host/x", "file:relative", "s3:///prefix", "ftp://x"} {
		if _, err := archive.OpenStore(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if s, err := archive.OpenStore("file://" + t.TempDir()); err != nil || !strings.HasPrefix(s.String(), "file:///") {
		t.Errorf("file store: %v %v", s, err)
	}
}

// failOnce fails the first deletion of a key that ends with key.
type failOnce struct {
	archive.Store
	key    string
	failed bool
}

func (f *failOnce) Delete(ctx context.Context, k string) error {
	if !f.failed && strings.HasSuffix(k, f.key) {
		f.failed = true
		return errors.New("s3: connection reset")
	}
	return f.Store.Delete(ctx, k)
}

// getFails is a store whose reads of one key fail as a store that may not read it does.
type getFails struct {
	archive.Store
	key string
}

func (g getFails) Get(ctx context.Context, k string) (io.ReadCloser, error) {
	if k == g.key {
		return nil, errors.New("s3: 403 access denied")
	}
	return g.Store.Get(ctx, k)
}

// What someone who can write the archive's directory plants there costs the bot a bounded
// effort: a huge record is corrupt (not cached), a FIFO in a record's place is no file
// (not waited on), a log that decodes past its record's size stops there, a record the
// store refuses to give hides none of the others, and day entries the archive never makes
// hold up no expiry.
func TestPlantedObjectsAreBounded(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	st, err := archive.NewDir(root)
	if err != nil {
		t.Fatal(err)
	}
	repo := "https://git.example.com/org/app.git"
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	recs := map[string]archive.Record{}
	a := archive.New(st, archive.Options{})
	for _, name := range []string{"huge", "fifo", "bomb", "refused", "fine"} {
		r := record(repo, name, now.Add(-100*24*time.Hour), "success")
		recs[name] = r
		if _, err := a.Write(ctx, r, logsOf("a short log\n", "")); err != nil {
			t.Fatal(err)
		}
	}
	path := func(name, file string) string {
		return filepath.Join(root, "builds", archive.BuildKey(recs[name].Namespace, recs[name].JobID), file)
	}
	huge := `{"ns":"ci","reason":"` + strings.Repeat("x", 128<<10) + `"}`
	if err := os.WriteFile(path("huge", "record.json"), []byte(huge), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path("fifo", "record.json")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(path("fifo", "record.json"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A small frame that decodes to far more than the record's 12 bytes.
	enc, _ := zstd.NewWriter(nil)
	bomb := enc.EncodeAll(bytes.Repeat([]byte("A"), 8<<20), nil)
	if err := os.WriteFile(path("bomb", "stdout.zst"), bomb, 0o600); err != nil {
		t.Fatal(err)
	}
	day := filepath.Join(root, "days", now.Add(-100*24*time.Hour).Format("20060102"))
	if err := os.WriteFile(filepath.Join(day, "not-a-digest..x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	refused := "builds/" + archive.BuildKey(recs["refused"].Namespace, recs["refused"].JobID) + "/record.json"

	b := archive.New(getFails{Store: st, key: refused}, archive.Options{}) // nothing cached
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err := b.Build(ctx, recs["huge"].Namespace, recs["huge"].JobID); !errors.Is(err, archive.ErrCorrupt) {
			t.Errorf("a 128 KiB record: %v, want ErrCorrupt", err)
		}
		if _, err := b.Build(ctx, recs["fifo"].Namespace, recs["fifo"].JobID); !errors.Is(err, archive.ErrCorrupt) {
			t.Errorf("a FIFO for a record: %v, want ErrCorrupt", err)
		}
		if rc, err := b.Log(ctx, recs["bomb"].Namespace, recs["bomb"].JobID, "stdout"); err != nil {
			t.Errorf("the bomb's log: %v", err)
		} else {
			var out bytes.Buffer
			if _, err := io.Copy(&out, rc); !errors.Is(err, archive.ErrCorrupt) || out.Len() != len("a short log\n") {
				t.Errorf("a log decoding past its record: %d bytes, %v; want its record's %d, then ErrCorrupt", out.Len(), err, len("a short log\n"))
			}
			rc.Close()
		}
		p, err := b.List(ctx, archive.Query{Repo: repo})
		if err != nil || len(p.Builds) != 2 {
			t.Errorf("list: %d builds, %v; want the fine one and the bomb's", len(p.Builds), err)
		}
		n, err := b.Expire(ctx, now.Add(-90*24*time.Hour))
		if n != 4 || err == nil {
			t.Errorf("expiry: %d deleted, %v; want the 4 it may read, and the refused one's error", n, err)
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("reading the planted objects still waits after 30 s")
	}
	if _, err := a.Build(ctx, recs["refused"].Namespace, recs["refused"].JobID); err != nil {
		t.Errorf("the refused build, read by a store that may: %v, want it kept for the next expiry", err)
	}
}
