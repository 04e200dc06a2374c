package pipeline_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/albatros-ci/albatros/forge"
	"github.com/albatros-ci/albatros/forge/forgetest"
	"github.com/albatros-ci/albatros/orchestrator"
	"github.com/albatros-ci/albatros/pipeline"
	"github.com/albatros-ci/albatros/registry"
	"github.com/albatros-ci/albatros/registry/registrytest"
)

// listed is the fake registry as the schedules' leader lists it: its entries, no
// installation.
type listed struct{ *registrytest.Fake }

func (l listed) RepoURLs(context.Context) ([]string, error) {
	var out []string
	for u := range l.Repos {
		out = append(out, u)
	}
	return out, nil
}
func (listed) Installations(context.Context) ([]*registry.Installation, error) { return nil, nil }

// scheduleHarness is a pipeline with one repository of schedules, a main branch at sha
// whose last push was trusted, and the bots' claims and schedule states.
func scheduleHarness(t *testing.T, claims *registrytest.Claims, states *registrytest.Schedules, schedules ...registry.Schedule) *harness {
	t.Helper()
	entry := &registry.Repo{Secrets: map[string]string{"DEPLOY_TOKEN": "s3cr3t"}, Schedules: schedules}
	entry.Trusted.Senders = []string{"quentin"}
	h := newHarness(entry)
	h.forge.Branches = []forge.Branch{{Name: "main", Commit: sha}}
	if err := h.trust.RecordHead(context.Background(), registry.Head{Repo: cloneURL, Branch: "main", Commit: sha, Pusher: "quentin", Trusted: true}); err != nil {
		t.Fatal(err)
	}
	h.p = pipeline.New(pipeline.Config{Repos: h.repos, Builds: h.builds, Forge: h.forges.For, BaseURL: baseURL, Builder: defaultBuilder, Trust: h.trust, Claims: claims, Schedules: states})
	return h
}

