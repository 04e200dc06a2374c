package gitea

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	sdk "code.gitea.io/sdk/gitea"

	"github.com/albatros-ci/albatros/forge"
)

var (
	_ forge.OrgHooks    = (*Client)(nil)
	_ forge.OrgOwners   = (*Client)(nil)
	_ forge.TeamMembers = (*Client)(nil)
	_ forge.Account     = (*Client)(nil)
	_ forge.RepoReaders = (*Client)(nil)
	_ forge.OrgRepos    = (*Client)(nil)
)

// pageSize is what the bot asks per page of a list.
const pageSize = 50

// all collects every page of a list, following the Link header's next page (Gitea caps a
// page at its MAX_RESPONSE_ITEMS, which may be below pageSize; an endpoint without pages
// sends no next link).
func all[T any](list func(opt sdk.ListOptions) ([]T, *sdk.Response, error)) ([]T, error) {
	var out []T
	for page := 1; page > 0 && page <= 1000; {
		items, resp, err := list(sdk.ListOptions{Page: page, PageSize: pageSize})
		if err != nil {
			return nil, err
		}
		out = append(out, items...)
		if resp == nil || resp.NextPage <= page {
			break
		}
		page = resp.NextPage
	}
	return out, nil
}

// notFound reports whether an SDK call failed with 404.
func notFound(resp *sdk.Response) bool { return resp != nil && resp.StatusCode == http.StatusNotFound }

// ListOrgHooks returns every webhook of org.
func (c *Client) ListOrgHooks(ctx context.Context, org string) ([]forge.Hook, error) {
	cl, err := c.sdk(ctx)
	if err != nil {
		return nil, err
	}
	hooks, err := all(func(o sdk.ListOptions) ([]*sdk.Hook, *sdk.Response, error) {
		return cl.ListOrgHooks(org, sdk.ListHooksOptions{ListOptions: o})
	})
	if err != nil {
		return nil, fmt.Errorf("gitea: hooks of %s: %w", org, err)
	}
	out := make([]forge.Hook, 0, len(hooks))
	for _, h := range hooks {
		out = append(out, hookOf(h))
	}
	return out, nil
}

func hookOf(h *sdk.Hook) forge.Hook {
	return forge.Hook{ID: h.ID, URL: h.Config["url"], ContentType: h.Config["content_type"], Events: slices.Sorted(slices.Values(h.Events)), Active: h.Active}
}

func hookConfig(h forge.Hook) map[string]string {
	return map[string]string{"url": h.URL, "content_type": h.ContentType, "secret": h.Secret}
}

// CreateOrgHook creates a Gitea-type webhook on org.
func (c *Client) CreateOrgHook(ctx context.Context, org string, h forge.Hook) (forge.Hook, error) {
	cl, err := c.sdk(ctx)
	if err != nil {
		return forge.Hook{}, err
	}
	created, _, err := cl.CreateOrgHook(org, sdk.CreateHookOption{Type: sdk.HookTypeGitea, Config: hookConfig(h), Events: h.Events, Active: h.Active})
	if err != nil {
		return forge.Hook{}, fmt.Errorf("gitea: create a hook on %s: %w", org, err)
	}
	return hookOf(created), nil
}

// EditOrgHook sets hook h.ID of org to h. The events are always sent: Gitea resets a hook
// edited without them to push only.
func (c *Client) EditOrgHook(ctx context.Context, org string, h forge.Hook) error {
	cl, err := c.sdk(ctx)
	if err != nil {
		return err
	}
	active := h.Active
	if _, err := cl.EditOrgHook(org, h.ID, sdk.EditHookOption{Config: hookConfig(h), Events: h.Events, Active: &active}); err != nil {
		return fmt.Errorf("gitea: edit hook %d of %s: %w", h.ID, org, err)
	}
	return nil
}

// DeleteOrgHook deletes hook id of org; one already gone is not an error.
func (c *Client) DeleteOrgHook(ctx context.Context, org string, id int64) error {
	cl, err := c.sdk(ctx)
	if err != nil {
		return err
	}
	if resp, err := cl.DeleteOrgHook(org, id); err != nil && !notFound(resp) {
		return fmt.Errorf("gitea: delete hook %d of %s: %w", id, org, err)
	}
	return nil
}

