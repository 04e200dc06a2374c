package web

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/albatros-ci/albatros/forge"
	"github.com/albatros-ci/albatros/orchestrator"
	"github.com/albatros-ci/albatros/pipeline"
	"github.com/albatros-ci/albatros/registry"
	"github.com/albatros-ci/albatros/schedule"
)

// runner starts the builds no push starts (pipeline.Pipeline.Start).
type runner interface {
	Start(ctx context.Context, log *slog.Logger, entry *registry.Repo, cloneURL string, st pipeline.Started) (orchestrator.Dispatched, error)
}

// runForm is the Run button's form on a repository's history page, for a signed-in user
// who may push to it.
type runForm struct {
	// Head is Branch's head when the page was shown: the form's commit, so that a run
	// with the secrets builds the code its user saw, not what was pushed since.
	Action, Branch, Head, Nonce string
	Flavors                     []string
	Params                      []registry.Param
	// Trusted says the run gets the repository's secrets.
	Trusted bool
}

// runCommits is how far back in a branch a run's commit may be.
const runCommits = 200

// runRights is who may run a build of the repository at cloneURL: the signed-in user of the
// request's forge, if they may push to it; trusted says their run gets the secrets. why
// (with its HTTP status) says why not, "" when they may.
type runRights struct {
	login   string
	trusted bool
	entry   *registry.Repo
	f       forge.Forge
	repo    forge.Repo
}

// runRights reads who may run a build of the repository at cloneURL; a status and why
// not when the request's user may not.
func (wb *Web) runRights(ctx context.Context, r *http.Request, cloneURL string) (runRights, int, string) {
	rm := wb.realmOf(r)
	if ok, _ := rm.enabled(); !ok || wb.cfg.Runs == nil {
		return runRights{}, http.StatusNotFound, "this bot runs no build asked on its pages"
	}
	s, err := wb.sessionOf(r, rm)
	if errors.Is(err, errNoSession) {
		return runRights{}, http.StatusForbidden, "sign in, as someone who may push to the repository, to run a build"
	}
	if err != nil {
		return runRights{}, http.StatusServiceUnavailable, "your session could not be checked: try again in a moment"
	}
	entry, err := wb.cfg.Records.Repo(ctx, cloneURL)
	if errors.Is(err, registry.ErrNotFound) {
		return runRights{}, http.StatusNotFound, "this bot builds no such repository"
	}
	if err != nil {
		return runRights{}, http.StatusServiceUnavailable, "the bot's registry could not be read"
	}
	if entry.Installed && (entry.Quarantine != "" || entry.OrgID == 0) {
		return runRights{}, http.StatusForbidden, "the repository's installation is held: nothing of it is built"
	}
	f, repo, err := wb.cfg.Forge(entry, cloneURL)
	if err != nil {
		return runRights{}, http.StatusServiceUnavailable, "the repository's forge cannot be reached"
	}
	if entry.Installed {
		// The name may be another owner's since the installation's last check.
		ours, err := wb.cached(&wb.access, fmt.Sprintf("owner\x00%s\x00%d", cloneURL, entry.OrgID), func(ctx context.Context) (bool, error) {
			cur, err := f.Repository(ctx, repo)
			return err == nil && cur.OwnerID == entry.OrgID, err
		}, ctx)
		if err != nil {
			wb.cfg.Log.Warn("run: the repository's owner", "repo", cloneURL, "err", err)
			return runRights{}, http.StatusServiceUnavailable, "the repository's owner could not be checked"
		}
		if !ours {
			return runRights{}, http.StatusForbidden, "the repository of that name is not the installed organization's any more"
		}
	}
	can, err := wb.cached(&wb.access, "write\x00"+rm.forge+"\x00"+cloneURL+"\x00"+s.Login, func(ctx context.Context) (bool, error) { return f.CanWrite(ctx, repo, s.Login) }, ctx)
	if err != nil {
		wb.cfg.Log.Warn("run: write access", "repo", cloneURL, "user", s.Login, "err", err)
		return runRights{}, http.StatusServiceUnavailable, "your access to the repository could not be checked"
	}
	if !can {
		return runRights{}, http.StatusForbidden, s.Login + " may not push to this repository, nor run its builds"
	}
	id := s.UserID
	if rm.forge == "gitea" {
		if id, _, err = f.UserID(ctx, s.Login); err != nil {
			id = 0 // trusted by name only, where the entry records no id
		}
	}
	trusted, err := pipeline.TrustedUser(ctx, f, repo, entry, s.Login, id)
	if err != nil {
		wb.cfg.Log.Warn("run: trust", "repo", cloneURL, "user", s.Login, "err", err)
		trusted = false // runs without the secrets
	}
	return runRights{login: s.Login, trusted: trusted, entry: entry, f: f, repo: repo}, 0, ""
}

