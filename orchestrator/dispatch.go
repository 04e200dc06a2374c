package orchestrator

import (
	"context"
	"fmt"
	"maps"
	"slices"

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
	// one for the same token, as long as Nomad still holds the first.
	IdempotencyToken string
}

// Dispatched is a started (or, for a repeated token, already started) build.
type Dispatched struct {
	Namespace string
	JobID     string
	// Index is Nomad's index of the job's creation: later dispatches have higher ones.
	Index uint64
	// Duplicate is true when the token matched an existing build: nothing new was started.
	Duplicate bool
}

// Dispatch starts a build of req.Builder after checking its contract.
func (o *Orchestrator) Dispatch(ctx context.Context, req DispatchRequest) (Dispatched, error) {
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
	w := &nomad.WriteOptions{Namespace: req.Builder.Namespace, IdempotencyToken: req.IdempotencyToken}
	resp, _, err := o.c.Jobs().DispatchOpts(&nomad.DispatchOptions{
		JobID:            req.Builder.Job,
		Meta:             meta,
		Payload:          payload,
		IdPrefixTemplate: dispatchMarker,
	}, w.WithContext(ctx))
	if err != nil {
		return Dispatched{}, fmt.Errorf("dispatch %s: %w", req.Builder, err)
	}
	o.dispatchedIn(req.Builder.Namespace)
	// A repeated idempotency token returns the existing job and creates no evaluation.
	return Dispatched{Namespace: req.Builder.Namespace, JobID: resp.DispatchedJobID, Index: resp.JobCreateIndex, Duplicate: resp.EvalID == ""}, nil
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
