package registrytest

import (
	"context"
	"sync"

	"github.com/albatros-ci/albatros/registry"
)

// Schedules keeps the schedules' states in memory, as registry.Registry keeps them in
// Consul.
type Schedules struct {
	mu sync.Mutex
	m  map[[2]string]registry.ScheduleState
}

// ScheduleState returns the state of the schedule name of cloneURL.
func (s *Schedules) ScheduleState(_ context.Context, cloneURL, name string) (registry.ScheduleState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.m[[2]string{cloneURL, name}]
	if !ok {
		st = registry.ScheduleState{Repo: cloneURL, Name: name}
	}
	return st, nil
}

// UpdateScheduleState applies change to the state, and keeps it when change says so.
func (s *Schedules) UpdateScheduleState(ctx context.Context, cloneURL, name string, change func(*registry.ScheduleState) bool) (registry.ScheduleState, error) {
	st, _ := s.ScheduleState(ctx, cloneURL, name)
	s.mu.Lock()
	defer s.mu.Unlock()
	if change(&st) {
		if s.m == nil {
			s.m = map[[2]string]registry.ScheduleState{}
		}
		s.m[[2]string{cloneURL, name}] = st
	}
	return st, nil
}
