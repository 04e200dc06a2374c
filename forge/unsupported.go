package forge

import (
	"context"
	"fmt"
	"time"
)

// Unsupported answers ErrUnsupported to every capability of Forge: a driver embeds it and
// implements what its forge can do. It does not write statuses: every driver must.
type Unsupported struct{}

func unsupported(what string) error { return fmt.Errorf("%s: %w", what, ErrUnsupported) }

func (Unsupported) LatestStatus(context.Context, Repo, string, string) (Status, bool, error) {
	return Status{}, false, unsupported("reading commit statuses")
}
func (Unsupported) ListOrgHooks(context.Context, string) ([]Hook, error) {
	return nil, unsupported("listing organization webhooks")
}
func (Unsupported) CreateOrgHook(context.Context, string, Hook) (Hook, error) {
	return Hook{}, unsupported("creating organization webhooks")
}
func (Unsupported) EditOrgHook(context.Context, string, Hook) error {
	return unsupported("editing organization webhooks")
}
func (Unsupported) DeleteOrgHook(context.Context, string, int64) error {
	return unsupported("deleting organization webhooks")
}
func (Unsupported) OrgName(context.Context, string) (string, error) {
	return "", unsupported("naming organizations")
}
func (Unsupported) OrgID(context.Context, string) (int64, error) {
	return 0, unsupported("identifying organizations")
}
func (Unsupported) IsOwner(context.Context, string, string) (bool, error) {
	return false, unsupported("telling organization owners")
}
func (Unsupported) AddOwner(context.Context, string, string) error {
	return unsupported("adding organization owners")
}
func (Unsupported) RemoveOwner(context.Context, string, string) error {
	return unsupported("removing organization owners")
}
func (Unsupported) IsTeamMember(context.Context, string, Team, string) (bool, error) {
	return false, unsupported("telling team members")
}
func (Unsupported) TeamID(context.Context, string, string) (int64, error) {
	return 0, unsupported("identifying teams")
}
func (Unsupported) UserID(context.Context, string) (int64, time.Time, error) {
	return 0, time.Time{}, unsupported("identifying users")
}
func (Unsupported) Me(context.Context) (string, error) {
	return "", unsupported("naming the bot's account")
}
func (Unsupported) MyOrgs(context.Context) ([]string, error) {
	return nil, unsupported("listing the bot's organizations")
}
func (Unsupported) IsPrivate(context.Context, Repo) (bool, error) {
	return true, unsupported("telling a repository's visibility") // private, should a caller ignore the error
}
func (Unsupported) CanRead(context.Context, Repo, string) (bool, error) {
	return false, unsupported("telling a repository's readers")
}
func (Unsupported) OrgRepos(context.Context, string) ([]Repo, error) {
	return nil, unsupported("listing an organization's repositories")
}
func (Unsupported) Comments(context.Context, Repo, int64) ([]Comment, error) {
	return nil, unsupported("reading comments")
}
func (Unsupported) CreateComment(context.Context, Repo, int64, string) (Comment, error) {
	return Comment{}, unsupported("commenting")
}
func (Unsupported) EditComment(context.Context, Repo, int64, string) error {
	return unsupported("editing comments")
}
func (Unsupported) React(context.Context, Repo, int64, string) error {
	return unsupported("reacting to comments")
}
func (Unsupported) PullRequestInfo(context.Context, Repo, int64) (PullRequestInfo, error) {
	return PullRequestInfo{}, unsupported("reading pull requests")
}
func (Unsupported) PullRequestCommits(context.Context, Repo, int64) ([]string, error) {
	return nil, unsupported("reading pull requests' commits")
}
func (Unsupported) CanWrite(context.Context, Repo, string) (bool, error) {
	return false, unsupported("telling a repository's writers")
}
func (Unsupported) DefaultHead(context.Context, Repo) (string, string, time.Time, error) {
	return "", "", time.Time{}, unsupported("reading default branches")
}
func (Unsupported) OpenPullRequests(context.Context, Repo, int) ([]PullRequestInfo, error) {
	return nil, unsupported("listing open pull requests")
}
func (Unsupported) RecentBranches(context.Context, Repo, time.Time, int) ([]Branch, bool, error) {
	return nil, false, unsupported("listing branches")
}

func (Unsupported) Budget() (int, time.Time, bool) { return 0, time.Time{}, false }
func (Unsupported) Repository(context.Context, Repo) (Repo, error) {
	return Repo{}, unsupported("reading repositories")
}
func (Unsupported) Branch(context.Context, Repo, string) (Branch, error) {
	return Branch{}, unsupported("reading branches")
}
func (Unsupported) BranchCommits(context.Context, Repo, string, int) ([]string, error) {
	return nil, unsupported("listing a branch's commits")
}
func (Unsupported) OpenIssue(context.Context, Repo, string, string) (int64, error) {
	return 0, unsupported("opening issues")
}
func (Unsupported) Issue(context.Context, Repo, int64) (Issue, error) {
	return Issue{}, unsupported("reading issues")
}
func (Unsupported) CloseIssue(context.Context, Repo, int64) error {
	return unsupported("closing issues")
}
