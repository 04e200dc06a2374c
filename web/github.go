package web

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/albatros-ci/albatros/forge"
	"github.com/albatros-ci/albatros/install"
	"github.com/albatros-ci/albatros/registry"
)

// GitHubConfig is the bot's GitHub App as the pages use it: signing in with GitHub, the
// App's accounts' settings pages, and the manifest flow that creates the App.
type GitHubConfig struct {
	// WebURL is the GitHub the App lives on (https://github.com, or a GitHub Enterprise
	// Server's).
	WebURL string
	// OAuth returns the App's OAuth client (its id and secret); an error when the bot has
	// no App yet.
	OAuth func(ctx context.Context) (id, secret string, err error)
	// Slug returns the App's name in URLs; an error when the bot has no App yet.
	Slug func(ctx context.Context) (string, error)
	// Installation returns the client of the App's installation inst.
	Installation func(ctx context.Context, inst *registry.Installation) (forge.Forge, error)
	// User returns a client acting with a signed-in user's token.
	User func(token string) GitHubUser
	// Setup, when set, lets an operator create the App through GitHub's manifest flow.
	Setup *GitHubSetup
}

// GitHubUser is a client acting as a user signed in with GitHub.
type GitHubUser interface {
	// Identity is the user's login and numeric id.
	Identity(ctx context.Context) (string, int64, error)
	// Installations are the accounts of the App's installations the user can reach.
	Installations(ctx context.Context) ([]string, error)
}

// GitHubSetup is the manifest flow: an operator proves they run the bot with its setup
// code (a setting of theirs), GitHub creates the App the bot's manifest describes, and the
// bot records the credentials GitHub hands over once.
type GitHubSetup struct {
	// Code is the operator's (ALBATROS_GITHUB_SETUP_CODE).
	Code string
	// Owner is the GitHub account that owns the recorded App, for the operator to check.
	Owner func(ctx context.Context) string
	// Convert trades the code GitHub sends back for the App it created.
	Convert func(ctx context.Context, code string) (registry.GitHubAppOpen, error)
	// Record keeps the App (registry.PutGitHubApp: only when the bot has none).
	Record func(ctx context.Context, app registry.GitHubAppOpen) error
}

// GitHubRedirectPath is the App's OAuth callback, after the bot's URL.
const GitHubRedirectPath = "/login/github/callback"

