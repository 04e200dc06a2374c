package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/albatros-ci/albatros/archive"
	"github.com/albatros-ci/albatros/pipeline"
	"github.com/albatros-ci/albatros/registry"
)

// archived is the archive of finished builds as the pages use it.
type archived interface {
	List(ctx context.Context, q archive.Query) (archive.Page, error)
	Latest(ctx context.Context, orgID int64, cloneURL, branch, flavor string) (state string, found bool, err error)
	Build(ctx context.Context, ns, jobID string) (*archive.Record, error)
}

// lines reads the records of the newest build of each line (registry.Registry.LineOf).
type lines interface {
	LineOf(ctx context.Context, line string) (registry.Line, bool, error)
}

// historyRepo reads {owner} and {repo} of a history or badge URL, as the clone URL of the
// repository on the bot's Gitea (/builds/…, /badge/…) or on the GitHub App's GitHub
// (/github/builds/…, /github/badge/…); ok is false when they cannot be one.
func (wb *Web) historyRepo(r *http.Request, repo string) (owner, name, cloneURL string, ok bool) {
	owner, name = r.PathValue("owner"), repo
	base := wb.forgeWeb(r)
	if !nameRE.MatchString(owner) || !nameRE.MatchString(name) || strings.Contains(owner+name, "..") || base == "" {
		return "", "", "", false
	}
	return owner, name, base + "/" + owner + "/" + name + ".git", true
}

// forgeWeb is the web URL of the forge of a history or badge URL: GitHub's under
// /github/, else Gitea's; "" when the bot has none.
func (wb *Web) forgeWeb(r *http.Request) string {
	if strings.HasPrefix(r.URL.Path, "/github/") {
		if wb.cfg.GitHub == nil {
			return ""
		}
		return wb.cfg.GitHub.WebURL
	}
	return wb.cfg.GiteaURL
}

// prefixOf is the prefix of the history and badge paths of a request's forge.
func prefixOf(r *http.Request) string {
	if strings.HasPrefix(r.URL.Path, "/github/") {
		return "/github"
	}
	return ""
}

// GitHubRepo returns the owner and name of a repository on the GitHub at webURL from its
// clone URL, as GiteaRepo does; its history page is under /github (GitHubHistoryPath).
func GitHubRepo(webURL, cloneURL string) (owner, repo string, ok bool) {
	return GiteaRepo(webURL, cloneURL)
}

// GitHubHistoryPath is the path of a GitHub repository's history page.
func GitHubHistoryPath(owner, repo string) string { return "/github" + HistoryPath(owner, repo) }

// GiteaRepo returns the owner and name of a repository on the Gitea at giteaURL from its
// clone URL; ok is false for a repository elsewhere, which has no history page.
func GiteaRepo(giteaURL, cloneURL string) (owner, repo string, ok bool) {
	rest, found := strings.CutPrefix(cloneURL, strings.TrimSuffix(giteaURL, "/")+"/")
	if !found || giteaURL == "" {
		return "", "", false
	}
	owner, repo, found = strings.Cut(strings.TrimSuffix(rest, ".git"), "/")
	if !found || !nameRE.MatchString(owner) || !nameRE.MatchString(repo) {
		return "", "", false
	}
	return owner, repo, true
}

// HistoryPath is the path of a repository's history page.
func HistoryPath(owner, repo string) string {
	return "/builds/" + url.PathEscape(owner) + "/" + url.PathEscape(repo)
}

// historyPage is the data of the history page.
type historyPage struct {
	page
	Owner, Repo, RepoURL string
	Branch, PR, State    string
	States               []string
	Builds               []historyRow
	Newer, Older         string
	Badge                badgeInfo
	Run                  *runForm
}

type historyRow struct {
	buildRow
	Cause, Sender, Queued, Reason string
	Secrets                       bool
}

type badgeInfo struct {
	URL, Markdown, Branch string
}

