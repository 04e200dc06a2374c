package orchestrator

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"time"
)

// Record is what the bot writes down about a build before it dispatches it: the proof that
// the job is one of its builds, and whether it got the repository's secrets. Nothing that
// Nomad holds can prove either: anyone who may dispatch a job in any namespace of the
// cluster can give it the bot's marker in its ID, a parent and the contract's meta, and a
// payload that looks like the secrets file.
type Record struct {
	// Namespace and Builder are where the build was dispatched: the namespace and the ID
	// of its parameterized job.
	Namespace string `json:"ns"`
	Builder   string `json:"builder"`
	// Repo, Commit and Flavor are the build's REPO_URL, COMMIT and FLAVOR meta; Meta is
	// all of the meta it was dispatched with (BRANCH, TAG, PR…), which its job must hold.
	Repo   string            `json:"repo"`
	Commit string            `json:"commit"`
	Flavor string            `json:"flavor"`
	Meta   map[string]string `json:"meta,omitempty"`
	// JobID is the job Nomad made of the dispatch, once it answered (written then, when
	// the bot could): no other job of the key's digest is the build.
	JobID string `json:"job,omitempty"`
	// Secrets is true when the build was given the repository's secrets.
	Secrets bool      `json:"secrets"`
	At      time.Time `json:"at"`
	// Cause and Sender say what started the build, and who (DispatchRequest), for its
	// archived record.
	Cause  string `json:"cause,omitempty"`
	Sender string `json:"sender,omitempty"`
	// Schedule is DispatchRequest.Schedule.
	Schedule string `json:"schedule,omitempty"`
	// Holder is DispatchRequest.Holder; nil in the records of bots before it was kept.
	Holder *int64 `json:"holder,omitempty"`
}

// Ledger keeps the records of the bot's builds (registry.Registry keeps them in Consul).
// A record is keyed by the digest that the build's job ID carries (see KeyDigest), so
// that a job found in Nomad leads to its record without a search.
type Ledger interface {
	// Record writes rec under digest. It is called before the build's dispatch; an error
	// stops the dispatch.
	Record(ctx context.Context, digest string, rec Record) error
	// Records returns the records of those of digests that have one; an error when the
	// ledger could not be read (which is not the same as a job without a record).
	Records(ctx context.Context, digests []string) (map[string]Record, error)
}

// ErrNotOurs wraps ErrNotFound for a job of the cluster that looks like a build but that
// the bot's ledger does not name: it is no build of the bot's.
var ErrNotOurs = fmt.Errorf("no record of the bot's dispatching it: %w", ErrNotFound)

// KeyDigest is the digest of a build key that goes into its job's ID.
func KeyDigest(key string) string {
	sum := sha256.Sum256([]byte(key))
	return "k" + hex.EncodeToString(sum[:10])
}

// digestOf returns the key digest in a build's job ID
// (<builder>/dispatch-albatros-k<digest>-<time>-<id>), and the builder's job ID before it.
func digestOf(jobID string) (digest, builder string, ok bool) {
	marker := structsDispatchSuffix + dispatchMarker + "-"
	i := strings.LastIndex(jobID, marker)
	if i <= 0 {
		return "", "", false
	}
	rest := jobID[i+len(marker):]
	const n = 1 + 20 // "k" and 10 bytes in hex
	if len(rest) <= n || rest[0] != 'k' || rest[n] != '-' {
		return "", "", false
	}
	for _, c := range rest[1:n] {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return "", "", false
		}
	}
	return rest[:n], jobID[:i], true
}

// matches reports whether rec names the job id in namespace ns, dispatched from builder
// with meta: a job of another tenant of the cluster, given the digest in its ID, does not
// match unless it holds every meta the bot dispatched with (and, once recorded, unless it
// is the very job Nomad made of the dispatch).
func (rec Record) matches(ns, id, builder string, meta map[string]string) bool {
	_, prefix, ok := digestOf(id)
	if !ok || rec.Namespace != ns || rec.Builder != builder || prefix != builder || (rec.JobID != "" && rec.JobID != id) ||
		rec.Repo != meta["REPO_URL"] || rec.Commit != meta["COMMIT"] || rec.Flavor != meta["FLAVOR"] {
		return false
	}
	for k, v := range rec.Meta {
		if meta[k] != v {
			return false
		}
	}
	return true
}

// records looks up the records of many jobs, in batches.
func (o *Orchestrator) records(ctx context.Context, ids []string) (map[string]Record, error) {
	var digests []string
	for _, id := range ids {
		if d, _, ok := digestOf(id); ok {
			digests = append(digests, d)
		}
	}
	if len(digests) == 0 {
		return map[string]Record{}, nil
	}
	recs, err := o.ledger.Records(ctx, digests)
	if err != nil {
		return nil, fmt.Errorf("records of the bot's builds: %w", err)
	}
	return recs, nil
}

// MemoryLedger is a Ledger in one process's memory, for tools and tests that run a single
// orchestrator without Consul. The bot keeps its ledger in Consul, so that its replicas and
// its next start know its builds.
type MemoryLedger struct {
	mu   sync.Mutex
	recs map[string]Record
}

// NewMemoryLedger returns an empty ledger.
func NewMemoryLedger() *MemoryLedger { return &MemoryLedger{recs: map[string]Record{}} }

// Record implements Ledger.
func (l *MemoryLedger) Record(_ context.Context, digest string, rec Record) error {
	if digest == "" {
		return errors.New("record a build: no digest")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs[digest] = rec
	return nil
}

// Records implements Ledger.
func (l *MemoryLedger) Records(_ context.Context, digests []string) (map[string]Record, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]Record{}
	for _, d := range digests {
		if rec, ok := l.recs[d]; ok {
			out[d] = rec
		}
	}
	return out, nil
}

// All returns every record, by digest.
func (l *MemoryLedger) All() map[string]Record {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.recs)
}
