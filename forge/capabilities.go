package forge

import (
	"context"
	"time"
)

// The capabilities of a forge client, beyond commit statuses: Forge holds them all, a
// driver implements those its forge has and embeds Unsupported for the others. A consumer
// takes the narrowest of them it needs.

// StatusReader reads commit statuses back.
type StatusReader interface {
	// LatestStatus returns the newest status of commit in context ctxName; ok is false when
	// the commit has none there.
	LatestStatus(ctx context.Context, repo Repo, commit, ctxName string) (s Status, ok bool, err error)
}

// Hook is an organization's webhook, as the bot wants it or finds it.
type Hook struct {
	ID int64
	// URL is where the forge posts; ContentType is "json" for the bot's.
	URL         string
	ContentType string
	Events      []string
	Active      bool
	// Secret is the HMAC secret: written, never read back from the forge.
	Secret string
}

// OrgHooks manages an organization's webhooks (on Gitea, an owner's right).
type OrgHooks interface {
	// ListOrgHooks returns every webhook of org, without their secrets.
	ListOrgHooks(ctx context.Context, org string) ([]Hook, error)
	// CreateOrgHook creates h on org and returns it with its id.
	CreateOrgHook(ctx context.Context, org string, h Hook) (Hook, error)
	// EditOrgHook sets the hook h.ID of org to h, secret included.
	EditOrgHook(ctx context.Context, org string, h Hook) error
	// DeleteOrgHook deletes a hook; deleting one that is gone is not an error.
	DeleteOrgHook(ctx context.Context, org string, id int64) error
}

// OrgOwners reads and changes who owns an organization.
type OrgOwners interface {
	// OrgName returns the organization's name as the forge spells it (names are
	// case-insensitive: "ACME" is "acme").
	OrgName(ctx context.Context, org string) (string, error)
	// OrgID returns the organization's numeric id; an error wrapping ErrNotFound when the
	// forge has no organization of that name (deleted, or renamed).
	OrgID(ctx context.Context, org string) (int64, error)
	// IsOwner reports whether user owns org.
	IsOwner(ctx context.Context, org, user string) (bool, error)
	// AddOwner makes user an owner of org; RemoveOwner undoes it. Both are no-ops when
	// there is nothing to do.
	AddOwner(ctx context.Context, org, user string) error
	RemoveOwner(ctx context.Context, org, user string) error
}

// Team names a team of an organization: by name, and by its numeric id once known (a
// team deleted and made again under its name is another team).
type Team struct {
	Name string
	ID   int64
}

// TeamMembers tells who belongs to an organization's teams.
type TeamMembers interface {
	// IsTeamMember reports whether user is a member of team in org: the team of that id
	// when team.ID is set, else the one of that name; a team that does not exist has no
	// members.
	IsTeamMember(ctx context.Context, org string, team Team, user string) (bool, error)
	// TeamID returns the id of the team named name in org; an error wrapping ErrNotFound
	// when org has none.
	TeamID(ctx context.Context, org, name string) (int64, error)
}

// Users tells who the forge's users are.
type Users interface {
	// UserID returns the numeric id of the user login, and when they registered; an error
	// wrapping ErrNotFound when the forge has no such user.
	UserID(ctx context.Context, login string) (id int64, registered time.Time, err error)
}

// Account is who a client acts as.
type Account interface {
	// Me returns the login of the client's user.
	Me(ctx context.Context) (string, error)
	// MyOrgs returns the organizations the client's user belongs to.
	MyOrgs(ctx context.Context) ([]string, error)
}

// RepoReaders tells who may read a repository.
type RepoReaders interface {
	// IsPrivate reports whether repo is hidden from anonymous visitors; a repository the
	// client cannot see counts as private.
	IsPrivate(ctx context.Context, repo Repo) (bool, error)
	// CanRead reports whether user, a login on this forge, may read repo.
	CanRead(ctx context.Context, repo Repo, user string) (bool, error)
}

// OrgRepos lists an organization's repositories.
type OrgRepos interface {
	// OrgRepos returns the repositories of org, by name.
	OrgRepos(ctx context.Context, org string) ([]Repo, error)
}

