package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"golang.org/x/oauth2"

	"github.com/albatros-ci/albatros/install"
	"github.com/albatros-ci/albatros/registry"
)

// Scopes are what the bot asks Gitea for when a user signs in: who they are and which
// organizations they own (read:user), and, only used while installing, the right to make
// the bot account an owner (write:organization). Since Gitea 1.22 a token is cut down to
// the scopes its authorization named.
var Scopes = []string{"read:user", "write:organization"}

// RedirectPath is the OAuth2 application's redirect URI, after the bot's URL.
const RedirectPath = "/login/gitea/callback"

// login starts a sign-in through Gitea: GET /login?next=<local path>.
func (wb *Web) login(w http.ResponseWriter, r *http.Request) {
	wb.startFlow(w, r, flow{Next: localPath(r.URL.Query().Get("next"))})
}

// startFlow sends the browser to Gitea's authorize page, with a sealed state and PKCE.
func (wb *Web) startFlow(w http.ResponseWriter, r *http.Request, f flow) {
	if wb.cfg.OAuth == nil {
		wb.fail(w, r, http.StatusNotFound, "Signing in is not available", wb.cfg.DisabledReason)
		return
	}
	f.Nonce = randomString(16)
	f.Verifier = oauth2.GenerateVerifier()
	f.Expires = time.Now().Add(flowLength).Unix()
	state, err := wb.sealJSON(f, flowPurpose)
	if err != nil {
		wb.fail(w, r, http.StatusInternalServerError, "Internal error", "the sign-in could not start")
		return
	}
	http.SetCookie(w, wb.cookie(flowCookie, f.Nonce, flowLength))
	http.Redirect(w, r, wb.cfg.OAuth.AuthCodeURL(state, oauth2.S256ChallengeOption(f.Verifier)), http.StatusSeeOther)
}

// callback ends a sign-in: GET /login/gitea/callback?code=…&state=…. The state must open,
// be fresh, and belong to this browser's flow; the code is exchanged with the PKCE
// verifier. The token then identifies the user (and, for an install, installs), and is
// dropped.
func (wb *Web) callback(w http.ResponseWriter, r *http.Request) {
	if wb.cfg.OAuth == nil {
		wb.fail(w, r, http.StatusNotFound, "Signing in is not available", wb.cfg.DisabledReason)
		return
	}
	q := r.URL.Query()
	if q.Get("error") != "" {
		// Gitea's words travel in the URL, which anyone can write: they are logged, not shown.
		wb.cfg.Log.Info("sign-in declined", "error", q.Get("error"), "description", q.Get("error_description"))
		wb.fail(w, r, http.StatusForbidden, "Not signed in", "The sign-in was cancelled or refused on Gitea.")
		return
	}
	var f flow
	c, err := r.Cookie(flowCookie)
	if err != nil || wb.openJSON(q.Get("state"), flowPurpose, &f) != nil || f.Nonce == "" || c.Value != f.Nonce || time.Now().Unix() >= f.Expires {
		wb.fail(w, r, http.StatusBadRequest, "Sign-in refused", "this sign-in did not start here, or took too long: start again")
		return
	}
	http.SetCookie(w, wb.cookie(flowCookie, "", 0))
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	tok, err := wb.cfg.OAuth.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(f.Verifier))
	if err != nil {
		wb.cfg.Log.Warn("oauth2 exchange", "err", err)
		wb.fail(w, r, http.StatusBadGateway, "Sign-in failed", "Gitea did not accept the sign-in: start again")
		return
	}
	user := wb.cfg.UserClient(tok.AccessToken)
	login, err := user.Me(ctx)
	if err != nil {
		wb.cfg.Log.Warn("oauth2 user", "err", err)
		wb.fail(w, r, http.StatusBadGateway, "Sign-in failed", "Gitea did not say who you are")
		return
	}
	s, _ := wb.session(r)
	if s.Login != login {
		s = session{Login: login}
	}
	if f.Install == "" || s.Orgs == nil {
		if s.Orgs, err = ownedOrgs(ctx, user, login); err != nil {
			wb.cfg.Log.Warn("oauth2 organizations", "user", login, "err", err)
			wb.fail(w, r, http.StatusBadGateway, "Sign-in failed", "Gitea did not list your organizations")
			return
		}
	}
	if err := wb.setSession(w, s); err != nil {
		wb.fail(w, r, http.StatusInternalServerError, "Internal error", "the session could not be made")
		return
	}
	wb.cfg.Log.Info("signed in", "user", login)
	if f.Install == "" {
		http.Redirect(w, r, localPath(f.Next), http.StatusSeeOther)
		return
	}
	inst, err := wb.cfg.Installer.Install(ctx, user, f.Install)
	if err != nil {
		wb.cfg.Log.Warn("install", "org", f.Install, "user", login, "err", err)
		code, msg := http.StatusBadGateway, "Albatros could not be installed on "+f.Install+": Gitea or Consul did not answer as expected (the bot's log says more). Try again."
		switch {
		case errors.Is(err, install.ErrNotOwner):
			code, msg = http.StatusForbidden, "You are not an owner of "+f.Install+"."
		case errors.Is(err, install.ErrBusy):
			code, msg = http.StatusConflict, install.ErrBusy.Error()
		case errors.Is(err, registry.ErrUnavailable):
			code = http.StatusServiceUnavailable
		}
		wb.fail(w, r, code, "Not installed", msg)
		return
	}
	wb.owners.put(inst.Org+"\x00"+login, true)
	http.Redirect(w, r, "/orgs/"+url.PathEscape(inst.Org)+"?done=installed", http.StatusSeeOther)
}

