package web

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/albatros-ci/albatros/archive"
	"github.com/albatros-ci/albatros/forge"
	"github.com/albatros-ci/albatros/install"
	"github.com/albatros-ci/albatros/orchestrator"
	"github.com/albatros-ci/albatros/pipeline"
	"github.com/albatros-ci/albatros/registry"
	"github.com/albatros-ci/albatros/templates"
)

// page is what every page shows around its content.
type page struct {
	Title, Login, Flash, Error string
	// Orgs is where the signed-in user's organizations are listed (/orgs, /github/orgs).
	Orgs string
}

// done are the messages a page shows after a change, by the code its redirect carries (no
// text of the request's own reaches the page).
var done = map[string]string{
	"app-created":    "The bot's GitHub App is created: install it on your accounts.",
	"installed":      "Albatros is installed: every repository of this organization builds on its next push.",
	"uninstalled":    "Albatros is uninstalled from the organization: its webhook is removed, and nothing of it is built any more.",
	"saved":          "Settings saved.",
	"checked":        "The webhook and the bot's access are as they should be.",
	"repaired":       "The webhook was repaired (the bot's log says what was wrong).",
	"secret-set":     "Secret set. Its value is sealed and will not be shown again.",
	"secret-deleted": "Secret deleted.",
}

func (wb *Web) page(r *http.Request, title string) page {
	s, _ := wb.session(r)
	p := page{Title: title, Login: s.Login, Flash: done[r.URL.Query().Get("done")], Orgs: "/orgs"}
	if s.forge() == "github" {
		p.Orgs = "/github/orgs"
	}
	return p
}

func (wb *Web) render(w http.ResponseWriter, code int, name string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	if err := templates.Page(w, name, data); err != nil {
		wb.cfg.Log.Warn("render page", "page", name, "err", err)
	}
}

// fail answers with an error page.
func (wb *Web) fail(w http.ResponseWriter, r *http.Request, code int, title, message string) {
	wb.render(w, code, "error", struct {
		page
		Message string
	}{wb.page(r, title), message})
}

// quarantine is an installation that is quarantined, as the pages show it.
type quarantine struct{ Org, Why string }

func (wb *Web) home(w http.ResponseWriter, r *http.Request) {
	// A signed-in owner is told of the installations of their organizations that are
	// quarantined (no one else: the names of organizations are not the public's).
	var held []quarantine
	if s, ok := wb.session(r); ok && wb.cfg.Installer != nil && s.forge() == "gitea" {
		for _, org := range s.Orgs {
			inst, err := wb.cfg.Records.Installation(r.Context(), wb.cfg.Installer.OrgURL(org))
			if err != nil {
				continue
			}
			if why := wb.giteaQuarantined(r.Context(), inst); why != "" {
				held = append(held, quarantine{org, why})
			}
		}
	}
	gitHub := ""
	if ok, _ := wb.githubRealm().enabled(); ok {
		if slug, err := wb.cfg.GitHub.Slug(r.Context()); err == nil {
			gitHub = wb.cfg.GitHub.WebURL + "/apps/" + url.PathEscape(slug) + "/installations/new"
		}
	}
	wb.render(w, http.StatusOK, "home", struct {
		page
		InstallEnabled                      bool
		DisabledReason, BotLogin, ForgeName string
		Quarantined                         []quarantine
		GitHubInstall                       string
	}{wb.page(r, "A CI on Nomad"), wb.cfg.OAuth != nil, wb.cfg.DisabledReason, wb.cfg.BotLogin, "Gitea", held, gitHub})
}

// orgItem is an organization (or GitHub account) of the signed-in user's list.
type orgItem struct {
	Name       string
	Installed  bool
	Quarantine string
}

