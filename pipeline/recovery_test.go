package pipeline_test

import (
	"context"
	"errors"
	"net"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/albatros-ci/albatros/forge"
	"github.com/albatros-ci/albatros/orchestrator"
	"github.com/albatros-ci/albatros/pipeline"
	"github.com/albatros-ci/albatros/registry"
	"github.com/albatros-ci/albatros/registry/registrytest"
)

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A forge that is down when a result is due: the reporter retries until it is back, and
// holds the event index below the outcome meanwhile; other builds' results go through.
func TestReporterRetriesWhileTheForgeIsDown(t *testing.T) {
	h, out, link := reportHarness()
	out.Index = 7
	h.forge.FailStatuses(errors.New("gitea: 502 bad gateway"))
	r := pipeline.NewReporter(h.p, discard, pipeline.ReporterOptions{Backoff: 10 * time.Millisecond, GiveUp: time.Minute})
	r.Handed(5)
	r.Report(context.Background(), out)
	r.Handed(9)
	time.Sleep(50 * time.Millisecond) // a few failed attempts
	if w := r.Watermark(); w != 6 {
		t.Errorf("watermark %d while index 7's outcome is retried, want 6", w)
	}
	h.forge.FailStatuses(nil)
	waitFor(t, "the status written once the forge is back", func() bool { return len(h.forge.Statuses()) == 1 })
	r.Wait()
	if s := h.forge.Statuses(); s[0].TargetURL != link || s[0].State != forge.StateSuccess {
		t.Errorf("wrote %+v, want the build's success", s[0])
	}
	if w := r.Watermark(); w != 9 {
		t.Errorf("watermark %d once done, want 9", w)
	}
}

// Retries end: after GiveUp the outcome is left to the reconciler and the index moves on;
// a build Nomad no longer knows is not retried at all.
func TestReporterGivesUp(t *testing.T) {
	h, out, _ := reportHarness()
	out.Index = 3
	h.forge.FailStatuses(errors.New("gitea: connection refused"))
	r := pipeline.NewReporter(h.p, discard, pipeline.ReporterOptions{Backoff: 5 * time.Millisecond, GiveUp: 50 * time.Millisecond})
	r.Report(context.Background(), out)
	gone := out
	gone.JobID, gone.Index = "builder/dispatch-albatros-1-gone", 4
	r.Report(context.Background(), gone)
	r.Handed(4)
	r.Wait()
	if w := r.Watermark(); w != 4 {
		t.Errorf("watermark %d after giving up, want 4", w)
	}
	if n := len(h.builds.BuildCalls()); n > 20 {
		t.Errorf("%d reads of Nomad for two outcomes: the unknown build was retried", n)
	}
}

