package github

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	gh "github.com/google/go-github/v93/github"

	"github.com/albatros-ci/albatros/forge"
)

var _ forge.OrgOwners = (*Client)(nil)

// IsOwner reports whether user administers the account org: it is the user's own
// account, or user is an admin (owner) of the organization, as the organization's
// memberships say (an App's installation needs the members permission to read them).
func (c *Client) IsOwner(ctx context.Context, org, user string) (bool, error) {
	if equalFold(org, user) {
		return true, nil
	}
	m, resp, err := c.api.Organizations.GetOrgMembership(ctx, user, org)
	if err != nil {
		if notFound(resp) {
			return false, nil
		}
		return false, fmt.Errorf("github: membership of %s in %s: %w", user, org, err)
	}
	return m.GetState() == "active" && m.GetRole() == "admin", nil
}

// Installations returns the accounts of the App's installations that the client's user (a
// user's token from signing in with the App) can reach, by login.
func (c *Client) Installations(ctx context.Context) ([]string, error) {
	var out []string
	opts := &gh.ListOptions{PerPage: 100}
	for page := 0; page < maxPages; page++ {
		list, resp, err := c.api.Apps.ListUserInstallations(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("github: the user's installations: %w", err)
		}
		for _, in := range list {
			out = append(out, in.GetAccount().GetLogin())
		}
		if resp.NextPage == 0 {
			break
		}
		opts.Page = resp.NextPage
	}
	return out, nil
}

// Credentials are what GitHub hands over once, when it creates an App from a manifest.
type Credentials struct {
	ID                     int64
	Slug, Owner, HTMLURL   string
	PEM                    []byte
	WebhookSecret          string
	ClientID, ClientSecret string
}

// ConvertManifest trades the code GitHub sent back from the manifest flow for the App it
// created (POST /app-manifests/{code}/conversions, unauthenticated, once per code, within
// the hour).
func ConvertManifest(ctx context.Context, apiURL, code string, hc *http.Client) (Credentials, error) {
	if code == "" || len(code) > 256 || strings.ContainsAny(code, "/?#%") {
		return Credentials{}, errors.New("github: not a manifest code")
	}
	base, err := apiBase(apiURL)
	if err != nil {
		return Credentials{}, err
	}
	if hc == nil {
		hc = http.DefaultClient
	}
	api, err := newAPI(sameHost(hc), base)
	if err != nil {
		return Credentials{}, err
	}
	cfg, _, err := api.Apps.CompleteAppManifest(ctx, url.PathEscape(code))
	if err != nil {
		return Credentials{}, fmt.Errorf("github: manifest conversion: %w", err)
	}
	out := Credentials{ID: cfg.GetID(), Slug: cfg.GetSlug(), Owner: cfg.GetOwner().GetLogin(), HTMLURL: cfg.GetHTMLURL(), PEM: []byte(cfg.GetPEM()),
		WebhookSecret: cfg.GetWebhookSecret(), ClientID: cfg.GetClientID(), ClientSecret: cfg.GetClientSecret()}
	if out.ID == 0 || len(out.PEM) == 0 || out.WebhookSecret == "" || out.ClientID == "" || out.ClientSecret == "" {
		return Credentials{}, errors.New("github: the manifest conversion lacks the App's id, key, webhook secret or client")
	}
	return out, nil
}