// orgItems reads the installations of orgs on rm's forge, answering 503 itself when
// Consul cannot say.
func (wb *Web) orgItems(w http.ResponseWriter, r *http.Request, rm *realm, orgs []string) ([]orgItem, bool) {
	var items []orgItem
	for _, org := range orgs {
		inst, err := wb.cfg.Records.Installation(r.Context(), rm.orgURL(org))
		if err != nil && !errors.Is(err, registry.ErrNotFound) {
			wb.cfg.Log.Warn("read installation", "org", org, "err", err)
			wb.fail(w, r, http.StatusServiceUnavailable, "Consul unavailable", "the installations could not be read")
			return nil, false
		}
		it := orgItem{Name: org, Installed: err == nil}
		if err == nil {
			it.Quarantine = rm.quarantined(r.Context(), inst)
		}
		items = append(items, it)
	}
	return items, true
}

// orgs lists the organizations the signed-in user owns, with Install or Settings and
// Uninstall for each.
func (wb *Web) orgs(w http.ResponseWriter, r *http.Request) {
	if wb.cfg.OAuth == nil {
		wb.fail(w, r, http.StatusNotFound, "Installing is not available", wb.cfg.DisabledReason)
		return
	}
	s, err := wb.sessionOf(r, wb.giteaRealm())
	if err != nil {
		http.Redirect(w, r, "/login?next=/orgs", http.StatusSeeOther)
		return
	}
	items, ok := wb.orgItems(w, r, wb.giteaRealm(), s.Orgs)
	if !ok {
		return
	}
	wb.render(w, http.StatusOK, "orgs", struct {
		page
		Orgs      []orgItem
		ForgeName string
	}{wb.page(r, "Your organizations"), items, "Gitea"})
}

// install starts installing on {org}: a round trip through Gitea's authorize page, which
// a user who granted the bot before passes at once, brings back a token of the user's own,
// with which the callback installs.
func (wb *Web) install(w http.ResponseWriter, r *http.Request) {
	wb.startFlow(w, r, flow{Install: r.PathValue("org")})
}

func (wb *Web) uninstall(w http.ResponseWriter, r *http.Request) {
	org := r.PathValue("org")
	if err := wb.cfg.Installer.Uninstall(r.Context(), org); err != nil {
		wb.installFailed(w, r, "Not uninstalled", "Albatros could not be uninstalled from "+org, err)
		return
	}
	s, _ := wb.session(r)
	wb.cfg.Log.Info("uninstalled", "org", org, "by", s.Login)
	http.Redirect(w, r, "/orgs?done=uninstalled", http.StatusSeeOther)
}

// check checks and repairs {org}'s webhook now, as the bot does every check interval.
func (wb *Web) check(w http.ResponseWriter, r *http.Request) {
	org := r.PathValue("org")
	repaired, err := wb.cfg.Installer.Check(r.Context(), org)
	if err != nil {
		wb.installFailed(w, r, "Not checked", "The installation on "+org+" could not be checked", err)
		return
	}
	code := "checked"
	if len(repaired) > 0 {
		code = "repaired"
	}
	wb.redirectDone(w, r, code)
}

// installFailed answers an error of uninstalling or checking with its status and a short
// message; the detail goes to the log.
func (wb *Web) installFailed(w http.ResponseWriter, r *http.Request, title, what string, err error) {
	wb.cfg.Log.Warn(strings.ToLower(title), "org", r.PathValue("org"), "err", err)
	code, why := http.StatusBadGateway, "Gitea did not answer as expected (the bot's log says more)."
	switch {
	case errors.Is(err, install.ErrNotInstalled), errors.Is(err, registry.ErrNotFound):
		code, why = http.StatusNotFound, "Albatros is not installed there."
	case errors.Is(err, install.ErrBusy):
		code, why = http.StatusConflict, install.ErrBusy.Error()+"."
	case errors.Is(err, install.ErrLostOwnership):
		code, why = http.StatusConflict, "the bot's account is no longer an owner of the organization: install Albatros there again."
	case errors.Is(err, registry.ErrUnavailable):
		code, why = http.StatusServiceUnavailable, "Consul is unavailable."
	}
	wb.fail(w, r, code, title, what+": "+why)
}