// history serves GET /builds/{owner}/{repo}: the repository's archived builds, newest
// first, filtered by branch, pull request and state, 50 a page, each with its log; public
// for a public repository, for its readers for a private one (as its logs are).
func (wb *Web) history(w http.ResponseWriter, r *http.Request) {
	owner, name, cloneURL, ok := wb.historyRepo(r, r.PathValue("repo"))
	if !ok || wb.cfg.Archive == nil {
		wb.fail(w, r, http.StatusNotFound, "No such repository", "This bot keeps no history of that repository.")
		return
	}
	q := archive.Query{Repo: cloneURL, Limit: 50, After: r.URL.Query().Get("after")}
	v := r.URL.Query()
	q.Branch, q.State = v.Get("branch"), v.Get("state")
	if pr := v.Get("pr"); pr != "" {
		n, err := strconv.ParseInt(pr, 10, 64)
		if err != nil || n <= 0 {
			wb.fail(w, r, http.StatusBadRequest, "Bad filter", "pr is a pull request's number.")
			return
		}
		q.PR = n
	}
	if len(q.Branch) > 255 || !utf8.ValidString(q.Branch) {
		wb.fail(w, r, http.StatusBadRequest, "Bad filter", "branch is a branch's name.")
		return
	}
	if q.State != "" && q.State != "success" && q.State != "failure" && q.State != "error" {
		wb.fail(w, r, http.StatusBadRequest, "Bad filter", "state is success, failure or error.")
		return
	}
	if q.PR > 0 && q.Branch != "" {
		wb.fail(w, r, http.StatusBadRequest, "Bad filter", "filter by a branch or by a pull request, not both.")
		return
	}
	// Only while the bot builds it (exactly so named), and only the builds of whoever
	// holds its name now: a name an organization gave up may be another's later.
	holder, ok := wb.holder(w, r, cloneURL)
	if !ok {
		return
	}
	q.OrgID = holder
	// The same rules as the repository's logs: a private repository's history is its
	// readers'. The answer does not tell whether the bot ever built it.
	if !wb.AllowLog(w, r, cloneURL) {
		return
	}
	page, err := wb.cfg.Archive.List(r.Context(), q)
	if errors.Is(err, archive.ErrBadCursor) {
		wb.fail(w, r, http.StatusBadRequest, "Bad page", "after is not a page of this history.")
		return
	}
	if err != nil {
		wb.cfg.Log.Warn("history", "repo", cloneURL, "err", err)
		w.Header().Set("Retry-After", "10")
		wb.fail(w, r, http.StatusServiceUnavailable, "Archive unavailable", "The archive of builds could not be read: try again in a moment.")
		return
	}
	d := historyPage{
		page: wb.page(r, owner+"/"+name), Owner: owner, Repo: name, RepoURL: wb.forgeWeb(r) + "/" + owner + "/" + name,
		Branch: q.Branch, State: q.State, States: []string{"success", "failure", "error"},
	}
	if q.PR > 0 {
		d.PR = strconv.FormatInt(q.PR, 10)
	}
	self := prefixOf(r) + HistoryPath(owner, name)
	filter := url.Values{}
	for k, val := range map[string]string{"branch": q.Branch, "pr": d.PR, "state": q.State} {
		if val != "" {
			filter.Set(k, val)
		}
	}
	if page.Next != "" {
		older := url.Values{}
		for k, vs := range filter {
			older[k] = vs
		}
		older.Set("after", page.Next)
		d.Older = self + "?" + older.Encode()
	}
	if q.After != "" {
		d.Newer = self
		if len(filter) > 0 {
			d.Newer += "?" + filter.Encode()
		}
	}
	for _, rec := range page.Builds {
		s := rec.Summary()
		row := historyRow{buildRow: wb.buildRow(s, time.Now()), Cause: rec.Cause, Sender: rec.Sender, Reason: rec.Reason, Secrets: rec.Secrets, Queued: rec.Queued.UTC().Format("2006-01-02 15:04:05")}
		d.Builds = append(d.Builds, row)
	}
	// The badge of the branch asked for, else of the default branch: what a README shows.
	// A private repository has none (its badge is a 404): the page says so instead.
	if private, _, _, no := wb.visibility(r.Context(), cloneURL, false); no == nil && !private {
		badgeBranch := q.Branch
		if badgeBranch == "" {
			badgeBranch = wb.defaultBranch(r.Context(), cloneURL)
		}
		d.Badge = wb.badgeInfo(prefixOf(r), owner, name, badgeBranch)
	}
	d.Run = wb.runFormOf(r, cloneURL, self)
	wb.render(w, http.StatusOK, "history", d)
}

// holder is the organization that holds the name of the repository at cloneURL (see
// registry.Repo.Holder), which the bot must build; it answers itself when ok is false.
func (wb *Web) holder(w http.ResponseWriter, r *http.Request, cloneURL string) (int64, bool) {
	entry, err := wb.cfg.Records.Repo(r.Context(), cloneURL)
	if errors.Is(err, registry.ErrNotFound) {
		wb.fail(w, r, http.StatusNotFound, "No such repository", "This bot keeps no history of that repository.")
		return 0, false
	}
	if err != nil {
		wb.cfg.Log.Warn("history: registry", "repo", cloneURL, "err", err)
		w.Header().Set("Retry-After", "10")
		wb.fail(w, r, http.StatusServiceUnavailable, "Registry unavailable", "The bot's registry could not be read: try again in a moment.")
		return 0, false
	}
	return entry.Holder(), true
}

