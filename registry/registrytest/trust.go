package registrytest

import (
	"context"
	"maps"
	"sync"

	"github.com/albatros-ci/albatros/registry"
)

// Trust holds the trusted commits and the branches' heads in memory, as the registry does in Consul
// (Registry.TrustCommit): by repository and commit, with why each was trusted. It is safe
// for concurrent use.
type Trust struct {
	// Err, when set, is returned by every call: Consul failing.
	Err error

	mu      sync.Mutex
	commits map[[2]string]string
	heads   map[[2]string]registry.Head
}

// RecordHead records h as its branch's last push; distrust wins, as in the registry.
func (t *Trust) RecordHead(_ context.Context, h registry.Head) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.Err != nil {
		return t.Err
	}
	if t.heads == nil {
		t.heads = map[[2]string]registry.Head{}
	}
	k := [2]string{h.Repo, h.Branch}
	if cur, ok := t.heads[k]; ok && cur.Commit == h.Commit && !cur.Trusted {
		return nil
	}
	t.heads[k] = h
	return nil
}

// BranchHead returns the branch's last push recorded, the zero Head when none.
func (t *Trust) BranchHead(_ context.Context, cloneURL, branch string) (registry.Head, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.Err != nil {
		return registry.Head{}, t.Err
	}
	return t.heads[[2]string{cloneURL, branch}], nil
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
