package gitea

import (
	"context"
	"fmt"
	"strconv"
	"time"

	sdk "code.gitea.io/sdk/gitea"

	"github.com/albatros-ci/albatros/forge"
)

var (
	_ forge.Commenter    = (*Client)(nil)
	_ forge.Reactor      = (*Client)(nil)
	_ forge.PullRequests = (*Client)(nil)
	_ forge.Writers      = (*Client)(nil)
)

// Comments returns the comments of pull request number, oldest first.
func (c *Client) Comments(ctx context.Context, repo forge.Repo, number int64) ([]forge.Comment, error) {
	cl, err := c.sdk(ctx)
	if err != nil {
		return nil, err
	}
	list, err := all(func(o sdk.ListOptions) ([]*sdk.Comment, *sdk.Response, error) {
		return cl.ListIssueComments(repo.Owner, repo.Name, number, sdk.ListIssueCommentOptions{ListOptions: o})
	})
	if err != nil {
		return nil, fmt.Errorf("gitea: comments of %s#%d: %w", repo.FullName, number, err)
	}
	out := make([]forge.Comment, 0, len(list))
	for _, cm := range list {
		out = append(out, commentOf(cm))
	}
	return out, nil
}

func commentOf(cm *sdk.Comment) forge.Comment {
	c := forge.Comment{ID: cm.ID, Body: cm.Body}
	if cm.Poster != nil {
		c.Author, c.AuthorID = cm.Poster.UserName, cm.Poster.ID
	}
	return c
}

// CreateComment adds a comment to pull request number.
func (c *Client) CreateComment(ctx context.Context, repo forge.Repo, number int64, body string) (forge.Comment, error) {
	cl, err := c.sdk(ctx)
	if err != nil {
		return forge.Comment{}, err
	}
	cm, _, err := cl.CreateIssueComment(repo.Owner, repo.Name, number, sdk.CreateIssueCommentOption{Body: body})
	if err != nil {
		return forge.Comment{}, fmt.Errorf("gitea: comment on %s#%d: %w", repo.FullName, number, err)
	}
	return commentOf(cm), nil
}

// EditComment replaces the body of comment id.
func (c *Client) EditComment(ctx context.Context, repo forge.Repo, id int64, body string) error {
	cl, err := c.sdk(ctx)
	if err != nil {
		return err
	}
	if _, _, err := cl.EditIssueComment(repo.Owner, repo.Name, id, sdk.EditIssueCommentOption{Body: body}); err != nil {
		return fmt.Errorf("gitea: edit comment %d of %s: %w", id, repo.FullName, err)
	}
	return nil
}

// React adds reaction to comment id (Gitea answers 200 for one already there).
func (c *Client) React(ctx context.Context, repo forge.Repo, id int64, reaction string) error {
	cl, err := c.sdk(ctx)
	if err != nil {
		return err
	}
	if _, _, err := cl.PostIssueCommentReaction(repo.Owner, repo.Name, id, reaction); err != nil {
		return fmt.Errorf("gitea: react %s to comment %d of %s: %w", reaction, id, repo.FullName, err)
	}
	return nil
}

// PullRequestInfo returns pull request number as it is now.
func (c *Client) PullRequestInfo(ctx context.Context, repo forge.Repo, number int64) (forge.PullRequestInfo, error) {
	cl, err := c.sdk(ctx)
	if err != nil {
		return forge.PullRequestInfo{}, err
	}
	pr, _, err := cl.GetPullRequest(repo.Owner, repo.Name, number)
	if err != nil {
		return forge.PullRequestInfo{}, fmt.Errorf("gitea: pull request %s#%d: %w", repo.FullName, number, err)
	}
	return prInfo(repo, pr)
}

