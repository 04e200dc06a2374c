package orchestrator

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	nomad "github.com/hashicorp/nomad/api"
)

// Result is what a build came to. The values are the commit status states of the forges.
type Result string

// Build results.
const (
	Pending Result = "pending" // queued or running
	Success Result = "success" // the executor task exited 0
	Failure Result = "failure" // the executor task exited non-zero: the build failed
	Error   Result = "error"   // the build could not run to its end: placement, driver, node lost, stopped
)

// Outcome is a build's result, learned from Nomad.
type Outcome struct {
	Namespace   string
	JobID       string
	Result      Result
	Description string
	// Final is false for news about a build that has not ended (waiting for resources).
	Final bool
	// Index is the Nomad event index the outcome was learned at; 0 when it was asked for.
	Index uint64
	// Started and Finished are the executor task's, when it ran.
	Started, Finished time.Time
}

// Outcome returns a build's result if it has ended; done is false while it is queued or
// running. A build that has not ended costs Nomad one read of the job's list entry (the
// check after every pending status); one that has, its allocations too.
func (o *Orchestrator) Outcome(ctx context.Context, ns, jobID string) (out Outcome, done bool, err error) {
	// The job's list entry (found by its ID as a prefix), not the job: Nomad answers it
	// for a fraction of the cost of encoding the whole job.
	q := (&nomad.QueryOptions{Namespace: ns, Prefix: jobID}).WithContext(ctx)
	jobs, _, err := o.c.Jobs().List(q)
	if err != nil {
		return Outcome{}, false, fmt.Errorf("build %s in %s: %w", jobID, ns, err)
	}
	i := slices.IndexFunc(jobs, func(j *nomad.JobListStub) bool { return j.ID == jobID })
	if i < 0 {
		return Outcome{}, false, fmt.Errorf("build %s in %s: %w", jobID, ns, ErrNotFound)
	}
	if jobs[i].Status != "dead" {
		return Outcome{}, false, nil
	}
	q = (&nomad.QueryOptions{Namespace: ns}).WithContext(ctx)
	stubs, _, err := o.c.Jobs().Allocations(jobID, true, q)
	if err != nil {
		return Outcome{}, false, fmt.Errorf("allocations of %s: %w", jobID, err)
	}
	newest := newestAlloc(stubs)
	if newest == nil {
		return o.unplacedOutcome(ctx, ns, jobID), true, nil
	}
	if !isTerminal(newest.ClientStatus) {
		return Outcome{}, false, nil // stopped, and its allocation is stopping
	}
	a, _, err := o.c.Allocations().Info(newest.ID, q)
	if err != nil {
		return Outcome{}, false, fmt.Errorf("allocation %s: %w", newest.ID, err)
	}
	out, done = allocOutcome(a)
	return out, done, nil
}

// newestAlloc is the build's latest allocation (the builders do not reschedule, but a
// user's may), or nil.
func newestAlloc(stubs []*nomad.AllocationListStub) *nomad.AllocationListStub {
	var newest *nomad.AllocationListStub
	for _, s := range stubs {
		if newest == nil || s.CreateIndex > newest.CreateIndex {
			newest = s
		}
	}
	return newest
}

