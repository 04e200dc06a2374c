package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/albatros-ci/albatros/install"
	"github.com/albatros-ci/albatros/registry"
)

// The scopes a sign-in asks Gitea for: each flow asks what the bot does with the user's
// token in it, and nothing more. Gitea (since 1.22) cuts a token down to the scopes of the
// user's grant of the bot's application.
var (
	// ReaderScopes are a reader's sign-in's (GET /login?next=… to anything but the
	// organization pages, which is also where AllowLog sends a private log's visitor): the
	// token only says who the user is (GET /user); whether the user may read the repository
	// the bot asks with its own account.
	ReaderScopes = []string{"read:user"}
	// OwnerScopes are the sign-in's for the organization pages (/orgs, /orgs/…) and for
	// installing. Listing the organizations the user owns (GET /user/orgs, GET
	// /users/{user}/orgs/{org}/permissions, which Gitea files under both the user and the
	// organization scopes) needs read:organization; installing (GET /orgs/{org}, its teams,
	// PUT /teams/{id}/members/{bot}) needs write:organization, which includes it.
	//
	// The list asks what its Install button needs: Gitea 1.26 keeps a user's grant at the
	// scopes of the user's first authorization, and a later sign-in of a confidential
	// application gets a token of those, without Gitea asking again, whatever it names
	// (AuthorizeOAuth reuses the grant; go-gitea/gitea#38940). A list signed in with
	// read:organization alone would leave its Install button with a token that cannot
	// install until the user revoked the bot on Gitea.
	OwnerScopes = []string{"read:user", "write:organization"}
)

// scopesOf are the scopes flow f asks.
func scopesOf(f flow) []string {
	if f.Owner {
		return OwnerScopes
	}
	return ReaderScopes
}

// ownerPage reports whether the local path next is one of the organization pages, whose
// sign-in asks OwnerScopes.
func ownerPage(next string) bool {
	p, _, _ := strings.Cut(next, "?")
	return p == "/orgs" || strings.HasPrefix(p, "/orgs/")
}

// RedirectPath is the OAuth2 application's redirect URI, after the bot's URL.
const RedirectPath = "/login/gitea/callback"

// login starts a sign-in through Gitea: GET /login?next=<local path>. It asks OwnerScopes
// when next is an organization page, ReaderScopes otherwise.
func (wb *Web) login(w http.ResponseWriter, r *http.Request) {
	next := localPath(r.URL.Query().Get("next"))
	wb.startFlow(w, r, flow{Next: next, Owner: ownerPage(next)})
}

// oauthFor is the bot's OAuth2 application asking the scopes of f.
func (wb *Web) oauthFor(f flow) *oauth2.Config {
	c := *wb.cfg.OAuth
	c.Scopes = scopesOf(f)
	return &c
}

// startFlow sends the browser to Gitea's authorize page, with a sealed state and PKCE. An
// install asks OwnerScopes.
func (wb *Web) startFlow(w http.ResponseWriter, r *http.Request, f flow) {
	if wb.cfg.OAuth == nil {
		wb.fail(w, r, http.StatusNotFound, "Signing in is not available", wb.cfg.DisabledReason)
		return
	}
	if f.Install != "" {
		f.Owner = true
	}
	f.Nonce = randomString(16)
	f.Verifier = oauth2.GenerateVerifier()
	f.Expires = time.Now().Add(flowLength).Unix()
	state, err := wb.sealJSON(f, flowPurpose)
	if err != nil {
		wb.fail(w, r, http.StatusInternalServerError, "Internal error", "the sign-in could not start")
		return
	}
	http.SetCookie(w, wb.cookie(wb.flowCookie, f.Nonce, flowLength))
	http.Redirect(w, r, wb.oauthFor(f).AuthCodeURL(state, oauth2.S256ChallengeOption(f.Verifier)), http.StatusSeeOther)
}

// callback ends a sign-in: GET /login/gitea/callback?code=…&state=…. The state must open,
// be fresh, and belong to this browser's flow; the code is exchanged with the PKCE
// verifier. The token then identifies the user, and for the organization pages lists the
// organizations the user owns (and, for an install, installs), and is dropped.
func (wb *Web) callback(w http.ResponseWriter, r *http.Request) {
	if wb.cfg.OAuth == nil {
		wb.fail(w, r, http.StatusNotFound, "Signing in is not available", wb.cfg.DisabledReason)
		return
	}
	q := r.URL.Query()
	f, ok := wb.endFlow(w, r, "", "Gitea")
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	tok, err := wb.oauthFor(f).Exchange(ctx, q.Get("code"), oauth2.VerifierOption(f.Verifier))
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
	if f.Owner && !wb.grantCovers(ctx, w, r, tok.AccessToken, login) {
		return
	}
	// The same user signing in again in this browser keeps the session (and its ID);
	// anyone else, or a session that cannot be checked, starts a new one.
	s, err := wb.readSession(r)
	if err != nil || s.Login != login || s.forge() != "gitea" {
		s = session{Login: login}
	}
	if f.Owner && (f.Install == "" || !s.Listed) {
		if s.Orgs, err = ownedOrgs(ctx, user, login); err != nil {
			wb.cfg.Log.Warn("oauth2 organizations", "user", login, "err", err)
			wb.fail(w, r, http.StatusBadGateway, "Sign-in failed", "Gitea did not list your organizations")
			return
		}
		s.Listed = true
	}
	if err := wb.setSession(w, s); err != nil {
		wb.fail(w, r, http.StatusInternalServerError, "Internal error", "the session could not be made")
		return
	}
	wb.cfg.Log.Info("signed in", "user", login, "scopes", strings.Join(scopesOf(f), " "))
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
	wb.owners.put(fmt.Sprintf("gitea\x00%s\x00%s\x00%d", inst.Org, login, 0), true)
	http.Redirect(w, r, "/orgs/"+url.PathEscape(inst.Org)+"?done=installed", http.StatusSeeOther)
}

