package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/albatros-ci/albatros/forge"
	"github.com/albatros-ci/albatros/orchestrator"
	"github.com/albatros-ci/albatros/registry"
	"github.com/albatros-ci/albatros/schedule"
)

// scheduleStates is the registry's record of the schedules, as the pipeline uses it.
type scheduleStates interface {
	ScheduleState(ctx context.Context, cloneURL, name string) (registry.ScheduleState, error)
	UpdateScheduleState(ctx context.Context, cloneURL, name string, change func(*registry.ScheduleState) bool) (registry.ScheduleState, error)
}

// Scheduled is the registry as the schedules' leader lists it: the repositories with an
// entry, the installed organizations, and a repository's entry.
type Scheduled interface {
	RepoURLs(ctx context.Context) ([]string, error)
	Installations(ctx context.Context) ([]*registry.Installation, error)
	Repo(ctx context.Context, cloneURL string) (*registry.Repo, error)
}

// Schedules is the schedules' duty while a bot leads it (RunSchedules).
type Schedules struct {
	Registry Scheduled
	// Served are the forges (their web URLs) whose installations this bot builds.
	Served []string
	// Every is how often the schedules are read and their slots looked at (15 s if 0).
	Every time.Duration
	// Now is the clock (time.Now if nil).
	Now func() time.Time
}

// GoneProblem is what a schedule's state says of a branch that is gone.
const GoneProblem = "its branch is gone: nothing is built until it is back"

