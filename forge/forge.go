// Package forge holds the forge-neutral types of Albatros: the events a forge sends (pushes,
// tags, pull requests), the commit statuses the bot writes back, and the one interface every
// forge driver implements. The Gitea and GitHub drivers live in forge/gitea and forge/github;
// nothing outside them sees a forge's own payloads or SDK types.
//
// This package does no I/O.
package forge

import (
	"context"
	"errors"
	"fmt"
)

// Forge is everything the bot may ask of a forge: commit statuses, and the capabilities
// (see capabilities.go) that a driver may lack. A driver embeds Unsupported and implements
// what its forge can do; what it lacks answers ErrUnsupported. So a capability is never
// discovered by type assertion, a client wrapped (for metrics, for tokens) keeps every
// capability it forwards, and each caller says what a missing one means: a decision that
// guards secrets or logs denies.
type Forge interface {
	// SetStatus writes a commit status. Writing the same state twice is harmless: forges keep
	// the newest status per context.
	SetStatus(ctx context.Context, s Status) error

	StatusReader
	OrgHooks
	OrgOwners
	TeamMembers
	Users
	Account
	RepoReaders
	OrgRepos
	Commenter
	Reactor
	PullRequests
	Writers
	Heads
	Refs
	Issues
	Limits
}

// ErrUnsupported is what a forge answers when it cannot do what is asked (errors.Is also
// matches errors.ErrUnsupported).
var ErrUnsupported = fmt.Errorf("forge: %w", errors.ErrUnsupported)

// Kind is what happened on the forge.
type Kind string

// The events the bot acts on.
const (
	KindPush        Kind = "push"         // commits pushed to a branch
	KindTag         Kind = "tag"          // a tag pushed
	KindPullRequest Kind = "pull_request" // a pull request opened, synchronized or reopened
	KindPing        Kind = "ping"         // the forge testing a newly installed webhook
	// KindComment is a new comment on a pull request (edits and deletions are not events).
	KindComment Kind = "comment"
	// KindPullRequestClosed is a pull request closed or merged: its builds can stop.
	KindPullRequestClosed Kind = "pull_request_closed"
	// KindInstallation is an App installed, uninstalled, suspended or given other
	// repositories (GitHub's installation and installation_repositories events): it names
	// no repository of its own, and is handled by the installations, not the pipeline.
	KindInstallation Kind = "installation"
)

// Install is what a KindInstallation event says of an App's installation.
type Install struct {
	// Action is the forge's word: created, deleted, suspend, unsuspend (installation),
	// added, removed (installation_repositories).
	Action string
	// ID is the installation's numeric id.
	ID int64
	// Account is the user or organization the App is installed on, AccountID its numeric
	// id, AccountType "Organization" or "User".
	Account     string
	AccountID   int64
	AccountType string
	// Selection is "all" (every repository of the account, present and future) or
	// "selected" (those listed).
	Selection string
	// Added are the repositories the installation was given (for created: those selected),
	// Removed those taken from it.
	Added, Removed []Repo
	// ReposUnknown is set on an installation listed (not an event's) whose selected
	// repositories could not be read: they are left as recorded.
	ReposUnknown bool
}

// Repo identifies a repository on a forge.
type Repo struct {
	// CloneURL is the HTTP(S) clone URL; it is the repository's key in the registry.
	CloneURL string
	// FullName is owner/name.
	FullName string
	// Owner is the user or organization that owns the repository, OwnerID its numeric id
	// on the forge (0 when not known): a name can be taken again once its owner is
	// deleted or renamed, an id cannot.
	Owner   string
	OwnerID int64
	// Name is the repository's name without its owner.
	Name string
	// HTMLURL is the repository's web page.
	HTMLURL string
}

