package pipeline_test

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/albatros-ci/albatros/forge"
	"github.com/albatros-ci/albatros/orchestrator"
	"github.com/albatros-ci/albatros/registry"
)

// fakeBuilds is Nomad as the pipeline sees it. Like Nomad, a dispatch with a token it has
// seen returns the build it started for that token, marked Duplicate. It records every
// dispatch request, and every pair of dispatches with the same token that overlapped.
type fakeBuilds struct {
	mu sync.Mutex
	// dispatchErr fails the dispatches of a flavor.
	dispatchErr map[string]error
	// ended holds, by flavor, the outcome of builds that end as soon as they are dispatched;
	// the fake fills in their namespace and job ID.
	ended map[string]orchestrator.Outcome
	// outcomeErr is returned by Outcome when set.
	outcomeErr error
	// buildErr is returned by Build when set.
	buildErr error
	// hold is how long a dispatch takes, so that concurrent dispatches can overlap.
	hold time.Duration

	dispatches []orchestrator.DispatchRequest // every Dispatch call, in order
	outcomeOf  []string                       // the job IDs Outcome was asked about
	jobs       map[string]*orchestrator.Build // dispatched builds by "<ns> <job ID>"
	byToken    map[string]orchestrator.Dispatched
	inflight   map[string]int
	overlaps   []string // tokens dispatched while another dispatch with the same token ran
	seq        int
}

func (f *fakeBuilds) Dispatch(_ context.Context, req orchestrator.DispatchRequest) (orchestrator.Dispatched, error) {
	f.mu.Lock()
	f.dispatches = append(f.dispatches, req)
	if f.inflight == nil {
		f.inflight = map[string]int{}
	}
	f.inflight[req.IdempotencyToken]++
	if f.inflight[req.IdempotencyToken] > 1 {
		f.overlaps = append(f.overlaps, req.IdempotencyToken)
	}
	hold := f.hold
	f.mu.Unlock()

	time.Sleep(hold)

	f.mu.Lock()
	defer f.mu.Unlock()
	f.inflight[req.IdempotencyToken]--
	if err := f.dispatchErr[req.Meta["FLAVOR"]]; err != nil {
		return orchestrator.Dispatched{}, err
	}
	if d, ok := f.byToken[req.IdempotencyToken]; ok && req.IdempotencyToken != "" {
		d.Duplicate = true
		return d, nil
	}
	f.seq++
	d := orchestrator.Dispatched{
		Namespace: req.Builder.Namespace,
		JobID:     fmt.Sprintf("%s/dispatch-albatros-%d-%08x", req.Builder.Job, 1700000000+f.seq, f.seq),
	}
	f.addBuild(d.Namespace, d.JobID, req.Builder.Job, req.Meta)
	f.jobs[d.Namespace+" "+d.JobID].Payload = req.Payload
	if f.byToken == nil {
		f.byToken = map[string]orchestrator.Dispatched{}
	}
	f.byToken[req.IdempotencyToken] = d
	return d, nil
}

// addBuild makes a build known to the fake, as if dispatched earlier; f.mu must be held or
// the fake not yet shared.
func (f *fakeBuilds) addBuild(ns, id, builder string, meta map[string]string) {
	if f.jobs == nil {
		f.jobs = map[string]*orchestrator.Build{}
	}
	f.jobs[ns+" "+id] = &orchestrator.Build{Namespace: ns, ID: id, Builder: builder, Meta: maps.Clone(meta), Status: "pending"}
}

func (f *fakeBuilds) Build(_ context.Context, ns, id string) (*orchestrator.Build, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.buildErr != nil {
		return nil, f.buildErr
	}
	b, ok := f.jobs[ns+" "+id]
	if !ok {
		return nil, fmt.Errorf("build %s in %s: %w", id, ns, orchestrator.ErrNotFound)
	}
	c := *b
	c.Meta = maps.Clone(b.Meta)
	return &c, nil
}

func (f *fakeBuilds) Outcome(_ context.Context, ns, id string) (orchestrator.Outcome, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.outcomeOf = append(f.outcomeOf, id)
	if f.outcomeErr != nil {
		return orchestrator.Outcome{}, false, f.outcomeErr
	}
	b, ok := f.jobs[ns+" "+id]
	if !ok {
		return orchestrator.Outcome{}, false, fmt.Errorf("allocations of %s: %w", id, orchestrator.ErrNotFound)
	}
	out, ok := f.ended[b.Meta["FLAVOR"]]
	if !ok {
		return orchestrator.Outcome{}, false, nil
	}
	out.Namespace, out.JobID = ns, id
	return out, true, nil
}

// requests returns a copy of the dispatch requests so far.
func (f *fakeBuilds) requests() []orchestrator.DispatchRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]orchestrator.DispatchRequest(nil), f.dispatches...)
}

// fakeForge is a forge that keeps the statuses written to it, and, like Gitea, answers
// LatestStatus with the newest status of a commit in a context.
type fakeForge struct {
	mu        sync.Mutex
	setErr    error // SetStatus fails (and keeps nothing) when set
	latestErr error // LatestStatus fails when set

	statuses []forge.Status // every status written, oldest first
	reads    int            // LatestStatus calls
}

func (f *fakeForge) SetStatus(_ context.Context, s forge.Status) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.setErr != nil {
		return f.setErr
	}
	f.statuses = append(f.statuses, s)
	return nil
}

func (f *fakeForge) LatestStatus(_ context.Context, repo forge.Repo, commit, context string) (forge.Status, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	if f.latestErr != nil {
		return forge.Status{}, false, f.latestErr
	}
	for i := len(f.statuses) - 1; i >= 0; i-- {
		s := f.statuses[i]
		if s.Repo.FullName == repo.FullName && s.Commit == commit && s.Context == context {
			return s, true, nil
		}
	}
	return forge.Status{}, false, nil
}

// written returns a copy of the statuses written so far.
func (f *fakeForge) written() []forge.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]forge.Status(nil), f.statuses...)
}

// writeOnlyForge is a forge without the LatestStatus capability.
type writeOnlyForge struct{ f *fakeForge }

func (w writeOnlyForge) SetStatus(ctx context.Context, s forge.Status) error {
	return w.f.SetStatus(ctx, s)
}

// fakeForges is the ForgeFor function: it hands out one forge and records what it was asked.
type fakeForges struct {
	mu    sync.Mutex
	forge forge.Forge
	repo  forge.Repo
	err   error

	calls []forgeCall
}

type forgeCall struct {
	entry    *registry.Repo
	cloneURL string
}

func (f *fakeForges) For(entry *registry.Repo, cloneURL string) (forge.Forge, forge.Repo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, forgeCall{entry, cloneURL})
	if f.err != nil {
		return nil, forge.Repo{}, f.err
	}
	return f.forge, f.repo, nil
}
