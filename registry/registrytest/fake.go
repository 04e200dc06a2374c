// Package registrytest holds a fake of the repository registry for the tests of the
// packages that read it: entries held in memory, errors on demand, and a record of every
// lookup. It is for tests only; the registry itself is tested against a real Consul.
package registrytest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/albatros-ci/albatros/registry"
)

// Fake serves entries by URL, as registry.Registry does.
type Fake struct {
	// Repos and Orgs are the entries, by clone URL and by organization URL.
	Repos map[string]*registry.Repo
	Orgs  map[string]*registry.Org
	// RepoErr and OrgErr, when set, are returned by every lookup of their kind.
	RepoErr error
	OrgErr  error

	mu        sync.Mutex
	repoCalls []string
	orgCalls  []string
}

// Repo returns the entry of cloneURL, or an error wrapping registry.ErrNotFound.
func (f *Fake) Repo(_ context.Context, cloneURL string) (*registry.Repo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.repoCalls = append(f.repoCalls, cloneURL)
	if f.RepoErr != nil {
		return nil, f.RepoErr
	}
	if r, ok := f.Repos[cloneURL]; ok {
		return r, nil
	}
	return nil, fmt.Errorf("repository %s: %w", cloneURL, registry.ErrNotFound)
}

// Org returns the entry of orgURL, or an error wrapping registry.ErrNotFound.
func (f *Fake) Org(_ context.Context, orgURL string) (*registry.Org, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.orgCalls = append(f.orgCalls, orgURL)
	if f.OrgErr != nil {
		return nil, f.OrgErr
	}
	if o, ok := f.Orgs[orgURL]; ok {
		return o, nil
	}
	return nil, fmt.Errorf("organization %s: %w", orgURL, registry.ErrNotFound)
}

// Calls returns the URLs looked up so far, in order.
func (f *Fake) Calls() (repos, orgs []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.repoCalls), slices.Clone(f.orgCalls)
}

// Dedup holds build keys' records in memory, as the registry does in Consul: one claim
// per key, the settled job for the others. It is safe for concurrent use.
type Dedup struct {
	// Err, when set, is returned by every call: Consul failing.
	Err error

	mu        sync.Mutex
	recs      map[string]*registry.Dedup
	abandoned map[string]bool
}

// Claim claims key, or returns its settled record; a claim not yet settled is returned
// as is (no job), as Registry.Claim does after waiting; an abandoned claim is taken over.
func (d *Dedup) Claim(ctx context.Context, key string) (registry.Dedup, bool, error) {
	if err := ctx.Err(); err != nil {
		return registry.Dedup{}, false, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.Err != nil {
		return registry.Dedup{}, false, d.Err
	}
	if d.recs == nil {
		d.recs = map[string]*registry.Dedup{}
	}
	if d.abandoned[key] {
		delete(d.abandoned, key)
		d.recs[key] = &registry.Dedup{}
		return registry.Dedup{TookOver: true}, true, nil
	}
	if r, ok := d.recs[key]; ok {
		return *r, false, nil
	}
	d.recs[key] = &registry.Dedup{}
	return registry.Dedup{}, true, nil
}

// Abandon leaves key claimed by a bot that died before settling it, its claim stale: the
// next Claim takes it over.
func (d *Dedup) Abandon(key string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.recs == nil {
		d.recs = map[string]*registry.Dedup{}
	}
	if d.abandoned == nil {
		d.abandoned = map[string]bool{}
	}
	d.recs[key] = &registry.Dedup{}
	d.abandoned[key] = true
}

// Record returns key's record, and whether there is one (claimed or settled).
func (d *Dedup) Record(key string) (registry.Dedup, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	r, ok := d.recs[key]
	if !ok {
		return registry.Dedup{}, false
	}
	return *r, true
}

// Claimed reports whether any of keys is claimed or settled.
func (d *Dedup) Claimed(_ context.Context, keys ...string) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.Err != nil {
		return false, d.Err
	}
	for _, k := range keys {
		if _, ok := d.recs[k]; ok {
			return true, nil
		}
	}
	return false, nil
}

// Settle records the job of key.
func (d *Dedup) Settle(_ context.Context, key, ns, jobID string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.Err != nil {
		return d.Err
	}
	d.recs[key] = &registry.Dedup{Namespace: ns, JobID: jobID}
	return nil
}

// Release drops key's claim.
func (d *Dedup) Release(_ context.Context, key string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.Err != nil {
		return d.Err
	}
	delete(d.recs, key)
	return nil
}

// Lines holds line records in memory, as the registry does in Consul. It is safe for
// concurrent use.
type Lines struct {
	mu    sync.Mutex
	lines map[string]registry.Line
	swaps int
}

// SwapLine records next as line's newest build and returns the one it replaces.
func (l *Lines) SwapLine(_ context.Context, line string, next registry.Line) (registry.Line, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lines == nil {
		l.lines = map[string]registry.Line{}
	}
	prev, found := l.lines[line]
	l.lines[line] = next
	l.swaps++
	return prev, found, nil
}

// Swaps is how many times SwapLine was called.
func (l *Lines) Swaps() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.swaps
}

// Claims is the bots' coordination in memory, as the registry keeps it in Consul: the
// build keys' claims (Dedup) and the lines' records (Lines), and a claim's settlement
// written with its line's record (SettleLine). It is safe for concurrent use.
type Claims struct {
	Dedup
	Lines

	mu      sync.Mutex
	settled int
}

// SettleLine settles key's claim with ns/jobID and swaps line's record for next, as one
// write (registry.Registry.SettleLine).
func (c *Claims) SettleLine(ctx context.Context, key, ns, jobID, line string, next registry.Line) (registry.Line, bool, error) {
	if err := c.Settle(ctx, key, ns, jobID); err != nil {
		return registry.Line{}, false, err
	}
	c.mu.Lock()
	c.settled++
	c.mu.Unlock()
	return c.SwapLine(ctx, line, next)
}

// SettledLines is how many line records were written with their claim's settlement.
func (c *Claims) SettledLines() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.settled
}

// Sessions holds the sign-outs of the pages' sessions in memory, as the registry does in
// Consul, and counts the questions asked. It is safe for concurrent use.
type Sessions struct {
	// Err, when set, is returned by every call: Consul failing.
	Err error

	mu      sync.Mutex
	revoked map[string]time.Time
	asked   int
}

// Revoke records the session id as signed out until until.
func (s *Sessions) Revoke(_ context.Context, id string, until time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Err != nil {
		return s.Err
	}
	if s.revoked == nil {
		s.revoked = map[string]time.Time{}
	}
	s.revoked[id] = until
	return nil
}

// Revoked reports whether the session id was signed out.
func (s *Sessions) Revoked(_ context.Context, id string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.asked++
	if s.Err != nil {
		return false, s.Err
	}
	_, ok := s.revoked[id]
	return ok, nil
}

// SetErr sets Err, while requests may be asking.
func (s *Sessions) SetErr(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Err = err
}

// Until returns when the sign-out of id ends, and whether there is one.
func (s *Sessions) Until(id string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.revoked[id]
	return u, ok
}

// Asked is how many times Revoked was called.
func (s *Sessions) Asked() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.asked
}

// Remove removes the entry of cloneURL, as an owner's uninstall would.
func (f *Fake) Remove(cloneURL string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.Repos, cloneURL)
}

// Put sets the entry of cloneURL, as an operator's or owner's edit would.
func (f *Fake) Put(cloneURL string, e *registry.Repo) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Repos[cloneURL] = e
}