// settingsPage is the data of the organization's and a repository's pages.
type settingsPage struct {
	page
	Org, Repo, Base string
	// OrgBase is the organization's page, Forge its forge (gitea, github), HistoryBase
	// what its history pages' paths start with ("" or /github).
	OrgBase, Forge, HistoryBase string
	Installation                *registry.Installation
	HookURL                     string
	Settings                    registry.Settings
	Secrets                     []string
	DefaultFlavors              string
	DefaultBuilder              string
	Repos                       []repoItem
	Builds                      []buildRow
	// A repository's schedules, with how they went, and its schedules and run parameters
	// as the settings form writes them.
	Schedules                 []scheduleRow
	SchedulesText, ParamsText string
}

type repoItem struct {
	Name   string
	Custom bool
}

// installation reads {org}'s installation, answering 404 or 503 itself when it cannot, and
// 409 when it is quarantined: its settings (trusted users, secrets' names, builds) are
// shown to nobody, as whoever owns the name now may be another organization's owner.
func (wb *Web) installation(w http.ResponseWriter, r *http.Request) *registry.Installation {
	org := r.PathValue("org")
	rm := wb.realmOf(r)
	inst, err := wb.cfg.Records.Installation(r.Context(), rm.orgURL(org))
	if errors.Is(err, registry.ErrNotFound) {
		wb.fail(w, r, http.StatusNotFound, "Not installed", "Albatros is not installed on "+org+".")
		return nil
	}
	if err != nil {
		wb.cfg.Log.Warn("read installation", "org", org, "err", err)
		wb.fail(w, r, http.StatusServiceUnavailable, "Consul unavailable", "the installation could not be read")
		return nil
	}
	if inst.Forge != rm.forge && !(rm.forge == "gitea" && inst.Forge == "") {
		wb.fail(w, r, http.StatusNotFound, "Not installed", "Albatros is not installed on "+org+".")
		return nil
	}
	if why := rm.quarantined(r.Context(), inst); why != "" {
		again := "An owner of " + org + " can install Albatros again (Your organizations, Install): it starts afresh."
		if rm.forge == "github" {
			again = "An owner of " + org + " can install the App again on GitHub."
		}
		wb.fail(w, r, http.StatusConflict, "Quarantined", "Albatros's installation on "+org+" is held: "+why+". Nothing of it is built. "+again)
		return nil
	}
	return inst
}

func (wb *Web) settingsPage(w http.ResponseWriter, r *http.Request, inst *registry.Installation, repo string, code int, problem string) {
	ctx := r.Context()
	rm := wb.realmOf(r)
	d := settingsPage{
		page: wb.page(r, inst.Org), Org: inst.Org, Repo: repo, Base: rm.base + "/" + inst.Org, OrgBase: rm.base + "/" + inst.Org, Forge: rm.forge, HistoryBase: prefixOf(r),
		Installation: inst, HookURL: rm.hookURL,
		Settings: inst.SettingsOf(repo), DefaultFlavors: pipeline.DefaultFlavor, DefaultBuilder: wb.cfg.DefaultBuilder.String(),
	}
	d.Error = problem
	if problem != "" {
		d.Flash = ""
	}
	d.Secrets = slices.Sorted(maps.Keys(d.Settings.Secrets))
	prefix := rm.orgURL(inst.Org) + "/"
	name := "org"
	if repo != "" {
		d.Base += "/repos/" + repo
		d.Title = inst.Org + "/" + repo
		prefix += repo + ".git"
		name = "repo"
		d.SchedulesText, d.ParamsText = formatSchedules(d.Settings.Schedules), formatParams(d.Settings.Params)
		d.Schedules = wb.scheduleRows(ctx, prefix, strings.TrimSuffix(prefix, ".git"), d.Settings.Schedules)
	} else {
		repos, err := rm.repos(ctx, inst)
		if err != nil {
			wb.cfg.Log.Warn("list repositories", "org", inst.Org, "err", err)
		}
		for _, rp := range repos {
			_, custom := inst.Repos[rp.Name]
			d.Repos = append(d.Repos, repoItem{rp.Name, custom})
		}
	}
	live, err := wb.cfg.Builds.Recent(ctx, prefix, 30)
	if err != nil {
		wb.cfg.Log.Warn("recent builds", "org", inst.Org, "err", err)
	}
	// The builds of whoever held the organization's name before are not its own.
	var summaries []orchestrator.Summary
	for _, s := range live {
		if !s.HolderKnown || s.Holder == inst.OrgID {
			summaries = append(summaries, s)
		}
	}
	if wb.cfg.Archive != nil {
		// The builds Nomad has collected stay on the page, from the archive.
		q := archive.Query{Owner: prefix, OrgID: inst.OrgID, Limit: 30}
		if repo != "" {
			q = archive.Query{Repo: prefix, OrgID: inst.OrgID, Limit: 30}
		}
		page, err := wb.cfg.Archive.List(ctx, q)
		if err != nil {
			wb.cfg.Log.Warn("archived builds", "org", inst.Org, "err", err)
		}
		summaries = archive.Merge(summaries, page.Builds, 30)
	}
	now := time.Now()
	for _, s := range summaries {
		// A repository's page: its clone URL exactly (…/app.git is a prefix of …/app.github.git).
		if repo != "" && s.Meta["REPO_URL"] != prefix {
			continue
		}
		d.Builds = append(d.Builds, wb.buildRow(s, now))
	}
	wb.render(w, code, name, d)
}

