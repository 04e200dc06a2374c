package web

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/albatros-ci/albatros/forge"
	"github.com/albatros-ci/albatros/registry"
)

// AllowLog decides whether the request may read the log of a build of the repository at
// cloneURL, and answers itself when it may not. A public repository's logs are open to
// all, as in the original Albatros. A private repository's are served only to a signed-in
// user who can read the repository on Gitea: an anonymous visitor is sent to sign in and
// back, anyone else gets 403, and 503 when Consul cannot say whether the session was
// signed out. The forge's answers are trusted for a minute at most.
func (wb *Web) AllowLog(w http.ResponseWriter, r *http.Request, cloneURL string) bool {
	ctx := r.Context()
	private, repo, f, no := wb.visibility(ctx, cloneURL, false)
	if no != nil {
		http.Error(w, no.msg, no.code)
		return false
	}
	if !private {
		return true
	}
	var rm *realm
	switch gh := wb.githubRealm(); {
	case wb.cfg.OAuth != nil && wb.cfg.GiteaURL != "" && strings.HasPrefix(cloneURL, wb.cfg.GiteaURL+"/"):
		rm = wb.giteaRealm()
	case wb.cfg.GitHub != nil && strings.HasPrefix(cloneURL, wb.cfg.GitHub.WebURL+"/"):
		if ok, _ := gh.enabled(); ok {
			rm = gh
		}
	}
	if rm == nil {
		// Nobody can sign in here with an identity of that forge.
		http.Error(w, "this build is of a private repository: its log is served to the repository's readers, who sign in through the bot", http.StatusForbidden)
		return false
	}
	s, err := wb.sessionOf(r, rm)
	if errors.Is(err, errNoSession) {
		// A reader's sign-in: the bot asks about the access itself.
		http.Redirect(w, r, rm.login+"?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
		return false
	}
	if err != nil {
		wb.cfg.Log.Warn("log access: session", "repo", cloneURL, "err", err)
		http.Error(w, "your session could not be checked: try again in a moment", http.StatusServiceUnavailable)
		return false
	}
	can, err := wb.cached(&wb.access, "read\x00"+rm.forge+"\x00"+cloneURL+"\x00"+s.Login, func(ctx context.Context) (bool, error) { return f.CanRead(ctx, repo, s.Login) }, ctx)
	if err != nil {
		wb.cfg.Log.Warn("log access: permission", "repo", cloneURL, "user", s.Login, "err", err)
		http.Error(w, "your access to the repository could not be checked", http.StatusServiceUnavailable)
		return false
	}
	if !can {
		http.Error(w, s.Login+" cannot read this repository", http.StatusForbidden)
		return false
	}
	return true
}

// refusal is why a repository's visibility could not be told, as an answer.
type refusal struct {
	code int
	msg  string
}

// visibility says whether the repository at cloneURL is private, and how to ask its forge
// who may read it; a refusal when it cannot be told: Consul or the forge failing, the
// installation quarantined (whoever owns the name now may not be the organization whose
// builds these are), a forge that cannot say (taken as private), or, when registered is
// set, a repository the bot does not build. The forge's answer is trusted for a minute.
func (wb *Web) visibility(ctx context.Context, cloneURL string, registered bool) (bool, forge.Repo, forge.Forge, *refusal) {
	unchecked := &refusal{http.StatusServiceUnavailable, "the repository's access could not be checked"}
	entry, err := wb.cfg.Records.Repo(ctx, cloneURL)
	if errors.Is(err, registry.ErrNotFound) && registered {
		return true, forge.Repo{}, nil, &refusal{http.StatusNotFound, "this bot builds no such repository"}
	}
	if errors.Is(err, registry.ErrNotFound) {
		entry, err = &registry.Repo{}, nil // no longer registered: ask with the bot's own access
	}
	if err != nil {
		wb.cfg.Log.Warn("log access: registry", "repo", cloneURL, "err", err)
		return true, forge.Repo{}, nil, unchecked
	}
	if entry.Installed && (entry.Quarantine != "" || entry.OrgID == 0) {
		return true, forge.Repo{}, nil, &refusal{http.StatusForbidden, "this build's installation is quarantined: its log is not served"}
	}
	f, repo, err := wb.cfg.Forge(entry, cloneURL)
	if err != nil {
		// A forge the bot cannot reach is not one it can ask: refuse rather than guess.
		wb.cfg.Log.Warn("log access: forge", "repo", cloneURL, "err", err)
		return true, forge.Repo{}, nil, &refusal{http.StatusForbidden, unchecked.msg}
	}
	if entry.AppInstallation != 0 && wb.cfg.GitHub != nil {
		// A name the installation's account gave up (renamed), taken by another account
		// with a public repository of the same name, says nothing of these builds.
		inst := &registry.Installation{Forge: "github", Org: repo.Owner, OrgID: entry.OrgID, InstallationID: entry.AppInstallation}
		if why := wb.githubIdentity(ctx, inst, repo.Owner); why != "" {
			return true, repo, f, &refusal{http.StatusForbidden, "this build's repository is not its account's any more: its log is not served"}
		}
	}
	private, err := wb.cached(&wb.access, "private\x00"+cloneURL, func(ctx context.Context) (bool, error) { return f.IsPrivate(ctx, repo) }, ctx)
	if errors.Is(err, forge.ErrUnsupported) {
		// As if it were private, and nobody can be told a reader.
		return true, repo, f, &refusal{http.StatusForbidden, "the repository's forge cannot say who may read it: its logs are not served"}
	}
	if err != nil {
		wb.cfg.Log.Warn("log access: visibility", "repo", cloneURL, "err", err)
		return true, repo, f, unchecked
	}
	return private, repo, f, nil
}

// cached answers from c, or asks and remembers.
func (wb *Web) cached(c *ttlCache, key string, ask func(context.Context) (bool, error), ctx context.Context) (bool, error) {
	if v, found := c.get(key); found {
		return v, nil
	}
	v, err := ask(ctx)
	if err != nil {
		return false, err
	}
	c.put(key, v)
	return v, nil
}