// runFormOf is the Run form of the history page, nil when the request's user may not run.
func (wb *Web) runFormOf(r *http.Request, cloneURL, self string) *runForm {
	if wb.cfg.Runs == nil {
		return nil
	}
	if _, ok := wb.session(r); !ok {
		return nil
	}
	rights, code, _ := wb.runRights(r.Context(), r, cloneURL)
	if code != 0 {
		return nil
	}
	branch := wb.defaultBranch(r.Context(), cloneURL)
	head := ""
	if b, err := rights.f.Branch(r.Context(), rights.repo, branch); err == nil {
		head = b.Commit
	}
	return &runForm{
		Action: self + "/run", Branch: branch, Head: head, Nonce: rand.Text(),
		Flavors: pipeline.Flavors(rights.entry), Params: rights.entry.Params, Trusted: rights.trusted,
	}
}

var nonceRE = regexp.MustCompile(`^[A-Za-z0-9]{16,64}$`)

// run serves POST /builds/{owner}/{repo}/run: a build of a branch's head, or of one of its
// last commits, in a flavor of the repository, with the parameters its settings declare;
// asked by a user who may push to it, with the secrets if they are trusted. It answers 403
// to anyone else, 400 to what the settings do not allow (nothing is dispatched), and sends
// the user to the build's log.
func (wb *Web) run(w http.ResponseWriter, r *http.Request) {
	owner, name, cloneURL, ok := wb.historyRepo(r, r.PathValue("repo"))
	if !ok {
		wb.fail(w, r, http.StatusNotFound, "No such repository", "This bot builds no such repository.")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	rights, code, why := wb.runRights(ctx, r, cloneURL)
	if code != 0 {
		wb.fail(w, r, code, "Not run", "No build was run: "+why+".")
		return
	}
	if err := r.ParseForm(); err != nil {
		wb.fail(w, r, http.StatusBadRequest, "Not run", "The form could not be read.")
		return
	}
	refuse := func(msg string) { wb.fail(w, r, http.StatusBadRequest, "Not run", "No build was run: "+msg) }
	nonce, branch, commit, flavor := r.PostFormValue("nonce"), strings.TrimSpace(r.PostFormValue("branch")), strings.TrimSpace(r.PostFormValue("commit")), r.PostFormValue("flavor")
	asked := commit // the key is what was asked, not the head it became
	if !nonceRE.MatchString(nonce) {
		refuse("the form has no request id: reload the page.")
		return
	}
	if err := forge.CheckRefName("branch", branch); err != nil {
		refuse(err.Error() + ".")
		return
	}
	if flavor == "" {
		flavor = pipeline.Flavors(rights.entry)[0]
	}
	if !pipeline.ValidFlavor(flavor) || !slices.Contains(pipeline.Flavors(rights.entry), flavor) {
		refuse(fmt.Sprintf("%q is not a flavor of %s/%s (%s).", flavor, owner, name, strings.Join(pipeline.Flavors(rights.entry), ", ")))
		return
	}
	given := map[string]string{}
	for k, vs := range r.PostForm {
		if p, found := strings.CutPrefix(k, "param."); found && len(vs) > 0 {
			given[p] = vs[0]
		}
	}
	if err := schedule.CheckParams(rights.entry.Params); err != nil {
		// A hand-written entry's, not checked by the settings page.
		wb.fail(w, r, http.StatusInternalServerError, "Not run", "No build was run: the repository's declared parameters are not valid: "+err.Error()+".")
		return
	}
	params, err := schedule.Values(rights.entry.Params, given)
	if err != nil {
		refuse(err.Error() + ".")
		return
	}
	br, err := rights.f.Branch(ctx, rights.repo, branch)
	if errors.Is(err, forge.ErrNotFound) {
		refuse(fmt.Sprintf("%s/%s has no branch %s.", owner, name, branch))
		return
	}
	if err != nil {
		wb.cfg.Log.Warn("run: branch", "repo", cloneURL, "branch", branch, "err", err)
		wb.fail(w, r, http.StatusBadGateway, "Not run", "The branch could not be read from the forge.")
		return
	}
	if commit == "" && rights.trusted {
		// As /approve names its commit: the head may have moved since the user looked.
		refuse("a run with the repository's secrets names its commit (the form gives the head it showed); " + branch + "'s head is " + br.Commit + ".")
		return
	}
	if commit == "" {
		commit = br.Commit
	} else if err := forge.CheckCommit(commit); err != nil {
		refuse("the commit is a full commit SHA (40 hex digits), or empty for the branch's head.")
		return
	} else if commit != br.Commit {
		// Only a commit of the branch: a pull request's head from a fork is in the
		// repository too, and must not run as the branch's code.
		commits, err := rights.f.BranchCommits(ctx, rights.repo, branch, runCommits)
		if err != nil {
			wb.cfg.Log.Warn("run: commits", "repo", cloneURL, "branch", branch, "err", err)
			wb.fail(w, r, http.StatusBadGateway, "Not run", "The branch's commits could not be read from the forge.")
			return
		}
		if !slices.Contains(commits, commit) {
			refuse(fmt.Sprintf("%s is not one of the last %d commits of %s.", commit, runCommits, branch))
			return
		}
	}
	d, err := wb.cfg.Runs.Start(ctx, wb.cfg.Log, rights.entry, cloneURL, pipeline.Started{
		Cause: pipeline.CauseRun, Branch: branch, Commit: commit, Flavor: flavor,
		Key: runKey(rights.login, nonce, branch, asked, params), Trusted: rights.trusted, Params: params, By: rights.login,
	})
	if err != nil {
		wb.cfg.Log.Warn("run: dispatch", "repo", cloneURL, "user", rights.login, "err", err)
		msg := "Nomad did not start it"
		if errors.Is(err, orchestrator.ErrContract) {
			msg = "the builder refuses it: " + err.Error()
		}
		wb.fail(w, r, http.StatusBadGateway, "Not run", "No build was run: "+msg+".")
		return
	}
	wb.cfg.Log.Info("run asked on the page", "repo", cloneURL, "user", rights.login, "branch", branch, "commit", commit, "flavor", flavor, "secrets", rights.trusted, "job", d.JobID)
	// The log on the page's own origin (the form's CSP, form-action 'self', holds for the
	// redirect too).
	http.Redirect(w, r, orchestrator.LogPath(d.Namespace, d.JobID), http.StatusSeeOther)
}

// runKey is a run's build key (pipeline.Started.Key): who asked, the form's request id,
// and what it asked for. The same form sent twice (a double click, a reload) is one build;
// a request id sent again with another branch, commit or parameter is another build, not
// the first one's answer.
func runKey(login, nonce, branch, commit string, params map[string]string) string {
	h := sha256.New()
	for _, part := range []string{branch, commit} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	for _, k := range slices.Sorted(maps.Keys(params)) {
		h.Write([]byte(k + "=" + params[k]))
		h.Write([]byte{0})
	}
	return "run:" + login + ":" + nonce + ":" + hex.EncodeToString(h.Sum(nil))[:16]
}
