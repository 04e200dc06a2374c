package pipeline

import (
	"context"
	"errors"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/albatros-ci/albatros/orchestrator"
	"github.com/albatros-ci/albatros/registry"
)

// Reporter reports build outcomes in the background, a few at a time, the outcomes of one
// build one after the other; each is retried with backoff while the forge, Nomad or Consul
// cannot be reached, up to a bound, and then left to the reconciler. A slow or absent forge
// therefore holds up neither other builds nor the event stream. Its Watermark is the event
// index up to which every outcome has been reported or given up on: where a bot that
// restarts resumes the event stream.
type Reporter struct {
	p    *Pipeline
	log  *slog.Logger
	opts ReporterOptions
	sem  chan struct{}
	jobs keyedMutex
	wg   sync.WaitGroup

	mu       sync.Mutex
	inflight map[uint64]int // event index → outcomes of it not yet done
	last     uint64         // the last index whose outcomes were all handed over
}

// ReporterOptions bound a Reporter's work.
type ReporterOptions struct {
	// Workers is how many outcomes are reported at once (8 when 0).
	Workers int
	// Backoff is the first wait before a retry (1 s when 0); it doubles up to a minute.
	Backoff time.Duration
	// GiveUp is how long an outcome is retried (10 min when 0).
	GiveUp time.Duration
}

// NewReporter returns a reporter of p's outcomes.
func NewReporter(p *Pipeline, log *slog.Logger, opts ReporterOptions) *Reporter {
	if opts.Workers <= 0 {
		opts.Workers = 8
	}
	if opts.Backoff <= 0 {
		opts.Backoff = time.Second
	}
	if opts.GiveUp <= 0 {
		opts.GiveUp = 10 * time.Minute
	}
	return &Reporter{p: p, log: log, opts: opts, sem: make(chan struct{}, opts.Workers), inflight: map[uint64]int{}}
}

// Report reports out in the background until it is written, given up on, or ctx ends.
func (r *Reporter) Report(ctx context.Context, out orchestrator.Outcome) {
	r.mu.Lock()
	r.inflight[out.Index]++
	r.mu.Unlock()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		finished := false // abandoned outcomes (ctx ended) hold the watermark
		defer func() {
			if p := recover(); p != nil {
				r.log.Error("panic while reporting a build result", "job", out.JobID, "panic", p, "stack", string(debug.Stack()))
				finished = true
			}
			if finished {
				r.done(out.Index)
			}
		}()
		unlock := r.jobs.lock(out.Namespace + "/" + out.JobID)
		defer unlock()
		finished = r.report(ctx, out)
	}()
}

// report tries until the outcome is reported, cannot be, or the retries run out (true),
// or ctx ends (false). Each try holds one of the Workers, not the waits between them: a
// store or forge that keeps failing the reports of a few builds does not hold up the
// others.
func (r *Reporter) report(ctx context.Context, out orchestrator.Outcome) bool {
	deadline := time.Now().Add(r.opts.GiveUp)
	wait := r.opts.Backoff
	for attempt := 1; ; attempt++ {
		var err error
		if !r.working(ctx, func() {
			rctx, cancel := context.WithTimeout(ctx, time.Minute)
			err = r.p.Report(rctx, r.log, out)
			cancel()
		}) {
			return false
		}
		switch {
		case err == nil:
			return true
		case errors.Is(err, orchestrator.ErrNotFound) && !errors.Is(err, ErrArchive), errors.Is(err, registry.ErrNotFound) && !errors.Is(err, ErrArchive):
			r.log.Warn("build result not reported", "job", out.JobID, "result", out.Result, "err", err)
			return true
		case ctx.Err() != nil:
			return false
		case time.Now().Add(wait).After(deadline) && errors.Is(err, ErrArchive):
			// A status left pending for ever is worse than a log link that breaks once
			// Nomad collects the build.
			var uerr error
			if !r.working(ctx, func() {
				uctx, cancel := context.WithTimeout(ctx, time.Minute)
				uerr = r.p.ReportUnarchived(uctx, r.log, out)
				cancel()
			}) {
				return false
			}
			if uerr != nil {
				r.p.cfg.Observe.ReportGivenUp()
				r.log.Error("build result not reported: given up, left to the reconciler", "job", out.JobID, "result", out.Result, "attempts", attempt+1, "err", uerr)
			}
			return true
		case time.Now().Add(wait).After(deadline):
			r.p.cfg.Observe.ReportGivenUp()
			r.log.Error("build result not reported: given up, left to the reconciler", "job", out.JobID, "result", out.Result, "attempts", attempt, "err", err)
			return true
		}
		r.p.cfg.Observe.ReportRetried()
		r.log.Warn("build result not reported yet: retrying", "job", out.JobID, "result", out.Result, "attempt", attempt, "in", wait, "err", err)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Minute)
	}
}

// working runs f holding one of the Workers; false when ctx ended before one was free.
func (r *Reporter) working(ctx context.Context, f func()) bool {
	select {
	case r.sem <- struct{}{}:
	case <-ctx.Done():
		return false
	}
	defer func() { <-r.sem }()
	f()
	return true
}

func (r *Reporter) done(index uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.inflight[index]--; r.inflight[index] <= 0 {
		delete(r.inflight, index)
	}
}

// Handed says that every outcome of the events up to index has been handed to Report.
func (r *Reporter) Handed(index uint64) {
	r.mu.Lock()
	r.last = max(r.last, index)
	r.mu.Unlock()
}

// Watermark is the event index up to which every outcome handed over is done: the last
// index handed over, or just below the oldest outcome still being reported.
func (r *Reporter) Watermark() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	w := r.last
	for index := range r.inflight {
		if index > 0 && index-1 < w {
			w = index - 1
		}
	}
	return w
}

// Wait waits for the outcomes being reported; end their context first to stop retrying.
// Those stopped so hold the watermark below them.
func (r *Reporter) Wait() { r.wg.Wait() }

// Recover finds the builds that changed in Nomad after event index after (all of them
// when 0) by listing them, and reports each: the final status of one that ended, pending
// for one still queued or running (in case the bot stopped between its dispatch and its
// pending status). It is how a bot catches up on what its event stream cannot replay. The
// outcomes it hands over hold the watermark at after until they are done.
func (p *Pipeline) Recover(ctx context.Context, log *slog.Logger, r *Reporter, after uint64) (int, error) {
	all, err := p.cfg.Builds.Recent(ctx, "", maxRecover)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, s := range all {
		if s.ModifyIndex != 0 && s.ModifyIndex <= after {
			continue
		}
		out, done, err := p.cfg.Builds.Outcome(ctx, s.Namespace, s.ID)
		if err != nil {
			log.Warn("recover: build outcome", "job", s.ID, "err", err)
			continue
		}
		if !done {
			desc := "queued in Nomad"
			if s.State == "running" {
				desc = "running"
			}
			out = orchestrator.Outcome{Namespace: s.Namespace, JobID: s.ID, Result: orchestrator.Pending, Description: desc}
		}
		out.Index = after + 1
		r.Report(ctx, out)
		n++
	}
	return n, nil
}

// maxRecover bounds the builds a recovery lists.
const maxRecover = 100000
