package pipeline_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/albatros-ci/albatros/archive"
	"github.com/albatros-ci/albatros/forge"
	"github.com/albatros-ci/albatros/orchestrator"
	"github.com/albatros-ci/albatros/pipeline"
	"github.com/albatros-ci/albatros/secrets"
)

// failingStore is a directory store whose writes fail while down is set.
type failingStore struct {
	archive.Store
	down atomic.Bool
	puts atomic.Int64
	// only, when set, makes the writes of that one build fail (archive.BuildKey).
	only string
}

func (s *failingStore) Put(ctx context.Context, key string, body io.Reader, size int64) error {
	if s.down.Load() && (s.only == "" || strings.HasPrefix(key, "builds/"+s.only+"/")) {
		return errors.New("s3: connection refused")
	}
	if strings.HasSuffix(key, "record.json") {
		s.puts.Add(1)
	}
	return s.Store.Put(ctx, key, body, size)
}

func archiveHarness(t *testing.T, opts ...archive.Options) (*harness, *archive.Archive, *failingStore) {
	t.Helper()
	dir, err := archive.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	st := &failingStore{Store: dir}
	o := archive.Options{}
	if len(opts) > 0 {
		o = opts[0]
	}
	a := archive.New(st, o)
	h := newHarness(entryWith("nix"))
	h.p = pipeline.New(pipeline.Config{Repos: h.repos, Builds: h.builds, Forge: h.forges.For, BaseURL: baseURL, Builder: defaultBuilder, Trust: h.trust, Archive: a})
	return h, a, st
}

func archivedLog(t *testing.T, a *archive.Archive, ns, id string) string {
	t.Helper()
	rc, err := a.Log(context.Background(), ns, id, "stdout")
	if err != nil {
		t.Fatalf("archived log: %v", err)
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	return string(b)
}

// A build that ends is archived, masked as its log page masks it, before its final status
// is written; a second report archives nothing more.
func TestReportArchivesTheBuildBeforeItsStatus(t *testing.T) {
	h, a, st := archiveHarness(t)
	const jobID = "builder/dispatch-albatros-1700000000-abcd1234"
	payload, _ := secrets.Payload("", map[string]string{"TOKEN": "hunter2-very-secret"})
	h.builds.AddBuild("ci", jobID, "builder", map[string]string{"REPO_URL": cloneURL, "COMMIT": sha, "BRANCH": "main", "FLAVOR": "nix"}, payload, "dead")
	h.builds.LogChunks = []string{"deploying with hunter2-very-secret\n", "done\n"}
	out := orchestrator.Outcome{Namespace: "ci", JobID: jobID, Result: orchestrator.Failure, Description: "the build failed with exit code 1", Final: true}
	if err := h.p.Report(context.Background(), discard, out); err != nil {
		t.Fatal(err)
	}
	rec, err := a.Build(context.Background(), "ci", jobID)
	if err != nil {
		t.Fatalf("not archived: %v", err)
	}
	if rec.State != "failure" || rec.Reason != out.Description || !rec.Secrets || rec.Flavor != "nix" || rec.Branch != "main" || rec.Repo != cloneURL {
		t.Errorf("record %+v", rec)
	}
	log := archivedLog(t, a, "ci", jobID)
	if strings.Contains(log, "hunter2") || !strings.Contains(log, "deploying with "+secrets.Mask) || !strings.Contains(log, "done") {
		t.Errorf("archived log %q: want the secret masked, the rest kept", log)
	}
	if s := h.forge.Statuses(); len(s) != 1 || s[0].State != forge.StateFailure {
		t.Fatalf("statuses %+v", s)
	}
	if err := h.p.Report(context.Background(), discard, out); err != nil {
		t.Fatal(err)
	}
	if n := st.puts.Load(); n != 1 {
		t.Errorf("record written %d times, want once", n)
	}
}

// A store that cannot be written holds the final status back, as a forge that refuses it
// does: the report fails (the reporter retries it), and once the store is back, the build
// is archived and its status written, once.
func TestReportWaitsForTheArchive(t *testing.T) {
	h, a, st := archiveHarness(t)
	_, out, link := reportHarness()
	h.builds.AddBuild("ci", out.JobID, "builder", map[string]string{"REPO_URL": cloneURL, "COMMIT": sha, "BRANCH": "main", "FLAVOR": "nix"}, nil, "dead")
	h.builds.LogChunks = []string{"ok\n"}
	st.down.Store(true)
	err := h.p.Report(context.Background(), discard, out)
	if err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("Report with the store down: %v, want its error", err)
	}
	if s := h.forge.Statuses(); len(s) != 0 {
		t.Fatalf("status written without its archive: %+v", s)
	}
	st.down.Store(false)
	if err := h.p.Report(context.Background(), discard, out); err != nil {
		t.Fatal(err)
	}
	if s := h.forge.Statuses(); len(s) != 1 || s[0].TargetURL != link || s[0].State != forge.StateSuccess {
		t.Fatalf("statuses %+v", s)
	}
	if got := archivedLog(t, a, "ci", out.JobID); got != "ok\n" {
		t.Errorf("archived log %q", got)
	}
}

