package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/albatros-ci/albatros/forge"
	"github.com/albatros-ci/albatros/orchestrator"
	"github.com/albatros-ci/albatros/registry"
)

// protocol is the exactly-once protocol of builds and reports across bots (see the package
// doc): claims in Consul, dispatches through Nomad, each tolerated failure logged.
type protocol struct {
	claims   claims // nil: one bot, every dispatch and report its own
	builds   builds
	log      *slog.Logger
	observe  Observer
	inflight keyedMutex // dispatches of a key in this bot, one at a time
}

// settle records that key's claim made ns/jobID (a build, or a report written). A
// settlement that fails is tolerated, and logged: the claim then looks abandoned once
// stale (registry.ClaimStale), and the bot that takes it over finds the build by its key
// (a dispatch) or looks at the forge first (a report), so nothing is done twice.
func (c *protocol) settle(ctx context.Context, key, ns, jobID string) {
	if err := c.claims.Settle(ctx, key, ns, jobID); err != nil {
		c.log.Warn("claim not settled: it will be taken over once stale", "key", key, "job", jobID, "err", err)
	}
}

// release gives key's claim up (nothing was made under it), so that the next delivery
// claims it at once. A release that fails is tolerated, and logged: the claim then waits
// to go stale before it is taken over.
func (c *protocol) release(ctx context.Context, key string) {
	if err := c.claims.Release(ctx, key); err != nil {
		c.log.Warn("claim not released: it will be taken over once stale", "key", key, "err", err)
	}
}

// lineSwap is the record of a line of builds as a new build's dispatch swapped it, with its
// claim's settlement (see registry.SettleLine).
type lineSwap struct {
	prev  registry.Line
	found bool
	err   error
}

