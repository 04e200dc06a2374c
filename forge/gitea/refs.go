package gitea

import (
	"context"
	"fmt"

	sdk "code.gitea.io/sdk/gitea"

	"github.com/albatros-ci/albatros/forge"
)

var (
	_ forge.Refs   = (*Client)(nil)
	_ forge.Issues = (*Client)(nil)
)

// Repository returns repo as Gitea has it now, with its owner's id.
func (c *Client) Repository(ctx context.Context, repo forge.Repo) (forge.Repo, error) {
	cl, err := c.sdk(ctx)
	if err != nil {
		return forge.Repo{}, err
	}
	r, resp, err := cl.GetRepo(repo.Owner, repo.Name)
	if notFound(resp) {
		return forge.Repo{}, fmt.Errorf("gitea: repository %s: %w", repo.FullName, forge.ErrNotFound)
	}
	if err != nil {
		return forge.Repo{}, fmt.Errorf("gitea: repository %s: %w", repo.FullName, err)
	}
	out := forge.Repo{CloneURL: r.CloneURL, FullName: r.FullName, Name: r.Name, HTMLURL: r.HTMLURL}
	if r.Owner != nil {
		out.Owner, out.OwnerID = r.Owner.UserName, r.Owner.ID
	}
	return out, nil
}

// Branch returns branch name of repo and its head.
func (c *Client) Branch(ctx context.Context, repo forge.Repo, name string) (forge.Branch, error) {
	cl, err := c.sdk(ctx)
	if err != nil {
		return forge.Branch{}, err
	}
	b, resp, err := cl.GetRepoBranch(repo.Owner, repo.Name, name)
	if notFound(resp) || (err == nil && (b == nil || b.Commit == nil)) {
		return forge.Branch{}, fmt.Errorf("gitea: branch %s of %s: %w", name, repo.FullName, forge.ErrNotFound)
	}
	if err != nil {
		return forge.Branch{}, fmt.Errorf("gitea: branch %s of %s: %w", name, repo.FullName, err)
	}
	return forge.Branch{Name: b.Name, Commit: b.Commit.ID, Date: b.Commit.Timestamp}, nil
}

// BranchCommits returns the SHAs of the last n commits of branch, newest first.
func (c *Client) BranchCommits(ctx context.Context, repo forge.Repo, branch string, n int) ([]string, error) {
	cl, err := c.sdk(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for page := 1; len(out) < n; page++ {
		size := min(n-len(out), 50)
		commits, resp, err := cl.ListRepoCommits(repo.Owner, repo.Name, sdk.ListCommitOptions{
			ListOptions: sdk.ListOptions{Page: page, PageSize: size}, SHA: branch,
		})
		if notFound(resp) {
			return nil, fmt.Errorf("gitea: commits of %s of %s: %w", branch, repo.FullName, forge.ErrNotFound)
		}
		if err != nil {
			return nil, fmt.Errorf("gitea: commits of %s of %s: %w", branch, repo.FullName, err)
		}
		for _, cm := range commits {
			if cm != nil && cm.CommitMeta != nil {
				out = append(out, cm.SHA)
			}
		}
		if len(commits) < size {
			break
		}
	}
	return out, nil
}

// OpenIssue opens an issue on repo and returns its number.
func (c *Client) OpenIssue(ctx context.Context, repo forge.Repo, title, body string) (int64, error) {
	cl, err := c.sdk(ctx)
	if err != nil {
		return 0, err
	}
	is, _, err := cl.CreateIssue(repo.Owner, repo.Name, sdk.CreateIssueOption{Title: title, Body: body})
	if err != nil {
		return 0, fmt.Errorf("gitea: open an issue on %s: %w", repo.FullName, err)
	}
	return is.Index, nil
}

// Issue returns issue (or pull request) number of repo.
func (c *Client) Issue(ctx context.Context, repo forge.Repo, number int64) (forge.Issue, error) {
	cl, err := c.sdk(ctx)
	if err != nil {
		return forge.Issue{}, err
	}
	is, resp, err := cl.GetIssue(repo.Owner, repo.Name, number)
	if notFound(resp) {
		return forge.Issue{}, fmt.Errorf("gitea: issue %s#%d: %w", repo.FullName, number, forge.ErrNotFound)
	}
	if err != nil {
		return forge.Issue{}, fmt.Errorf("gitea: issue %s#%d: %w", repo.FullName, number, err)
	}
	out := forge.Issue{Number: is.Index, Title: is.Title, Open: is.State == sdk.StateOpen, PullRequest: is.PullRequest != nil}
	if is.Poster != nil {
		out.Author = is.Poster.UserName
	}
	return out, nil
}

// CloseIssue closes issue number of repo.
func (c *Client) CloseIssue(ctx context.Context, repo forge.Repo, number int64) error {
	cl, err := c.sdk(ctx)
	if err != nil {
		return err
	}
	closed := sdk.StateClosed
	if _, _, err := cl.EditIssue(repo.Owner, repo.Name, number, sdk.EditIssueOption{State: &closed}); err != nil {
		return fmt.Errorf("gitea: close issue %s#%d: %w", repo.FullName, number, err)
	}
	return nil
}
