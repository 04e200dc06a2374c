package forgetest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/albatros-ci/albatros/forge"
	"github.com/albatros-ci/albatros/registry"
)

// The capabilities each fake implements, checked against forge's declarations so that a
// drifted signature fails the build.
var (
	_ forge.Forge        = (*Forge)(nil)
	_ forge.StatusReader = (*Forge)(nil)
	_ forge.TeamMembers  = (*Forge)(nil)
	_ forge.Account      = (*Forge)(nil)
	_ forge.Commenter    = (*Forge)(nil)
	_ forge.Reactor      = (*Forge)(nil)
	_ forge.PullRequests = (*Forge)(nil)
	_ forge.Writers      = (*Forge)(nil)
	_ forge.Heads        = (*Forge)(nil)
	_ forge.Forge        = WriteOnly{}
)

// Forge is a forge client that keeps the statuses written to it and, like Gitea, answers
// LatestStatus with the newest status of a commit in a context. It is safe for concurrent
// use; set its fields before sharing it.
type Forge struct {
	// Every capability not implemented below is unsupported.
	forge.Unsupported

	// SetErr, when set, fails every SetStatus, which then keeps nothing.
	SetErr error
	// LatestErr, when set, fails every LatestStatus.
	LatestErr error
	// Teams are the members of the organizations' teams, by "org/team"; TeamIDs their ids,
	// by "org/team" too (a team asked by an id it does not have has no members); TeamErr,
	// when set, fails every IsTeamMember.
	Teams   map[string][]string
	TeamIDs map[string]int64
	TeamErr error
	// Login is who the client acts as; Writers may push to every repository.
	Login   string
	Writers []string
	// PRs are the forge's pull requests, by number (the fake serves one repository);
	// Commits are their commits.
	PRs     map[int64]forge.PullRequestInfo
	Commits map[int64][]string
	// Default is the default branch, DefaultCommit its head, DefaultDate that commit's
	// date.
	Default, DefaultCommit string
	DefaultDate            time.Time
	// Branches are the repository's branches, for RecentBranches; BranchPages, when set,
	// is how many branches a page of its listing holds (all on one page when 0).
	Branches    []forge.Branch
	BranchPages int
	// BranchErr, when set, is RecentBranches' error.
	BranchErr error
	// RepoOwnerID, when set, is the owner's id Repository says the repository has now.
	RepoOwnerID int64
	// RateLeft, with RateKnown, is the request budget Budget says is left.
	RateLeft  int
	RateKnown bool

	mu        sync.Mutex
	statuses  []forge.Status // on the forge, oldest first
	reads     int
	comments  map[int64][]forge.Comment
	nextID    int64
	reactions []Reaction
	edits     int
	issues    []Issue
}

// Reaction is a reaction the bot put on a comment.
type Reaction struct {
	Comment  int64
	Reaction string
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

// FailStatuses sets SetErr while the forge is in use: nil makes SetStatus work again.
func (f *Forge) FailStatuses(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.SetErr = err
}

// IsTeamMember reports whether user is in Teams[org/team] (of the id TeamIDs gives, when
// team.ID is set), or returns TeamErr.
func (f *Forge) IsTeamMember(_ context.Context, org string, team forge.Team, user string) (bool, error) {
	if f.TeamErr != nil {
		return false, f.TeamErr
	}
	k := org + "/" + team.Name
	if team.ID != 0 && f.TeamIDs[k] != team.ID {
		return false, nil
	}
	return slices.Contains(f.Teams[k], user), nil
}

// TeamID returns TeamIDs[org/name], or an error wrapping forge.ErrNotFound.
func (f *Forge) TeamID(_ context.Context, org, name string) (int64, error) {
	if id, ok := f.TeamIDs[org+"/"+name]; ok {
		return id, nil
	}
	return 0, fmt.Errorf("team %s/%s: %w", org, name, forge.ErrNotFound)
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

// WriteOnly is a forge that only writes statuses (to Forge), every other capability
// unsupported: a driver that cannot read statuses back, nor tell who may do what.
type WriteOnly struct {
	forge.Unsupported
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

// Me returns Login.
func (f *Forge) Me(context.Context) (string, error) { return f.Login, nil }

// MyOrgs returns nothing: the fake client belongs to no organization.
func (f *Forge) MyOrgs(context.Context) ([]string, error) { return nil, nil }

// Comments returns the comments of pull request number, oldest first.
func (f *Forge) Comments(_ context.Context, _ forge.Repo, number int64) ([]forge.Comment, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.comments[number]), nil
}

// CreateComment adds a comment by Login.
func (f *Forge) CreateComment(_ context.Context, _ forge.Repo, number int64, body string) (forge.Comment, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.addComment(number, f.Login, body), nil
}

// AddComment adds a comment by author, as a person writes one.
func (f *Forge) AddComment(number int64, author, body string) forge.Comment {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.addComment(number, author, body)
}

func (f *Forge) addComment(number int64, author, body string) forge.Comment {
	if f.comments == nil {
		f.comments = map[int64][]forge.Comment{}
	}
	f.nextID++
	c := forge.Comment{ID: f.nextID, Body: body, Author: author}
	f.comments[number] = append(f.comments[number], c)
	return c
}

// EditComment replaces the body of comment id.
func (f *Forge) EditComment(_ context.Context, _ forge.Repo, id int64, body string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for n, list := range f.comments {
		for i := range list {
			if list[i].ID == id {
				f.comments[n][i].Body = body
				f.edits++
				return nil
			}
		}
	}
	return fmt.Errorf("no comment %d", id)
}

// Edits counts the EditComment calls that changed a comment.
func (f *Forge) Edits() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.edits
}

// React records a reaction.
func (f *Forge) React(_ context.Context, _ forge.Repo, id int64, reaction string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reactions = append(f.reactions, Reaction{id, reaction})
	return nil
}

// Reactions returns the reactions so far, in order.
func (f *Forge) Reactions() []Reaction {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.reactions)
}

