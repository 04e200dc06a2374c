// Package logfan follows each build's log once, however many people watch it: the first
// viewer of a build's stdout (or stderr) starts one upstream follow of Nomad's log, masked
// once, into an in-memory tape; every viewer, early or late, reads the tape from its start
// at its own pace. A slow viewer lags behind without holding the stream back or holding
// memory of its own; the tape keeps the newest Options.Keep bytes, and a viewer that falls
// behind what it keeps is told how much it missed and goes on from there. All the tapes
// together keep at most Options.Budget bytes.
//
// Nomad answers a client's 101st connection with 429 (http_max_conns_per_client): with one
// stream (and its blocking queries) per viewer, a popular build's log broke for everyone
// past about 50 viewers. Through the tape, a build costs the same few connections to Nomad
// with one viewer or a thousand; and the hub bounds the upstreams it follows at once and
// the viewers it serves (ErrBusy past them), so that anonymous readers cannot take the
// connections to Nomad that the bot's dispatches need.
//
// The log of a build that got the secrets is rendered and masked once, on the tape
// (package logtext); any other build's is kept as it came.
package logfan

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/albatros-ci/albatros/logtext"
	"github.com/albatros-ci/albatros/orchestrator"
)

// Source writes a build's log to w from its start, following it while the build runs, and
// returns the build's outcome once the log is whole (orchestrator.Orchestrator.Follow).
type Source func(ctx context.Context, ns, jobID, logType string, w io.Writer) (orchestrator.Outcome, error)

// Defaults of Options.
const (
	DefaultKeep         = 32 << 20
	DefaultBudget       = 256 << 20
	DefaultLinger       = 15 * time.Second
	DefaultMaxUpstreams = 24
	DefaultMaxViewers   = 4096
	chunkSize           = 32 << 10
)

// ErrBusy is returned by Join when the hub follows as many logs as it may (Options.
// MaxUpstreams) and the log asked for is not one of them, or when it serves as many
// viewers as it may (Options.MaxViewers).
var ErrBusy = errors.New("too many build logs are being read at once")

// Options tune a Hub.
type Options struct {
	// Keep is how many bytes of each watched log are kept in memory (DefaultKeep when 0).
	Keep int64
	// Budget bounds the bytes kept by all the logs together (DefaultBudget when 0): with
	// many logs watched at once, each keeps its share of it.
	Budget int64
	// Linger is how long a log stays after it has ended, or after its last viewer left
	// while it runs (its upstream is then stopped): a viewer coming back meanwhile does
	// not start another upstream (DefaultLinger when 0).
	Linger time.Duration
	// MaxUpstreams bounds the logs followed in Nomad at once (DefaultMaxUpstreams when 0).
	// Each holds two connections to Nomad while its build runs (the log's stream and a
	// blocking query on the allocation), and Nomad refuses a client's 101st: the default
	// leaves the bot's own calls (dispatches, reports, the event stream) some 40.
	MaxUpstreams int
	// MaxViewers bounds the viewers served at once (DefaultMaxViewers when 0).
	MaxViewers int
}

// Hub shares the logs being watched. Safe for concurrent use.
type Hub struct {
	src       Source
	opts      Options
	mu        sync.Mutex
	tapes     map[key]*tape
	upstreams atomic.Int64
	count     atomic.Int64 // len(tapes), read by the tapes without the hub's lock
	following atomic.Int64 // upstreams following their log in Nomad now
	viewers   atomic.Int64 // viewers joined and not yet left
}

type key struct{ ns, job, stream string }

// New returns a hub that reads logs from src.
func New(src Source, opts Options) *Hub {
	if opts.Keep <= 0 {
		opts.Keep = DefaultKeep
	}
	if opts.Linger <= 0 {
		opts.Linger = DefaultLinger
	}
	if opts.Budget <= 0 {
		opts.Budget = DefaultBudget
	}
	if opts.MaxUpstreams <= 0 {
		opts.MaxUpstreams = DefaultMaxUpstreams
	}
	if opts.MaxViewers <= 0 {
		opts.MaxViewers = DefaultMaxViewers
	}
	return &Hub{src: src, opts: opts, tapes: map[key]*tape{}}
}

// Upstreams is how many upstream follows the hub has started since it was made.
func (h *Hub) Upstreams() int64 { return h.upstreams.Load() }

// Kept is how many bytes the logs the hub holds keep now.
func (h *Hub) Kept() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	var n int64
	for _, t := range h.tapes {
		t.mu.Lock()
		n += t.end - t.start
		t.mu.Unlock()
	}
	return n
}