// A build whose log Nomad's client collected first is archived all the same, saying so:
// its status is not held back for ever.
func TestReportArchivesABuildWhoseLogIsGone(t *testing.T) {
	h, a, _ := archiveHarness(t)
	_, out, _ := reportHarness()
	h.builds.AddBuild("ci", out.JobID, "builder", map[string]string{"REPO_URL": cloneURL, "COMMIT": sha, "BRANCH": "main", "FLAVOR": "nix"}, nil, "dead")
	h.builds.FollowErr = orchestrator.ErrLogGone
	if err := h.p.Report(context.Background(), discard, out); err != nil {
		t.Fatal(err)
	}
	if got := archivedLog(t, a, "ci", out.JobID); got != pipeline.LogGoneLine {
		t.Errorf("archived log %q", got)
	}
	if s := h.forge.Statuses(); len(s) != 1 {
		t.Errorf("statuses %+v", s)
	}
}

// The pull request's comment keeps the row of a build that Nomad has collected, from the
// archive, with its log link.
func TestCommentKeepsArchivedBuilds(t *testing.T) {
	h, _, _ := archiveHarness(t)
	meta := func(flavor string) map[string]string {
		return map[string]string{"REPO_URL": cloneURL, "COMMIT": sha, "BRANCH": "feature", "FLAVOR": flavor, "PR": "42"}
	}
	const first = "builder/dispatch-albatros-1700000000-aaaa0001"
	const second = "builder/dispatch-albatros-1700000100-aaaa0002"
	h.builds.AddBuild("ci", first, "builder", meta("default"), nil, "dead")
	if err := h.p.Report(context.Background(), discard, orchestrator.Outcome{Namespace: "ci", JobID: first, Result: orchestrator.Failure, Description: "failed", Final: true}); err != nil {
		t.Fatal(err)
	}
	h.builds.Forget("ci", first)
	h.builds.AddBuild("ci", second, "builder", meta("nix"), nil, "dead")
	if err := h.p.Report(context.Background(), discard, orchestrator.Outcome{Namespace: "ci", JobID: second, Result: orchestrator.Success, Description: "passed", Final: true}); err != nil {
		t.Fatal(err)
	}
	comments, _ := h.forge.Comments(context.Background(), appRepo, 42)
	if len(comments) != 1 {
		t.Fatalf("%d comments", len(comments))
	}
	body := comments[0].Body
	for _, want := range []string{"| default | ❌ failure |", baseURL + "/logs/ci/" + first, "| nix |", baseURL + "/logs/ci/" + second} {
		if !strings.Contains(body, want) {
			t.Errorf("comment lacks %q:\n%s", want, body)
		}
	}
}