func at(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// Two bots (two pipelines on the same Nomad, claims and states) passing over the same
// schedule at the same slot make one build of it, with the secrets (the head's push was
// trusted), on its own status context; the next slot is another build; a head whose push
// was not trusted builds without them; a schedule of a branch that is gone builds nothing
// and says so.
func TestScheduleSlotBuiltOnceWithTheTrustOfItsHead(t *testing.T) {
	claims, states := &registrytest.Claims{}, &registrytest.Schedules{}
	every := registry.Schedule{Name: "every-minute", Cron: "* * * * *", Branch: "main"}
	gone := registry.Schedule{Name: "gone", Cron: "* * * * *", Branch: "deleted"}
	a := scheduleHarness(t, claims, states, every, gone)
	// The second bot: its own pipeline, on the same fakes of Nomad, Consul and the forge;
	// its own view of the states, so that the claims alone keep the slot single.
	b := pipeline.New(pipeline.Config{Repos: a.repos, Builds: a.builds, Forge: a.forges.For, BaseURL: baseURL, Builder: defaultBuilder, Trust: a.trust, Claims: claims, Schedules: &registrytest.Schedules{}})
	s := pipeline.Schedules{Registry: listed{a.repos}}
	ctx := context.Background()
	now := at(t, "2026-12-04T10:00:30Z")
	if n := a.p.SchedulePass(ctx, discard, s, now); n != 1 {
		t.Fatalf("first bot's pass dispatched %d builds, want 1", n)
	}
	if n := b.SchedulePass(ctx, discard, s, now.Add(time.Second)); n != 0 {
		t.Fatalf("second bot's pass dispatched %d builds, want 0", n)
	}
	if n := a.p.SchedulePass(ctx, discard, s, now.Add(2*time.Second)); n != 0 {
		t.Fatalf("the same slot again: %d builds", n)
	}
	reqs := a.builds.Dispatches()
	if len(reqs) != 1 {
		t.Fatalf("%d dispatches, want 1", len(reqs))
	}
	req := reqs[0]
	if !req.HasSecrets || req.Cause != pipeline.CauseSchedule || req.Schedule != "every-minute" || req.Meta["COMMIT"] != sha || req.Meta["BRANCH"] != "main" || req.Meta["FLAVOR"] != "default" {
		t.Errorf("the scheduled build: %+v", req)
	}
	st := a.forge.Statuses()
	if len(st) != 1 || st[0].Context != "albatros/default/scheduled" || st[0].State != forge.StatePending {
		t.Errorf("statuses: %+v, want one pending on albatros/default/scheduled", st)
	}
	g, _ := states.ScheduleState(ctx, cloneURL, "gone")
	if g.Gone.IsZero() || g.Problem != pipeline.GoneProblem {
		t.Errorf("the schedule of a deleted branch: %+v", g)
	}

	// The next minute, while the build still runs: the slot is skipped, as Nomad's
	// prohibit_overlap would, and said so.
	if n := a.p.SchedulePass(ctx, discard, s, now.Add(time.Minute)); n != 0 {
		t.Fatalf("a slot while the build before runs: %d builds, want 0", n)
	}
	if e, _ := states.ScheduleState(ctx, cloneURL, "every-minute"); !strings.Contains(e.Problem, "skipped") {
		t.Errorf("the skipped slot's state: %+v", e)
	}
	first := a.builds.Started()[0]
	a.builds.End(orchestrator.Outcome{Namespace: first.Namespace, JobID: first.JobID, Result: orchestrator.Success})

	// The minute after, a head pushed by someone not trusted: built, without the secrets.
	a.forge.Branches = []forge.Branch{{Name: "main", Commit: sha2}}
	if n := a.p.SchedulePass(ctx, discard, s, now.Add(2*time.Minute)); n != 1 {
		t.Fatalf("next slot: %d builds, want 1", n)
	}
	if next := a.builds.Dispatches()[1]; next.HasSecrets || next.Meta["COMMIT"] != sha2 {
		t.Errorf("a head whose push was not trusted: %+v", next)
	}
	if got := len(a.builds.Dispatches()); got != 2 {
		t.Errorf("%d dispatches in all, want 2 (none of the gone branch)", got)
	}
}

// A slot missed while no bot ran: only the last one is built, once; one older than the
// catch-up bound is not.
func TestMissedSlotsBuiltOnce(t *testing.T) {
	h := scheduleHarness(t, &registrytest.Claims{}, &registrytest.Schedules{}, registry.Schedule{Name: "hourly", Cron: "0 * * * *", Branch: "main"})
	s := pipeline.Schedules{Registry: listed{h.repos}}
	ctx := context.Background()
	if n := h.p.SchedulePass(ctx, discard, s, at(t, "2026-12-04T10:59:00Z")); n != 1 {
		t.Fatalf("back after missing slots: %d builds, want 1 (the last)", n)
	}
	if n := h.p.SchedulePass(ctx, discard, s, at(t, "2026-12-04T10:59:30Z")); n != 0 {
		t.Fatalf("the same slot again: %d", n)
	}
	daily := scheduleHarness(t, &registrytest.Claims{}, &registrytest.Schedules{}, registry.Schedule{Name: "daily", Cron: "0 1 * * *", Branch: "main"})
	if n := daily.p.SchedulePass(ctx, discard, pipeline.Schedules{Registry: listed{daily.repos}}, at(t, "2026-12-04T20:00:00Z")); n != 0 {
		t.Fatalf("a slot 19 hours old: %d builds, want 0", n)
	}
}

// A run's parameters reach its meta, but never as the contract's keys.
func TestRunParametersDoNotReplaceTheContract(t *testing.T) {
	h := scheduleHarness(t, &registrytest.Claims{}, &registrytest.Schedules{})
	entry, _ := h.repos.Repo(context.Background(), cloneURL)
	_, err := h.p.Start(context.Background(), discard, entry, cloneURL, pipeline.Started{
		Cause: pipeline.CauseRun, Branch: "main", Commit: sha, Flavor: "default", Key: "run:quentin:n1", By: "quentin",
		Params: map[string]string{"TARGET": "production", "COMMIT": sha2, "REPO_URL": "https://evil.example/x.git", "TAG": "v1", "PR": "1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	req := h.builds.Dispatches()[0]
	if req.Meta["TARGET"] != "production" || req.Meta["COMMIT"] != sha || req.Meta["REPO_URL"] != cloneURL || req.Meta["TAG"] != "" || req.Meta["PR"] != "" {
		t.Errorf("the run's meta: %v", req.Meta)
	}
	if st := h.forge.Statuses(); len(st) != 1 || st[0].Context != "albatros/default/run" {
		t.Errorf("the run's status: %+v", st)
	}
}

// A schedule failing twice, then passing: one issue opened, one comment for the second
// failure, then a comment and the issue closed; a report seen twice is told once; a
// failure after someone closed the issue opens a new one.
func TestFailingScheduleIsToldOnTheForge(t *testing.T) {
	states := &registrytest.Schedules{}
	h := scheduleHarness(t, &registrytest.Claims{}, states, registry.Schedule{Name: "nightly", Cron: "0 3 * * *", TZ: "Europe/Paris", Branch: "main"})
	s := pipeline.Schedules{Registry: listed{h.repos}}
	ctx := context.Background()
	day := at(t, "2026-12-04T02:00:10Z") // 03:00 in Paris
	end := func(i int, result orchestrator.Result) {
		t.Helper()
		if n := h.p.SchedulePass(ctx, discard, s, day.AddDate(0, 0, i)); n != 1 {
			t.Fatalf("day %d: %d builds", i, n)
		}
		d := h.builds.Started()[len(h.builds.Started())-1]
		out := orchestrator.Outcome{Namespace: d.Namespace, JobID: d.JobID, Result: result, Description: "the build failed: exit 1", Final: true}
		for range 2 { // the event seen twice (a replay): told once
			if err := h.p.Report(ctx, discard, out); err != nil {
				t.Fatal(err)
			}
		}
		h.builds.End(out)
	}
	end(0, orchestrator.Failure)
	end(1, orchestrator.Failure)
	issues := h.forge.Issues()
	if len(issues) != 1 || !issues[0].Open || !strings.Contains(issues[0].Title, `"nightly"`) || !strings.Contains(issues[0].Body, baseURL+"/logs/") {
		t.Fatalf("after two failures: %+v", issues)
	}
	comments, _ := h.forge.Comments(ctx, appRepo, issues[0].Number)
	if len(comments) != 1 || !strings.Contains(comments[0].Body, "Failed again") {
		t.Fatalf("comments after two failures: %+v", comments)
	}
	end(2, orchestrator.Success)
	issues = h.forge.Issues()
	comments, _ = h.forge.Comments(ctx, appRepo, issues[0].Number)
	if len(issues) != 1 || issues[0].Open || len(comments) != 2 || !strings.Contains(comments[1].Body, "Green again") {
		t.Fatalf("after the pass: %+v, %+v", issues, comments)
	}
	end(3, orchestrator.Success) // green stays green: nothing told
	end(4, orchestrator.Failure)
	if err := h.forge.CloseIssue(ctx, appRepo, h.forge.Issues()[1].Number); err != nil { // closed by someone
		t.Fatal(err)
	}
	end(5, orchestrator.Error)
	if issues := h.forge.Issues(); len(issues) != 3 || !issues[2].Open {
		t.Fatalf("a failure after the issue was closed by hand: %+v", issues)
	}
	for _, st := range h.forge.Statuses() {
		if st.Context != "albatros/default/scheduled" {
			t.Errorf("status on %s", st.Context)
		}
	}
}

// A scheduled build's trust follows the branch's last push, as the pipeline recorded it
// from the pushes' deliveries: a trusted commit pushed back onto the branch by someone not
// trusted builds without the secrets, and so it stays when the trusted push's delivery
// comes late; the trusted user's next push brings them back.
func TestScheduleTrustFollowsTheBranchsLastPush(t *testing.T) {
	h := scheduleHarness(t, &registrytest.Claims{}, &registrytest.Schedules{}, registry.Schedule{Name: "every-minute", Cron: "* * * * *", Branch: "main"})
	h.trust = &registrytest.Trust{}
	h.p = pipeline.New(pipeline.Config{Repos: h.repos, Builds: h.builds, Forge: h.forges.For, BaseURL: baseURL, Builder: defaultBuilder, Trust: h.trust, Claims: &registrytest.Claims{}, Schedules: &registrytest.Schedules{}})
	entry, _ := h.repos.Repo(context.Background(), cloneURL)
	ctx := context.Background()
	push := func(delivery, commit, sender string) {
		t.Helper()
		ev := pushEvent()
		ev.Delivery, ev.Commit, ev.Sender = delivery, commit, sender
		if _, err := h.p.Handle(ctx, discard, ev, entry, pipeline.Options{}); err != nil {
			t.Fatal(err)
		}
		h.forge.Branches = []forge.Branch{{Name: "main", Commit: commit}}
	}
	s := pipeline.Schedules{Registry: listed{h.repos}}
	minute := at(t, "2026-12-04T10:00:30Z")
	slot := func(what string, secrets bool) {
		t.Helper()
		for _, d := range h.builds.Started() {
			h.builds.End(orchestrator.Outcome{Namespace: d.Namespace, JobID: d.JobID, Result: orchestrator.Success})
		}
		minute = minute.Add(time.Minute)
		if n := h.p.SchedulePass(ctx, discard, s, minute); n != 1 {
			t.Fatalf("%s: %d builds, want 1", what, n)
		}
		reqs := h.builds.Dispatches()
		if got := reqs[len(reqs)-1]; got.Cause != pipeline.CauseSchedule || got.HasSecrets != secrets {
			t.Errorf("%s: the scheduled build %s, with secrets %v, want %v", what, got.Meta["COMMIT"], got.HasSecrets, secrets)
		}
	}
	push("d1", sha, "quentin")
	slot("after the trusted push", true)
	push("d2", sha2, "mallory")
	slot("after an untrusted push", false)
	push("d3", sha, "mallory") // the trusted commit, force-pushed back
	slot("the trusted commit pushed back by someone not trusted", false)
	push("d1-again", sha, "quentin") // the trusted push's delivery, late or replayed
	slot("the trusted push's delivery again", false)
	push("d4", sha2, "quentin")
	slot("the trusted user's next push", true)
	entry.Trusted.Senders = nil // quentin is trusted no more: their last push vouches for nothing
	slot("the pusher no longer trusted", false)
}

// A build that hangs holds its schedule's slots back for a bounded time only, and a job
// that is not the bot's build (its ID taken again once Nomad collected the build) none.
func TestHungScheduledBuildHoldsSlotsBackBoundedly(t *testing.T) {
	states := &registrytest.Schedules{}
	h := scheduleHarness(t, &registrytest.Claims{}, states, registry.Schedule{Name: "hourly", Cron: "0 * * * *", Branch: "main"})
	s := pipeline.Schedules{Registry: listed{h.repos}}
	ctx := context.Background()
	start := at(t, "2026-12-04T10:00:10Z")
	pass := func(after time.Duration, want int, what string) {
		t.Helper()
		if n := h.p.SchedulePass(ctx, discard, s, start.Add(after)); n != want {
			t.Fatalf("%s: %d builds, want %d", what, n, want)
		}
	}
	pass(0, 1, "the first slot")
	pass(time.Hour, 0, "the next, while the first runs")
	pass(23*time.Hour, 0, "23 hours on, while the first still runs")
	pass(24*time.Hour, 1, "24 hours on, the first hung")
	h.builds.BuildErr = orchestrator.ErrNotOurs // the job of that ID is someone else's now
	pass(25*time.Hour, 1, "a job that is not the bot's build")
}

// The issue a schedule's state names is acted on only while it is the bot's own issue of
// the schedule: a number that is now someone's issue of the same title, or a pull request
// (a repository created again), is forgotten, and a failure opens the bot's own.
func TestScheduleIssueNotTheBotsIsForgotten(t *testing.T) {
	states := &registrytest.Schedules{}
	h := scheduleHarness(t, &registrytest.Claims{}, states, registry.Schedule{Name: "nightly", Cron: "0 3 * * *", Branch: "main"})
	ctx := context.Background()
	title := `Scheduled build "nightly" is failing`
	h.forge.AddIssue(forgetest.Issue{Number: 7, Title: title, Author: "mallory", Open: true})
	h.forge.AddIssue(forgetest.Issue{Number: 8, Title: title, Author: "albatros", Open: true, PullRequest: true})
	s := pipeline.Schedules{Registry: listed{h.repos}}
	for i, number := range []int64{7, 8} {
		if _, err := states.UpdateScheduleState(ctx, cloneURL, "nightly", func(st *registry.ScheduleState) bool {
			st.Issue, st.Failing = number, true
			return true
		}); err != nil {
			t.Fatal(err)
		}
		if n := h.p.SchedulePass(ctx, discard, s, at(t, "2026-12-04T03:00:10Z").AddDate(0, 0, i)); n != 1 {
			t.Fatalf("day %d: %d builds", i, n)
		}
		d := h.builds.Started()[len(h.builds.Started())-1]
		out := orchestrator.Outcome{Namespace: d.Namespace, JobID: d.JobID, Result: orchestrator.Failure, Description: "exit 1", Final: true}
		if err := h.p.Report(ctx, discard, out); err != nil {
			t.Fatal(err)
		}
		h.builds.End(out)
		if c, _ := h.forge.Comments(ctx, appRepo, number); len(c) != 0 {
			t.Errorf("#%d, not the bot's issue, commented on: %+v", number, c)
		}
		st, _ := states.ScheduleState(ctx, cloneURL, "nightly")
		if st.Issue == number || !st.Failing {
			t.Errorf("after a failure, with #%d recorded: %+v", number, st)
		}
	}
	issues := h.forge.Issues()
	if len(issues) != 4 || !issues[0].Open || !issues[1].Open || issues[2].Author != "albatros" || issues[3].Author != "albatros" {
		t.Errorf("issues: %+v, want the two left alone and the bot's own two", issues)
	}
}

// Two builds of one schedule whose failures are reported at once (two bots): one issue is
// opened and the other failure comments on it.
func TestTwoFailuresToldAtOnceOpenOneIssue(t *testing.T) {
	states := &registrytest.Schedules{}
	h := scheduleHarness(t, &registrytest.Claims{}, states, registry.Schedule{Name: "nightly", Cron: "0 3 * * *", Branch: "main"})
	entry, _ := h.repos.Repo(context.Background(), cloneURL)
	ctx := context.Background()
	var outs []orchestrator.Outcome
	// Of two commits, so that neither build's status hides the other's.
	for i, commit := range []string{sha, sha2} {
		d, err := h.p.Start(ctx, discard, entry, cloneURL, pipeline.Started{Cause: pipeline.CauseSchedule, Branch: "main", Commit: commit, Flavor: "default", Key: fmt.Sprintf("nightly@%d", i), Schedule: "nightly"})
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, orchestrator.Outcome{Namespace: d.Namespace, JobID: d.JobID, Result: orchestrator.Failure, Description: "exit 1", Final: true})
	}
	var wg sync.WaitGroup
	for _, out := range outs {
		wg.Go(func() {
			if err := h.p.Report(ctx, discard, out); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	issues := h.forge.Issues()
	if len(issues) != 1 {
		t.Fatalf("%d issues, want 1: %+v", len(issues), issues)
	}
	if c, _ := h.forge.Comments(ctx, appRepo, issues[0].Number); len(c) != 1 || !strings.Contains(c[0].Body, "Failed again") {
		t.Errorf("comments: %+v, want one Failed again", c)
	}
	if st, _ := states.ScheduleState(ctx, cloneURL, "nightly"); st.Telling != "" || len(st.Reported) != 2 {
		t.Errorf("state after both: %+v", st)
	}
}

// A hand-written entry's schedule of a flavor the repository does not build is not built,
// and its state says why.
func TestScheduleOfAnotherFlavorNotBuilt(t *testing.T) {
	states := &registrytest.Schedules{}
	h := scheduleHarness(t, &registrytest.Claims{}, states, registry.Schedule{Name: "big", Cron: "* * * * *", Branch: "main", Flavor: "large"})
	ctx := context.Background()
	if n := h.p.SchedulePass(ctx, discard, pipeline.Schedules{Registry: listed{h.repos}}, at(t, "2026-12-04T10:00:30Z")); n != 0 {
		t.Fatalf("%d builds, want 0", n)
	}
	if st, _ := states.ScheduleState(ctx, cloneURL, "big"); !strings.Contains(st.Problem, `flavor "large" is not one of the repository's (default)`) {
		t.Errorf("state: %+v", st)
	}
	if d := h.builds.Dispatches(); len(d) != 0 {
		t.Errorf("dispatched: %+v", d)
	}
}
