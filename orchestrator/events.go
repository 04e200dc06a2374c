package orchestrator

import (
	"context"
	"fmt"
	"time"

	nomad "github.com/hashicorp/nomad/api"
)

// Watch follows Nomad's event stream (/v1/event/stream, allocation and evaluation topics, all
// namespaces) and calls handle, in order, for every build that ends and for every build that
// cannot be placed. It replays what Nomad's event buffer still holds at start, so that builds
// that ended while the bot was down are reported too; handle must therefore be idempotent.
// A build that can never be placed is stopped, so that it does not wait forever.
//
// Watch reconnects after stream errors, which it passes to onErr, resuming at the next index.
// It returns when ctx ends.
func (o *Orchestrator) Watch(ctx context.Context, handle func(context.Context, Outcome), onErr func(error)) error {
	topics := map[nomad.Topic][]string{
		nomad.TopicAllocation: {"*"},
		nomad.TopicEvaluation: {"*"},
	}
	var next uint64 // 0: from the oldest event Nomad still buffers
	seen := newSeen(8192)
	backoff := 500 * time.Millisecond
	for ctx.Err() == nil {
		streamCtx, cancel := context.WithCancel(ctx)
		ch, err := o.c.EventStream().Stream(streamCtx, topics, next, &nomad.QueryOptions{Namespace: "*"})
		if err != nil {
			cancel()
			onErr(fmt.Errorf("nomad event stream: %w", err))
			if !sleep(ctx, backoff) {
				break
			}
			backoff = min(2*backoff, 15*time.Second)
			continue
		}
		for events := range ch {
			if events.Err != nil {
				onErr(fmt.Errorf("nomad event stream: %w", events.Err))
				break
			}
			backoff = 500 * time.Millisecond
			if events.IsHeartbeat() {
				continue
			}
			for _, e := range events.Events {
				o.handleEvent(ctx, e, seen, handle, onErr)
			}
			next = events.Index + 1
		}
		cancel()
		if !sleep(ctx, backoff) {
			break
		}
	}
	return ctx.Err()
}

func (o *Orchestrator) handleEvent(ctx context.Context, e nomad.Event, seen *seen, handle func(context.Context, Outcome), onErr func(error)) {
	switch e.Topic {
	case nomad.TopicAllocation:
		a, err := e.Allocation()
		if err != nil || a == nil || !IsBuildID(a.JobID) || a.TaskGroup != Group {
			return
		}
		out, ok := allocOutcome(a)
		if !ok || seen.add("alloc/"+a.ID) {
			return
		}
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
		key := "queued/" + ev.JobID // one "waiting for resources" per build
		if out.Final {
			key = "unplaceable/" + ev.JobID
		}
		if seen.add(key) {
			return
		}
		if out.Final {
			// Nothing can ever run it: stop the job rather than leave a blocked evaluation.
			w := (&nomad.WriteOptions{Namespace: ev.Namespace}).WithContext(ctx)
			if _, _, err := o.c.Jobs().Deregister(ev.JobID, false, w); err != nil {
				onErr(fmt.Errorf("stop unplaceable build %s: %w", ev.JobID, err))
			}
		}
		handle(ctx, out)
	}
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