func (wb *Web) orgPage(w http.ResponseWriter, r *http.Request) {
	if inst := wb.installation(w, r); inst != nil {
		wb.settingsPage(w, r, inst, "", http.StatusOK, "")
	}
}

// repo checks that {repo} is a repository of the organization, answering 404 itself when
// it is not.
func (wb *Web) repo(w http.ResponseWriter, r *http.Request, inst *registry.Installation) (string, bool) {
	name := r.PathValue("repo")
	if name == "" {
		return "", true
	}
	rm := wb.realmOf(r)
	repos, err := rm.repos(r.Context(), inst)
	if err != nil {
		wb.fail(w, r, http.StatusBadGateway, rm.name+" unavailable", "the repositories of "+inst.Org+" could not be listed")
		return "", false
	}
	for _, rp := range repos {
		if rp.Name == name {
			return name, true
		}
	}
	wb.fail(w, r, http.StatusNotFound, "No such repository", inst.Org+" has no repository "+name+".")
	return "", false
}

func (wb *Web) repoPage(w http.ResponseWriter, r *http.Request) {
	inst := wb.installation(w, r)
	if inst == nil {
		return
	}
	if repo, ok := wb.repo(w, r, inst); ok {
		wb.settingsPage(w, r, inst, repo, http.StatusOK, "")
	}
}