// Commenter reads and writes the comments of pull requests.
type Commenter interface {
	// Comments returns the comments of pull request number, oldest first.
	Comments(ctx context.Context, repo Repo, number int64) ([]Comment, error)
	// CreateComment adds a comment to pull request number and returns it.
	CreateComment(ctx context.Context, repo Repo, number int64, body string) (Comment, error)
	// EditComment replaces the body of comment id.
	EditComment(ctx context.Context, repo Repo, id int64, body string) error
}

// Reactor puts reactions (eyes, rocket, …) on comments.
type Reactor interface {
	// React adds reaction to comment id; adding one that is there is not an error.
	React(ctx context.Context, repo Repo, id int64, reaction string) error
}

// PullRequestInfo is a pull request as the forge has it now.
type PullRequestInfo struct {
	PullRequest
	// Head is the head commit's SHA.
	Head string
	Open bool
	// Updated is when the pull request last changed (a push to it, say).
	Updated time.Time
}

// PullRequests reads pull requests.
type PullRequests interface {
	// PullRequestInfo returns pull request number as it is now.
	PullRequestInfo(ctx context.Context, repo Repo, number int64) (PullRequestInfo, error)
	// PullRequestCommits returns the SHAs of the pull request's commits.
	PullRequestCommits(ctx context.Context, repo Repo, number int64) ([]string, error)
}

// Writers tells who may write to a repository.
type Writers interface {
	// CanWrite reports whether user may push to repo (directly, or through a team).
	CanWrite(ctx context.Context, repo Repo, user string) (bool, error)
}

// Heads tells what a repository would build now: the reconciler compares them with the
// statuses and builds, to find the deliveries that never arrived.
type Heads interface {
	// DefaultHead returns the default branch, its head commit and that commit's date.
	DefaultHead(ctx context.Context, repo Repo) (branch, commit string, date time.Time, err error)
	// OpenPullRequests returns the open pull requests, the most recently updated first, at
	// most limit.
	OpenPullRequests(ctx context.Context, repo Repo, limit int) ([]PullRequestInfo, error)
	// RecentBranches returns the branches whose head commit is dated since then, the newest
	// first, read at most maxPages pages of the forge's listing; truncated is true when
	// there may be more (the pages ran out first).
	RecentBranches(ctx context.Context, repo Repo, since time.Time, maxPages int) (branches []Branch, truncated bool, err error)
}

// Refs reads what a build no push starts builds (a schedule's, a run's): the repository as
// the forge has it now, its branches and their commits.
type Refs interface {
	// Repository returns repo as the forge has it now, with its owner's id; an error
	// wrapping ErrNotFound when there is none.
	Repository(ctx context.Context, repo Repo) (Repo, error)
	// Branch returns the branch name of repo and its head; an error wrapping ErrNotFound
	// when repo has no such branch.
	Branch(ctx context.Context, repo Repo, name string) (Branch, error)
	// BranchCommits returns the SHAs of the last n commits of branch, newest first.
	BranchCommits(ctx context.Context, repo Repo, branch string, n int) ([]string, error)
}

// Issues opens and closes a repository's issues (the one that tells of a failing
// schedule); they are commented on as pull requests are (Commenter).
type Issues interface {
	// OpenIssue opens an issue of title and body on repo and returns its number.
	OpenIssue(ctx context.Context, repo Repo, title, body string) (int64, error)
	// Issue returns issue number of repo; an error wrapping ErrNotFound when there is
	// none (deleted).
	Issue(ctx context.Context, repo Repo, number int64) (Issue, error)
	// CloseIssue closes issue number of repo.
	CloseIssue(ctx context.Context, repo Repo, number int64) error
}

// Issue is an issue of a repository, as the bot reads one it opened before: a number, once
// the bot's issue, may be someone else's (a repository deleted and created again), or a
// pull request (they share the numbers).
type Issue struct {
	Number int64
	Title  string
	// Author is the login of who opened it.
	Author string
	Open   bool
	// PullRequest is true when the number is a pull request's.
	PullRequest bool
}

// Branch is a branch of a repository and its head commit.
type Branch struct {
	Name, Commit string
	// Date is the head commit's date.
	Date time.Time
}

// Limits tells how much of the forge's request budget a client has left (GitHub's rate
// limit: 5,000 requests an hour for an App's installation, and more for large ones).
type Limits interface {
	// Budget returns the requests the client has left until reset, as the forge's last
	// answer to it said; ok is false when no answer said (a forge without limits, or no
	// request yet).
	Budget() (remaining int, reset time.Time, ok bool)
}
