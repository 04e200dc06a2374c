package github

import (
	"context"
	"fmt"
	"strings"
	"time"

	gh "github.com/google/go-github/v93/github"

	"github.com/albatros-ci/albatros/forge"
)

var (
	_ forge.Writers     = (*Client)(nil)
	_ forge.TeamMembers = (*Client)(nil)
	_ forge.Users       = (*Client)(nil)
	_ forge.Account     = (*Client)(nil)
)

// permission is user's permission on repo as GitHub's collaborators API says it: admin,
// write, read or none (maintain and triage are told as write and read; role_name names
// them), "" for a user GitHub does not know there.
func (c *Client) permission(ctx context.Context, repo forge.Repo, user string) (perm, role string, err error) {
	p, resp, err := c.api.Repositories.GetPermissionLevel(ctx, repo.Owner, repo.Name, user)
	if err != nil {
		if notFound(resp) {
			return "", "", nil
		}
		return "", "", fmt.Errorf("github: permission of %s on %s: %w", user, repo.FullName, err)
	}
	return p.GetPermission(), p.GetRoleName(), nil
}

// CanWrite reports whether user may push to repo: write, maintain or admin permission
// (directly, through a team, or as an organization's owner).
func (c *Client) CanWrite(ctx context.Context, repo forge.Repo, user string) (bool, error) {
	perm, _, err := c.permission(ctx, repo, user)
	return perm == "admin" || perm == "write", err
}

// IsTeamMember reports whether user is an active member of team in org: by the team's id
// when known (a team deleted and made again under its name is another), else by its slug.
func (c *Client) IsTeamMember(ctx context.Context, org string, team forge.Team, user string) (bool, error) {
	var m *gh.Membership
	var resp *gh.Response
	var err error
	if team.ID != 0 {
		o, oresp, oerr := c.api.Organizations.Get(ctx, org)
		if oerr != nil {
			if notFound(oresp) {
				return false, nil
			}
			return false, fmt.Errorf("github: organization %s: %w", org, oerr)
		}
		m, resp, err = c.api.Teams.GetTeamMembershipByID(ctx, o.GetID(), team.ID, user)
	} else {
		m, resp, err = c.api.Teams.GetTeamMembershipBySlug(ctx, org, slug(team.Name), user)
	}
	if err != nil {
		if notFound(resp) {
			return false, nil
		}
		return false, fmt.Errorf("github: membership of %s in %s/%s: %w", user, org, team.Name, err)
	}
	return m.GetState() == "active", nil
}

// TeamID returns the id of org's team of that name (or slug).
func (c *Client) TeamID(ctx context.Context, org, name string) (int64, error) {
	t, resp, err := c.api.Teams.GetTeamBySlug(ctx, org, slug(name))
	if err != nil {
		if notFound(resp) {
			return 0, fmt.Errorf("github: team %s of %s: %w", name, org, forge.ErrNotFound)
		}
		return 0, fmt.Errorf("github: team %s of %s: %w", name, org, err)
	}
	return t.GetID(), nil
}

// slug is a team's name as GitHub names it in URLs: lower case, spaces as dashes.
func slug(name string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimSpace(name)), " ", "-")
}

// UserID returns the numeric id of the user login, and when they registered.
func (c *Client) UserID(ctx context.Context, login string) (int64, time.Time, error) {
	u, resp, err := c.api.Users.Get(ctx, login)
	if err != nil {
		if notFound(resp) {
			return 0, time.Time{}, fmt.Errorf("github: user %s: %w", login, forge.ErrNotFound)
		}
		return 0, time.Time{}, fmt.Errorf("github: user %s: %w", login, err)
	}
	return u.GetID(), u.GetCreatedAt().Time, nil
}

// Me returns the login the client acts as: an App's installation comments as the App's
// bot user, <slug>[bot]; a token, as its user.
func (c *Client) Me(ctx context.Context) (string, error) {
	if c.app != nil {
		s, err := c.app.Slug(ctx)
		if err != nil {
			return "", err
		}
		return s + "[bot]", nil
	}
	u, _, err := c.api.Users.Get(ctx, "")
	if err != nil {
		return "", fmt.Errorf("github: the token's user: %w", err)
	}
	return u.GetLogin(), nil
}

// Identity returns the login and the numeric id of the token's user.
func (c *Client) Identity(ctx context.Context) (string, int64, error) {
	u, _, err := c.api.Users.Get(ctx, "")
	if err != nil {
		return "", 0, fmt.Errorf("github: the token's user: %w", err)
	}
	return u.GetLogin(), u.GetID(), nil
}

// equalFold compares GitHub names, which are case-insensitive.
func equalFold(a, b string) bool { return strings.EqualFold(a, b) }