// prInfo converts a pull request of repo.
func prInfo(repo forge.Repo, pr *sdk.PullRequest) (forge.PullRequestInfo, error) {
	number := pr.Index
	if pr.Head == nil || pr.Base == nil {
		return forge.PullRequestInfo{}, fmt.Errorf("gitea: pull request %s#%d has no head or base", repo.FullName, number)
	}
	info := forge.PullRequestInfo{
		PullRequest: forge.PullRequest{Number: number, HeadBranch: pr.Head.Ref, BaseBranch: pr.Base.Ref, AGit: agit(pr.Head.Name, pr.Head.Ref)},
		Head:        pr.Head.Sha,
		Open:        pr.State == sdk.StateOpen,
	}
	if pr.Updated != nil {
		info.Updated = *pr.Updated
	}
	if pr.Poster != nil {
		info.Author, info.AuthorID = pr.Poster.UserName, pr.Poster.ID
	}
	// A pull request whose head repository is gone (a deleted fork) is a fork's: its code
	// is nobody's the bot trusts.
	info.Fork = true
	if r := pr.Head.Repository; r != nil {
		owner, ownerID := "", int64(0)
		if r.Owner != nil {
			owner, ownerID = r.Owner.UserName, r.Owner.ID
		}
		info.HeadRepo = forge.Repo{CloneURL: r.CloneURL, FullName: r.FullName, Owner: owner, OwnerID: ownerID, Name: r.Name, HTMLURL: r.HTMLURL}
		info.Fork = r.CloneURL != repo.CloneURL || info.AGit
		info.MaintainerEdits = pr.AllowMaintainerEdit && r.CloneURL != repo.CloneURL
	}
	return info, nil
}

// PullRequestCommits returns the SHAs of the pull request's commits.
func (c *Client) PullRequestCommits(ctx context.Context, repo forge.Repo, number int64) ([]string, error) {
	cl, err := c.sdk(ctx)
	if err != nil {
		return nil, err
	}
	commits, err := all(func(o sdk.ListOptions) ([]*sdk.Commit, *sdk.Response, error) {
		return cl.ListPullRequestCommits(repo.Owner, repo.Name, number, sdk.ListPullRequestCommitsOptions{ListOptions: o})
	})
	if err != nil {
		return nil, fmt.Errorf("gitea: commits of %s#%d: %w", repo.FullName, number, err)
	}
	out := make([]string, 0, len(commits))
	for _, cm := range commits {
		if cm.CommitMeta != nil {
			out = append(out, cm.SHA)
		}
	}
	return out, nil
}

// CanWrite reports whether user may push to repo: as a collaborator with write access or
// more, or as a member of a team of the repository's organization whose access to the
// code is write or more and that includes the repository. Gitea's permission endpoint
// alone does not tell the second: for a member of a team with write on the code unit only
// it answers "read". The bot, an owner of an installed organization, may ask both.
func (c *Client) CanWrite(ctx context.Context, repo forge.Repo, user string) (bool, error) {
	cl, err := c.sdk(ctx)
	if err != nil {
		return false, err
	}
	p, resp, err := cl.CollaboratorPermission(repo.Owner, repo.Name, user)
	switch {
	case err == nil && writes(string(p.Permission)):
		return true, nil
	case err != nil && !notFound(resp):
		return false, fmt.Errorf("gitea: permission of %s on %s: %w", user, repo.FullName, err)
	}
	if _, resp, err := cl.GetOrg(repo.Owner); err != nil {
		if notFound(resp) {
			return false, nil // a user's repository: no teams
		}
		return false, fmt.Errorf("gitea: organization %s: %w", repo.Owner, err)
	}
	teams, err := all(func(o sdk.ListOptions) ([]*sdk.Team, *sdk.Response, error) {
		return cl.ListOrgTeams(repo.Owner, sdk.ListTeamsOptions{ListOptions: o})
	})
	if err != nil {
		return false, fmt.Errorf("gitea: teams of %s: %w", repo.Owner, err)
	}
	for _, t := range teams {
		if !writes(string(t.Permission)) && !writes(t.UnitsMap["repo.code"]) {
			continue
		}
		if _, resp, err := cl.GetTeamMember(t.ID, user); err != nil {
			if notFound(resp) {
				continue
			}
			return false, fmt.Errorf("gitea: is %s in team %s: %w", user, t.Name, err)
		}
		if t.IncludesAllRepositories {
			return true, nil
		}
		if _, resp, err := cl.GetTeamRepository(t.ID, repo.Owner, repo.Name); err == nil {
			return true, nil
		} else if !notFound(resp) {
			return false, fmt.Errorf("gitea: does team %s have %s: %w", t.Name, repo.FullName, err)
		}
	}
	return false, nil
}