// PullRequestInfo returns PRs[number].
func (f *Forge) PullRequestInfo(_ context.Context, _ forge.Repo, number int64) (forge.PullRequestInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	info, ok := f.PRs[number]
	if !ok {
		return forge.PullRequestInfo{}, fmt.Errorf("no pull request %d", number)
	}
	return info, nil
}

// SetPR replaces pull request number, as a push or a close does.
func (f *Forge) SetPR(info forge.PullRequestInfo) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.PRs == nil {
		f.PRs = map[int64]forge.PullRequestInfo{}
	}
	f.PRs[info.Number] = info
}

// PullRequestCommits returns Commits[number].
func (f *Forge) PullRequestCommits(_ context.Context, _ forge.Repo, number int64) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.Commits[number]), nil
}

// CanWrite reports whether user is one of Writers.
func (f *Forge) CanWrite(_ context.Context, _ forge.Repo, user string) (bool, error) {
	return slices.Contains(f.Writers, user), nil
}

// DefaultHead returns Default, DefaultCommit and DefaultDate.
func (f *Forge) DefaultHead(context.Context, forge.Repo) (string, string, time.Time, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.Default, f.DefaultCommit, f.DefaultDate, nil
}

// RecentBranches returns Branches dated since then, newest first, as many pages of
// BranchPages branches as maxPages allows; or BranchErr.
func (f *Forge) RecentBranches(_ context.Context, _ forge.Repo, since time.Time, maxPages int) ([]forge.Branch, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.BranchErr != nil {
		return nil, false, f.BranchErr
	}
	all := slices.Clone(f.Branches)
	slices.SortFunc(all, func(a, b forge.Branch) int { return b.Date.Compare(a.Date) })
	perPage := f.BranchPages
	if perPage == 0 {
		perPage = max(1, len(all))
	}
	var out []forge.Branch
	for i, b := range all {
		if i >= perPage*maxPages {
			return out, true, nil
		}
		if b.Date.Before(since) {
			break
		}
		out = append(out, b)
	}
	return out, false, nil
}

// OpenPullRequests returns the open ones of PRs, the most recently updated first.
func (f *Forge) OpenPullRequests(_ context.Context, _ forge.Repo, limit int) ([]forge.PullRequestInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []forge.PullRequestInfo
	for _, pr := range f.PRs {
		if pr.Open {
			out = append(out, pr)
		}
	}
	slices.SortFunc(out, func(a, b forge.PullRequestInfo) int { return b.Updated.Compare(a.Updated) })
	return out[:min(len(out), limit)], nil
}

// Budget is RateLeft when RateKnown, resetting in an hour.
func (f *Forge) Budget() (int, time.Time, bool) {
	return f.RateLeft, time.Now().Add(time.Hour), f.RateKnown
}
