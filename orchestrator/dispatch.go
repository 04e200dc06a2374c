package orchestrator

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"time"

	nomad "github.com/hashicorp/nomad/api"
)

// DispatchRequest is one build to start.
type DispatchRequest struct {
	Builder Builder
	// Meta holds RequiredMeta and any of OptionalMeta; optional keys the builder does not
	// accept are left out rather than failing the dispatch.
	Meta map[string]string
	// Payload is the secrets file. HasSecrets says whether it holds secrets: a builder that
	// forbids payloads can run builds without secrets, not builds that need them.
	Payload    []byte
	HasSecrets bool
	// IdempotencyToken makes Nomad return the existing build instead of starting a second
	// one for the same token, as long as Nomad still holds the first. Nomad checks it by
	// scanning every child of the builder it holds: a caller that knows no other dispatch
	// of the build can be under way (it holds the build's claim) leaves it empty.
	IdempotencyToken string
	// Key names the build (the pipeline's build key) in its job's ID and in the ledger, so
	// that ByKey finds it with a prefix lookup, whatever the number of the builder's
	// children; empty, the build gets a random key of its own.
	Key string
	// Cause is what started the build (push, tag, pull_request, rebuild, approve,
	// reconciler) and Sender who, as the forge names them: kept in the build's record,
	// for its history.
	Cause, Sender string
	// Schedule is the name of the repository's schedule a scheduled build (Cause
	// "schedule") is of; kept in its record, for its result to reach the schedule's issue.
	Schedule string
	// Holder is the installation's organization that held the repository's name at the
	// dispatch (registry.Repo.Holder; 0 for an entry written by hand): the build is its,
	// and reported and archived as its only.
	Holder int64
}

// ErrMaybeDispatched marks a dispatch whose request may have reached Nomad, and may yet
// start the build, although no answer said so (a timeout, a broken connection, a 5xx):
// unlike Nomad refusing it (4xx), or being unreachable, it does not say that nothing was
// started.
var ErrMaybeDispatched = errors.New("the dispatch may have been made")

// Dispatched is a started (or, for a repeated token, already started) build.
type Dispatched struct {
	Namespace string
	JobID     string
	// Index is Nomad's index of the job's creation: later dispatches have higher ones.
	Index uint64
	// Duplicate is true when the token matched an existing build: nothing new was started.
	Duplicate bool
}

// Dispatch starts a build of req.Builder after checking its contract, and records it in
// the ledger first.
func (o *Orchestrator) Dispatch(ctx context.Context, req DispatchRequest) (Dispatched, error) {
	if req.Key == "" {
		req.Key = rand.Text() // a build of its own, that no other dispatch names
	}
	job, err := o.builder(ctx, req.Builder)
	if err != nil {
		return Dispatched{}, err
	}
	p := job.ParameterizedJob
	accepted := append(slices.Clone(p.MetaRequired), p.MetaOptional...)
	meta := maps.Clone(req.Meta)
	for _, k := range OptionalMeta {
		if !slices.Contains(accepted, k) {
			delete(meta, k)
		}
	}
	payload := req.Payload
	if p.Payload == "forbidden" {
		if req.HasSecrets {
			return Dispatched{}, fmt.Errorf("builder %s %w: it forbids payloads, so it cannot receive the secrets", req.Builder, ErrContract)
		}
		payload = nil
	}
	rec := Record{
		Namespace: req.Builder.Namespace, Builder: req.Builder.Job,
		Repo: req.Meta["REPO_URL"], Commit: req.Meta["COMMIT"], Flavor: req.Meta["FLAVOR"], Meta: meta,
		Secrets: req.HasSecrets, At: time.Now().UTC(), Cause: req.Cause, Sender: req.Sender, Schedule: req.Schedule,
		Holder: &req.Holder,
	}
	if err := o.ledger.Record(ctx, KeyDigest(req.Key), rec); err != nil {
		return Dispatched{}, fmt.Errorf("dispatch %s: %w", req.Builder, err)
	}
	w := &nomad.WriteOptions{Namespace: req.Builder.Namespace, IdempotencyToken: req.IdempotencyToken}
	resp, _, err := o.c.Jobs().DispatchOpts(&nomad.DispatchOptions{
		JobID:            req.Builder.Job,
		Meta:             meta,
		Payload:          payload,
		IdPrefixTemplate: idPrefix(req.Key),
	}, w.WithContext(ctx))
	if err != nil {
		if !refused(err) {
			err = fmt.Errorf("%w: %w", ErrMaybeDispatched, err)
		}
		return Dispatched{}, fmt.Errorf("dispatch %s: %w", req.Builder, err)
	}
	o.dispatchedIn(req.Builder.Namespace)
	// The job itself, in its record: a look-alike of it (the same digest and meta, from
	// another tenant who may dispatch the builder) is then not the build. A record left
	// without it (Consul failing for 10 s) still asks for the digest and all of the meta.
	rec.JobID = resp.DispatchedJobID
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	for wait := 100 * time.Millisecond; o.ledger.Record(rctx, KeyDigest(req.Key), rec) != nil; wait *= 2 {
		select { // tried again a few times: a record without its job is weaker
		case <-rctx.Done():
		case <-time.After(wait):
			continue
		}
		break
	}
	cancel()
	// A repeated idempotency token returns the existing job and creates no evaluation.
	return Dispatched{Namespace: req.Builder.Namespace, JobID: resp.DispatchedJobID, Index: resp.JobCreateIndex, Duplicate: resp.EvalID == ""}, nil
}