// endFlow checks a sign-in's return from the forge named name: the forge did not refuse
// it, and its state opens, is fresh, belongs to this browser's flow (the flow cookie, then
// dropped) and is a flow of forge ("" for Gitea's). It answers itself when ok is false.
func (wb *Web) endFlow(w http.ResponseWriter, r *http.Request, forge, name string) (f flow, ok bool) {
	q := r.URL.Query()
	if q.Get("error") != "" {
		// The forge's words travel in the URL, which anyone can write: logged, not shown.
		wb.cfg.Log.Info("sign-in declined", "forge", name, "error", q.Get("error"), "description", q.Get("error_description"))
		wb.fail(w, r, http.StatusForbidden, "Not signed in", "The sign-in was cancelled or refused on "+name+".")
		return f, false
	}
	c, err := r.Cookie(wb.flowCookie)
	if err != nil || wb.openJSON(q.Get("state"), flowPurpose, &f) != nil || f.Nonce == "" || c.Value != f.Nonce || time.Now().Unix() >= f.Expires || f.Forge != forge {
		wb.fail(w, r, http.StatusBadRequest, "Sign-in refused", "this sign-in did not start here, or took too long: start again")
		return f, false
	}
	http.SetCookie(w, wb.cookie(wb.flowCookie, "", 0))
	return f, true
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

// grantCovers checks, with Gitea's token introspection (RFC 7662), that the grant behind
// token holds OwnerScopes, and answers 403 itself when it does not: Gitea 1.26 hands a
// user who first granted the bot ReaderScopes tokens of those ever after (see OwnerScopes),
// and only revoking the grant on Gitea widens it. When Gitea cannot be asked the sign-in
// goes on: Gitea refuses the calls the token is short of anyway, with a vaguer message.
func (wb *Web) grantCovers(ctx context.Context, w http.ResponseWriter, r *http.Request, token, login string) bool {
	granted, err := wb.grantedScopes(ctx, token)
	if err != nil {
		wb.cfg.Log.Warn("oauth2 introspection", "user", login, "err", err)
		return true
	}
	missing := missingScopes(granted, OwnerScopes)
	if len(missing) == 0 {
		wb.cfg.Log.Debug("oauth2 grant", "user", login, "granted", granted)
		return true
	}
	wb.cfg.Log.Info("sign-in with a narrower grant", "user", login, "granted", granted, "missing", strings.Join(missing, " "))
	wb.fail(w, r, http.StatusForbidden, "Not enough access on Gitea", fmt.Sprintf(
		"Gitea keeps the access you first granted Albatros (%s), and the organization pages need %s. "+
			"Revoke Albatros in your settings on Gitea (%s/user/settings/applications, Authorized OAuth2 Applications), then sign in here again.",
		granted, strings.Join(OwnerScopes, " "), wb.cfg.GiteaURL))
	return false
}

// grantedScopes asks Gitea which scopes token carries: its grant's, space-separated.
func (wb *Web) grantedScopes(ctx context.Context, token string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, wb.cfg.GiteaURL+"/login/oauth/introspect", strings.NewReader(url.Values{"token": {token}}.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(wb.cfg.OAuth.ClientID, wb.cfg.OAuth.ClientSecret)
	client := http.DefaultClient
	if c, ok := ctx.Value(oauth2.HTTPClient).(*http.Client); ok {
		client = c
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("introspect: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("introspect: %s", resp.Status)
	}
	var answer struct {
		Active bool   `json:"active"`
		Scope  string `json:"scope"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&answer); err != nil {
		return "", fmt.Errorf("introspect: %w", err)
	}
	if !answer.Active {
		return "", errors.New("introspect: the token is not active")
	}
	return answer.Scope, nil
}

// missingScopes are the scopes of needed that Gitea's grant of granted lacks. A write
// scope includes its read one; a grant naming no access scope (only OpenID ones) or "all"
// grants them all, as Gitea reads it.
func missingScopes(granted string, needed []string) []string {
	var have []string
	for _, sc := range strings.FieldsFunc(granted, func(r rune) bool { return r == ' ' || r == ',' }) {
		switch sc {
		case "openid", "profile", "email", "groups":
			continue
		case "all":
			return nil
		}
		have = append(have, sc)
	}
	if len(have) == 0 {
		return nil
	}
	var missing []string
	for _, n := range needed {
		level, category, _ := strings.Cut(n, ":")
		if slices.Contains(have, n) || (level == "read" && slices.Contains(have, "write:"+category)) {
			continue
		}
		missing = append(missing, n)
	}
	return missing
}

// logout ends the session for good: POST /logout. Its ID is recorded as signed out in
// Consul until it would have expired, so that a copy of the cookie opens no session on
// any replica either. When that cannot be recorded nothing is signed out (and the cookie
// stays, for trying again): a sign-out that only dropped this browser's cookie would leave
// its copies open.
func (wb *Web) logout(w http.ResponseWriter, r *http.Request) {
	if s, ok := wb.openSession(r); ok && wb.cfg.Sessions != nil {
		ctx, cancel := context.WithTimeout(r.Context(), askFor)
		defer cancel()
		until := time.Unix(s.Expires, 0)
		if err := wb.cfg.Sessions.Revoke(ctx, s.ID, until); err != nil {
			wb.cfg.Log.Warn("sign-out not recorded", "user", s.Login, "err", err)
			wb.fail(w, r, http.StatusServiceUnavailable, "Not signed out", "Consul is unavailable: the sign-out could not be recorded, and you are still signed in. Try again in a moment.")
			return
		}
		wb.signedOut.revoke(s.ID, until)
		wb.cfg.Log.Info("signed out", "user", s.Login)
	}
	http.SetCookie(w, wb.cookie(wb.sessionCookie, "", 0))
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// sessionsDown answers a page that needs a session when Consul cannot say whether the
// request's was signed out.
func (wb *Web) sessionsDown(w http.ResponseWriter, r *http.Request, err error) {
	wb.cfg.Log.Warn("session not checked", "err", err)
	wb.fail(w, r, http.StatusServiceUnavailable, "Consul unavailable", "Your session could not be checked. Try again in a moment.")
}

// ownerList lets GET /orgs through for a session whose sign-in listed the user's
// organizations (OwnerScopes). Anyone else, a reader signed in with ReaderScopes too, is
// sent to sign in with OwnerScopes and back.
func (wb *Web) ownerList(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if wb.cfg.OAuth == nil {
			next(w, r) // which says that installing is not available
			return
		}
		s, err := wb.sessionOf(r, wb.giteaRealm())
		if err != nil && !errors.Is(err, errNoSession) {
			wb.sessionsDown(w, r, err)
			return
		}
		if err != nil || !s.Listed {
			http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		next(w, r)
	}
}

// owner lets a request through only for a signed-in owner of the organization {org}: an
// anonymous visitor is sent to sign in (and back), anyone else gets 403, and 503 when
// Consul cannot say whether the session was signed out. Ownership is checked on Gitea with
// the bot's account, and trusted for a minute at most. With listed, the organizations the
// session lists as owned at sign-in pass too: the bot may not see a private organization
// it is not (or no longer) in, and Install checks again with the user's own token.
func (wb *Web) owner(next http.Handler, listed bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rm := wb.realmOf(r)
		if ok, why := rm.enabled(); !ok {
			wb.fail(w, r, http.StatusNotFound, "Not available", why)
			return
		}
		s, err := wb.sessionOf(r, rm)
		if err != nil && !errors.Is(err, errNoSession) {
			wb.sessionsDown(w, r, err)
			return
		}
		if err != nil {
			target := r.URL.RequestURI()
			if r.Method != http.MethodGet {
				target = rm.base
			}
			http.Redirect(w, r, rm.login+"?next="+url.QueryEscape(target), http.StatusSeeOther)
			return
		}
		org := r.PathValue("org")
		if listed && slices.Contains(s.Orgs, org) {
			next.ServeHTTP(w, r)
			return
		}
		owns, err := wb.isOwner(r.Context(), rm, org, s)
		if err != nil {
			wb.cfg.Log.Warn("owner check", "org", org, "user", s.Login, "forge", rm.forge, "err", err)
			wb.fail(w, r, http.StatusBadGateway, rm.name+" unavailable", "your rights on "+org+" could not be checked")
			return
		}
		if !owns {
			wb.fail(w, r, http.StatusForbidden, "Forbidden", fmt.Sprintf("%s is not an owner of %s.", s.Login, org))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (wb *Web) isOwner(ctx context.Context, rm *realm, org string, s session) (bool, error) {
	key := fmt.Sprintf("%s\x00%s\x00%s\x00%d", rm.forge, org, s.Login, s.UserID)
	if ok, found := wb.owners.get(key); found {
		return ok, nil
	}
	ok, err := rm.admin(ctx, org, s)
	if err != nil {
		return false, err
	}
	wb.owners.put(key, ok)
	return ok, nil
}
