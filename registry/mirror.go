package registry

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	consul "github.com/hashicorp/consul/api"
)

// mirror is every entry under the prefix (repositories, organizations, installations) in
// memory, kept fresh by a blocking query on the prefix, the way consul-template follows
// keys: a delivery reads its entry without a round trip to Consul, a change made anywhere
// applies as soon as Consul answers the query, and while Consul is unreachable the last
// entries read go on being served. The bots' own keys, written at every build, live under
// another prefix (see Registry.run), so that they do not wake the query.
type mirror struct {
	mu     sync.RWMutex
	pairs  map[string]*consul.KVPair // by key
	index  uint64                    // Consul's index of the last list read
	read   time.Time                 // when it was read
	err    error                     // the last query's error; nil once one succeeds again
	since  time.Time                 // when err began
	synced chan struct{}             // closed after the first list read
}

// followWait is how long one blocking query waits for a change before Consul answers
// anyway; followBackoff bounds the wait between failed queries.
const (
	followWait       = 5 * time.Minute
	followBackoffMin = 250 * time.Millisecond
	followBackoffMax = 5 * time.Second
)

// Follow reads every entry under the prefix into memory and keeps them fresh until ctx
// ends; from then on, the registry's reads of entries are served from memory. Until the
// first read succeeds they fail with ErrUnavailable (see Synced). Errors reaching Consul
// go to onErr and are retried with backoff; meanwhile the last entries read are served
// (see Ready). Call it once, before the registry is used.
func (r *Registry) Follow(ctx context.Context, onErr func(error)) {
	m := &mirror{pairs: map[string]*consul.KVPair{}, synced: make(chan struct{})}
	r.mirror = m
	go func() {
		backoff := followBackoffMin
		for ctx.Err() == nil {
			q := &consul.QueryOptions{WaitIndex: m.lastIndex(), WaitTime: followWait}
			if m.failing() {
				// Back from a failure: read at once, so that the bot knows it is back,
				// rather than block while nothing changes.
				q.WaitIndex = 0
			}
			pairs, meta, err := r.kv.List(r.prefix, q.WithContext(ctx))
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				m.failed(err)
				onErr(fmt.Errorf("%w: follow %s: %w", ErrUnavailable, r.prefix, err))
				select {
				case <-ctx.Done():
				case <-time.After(backoff):
				}
				backoff = min(2*backoff, followBackoffMax)
				continue
			}
			backoff = followBackoffMin
			m.replace(r.entriesOnly(pairs), meta.LastIndex)
		}
	}()
}

// entriesOnly leaves out the keys that versions before the run prefix kept under the
// prefix itself (dedup/, locks/, leaders/, state/): they are not entries. They may be
// deleted (`consul kv delete -recurse albatros/dedup/`, and so on).
func (r *Registry) entriesOnly(pairs consul.KVPairs) consul.KVPairs {
	out := pairs[:0:0]
	for _, p := range pairs {
		rest := strings.TrimPrefix(p.Key, r.prefix)
		if folder, _, ok := strings.Cut(rest, "/"); ok && (folder == "dedup" || folder == "locks" || folder == "leaders" || folder == "state") {
			continue
		}
		out = append(out, p)
	}
	return out
}

// Synced waits until the registry's entries have been read once (at once when it does
// not follow them), or ctx ends.
func (r *Registry) Synced(ctx context.Context) error {
	if r.mirror == nil {
		return nil
	}
	select {
	case <-r.mirror.synced:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: entries not read yet: %w", ErrUnavailable, ctx.Err())
	}
}

// ErrStale is wrapped by Ready while Consul is unreachable and the entries last read are
// served.
var ErrStale = errors.New("serving the entries last read")

// Ready returns nil when Consul answers. A registry that follows its entries answers from
// the follower's last query: ErrUnavailable before the first read, an error wrapping
// ErrStale when the last query failed and the entries read before are served.
func (r *Registry) Ready(ctx context.Context) error {
	if m := r.mirror; m != nil {
		m.mu.RLock()
		defer m.mu.RUnlock()
		switch {
		case m.read.IsZero() && m.err != nil:
			return fmt.Errorf("%w: consul: %w", ErrUnavailable, m.err)
		case m.read.IsZero():
			return fmt.Errorf("%w: consul: entries not read yet", ErrUnavailable)
		case m.err != nil:
			return fmt.Errorf("consul unreachable since %s (%v): %w at %s", m.since.Format(time.RFC3339), m.err, ErrStale, m.read.Format(time.RFC3339))
		}
		return nil
	}
	// Status().Leader takes no options; a KV read with a context is as cheap and honours ctx.
	_, _, err := r.kv.Get(r.prefix, (&consul.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return fmt.Errorf("%w: consul: %w", ErrUnavailable, err)
	}
	return nil
}

func (m *mirror) lastIndex() uint64 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.index
}

func (m *mirror) failing() bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.err != nil
}

func (m *mirror) failed(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err == nil {
		m.since = time.Now()
	}
	m.err = err
}

// replace takes a list read at index. Writes this bot made after that index (applied by
// wrote) are kept: the list did not see them yet.
func (m *mirror) replace(pairs consul.KVPairs, index uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	next := make(map[string]*consul.KVPair, len(pairs))
	for _, p := range pairs {
		next[p.Key] = p
	}
	for k, p := range m.pairs {
		if p.ModifyIndex > index {
			next[k] = p
		}
	}
	// Consul's index may go backwards (a restored snapshot, a new leader's state): start
	// the next query afresh, as its documentation asks.
	if index < m.index {
		index = 0
	}
	m.pairs, m.index, m.read, m.err = next, index, time.Now(), nil
	select {
	case <-m.synced:
	default:
		close(m.synced)
	}
}

// wrote applies a write this bot made (with the index Consul gave it), so that the bot
// reads its own writes before the follower's next answer.
func (m *mirror) wrote(p *consul.KVPair) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.pairs[p.Key]; !ok || old.ModifyIndex < p.ModifyIndex {
		m.pairs[p.Key] = p
	}
}

// deleted removes a key this bot deleted.
func (m *mirror) deleted(key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.pairs, key)
}

// get returns the pair at key, nil when there is none; ErrUnavailable before the first read.
func (m *mirror) get(key string) (*consul.KVPair, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.read.IsZero() {
		return nil, fmt.Errorf("%w: entries not read yet", ErrUnavailable)
	}
	return m.pairs[key], nil
}

// list returns the pairs under prefix, in key order, as Consul lists them.
func (m *mirror) list(prefix string) (consul.KVPairs, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.read.IsZero() {
		return nil, fmt.Errorf("%w: entries not read yet", ErrUnavailable)
	}
	var out consul.KVPairs
	for k, p := range m.pairs {
		if strings.HasPrefix(k, prefix) {
			out = append(out, p)
		}
	}
	sortPairs(out)
	return out, nil
}
