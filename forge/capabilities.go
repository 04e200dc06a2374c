package forge

import "context"

// The optional capabilities of a forge client, beyond Forge. A consumer finds them by type
// assertion; each driver asserts at compile time the ones it implements
// (var _ forge.StatusReader = (*Client)(nil)), so that a drifted signature fails the build
// instead of silently turning a feature off.

// StatusReader reads commit statuses back.
type StatusReader interface {
	// LatestStatus returns the newest status of commit in context ctxName; ok is false when
	// the commit has none there.
	LatestStatus(ctx context.Context, repo Repo, commit, ctxName string) (s Status, ok bool, err error)
}