func (wb *Web) githubRealm() *realm {
	gh := wb.cfg.GitHub
	rm := &realm{
		forge: "github", name: "GitHub", base: "/github/orgs", login: "/login/github",
		enabled: func() (bool, string) {
			return gh != nil && wb.cfg.Keys != nil && wb.cfg.Sessions != nil, "signing in with GitHub is not set up on this bot: it needs its GitHub App (ALBATROS_GITHUB_APP) and a secret key"
		},
		hookURL: wb.cfg.BaseURL + "/webhook/github",
	}
	if gh == nil {
		return rm
	}
	client := func(ctx context.Context, org string) (forge.Forge, *registry.Installation, error) {
		inst, err := wb.cfg.Records.Installation(ctx, rm.orgURL(org))
		if err != nil {
			return nil, nil, err
		}
		c, err := gh.Installation(ctx, inst)
		return c, inst, err
	}
	rm.orgURL = func(org string) string { return registry.OrgURLOf(gh.WebURL, org) }
	rm.admin = func(ctx context.Context, org string, s session) (bool, error) {
		c, inst, err := client(ctx, org)
		if errors.Is(err, registry.ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		// The account of that name now must be the installation's: a login a user or an
		// organization gave up can be taken by another.
		if why := rm.quarantined(ctx, inst); why != "" {
			return false, nil
		}
		if strings.EqualFold(org, s.Login) {
			// The user's own account: by id, not by name.
			return s.UserID != 0 && s.UserID == inst.OrgID, nil
		}
		return c.IsOwner(ctx, org, s.Login)
	}
	rm.repos = func(ctx context.Context, inst *registry.Installation) ([]forge.Repo, error) {
		c, err := gh.Installation(ctx, inst)
		if err != nil {
			return nil, err
		}
		return c.OrgRepos(ctx, inst.Org)
	}
	rm.identify = func(ctx context.Context, inst *registry.Installation, t *registry.Trusted) error {
		c, err := gh.Installation(ctx, inst)
		if err != nil {
			return err
		}
		return install.IdentifyWith(ctx, c, inst.Org, t)
	}
	rm.quarantined = func(ctx context.Context, inst *registry.Installation) string {
		switch {
		case inst.Quarantine != "":
			return inst.Quarantine
		case inst.Suspended:
			return "the GitHub App is suspended on " + inst.Org + " (unsuspend it in the account's settings on GitHub)"
		}
		return wb.githubIdentity(ctx, inst, inst.Org)
	}
	return rm
}

// githubIdentity says why the account named login (the installation's, or a repository's
// owner) is not inst's account any more, by id: "" when it is. GitHub's answer is trusted
// for a minute.
func (wb *Web) githubIdentity(ctx context.Context, inst *registry.Installation, login string) string {
	key := fmt.Sprintf("gh-account\x00%s\x00%d", strings.ToLower(login), inst.OrgID)
	if ok, found := wb.access.get(key); found {
		if ok {
			return ""
		}
		return "the account named " + login + " now is another one (or is gone): the installation's account was renamed or deleted"
	}
	c, err := wb.cfg.GitHub.Installation(ctx, inst)
	if err != nil {
		return "the installation's account could not be checked on GitHub"
	}
	id, _, err := c.UserID(ctx, login)
	switch {
	case errors.Is(err, forge.ErrNotFound):
		wb.access.put(key, false)
	case err != nil:
		wb.cfg.Log.Warn("github account id", "account", login, "err", err)
		return "the installation's account could not be checked on GitHub"
	default:
		wb.access.put(key, id == inst.OrgID)
	}
	return wb.githubIdentity(ctx, inst, login)
}

// githubOAuth is the App's OAuth client.
func (wb *Web) githubOAuth(ctx context.Context) (*oauth2.Config, error) {
	gh := wb.cfg.GitHub
	id, secret, err := gh.OAuth(ctx)
	if err != nil {
		return nil, err
	}
	return &oauth2.Config{
		ClientID: id, ClientSecret: secret,
		Endpoint:    oauth2.Endpoint{AuthURL: gh.WebURL + "/login/oauth/authorize", TokenURL: gh.WebURL + "/login/oauth/access_token", AuthStyle: oauth2.AuthStyleInParams},
		RedirectURL: wb.cfg.BaseURL + GitHubRedirectPath,
	}, nil
}

// githubLogin starts a sign-in with GitHub: GET /login/github?next=<local path>. A GitHub
// App's sign-in asks no scopes: the user's token acts within the App's permissions and the
// user's own, and the bot uses it to learn who the user is and, for the settings pages,
// which of the App's installations the user reaches; then drops it.
func (wb *Web) githubLogin(w http.ResponseWriter, r *http.Request) {
	rm := wb.githubRealm()
	if ok, why := rm.enabled(); !ok {
		wb.fail(w, r, http.StatusNotFound, "Signing in with GitHub is not available", why)
		return
	}
	oc, err := wb.githubOAuth(r.Context())
	if err != nil {
		wb.fail(w, r, http.StatusNotFound, "Signing in with GitHub is not available", "the bot has no GitHub App yet")
		return
	}
	next := localPath(r.URL.Query().Get("next"))
	f := flow{Next: next, Owner: strings.HasPrefix(next, "/github/orgs"), Nonce: randomString(16), Verifier: oauth2.GenerateVerifier(), Expires: time.Now().Add(flowLength).Unix(), Forge: "github"}
	state, err := wb.sealJSON(f, flowPurpose)
	if err != nil {
		wb.fail(w, r, http.StatusInternalServerError, "Internal error", "the sign-in could not start")
		return
	}
	http.SetCookie(w, wb.cookie(wb.flowCookie, f.Nonce, flowLength))
	http.Redirect(w, r, oc.AuthCodeURL(state, oauth2.S256ChallengeOption(f.Verifier)), http.StatusSeeOther)
}

// githubCallback ends a sign-in with GitHub: GET /login/github/callback?code=…&state=….
func (wb *Web) githubCallback(w http.ResponseWriter, r *http.Request) {
	rm := wb.githubRealm()
	if ok, why := rm.enabled(); !ok {
		wb.fail(w, r, http.StatusNotFound, "Signing in with GitHub is not available", why)
		return
	}
	q := r.URL.Query()
	f, ok := wb.endFlow(w, r, "github", "GitHub")
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	oc, err := wb.githubOAuth(ctx)
	if err != nil {
		wb.fail(w, r, http.StatusNotFound, "Signing in with GitHub is not available", "the bot has no GitHub App yet")
		return
	}
	tok, err := oc.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(f.Verifier))
	if err != nil {
		wb.cfg.Log.Warn("github oauth exchange", "err", err)
		wb.fail(w, r, http.StatusBadGateway, "Sign-in failed", "GitHub did not accept the sign-in: start again")
		return
	}
	user := wb.cfg.GitHub.User(tok.AccessToken)
	login, uid, err := user.Identity(ctx)
	if err != nil {
		wb.cfg.Log.Warn("github oauth user", "err", err)
		wb.fail(w, r, http.StatusBadGateway, "Sign-in failed", "GitHub did not say who you are")
		return
	}
	s, err := wb.readSession(r)
	if err != nil || s.Login != login || s.forge() != "github" || s.UserID != uid {
		s = session{Login: login, Forge: "github", UserID: uid}
	}
	if f.Owner {
		accounts, err := user.Installations(ctx)
		if err != nil {
			wb.cfg.Log.Warn("github installations of the user", "user", login, "err", err)
			wb.fail(w, r, http.StatusBadGateway, "Sign-in failed", "GitHub did not list the App's installations you reach")
			return
		}
		slices.Sort(accounts)
		s.Orgs, s.Listed = accounts, true
	}
	if err := wb.setSession(w, s); err != nil {
		wb.fail(w, r, http.StatusInternalServerError, "Internal error", "the session could not be made")
		return
	}
	wb.cfg.Log.Info("signed in", "user", login, "forge", "github")
	http.Redirect(w, r, localPath(f.Next), http.StatusSeeOther)
}

