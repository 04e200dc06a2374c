package server

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/albatros-ci/albatros/orchestrator"
)

// buildCache reads a build once for all the viewers of its log who ask at about the same
// time: a thousand people opening a popular build's page cost Nomad one job read, not a
// thousand connections (Nomad answers a client's 101st with 429). What the log routes use
// of a build (its meta, payload, namespace, id and submission time) does not change once
// it is dispatched; its status does, and is not read from here.
type buildCache struct {
	read    func(ctx context.Context, ns, id string) (*orchestrator.Build, error)
	ttl     time.Duration
	max     int
	reads   chan struct{} // a slot per read under way: each holds a connection to Nomad
	mu      sync.Mutex
	entries map[buildKey]*buildEntry
}

// maxReads bounds the builds read at once for the log routes: anyone may ask for any job
// ID, and each read may hold one of the connections to Nomad the bot's own calls need.
const maxReads = 8

// notFoundFor is how long a build that is not there (or not the bot's) is answered so
// without asking again: a flood of requests for it costs one lookup.
const notFoundFor = 10 * time.Second

// errReadsBusy is returned when maxReads reads are under way.
var errReadsBusy = errors.New("too many builds being read")

type buildKey struct{ ns, id string }

type buildEntry struct {
	done chan struct{} // closed once read
	b    *orchestrator.Build
	err  error
	at   time.Time
}

func newBuildCache(read func(ctx context.Context, ns, id string) (*orchestrator.Build, error)) *buildCache {
	return &buildCache{read: read, ttl: time.Minute, max: 1024, reads: make(chan struct{}, maxReads), entries: map[buildKey]*buildEntry{}}
}

// get returns the build, read from Nomad by the first of the callers asking for it (on a
// context of its own, so that a caller leaving does not fail the others); errors are not
// kept.
func (c *buildCache) get(ctx context.Context, ns, id string) (*orchestrator.Build, error) {
	k := buildKey{ns, id}
	c.mu.Lock()
	e, ok := c.entries[k]
	if ok && !e.at.IsZero() && time.Since(e.at) > c.ttl {
		ok = false
	}
	if !ok {
		select {
		case c.reads <- struct{}{}:
		default:
			c.mu.Unlock()
			return nil, errReadsBusy
		}
		e = &buildEntry{done: make(chan struct{})}
		c.prune()
		c.entries[k] = e
		go c.fill(k, e, context.WithoutCancel(ctx))
	}
	c.mu.Unlock()
	select {
	case <-e.done:
		return e.b, e.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *buildCache) fill(k buildKey, e *buildEntry, ctx context.Context) {
	defer func() { <-c.reads }()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	b, err := c.read(ctx, k.ns, k.id)
	c.mu.Lock()
	defer c.mu.Unlock()
	e.b, e.err, e.at = b, err, time.Now()
	if errors.Is(err, orchestrator.ErrNotFound) {
		e.at = time.Now().Add(notFoundFor - c.ttl) // expires after notFoundFor
	} else if err != nil && c.entries[k] == e {
		delete(c.entries, k)
	}
	close(e.done)
}

// prune makes room for one more entry: expired ones go first, then any. Call with c.mu held.
func (c *buildCache) prune() {
	if len(c.entries) < c.max {
		return
	}
	for k, e := range c.entries {
		if !e.at.IsZero() && time.Since(e.at) > c.ttl {
			delete(c.entries, k)
		}
	}
	for k := range c.entries {
		if len(c.entries) < c.max {
			return
		}
		delete(c.entries, k)
	}
}
