package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	consul "github.com/hashicorp/consul/api"
)

// Line is the newest build of a line of builds (a branch or pull request of a repository,
// in one flavor), under the run prefix's lines/: a new build of the line finds there the
// one it supersedes, without listing the builds in Nomad (whose cost grows with every
// build it keeps).
type Line struct {
	Namespace string `json:"ns"`
	JobID     string `json:"job"`
	Commit    string `json:"commit"`
	// Index is Nomad's creation index of the job: it orders the builds of a line.
	Index uint64    `json:"index,omitempty"`
	At    time.Time `json:"at"`
}

func (r *Registry) lineKey(line string) string {
	sum := sha256.Sum256([]byte(line))
	return r.run + "lines/" + hex.EncodeToString(sum[:16])
}

// SwapLine records next as the newest build of line and returns the build it replaces;
// found is false when the line had none recorded. Two bots swapping at once each get a
// different previous build (one Consul transaction, atomic).
func (r *Registry) SwapLine(ctx context.Context, line string, next Line) (prev Line, found bool, err error) {
	k := r.lineKey(line)
	next.At = time.Now().UTC()
	raw, err := json.Marshal(next)
	if err != nil {
		return Line{}, false, err
	}
	// One transaction, atomic: read the previous record and write the new one.
	return r.swapLine(ctx, consul.TxnOps{
		{KV: &consul.KVTxnOp{Verb: consul.KVGetOrEmpty, Key: k}},
		{KV: &consul.KVTxnOp{Verb: consul.KVSet, Key: k, Value: raw}},
	})
}

// SettleLine is Settle(key, ns, jobID) and SwapLine(line, next) in one Consul transaction:
// a new build's two records, for the cost of one write.
func (r *Registry) SettleLine(ctx context.Context, key, ns, jobID, line string, next Line) (prev Line, found bool, err error) {
	k := r.lineKey(line)
	now := time.Now().UTC()
	next.At = now
	raw, err := json.Marshal(next)
	if err != nil {
		return Line{}, false, err
	}
	rec, _ := json.Marshal(Dedup{Namespace: ns, JobID: jobID, At: now})
	return r.swapLine(ctx, consul.TxnOps{
		{KV: &consul.KVTxnOp{Verb: consul.KVGetOrEmpty, Key: k}},
		{KV: &consul.KVTxnOp{Verb: consul.KVSet, Key: k, Value: raw}},
		{KV: &consul.KVTxnOp{Verb: consul.KVSet, Key: r.dedupKey(key), Value: rec}},
	})
}

// swapLine runs ops, whose first reads the line's previous record, and returns it.
func (r *Registry) swapLine(ctx context.Context, ops consul.TxnOps) (prev Line, found bool, err error) {
	ok, resp, _, err := r.client.Txn().Txn(ops, (&consul.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return Line{}, false, fmt.Errorf("%w: swap line: %w", ErrUnavailable, err)
	}
	if !ok || resp == nil || len(resp.Results) != len(ops) {
		return Line{}, false, fmt.Errorf("%w: swap line: not applied", ErrUnavailable)
	}
	if got := resp.Results[0].KV; got != nil && len(got.Value) > 0 {
		found = json.Unmarshal(got.Value, &prev) == nil
	}
	return prev, found, nil
}

// LineOf reads the record of line's newest build; found is false when there is none (no
// build of it, or none within a day).
func (r *Registry) LineOf(ctx context.Context, line string) (Line, bool, error) {
	kv, _, err := r.kv.Get(r.lineKey(line), (&consul.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return Line{}, false, fmt.Errorf("%w: read line: %w", ErrUnavailable, err)
	}
	if kv == nil || len(kv.Value) == 0 {
		return Line{}, false, nil
	}
	var l Line
	if err := json.Unmarshal(kv.Value, &l); err != nil {
		return Line{}, false, fmt.Errorf("read line: %w", err)
	}
	return l, true, nil
}