func writes(mode string) bool { return mode == "write" || mode == "admin" || mode == "owner" }

// DefaultHead returns the default branch of repo, its head commit and the commit's date.
func (c *Client) DefaultHead(ctx context.Context, repo forge.Repo) (string, string, time.Time, error) {
	cl, err := c.sdk(ctx)
	if err != nil {
		return "", "", time.Time{}, err
	}
	r, _, err := cl.GetRepo(repo.Owner, repo.Name)
	if err != nil {
		return "", "", time.Time{}, fmt.Errorf("gitea: repository %s: %w", repo.FullName, err)
	}
	if r.Empty || r.DefaultBranch == "" {
		return "", "", time.Time{}, nil
	}
	b, _, err := cl.GetRepoBranch(repo.Owner, repo.Name, r.DefaultBranch)
	if err != nil {
		return "", "", time.Time{}, fmt.Errorf("gitea: branch %s of %s: %w", r.DefaultBranch, repo.FullName, err)
	}
	if b.Commit == nil {
		return r.DefaultBranch, "", time.Time{}, nil
	}
	return r.DefaultBranch, b.Commit.ID, b.Commit.Timestamp, nil
}

// branchesPage is how many branches one page of Gitea's listing holds.
const branchesPage = 50

// RecentBranches returns repo's branches whose head commit is dated since then, the newest
// first: Gitea lists branches by their head commit's time, newest first, so that the
// listing stops at the first older one, at its end (Gitea says how many branches there
// are), or after maxPages pages (truncated).
func (c *Client) RecentBranches(ctx context.Context, repo forge.Repo, since time.Time, maxPages int) ([]forge.Branch, bool, error) {
	cl, err := c.sdk(ctx)
	if err != nil {
		return nil, false, err
	}
	var out []forge.Branch
	read := 0
	for page := 1; page <= maxPages; page++ {
		list, resp, err := cl.ListRepoBranches(repo.Owner, repo.Name, sdk.ListRepoBranchesOptions{ListOptions: sdk.ListOptions{Page: page, PageSize: branchesPage}})
		if err != nil {
			return out, false, fmt.Errorf("gitea: branches of %s: %w", repo.FullName, err)
		}
		read += len(list)
		for _, b := range list {
			if b.Commit == nil {
				continue
			}
			if b.Commit.Timestamp.Before(since) {
				return out, false, nil
			}
			out = append(out, forge.Branch{Name: b.Name, Commit: b.Commit.ID, Date: b.Commit.Timestamp})
		}
		// The end: no more branches than read, by Gitea's count; or, without a count, a
		// page short of the one asked for (a Gitea whose MAX_RESPONSE_ITEMS is smaller
		// gives shorter pages, hence the count first).
		if len(list) == 0 {
			return out, false, nil
		}
		if total, err := strconv.Atoi(resp.Header.Get("X-Total-Count")); err == nil {
			if read >= total {
				return out, false, nil
			}
		} else if len(list) < branchesPage {
			return out, false, nil
		}
	}
	return out, true, nil
}

// OpenPullRequests returns repo's open pull requests, the most recently updated first, at
// most limit.
func (c *Client) OpenPullRequests(ctx context.Context, repo forge.Repo, limit int) ([]forge.PullRequestInfo, error) {
	cl, err := c.sdk(ctx)
	if err != nil {
		return nil, err
	}
	var out []forge.PullRequestInfo
	for page := 1; len(out) < limit; page++ {
		prs, resp, err := cl.ListRepoPullRequests(repo.Owner, repo.Name, sdk.ListPullRequestsOptions{
			ListOptions: sdk.ListOptions{Page: page, PageSize: min(limit, 50)},
			State:       sdk.StateOpen,
			Sort:        "recentupdate",
		})
		if err != nil {
			return nil, fmt.Errorf("gitea: pull requests of %s: %w", repo.FullName, err)
		}
		for _, pr := range prs {
			if info, err := prInfo(repo, pr); err == nil && len(out) < limit {
				out = append(out, info)
			}
		}
		if len(prs) == 0 || resp == nil || resp.NextPage == 0 {
			break
		}
	}
	return out, nil
}