// refused reports whether a dispatch's error says that Nomad made nothing: it could not be
// reached, or it answered 4xx (the request itself was refused). A 5xx answer can come after
// the write (a forward to the leader broken mid-call, a leader change): it is not this,
// although Nomad 1.6 also answers 500 to a dispatch it refuses (missing meta, say); a
// claim then waits to go stale before the next dispatch of its key, which is safe.
func refused(err error) bool {
	var answered nomad.UnexpectedResponseError
	var op *net.OpError
	return (errors.As(err, &answered) && answered.StatusCode() < 500) || (errors.As(err, &op) && op.Op == "dial")
}

// idPrefix is Nomad's IdPrefixTemplate for a build of key: the bot's marker, then the
// key's digest (the job ID's characters stay plain, whatever the key), which names the
// build's record in the ledger.
func idPrefix(key string) string {
	return dispatchMarker + "-" + KeyDigest(key)
}

// ByKey finds the build of b dispatched with req.Key key, by the prefix of its job ID: a
// lookup in Nomad's index of job IDs, not a scan of the builder's children. found is false
// when Nomad holds none (never dispatched, or collected). Of several (a dispatch doubled
// despite the claims), the first is returned.
func (o *Orchestrator) ByKey(ctx context.Context, b Builder, key string) (d Dispatched, found bool, err error) {
	if key == "" {
		return Dispatched{}, false, errors.New("find a build by key: no key")
	}
	prefix := b.Job + structsDispatchSuffix + idPrefix(key) + "-"
	q := (&nomad.QueryOptions{Namespace: b.Namespace, Prefix: prefix}).WithContext(ctx)
	jobs, _, err := o.c.Jobs().List(q)
	if err != nil {
		return Dispatched{}, false, fmt.Errorf("find the build of key in %s: %w", b, err)
	}
	for _, j := range jobs {
		if j.ParentID != b.Job || !strings.HasPrefix(j.ID, prefix) {
			continue
		}
		if !found || j.CreateIndex < d.Index {
			d, found = Dispatched{Namespace: b.Namespace, JobID: j.ID, Index: j.CreateIndex, Duplicate: true}, true
		}
	}
	return d, found, nil
}

// structsDispatchSuffix is what Nomad puts between a parameterized job's ID and its
// dispatched children's (structs.DispatchLaunchSuffix).
const structsDispatchSuffix = "/dispatch-"

// Discard stops a build and purges it from Nomad, as if never dispatched: for a build that
// stands aside for an earlier one of its key (its log, status and comment row would only
// hide the earlier one's). Discarding one that is gone is not an error.
func (o *Orchestrator) Discard(ctx context.Context, ns, id string) error {
	w := (&nomad.WriteOptions{Namespace: ns}).WithContext(ctx)
	if _, _, err := o.c.Jobs().Deregister(id, true, w); err != nil && !isNotFound(err) {
		return fmt.Errorf("discard %s in %s: %w", id, ns, err)
	}
	return nil
}

// Stop stops a build (Nomad's job stop, kept for its logs); stopping one that has ended or
// is gone is not an error.
func (o *Orchestrator) Stop(ctx context.Context, ns, id string) error {
	w := (&nomad.WriteOptions{Namespace: ns}).WithContext(ctx)
	if _, _, err := o.c.Jobs().Deregister(id, false, w); err != nil && !isNotFound(err) {
		return fmt.Errorf("stop %s in %s: %w", id, ns, err)
	}
	return nil
}