// A store down for as long as a report is retried: the status is written without the
// archive at the end, not left pending for ever.
func TestReporterWritesTheStatusWhenTheArchiveStaysDown(t *testing.T) {
	h, a, st := archiveHarness(t)
	_, out, link := reportHarness()
	h.builds.AddBuild("ci", out.JobID, "builder", map[string]string{"REPO_URL": cloneURL, "COMMIT": sha, "BRANCH": "main", "FLAVOR": "nix"}, nil, "dead")
	st.down.Store(true)
	r := pipeline.NewReporter(h.p, discard, pipeline.ReporterOptions{Backoff: 10 * time.Millisecond, GiveUp: 100 * time.Millisecond})
	r.Report(context.Background(), out)
	r.Wait()
	if s := h.forge.Statuses(); len(s) != 1 || s[0].State != forge.StateSuccess || s[0].TargetURL != link {
		t.Fatalf("statuses %+v: want the final one, once the retries ran out", s)
	}
	if _, err := a.Build(context.Background(), "ci", out.JobID); !errors.Is(err, archive.ErrNotFound) {
		t.Errorf("archived with its store down: %v", err)
	}
}

// A masked log longer than the archive keeps is archived cut, masked to where it was cut.
func TestReportArchivesALongLogCut(t *testing.T) {
	h, a, _ := archiveHarness(t, archive.Options{MaxLog: 64 << 10})
	const jobID = "builder/dispatch-albatros-1700000000-abcd1234"
	payload, _ := secrets.Payload("", map[string]string{"TOKEN": "hunter2-very-secret"})
	h.builds.AddBuild("ci", jobID, "builder", map[string]string{"REPO_URL": cloneURL, "COMMIT": sha, "BRANCH": "main", "FLAVOR": "nix"}, payload, "dead")
	for range 100 {
		h.builds.LogChunks = append(h.builds.LogChunks, strings.Repeat("pushing with hunter2-very-secret\n", 100))
	}
	out := orchestrator.Outcome{Namespace: "ci", JobID: jobID, Result: orchestrator.Success, Description: "the build succeeded", Final: true}
	if err := h.p.Report(context.Background(), discard, out); err != nil {
		t.Fatal(err)
	}
	rec, err := a.Build(context.Background(), "ci", jobID)
	if err != nil || !rec.Logs["stdout"].Truncated {
		t.Fatalf("record %+v, %v: want the log cut", rec, err)
	}
	log := archivedLog(t, a, "ci", jobID)
	if strings.Contains(log, "hunter2") || !strings.HasPrefix(log, "pushing with "+secrets.Mask) || !strings.HasSuffix(log, "the rest of it was not archived]\n") || len(log) > 65<<10 {
		t.Errorf("archived log of %d bytes, ending %q", len(log), log[max(0, len(log)-120):])
	}
	if len(h.forge.Statuses()) != 1 {
		t.Error("no status written")
	}
}

// A build belongs to the organization that held its repository's name when it was
// dispatched: once another installation holds the name (the first organization renamed
// or deleted, another taking the name), the build's result is neither archived under the
// new holder nor written as its status.
func TestBuildOfTheNamesEarlierHolderIsNotTheNewOnes(t *testing.T) {
	h, a, _ := archiveHarness(t)
	h.p = pipeline.New(pipeline.Config{Repos: h.repos, Builds: h.builds, Forge: h.forges.For, BaseURL: baseURL, Builder: defaultBuilder, Trust: h.trust, Archive: a, BuilderNamespaces: []string{defaultBuilder.Namespace}})
	first := entryWith("nix")
	first.Installed, first.OrgID = true, 7
	h.repos.Repos[cloneURL] = first
	got, err := h.p.Handle(context.Background(), discard, pushEvent(), first, pipeline.Options{})
	if err != nil || len(got) != 1 {
		t.Fatalf("Handle: %+v, %v", got, err)
	}
	d := got[0]
	b, err := h.builds.Build(context.Background(), d.Namespace, d.JobID)
	if err != nil || !b.HolderKnown || b.Holder != 7 {
		t.Fatalf("build %+v (%v): want it dispatched for organization 7", b, err)
	}
	pending := len(h.forge.Statuses())

	second := entryWith("nix")
	second.Installed, second.OrgID = true, 8
	h.repos.Repos[cloneURL] = second
	h.builds.LogChunks = []string{"organization 1's private log\n"}
	out := orchestrator.Outcome{Namespace: d.Namespace, JobID: d.JobID, Result: orchestrator.Success, Final: true}
	if err := h.p.Report(context.Background(), discard, out); err != nil {
		t.Fatal(err)
	}
	if rec, err := a.Build(context.Background(), d.Namespace, d.JobID); err == nil {
		t.Errorf("archived under the new holder: %+v", rec)
	}
	if s := h.forge.Statuses(); len(s) != pending {
		t.Errorf("statuses %+v: want no final status written for the new holder", s[pending:])
	}
	page, err := a.List(context.Background(), archive.Query{OrgID: 8, Repo: cloneURL})
	if err != nil || len(page.Builds) != 0 {
		t.Errorf("the new holder's history: %+v, %v; want none", page.Builds, err)
	}

	// The same build reported while the name is still its organization's is archived as
	// that organization's.
	h.repos.Repos[cloneURL] = first
	if err := h.p.Report(context.Background(), discard, out); err != nil {
		t.Fatal(err)
	}
	if rec, err := a.Build(context.Background(), d.Namespace, d.JobID); err != nil || rec.OrgID != 7 {
		t.Errorf("record %+v (%v): want organization 7's", rec, err)
	}
}

