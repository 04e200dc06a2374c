package forgetest

import (
	"context"
	"slices"
	"sync"

	"github.com/albatros-ci/albatros/forge"
	"github.com/albatros-ci/albatros/registry"
)

// The capabilities each fake implements, checked against forge's declarations so that a
// drifted signature fails the build.
var (
	_ forge.Forge        = (*Forge)(nil)
	_ forge.StatusReader = (*Forge)(nil)
	_ forge.TeamMembers  = (*Forge)(nil)
	_ forge.Forge        = WriteOnly{}
)

// Forge is a forge client that keeps the statuses written to it and, like Gitea, answers
// LatestStatus with the newest status of a commit in a context. It is safe for concurrent
// use; set its fields before sharing it.
type Forge struct {
	// SetErr, when set, fails every SetStatus, which then keeps nothing.
	SetErr error
	// LatestErr, when set, fails every LatestStatus.
	LatestErr error
	// Teams are the members of the organizations' teams, by "org/team"; TeamErr, when set,
	// fails every IsTeamMember.
	Teams   map[string][]string
	TeamErr error

	mu       sync.Mutex
	statuses []forge.Status // on the forge, oldest first
	reads    int
}

// SetStatus keeps s, or returns SetErr.
func (f *Forge) SetStatus(_ context.Context, s forge.Status) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.SetErr != nil {
		return f.SetErr
	}
	f.statuses = append(f.statuses, s)
	return nil
}

// IsTeamMember reports whether user is in Teams[org/team], or returns TeamErr.
func (f *Forge) IsTeamMember(_ context.Context, org, team, user string) (bool, error) {
	if f.TeamErr != nil {
		return false, f.TeamErr
	}
	return slices.Contains(f.Teams[org+"/"+team], user), nil
}

// LatestStatus returns the newest status of commit in repo and context ctxName, or
// LatestErr.
func (f *Forge) LatestStatus(_ context.Context, repo forge.Repo, commit, ctxName string) (forge.Status, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	if f.LatestErr != nil {
		return forge.Status{}, false, f.LatestErr
	}
	for _, s := range slices.Backward(f.statuses) {
		if s.Repo.FullName == repo.FullName && s.Commit == commit && s.Context == ctxName {
			return s, true, nil
		}
	}
	return forge.Status{}, false, nil
}

// AddStatuses puts statuses on the forge as if written earlier, without SetStatus.
func (f *Forge) AddStatuses(ss ...forge.Status) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.statuses = append(f.statuses, ss...)
}

// Statuses returns the statuses on the forge, oldest first: those added by AddStatuses and
// those written by SetStatus.
func (f *Forge) Statuses() []forge.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.statuses)
}

// Reads returns how many times LatestStatus was called.
func (f *Forge) Reads() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reads
}

// WriteOnly is a forge without the StatusReader capability, as a driver that cannot read
// statuses back: it writes to Forge.
type WriteOnly struct {
	Forge *Forge
}

// SetStatus writes s to w.Forge.
func (w WriteOnly) SetStatus(ctx context.Context, s forge.Status) error {
	return w.Forge.SetStatus(ctx, s)
}

// Forges is the function that finds a repository's forge client (pipeline.ForgeFor): For
// hands out one forge and records what it was asked. It is safe for concurrent use; set
// its fields before sharing it.
type Forges struct {
	// Forge and Repo are what For returns: the client, and the repository as it names it.
	Forge forge.Forge
	Repo  forge.Repo
	// Err, when set, is returned by every For.
	Err error

	mu    sync.Mutex
	calls []ForCall
}

// ForCall is one call of Forges.For.
type ForCall struct {
	Entry    *registry.Repo
	CloneURL string
}

// For returns Forge and Repo, or Err.
func (f *Forges) For(entry *registry.Repo, cloneURL string) (forge.Forge, forge.Repo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, ForCall{Entry: entry, CloneURL: cloneURL})
	if f.Err != nil {
		return nil, forge.Repo{}, f.Err
	}
	return f.Forge, f.Repo, nil
}

// Calls returns the calls of For so far, in order.
func (f *Forges) Calls() []ForCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}
