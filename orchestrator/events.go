package orchestrator

import (
	"context"
	"fmt"
	"time"

	nomad "github.com/hashicorp/nomad/api"
)

// Watch follows Nomad's event stream (/v1/event/stream, allocation and evaluation topics, all
// namespaces) and calls handle, in order, for every build that ends and for every build that
// cannot be placed. Without opts.After it replays what Nomad's event buffer still holds at
// start, so that builds that ended while the bot was down are reported too; handle must
// therefore be idempotent. A build that can never be placed is stopped, so that it does not
// wait forever.
//
// Watch reconnects after stream errors, which it passes to onErr, resuming at the next index,
// and subscribes again when a build is dispatched into a namespace its stream does not
// cover (Nomad expands the namespace wildcard at subscription). It returns when ctx ends.
//
// With opts.After, the stream resumes after that index (the last one a bot handled, kept in
// Consul). Nomad starts silently at the oldest event it still buffers when the index asked
// for is older (after its restart, say, or a long outage), and a stream that resumes later
// than the index asked for cannot tell a gap from a quiet time; so after every broken
// stream, once subscribed again, opts.Gap is called with the last index handled to find
// the builds that changed meanwhile by listing them. The caller lists at start. opts.Handled
// is told the index of each batch once handled.
func (o *Orchestrator) Watch(ctx context.Context, handle func(context.Context, Outcome), onErr func(error), opts WatchOptions) error {
	topics := map[nomad.Topic][]string{
		nomad.TopicAllocation: {"*"},
		nomad.TopicEvaluation: {"*"},
	}
	var next uint64 // 0: from the oldest event Nomad still buffers
	if opts.After > 0 {
		next = opts.After + 1
	}
	broken := false // the last subscription broke: events may have been missed since next
	seen := newSeen(8192)
	const minBackoff = 500 * time.Millisecond
	backoff := minBackoff
	defer o.setWatched(nil)
	for ctx.Err() == nil {
		// The namespaces as they are before subscribing: the stream covers at least these.
		if err := o.listWatched(ctx); err != nil {
			onErr(fmt.Errorf("nomad namespaces: %w", err))
		}
		streamCtx, cancel := context.WithCancel(ctx)
		ch, err := o.c.EventStream().Stream(streamCtx, topics, next, &nomad.QueryOptions{Namespace: "*", AuthToken: o.readToken})
		if err != nil {
			cancel()
			onErr(fmt.Errorf("nomad event stream: %w", err))
			if !sleep(ctx, backoff) {
				break
			}
			backoff = min(2*backoff, 15*time.Second)
			continue
		}
		if broken && opts.Gap != nil && next > 0 {
			opts.Gap(ctx, next-1)
		}
		broken = false
		again, handled := o.follow(ctx, ch, &next, seen, handle, onErr, opts.Handled)
		cancel()
		if handled {
			backoff = minBackoff
		}
		if again {
			continue // a new namespace: subscribe again at once, from the next index
		}
		broken = true
		if !sleep(ctx, backoff) {
			break
		}
		backoff = min(2*backoff, 15*time.Second)
	}
	return ctx.Err()
}

// follow handles the events of one subscription until it breaks (again false) or a
// dispatch asks for a new one (again true). next advances past every handled index;
// handled says whether any event was.
func (o *Orchestrator) follow(ctx context.Context, ch <-chan *nomad.Events, next *uint64, seen *seen, handle func(context.Context, Outcome), onErr func(error), done func(uint64)) (again, handled bool) {
	// A namespace created since the subscription is not in it; a dispatch into it by this
	// process asks at once (resubscribe), one by another bot is found by looking.
	look := time.NewTicker(namespaceLook)
	defer look.Stop()
	for {
		select {
		case <-o.resubscribe:
			return true, handled
		case <-look.C:
			if o.newNamespace(ctx) {
				return true, handled
			}
		case events, ok := <-ch:
			if !ok {
				return false, handled
			}
			if events.Err != nil {
				onErr(fmt.Errorf("nomad event stream: %w", events.Err))
				return false, handled
			}
			if events.IsHeartbeat() {
				continue
			}
			for _, e := range events.Events {
				o.handleEvent(ctx, e, seen, handle, onErr)
			}
			*next, handled = events.Index+1, true
			if done != nil {
				done(events.Index)
			}
		}
	}
}

// namespaceLook is how often Watch looks for namespaces its stream does not cover.
const namespaceLook = time.Minute

