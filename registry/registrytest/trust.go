package registrytest

import (
	"context"
	"maps"
	"sync"
)

// Trust holds the trusted commits in memory, as the registry does in Consul
// (Registry.TrustCommit): by repository and commit, with why each was trusted. It is safe
// for concurrent use.
type Trust struct {
	// Err, when set, is returned by every call: Consul failing.
	Err error

	mu      sync.Mutex
	commits map[[2]string]string
}

// TrustCommit records commit of cloneURL as trusted, why.
func (t *Trust) TrustCommit(_ context.Context, cloneURL, commit, why string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.Err != nil {
		return t.Err
	}
	if t.commits == nil {
		t.commits = map[[2]string]string{}
	}
	t.commits[[2]string{cloneURL, commit}] = why
	return nil
}

// CommitTrust returns why commit of cloneURL was recorded, "" when it was not.
func (t *Trust) CommitTrust(_ context.Context, cloneURL, commit string) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.Err != nil {
		return "", t.Err
	}
	return t.commits[[2]string{cloneURL, commit}], nil
}

// Commits returns why each recorded commit was trusted, by repository and commit.
func (t *Trust) Commits() map[[2]string]string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return maps.Clone(t.commits)
}
