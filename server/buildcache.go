package server

import (
	"context"
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
	mu      sync.Mutex
	entries map[buildKey]*buildEntry
}

type buildKey struct{ ns, id string }

type buildEntry struct {
	done chan struct{} // closed once read
	b    *orchestrator.Build
	err  error
	at   time.Time
}

func newBuildCache(read func(ctx context.Context, ns, id string) (*orchestrator.Build, error)) *buildCache {
	return &buildCache{read: read, ttl: time.Minute, max: 1024, entries: map[buildKey]*buildEntry{}}
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
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	b, err := c.read(ctx, k.ns, k.id)
	c.mu.Lock()
	defer c.mu.Unlock()
	e.b, e.err, e.at = b, err, time.Now()
	if err != nil && c.entries[k] == e {
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