// RunSchedules builds the schedules' slots until ctx ends: every s.Every, each schedule's
// last slot (see schedule.Last) that its state does not name built yet. Each slot is one
// build key: two leaders, a restart or a leader change build it once.
func (p *Pipeline) RunSchedules(ctx context.Context, log *slog.Logger, s Schedules) {
	every := s.Every
	if every <= 0 {
		every = 15 * time.Second
	}
	now := s.Now
	if now == nil {
		now = time.Now
	}
	log.Info("leading: running the schedules", "every", every)
	for {
		p.SchedulePass(ctx, log, s, now())
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}

// slotsDone remembers, per schedule, the last slot this bot saw done (built, or refused
// for good), so that a pass reads Consul only for the schedules that have a slot due.
// Slots only move forward: a slot seen done stays done.
type slotsDone struct {
	mu sync.Mutex
	m  map[string]time.Time
}

func (s *slotsDone) done(key string, slot time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	last, ok := s.m[key]
	return ok && !last.Before(slot)
}

func (s *slotsDone) record(key string, slot time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil || len(s.m) > 10000 {
		s.m = map[string]time.Time{}
	}
	if s.m[key].Before(slot) {
		s.m[key] = slot
	}
}

// scheduled is one schedule of one repository.
type scheduled struct {
	cloneURL string
	sched    registry.Schedule
}

// list returns every schedule of the repositories this bot builds.
func (s Schedules) list(ctx context.Context, log *slog.Logger) []scheduled {
	var out []scheduled
	urls, err := s.Registry.RepoURLs(ctx)
	if err != nil {
		log.Warn("schedules: registered repositories not listed", "err", err)
	}
	for _, u := range urls {
		entry, err := s.Registry.Repo(ctx, u)
		if err != nil {
			log.Warn("schedules: entry not read", "repo", u, "err", err)
			continue
		}
		for _, sc := range entry.Schedules {
			// Written by hand: checked as the settings page checks it.
			if err := schedule.Check(sc); err != nil {
				log.Warn("schedules: a schedule of the entry is not valid: not run", "repo", u, "err", err)
				continue
			}
			out = append(out, scheduled{u, sc})
		}
	}
	insts, err := s.Registry.Installations(ctx)
	if err != nil {
		log.Warn("schedules: installations not listed", "err", err)
	}
	for _, inst := range insts {
		if inst.Quarantine != "" || inst.Suspended || inst.OrgID == 0 ||
			!slices.ContainsFunc(s.Served, func(u string) bool { return strings.TrimSuffix(u, "/") == strings.TrimSuffix(inst.URL, "/") }) {
			continue
		}
		for name, set := range inst.Repos {
			u := inst.OrgURL() + "/" + name + ".git"
			if slices.Contains(urls, u) {
				continue // its own entry wins over the installation's settings
			}
			for _, sc := range set.Schedules {
				out = append(out, scheduled{u, sc})
			}
		}
	}
	slices.SortFunc(out, func(a, b scheduled) int {
		return strings.Compare(a.cloneURL+"\x00"+a.sched.Name, b.cloneURL+"\x00"+b.sched.Name)
	})
	return slices.CompactFunc(out, func(a, b scheduled) bool { return a.cloneURL == b.cloneURL && a.sched.Name == b.sched.Name })
}

// SchedulePass looks at every schedule once, at now, and builds the slots due; it returns
// how many builds it dispatched.
func (p *Pipeline) SchedulePass(ctx context.Context, log *slog.Logger, s Schedules, now time.Time) int {
	if p.cfg.Schedules == nil {
		return 0
	}
	n := 0
	for _, sc := range s.list(ctx, log) {
		slot, due := schedule.Last(sc.sched, now)
		if !due {
			continue
		}
		l := log.With("repo", sc.cloneURL, "schedule", sc.sched.Name, "slot", slot)
		memo := sc.cloneURL + "\x00" + sc.sched.Name
		if p.slotsDone.done(memo, slot) {
			continue // seen done by this bot: no need to ask Consul again
		}
		st, err := p.cfg.Schedules.ScheduleState(ctx, sc.cloneURL, sc.sched.Name)
		if err != nil {
			l.Warn("schedule not run: its state could not be read", "err", err)
			continue
		}
		if !st.Slot.Before(slot) {
			p.slotsDone.record(memo, st.Slot)
			continue // built
		}
		var d orchestrator.Dispatched
		var problem string
		if p.stillRuns(ctx, st, slot) {
			// As Nomad's periodic jobs with prohibit_overlap: the slot is skipped, so that
			// builds of one schedule neither pile up nor hide each other's statuses.
			problem = fmt.Sprintf("the slot of %s was skipped: the build of the slot before still ran", slot.UTC().Format(time.RFC3339))
			l.Info("scheduled build skipped: the one before still runs", "job", st.Job)
		} else {
			d, problem, err = p.runSlot(ctx, l, s, sc, slot)
		}
		if err != nil {
			l.Warn("scheduled build not dispatched: tried again on the next pass", "err", err)
		}
		// A slot refused for good (the branch gone, the repository another's) is done
		// with, as one built; one not dispatched for a passing reason is looked at again.
		if _, uerr := p.cfg.Schedules.UpdateScheduleState(ctx, sc.cloneURL, sc.sched.Name, func(st *registry.ScheduleState) bool {
			if !st.Slot.Before(slot) {
				return false // another bot was first: its word stands
			}
			was := *st
			if err == nil {
				st.Slot = slot
				if d.JobID != "" {
					st.Namespace, st.Job, st.JobSlot = d.Namespace, d.JobID, slot
				}
			}
			switch {
			case problem == GoneProblem && st.Gone.IsZero():
				st.Gone = now.UTC()
			case problem == "" && err == nil:
				st.Gone = time.Time{}
			}
			st.Problem = problem
			return !st.Slot.Equal(was.Slot) || st.Job != was.Job || !st.Gone.Equal(was.Gone) || st.Problem != was.Problem
		}); uerr != nil {
			l.Warn("schedule's state not written: the slot is looked at again", "err", uerr)
		} else if err == nil {
			p.slotsDone.record(memo, slot)
		}
		if err == nil && problem == "" && !d.Duplicate {
			n++
		}
	}
	return n
}

// overlapBound is how long a schedule's build holds its next slots back (stillRuns): a
// build that hangs (its code never ends, or it waits for a node) stops the schedule for no
// longer than this.
const overlapBound = 24 * time.Hour

// stillRuns reports whether the schedule's last build (in its state) is one of the bot's
// builds, queued or running, dispatched for a slot less than overlapBound before slot. One
// Nomad has collected (its ID may be another tenant's job since), or that cannot be read,
// does not hold the slot back.
func (p *Pipeline) stillRuns(ctx context.Context, st registry.ScheduleState, slot time.Time) bool {
	if st.Job == "" || slot.Sub(st.JobSlot) >= overlapBound {
		return false
	}
	if _, err := p.cfg.Builds.Build(ctx, st.Namespace, st.Job); err != nil {
		return false // not the bot's (orchestrator.ErrNotOurs), or gone
	}
	_, final, err := p.cfg.Builds.Outcome(ctx, st.Namespace, st.Job)
	return err == nil && !final
}

// runSlot builds one slot of a schedule: the head of its branch, with the secrets only if
// the head's push was trusted. problem says why nothing was built, for the page.
func (p *Pipeline) runSlot(ctx context.Context, log *slog.Logger, s Schedules, sc scheduled, slot time.Time) (orchestrator.Dispatched, string, error) {
	entry, err := s.Registry.Repo(ctx, sc.cloneURL)
	if err != nil {
		return orchestrator.Dispatched{}, "the repository's settings could not be read", err
	}
	if why := entry.Blocked(entry.OrgID); why != "" {
		return orchestrator.Dispatched{}, "not built: " + why, nil
	}
	f, repo, err := p.cfg.Forge(entry, sc.cloneURL)
	if err != nil {
		return orchestrator.Dispatched{}, "no forge for the repository", err
	}
	if entry.Installed {
		// The name may be another owner's now: build only the installation's.
		cur, err := f.Repository(ctx, repo)
		if err != nil {
			return orchestrator.Dispatched{}, "the forge could not be asked about the repository", err
		}
		if cur.OwnerID != entry.OrgID {
			return orchestrator.Dispatched{}, fmt.Sprintf("not built: the repository's owner (id %d) is not the organization Albatros was installed on", cur.OwnerID), nil
		}
	}
	br, err := f.Branch(ctx, repo, sc.sched.Branch)
	if errors.Is(err, forge.ErrNotFound) {
		log.Info("schedule not built: its branch is gone", "branch", sc.sched.Branch)
		return orchestrator.Dispatched{}, GoneProblem, nil
	}
	if err != nil {
		return orchestrator.Dispatched{}, "the branch's head could not be read", err
	}
	// Trust follows the push: the branch's last push, of the commit at its head, was a
	// trusted user's (a trusted commit pushed onto the branch by someone else is not), and
	// that user is trusted still.
	trusted := false
	if p.cfg.Trust != nil {
		h, err := p.cfg.Trust.BranchHead(ctx, sc.cloneURL, sc.sched.Branch)
		if err != nil {
			log.Warn("the branch's last push could not be read: building without secrets", "err", err)
		}
		if err == nil && h.Trusted && h.Commit == br.Commit {
			still, err := TrustedUser(ctx, f, repo, entry, h.Pusher, h.PusherID)
			if err != nil {
				log.Warn("the pusher's trust could not be checked: building without secrets", "pusher", h.Pusher, "err", err)
			}
			trusted = err == nil && still
		}
	}
	flavors := Flavors(entry)
	flavor := sc.sched.Flavor
	if flavor == "" {
		flavor = flavors[0]
	}
	if !slices.Contains(flavors, flavor) {
		return orchestrator.Dispatched{}, fmt.Sprintf("not built: flavor %q is not one of the repository's (%s)", flavor, strings.Join(flavors, ", ")), nil
	}
	d, err := p.Start(ctx, log, entry, sc.cloneURL, Started{
		Cause: CauseSchedule, Branch: sc.sched.Branch, Commit: br.Commit, Flavor: flavor,
		Key: sc.sched.Name + "@" + slot.UTC().Format(time.RFC3339), Trusted: trusted, Schedule: sc.sched.Name,
	})
	if errors.Is(err, orchestrator.ErrContract) || errors.Is(err, orchestrator.ErrNotFound) {
		// Refused for good (the builder is not one, or is not there): the slot is done
		// with, its error status written once, not every pass for the catch-up's hours.
		return d, "the build could not be dispatched: " + readable(err), nil
	}
	if err != nil {
		return d, "the build could not be dispatched: " + readable(err), err
	}
	log.Info("scheduled build", "job", d.JobID, "commit", br.Commit, "secrets", trusted, "duplicate", d.Duplicate)
	return d, "", nil
}

// The issue a failing schedule opens, its comments, and its title.
func scheduleIssueTitle(name string) string {
	return fmt.Sprintf("Scheduled build %q is failing", name)
}

// tellLease is how long a bot telling a schedule's issue of a result holds the others
// back (see told); one that died meanwhile holds them no longer.
const tellLease = 20 * time.Second

// told tells the schedule's issue of a scheduled build's final status s: a failure (or
// error) opens the schedule's issue, or comments on the one open; a success closes it,
// with a comment. It runs under the report's claim (one bot per build), and under the
// schedule's Telling mark (one build per schedule at a time); a build told before (its
// job in the state's Reported) is not told again. The issue recorded is acted on only if
// it is still the bot's own issue of the schedule (the repository may have been created
// again, its numbers another's issues or pull requests).
func (p *Pipeline) told(ctx context.Context, log *slog.Logger, f forge.Forge, repo forge.Repo, entry *registry.Repo, b *orchestrator.Build, s forge.Status) error {
	if p.cfg.Schedules == nil || b.Schedule == "" || s.State == forge.StatePending {
		return nil
	}
	cloneURL, name := b.Meta["REPO_URL"], b.Schedule
	st, told, err := p.tellMark(ctx, cloneURL, name, b.ID)
	if err != nil || told {
		return err
	}
	issue, failing, err := p.tell(ctx, log, f, repo, entry, b, s, st)
	// What was done on the forge is recorded even if the report's time is up: an issue
	// opened and not recorded would be opened again.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	_, uerr := p.cfg.Schedules.UpdateScheduleState(wctx, cloneURL, name, func(st *registry.ScheduleState) bool {
		mine := st.Telling == b.ID || st.Telling == ""
		if st.Telling == b.ID {
			st.Telling, st.TellingAt = "", time.Time{}
		}
		if err != nil || !mine {
			// The mark only: the issue is told of the next result; or the mark was
			// another's by now (this one held it past its lease), whose word stands.
			return true
		}
		st.Issue, st.Failing, st.Result = issue, failing, string(s.State)
		st.Reported = append(st.Reported, b.ID)
		if len(st.Reported) > 20 {
			st.Reported = st.Reported[len(st.Reported)-20:]
		}
		return true
	})
	return errors.Join(err, uerr)
}

