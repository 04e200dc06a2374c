// Package gitea is the Gitea driver of Albatros: it verifies and parses Gitea's webhook
// deliveries into forge events, and writes commit statuses back through the Gitea SDK. It is
// the only package that imports code.gitea.io/sdk/gitea.
package gitea

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	sdk "code.gitea.io/sdk/gitea"

	"github.com/albatros-ci/albatros/forge"
)

// Client talks to one Gitea server with one token.
type Client struct {
	baseURL string
	token   string
	http    *http.Client
}

var (
	_ forge.Forge        = (*Client)(nil)
	_ forge.StatusReader = (*Client)(nil)
	_ forge.OrgHooks     = (*Client)(nil)
	_ forge.OrgOwners    = (*Client)(nil)
	_ forge.TeamMembers  = (*Client)(nil)
	_ forge.Account      = (*Client)(nil)
	_ forge.RepoReaders  = (*Client)(nil)
	_ forge.OrgRepos     = (*Client)(nil)
	_ forge.Commenter    = (*Client)(nil)
	_ forge.Reactor      = (*Client)(nil)
	_ forge.PullRequests = (*Client)(nil)
	_ forge.Writers      = (*Client)(nil)
	_ forge.Heads        = (*Client)(nil)
	_ forge.Users        = (*Client)(nil)
)

// Budget: Gitea sets no rate limit the bot reads.
func (c *Client) Budget() (int, time.Time, bool) { return 0, time.Time{}, false }

// New returns a client for the Gitea server at baseURL, acting with token. httpClient may be
// nil for http.DefaultClient.
func New(baseURL, token string, httpClient *http.Client) *Client {
	if httpClient == nil {
		httpClient = http.DefaultClient
	}
	return &Client{baseURL: strings.TrimSuffix(baseURL, "/"), token: token, http: httpClient}
}

// sdk returns an SDK client bound to ctx. The SDK keeps its context on the client, so one
// is made per call; with the version check skipped this costs no request.
func (c *Client) sdk(ctx context.Context) (*sdk.Client, error) {
	return sdk.NewClient(c.baseURL,
		sdk.SetToken(c.token),
		sdk.SetHTTPClient(c.http),
		sdk.SetContext(ctx),
		sdk.SetGiteaVersion(""),
	)
}

// Gitea truncates longer descriptions; the bot keeps them short anyway.
const maxDescription = 140

// SetStatus writes a commit status on s.Repo at s.Commit.
func (c *Client) SetStatus(ctx context.Context, s forge.Status) error {
	cl, err := c.sdk(ctx)
	if err != nil {
		return err
	}
	desc := s.Description
	if len(desc) > maxDescription {
		desc = desc[:maxDescription-1] + "…"
	}
	_, _, err = cl.CreateStatus(s.Repo.Owner, s.Repo.Name, s.Commit, sdk.CreateStatusOption{
		State:       sdk.StatusState(s.State),
		TargetURL:   s.TargetURL,
		Description: desc,
		Context:     s.Context,
	})
	if err != nil {
		return fmt.Errorf("gitea: set %s status %s on %s@%s: %w", s.Context, s.State, s.Repo.FullName, short(s.Commit), err)
	}
	return nil
}

// RepoFromCloneURL names the repository behind a clone URL of the Gitea server at baseURL
// (http://host/sub/owner/name.git gives owner "owner", name "name").
func RepoFromCloneURL(baseURL, cloneURL string) (forge.Repo, error) {
	base, err := url.Parse(strings.TrimSuffix(baseURL, "/") + "/")
	if err != nil {
		return forge.Repo{}, fmt.Errorf("gitea url %q: %w", baseURL, err)
	}
	u, err := url.Parse(cloneURL)
	if err != nil {
		return forge.Repo{}, fmt.Errorf("clone url %q: %w", cloneURL, err)
	}
	if u.Host != base.Host || !strings.HasPrefix(u.Path, base.Path) {
		return forge.Repo{}, fmt.Errorf("clone url %q is not on the gitea server %s", cloneURL, baseURL)
	}
	rest := strings.TrimSuffix(strings.TrimPrefix(u.Path, base.Path), ".git")
	owner, name, ok := strings.Cut(rest, "/")
	if !ok || owner == "" || name == "" || strings.Contains(name, "/") {
		return forge.Repo{}, fmt.Errorf("clone url %q does not name owner/repo on %s", cloneURL, baseURL)
	}
	html := *u
	html.Path = strings.TrimSuffix(u.Path, ".git")
	html.User = nil
	return forge.Repo{CloneURL: cloneURL, FullName: owner + "/" + name, Owner: owner, Name: name, HTMLURL: html.String()}, nil
}

func short(sha string) string {
	if len(sha) > 10 {
		return sha[:10]
	}
	return sha
}

// LatestStatus returns the newest status of commit in context ctxName; ok is false when the
// commit has none there.
func (c *Client) LatestStatus(ctx context.Context, repo forge.Repo, commit, ctxName string) (forge.Status, bool, error) {
	cl, err := c.sdk(ctx)
	if err != nil {
		return forge.Status{}, false, err
	}
	list, _, err := cl.ListStatuses(repo.Owner, repo.Name, commit, sdk.ListStatusesOption{ListOptions: sdk.ListOptions{PageSize: 50}})
	if err != nil {
		return forge.Status{}, false, fmt.Errorf("gitea: statuses of %s@%s: %w", repo.FullName, short(commit), err)
	}
	// Gitea sorts statuses by creation time in whole seconds, so two written in the same
	// second come in any order; the newest is the highest id, as in Gitea's own combined
	// status.
	var newest *sdk.Status
	for _, s := range list {
		if s.Context == ctxName && (newest == nil || s.ID > newest.ID) {
			newest = s
		}
	}
	if newest == nil {
		return forge.Status{}, false, nil
	}
	return forge.Status{Repo: repo, Commit: commit, State: forge.State(newest.State), Context: newest.Context,
		Description: newest.Description, TargetURL: newest.TargetURL}, true, nil
}
