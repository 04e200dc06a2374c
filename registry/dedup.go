package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	consul "github.com/hashicorp/consul/api"
)

// Dedup is the record of one build key (the dispatch's idempotency token) under the run
// prefix's dedup/: claimed by the bot about to dispatch it, then holding the job it
// became. A redelivery, or a second bot, finds the build there without asking Nomad, whose token
// check scans every retained child of the builder.
type Dedup struct {
	Namespace string    `json:"ns,omitempty"`
	JobID     string    `json:"job,omitempty"`
	At        time.Time `json:"at"`
	// TookOver is set on the record Claim returns to a caller that took over a stale claim:
	// its claimant died, or stalled, before recording a job, and may have made one.
	TookOver bool `json:"-"`
}

// Dedup timings: a claim without a job after ClaimStale is a bot that died mid-dispatch,
// and is taken over; a bot that finds a fresh claim waits for its job up to ClaimWait.
const (
	ClaimStale = 30 * time.Second
	ClaimWait  = 10 * time.Second
)

func (r *Registry) dedupKey(key string) string { return r.run + "dedup/" + key }

// Claim claims key for a dispatch. claimed is true when the caller now holds the claim and
// must Settle it (or Release it when the dispatch fails); rec.TookOver then says whether it
// took over a stale claim. Otherwise rec.JobID is the build another dispatch of key made;
// it is empty when the other claimant did not settle within ClaimWait (the caller may
// look for its build, and claim again).
func (r *Registry) Claim(ctx context.Context, key string) (rec Dedup, claimed bool, err error) {
	k := r.dedupKey(key)
	deadline := time.Now().Add(ClaimWait)
	for {
		raw, _ := json.Marshal(Dedup{At: time.Now().UTC()})
		ok, _, err := r.kv.CAS(&consul.KVPair{Key: k, Value: raw, ModifyIndex: 0}, (&consul.WriteOptions{}).WithContext(ctx))
		if err != nil {
			return Dedup{}, false, fmt.Errorf("%w: claim %s: %w", ErrUnavailable, key, err)
		}
		if ok {
			return Dedup{}, true, nil
		}
		pair, _, err := r.kv.Get(k, (&consul.QueryOptions{}).WithContext(ctx))
		if err != nil {
			return Dedup{}, false, fmt.Errorf("%w: read claim %s: %w", ErrUnavailable, key, err)
		}
		if pair == nil {
			continue // released meanwhile: claim again
		}
		if err := json.Unmarshal(pair.Value, &rec); err != nil {
			return Dedup{}, false, fmt.Errorf("claim %s: %w", key, err)
		}
		if rec.JobID != "" {
			return rec, false, nil
		}
		if time.Since(rec.At) > ClaimStale {
			// Its claimant died before settling: take it over, with a check-and-set so
			// that of two bots doing so one wins.
			raw, _ := json.Marshal(Dedup{At: time.Now().UTC()})
			ok, _, err := r.kv.CAS(&consul.KVPair{Key: k, Value: raw, ModifyIndex: pair.ModifyIndex}, (&consul.WriteOptions{}).WithContext(ctx))
			if err != nil {
				return Dedup{}, false, fmt.Errorf("%w: claim %s: %w", ErrUnavailable, key, err)
			}
			if ok {
				return Dedup{TookOver: true}, true, nil
			}
			continue
		}
		if time.Now().After(deadline) {
			return Dedup{}, false, nil
		}
		select {
		case <-ctx.Done():
			return Dedup{}, false, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Claimed reports whether any of keys is claimed or settled: one read-only transaction,
// answered by the Consul agent's servers without a write.
func (r *Registry) Claimed(ctx context.Context, keys ...string) (bool, error) {
	var ops consul.TxnOps
	for _, k := range keys {
		ops = append(ops, &consul.TxnOp{KV: &consul.KVTxnOp{Verb: consul.KVGetOrEmpty, Key: r.dedupKey(k)}})
	}
	ok, resp, _, err := r.client.Txn().Txn(ops, (&consul.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return false, fmt.Errorf("%w: read claims: %w", ErrUnavailable, err)
	}
	if !ok || resp == nil {
		return false, fmt.Errorf("%w: read claims: not answered", ErrUnavailable)
	}
	for _, res := range resp.Results {
		if res.KV != nil && res.KV.ModifyIndex != 0 {
			return true, nil
		}
	}
	return false, nil
}

// Settle records the job that the claim of key became.
func (r *Registry) Settle(ctx context.Context, key, ns, jobID string) error {
	raw, _ := json.Marshal(Dedup{Namespace: ns, JobID: jobID, At: time.Now().UTC()})
	if _, err := r.kv.Put(&consul.KVPair{Key: r.dedupKey(key), Value: raw}, (&consul.WriteOptions{}).WithContext(ctx)); err != nil {
		return fmt.Errorf("%w: settle %s: %w", ErrUnavailable, key, err)
	}
	return nil
}

// Release drops the claim of key (its dispatch failed), so that a retry may claim it.
func (r *Registry) Release(ctx context.Context, key string) error {
	if _, err := r.kv.Delete(r.dedupKey(key), (&consul.WriteOptions{}).WithContext(ctx)); err != nil {
		return fmt.Errorf("%w: release %s: %w", ErrUnavailable, key, err)
	}
	return nil
}

// CleanDedup deletes the dedup records and line records older than age: Nomad has
// collected their jobs long since (job_gc_threshold is 4 h by default), and a delivery that
// late builds again there too; and the records of builds and trusted commits older than
// RecordAge (or age, when longer). It returns how many it deleted.
func (r *Registry) CleanDedup(ctx context.Context, age time.Duration) (int, error) {
	n := 0
	var errs []error
	ages := map[string]time.Duration{"dedup/": age, "lines/": age, "builds/": max(age, RecordAge), "commits/": max(age, RecordAge)}
	for _, folder := range []string{"dedup/", "lines/", "builds/", "commits/"} {
		age := ages[folder]
		pairs, _, err := r.kv.List(r.run+folder, (&consul.QueryOptions{}).WithContext(ctx))
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: list %s: %w", ErrUnavailable, folder, err))
			continue
		}
		for _, p := range pairs {
			var rec struct {
				At time.Time `json:"at"`
			}
			if err := json.Unmarshal(p.Value, &rec); err == nil && time.Since(rec.At) < age {
				continue
			}
			// Deleted only if unchanged since listed: a record renewed meanwhile stays.
			ok, _, err := r.kv.DeleteCAS(&consul.KVPair{Key: p.Key, ModifyIndex: p.ModifyIndex}, (&consul.WriteOptions{}).WithContext(ctx))
			if err != nil {
				errs = append(errs, fmt.Errorf("delete %s: %w", strings.TrimPrefix(p.Key, r.run), err))
				continue
			}
			if ok {
				n++
			}
		}
	}
	return n, errors.Join(errs...)
}
