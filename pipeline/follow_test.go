package pipeline_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/albatros-ci/albatros/forge"
	"github.com/albatros-ci/albatros/orchestrator"
	"github.com/albatros-ci/albatros/pipeline"
)

// stream is Nomad's event stream: at Nomad's index nomad, it hands outcomes, each with its
// event index, then the index as handled, and waits for the end.
type stream struct {
	nomad    uint64
	outcomes []orchestrator.Outcome

	mu    sync.Mutex
	after []uint64 // each Watch's opts.After
}

func (s *stream) Index(context.Context) (uint64, error) { return s.nomad, nil }

func (s *stream) Watch(ctx context.Context, handle func(context.Context, orchestrator.Outcome), _ func(error), opts orchestrator.WatchOptions) error {
	s.mu.Lock()
	s.after = append(s.after, opts.After)
	s.mu.Unlock()
	for _, out := range s.outcomes {
		if out.Index <= opts.After {
			continue
		}
		handle(ctx, out)
		opts.Handled(out.Index)
	}
	<-ctx.Done()
	return ctx.Err()
}

// state is Consul's state keys.
type state struct {
	mu      sync.Mutex
	m       map[string]string
	readErr error
}

func (s *state) State(_ context.Context, key string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[key], s.readErr
}

func (s *state) SetState(_ context.Context, key, value string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]string{}
	}
	s.m[key] = value
	return nil
}

func (s *state) get(key string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[key]
}

// Follow resumes the stream after the index the last leader kept, reports what it hands
// on, and keeps the index reported up to; it starts from the beginning when the index
// kept cannot be read, is no number, or is ahead of Nomad's (another cluster).
func TestFollow(t *testing.T) {
	cases := []struct {
		name      string
		kept      string
		readErr   error
		wantAfter uint64
	}{
		{"first time", "", nil, 0},
		{"resumes", "90", nil, 90},
		{"unreadable", "90", errors.New("consul: 500"), 0},
		{"no number", "ninety", nil, 0},
		{"ahead of Nomad", "5000", nil, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(entryWith("default"))
			h.builds.Ended = map[string]orchestrator.Outcome{"default": {Result: orchestrator.Success, Description: "the build succeeded", Final: true}}
			const job = "builder/dispatch-albatros-1700000000-default"
			h.builds.AddBuild("ci", job, "builder", map[string]string{"REPO_URL": cloneURL, "COMMIT": sha, "BRANCH": "main", "FLAVOR": "default"}, nil, "pending")
			s := &stream{nomad: 1000, outcomes: []orchestrator.Outcome{{Namespace: "ci", JobID: job, Result: orchestrator.Success, Description: "the build succeeded", Final: true, Index: 120}}}
			st := &state{m: map[string]string{pipeline.EventsIndex: c.kept}, readErr: c.readErr}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() {
				defer close(done)
				h.p.Follow(ctx, discard, s, st, pipeline.FollowOptions{SaveEvery: 10 * time.Millisecond})
			}()
			deadline := time.Now().Add(5 * time.Second)
			for st.get(pipeline.EventsIndex) != "120" && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			cancel()
			<-done
			s.mu.Lock()
			after := s.after
			s.mu.Unlock()
			if len(after) != 1 || after[0] != c.wantAfter {
				t.Errorf("watched after %v, want [%d]", after, c.wantAfter)
			}
			if got := st.get(pipeline.EventsIndex); got != "120" {
				t.Errorf("index kept %q, want 120 (the outcome's, once reported)", got)
			}
			var final int
			for _, s := range h.forge.Statuses() {
				if s.State == forge.StateSuccess {
					final++
				}
			}
			if final != 1 {
				t.Errorf("statuses %+v, want the build's success once", h.forge.Statuses())
			}
		})
	}
}
