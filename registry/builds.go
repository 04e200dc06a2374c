package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	consul "github.com/hashicorp/consul/api"

	"github.com/albatros-ci/albatros/orchestrator"
)

// The ledger of the bot's builds (orchestrator.Ledger), under the run prefix's builds/:
// one record per build key, written before the dispatch, named by the digest the build's
// job ID carries. A job of the cluster is one of the bot's builds only when its record
// names it; whether it got the secrets is the record's word, never Nomad's.
//
// While Consul cannot be written, a record is kept in this bot's memory (its own lookups
// find it there) and written as soon as Consul answers again, so that a build dispatched
// during an outage is not lost to the bot. A bot that dies before then leaves its build
// without a record: the reconciler builds that commit again.

// RecordAge is how long the records of builds and of trusted commits are kept: well past
// Nomad's collection of dead jobs (job_gc_threshold, 4 h by default).
const RecordAge = 7 * 24 * time.Hour

func (r *Registry) buildKey(digest string) string { return r.run + "builds/" + digest }

// pendingRecords are the records this bot could not write yet.
type pendingRecords struct {
	mu       sync.Mutex
	recs     map[string]orchestrator.Record
	flushing bool
}

// Record writes a build's record (orchestrator.Ledger). When Consul cannot be reached,
// the record is kept in memory and written once it can: the dispatch goes on, as it does
// without the dedup claim.
func (r *Registry) Record(ctx context.Context, digest string, rec orchestrator.Record) error {
	if digest == "" {
		return errors.New("record a build: no digest")
	}
	raw, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	_, err = r.kv.Put(&consul.KVPair{Key: r.buildKey(digest), Value: raw}, (&consul.WriteOptions{}).WithContext(ctx))
	var refused consul.StatusError
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("record build %s: %w", digest, ctx.Err())
	case errors.As(err, &refused) && refused.Code < 500:
		// Consul answered, and refused (an ACL, say): no build without its record.
		return fmt.Errorf("%w: record build %s: %w", ErrUnavailable, digest, err)
	}
	return r.keepRecord(digest, rec, err)
}

// maxPending bounds the records kept in memory while Consul cannot be reached.
const maxPending = 10000

// keepRecord keeps rec in memory, and writes the records kept once a second until Consul
// takes them; past maxPending it refuses, with cause.
func (r *Registry) keepRecord(digest string, rec orchestrator.Record, cause error) error {
	p := &r.pending
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.recs) >= maxPending {
		return fmt.Errorf("%w: record build %s: %d records wait for Consul already: %w", ErrUnavailable, digest, len(p.recs), cause)
	}
	if p.recs == nil {
		p.recs = map[string]orchestrator.Record{}
	}
	p.recs[digest] = rec
	if p.flushing {
		return nil
	}
	p.flushing = true
	go func() {
		for {
			time.Sleep(time.Second)
			if r.flushRecords() {
				return
			}
		}
	}()
	return nil
}

// flushRecords writes the records kept in memory; done when none is left.
func (r *Registry) flushRecords() (done bool) {
	p := &r.pending
	p.mu.Lock()
	kept := make(map[string]orchestrator.Record, len(p.recs))
	for d, rec := range p.recs {
		kept[d] = rec
	}
	p.mu.Unlock()
	for d, rec := range kept {
		raw, _ := json.Marshal(rec)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := r.kv.Put(&consul.KVPair{Key: r.buildKey(d), Value: raw}, (&consul.WriteOptions{}).WithContext(ctx))
		cancel()
		if err != nil {
			break
		}
		p.mu.Lock()
		delete(p.recs, d)
		p.mu.Unlock()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.recs) == 0 {
		p.flushing = false
		return true
	}
	return false
}

// Records reads the records of digests (orchestrator.Ledger): those kept in memory, and
// the others from Consul, 64 to a transaction (Consul's bound).
func (r *Registry) Records(ctx context.Context, digests []string) (map[string]orchestrator.Record, error) {
	out := make(map[string]orchestrator.Record, len(digests))
	var ask []string
	r.pending.mu.Lock()
	for _, d := range digests {
		if rec, ok := r.pending.recs[d]; ok {
			out[d] = rec
		} else {
			ask = append(ask, d)
		}
	}
	r.pending.mu.Unlock()
	for len(ask) > 0 {
		n := min(len(ask), 64)
		var ops consul.TxnOps
		for _, d := range ask[:n] {
			ops = append(ops, &consul.TxnOp{KV: &consul.KVTxnOp{Verb: consul.KVGetOrEmpty, Key: r.buildKey(d)}})
		}
		ask = ask[n:]
		ok, resp, _, err := r.client.Txn().Txn(ops, (&consul.QueryOptions{}).WithContext(ctx))
		if err != nil {
			return nil, fmt.Errorf("%w: read build records: %w", ErrUnavailable, err)
		}
		if !ok || resp == nil {
			return nil, fmt.Errorf("%w: read build records: not answered", ErrUnavailable)
		}
		for _, res := range resp.Results {
			if res.KV == nil || len(res.KV.Value) == 0 {
				continue
			}
			var rec orchestrator.Record
			if json.Unmarshal(res.KV.Value, &rec) != nil {
				continue // not a record: no build
			}
			out[res.KV.Key[len(r.run+"builds/"):]] = rec
		}
	}
	return out, nil
}

var _ orchestrator.Ledger = (*Registry)(nil)

// Trusted commits, under the run prefix's commits/: a commit whose code the bot judged
// trusted (pushed by a trusted user, from a trusted owner's fork, approved by a trusted
// user). A pull request between branches of the repository gets the secrets only for a
// commit recorded here: who opened or updated the pull request says nothing of who pushed
// its commits.

func (r *Registry) commitKey(cloneURL, commit string) string {
	sum := sha256.Sum256([]byte(cloneURL + "\x00" + commit))
	return r.run + "commits/" + hex.EncodeToString(sum[:16])
}

// TrustCommit records that the code of commit in the repository at cloneURL is trusted,
// and why (push, approve, fork).
func (r *Registry) TrustCommit(ctx context.Context, cloneURL, commit, why string) error {
	raw, _ := json.Marshal(struct {
		Repo   string    `json:"repo"`
		Commit string    `json:"commit"`
		Why    string    `json:"why"`
		At     time.Time `json:"at"`
	}{cloneURL, commit, why, time.Now().UTC()})
	if _, err := r.kv.Put(&consul.KVPair{Key: r.commitKey(cloneURL, commit), Value: raw}, (&consul.WriteOptions{}).WithContext(ctx)); err != nil {
		return fmt.Errorf("%w: trust %s@%s: %w", ErrUnavailable, cloneURL, commit, err)
	}
	return nil
}

// CommitTrust returns why TrustCommit recorded commit of the repository at cloneURL as
// trusted; "" when it did not.
func (r *Registry) CommitTrust(ctx context.Context, cloneURL, commit string) (string, error) {
	pair, _, err := r.kv.Get(r.commitKey(cloneURL, commit), (&consul.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return "", fmt.Errorf("%w: trust of %s@%s: %w", ErrUnavailable, cloneURL, commit, err)
	}
	if pair == nil {
		return "", nil
	}
	var rec struct {
		Repo   string `json:"repo"`
		Commit string `json:"commit"`
		Why    string `json:"why"`
	}
	if json.Unmarshal(pair.Value, &rec) != nil || rec.Repo != cloneURL || rec.Commit != commit || rec.Why == "" {
		return "", nil
	}
	return rec.Why, nil
}