// allocOutcome reads the result of a build from its allocation; ok is false while the
// allocation has not ended.
func allocOutcome(a *nomad.Allocation) (out Outcome, ok bool) {
	out = Outcome{Namespace: a.Namespace, JobID: a.JobID, Final: true}
	switch a.ClientStatus {
	case nomad.AllocClientStatusComplete, nomad.AllocClientStatusFailed:
	case nomad.AllocClientStatusLost:
		out.Result, out.Description = Error, "the node running the build was lost"
		return out, true
	default:
		return out, false
	}
	ts := a.TaskStates[Task]
	if ts == nil || ts.StartedAt.IsZero() {
		out.Result = Error
		out.Description = "the build did not start: " + firstFailure(ts, "no task "+Task)
		return out, true
	}
	out.Started, out.Finished = ts.StartedAt, ts.FinishedAt
	took := ""
	if !ts.FinishedAt.IsZero() {
		took = " after " + ts.FinishedAt.Sub(ts.StartedAt).Round(time.Second).String()
	}
	if killed(ts) && (a.DesiredStatus == nomad.AllocDesiredStatusStop || a.DesiredStatus == nomad.AllocDesiredStatusEvict) {
		out.Result, out.Description = Error, "the build was stopped"+took
		return out, true
	}
	code, oom, terminated := exitCode(ts)
	switch {
	case oom:
		out.Result, out.Description = Failure, "the build ran out of memory"+took
	case a.ClientStatus == nomad.AllocClientStatusComplete && (!terminated || code == 0):
		out.Result, out.Description = Success, "the build passed"+took
	case terminated && code != 0:
		out.Result, out.Description = Failure, fmt.Sprintf("the build failed with exit code %d%s", code, took)
	default:
		out.Result, out.Description = Error, "the build did not finish: "+firstFailure(ts, "allocation "+a.ClientStatus)
	}
	return out, true
}

// exitCode finds the executor's last Terminated event.
func exitCode(ts *nomad.TaskState) (code int, oom, ok bool) {
	for _, e := range slices.Backward(ts.Events) {
		if e.Type != nomad.TaskTerminated {
			continue
		}
		if _, err := fmt.Sscan(e.Details["exit_code"], &code); err != nil {
			code = e.ExitCode
		}
		return code, e.Details["oom_killed"] == "true", true
	}
	return 0, false, false
}

func killed(ts *nomad.TaskState) bool {
	for _, e := range ts.Events {
		if e.Type == nomad.TaskKilled || e.Type == nomad.TaskKilling {
			return true
		}
	}
	return false
}

// firstFailure is the first event that failed the task, in Nomad's own words.
func firstFailure(ts *nomad.TaskState, fallback string) string {
	if ts == nil {
		return fallback
	}
	for _, e := range ts.Events {
		switch e.Type {
		case nomad.TaskDriverFailure, nomad.TaskSetupFailure, nomad.TaskFailedValidation, "Task hook failed", nomad.TaskArtifactDownloadFailed:
			msg := e.DisplayMessage
			if msg == "" {
				msg = e.Type
			}
			return e.Type + ": " + msg
		}
	}
	return fallback
}

// evalOutcome reads a placement failure from an evaluation of a build. A failure no node in
// the cluster could ever overcome (no node has the driver, a constraint filters every node)
// is an Error; a cluster that is only full leaves the build queued (Pending, not final).
func evalOutcome(ev *nomad.Evaluation) (out Outcome, ok bool) {
	if len(ev.FailedTGAllocs) == 0 {
		return Outcome{}, false
	}
	out = Outcome{Namespace: ev.Namespace, JobID: ev.JobID}
	m := ev.FailedTGAllocs[Group]
	if m == nil {
		for _, v := range ev.FailedTGAllocs {
			m = v
			break
		}
	}
	if m.NodesExhausted > 0 {
		out.Result = Pending
		out.Description = "waiting for resources: " + joinCounts(m.DimensionExhausted, "the cluster is full")
		return out, true
	}
	out.Result, out.Final = Error, true
	switch {
	case m.NodesEvaluated == 0:
		out.Description = "no node can run this build: no node in its datacenters and node pool"
	default:
		reasons := maps.Clone(m.ConstraintFiltered)
		if reasons == nil {
			reasons = map[string]int{}
		}
		for class, n := range m.ClassFiltered {
			reasons["node class "+class] += n
		}
		out.Description = fmt.Sprintf("no node can run this build: %d of %d nodes filtered out (%s)",
			m.NodesFiltered, m.NodesEvaluated, joinCounts(reasons, "constraints"))
	}
	return out, true
}

func joinCounts(m map[string]int, fallback string) string {
	if len(m) == 0 {
		return fallback
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s: %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