// defaultBranch is the repository's default branch, asked of its forge once a minute at
// most; "main" when the forge cannot say.
func (wb *Web) defaultBranch(ctx context.Context, cloneURL string) string {
	wb.defaults.mu.Lock()
	e, ok := wb.defaults.m[cloneURL]
	wb.defaults.mu.Unlock()
	if ok && time.Since(e.at) < maxAge {
		return e.branch
	}
	branch := "main"
	if _, repo, f, no := wb.visibility(ctx, cloneURL, false); no == nil {
		if b, _, _, err := f.DefaultHead(ctx, repo); err == nil && b != "" {
			branch = b
		}
	}
	wb.defaults.mu.Lock()
	if wb.defaults.m == nil || len(wb.defaults.m) > 10000 {
		wb.defaults.m = map[string]defaultEntry{}
	}
	wb.defaults.m[cloneURL] = defaultEntry{branch, time.Now()}
	wb.defaults.mu.Unlock()
	return branch
}

// defaultBranches are the repositories' default branches, as defaultBranch last asked.
type defaultBranches struct {
	mu sync.Mutex
	m  map[string]defaultEntry
}

type defaultEntry struct {
	branch string
	at     time.Time
}

// badgeInfo is the badge of a branch: its image (a path: the page's own origin) and the
// markdown that shows it elsewhere (the bot's public URL).
func (wb *Web) badgeInfo(prefix, owner, name, branch string) badgeInfo {
	path := prefix + "/badge/" + url.PathEscape(owner) + "/" + url.PathEscape(name) + ".svg?" + url.Values{"branch": {branch}}.Encode()
	page := wb.cfg.BaseURL + prefix + HistoryPath(owner, name) + "?" + url.Values{"branch": {branch}}.Encode()
	return badgeInfo{URL: path, Branch: branch, Markdown: fmt.Sprintf("[![build](%s)](%s)", wb.cfg.BaseURL+path, page)}
}

// badge serves GET /badge/{owner}/{repo}.svg?branch=main&flavor=default: the state of the
// newest build of the branch's pushes in that flavor (passing, failing, error, running,
// unknown), as an SVG that caches for a minute. A private repository, or one this bot
// builds nothing of, has no badge (404).
func (wb *Web) badge(w http.ResponseWriter, r *http.Request) {
	file, ok := strings.CutSuffix(r.PathValue("file"), ".svg")
	_, _, cloneURL, ok2 := wb.historyRepo(r, file)
	branch, flavor := r.URL.Query().Get("branch"), r.URL.Query().Get("flavor")
	if branch == "" {
		branch = "main"
	}
	if flavor == "" {
		flavor = pipeline.DefaultFlavor
	}
	if !ok || !ok2 || wb.cfg.Archive == nil || len(branch) > 255 || !utf8.ValidString(branch) || !pipeline.ValidFlavor(flavor) {
		http.Error(w, "no such badge", http.StatusNotFound)
		return
	}
	if entry, err := wb.cfg.Records.Repo(r.Context(), cloneURL); err == nil && !slices.Contains(pipeline.Flavors(entry), flavor) {
		// Not a flavor the repository builds: unknown, without a look at the archive,
		// and one cached badge for every such name.
		flavor = ""
	}
	svg, status := wb.badges.get(badgeKey{cloneURL, branch, flavor}, func() ([]byte, int) {
		return wb.renderBadge(r.Context(), cloneURL, branch, flavor)
	})
	if status != http.StatusOK {
		http.Error(w, string(svg), status)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "image/svg+xml")
	h.Set("Cache-Control", "public, max-age=60")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	h.Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(svg)
}