// Outcomes abandoned because the leadership ended hold the index below them: the next
// leader resumes there.
func TestReporterAbandonedHoldTheIndex(t *testing.T) {
	h, out, _ := reportHarness()
	out.Index = 12
	h.forge.FailStatuses(errors.New("gitea: 503"))
	r := pipeline.NewReporter(h.p, discard, pipeline.ReporterOptions{Backoff: 10 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	r.Handed(10)
	r.Report(ctx, out)
	r.Handed(20)
	time.Sleep(30 * time.Millisecond)
	cancel()
	r.Wait()
	if w := r.Watermark(); w != 11 {
		t.Errorf("watermark %d after abandoning index 12's outcome, want 11", w)
	}
}

// Recover reports the builds Nomad holds: the final status of one that ended, pending for
// one still queued (its pending status may never have been written).
func TestRecover(t *testing.T) {
	h := newHarness(entryWith("nix", "default"))
	h.builds.Ended = map[string]orchestrator.Outcome{"nix": {Result: orchestrator.Failure, Description: "the build failed", Final: true}}
	for _, fl := range []string{"nix", "default"} {
		h.builds.AddBuild("ci", "builder/dispatch-albatros-1700000000-"+fl, "builder", map[string]string{"REPO_URL": cloneURL, "COMMIT": sha, "BRANCH": "main", "FLAVOR": fl}, nil, "pending")
	}
	r := pipeline.NewReporter(h.p, discard, pipeline.ReporterOptions{})
	n, err := h.p.Recover(context.Background(), discard, r, 0)
	if err != nil || n != 2 {
		t.Fatalf("Recover = %d, %v; want 2 builds", n, err)
	}
	r.Wait()
	got := map[string]forge.State{}
	for _, s := range h.forge.Statuses() {
		got[s.Context] = s.State
	}
	if got["albatros/nix"] != forge.StateFailure || got["albatros/default"] != forge.StatePending {
		t.Errorf("statuses %v, want nix failure and default pending", got)
	}
	// Again: nothing new to write.
	before := len(h.forge.Statuses())
	if _, err := h.p.Recover(context.Background(), discard, r, 0); err != nil {
		t.Fatal(err)
	}
	r.Wait()
	if s := h.forge.Statuses(); len(s) != before {
		t.Errorf("a second recovery wrote %+v", s[before:])
	}
}

// The reconciler builds the heads that have neither status nor build (the default
// branch's, recent pull requests'), says so in their status, once, without the secrets;
// old heads and heads with a status are left alone; a pass starts at most MaxBuilds.
func TestReconcile(t *testing.T) {
	e := entryWith("default")
	e.Secrets = map[string]string{"TOKEN": "tok-123"}
	h := newHarness(e)
	h.forge.Default, h.forge.DefaultCommit, h.forge.DefaultDate = "main", sha, time.Now().Add(-time.Minute)
	pr := forkPR(sha2)
	pr.Updated = time.Now()
	h.forge.SetPR(pr)
	old := forkPR(strings.Repeat("a", 40))
	old.Number, old.Updated = 43, time.Now().Add(-30*24*time.Hour)
	h.forge.SetPR(old)

	st, err := h.p.Reconcile(context.Background(), discard, []forge.Repo{appRepo}, pipeline.ReconcileOptions{MaxBuilds: 1})
	if n := st.Found; err != nil || n != 1 {
		t.Fatalf("first pass: %d builds, %v; want 1 (MaxBuilds)", n, err)
	}
	st, err = h.p.Reconcile(context.Background(), discard, []forge.Repo{appRepo}, pipeline.ReconcileOptions{})
	if n := st.Found; err != nil || n != 1 {
		t.Fatalf("second pass: %d builds, %v; want the other head", n, err)
	}
	st, err = h.p.Reconcile(context.Background(), discard, []forge.Repo{appRepo}, pipeline.ReconcileOptions{})
	if n := st.Found; err != nil || n != 0 {
		t.Fatalf("third pass: %d builds, %v; want none", n, err)
	}
	commits := map[string]bool{}
	for _, d := range h.builds.Dispatches() {
		commits[d.Meta["COMMIT"]] = true
		if d.HasSecrets {
			t.Errorf("reconciled build of %s got the secrets", d.Meta["COMMIT"][:7])
		}
	}
	if len(commits) != 2 || !commits[sha] || !commits[sha2] {
		t.Errorf("built %v, want the default branch's head and the recent pull request's", commits)
	}
	for _, s := range h.forge.Statuses() {
		if s.State == forge.StatePending && s.Description != pipeline.ReconciledDescription {
			t.Errorf("pending status %q, want %q", s.Description, pipeline.ReconciledDescription)
		}
	}
	if len(botComments(h)) != 1 {
		t.Errorf("the reconciled pull request has %d conversation comments, want 1", len(botComments(h)))
	}
}

// A forge's request budget down to the reserve (GitHub's rate limit) leaves the repository
// to a later pass, said so; once the budget is back, its heads are built.
func TestReconcileKeepsWithinRateLimits(t *testing.T) {
	h := newHarness(entryWith("default"))
	h.forge.Default, h.forge.DefaultCommit, h.forge.DefaultDate = "main", sha, time.Now().Add(-time.Minute)
	h.forge.RateKnown, h.forge.RateLeft = true, 150
	st, err := h.p.Reconcile(context.Background(), discard, []forge.Repo{appRepo}, pipeline.ReconcileOptions{})
	if err != nil || st.Found != 0 || len(st.Limited) != 1 || st.Limited[0] != appRepo.FullName || len(h.builds.Dispatches()) != 0 {
		t.Fatalf("with 150 requests left: %+v, %v; want nothing built, the repository cut short", st, err)
	}
	h.forge.RateLeft = 4000
	st, err = h.p.Reconcile(context.Background(), discard, []forge.Repo{appRepo}, pipeline.ReconcileOptions{})
	if err != nil || st.Found != 1 || len(st.Limited) != 0 {
		t.Fatalf("with the budget back: %+v, %v; want the head built", st, err)
	}
}

// The reconciler looks at every branch whose head is recent, not only the default one: a
// side branch's push whose delivery never arrived is built, once, without the secrets; an
// old branch is not; more recent branches than the pages read are said to be truncated.
func TestReconcileRecentBranches(t *testing.T) {
	e := entryWith("default")
	h := newHarness(e)
	now := time.Now()
	h.forge.Default, h.forge.DefaultCommit, h.forge.DefaultDate = "main", sha, now.Add(-100*time.Hour)
	h.forge.Branches = []forge.Branch{
		{Name: "main", Commit: sha, Date: now.Add(-100 * time.Hour)},
		{Name: "side", Commit: sha2, Date: now.Add(-time.Hour)},
		{Name: "stale", Commit: strings.Repeat("b", 40), Date: now.Add(-48 * time.Hour)},
	}
	for pass := range 2 {
		st, err := h.p.Reconcile(context.Background(), discard, []forge.Repo{appRepo}, pipeline.ReconcileOptions{})
		if want := 1 - pass; err != nil || st.Found != want || st.Heads != 1 {
			t.Fatalf("pass %d: %+v, %v; want %d built of 1 head (side; main is too old)", pass+1, st, err, want)
		}
	}
	d := h.builds.Dispatches()
	if len(d) != 1 || d[0].Meta["BRANCH"] != "side" || d[0].Meta["COMMIT"] != sha2 || d[0].HasSecrets {
		t.Fatalf("dispatched %+v, want one build of side's head, without secrets", d)
	}
	h.forge.BranchPages = 1
	st, err := h.p.Reconcile(context.Background(), discard, []forge.Repo{appRepo}, pipeline.ReconcileOptions{MaxBranchPages: 1})
	if err != nil || len(st.Truncated) != 1 {
		t.Errorf("one page of one branch: %+v, %v; want it said truncated", st, err)
	}
}

// A head found without a build is built only once every delivery accepted until a grace
// after it was first found has been handled (its own may be among them, with the secrets
// its pusher gives it): passes before that leave it. A queue that is never empty, but
// whose backlog is bounded, delays it by that backlog, not for ever: the time it was
// first found stays put.
func TestReconcileWaitsForItsDelivery(t *testing.T) {
	h := newHarness(entryWith("default"))
	h.forge.Default, h.forge.DefaultCommit, h.forge.DefaultDate = "main", sha, time.Now()
	const grace = 100 * time.Millisecond
	backlog := time.Hour // the oldest delivery waiting was accepted this long ago
	opts := pipeline.ReconcileOptions{Grace: grace, Settled: func() time.Time { return time.Now().Add(-backlog) }}
	pass := func() pipeline.ReconcileStats {
		t.Helper()
		st, err := h.p.Reconcile(context.Background(), discard, []forge.Repo{appRepo}, opts)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	if st := pass(); st.Found != 0 || st.Deferred != 1 {
		t.Fatalf("first found: %+v, want it left to a later pass", st)
	}
	backlog = 0 // the queue is empty, but the grace is not over
	if st := pass(); st.Found != 0 || st.Deferred != 1 {
		t.Fatalf("within the grace: %+v, want it left", st)
	}
	// A steady backlog of 50 ms: always something waiting, and yet, after the grace and
	// the backlog, the head is built.
	backlog = 50 * time.Millisecond
	deadline := time.Now().Add(2 * time.Second)
	for len(h.builds.Dispatches()) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		pass()
	}
	if n := len(h.builds.Dispatches()); n != 1 {
		t.Fatalf("%d builds after the grace with a steady backlog, want 1", n)
	}
	if st := pass(); st.Found != 0 || st.Deferred != 0 {
		t.Errorf("once built: %+v, want nothing more", st)
	}
}

// The head branch of a same-repository pull request is built as the pull request (its
// number in the meta), not as a push of the branch; a branch listing that fails leaves the
// default branch and the pull requests reconciled.
func TestReconcilePullRequestBeforeItsBranch(t *testing.T) {
	h := newHarness(entryWith("default"))
	now := time.Now()
	h.forge.Default, h.forge.DefaultCommit, h.forge.DefaultDate = "main", strings.Repeat("d", 40), now.Add(-100*time.Hour)
	h.forge.SetPR(forge.PullRequestInfo{PullRequest: forge.PullRequest{Number: 42, HeadRepo: appRepo, HeadBranch: "feature", BaseBranch: "main", Author: "quentin"}, Head: sha2, Open: true, Updated: now})
	h.forge.Branches = []forge.Branch{{Name: "feature", Commit: sha2, Date: now.Add(-time.Minute)}}
	st, err := h.p.Reconcile(context.Background(), discard, []forge.Repo{appRepo}, pipeline.ReconcileOptions{})
	d := h.builds.Dispatches()
	if err != nil || st.Found != 1 || len(d) != 1 || d[0].Meta["PR"] != "42" {
		t.Fatalf("%+v, %v, dispatched %+v; want one build, of pull request 42", st, err, d)
	}

	h = newHarness(entryWith("default"))
	h.forge.Default, h.forge.DefaultCommit, h.forge.DefaultDate = "main", sha, now
	h.forge.BranchErr = errors.New("gitea: 500")
	st, err = h.p.Reconcile(context.Background(), discard, []forge.Repo{appRepo}, pipeline.ReconcileOptions{})
	if err != nil || st.Found != 1 {
		t.Errorf("branches not listed: %+v, %v; want the default branch built all the same", st, err)
	}
}

// A head whose pending status links to a build that has ended gets its final status from
// the reconciler (its report was given up on), and no new build.
func TestReconcileReportsWhatWasGivenUp(t *testing.T) {
	h, out, link := reportHarness()
	h.forge.Default, h.forge.DefaultCommit, h.forge.DefaultDate = "main", sha, time.Now()
	h.forge.AddStatuses(forge.Status{Repo: appRepo, Commit: sha, State: forge.StatePending, Context: "albatros/nix", TargetURL: link})
	h.builds.Ended = map[string]orchestrator.Outcome{"nix": {Result: out.Result, Description: out.Description, Final: true}}
	st, err := h.p.Reconcile(context.Background(), discard, []forge.Repo{appRepo}, pipeline.ReconcileOptions{})
	if n := st.Found; err != nil || n != 0 {
		t.Fatalf("Reconcile = %d, %v; want no build", n, err)
	}
	s := h.forge.Statuses()
	if last := s[len(s)-1]; last.State != forge.StateSuccess || last.TargetURL != link {
		t.Errorf("last status %+v, want the build's success", last)
	}
}

// Two bots sharing the dedup records: a delivery handled by one and redelivered to the
// other dispatches once, and the second never asks Nomad. A dispatch that failed releases
// its claim, so that the next delivery builds.
func TestDedupAcrossBots(t *testing.T) {
	e := entryWith("default")
	h := newHarness(e)
	shared := &registrytest.Claims{}
	replica := func() *pipeline.Pipeline {
		return pipeline.New(pipeline.Config{Repos: h.repos, Builds: h.builds, Forge: h.forges.For, BaseURL: baseURL, Builder: defaultBuilder, Claims: shared})
	}
	one, two := replica(), replica()
	h.builds.DispatchErr = map[string]error{"default": errors.New("nomad: 500")}
	if _, err := one.Handle(context.Background(), discard, pushEvent(), e, pipeline.Options{}); err == nil {
		t.Fatal("a failed dispatch: no error")
	}
	h.builds.DispatchErr = nil
	if _, err := two.Handle(context.Background(), discard, pushEvent(), e, pipeline.Options{}); err != nil {
		t.Fatal(err)
	}
	asked := len(h.builds.Dispatches())
	d, err := one.Handle(context.Background(), discard, pushEvent(), e, pipeline.Options{})
	if err != nil || len(d) != 1 || !d[0].Duplicate {
		t.Fatalf("redelivery to the other bot: %+v, %v; want the build, duplicate", d, err)
	}
	if n := len(h.builds.Dispatches()); n != asked {
		t.Errorf("the redelivery asked Nomad %d more times, want 0", n-asked)
	}
	if n := len(h.builds.Started()); n != 1 {
		t.Errorf("%d builds started, want 1", n)
	}
}

// A dispatch that cannot reach Nomad at all (the delivery came in the second after Nomad's
// last answer) leaves the status that the reconciler looks for, so that the commit is built
// once Nomad is back; an answer of Nomad's refusing the dispatch does not.
func TestDispatchUnreachableLeavesItToTheReconciler(t *testing.T) {
	h := newHarness(entryWith("default", "nix"))
	h.builds.DispatchErr = map[string]error{
		"default": &url.Error{Op: "Post", URL: "http://nomad:4646/v1/job/builder/dispatch", Err: &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}},
		"nix":     errors.New("Unexpected response code: 400 (job is not parameterized)"),
	}
	if _, err := h.p.Handle(context.Background(), discard, pushEvent(), entryWith("default", "nix"), pipeline.Options{}); err == nil {
		t.Fatal("Handle with failing dispatches returned no error")
	}
	got := map[string]string{}
	for _, s := range h.forge.Statuses() {
		got[s.Context] = s.Description
	}
	if got["albatros/default"] != pipeline.NomadDownDescription {
		t.Errorf("unreachable Nomad: status %q, want %q", got["albatros/default"], pipeline.NomadDownDescription)
	}
	if d := got["albatros/nix"]; d == pipeline.NomadDownDescription || !strings.Contains(d, "could not start the build") {
		t.Errorf("a refused dispatch: status %q", d)
	}
}

// claimsSay is a dedup store whose answer about final reports is fixed.
type claimsSay struct {
	registrytest.Claims
	claimed bool
}

func (c *claimsSay) Claimed(context.Context, ...string) (bool, error) { return c.claimed, nil }

// With dedup records, the check after a pending status asks Consul whether a final report
// has begun, not Nomad: none has, and Nomad is not asked; one has (it may be hidden by the
// pending status), and the build's outcome is read and written again, after the pending.
func TestCheckAfterPendingAsksTheClaims(t *testing.T) {
	for _, claimed := range []bool{false, true} {
		h := newHarness(entryWith("nix"))
		h.builds.Ended = map[string]orchestrator.Outcome{"nix": {Result: orchestrator.Failure, Description: "the build failed: exit code 1", Final: true}}
		h.p = pipeline.New(pipeline.Config{Repos: h.repos, Builds: h.builds, Forge: h.forges.For, BaseURL: baseURL, Builder: defaultBuilder, Claims: &claimsSay{claimed: claimed}})
		if _, err := h.p.Handle(context.Background(), discard, pushEvent(), h.repos.Repos[cloneURL], pipeline.Options{}); err != nil {
			t.Fatal(err)
		}
		var states []forge.State
		for _, s := range h.forge.Statuses() {
			states = append(states, s.State)
		}
		asked := len(h.builds.OutcomeCalls())
		switch {
		case !claimed && (asked != 0 || !slices.Equal(states, []forge.State{forge.StatePending})):
			t.Errorf("no final report begun: Nomad asked %d times, statuses %v; want none and pending (the event stream writes the end)", asked, states)
		case claimed && (asked != 1 || !slices.Equal(states, []forge.State{forge.StatePending, forge.StateFailure})):
			t.Errorf("a final report begun: Nomad asked %d times, statuses %v; want once and the failure written after the pending", asked, states)
		}
	}
}

// A line whose record names a build dispatched after this one (deliveries handled out of
// order) keeps it as its newest, and nothing is stopped: the later push wins.
func TestLineKeepsTheLaterDispatch(t *testing.T) {
	h := newHarness(entryWith("default"))
	lines := &registrytest.Claims{}
	h.p = pipeline.New(pipeline.Config{Repos: h.repos, Builds: h.builds, Forge: h.forges.For, BaseURL: baseURL, Builder: defaultBuilder, Claims: lines})
	h.builds.AddBuild("ci", "builder/dispatch-albatros-1800000000-later", "builder", map[string]string{"REPO_URL": cloneURL, "COMMIT": sha2, "BRANCH": "main", "FLAVOR": "default"}, nil, "running")
	later := registry.Line{Namespace: "ci", JobID: "builder/dispatch-albatros-1800000000-later", Commit: sha2, Index: 1 << 40}
	if _, _, err := lines.SwapLine(context.Background(), pipeline.LineOf(pushEvent(), "default"), later); err != nil {
		t.Fatal(err)
	}
	if _, err := h.p.Handle(context.Background(), discard, pushEvent(), entryWith("default"), pipeline.Options{}); err != nil {
		t.Fatal(err)
	}
	if n := len(h.builds.Stopped()); n != 0 {
		t.Fatalf("%d builds stopped; the line's newest build is later than this one", n)
	}
	if cur, _, _ := lines.SwapLine(context.Background(), pipeline.LineOf(pushEvent(), "default"), registry.Line{}); cur.JobID != later.JobID {
		t.Errorf("the line's newest build is %q, want the later one back", cur.JobID)
	}
}
