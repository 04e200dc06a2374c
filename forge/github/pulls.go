package github

import (
	"context"
	"fmt"
	"net/http"
	"time"

	gh "github.com/google/go-github/v93/github"

	"github.com/albatros-ci/albatros/forge"
)

var (
	_ forge.Commenter    = (*Client)(nil)
	_ forge.Reactor      = (*Client)(nil)
	_ forge.PullRequests = (*Client)(nil)
	_ forge.Heads        = (*Client)(nil)
	_ forge.OrgRepos     = (*Client)(nil)
)

// maxPages bounds every listing the bot reads (100 per page): a pull request's comments
// and commits, an installation's repositories.
const maxPages = 30

// Comments returns the comments of pull request number, oldest first (GitHub keeps a pull
// request's conversation as its issue's comments).
func (c *Client) Comments(ctx context.Context, repo forge.Repo, number int64) ([]forge.Comment, error) {
	var out []forge.Comment
	opts := &gh.IssueListCommentsOptions{ListOptions: gh.ListOptions{PerPage: 100}}
	for page := 0; page < maxPages; page++ {
		list, resp, err := c.api.Issues.ListComments(ctx, repo.Owner, repo.Name, int(number), opts)
		if err != nil {
			return nil, fmt.Errorf("github: comments of %s#%d: %w", repo.FullName, number, err)
		}
		for _, cm := range list {
			out = append(out, forge.Comment{ID: cm.GetID(), Body: cm.GetBody(), Author: cm.GetUser().GetLogin(), AuthorID: cm.GetUser().GetID()})
		}
		if resp.NextPage == 0 {
			return out, nil
		}
		opts.Page = resp.NextPage
	}
	return out, nil
}

// CreateComment adds a comment to pull request number.
func (c *Client) CreateComment(ctx context.Context, repo forge.Repo, number int64, body string) (forge.Comment, error) {
	cm, _, err := c.api.Issues.CreateComment(ctx, repo.Owner, repo.Name, int(number), gh.IssueCommentRequest{Body: body})
	if err != nil {
		return forge.Comment{}, fmt.Errorf("github: comment on %s#%d: %w", repo.FullName, number, err)
	}
	return forge.Comment{ID: cm.GetID(), Body: cm.GetBody(), Author: cm.GetUser().GetLogin(), AuthorID: cm.GetUser().GetID()}, nil
}

// EditComment replaces the body of comment id.
func (c *Client) EditComment(ctx context.Context, repo forge.Repo, id int64, body string) error {
	if _, _, err := c.api.Issues.UpdateComment(ctx, repo.Owner, repo.Name, id, gh.IssueCommentRequest{Body: body}); err != nil {
		return fmt.Errorf("github: edit comment %d of %s: %w", id, repo.FullName, err)
	}
	return nil
}

// React adds reaction to comment id; GitHub answers 200 for one already there.
func (c *Client) React(ctx context.Context, repo forge.Repo, id int64, reaction string) error {
	if _, _, err := c.api.Reactions.CreateIssueCommentReaction(ctx, repo.Owner, repo.Name, id, reaction); err != nil {
		return fmt.Errorf("github: react %s to comment %d of %s: %w", reaction, id, repo.FullName, err)
	}
	return nil
}

// PullRequestInfo returns pull request number as it is now.
func (c *Client) PullRequestInfo(ctx context.Context, repo forge.Repo, number int64) (forge.PullRequestInfo, error) {
	pr, _, err := c.api.PullRequests.Get(ctx, repo.Owner, repo.Name, int(number))
	if err != nil {
		return forge.PullRequestInfo{}, fmt.Errorf("github: pull request %s#%d: %w", repo.FullName, number, err)
	}
	return info(pr, repo), nil
}

// info is a pull request in the bot's terms; repo is its base repository.
func info(pr *gh.PullRequest, repo forge.Repo) forge.PullRequestInfo {
	out := forge.PullRequestInfo{
		PullRequest: forge.PullRequest{
			Number: int64(pr.GetNumber()), HeadBranch: pr.GetHead().GetRef(), BaseBranch: pr.GetBase().GetRef(),
			Author: pr.GetUser().GetLogin(), AuthorID: pr.GetUser().GetID(), MaintainerEdits: pr.GetMaintainerCanModify(),
		},
		Head:    pr.GetHead().GetSHA(),
		Open:    pr.GetState() == "open",
		Updated: pr.GetUpdatedAt().Time,
	}
	if h := pr.GetHead().GetRepo(); h != nil {
		out.HeadRepo = convert(h)
		out.Fork = !equalFold(h.GetFullName(), repo.FullName)
	} else {
		out.Fork = true // its fork deleted: not the repository's own code
	}
	return out
}