// ownedOrgs are the organizations user owns.
func ownedOrgs(ctx context.Context, user install.Owner, login string) ([]string, error) {
	orgs, err := user.MyOrgs(ctx)
	if err != nil {
		return nil, err
	}
	owned := []string{}
	for _, org := range orgs {
		ok, err := user.IsOwner(ctx, org, login)
		if err != nil {
			return nil, err
		}
		if ok {
			owned = append(owned, org)
		}
	}
	slices.Sort(owned)
	return owned, nil
}

// logout ends the session: POST /logout.
func (wb *Web) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, wb.cookie(sessionCookie, "", 0))
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// owner lets a request through only for a signed-in owner of the organization {org}: an
// anonymous visitor is sent to sign in (and back), anyone else gets 403. Ownership is
// checked on Gitea with the bot's account, and trusted for a minute at most. With listed,
// the organizations the session lists as owned at sign-in pass too: the bot may not see a
// private organization it is not (or no longer) in, and Install checks again with the
// user's own token.
func (wb *Web) owner(next http.Handler, listed bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if wb.cfg.OAuth == nil || wb.cfg.Bot == nil || wb.cfg.Installer == nil {
			wb.fail(w, r, http.StatusNotFound, "Not available", wb.cfg.DisabledReason)
			return
		}
		s, ok := wb.session(r)
		if !ok {
			target := r.URL.RequestURI()
			if r.Method != http.MethodGet {
				target = "/orgs"
			}
			http.Redirect(w, r, "/login?next="+url.QueryEscape(target), http.StatusSeeOther)
			return
		}
		org := r.PathValue("org")
		if listed && slices.Contains(s.Orgs, org) {
			next.ServeHTTP(w, r)
			return
		}
		owns, err := wb.isOwner(r.Context(), org, s)
		if err != nil {
			wb.cfg.Log.Warn("owner check", "org", org, "user", s.Login, "err", err)
			wb.fail(w, r, http.StatusBadGateway, "Gitea unavailable", "your rights on "+org+" could not be checked")
			return
		}
		if !owns {
			wb.fail(w, r, http.StatusForbidden, "Forbidden", fmt.Sprintf("%s is not an owner of %s.", s.Login, org))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (wb *Web) isOwner(ctx context.Context, org string, s session) (bool, error) {
	key := org + "\x00" + s.Login
	if ok, found := wb.owners.get(key); found {
		return ok, nil
	}
	ok, err := wb.cfg.Bot.IsOwner(ctx, org, s.Login)
	if err != nil {
		return false, err
	}
	wb.owners.put(key, ok)
	return ok, nil
}