// Viewers is how many viewers are joined now; Following how many logs are followed in
// Nomad now (each an upstream). Both are read without the hub's lock.
func (h *Hub) Viewers() int64   { return h.viewers.Load() }
func (h *Hub) Following() int64 { return h.following.Load() }

// Watching is how many logs the hub holds now.
func (h *Hub) Watching() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.tapes)
}

// Watch is Join, Copy and Leave: it writes the log (stdout or stderr) of a build to w from
// its start, following it while the build runs, and returns the build's outcome once all of
// it is written, ctx's error when the viewer leaves first, or ErrBusy.
func (h *Hub) Watch(ctx context.Context, ns, jobID, logType string, values func() []string, w io.Writer) (orchestrator.Outcome, error) {
	v, err := h.Join(ns, jobID, logType, values)
	if err != nil {
		return orchestrator.Outcome{}, err
	}
	defer v.Leave()
	return v.Copy(ctx, w)
}

// Viewer is one viewer of a log, from Join to Leave.
type Viewer struct {
	hub  *Hub
	t    *tape
	once sync.Once
}

// Join makes a viewer of the log (stdout or stderr) of a build, starting its upstream
// follow when nobody follows it yet; ErrBusy past the hub's bounds, with nothing started.
// The log of a build given secrets is rendered and masked with values (asked once, when the
// upstream starts: the secrets the build received and its repository's; none for any other
// build, whose log is kept as it came). Call Leave when done.
func (h *Hub) Join(ns, jobID, logType string, values func() []string) (*Viewer, error) {
	t, err := h.join(key{ns, jobID, logType}, values)
	if err != nil {
		return nil, err
	}
	return &Viewer{hub: h, t: t}, nil
}

// Reserve takes one of the hub's upstream slots for a read of a log outside the hub (the
// whole of a finished log, at its reader's pace), or returns ErrBusy; call release when
// the read is done.
func (h *Hub) Reserve() (release func(), err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if n := h.following.Load(); n >= int64(h.opts.MaxUpstreams) {
		return nil, fmt.Errorf("%w: %d logs followed in Nomad", ErrBusy, n)
	}
	h.following.Add(1)
	return sync.OnceFunc(func() { h.following.Add(-1) }), nil
}

// Leave counts the viewer out; leaving twice is leaving once.
func (v *Viewer) Leave() { v.once.Do(func() { v.hub.leave(v.t) }) }

// Copy writes the log to w from its start, following it while the build runs, and returns
// the build's outcome once all of it is written, or ctx's error when the viewer leaves
// first.
func (v *Viewer) Copy(ctx context.Context, w io.Writer) (orchestrator.Outcome, error) {
	t := v.t
	var off int64
	for {
		t.mu.Lock()
		skipped := t.start - off
		if skipped > 0 {
			off = t.start
		}
		data := t.at(off)
		done, out, err, changed := t.done, t.out, t.err, t.changed
		t.mu.Unlock()
		if skipped > 0 {
			if _, err := fmt.Fprintf(w, "\n[… %d bytes of this log were written faster than they were read here, and are no longer kept by the bot: Nomad's own log of the build has them]\n", skipped); err != nil {
				return orchestrator.Outcome{}, err
			}
		}
		if len(data) > 0 {
			if _, err := w.Write(data); err != nil {
				return orchestrator.Outcome{}, err
			}
			off += int64(len(data))
			continue
		}
		if done {
			return out, err
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return orchestrator.Outcome{}, ctx.Err()
		}
	}
}

// tape is one log being followed: the bytes it keeps, and how it ended.
type tape struct {
	key     key
	mu      sync.Mutex
	chunks  [][]byte // kept bytes in order; only the last one grows, and only past what was read
	start   int64    // offset of the first kept byte
	end     int64    // offset after the last byte
	hub     *Hub
	changed chan struct{} // closed and replaced at every change
	done    bool
	out     orchestrator.Outcome
	err     error
	viewers int
	cancel  context.CancelFunc
	linger  *time.Timer // removes the tape: after its end, or once nobody watches it
}