// newNamespace reports whether Nomad has a namespace the stream does not cover.
func (o *Orchestrator) newNamespace(ctx context.Context) bool {
	nss, _, err := o.c.Namespaces().List((&nomad.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return false
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, ns := range nss {
		if o.watched != nil && !o.watched[ns.Name] {
			return true
		}
	}
	return false
}

func (o *Orchestrator) listWatched(ctx context.Context) error {
	nss, _, err := o.c.Namespaces().List((&nomad.QueryOptions{}).WithContext(ctx))
	if err != nil {
		o.setWatched(map[string]bool{}) // unknown: any dispatch will ask to subscribe again
		return err
	}
	watched := make(map[string]bool, len(nss))
	for _, ns := range nss {
		watched[ns.Name] = true
	}
	o.setWatched(watched)
	return nil
}

func (o *Orchestrator) setWatched(w map[string]bool) {
	o.mu.Lock()
	o.watched = w
	o.mu.Unlock()
}

// dispatchedIn notes a dispatch into ns; when Watch's stream does not cover ns, it asks
// Watch to subscribe again.
func (o *Orchestrator) dispatchedIn(ns string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.watched == nil || o.watched[ns] {
		return
	}
	o.watched[ns] = true // asked once
	select {
	case o.resubscribe <- struct{}{}:
	default:
	}
}

func (o *Orchestrator) handleEvent(ctx context.Context, e nomad.Event, seen *seen, handle func(context.Context, Outcome), onErr func(error)) {
	switch e.Topic {
	case nomad.TopicAllocation:
		a, err := e.Allocation()
		if err != nil || a == nil || !IsBuildID(a.JobID) || a.TaskGroup != Group {
			return
		}
		out, ok := allocOutcome(a)
		if !ok {
			return
		}
		if ours, known := o.ours(ctx, a.Namespace, a.JobID); !ours && known {
			return
		}
		if seen.add("alloc/" + a.ID) {
			return
		}
		out.Index = e.Index
		handle(ctx, out)
	case nomad.TopicEvaluation:
		ev, err := e.Evaluation()
		if err != nil || ev == nil || !IsBuildID(ev.JobID) {
			return
		}
		out, ok := evalOutcome(ev)
		if !ok {
			return
		}
		ours, known := o.ours(ctx, ev.Namespace, ev.JobID)
		if !ours && known {
			return
		}
		key := "queued/" + ev.JobID // one "waiting for resources" per build
		if out.Final {
			key = "unplaceable/" + ev.JobID
		}
		if seen.add(key) {
			return
		}
		if out.Final && ours {
			// Nothing can ever run it: stop the job rather than leave a blocked evaluation
			// (only a job the ledger names: never another tenant's).
			w := (&nomad.WriteOptions{Namespace: ev.Namespace}).WithContext(ctx)
			if _, _, err := o.c.Jobs().Deregister(ev.JobID, false, w); err != nil {
				onErr(fmt.Errorf("stop unplaceable build %s: %w", ev.JobID, err))
			}
		}
		out.Index = e.Index
		handle(ctx, out)
	}
}

// ours reports whether the ledger names the job of an event, in that namespace and of that
// builder (the check of its meta comes when the outcome is reported: Build). known is
// false when the ledger could not be read in time: the report then finds out.
func (o *Orchestrator) ours(ctx context.Context, ns, jobID string) (ours, known bool) {
	digest, builder, ok := digestOf(jobID)
	if !ok {
		return false, true
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	recs, err := o.ledger.Records(ctx, []string{digest})
	if err != nil {
		return false, false
	}
	rec, found := recs[digest]
	return found && rec.Namespace == ns && rec.Builder == builder, true
}

// WatchOptions say where Watch resumes and whom it tells of its progress.
type WatchOptions struct {
	// After is the last event index handled before; 0 starts at the oldest event Nomad
	// still buffers.
	After uint64
	// Gap is called with the last index handled when the stream resumes after breaking.
	Gap func(ctx context.Context, after uint64)
	// Handled, when set, is told the index of each batch of events once handled.
	Handled func(index uint64)
}

// seen remembers the last n keys, so that replays and repeated updates of an allocation that
// has already ended are handled once.
type seen struct {
	keys  map[string]struct{}
	order []string
	n     int
}

func newSeen(n int) *seen { return &seen{keys: make(map[string]struct{}, n), n: n} }

// add records key and reports whether it was already there.
func (s *seen) add(key string) bool {
	if _, ok := s.keys[key]; ok {
		return true
	}
	if len(s.order) == s.n {
		delete(s.keys, s.order[0])
		s.order = s.order[1:]
	}
	s.keys[key] = struct{}{}
	s.order = append(s.order, key)
	return false
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