// PullRequestCommits returns the SHAs of the pull request's commits (GitHub lists at most
// 250).
func (c *Client) PullRequestCommits(ctx context.Context, repo forge.Repo, number int64) ([]string, error) {
	var out []string
	opts := &gh.ListOptions{PerPage: 100}
	for page := 0; page < maxPages; page++ {
		list, resp, err := c.api.PullRequests.ListCommits(ctx, repo.Owner, repo.Name, int(number), opts)
		if err != nil {
			return nil, fmt.Errorf("github: commits of %s#%d: %w", repo.FullName, number, err)
		}
		for _, cm := range list {
			out = append(out, cm.GetSHA())
		}
		if resp.NextPage == 0 {
			break
		}
		opts.Page = resp.NextPage
	}
	return out, nil
}

// DefaultHead returns the default branch, its head commit and that commit's date.
func (c *Client) DefaultHead(ctx context.Context, repo forge.Repo) (string, string, time.Time, error) {
	r, _, err := c.api.Repositories.Get(ctx, repo.Owner, repo.Name)
	if err != nil {
		return "", "", time.Time{}, fmt.Errorf("github: repository %s: %w", repo.FullName, err)
	}
	branch := r.GetDefaultBranch()
	b, _, err := c.api.Repositories.GetBranch(ctx, repo.Owner, repo.Name, branch, 0)
	if err != nil {
		return "", "", time.Time{}, fmt.Errorf("github: branch %s of %s: %w", branch, repo.FullName, err)
	}
	cm := b.GetCommit()
	return branch, cm.GetSHA(), cm.GetCommit().GetCommitter().GetDate().Time, nil
}

// OpenPullRequests returns the open pull requests, the most recently updated first, at
// most limit.
func (c *Client) OpenPullRequests(ctx context.Context, repo forge.Repo, limit int) ([]forge.PullRequestInfo, error) {
	var out []forge.PullRequestInfo
	opts := &gh.PullRequestListOptions{State: "open", Sort: "updated", Direction: "desc", ListOptions: gh.ListOptions{PerPage: min(100, max(limit, 1))}}
	for len(out) < limit {
		list, resp, err := c.api.PullRequests.List(ctx, repo.Owner, repo.Name, opts)
		if err != nil {
			return nil, fmt.Errorf("github: open pull requests of %s: %w", repo.FullName, err)
		}
		for _, pr := range list {
			if len(out) < limit {
				out = append(out, info(pr, repo))
			}
		}
		if resp.NextPage == 0 {
			break
		}
		opts.Page = resp.NextPage
	}
	return out, nil
}

// OrgRepos returns the repositories of org the client may act on: for an App's
// installation, those the installation was given (of its account); else those the token
// lists for org.
func (c *Client) OrgRepos(ctx context.Context, org string) ([]forge.Repo, error) {
	var out []forge.Repo
	opts := &gh.ListOptions{PerPage: 100}
	for page := 0; page < maxPages; page++ {
		var list []*gh.Repository
		var resp *gh.Response
		var err error
		if c.installation != 0 {
			var rs *gh.ListRepositories
			rs, resp, err = c.api.Apps.ListRepos(ctx, opts)
			if rs != nil {
				list = rs.Repositories
			}
		} else {
			list, resp, err = c.api.Repositories.ListByOrg(ctx, org, &gh.RepositoryListByOrgOptions{ListOptions: *opts})
		}
		if err != nil {
			return nil, fmt.Errorf("github: repositories of %s: %w", org, err)
		}
		for _, r := range list {
			if equalFold(r.GetOwner().GetLogin(), org) && !r.GetArchived() {
				out = append(out, convert(r))
			}
		}
		if resp.NextPage == 0 {
			break
		}
		opts.Page = resp.NextPage
	}
	return out, nil
}

// notFound reports whether GitHub answered 404 (or 403 for what an App's token may not
// see of a private resource would be 404 too).
func notFound(resp *gh.Response) bool {
	return resp != nil && resp.StatusCode == http.StatusNotFound
}