// renderBadge works out a badge: the repository must be one the bot builds, public; its
// state is the newest build's of the branch's line (running until it is archived), else
// the newest archived.
func (wb *Web) renderBadge(ctx context.Context, cloneURL, branch, flavor string) ([]byte, int) {
	private, _, _, no := wb.visibility(ctx, cloneURL, true)
	switch {
	case no != nil && no.code == http.StatusServiceUnavailable:
		return []byte("the repository's access could not be checked"), http.StatusServiceUnavailable
	case no != nil || private:
		// Unknown counts as private: a badge tells whoever asks how the code fares. The
		// same answer as for no repository.
		return []byte("no such badge"), http.StatusNotFound
	}
	entry, err := wb.cfg.Records.Repo(ctx, cloneURL)
	if err != nil {
		// visibility read it a moment ago.
		return []byte("the repository's access could not be checked"), http.StatusServiceUnavailable
	}
	if flavor == "" { // not one it builds (badge)
		return badgeSVG(""), http.StatusOK
	}
	state := ""
	if wb.cfg.Lines != nil {
		if l, found, err := wb.cfg.Lines.LineOf(ctx, pipeline.BranchLine(cloneURL, flavor, branch)); err == nil && found {
			if rec, err := wb.cfg.Archive.Build(ctx, l.Namespace, l.JobID); err == nil {
				if rec.HeldBy(true, entry.Holder()) {
					state = rec.State
				}
			} else if errors.Is(err, archive.ErrNotFound) && wb.cfg.Builds != nil {
				if s, ok := wb.liveState(ctx, cloneURL, l); ok {
					state = s
				}
			}
		}
	}
	if state == "" {
		s, found, err := wb.cfg.Archive.Latest(ctx, entry.Holder(), cloneURL, branch, flavor)
		if err != nil {
			wb.cfg.Log.Warn("badge", "repo", cloneURL, "err", err)
			return []byte("the archive is unavailable"), http.StatusServiceUnavailable
		}
		if found {
			state = s
		}
	}
	return badgeSVG(state), http.StatusOK
}

// liveState is the state of a line's newest build that is not archived yet, as Nomad
// lists it: running (or queued) until it ends.
func (wb *Web) liveState(ctx context.Context, cloneURL string, l registry.Line) (string, bool) {
	recent, err := wb.cfg.Builds.Recent(ctx, cloneURL, 50)
	if err != nil {
		return "", false
	}
	for _, s := range recent {
		if s.Namespace == l.Namespace && s.ID == l.JobID {
			switch s.State {
			case "queued", "running":
				return "running", true
			}
			return s.State, true
		}
	}
	return "", false
}

var badgeStates = map[string]struct{ text, color string }{
	"success": {"passing", "#3e8e41"},
	"failure": {"failing", "#c0392b"},
	"error":   {"error", "#d35400"},
	"running": {"running", "#1f6fb5"},
	"":        {"unknown", "#8a8a8a"},
}

// badgeSVG draws a badge: "build" and the state, in the state's colour.
func badgeSVG(state string) []byte {
	s, ok := badgeStates[state]
	if !ok {
		s = badgeStates[""]
	}
	const label = "build"
	lw, vw := 6*len(label)+12, 7*len(s.text)+12
	return fmt.Appendf(nil, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="20" role="img" aria-label="%s: %s">`+
		`<title>%s: %s</title><rect width="%d" height="20" fill="#555"/><rect x="%d" width="%d" height="20" fill="%s"/>`+
		`<g fill="#fff" text-anchor="middle" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11">`+
		`<text x="%d" y="14">%s</text><text x="%d" y="14">%s</text></g></svg>`,
		lw+vw, label, s.text, label, s.text, lw, lw, vw, s.color, lw/2, label, lw+vw/2, s.text)
}

type badgeKey struct{ repo, branch, flavor string }

// badgeCache keeps each badge for badgeFor, and works out at most maxBadgeWork at once: a
// badge costs a listing of the archive (and perhaps a Nomad listing), and anyone may ask
// for any branch's.
type badgeCache struct {
	mu   sync.Mutex
	m    map[badgeKey]badgeEntry
	work chan struct{}
}

type badgeEntry struct {
	svg    []byte
	status int
	at     time.Time
}

const (
	badgeFor     = 30 * time.Second
	maxBadgeWork = 8
	maxBadges    = 10000
)

func (c *badgeCache) get(k badgeKey, compute func() ([]byte, int)) ([]byte, int) {
	c.mu.Lock()
	if c.work == nil {
		c.work = make(chan struct{}, maxBadgeWork)
	}
	e, ok := c.m[k]
	c.mu.Unlock()
	if ok && time.Since(e.at) < badgeFor {
		return e.svg, e.status
	}
	select {
	case c.work <- struct{}{}:
	default:
		return []byte("too many badges asked for at once: try again shortly"), http.StatusServiceUnavailable
	}
	svg, status := compute()
	<-c.work
	if status == http.StatusServiceUnavailable {
		return svg, status
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxBadges {
		c.m = map[badgeKey]badgeEntry{}
	}
	c.m[k] = badgeEntry{svg, status, time.Now()}
	c.mu.Unlock()
	return svg, status
}
