// Package orchestratortest holds a fake of Nomad as the bot sees it, for the tests of the
// packages that dispatch builds, report their outcomes and serve their logs: builds held in
// memory by namespace and job ID, idempotent dispatches, logs written in chunks, errors on
// demand, and a record of every call. It is for tests only; the orchestrator itself is
// tested against a real Nomad.
package orchestratortest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/albatros-ci/albatros/orchestrator"
	"github.com/albatros-ci/albatros/secrets"
)

// nomad is what the fake stands in for: the methods of the real orchestrator that the bot's
// packages call. Both implement it, so that the fake cannot drift from the real client.
type nomad interface {
	Dispatch(ctx context.Context, req orchestrator.DispatchRequest) (orchestrator.Dispatched, error)
	Build(ctx context.Context, ns, id string) (*orchestrator.Build, error)
	Outcome(ctx context.Context, ns, jobID string) (orchestrator.Outcome, bool, error)
	Follow(ctx context.Context, ns, jobID, logType string, w io.Writer) (orchestrator.Outcome, error)
	Recent(ctx context.Context, repoPrefix string, limit int) ([]orchestrator.Summary, error)
	Stop(ctx context.Context, ns, id string) error
	ByKey(ctx context.Context, b orchestrator.Builder, key string) (orchestrator.Dispatched, bool, error)
	Discard(ctx context.Context, ns, id string) error
}

var (
	_ nomad = (*orchestrator.Orchestrator)(nil)
	_ nomad = (*Fake)(nil)
)

// Fake is Nomad as the bot sees it. Like Nomad, a dispatch with a token it has seen returns
// the build it started for that token, marked Duplicate. It is safe for concurrent use; set
// its fields before sharing it.
type Fake struct {
	// DispatchErr fails the dispatches of a flavor (their FLAVOR meta).
	DispatchErr map[string]error
	// DispatchDelay is how long a dispatch takes, so that concurrent dispatches can overlap.
	DispatchDelay time.Duration
	// BuildErr, when set, is returned by every Build.
	BuildErr error
	// ByKeyErr, when set, is returned by every ByKey.
	ByKeyErr error
	// Ended holds, by flavor, the outcome of builds that end as soon as they are dispatched;
	// Outcome fills in their namespace and job ID. Builds of other flavors are still running.
	Ended map[string]orchestrator.Outcome
	// OutcomeErr, when set, is returned by every Outcome.
	OutcomeErr error

	// LogChunks is the log of every build, as Follow writes it: one Write per chunk.
	LogChunks []string
	// FollowHold, when set, stops Follow after the first chunk until it is closed (or the
	// context is done): a build still running.
	FollowHold chan struct{}
	// FollowOutcome and FollowErr are what Follow returns once it has written the log.
	FollowOutcome orchestrator.Outcome
	FollowErr     error

	mu         sync.Mutex
	builds     map[Ref]*orchestrator.Build
	byToken    map[string]orchestrator.Dispatched
	inflight   map[string]int
	seq        int
	dispatches []orchestrator.DispatchRequest
	started    []orchestrator.Dispatched
	overlaps   []string
	buildCalls []Ref
	outcomes   []Ref
	follows    []FollowCall
	stopped    []Ref
	discarded  []Ref
	endedJobs  map[Ref]orchestrator.Outcome
}

// End ends the build out names (its namespace and job ID) with out: Outcome returns it.
func (f *Fake) End(out orchestrator.Outcome) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.endedJobs == nil {
		f.endedJobs = map[Ref]orchestrator.Outcome{}
	}
	out.Final = true
	f.endedJobs[Ref{out.Namespace, out.JobID}] = out
}

// Ref names a build: Nomad keys jobs by namespace and ID.
type Ref struct {
	Namespace string
	ID        string
}

// FollowCall is one call of Follow.
type FollowCall struct {
	Namespace string
	ID        string
	LogType   string
}

// Dispatch starts a build of req.Builder in its namespace, with a job ID as Nomad makes
// them (<builder>/dispatch-albatros[-k<key>]-<unix time>-<id>), or returns the build already
// started for req.IdempotencyToken, marked Duplicate. It fails with DispatchErr of the flavor.
func (f *Fake) Dispatch(_ context.Context, req orchestrator.DispatchRequest) (orchestrator.Dispatched, error) {
	f.mu.Lock()
	f.dispatches = append(f.dispatches, req)
	if f.inflight == nil {
		f.inflight = map[string]int{}
	}
	f.inflight[req.IdempotencyToken]++
	if f.inflight[req.IdempotencyToken] > 1 {
		f.overlaps = append(f.overlaps, req.IdempotencyToken)
	}
	f.mu.Unlock()

	time.Sleep(f.DispatchDelay)

	f.mu.Lock()
	defer f.mu.Unlock()
	f.inflight[req.IdempotencyToken]--
	if err := f.DispatchErr[req.Meta["FLAVOR"]]; err != nil {
		return orchestrator.Dispatched{}, err
	}
	if d, ok := f.byToken[req.IdempotencyToken]; ok && req.IdempotencyToken != "" {
		d.Duplicate = true
		return d, nil
	}
	f.seq++
	d := orchestrator.Dispatched{
		Namespace: req.Builder.Namespace,
		JobID:     fmt.Sprintf("%s/dispatch-albatros%s-%d-%08x", req.Builder.Job, keyPart(req.Key), 1700000000+f.seq, f.seq),
		Index:     uint64(100 + f.seq),
	}
	f.addBuild(d.Namespace, d.JobID, req.Builder.Job, req.Meta, req.Payload, req.HasSecrets, "pending")
	b := f.builds[Ref{d.Namespace, d.JobID}]
	b.Cause, b.Sender, b.Schedule, b.Holder, b.HolderKnown = req.Cause, req.Sender, req.Schedule, req.Holder, true
	if f.byToken == nil {
		f.byToken = map[string]orchestrator.Dispatched{}
	}
	if req.IdempotencyToken != "" {
		f.byToken[req.IdempotencyToken] = d
	}
	f.started = append(f.started, d)
	return d, nil
}