// githubOrgs lists the App's installations the signed-in GitHub user reaches, each with
// its settings, and where to install the App on another account.
func (wb *Web) githubOrgs(w http.ResponseWriter, r *http.Request) {
	rm := wb.githubRealm()
	s, err := wb.sessionOf(r, rm)
	if err != nil || !s.Listed {
		if err != nil && !errors.Is(err, errNoSession) {
			wb.sessionsDown(w, r, err)
			return
		}
		http.Redirect(w, r, rm.login+"?next="+url.QueryEscape("/github/orgs"), http.StatusSeeOther)
		return
	}
	items, ok := wb.orgItems(w, r, rm, s.Orgs)
	if !ok {
		return
	}
	installURL := ""
	if slug, err := wb.cfg.GitHub.Slug(r.Context()); err == nil {
		installURL = wb.cfg.GitHub.WebURL + "/apps/" + url.PathEscape(slug) + "/installations/new"
	}
	wb.render(w, http.StatusOK, "github-orgs", struct {
		page
		Orgs       []orgItem
		InstallURL string
	}{wb.page(r, "Your GitHub accounts"), items, installURL})
}

// manifest is the App the bot asks GitHub to create (GitHub's "Registering a GitHub App
// from a manifest"): its webhook, its OAuth callback, and the permissions and events of
// what the bot does.
func (wb *Web) manifest(name string, public bool) map[string]any {
	return map[string]any{
		"name":                     name,
		"url":                      wb.cfg.BaseURL,
		"description":              "Albatros CI: builds on Nomad, results on GitHub.",
		"hook_attributes":          map[string]any{"url": wb.cfg.BaseURL + "/webhook/github", "active": true},
		"redirect_url":             wb.cfg.BaseURL + "/github/setup/callback",
		"callback_urls":            []string{wb.cfg.BaseURL + GitHubRedirectPath},
		"setup_url":                wb.cfg.BaseURL + "/github/orgs",
		"public":                   public,
		"request_oauth_on_install": false,
		// statuses: the results; issues: the pull request's comment (its conversation is
		// its issue's) and reactions; pull_requests, contents, metadata: heads and commits;
		// members: who administers an organization, and its teams.
		"default_permissions": map[string]string{"statuses": "write", "issues": "write", "pull_requests": "read", "contents": "read", "metadata": "read", "members": "read"},
		"default_events":      []string{"push", "pull_request", "issue_comment"},
	}
}

// setupFlow is the manifest flow under way, sealed in its state.
type setupFlow struct {
	Nonce   string `json:"nonce"`
	Expires int64  `json:"exp"`
}

const setupPurpose = "github-setup"

// githubSetup shows the manifest flow's form: GET /github/setup.
func (wb *Web) githubSetup(w http.ResponseWriter, r *http.Request) {
	wb.setupPage(w, r, http.StatusOK, "")
}

func (wb *Web) setupPage(w http.ResponseWriter, r *http.Request, code int, problem string) {
	gh := wb.cfg.GitHub
	if gh == nil || gh.Setup == nil || wb.cfg.Keys == nil {
		wb.fail(w, r, http.StatusNotFound, "Not available", "this bot does not create its GitHub App through the manifest flow (ALBATROS_GITHUB_APP=manifest)")
		return
	}
	slug, err := gh.Slug(r.Context())
	d := struct {
		page
		Slug, Owner, InstallURL, Name string
	}{page: wb.page(r, "The bot's GitHub App"), Name: "Albatros " + hostOf(wb.cfg.BaseURL)}
	d.Error = problem
	if err == nil {
		d.Slug, d.InstallURL = slug, gh.WebURL+"/apps/"+url.PathEscape(slug)+"/installations/new"
		if gh.Setup.Owner != nil {
			d.Owner = gh.Setup.Owner(r.Context())
		}
	}
	wb.render(w, code, "github-setup", d)
}

func hostOf(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return u
	}
	return p.Host
}