// join returns the tape of k, starting its upstream when nobody follows it yet, or ErrBusy.
func (h *Hub) join(k key, values func() []string) (*tape, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.viewers.Load() >= int64(h.opts.MaxViewers) {
		return nil, fmt.Errorf("%w: %d viewers", ErrBusy, h.viewers.Load())
	}
	if t, ok := h.tapes[k]; ok {
		h.viewers.Add(1)
		t.mu.Lock()
		t.viewers++
		if t.linger != nil && !t.done {
			t.linger.Stop() // a viewer is back before the upstream was stopped
			t.linger = nil
		}
		t.mu.Unlock()
		return t, nil
	}
	if n := h.following.Load(); n >= int64(h.opts.MaxUpstreams) {
		return nil, fmt.Errorf("%w: %d logs followed in Nomad", ErrBusy, n)
	}
	h.viewers.Add(1)
	h.following.Add(1)
	ctx, cancel := context.WithCancel(context.Background())
	t := &tape{key: k, hub: h, changed: make(chan struct{}), viewers: 1, cancel: cancel}
	h.tapes[k] = t
	h.count.Store(int64(len(h.tapes)))
	// The others' shares of the budget shrink now, also for those that write no more.
	for _, other := range h.tapes {
		if other != t {
			other.mu.Lock()
			other.trim()
			other.mu.Unlock()
		}
	}
	h.upstreams.Add(1)
	go h.follow(ctx, t, values())
	return t, nil
}

// follow is a tape's upstream: the log, rendered and masked once for every viewer when the
// build got secrets, as it came otherwise.
func (h *Hub) follow(ctx context.Context, t *tape, values []string) {
	defer t.cancel()
	defer h.following.Add(-1)
	var out orchestrator.Outcome
	var err error
	if len(values) == 0 {
		out, err = h.src(ctx, t.key.ns, t.key.job, t.key.stream, t)
	} else {
		x := logtext.New(t, values, logtext.Options{})
		out, err = h.src(ctx, t.key.ns, t.key.job, t.key.stream, x)
		if cerr := x.Close(); err == nil {
			err = cerr
		}
	}
	t.mu.Lock()
	t.done, t.out, t.err = true, out, err
	t.broadcast()
	if t.linger != nil {
		t.linger.Stop()
	}
	wait := h.opts.Linger
	if err != nil {
		wait = 0 // the next viewer tries again
	}
	t.linger = time.AfterFunc(wait, func() { h.drop(t) })
	t.mu.Unlock()
}

// leave counts a viewer out; the last one out of a running log stops its upstream once it
// has lingered.
func (h *Hub) leave(t *tape) {
	h.viewers.Add(-1)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.viewers--
	if t.viewers == 0 && !t.done && t.linger == nil {
		t.linger = time.AfterFunc(h.opts.Linger, func() {
			// Under the hub's lock, as join counts viewers in: nobody joins between the
			// check and the drop, and a viewer arriving after it starts a new upstream.
			h.mu.Lock()
			defer h.mu.Unlock()
			t.mu.Lock()
			idle := t.viewers == 0 && !t.done
			t.mu.Unlock()
			if idle && h.tapes[t.key] == t {
				delete(h.tapes, t.key)
				h.count.Store(int64(len(h.tapes)))
				t.cancel()
			}
		})
	}
}

// drop forgets t, unless another tape has taken its place.
func (h *Hub) drop(t *tape) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.tapes[t.key] == t {
		delete(h.tapes, t.key)
		h.count.Store(int64(len(h.tapes)))
	}
}

// Write appends p to the tape (the upstream's writes, masked) and wakes the viewers.
func (t *tape) Write(p []byte) (int, error) {
	n := len(p)
	t.mu.Lock()
	defer t.mu.Unlock()
	for len(p) > 0 {
		last := len(t.chunks) - 1
		if last < 0 || len(t.chunks[last]) == cap(t.chunks[last]) {
			t.chunks = append(t.chunks, make([]byte, 0, chunkSize))
			last++
		}
		c := t.chunks[last]
		k := min(len(p), cap(c)-len(c))
		// Appending within the capacity writes past every slice a viewer holds.
		t.chunks[last] = append(c, p[:k]...)
		p = p[k:]
		t.end += int64(k)
	}
	t.trim()
	t.broadcast()
	return n, nil
}

// trim drops the oldest chunks past what the tape may keep: at most Keep, and its share of
// the budget of all the logs held. Call with t.mu held.
func (t *tape) trim() {
	keep := min(t.hub.opts.Keep, t.hub.opts.Budget/max(1, t.hub.count.Load()))
	for t.end-t.start > keep && len(t.chunks) > 1 {
		t.start += int64(len(t.chunks[0]))
		t.chunks[0] = nil
		t.chunks = t.chunks[1:]
	}
}

// at returns the kept bytes from off on, up to the end of the chunk off is in; nil when
// there are none yet. Every chunk but the last is full, so the chunk is found by division.
// Call with t.mu held.
func (t *tape) at(off int64) []byte {
	if off < t.start || off >= t.end {
		return nil
	}
	rel := off - t.start
	c := t.chunks[rel/chunkSize]
	return c[rel%chunkSize:]
}

func (t *tape) broadcast() {
	close(t.changed)
	t.changed = make(chan struct{})
}
