package forgetest

import (
	"context"

	"github.com/albatros-ci/albatros/forge"
)

// Capabilities that Without can take away, by the name of their interface in package forge.
const (
	PullRequests = "PullRequests"
	Writers      = "Writers"
	TeamMembers  = "TeamMembers"
	RepoReaders  = "RepoReaders"
	StatusReader = "StatusReader"
)

// Without is f as a forge that lacks the capabilities named (PullRequests, Writers, …):
// their methods answer forge.ErrUnsupported, as a driver's that embeds forge.Unsupported,
// and every other call goes to f. Tests use it to show that a decision which depends on a
// capability denies when the forge lacks it.
func Without(f forge.Forge, capabilities ...string) forge.Forge {
	w := &without{Forge: f, lacks: map[string]bool{}}
	for _, c := range capabilities {
		w.lacks[c] = true
	}
	return w
}

type without struct {
	forge.Forge
	lacks map[string]bool
}

var none forge.Unsupported

func (w *without) PullRequestInfo(ctx context.Context, repo forge.Repo, number int64) (forge.PullRequestInfo, error) {
	if w.lacks[PullRequests] {
		return none.PullRequestInfo(ctx, repo, number)
	}
	return w.Forge.PullRequestInfo(ctx, repo, number)
}

func (w *without) PullRequestCommits(ctx context.Context, repo forge.Repo, number int64) ([]string, error) {
	if w.lacks[PullRequests] {
		return none.PullRequestCommits(ctx, repo, number)
	}
	return w.Forge.PullRequestCommits(ctx, repo, number)
}

func (w *without) CanWrite(ctx context.Context, repo forge.Repo, user string) (bool, error) {
	if w.lacks[Writers] {
		return none.CanWrite(ctx, repo, user)
	}
	return w.Forge.CanWrite(ctx, repo, user)
}

func (w *without) IsTeamMember(ctx context.Context, org string, team forge.Team, user string) (bool, error) {
	if w.lacks[TeamMembers] {
		return none.IsTeamMember(ctx, org, team, user)
	}
	return w.Forge.IsTeamMember(ctx, org, team, user)
}

func (w *without) TeamID(ctx context.Context, org, name string) (int64, error) {
	if w.lacks[TeamMembers] {
		return none.TeamID(ctx, org, name)
	}
	return w.Forge.TeamID(ctx, org, name)
}

func (w *without) IsPrivate(ctx context.Context, repo forge.Repo) (bool, error) {
	if w.lacks[RepoReaders] {
		return none.IsPrivate(ctx, repo)
	}
	return w.Forge.IsPrivate(ctx, repo)
}

func (w *without) CanRead(ctx context.Context, repo forge.Repo, user string) (bool, error) {
	if w.lacks[RepoReaders] {
		return none.CanRead(ctx, repo, user)
	}
	return w.Forge.CanRead(ctx, repo, user)
}

func (w *without) LatestStatus(ctx context.Context, repo forge.Repo, commit, ctxName string) (forge.Status, bool, error) {
	if w.lacks[StatusReader] {
		return none.LatestStatus(ctx, repo, commit, ctxName)
	}
	return w.Forge.LatestStatus(ctx, repo, commit, ctxName)
}