// Discard forgets the build ns/id, as Nomad's purge does, and records it (Discarded).
func (f *Fake) Discard(_ context.Context, ns, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.builds, Ref{ns, id})
	f.started = slices.DeleteFunc(f.started, func(d orchestrator.Dispatched) bool { return d.Namespace == ns && d.JobID == id })
	f.discarded = append(f.discarded, Ref{Namespace: ns, ID: id})
	return nil
}

// Discarded returns the builds Discard purged, in order.
func (f *Fake) Discarded() []Ref {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.discarded)
}

// keyPart is what a build key adds to its job's ID.
func keyPart(key string) string {
	if key == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(key))
	return "-k" + hex.EncodeToString(sum[:10])
}

// ByKey finds the first build of b dispatched with key, by its job ID, as Nomad's prefix
// lookup does.
func (f *Fake) ByKey(_ context.Context, b orchestrator.Builder, key string) (orchestrator.Dispatched, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ByKeyErr != nil {
		return orchestrator.Dispatched{}, false, f.ByKeyErr
	}
	prefix := b.Job + "/dispatch-albatros" + keyPart(key) + "-"
	for _, d := range f.started {
		if key != "" && d.Namespace == b.Namespace && strings.HasPrefix(d.JobID, prefix) {
			d.Duplicate = true
			return d, true, nil
		}
	}
	return orchestrator.Dispatched{}, false, nil
}

// AddBuild makes a build known to the fake, as if dispatched earlier (by another bot, or
// before a restart), replacing any build of the same namespace and ID. Its Submitted time
// is the one its ID holds, if any. A payload that holds secret values makes it a build the
// ledger records as given the secrets.
func (f *Fake) AddBuild(ns, id, builder string, meta map[string]string, payload []byte, status string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.addBuild(ns, id, builder, meta, payload, len(secrets.Values(payload)) > 0, status)
}

// addBuild is AddBuild with f.mu held.
func (f *Fake) addBuild(ns, id, builder string, meta map[string]string, payload []byte, withSecrets bool, status string) {
	if f.builds == nil {
		f.builds = map[Ref]*orchestrator.Build{}
	}
	f.builds[Ref{ns, id}] = &orchestrator.Build{
		Namespace: ns, ID: id, Builder: builder, Meta: maps.Clone(meta), Payload: slices.Clone(payload),
		Secrets: withSecrets, Status: status, Submitted: submitted(id),
	}
}