// githubSetupStart checks the setup code and hands the browser a form that posts the
// manifest to GitHub: POST /github/setup.
func (wb *Web) githubSetupStart(w http.ResponseWriter, r *http.Request) {
	gh := wb.cfg.GitHub
	if gh == nil || gh.Setup == nil || wb.cfg.Keys == nil {
		wb.fail(w, r, http.StatusNotFound, "Not available", "this bot does not create its GitHub App through the manifest flow")
		return
	}
	if _, err := gh.Slug(r.Context()); err == nil {
		wb.setupPage(w, r, http.StatusConflict, "The bot has its GitHub App already.")
		return
	}
	if err := r.ParseForm(); err != nil {
		wb.setupPage(w, r, http.StatusBadRequest, "The form could not be read.")
		return
	}
	if subtle.ConstantTimeCompare([]byte(r.PostForm.Get("code")), []byte(gh.Setup.Code)) != 1 {
		wb.cfg.Log.Warn("github app setup: wrong setup code")
		wb.setupPage(w, r, http.StatusForbidden, "That is not the setup code (the bot's setting ALBATROS_GITHUB_SETUP_CODE).")
		return
	}
	name := strings.TrimSpace(r.PostForm.Get("name"))
	org := strings.TrimSpace(r.PostForm.Get("org"))
	if name == "" || len(name) > 34 || strings.ContainsAny(name, "<>\"'&\x00\r\n") {
		wb.setupPage(w, r, http.StatusBadRequest, "The App's name is 1 to 34 characters (GitHub's limit).")
		return
	}
	if org != "" && !nameRE.MatchString(org) {
		wb.setupPage(w, r, http.StatusBadRequest, fmt.Sprintf("%q is not a GitHub organization's name.", org))
		return
	}
	f := setupFlow{Nonce: randomString(16), Expires: time.Now().Add(time.Hour).Unix()}
	state, err := wb.sealJSON(f, setupPurpose)
	if err != nil {
		wb.fail(w, r, http.StatusInternalServerError, "Internal error", "the setup could not start")
		return
	}
	manifest, _ := json.Marshal(wb.manifest(name, r.PostForm.Get("public") != ""))
	action := gh.WebURL + "/settings/apps/new?state=" + url.QueryEscape(state)
	if org != "" {
		action = gh.WebURL + "/organizations/" + url.PathEscape(org) + "/settings/apps/new?state=" + url.QueryEscape(state)
	}
	http.SetCookie(w, wb.cookie(wb.flowCookie, f.Nonce, time.Hour))
	wb.render(w, http.StatusOK, "github-manifest", struct {
		page
		Action, Manifest, Owner string
	}{wb.page(r, "Create the GitHub App"), action, string(manifest), org})
}

// githubSetupDone takes GitHub's answer to the manifest flow: GET
// /github/setup/callback?code=…&state=…. The state must be this browser's flow's; the code
// is traded for the App's credentials, which are recorded sealed, once.
func (wb *Web) githubSetupDone(w http.ResponseWriter, r *http.Request) {
	gh := wb.cfg.GitHub
	if gh == nil || gh.Setup == nil || wb.cfg.Keys == nil {
		wb.fail(w, r, http.StatusNotFound, "Not available", "this bot does not create its GitHub App through the manifest flow")
		return
	}
	var f setupFlow
	c, err := r.Cookie(wb.flowCookie)
	q := r.URL.Query()
	if err != nil || wb.openJSON(q.Get("state"), setupPurpose, &f) != nil || f.Nonce == "" || c.Value != f.Nonce || time.Now().Unix() >= f.Expires {
		wb.fail(w, r, http.StatusBadRequest, "Setup refused", "this setup did not start here, or took too long: start again at /github/setup")
		return
	}
	http.SetCookie(w, wb.cookie(wb.flowCookie, "", 0))
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	app, err := gh.Setup.Convert(ctx, q.Get("code"))
	if err != nil {
		wb.cfg.Log.Warn("github app setup: conversion", "err", err)
		wb.fail(w, r, http.StatusBadGateway, "Not created", "GitHub did not hand over the App's credentials (the code is good once, for an hour): start again")
		return
	}
	switch err := gh.Setup.Record(ctx, app); {
	case errors.Is(err, registry.ErrConflict):
		wb.fail(w, r, http.StatusConflict, "Not recorded", "The bot has its GitHub App already; the one GitHub just created is not used (delete it on GitHub).")
		return
	case err != nil:
		wb.cfg.Log.Warn("github app setup: record", "err", err)
		wb.fail(w, r, http.StatusServiceUnavailable, "Not recorded", "The App could not be recorded in Consul: delete it on GitHub and start again.")
		return
	}
	wb.cfg.Log.Info("github app created through the manifest flow", "id", app.ID, "slug", app.Slug, "owner", app.Owner)
	http.Redirect(w, r, "/github/setup?done=app-created", http.StatusSeeOther)
}