// OrgName returns org's name as Gitea spells it.
func (c *Client) OrgName(ctx context.Context, org string) (string, error) {
	cl, err := c.sdk(ctx)
	if err != nil {
		return "", err
	}
	o, resp, err := cl.GetOrg(org)
	if err != nil {
		if notFound(resp) {
			return "", fmt.Errorf("gitea: organization %s: %w", org, forge.ErrNotFound)
		}
		return "", fmt.Errorf("gitea: organization %s: %w", org, err)
	}
	return o.UserName, nil
}

// OrgID returns org's numeric id; an error wrapping forge.ErrNotFound when Gitea has no
// organization of that name.
func (c *Client) OrgID(ctx context.Context, org string) (int64, error) {
	cl, err := c.sdk(ctx)
	if err != nil {
		return 0, err
	}
	o, resp, err := cl.GetOrg(org)
	if err != nil {
		if notFound(resp) {
			return 0, fmt.Errorf("gitea: organization %s: %w", org, forge.ErrNotFound)
		}
		return 0, fmt.Errorf("gitea: organization %s: %w", org, err)
	}
	return o.ID, nil
}

// UserID returns the numeric id of the user login, and when they registered; an error
// wrapping forge.ErrNotFound when Gitea has none.
func (c *Client) UserID(ctx context.Context, login string) (int64, time.Time, error) {
	cl, err := c.sdk(ctx)
	if err != nil {
		return 0, time.Time{}, err
	}
	u, resp, err := cl.GetUserInfo(login)
	if err != nil {
		if notFound(resp) {
			return 0, time.Time{}, fmt.Errorf("gitea: user %s: %w", login, forge.ErrNotFound)
		}
		return 0, time.Time{}, fmt.Errorf("gitea: user %s: %w", login, err)
	}
	return u.ID, u.Created, nil
}

// IsOwner reports whether user owns org.
func (c *Client) IsOwner(ctx context.Context, org, user string) (bool, error) {
	cl, err := c.sdk(ctx)
	if err != nil {
		return false, err
	}
	p, resp, err := cl.GetOrgPermissions(org, user)
	if err != nil {
		if notFound(resp) {
			return false, nil
		}
		return false, fmt.Errorf("gitea: permissions of %s in %s: %w", user, org, err)
	}
	return p.IsOwner, nil
}

// ownersTeam finds org's Owners team: Gitea's only team with owner access.
func (c *Client) ownersTeam(cl *sdk.Client, org string) (*sdk.Team, error) {
	teams, err := all(func(o sdk.ListOptions) ([]*sdk.Team, *sdk.Response, error) {
		return cl.ListOrgTeams(org, sdk.ListTeamsOptions{ListOptions: o})
	})
	if err != nil {
		return nil, fmt.Errorf("gitea: teams of %s: %w", org, err)
	}
	for _, t := range teams {
		if t.Permission == sdk.AccessModeOwner {
			return t, nil
		}
	}
	return nil, fmt.Errorf("gitea: %s has no owners team", org)
}

// AddOwner adds user to org's Owners team.
func (c *Client) AddOwner(ctx context.Context, org, user string) error {
	cl, err := c.sdk(ctx)
	if err != nil {
		return err
	}
	team, err := c.ownersTeam(cl, org)
	if err != nil {
		return err
	}
	if _, err := cl.AddTeamMember(team.ID, user); err != nil {
		return fmt.Errorf("gitea: add %s to the owners of %s: %w", user, org, err)
	}
	return nil
}

// RemoveOwner removes user from org's Owners team.
func (c *Client) RemoveOwner(ctx context.Context, org, user string) error {
	cl, err := c.sdk(ctx)
	if err != nil {
		return err
	}
	team, err := c.ownersTeam(cl, org)
	if err != nil {
		return err
	}
	if resp, err := cl.RemoveTeamMember(team.ID, user); err != nil && !notFound(resp) {
		return fmt.Errorf("gitea: remove %s from the owners of %s: %w", user, org, err)
	}
	return nil
}