// submitted returns the dispatch time a dispatched job's ID holds, or the zero time.
func submitted(id string) time.Time {
	_, rest, ok := strings.Cut(id, "/dispatch-albatros-")
	if !ok {
		return time.Time{}
	}
	parts := strings.Split(rest, "-") // [k<key>-]<unix time>-<id>
	if len(parts) < 2 {
		return time.Time{}
	}
	sec, err := strconv.ParseInt(parts[len(parts)-2], 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.Unix(sec, 0).UTC()
}

// Build returns a copy of the build ns/id (Stopped once Stop stopped it), BuildErr, or an error wrapping
// orchestrator.ErrNotFound for a build the fake does not know.
func (f *Fake) Build(_ context.Context, ns, id string) (*orchestrator.Build, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.buildCalls = append(f.buildCalls, Ref{ns, id})
	if f.BuildErr != nil {
		return nil, f.BuildErr
	}
	b, ok := f.builds[Ref{ns, id}]
	if !ok {
		return nil, fmt.Errorf("build %s in %s: %w", id, ns, orchestrator.ErrNotFound)
	}
	c := *b
	c.Meta, c.Payload = maps.Clone(b.Meta), slices.Clone(b.Payload)
	c.Stopped = slices.Contains(f.stopped, Ref{ns, id})
	return &c, nil
}

// Outcome returns the outcome the build was ended with (End) or Ended holds for its
// flavor (done), nothing while the build runs, OutcomeErr, or an error wrapping orchestrator.ErrNotFound for a build the fake
// does not know.
func (f *Fake) Outcome(_ context.Context, ns, jobID string) (orchestrator.Outcome, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.outcomes = append(f.outcomes, Ref{ns, jobID})
	if f.OutcomeErr != nil {
		return orchestrator.Outcome{}, false, f.OutcomeErr
	}
	b, ok := f.builds[Ref{ns, jobID}]
	if !ok {
		return orchestrator.Outcome{}, false, fmt.Errorf("allocations of %s: %w", jobID, orchestrator.ErrNotFound)
	}
	if out, ok := f.endedJobs[Ref{ns, jobID}]; ok {
		return out, true, nil
	}
	out, ok := f.Ended[b.Meta["FLAVOR"]]
	if !ok {
		return orchestrator.Outcome{}, false, nil
	}
	out.Namespace, out.JobID = ns, jobID
	return out, true, nil
}

// Follow writes LogChunks to w, one Write each, waiting on FollowHold after the first, and
// returns FollowOutcome and FollowErr; it returns an error wrapping orchestrator.ErrNotFound
// for a build the fake does not know. Every log type gets the same log.
func (f *Fake) Follow(ctx context.Context, ns, jobID, logType string, w io.Writer) (orchestrator.Outcome, error) {
	f.mu.Lock()
	f.follows = append(f.follows, FollowCall{Namespace: ns, ID: jobID, LogType: logType})
	_, known := f.builds[Ref{ns, jobID}]
	f.mu.Unlock()
	if !known {
		return orchestrator.Outcome{}, fmt.Errorf("logs of %s in %s: %w", jobID, ns, orchestrator.ErrNotFound)
	}
	for i, c := range f.LogChunks {
		if _, err := io.WriteString(w, c); err != nil {
			return orchestrator.Outcome{}, err
		}
		if i == 0 && f.FollowHold != nil {
			select {
			case <-f.FollowHold:
			case <-ctx.Done():
				return orchestrator.Outcome{}, ctx.Err()
			}
		}
	}
	return f.FollowOutcome, f.FollowErr
}

// Dispatches returns every dispatch request so far, in order, duplicates and failures
// included.
func (f *Fake) Dispatches() []orchestrator.DispatchRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.dispatches)
}

// Started returns the builds Dispatch started, in order: not the duplicates.
func (f *Fake) Started() []orchestrator.Dispatched {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.started)
}

// Overlaps returns the tokens dispatched while another dispatch with the same token ran,
// once per such dispatch.
func (f *Fake) Overlaps() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.overlaps)
}

// BuildCalls returns the builds Build was asked for, in order.
func (f *Fake) BuildCalls() []Ref {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.buildCalls)
}

// OutcomeCalls returns the builds Outcome was asked about, in order.
func (f *Fake) OutcomeCalls() []Ref {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.outcomes)
}

// FollowCalls returns the calls of Follow, in order.
func (f *Fake) FollowCalls() []FollowCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.follows)
}

// Recent lists the builds of repositories whose clone URL starts with repoPrefix, newest
// first (by submit time, then by dispatch order), at most limit: state "queued" for a
// build whose flavor has no Ended outcome and which was not stopped, else the outcome's
// result ("error" for a stopped one).
func (f *Fake) Recent(_ context.Context, repoPrefix string, limit int) ([]orchestrator.Summary, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []orchestrator.Summary
	for ref, b := range f.builds {
		if !strings.HasPrefix(b.Meta["REPO_URL"], repoPrefix) {
			continue
		}
		state := "queued"
		if out, ok := f.Ended[b.Meta["FLAVOR"]]; ok {
			state = string(out.Result)
		}
		stopped := slices.Contains(f.stopped, ref)
		if stopped {
			state = string(orchestrator.Error)
		}
		out = append(out, orchestrator.Summary{Namespace: ref.Namespace, ID: ref.ID, Meta: maps.Clone(b.Meta), State: state, Submitted: b.Submitted, Stopped: stopped, Secrets: b.Secrets, Cause: b.Cause,
			Holder: b.Holder, HolderKnown: b.HolderKnown})
	}
	slices.SortFunc(out, func(a, b orchestrator.Summary) int {
		if c := b.Submitted.Compare(a.Submitted); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// Stop records that ns/id was stopped; Recent then says it ended in error.
func (f *Fake) Stop(_ context.Context, ns, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stopped = append(f.stopped, Ref{ns, id})
	return nil
}

// Stopped returns the builds Stop stopped, in order.
func (f *Fake) Stopped() []Ref {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.stopped)
}

// Forget drops the build ns/id, as Nomad's garbage collection does: Build, Outcome, Follow
// and Recent no longer know it.
func (f *Fake) Forget(ns, id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.builds, Ref{ns, id})
}

// SetHolder records the build ns/id as dispatched for the installation's organization
// holder (orchestrator.Build.Holder), as the ledger does.
func (f *Fake) SetHolder(ns, id string, holder int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b := f.builds[Ref{ns, id}]
	b.Holder, b.HolderKnown = holder, true
}