// PullRequest is the part of a pull request a build needs.
type PullRequest struct {
	Number int64
	// HeadRepo is where the pull request's commits live; for a fork it differs from the
	// event's Repo.
	HeadRepo Repo
	// HeadBranch is the branch the pull request comes from, BaseBranch the one it targets.
	HeadBranch string
	BaseBranch string
	// Fork is true when the head repository is not the base repository, or when the head
	// is not a branch of the repository at all (AGit).
	Fork bool
	// AGit is true for a pull request pushed for review (git push origin HEAD:refs/for/main,
	// which reading the repository allows, on Gitea): its head is no branch, and its code
	// is its author's, as a fork's is its owner's.
	AGit bool
	// Author is the login of who opened the pull request, AuthorID their numeric id.
	Author   string
	AuthorID int64
	// Action is the forge's word for what happened (opened, synchronized, reopened).
	Action string
	// MaintainerEdits is true when the base repository's writers may push to a fork's
	// branch (GitHub's maintainer_can_modify, Gitea's allow_maintainer_edit, on by
	// default): its head may be theirs, not the fork owner's.
	MaintainerEdits bool
}

// Comment is a comment on a pull request.
type Comment struct {
	ID     int64
	Body   string
	Author string
	// AuthorID is the author's numeric id on the forge (0 when not known).
	AuthorID int64
}

// Event is one webhook delivery, turned into the bot's own terms.
type Event struct {
	Kind Kind
	// Delivery is the forge's id for this delivery, for the logs.
	Delivery string
	// Repo is the repository the event is about (for a pull request, the base repository).
	Repo Repo
	// Commit is the full SHA to build.
	Commit string
	// Branch is the branch pushed to, or the pull request's head branch; empty for a tag.
	Branch string
	// Tag is the tag's name, for KindTag.
	Tag string
	// PullRequest is set for KindPullRequest and KindPullRequestClosed, and for KindComment
	// with its number only (a comment's payload does not carry the head: read the pull
	// request).
	PullRequest *PullRequest
	// Comment is set for KindComment.
	Comment *Comment
	// Sender is the login of the user who caused the event, SenderID their numeric id on
	// the forge (0 when not known).
	Sender   string
	SenderID int64
	// Installation is the id of the App installation the delivery came through (GitHub),
	// 0 for a delivery of a webhook of the repository's or organization's own.
	Installation int64
	// Install is set for KindInstallation.
	Install *Install
}

// Trigger names what made the event, stably across redeliveries: the branch pushed, the
// tag, or the pull request (its number only: opening and reopening it on the same commit
// is one build).
func (e Event) Trigger() string {
	switch e.Kind {
	case KindTag:
		return "tag:" + e.Tag
	case KindPullRequest:
		return fmt.Sprintf("pr:%d", e.PullRequest.Number)
	default:
		return string(e.Kind) + ":" + e.Branch
	}
}

// State is a commit status state. The four are common to Gitea and GitHub.
type State string

// Commit status states.
const (
	StatePending State = "pending"
	StateSuccess State = "success"
	StateFailure State = "failure"
	StateError   State = "error"
)

// Status is a commit status to write.
type Status struct {
	Repo   Repo
	Commit string
	State  State
	// Context tells this status apart from others on the same commit (albatros/<flavor>).
	Context     string
	Description string
	// TargetURL is where the status links to: the build's log page.
	TargetURL string
}

// ErrNotFound is returned by forge clients for an organization, user or team the forge
// does not know (any more).
var ErrNotFound = errors.New("not found on the forge")

// ErrIgnoreEvent is returned by parsers for deliveries the bot acknowledges but does not act
// on (a branch deletion, a closed pull request, an event type it does not handle). The
// wrapping error says why.
var ErrIgnoreEvent = errors.New("event ignored")

// ErrMalformed is returned by parsers for a body that is not the JSON the event needs.
var ErrMalformed = errors.New("malformed payload")

// ErrUnsigned is returned for a delivery that carries no signature (or token) at all.
var ErrUnsigned = errors.New("unsigned delivery")

// ErrSignature is returned when a delivery's signature (or token) does not verify, or when
// there is nothing to verify it against.
var ErrSignature = errors.New("bad signature")

// Ignore wraps ErrIgnoreEvent with a reason.
func Ignore(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrIgnoreEvent, fmt.Sprintf(format, args...))
}