// IsTeamMember reports whether user belongs to team of org: the team of that id when it is
// set, else the one of that name.
func (c *Client) IsTeamMember(ctx context.Context, org string, team forge.Team, user string) (bool, error) {
	cl, err := c.sdk(ctx)
	if err != nil {
		return false, err
	}
	id := team.ID
	if id == 0 {
		t, err := c.team(cl, org, team.Name)
		if errors.Is(err, forge.ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		id = t.ID
	}
	_, resp, err := cl.GetTeamMember(id, user)
	switch {
	case err == nil:
		return true, nil
	case notFound(resp):
		return false, nil
	default:
		return false, fmt.Errorf("gitea: is %s in team %s (%d) of %s: %w", user, team.Name, id, org, err)
	}
}

// TeamID returns the id of the team named name in org.
func (c *Client) TeamID(ctx context.Context, org, name string) (int64, error) {
	cl, err := c.sdk(ctx)
	if err != nil {
		return 0, err
	}
	t, err := c.team(cl, org, name)
	if err != nil {
		return 0, err
	}
	return t.ID, nil
}

// team finds the team named name in org.
func (c *Client) team(cl *sdk.Client, org, name string) (*sdk.Team, error) {
	teams, err := all(func(o sdk.ListOptions) ([]*sdk.Team, *sdk.Response, error) {
		return cl.ListOrgTeams(org, sdk.ListTeamsOptions{ListOptions: o})
	})
	if err != nil {
		return nil, fmt.Errorf("gitea: teams of %s: %w", org, err)
	}
	for _, t := range teams {
		if t.Name == name {
			return t, nil
		}
	}
	return nil, fmt.Errorf("gitea: team %s of %s: %w", name, org, forge.ErrNotFound)
}

// Me returns the login of the client's user.
func (c *Client) Me(ctx context.Context) (string, error) {
	cl, err := c.sdk(ctx)
	if err != nil {
		return "", err
	}
	u, _, err := cl.GetMyUserInfo()
	if err != nil {
		return "", fmt.Errorf("gitea: who am I: %w", err)
	}
	return u.UserName, nil
}

// MyOrgs returns the organizations of the client's user.
func (c *Client) MyOrgs(ctx context.Context) ([]string, error) {
	cl, err := c.sdk(ctx)
	if err != nil {
		return nil, err
	}
	orgs, err := all(func(o sdk.ListOptions) ([]*sdk.Organization, *sdk.Response, error) {
		return cl.ListMyOrgs(sdk.ListOrgsOptions{ListOptions: o})
	})
	if err != nil {
		return nil, fmt.Errorf("gitea: my organizations: %w", err)
	}
	out := make([]string, 0, len(orgs))
	for _, o := range orgs {
		out = append(out, o.UserName)
	}
	return out, nil
}

// IsPrivate reports whether repo is hidden from anonymous visitors. A repository the client
// cannot see counts as private.
func (c *Client) IsPrivate(ctx context.Context, repo forge.Repo) (bool, error) {
	cl, err := c.sdk(ctx)
	if err != nil {
		return true, err
	}
	r, resp, err := cl.GetRepo(repo.Owner, repo.Name)
	if err != nil {
		if notFound(resp) {
			return true, nil
		}
		return true, fmt.Errorf("gitea: repository %s: %w", repo.FullName, err)
	}
	// An organization that is not public hides its public repositories too.
	return r.Private || (r.Owner != nil && r.Owner.Visibility != "" && r.Owner.Visibility != sdk.VisibleTypePublic), nil
}

// CanRead reports whether user may read repo.
func (c *Client) CanRead(ctx context.Context, repo forge.Repo, user string) (bool, error) {
	cl, err := c.sdk(ctx)
	if err != nil {
		return false, err
	}
	p, resp, err := cl.CollaboratorPermission(repo.Owner, repo.Name, user)
	if err != nil {
		if notFound(resp) {
			return false, nil
		}
		return false, fmt.Errorf("gitea: permission of %s on %s: %w", user, repo.FullName, err)
	}
	return p.Permission != sdk.AccessModeNone && p.Permission != "", nil
}

// OrgRepos returns the repositories of org.
func (c *Client) OrgRepos(ctx context.Context, org string) ([]forge.Repo, error) {
	cl, err := c.sdk(ctx)
	if err != nil {
		return nil, err
	}
	repos, err := all(func(o sdk.ListOptions) ([]*sdk.Repository, *sdk.Response, error) {
		return cl.ListOrgRepos(org, sdk.ListOrgReposOptions{ListOptions: o})
	})
	if err != nil {
		return nil, fmt.Errorf("gitea: repositories of %s: %w", org, err)
	}
	out := make([]forge.Repo, 0, len(repos))
	for _, r := range repos {
		owner, ownerID := org, int64(0)
		if r.Owner != nil {
			owner, ownerID = r.Owner.UserName, r.Owner.ID
		}
		out = append(out, forge.Repo{CloneURL: r.CloneURL, FullName: r.FullName, Owner: owner, OwnerID: ownerID, Name: r.Name, HTMLURL: r.HTMLURL})
	}
	slices.SortFunc(out, func(a, b forge.Repo) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return out, nil
}