// tellMark sets the schedule's Telling mark to build id, waiting up to tellLease for
// another build's; told is true when id was told already. It returns the state as marked.
func (p *Pipeline) tellMark(ctx context.Context, cloneURL, name, id string) (st registry.ScheduleState, told bool, err error) {
	deadline := time.Now().Add(tellLease)
	for {
		busy := false
		st, err = p.cfg.Schedules.UpdateScheduleState(ctx, cloneURL, name, func(st *registry.ScheduleState) bool {
			told = slices.Contains(st.Reported, id)
			busy = st.Telling != "" && st.Telling != id && time.Since(st.TellingAt) < tellLease
			if told || busy {
				return false
			}
			st.Telling, st.TellingAt = id, time.Now().UTC()
			return true
		})
		if err != nil || told || !busy {
			return st, told, err
		}
		if time.Now().After(deadline) {
			return st, false, fmt.Errorf("schedule %s of %s: another build's result is being told", name, cloneURL)
		}
		select {
		case <-ctx.Done():
			return st, false, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// ownIssue reports whether issue number of repo is still the bot's issue of the schedule
// name, and open: opened by the bot's account, titled for the schedule, not a pull request.
// A number that is none of these is forgotten.
func ownIssue(ctx context.Context, f forge.Forge, repo forge.Repo, number int64, name string) (open, own bool, err error) {
	is, err := f.Issue(ctx, repo, number)
	if errors.Is(err, forge.ErrNotFound) {
		return false, false, nil
	}
	if err != nil {
		return false, false, err
	}
	me, err := f.Me(ctx)
	if err != nil {
		return false, false, err
	}
	// A number answered by another issue is one moved (GitHub follows a transfer).
	own = is.Number == number && !is.PullRequest && strings.EqualFold(is.Author, me) && is.Title == scheduleIssueTitle(name)
	return is.Open && own, own, nil
}

// tell acts on the forge for told, from the schedule's state st, and returns the issue and
// whether the schedule is failing, to be recorded.
func (p *Pipeline) tell(ctx context.Context, log *slog.Logger, f forge.Forge, repo forge.Repo, entry *registry.Repo, b *orchestrator.Build, s forge.Status, st registry.ScheduleState) (int64, bool, error) {
	name := b.Schedule
	what := fmt.Sprintf("%s of branch `%s`, flavor `%s`", p.commitLink(repo, b.Meta["COMMIT"]), b.Meta["BRANCH"], b.Meta["FLAVOR"])
	for _, sc := range entry.Schedules {
		if sc.Name == name {
			tz := sc.TZ
			if tz == "" {
				tz = "UTC"
			}
			what += fmt.Sprintf(" (cron `%s`, %s)", sc.Cron, tz)
		}
	}
	failed := s.State == forge.StateFailure || s.State == forge.StateError
	issue, failing := st.Issue, st.Failing
	open := false
	if issue != 0 && failing {
		var own bool
		var err error
		if open, own, err = ownIssue(ctx, f, repo, issue, name); err != nil {
			return st.Issue, st.Failing, err
		}
		if !own {
			log.Warn("the schedule's issue recorded is not the bot's issue of it: forgotten", "schedule", name, "issue", issue)
			issue, failing = 0, false
		}
	}
	switch {
	case failed && open:
		body := fmt.Sprintf("Failed again: %s, %s.\n\n%s: [its log](%s)", what, s.Description, s.State, s.TargetURL)
		if _, err := f.CreateComment(ctx, repo, issue, body); err != nil {
			return st.Issue, st.Failing, err
		}
	case failed:
		// None yet, or closed by someone (or deleted) while still failing: a new one.
		body := fmt.Sprintf("The scheduled build **%s** failed: %s, %s.\n\n%s: [its log](%s)\n\nAlbatros comments here when it fails again, and closes this issue when the schedule builds green.",
			name, what, s.Description, s.State, s.TargetURL)
		n, err := f.OpenIssue(ctx, repo, scheduleIssueTitle(name), body)
		if err != nil {
			return st.Issue, st.Failing, err
		}
		issue, failing = n, true
		log.Info("schedule failing: issue opened", "schedule", name, "issue", n)
	case open:
		body := fmt.Sprintf("Green again: %s.\n\n[Its log](%s). Closing.", what, s.TargetURL)
		if _, err := f.CreateComment(ctx, repo, issue, body); err != nil {
			return st.Issue, st.Failing, err
		}
		if err := f.CloseIssue(ctx, repo, issue); err != nil {
			return st.Issue, st.Failing, err
		}
		failing = false
		log.Info("schedule green again: issue closed", "schedule", name, "issue", issue)
	default:
		failing = false // green, and its issue closed by someone meanwhile (or none)
	}
	return issue, failing, nil
}