// dispatch dispatches req once per build key (its idempotency token). Dispatches of a key
// are serialized in this bot; across bots, the dedup record claimed in Consul with a
// check-and-set decides. The claim's holder dispatches without Nomad's idempotency token,
// whose check scans every child of the builder that Nomad keeps: no other dispatch of the
// key can be under way. The key goes into the job's ID (DispatchRequest.Key), so that a
// bot that takes over a stale claim (its claimant died or stalled between its dispatch and
// its record) finds a build already made with a lookup by prefix, and so that every new
// build is checked against the others of its key once made (see firstOfKey): a dispatch
// made while this bot's Consul fails, or one that was still on its way when its claim was
// taken over, cannot leave two builds standing. A new build of line (a branch or pull
// request in a flavor, when it supersedes) has its claim settled and its line's record
// swapped in one write: swap is then the line's previous record.
func (c *protocol) dispatch(ctx context.Context, req orchestrator.DispatchRequest, line string) (d orchestrator.Dispatched, swap *lineSwap, err error) {
	start := time.Now()
	defer func() { c.observe.Dispatched(time.Since(start), err) }()
	unlock := c.inflight.lock(req.IdempotencyToken)
	defer unlock()
	req.Key = req.IdempotencyToken
	if c.claims == nil {
		d, err := c.builds.Dispatch(ctx, req)
		return d, nil, err
	}
	for {
		rec, claimed, err := c.claims.Claim(ctx, req.Key)
		switch {
		case ctx.Err() != nil:
			if claimed {
				// Claimed as the delivery gave up: let the next one claim it at once.
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
				c.release(rctx, req.Key)
				cancel()
			}
			return orchestrator.Dispatched{}, nil, ctx.Err()
		case err != nil:
			c.log.Warn("build key not claimed (Consul failing): looking it up in Nomad, then dispatching with Nomad's token", "key", req.Key, "err", err)
			return c.dispatchFound(ctx, req, false, false, "")
		case claimed:
			return c.dispatchFound(ctx, req, true, rec.TookOver, line)
		case rec.JobID != "":
			return orchestrator.Dispatched{Namespace: rec.Namespace, JobID: rec.JobID, Duplicate: true}, nil, nil
		}
		// Its claimant is slow to record a job: perhaps it made one.
		if d, found, err := c.builds.ByKey(ctx, req.Builder, req.Key); err == nil && found {
			return d, nil, nil
		} else if err != nil {
			c.log.Warn("build key claimed by another bot, and not looked up in Nomad: claiming again", "key", req.Key, "err", err)
		}
		// Claim again, until the claim is settled, released, or stale and taken over.
		select {
		case <-ctx.Done():
			return orchestrator.Dispatched{}, nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// dispatchTimeout bounds a dispatch made without Nomad's token, well within
// registry.ClaimStale: by the time another bot takes the claim over, the request has
// reached Nomad or, unless Nomad holds it that long, never will.
const dispatchTimeout = registry.ClaimStale / 2

// dispatchFound dispatches req, unless a build of its key is found first. With a fresh
// claim of the key (claimed, not tookOver), no one else has dispatched it: Nomad's token is
// left out and nothing is looked for. Otherwise (a claim taken over, or none: Consul
// failing) the build is looked for by its key, then dispatched with the token. A build
// found for a claim taken over is adopted (not Duplicate): its claimant died before its
// pending status and line record, which the caller then writes. A claim is settled with
// the job, released when Nomad refused the dispatch before making anything (it answered
// 4xx, or could not be reached), and otherwise left to go stale.
func (c *protocol) dispatchFound(ctx context.Context, req orchestrator.DispatchRequest, claimed, tookOver bool, line string) (orchestrator.Dispatched, *lineSwap, error) {
	// The record is written on a context of its own: a dispatch made must be recorded.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if tookOver || !claimed {
		d, found, err := c.builds.ByKey(ctx, req.Builder, req.Key)
		switch {
		case err != nil && tookOver:
			// This lookup alone guards a claim taken over (its claimant dispatched without
			// the token): without it, nothing is dispatched, and the claim goes stale again.
			return orchestrator.Dispatched{}, nil, fmt.Errorf("look for the build of %s: %w", req.Builder, err)
		case err != nil:
			c.log.Warn("build key not looked up in Nomad: dispatching with Nomad's token, which finds the build if made", "key", req.Key, "err", err)
		case found:
			if claimed {
				c.settle(rctx, req.Key, d.Namespace, d.JobID)
			}
			d.Duplicate = !tookOver
			return d, nil, nil
		}
	}
	if claimed && !tookOver {
		req.IdempotencyToken = ""
	}
	dctx, dcancel := context.WithTimeout(ctx, dispatchTimeout)
	d, err := c.builds.Dispatch(dctx, req)
	dcancel()
	if err == nil && !d.Duplicate {
		d = c.firstOfKey(ctx, req, d, tookOver)
	}
	var swap *lineSwap
	switch {
	case !claimed:
	case err == nil && line != "" && !d.Duplicate:
		next := registry.Line{Namespace: d.Namespace, JobID: d.JobID, Commit: req.Meta["COMMIT"], Index: d.Index}
		prev, found, lerr := c.claims.SettleLine(rctx, req.Key, d.Namespace, d.JobID, line, next)
		swap = &lineSwap{prev: prev, found: found, err: lerr}
		if lerr != nil {
			// Unrecorded, the claim would wait to go stale before a redelivery found
			// this build; the line is listed instead (lineBefore).
			c.settle(rctx, req.Key, d.Namespace, d.JobID)
		}
	case err == nil:
		c.settle(rctx, req.Key, d.Namespace, d.JobID)
	case !errors.Is(err, orchestrator.ErrMaybeDispatched):
		c.release(rctx, req.Key)
	default:
		c.log.Warn("dispatch unanswered: its claim is left to go stale, and whoever takes it over looks for the build first", "key", req.Key, "err", err)
	}
	return d, swap, err
}

// firstOfKey returns the build of req's key that stands once d is made: the earliest in
// Nomad (lowest creation index). Another may precede d when a bot dispatched while its
// Consul failed, or when a claim was taken over while its claimant's dispatch was still on
// its way; d is then discarded (stopped and purged: its status and comment row would only
// hide the earlier build's), and the earlier build returned, as Duplicate unless tookOver
// (the claimant it came from died before writing its status, which the caller then
// writes). Whichever of two such dispatches lands last sees both. When Nomad cannot tell,
// d stands.
func (c *protocol) firstOfKey(ctx context.Context, req orchestrator.DispatchRequest, d orchestrator.Dispatched, tookOver bool) orchestrator.Dispatched {
	first, found, err := c.builds.ByKey(ctx, req.Builder, req.Key)
	if err != nil {
		c.log.Warn("a new build's key not looked up again in Nomad: if another build of it stands, both run", "key", req.Key, "job", d.JobID, "err", err)
		return d
	}
	if !found || (first.JobID == d.JobID && first.Namespace == d.Namespace) || first.Index >= d.Index {
		return d
	}
	if err := c.builds.Discard(ctx, d.Namespace, d.JobID); err != nil {
		c.log.Warn("a second build of a key not discarded: both run", "key", req.Key, "first", first.JobID, "second", d.JobID, "err", err)
		return d // two builds run: better than none
	}
	first.Duplicate = !tookOver
	return first
}

// claimReport makes one bot of several write a build's state: the first to claim the
// state's record in Consul (registry.Claim) writes it, and marks it done (done(true)), or
// releases it when the write failed (done(false)), for a retry. mine is false when another
// bot wrote it or is writing it; a claim whose bot died is taken over once stale, and a
// claim that stays unsettled for registry.ClaimWait is written anyway (waited: the caller
// looks at the forge first). Without dedup records (one bot), or when Consul fails, every
// report is mine.
func (c *protocol) claimReport(ctx context.Context, ns, jobID string, state forge.State) (done func(ok bool), mine, waited bool) {
	nop := func(bool) {}
	if c.claims == nil {
		return nop, true, false
	}
	key := reportKey(ns, jobID, state)
	rec, claimed, err := c.claims.Claim(ctx, key)
	switch {
	case err != nil:
		// Written without a claim; say so afterwards if Consul takes it then: the check
		// after a pending status looks for it (reportIfEnded).
		c.log.Warn("report not claimed (Consul failing): written without a claim, another bot may write it too", "job", jobID, "state", state, "err", err)
		return func(ok bool) {
			if ok {
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				defer cancel()
				c.settle(rctx, key, ns, jobID)
			}
		}, true, false
	case !claimed && rec.JobID != "":
		return nop, false, false // written
	case !claimed:
		return nop, true, true // its writer is slow, or died after writing
	}
	return func(ok bool) {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if ok {
			c.settle(rctx, key, ns, jobID)
		} else {
			c.release(rctx, key)
		}
	}, true, false
}

// reportKey is the dedup record of the report of a build's state.
func reportKey(ns, jobID string, state forge.State) string {
	sum := sha256.Sum256([]byte(ns + "\x00" + jobID + "\x00" + string(state)))
	return "report-" + hex.EncodeToString(sum[:16])
}
