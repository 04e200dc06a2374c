package web

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/albatros-ci/albatros/forge"
	"github.com/albatros-ci/albatros/registry"
)

// realm is a forge whose installations the pages administer: Gitea's organizations under
// /orgs (the bot's own account installs and checks them), the GitHub App's accounts under
// /github/orgs (GitHub installs the App; the App's installation token reads what the pages
// show). A session is one forge's: a login of one forge is nobody on the other.
type realm struct {
	// forge is the sessions' forge (gitea, github), name as the pages say it.
	forge, name string
	// base is where its installations' pages are; login where its sign-in starts.
	base, login string
	// enabled reports whether its pages are served, and why not.
	enabled func() (bool, string)
	orgURL  func(org string) string
	// admin reports whether the session's user may administer org's installation (asked
	// per request; trusted for a minute).
	admin func(ctx context.Context, org string, s session) (bool, error)
	// repos lists the installation's repositories.
	repos func(ctx context.Context, inst *registry.Installation) ([]forge.Repo, error)
	// identify records the ids of trusted users and teams that have none.
	identify func(ctx context.Context, inst *registry.Installation, t *registry.Trusted) error
	// quarantined says why inst is held, "" when it is not.
	quarantined func(ctx context.Context, inst *registry.Installation) string
	hookURL     string
}

// sessionForge is the forge of a session: Gitea's for sessions made before GitHub's.
func (s session) forge() string {
	if s.Forge == "" {
		return "gitea"
	}
	return s.Forge
}

// realmOf is the realm of a request's page.
func (wb *Web) realmOf(r *http.Request) *realm {
	if strings.HasPrefix(r.URL.Path, "/github/") {
		return wb.githubRealm()
	}
	return wb.giteaRealm()
}

// sessionOf returns the request's session if it is rm's forge's; errNoSession for none or
// another forge's.
func (wb *Web) sessionOf(r *http.Request, rm *realm) (session, error) {
	s, err := wb.readSession(r)
	if err == nil && s.forge() != rm.forge {
		return session{}, errNoSession
	}
	return s, err
}

func (wb *Web) giteaRealm() *realm {
	return &realm{
		forge: "gitea", name: "Gitea", base: "/orgs", login: "/login",
		enabled: func() (bool, string) {
			return wb.cfg.OAuth != nil && wb.cfg.Bot != nil && wb.cfg.Installer != nil, wb.cfg.DisabledReason
		},
		orgURL: func(org string) string { return wb.cfg.Installer.OrgURL(org) },
		admin: func(ctx context.Context, org string, s session) (bool, error) {
			return wb.cfg.Bot.IsOwner(ctx, org, s.Login)
		},
		repos: func(ctx context.Context, inst *registry.Installation) ([]forge.Repo, error) {
			return wb.cfg.Bot.OrgRepos(ctx, inst.Org)
		},
		identify: func(ctx context.Context, inst *registry.Installation, t *registry.Trusted) error {
			return wb.cfg.Installer.IdentifyTrusted(ctx, inst.Org, t)
		},
		quarantined: wb.giteaQuarantined,
		hookURL:     wb.cfg.BaseURL + "/webhook/gitea",
	}
}

// giteaQuarantined says why inst is quarantined: as recorded, or because the organization
// that has its name now is not the one it was installed on (by id), which the
// installations' check records at its next pass. "" when it is not.
func (wb *Web) giteaQuarantined(ctx context.Context, inst *registry.Installation) string {
	if inst.Quarantine != "" {
		return inst.Quarantine
	}
	if inst.OrgID == 0 {
		return "it is not yet bound to its organization's id (made before ids were recorded, it waits for the installations' check to prove that the organization of this name is still its own)"
	}
	id, err := wb.cfg.Bot.OrgID(ctx, inst.Org)
	switch {
	case errors.Is(err, forge.ErrNotFound):
		return "the organization " + inst.Org + " is gone (deleted, or renamed)"
	case err != nil:
		wb.cfg.Log.Warn("organization id", "org", inst.Org, "err", err)
		return "the organization's identity could not be checked on Gitea"
	case id != inst.OrgID:
		return "the organization named " + inst.Org + " now is another one"
	}
	return ""
}

// quarantined is giteaQuarantined, or the GitHub App's: the realm of inst's forge.
func (wb *Web) quarantined(ctx context.Context, inst *registry.Installation) string {
	if inst.InstallationID != 0 {
		return wb.githubRealm().quarantined(ctx, inst)
	}
	return wb.giteaQuarantined(ctx, inst)
}