// What the settings forms accept: every value ends up in a Nomad meta, a shell or a forge
// API call.
var (
	nameRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$`)
	secretRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)
	jobRE    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)
)

// MaxSecret is the longest secret value accepted.
const MaxSecret = 64 << 10

// list splits a form field on commas and white space, without duplicates.
func list(v string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' || r == '\t' }) {
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

// change applies f to {org}'s installation, read afresh, and writes it with a
// check-and-set, again when another change came first. f returns a problem to show the
// user (nothing is written then). change answers itself unless it wrote, and reports
// whether it did.
func (wb *Web) change(w http.ResponseWriter, r *http.Request, f func(inst *registry.Installation, repo string) (problem string)) bool {
	inst := wb.installation(w, r)
	if inst == nil {
		return false
	}
	repo, ok := wb.repo(w, r, inst)
	if !ok {
		return false
	}
	if err := r.ParseForm(); err != nil {
		wb.settingsPage(w, r, inst, repo, http.StatusBadRequest, "The form could not be read.")
		return false
	}
	for attempt := 0; ; attempt++ {
		if problem := f(inst, repo); problem != "" {
			// Show the settings as they are, not as the refused form had them.
			if fresh := wb.installation(w, r); fresh != nil {
				wb.settingsPage(w, r, fresh, repo, http.StatusBadRequest, problem)
			}
			return false
		}
		err := wb.cfg.Records.PutInstallation(r.Context(), inst)
		if err == nil {
			return true
		}
		if !errors.Is(err, registry.ErrConflict) || attempt == 3 {
			wb.cfg.Log.Warn("write installation", "org", inst.Org, "err", err)
			wb.fail(w, r, http.StatusServiceUnavailable, "Not saved", "the settings could not be written to Consul")
			return false
		}
		if inst = wb.installation(w, r); inst == nil {
			return false
		}
	}
}

func (wb *Web) redirectDone(w http.ResponseWriter, r *http.Request, code string) {
	target := wb.realmOf(r).base + "/" + url.PathEscape(r.PathValue("org"))
	if repo := r.PathValue("repo"); repo != "" {
		target += "/repos/" + url.PathEscape(repo)
	}
	http.Redirect(w, r, target+"?done="+code, http.StatusSeeOther)
}

func (wb *Web) saveSettings(w http.ResponseWriter, r *http.Request) {
	if wb.change(w, r, func(inst *registry.Installation, repo string) string {
		s := inst.SettingsOf(repo)
		was := s.Trusted
		s.Trusted = registry.Trusted{Users: list(r.PostFormValue("users")), Teams: list(r.PostFormValue("teams"))}
		s.Flavors = list(r.PostFormValue("flavors"))
		for _, u := range append(slices.Clone(s.Trusted.Users), s.Trusted.Teams...) {
			if !nameRE.MatchString(u) {
				return fmt.Sprintf("%q is not a user or team name.", u)
			}
		}
		// Users and teams kept keep the id they were recorded with (the user of that name
		// now may be another); new ones are recorded with the id Gitea gives them now.
		for _, u := range s.Trusted.Users {
			if id, ok := was.UserIDs[u]; ok {
				if s.Trusted.UserIDs == nil {
					s.Trusted.UserIDs = map[string]int64{}
				}
				s.Trusted.UserIDs[u] = id
			}
		}
		for _, tm := range s.Trusted.Teams {
			if id, ok := was.TeamIDs[tm]; ok {
				if s.Trusted.TeamIDs == nil {
					s.Trusted.TeamIDs = map[string]int64{}
				}
				s.Trusted.TeamIDs[tm] = id
			}
		}
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		rm := wb.realmOf(r)
		err := rm.identify(ctx, inst, &s.Trusted)
		cancel()
		switch {
		case errors.Is(err, forge.ErrNotFound):
			return "Not saved: " + rm.name + " has no " + strings.TrimPrefix(err.Error(), forge.ErrNotFound.Error()+": ") + "."
		case err != nil:
			wb.cfg.Log.Warn("ids of trusted users", "org", inst.Org, "err", err)
			return "Not saved: " + rm.name + " could not be asked who the trusted users and teams are."
		}
		for _, fl := range s.Flavors {
			if !pipeline.ValidFlavor(fl) {
				return fmt.Sprintf("%q is not a flavor name (letters, digits, '.', '_' and '-', up to 64).", fl)
			}
		}
		job, ns := strings.TrimSpace(r.PostFormValue("builder_job")), strings.TrimSpace(r.PostFormValue("builder_namespace"))
		s.Builder = nil
		if job != "" {
			if !jobRE.MatchString(job) || (ns != "" && !orchestrator.ValidNamespace(ns)) {
				return "The builder's job or namespace is not a Nomad name."
			}
			b := orchestrator.Builder{Namespace: ns, Job: job}
			if b.Namespace == "" {
				b.Namespace = wb.cfg.DefaultBuilder.Namespace
			}
			if !slices.Contains(wb.cfg.BuilderNamespaces, b.Namespace) {
				return fmt.Sprintf("The builder was not saved: builders of installed organizations come from the namespaces %s.", strings.Join(wb.cfg.BuilderNamespaces, ", "))
			}
			ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
			err := wb.cfg.Builds.CheckBuilder(ctx, b)
			cancel()
			switch {
			case errors.Is(err, orchestrator.ErrContract):
				return "The builder was not saved: " + err.Error()
			case errors.Is(err, orchestrator.ErrNotFound):
				return fmt.Sprintf("The builder was not saved: there is no job %s in Nomad.", b)
			case err != nil:
				wb.cfg.Log.Warn("check builder", "builder", b.String(), "err", err)
				return "The builder was not saved: Nomad could not be asked about it."
			}
			s.Builder = &registry.Builder{Job: job, Namespace: ns}
		} else if ns != "" {
			return "A builder namespace needs a builder job."
		}
		if repo != "" {
			// The builder the repository builds with: its own, else the organization's.
			builder := wb.cfg.DefaultBuilder
			for _, b := range []*registry.Builder{inst.Settings.Builder, s.Builder} {
				if b != nil && b.Job != "" {
					builder = orchestrator.Builder{Job: b.Job, Namespace: b.Namespace}
					if builder.Namespace == "" {
						builder.Namespace = wb.cfg.DefaultBuilder.Namespace
					}
				}
			}
			// And its flavors: its own, else the organization's, else the default one.
			flavors := s.Flavors
			if len(flavors) == 0 {
				flavors = inst.Settings.Flavors
			}
			if len(flavors) == 0 {
				flavors = []string{pipeline.DefaultFlavor}
			}
			if problem := wb.readBuildsNoPushStarts(r, &s, builder, flavors); problem != "" {
				return problem
			}
		}
		inst.SetSettings(repo, s)
		return ""
	}) {
		wb.redirectDone(w, r, "saved")
	}
}

func (wb *Web) setSecret(w http.ResponseWriter, r *http.Request) {
	if wb.change(w, r, func(inst *registry.Installation, repo string) string {
		name, value := strings.TrimSpace(r.PostFormValue("name")), r.PostFormValue("value")
		switch {
		case !secretRE.MatchString(name):
			return "A secret's name is a shell variable's: letters, digits and '_', not starting with a digit."
		case value == "" || len(value) > MaxSecret || strings.ContainsRune(value, 0):
			return fmt.Sprintf("A secret's value is 1 to %d bytes, without NUL.", MaxSecret)
		}
		if err := wb.cfg.Records.SetSecret(inst, repo, name, value); err != nil {
			return "The secret could not be sealed: " + err.Error()
		}
		return ""
	}) {
		wb.redirectDone(w, r, "secret-set")
	}
}

func (wb *Web) deleteSecret(w http.ResponseWriter, r *http.Request) {
	if wb.change(w, r, func(inst *registry.Installation, repo string) string {
		s := inst.SettingsOf(repo)
		name := r.PostFormValue("name")
		if _, ok := s.Secrets[name]; !ok {
			return "There is no secret " + fmt.Sprintf("%q", name) + "."
		}
		delete(s.Secrets, name)
		inst.SetSettings(repo, s)
		return ""
	}) {
		wb.redirectDone(w, r, "secret-deleted")
	}
}

// buildRow is one build in a page's list.
type buildRow struct {
	Repo, Short, CommitURL, Ref, Flavor, State, Emoji, Took, Log string
}

var emoji = map[string]string{"success": "✅", "failure": "❌", "error": "⚠️", "running": "🔄", "queued": "⏳"}

func (wb *Web) buildRow(s orchestrator.Summary, now time.Time) buildRow {
	repoURL := strings.TrimSuffix(s.Meta["REPO_URL"], ".git")
	row := buildRow{Repo: repoURL, Flavor: s.Meta["FLAVOR"], State: s.State, Emoji: emoji[s.State], Log: wb.cfg.BaseURL + orchestrator.LogPath(s.Namespace, s.ID)}
	if u, err := url.Parse(repoURL); err == nil {
		row.Repo = strings.Trim(u.Path, "/")
		if u.Scheme == "http" || u.Scheme == "https" {
			u.User = nil
			row.CommitURL = u.String() + "/commit/" + s.Meta["COMMIT"]
		}
	}
	row.Short = s.Meta["COMMIT"]
	if len(row.Short) > 10 {
		row.Short = row.Short[:10]
	}
	switch {
	case s.Meta["TAG"] != "":
		row.Ref = "tag " + s.Meta["TAG"]
	case s.PR() > 0:
		row.Ref = fmt.Sprintf("PR #%d (%s)", s.PR(), s.Meta["BRANCH"])
	default:
		row.Ref = s.Meta["BRANCH"]
	}
	if !s.Started.IsZero() {
		row.Took = s.Took(now).String()
	}
	return row
}
