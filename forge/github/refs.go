package github

import (
	"context"
	"fmt"
	"strings"

	gh "github.com/google/go-github/v93/github"

	"github.com/albatros-ci/albatros/forge"
)

var (
	_ forge.Refs   = (*Client)(nil)
	_ forge.Issues = (*Client)(nil)
)

// Repository returns repo as GitHub has it now, with its owner's id.
func (c *Client) Repository(ctx context.Context, repo forge.Repo) (forge.Repo, error) {
	r, resp, err := c.api.Repositories.Get(ctx, repo.Owner, repo.Name)
	if notFound(resp) {
		return forge.Repo{}, fmt.Errorf("github: repository %s: %w", repo.FullName, forge.ErrNotFound)
	}
	if err != nil {
		return forge.Repo{}, fmt.Errorf("github: repository %s: %w", repo.FullName, err)
	}
	return forge.Repo{
		CloneURL: r.GetCloneURL(), FullName: r.GetFullName(), Name: r.GetName(), HTMLURL: r.GetHTMLURL(),
		Owner: r.GetOwner().GetLogin(), OwnerID: r.GetOwner().GetID(),
	}, nil
}

// Branch returns branch name of repo and its head.
func (c *Client) Branch(ctx context.Context, repo forge.Repo, name string) (forge.Branch, error) {
	b, resp, err := c.api.Repositories.GetBranch(ctx, repo.Owner, repo.Name, name, 0)
	if notFound(resp) {
		return forge.Branch{}, fmt.Errorf("github: branch %s of %s: %w", name, repo.FullName, forge.ErrNotFound)
	}
	if err != nil {
		return forge.Branch{}, fmt.Errorf("github: branch %s of %s: %w", name, repo.FullName, err)
	}
	cm := b.GetCommit()
	return forge.Branch{Name: b.GetName(), Commit: cm.GetSHA(), Date: cm.GetCommit().GetCommitter().GetDate().Time}, nil
}

// BranchCommits returns the SHAs of the last n commits of branch, newest first.
func (c *Client) BranchCommits(ctx context.Context, repo forge.Repo, branch string, n int) ([]string, error) {
	var out []string
	opts := &gh.CommitsListOptions{SHA: branch, ListOptions: gh.ListOptions{PerPage: min(100, max(n, 1))}}
	for len(out) < n {
		list, resp, err := c.api.Repositories.ListCommits(ctx, repo.Owner, repo.Name, opts)
		if notFound(resp) {
			return nil, fmt.Errorf("github: commits of %s of %s: %w", branch, repo.FullName, forge.ErrNotFound)
		}
		if err != nil {
			return nil, fmt.Errorf("github: commits of %s of %s: %w", branch, repo.FullName, err)
		}
		for _, cm := range list {
			if len(out) < n {
				out = append(out, cm.GetSHA())
			}
		}
		if resp.NextPage == 0 {
			break
		}
		opts.Page = resp.NextPage
	}
	return out, nil
}

// OpenIssue opens an issue on repo and returns its number.
func (c *Client) OpenIssue(ctx context.Context, repo forge.Repo, title, body string) (int64, error) {
	is, _, err := c.api.Issues.Create(ctx, repo.Owner, repo.Name, gh.CreateIssueRequest{Title: title, Body: &body})
	if err != nil {
		return 0, fmt.Errorf("github: open an issue on %s: %w", repo.FullName, err)
	}
	return int64(is.GetNumber()), nil
}

// Issue returns issue (or pull request) number of repo.
func (c *Client) Issue(ctx context.Context, repo forge.Repo, number int64) (forge.Issue, error) {
	is, resp, err := c.api.Issues.Get(ctx, repo.Owner, repo.Name, int(number))
	if notFound(resp) || resp != nil && resp.StatusCode == 410 {
		return forge.Issue{}, fmt.Errorf("github: issue %s#%d: %w", repo.FullName, number, forge.ErrNotFound)
	}
	if err != nil {
		return forge.Issue{}, fmt.Errorf("github: issue %s#%d: %w", repo.FullName, number, err)
	}
	if u := is.GetRepositoryURL(); u != "" && !strings.HasSuffix(strings.ToLower(u), "/repos/"+strings.ToLower(repo.FullName)) {
		// Transferred to another repository: GitHub answered with the moved issue.
		return forge.Issue{}, fmt.Errorf("github: issue %s#%d: moved to %s: %w", repo.FullName, number, u, forge.ErrNotFound)
	}
	return forge.Issue{Number: int64(is.GetNumber()), Title: is.GetTitle(), Author: is.GetUser().GetLogin(), Open: is.GetState() == "open", PullRequest: is.IsPullRequest()}, nil
}

// CloseIssue closes issue number of repo.
func (c *Client) CloseIssue(ctx context.Context, repo forge.Repo, number int64) error {
	closed := "closed"
	if _, _, err := c.api.Issues.Update(ctx, repo.Owner, repo.Name, int(number), gh.UpdateIssueRequest{State: &closed}); err != nil {
		return fmt.Errorf("github: close issue %s#%d: %w", repo.FullName, number, err)
	}
	return nil
}