// counts is a pipeline.Observer that counts what it is told.
type counts struct {
	retried, gaveUp, archiveErrs atomic.Int64
	mu                           sync.Mutex
	reported                     []string
}

func (c *counts) Dispatched(time.Duration, error) {}
func (c *counts) Reported(flavor, state string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reported = append(c.reported, flavor+"/"+state)
}
func (c *counts) ReportRetried()    { c.retried.Add(1) }
func (c *counts) ReportGivenUp()    { c.gaveUp.Add(1) }
func (c *counts) Reconciled(string) {}
func (c *counts) Archived(_ bool, err error) {
	if err != nil {
		c.archiveErrs.Add(1)
	}
}

// A build whose archive keeps failing holds a reporter's worker only while each try runs,
// not while it waits for the next: another build's result is written meanwhile, with one
// worker in all. The retries are told to the observer.
func TestReporterRetriesDoNotHoldUpOtherBuilds(t *testing.T) {
	h, a, st := archiveHarness(t)
	seen := &counts{}
	h.p = pipeline.New(pipeline.Config{Repos: h.repos, Builds: h.builds, Forge: h.forges.For, BaseURL: baseURL, Builder: defaultBuilder, Trust: h.trust, Archive: a, Observe: seen})
	meta := func(commit string) map[string]string {
		return map[string]string{"REPO_URL": cloneURL, "COMMIT": commit, "BRANCH": "main", "FLAVOR": "nix"}
	}
	const stuck, other = "builder/dispatch-albatros-1700000000-00000001", "builder/dispatch-albatros-1700000001-00000002"
	h.builds.AddBuild("ci", stuck, "builder", meta(sha), nil, "dead")
	h.builds.AddBuild("ci", other, "builder", meta(strings.Repeat("b", 40)), nil, "dead")
	h.builds.LogChunks = []string{"ok\n"}
	st.only = archive.BuildKey("ci", stuck)
	st.down.Store(true)

	r := pipeline.NewReporter(h.p, discard, pipeline.ReporterOptions{Workers: 1, Backoff: 20 * time.Millisecond, GiveUp: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); r.Wait() }()
	r.Report(ctx, orchestrator.Outcome{Namespace: "ci", JobID: stuck, Result: orchestrator.Success, Final: true, Index: 1})
	for seen.retried.Load() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	r.Report(ctx, orchestrator.Outcome{Namespace: "ci", JobID: other, Result: orchestrator.Failure, Final: true, Index: 2})
	deadline := time.Now().Add(20 * time.Second) // far below GiveUp: the stuck build is still retried
	for len(h.forge.Statuses()) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	s := h.forge.Statuses()
	if len(s) != 1 || s[0].Commit != strings.Repeat("b", 40) || s[0].State != forge.StateFailure {
		t.Fatalf("statuses %+v: want the other build's failure, written while the stuck one is retried", s)
	}
	if seen.gaveUp.Load() != 0 || seen.archiveErrs.Load() == 0 {
		t.Errorf("given up %d, archive errors %d: want the stuck build retried, not given up", seen.gaveUp.Load(), seen.archiveErrs.Load())
	}
	seen.mu.Lock()
	defer seen.mu.Unlock()
	if len(seen.reported) != 1 || seen.reported[0] != "nix/failure" {
		t.Errorf("reported %v, want [nix/failure]", seen.reported)
	}
}
