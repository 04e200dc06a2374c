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
	"github.com/albatros-ci/albatros/secrets"
)

// ReconciledDescription is the pending status of a build the reconciler started.
const ReconciledDescription = "queued in Nomad (found by the reconciler: its delivery never arrived)"

// NomadDownDescription is the status of a commit whose delivery came while Nomad could not
// be reached: nothing was built, and the reconciler builds it once Nomad is back.
const NomadDownDescription = "not built: Nomad was unreachable (the reconciler builds it once Nomad is back)"

// Unavailable says, in the statuses of ev's commit, that nothing was built because Nomad
// could not be reached (cause); events that build nothing are left alone.
func (p *Pipeline) Unavailable(ctx context.Context, log *slog.Logger, ev forge.Event, entry *registry.Repo, opts Options, cause error) error {
	if ev.Kind != forge.KindPush && ev.Kind != forge.KindTag && ev.Kind != forge.KindPullRequest {
		return nil
	}
	f, repo, err := p.cfg.Forge(entry, ev.Repo.CloneURL)
	if err != nil {
		return fmt.Errorf("forge for %s: %w", ev.Repo.CloneURL, err)
	}
	flavors := p.flavors(entry)
	if opts.Flavor != "" {
		flavors = []string{opts.Flavor}
	}
	why := "(not shown: the repository's secrets could not be opened to mask it)"
	if mask, err := entry.SecretValues(); err == nil {
		why = secrets.MaskString(cause.Error(), mask)
	}
	log.Warn("nothing built: nomad unreachable", "commit", ev.Commit, "err", why)
	var errs []error
	for _, fl := range flavors {
		if !ValidFlavor(fl) {
			continue
		}
		errs = append(errs, f.SetStatus(ctx, forge.Status{Repo: repo, Commit: ev.Commit, Context: StatusContext(fl), State: forge.StateError, Description: NomadDownDescription}))
	}
	return errors.Join(errs...)
}

// ReconcileOptions bound a reconciliation pass.
type ReconcileOptions struct {
	// MaxBuilds bounds the builds a pass starts (20 when 0): the next pass finds the rest.
	MaxBuilds int
	// MaxPullRequests bounds the open pull requests read per repository, the most recently
	// updated first (50 when 0).
	MaxPullRequests int
	// Window is how old a head may be and still be built (72 h when 0): a delivery goes
	// missing now, and a repository's heads from before it used Albatros are not its to
	// build.
	Window time.Duration
	// BranchWindow is how recent a branch's head commit must be for the reconciler to look
	// at it, besides the default branch (24 h when 0); MaxBranchPages bounds the pages of
	// the forge's listing of branches read per repository and pass (5 when 0).
	BranchWindow   time.Duration
	MaxBranchPages int
	// Settled, when set, is a time before which every delivery the bot accepted has been
	// handled (webhook.Intake.Settled). A head found with no build is then built only once
	// every delivery accepted until Grace after it was first found so has been handled:
	// until then its delivery may be on its way or waiting its turn, and the head is left
	// to a later pass (Deferred) rather than built twice (once without the secrets its
	// pusher's delivery may give it). The time it was first found stays put, so a queue
	// that is never empty delays a head by its backlog, not for ever.
	Settled func() time.Time
	// Grace is how long after a head is first found without a build its delivery may
	// still arrive (10 s when 0; only with Settled).
	Grace time.Duration
	// Reserve is the part of a forge's request budget (forge.Limits: GitHub's rate limit)
	// the reconciler leaves to deliveries and reports (200 when 0): a repository whose
	// client has no more left is skipped, and the pass is said to be cut short.
	Reserve int
}

// ReconcileStats say what a pass did.
type ReconcileStats struct {
	// Repositories were looked at; Heads is how many heads (default branch, recent
	// branches, open pull requests) were compared with their statuses; Found how many had
	// neither a status nor a build, and were built.
	Repositories, Heads, Found int
	// Deferred is how many heads without a build were left to the next pass, deliveries
	// accepted before the pass still waiting their turn (ReconcileOptions.Settled).
	Deferred int
	// Truncated names the repositories whose recent branches were more than the pages
	// read: the next pass reads the same first pages.
	Truncated []string
	// Limited names the repositories skipped, or left part-way, because their forge's
	// request budget was down to ReconcileOptions.Reserve.
	Limited []string
}

// Reconcile is the safety net for deliveries that never arrived (the bot was down, the
// network cut): for each repository, the head of its default branch and of each open pull
// request that has no Albatros status in any of its flavors and no build in Nomad is built,
// its pending status saying the reconciler found it; so is one whose status is pending for
// a build that is no build of the bot's (any more). Who pushed it is unknown, so it runs
// without the secrets unless its commit is recorded as trusted, or it is a trusted owner's
// fork's (see trustedCode). A head
// whose status is pending for a build that has ended gets the build's final status (a
// report given up on while the forge was down). Besides the default branch, it looks at
// every branch whose head commit is dated within opts.BranchWindow (the forge lists them
// newest first). It returns what it did.
//
// The repositories are named by their clone URL and, for those of an installed
// organization, the id of their owner as the forge listed them: an installation builds
// only the repositories of the organization it is bound to (registry.Repo.Blocked).
func (p *Pipeline) Reconcile(ctx context.Context, log *slog.Logger, repos []forge.Repo, opts ReconcileOptions) (ReconcileStats, error) {
	if opts.MaxBuilds <= 0 {
		opts.MaxBuilds = 20
	}
	if opts.MaxPullRequests <= 0 {
		opts.MaxPullRequests = 50
	}
	if opts.Window <= 0 {
		opts.Window = 72 * time.Hour
	}
	if opts.BranchWindow <= 0 {
		opts.BranchWindow = 24 * time.Hour
	}
	if opts.MaxBranchPages <= 0 {
		opts.MaxBranchPages = 5
	}
	if opts.Grace <= 0 {
		opts.Grace = 10 * time.Second
	}
	if opts.Reserve <= 0 {
		opts.Reserve = 200
	}
	var st ReconcileStats
	var errs []error
	begun := time.Now()
	defer p.reconcileSeen.prune(begun.Add(-time.Hour))
	// A pass starts after the repository where the last one ran out of builds: one with
	// many heads to build does not starve those after it, pass after pass.
	repos = p.reconcileCursor.rotate(repos)
	for _, target := range repos {
		if ctx.Err() != nil {
			break
		}
		if st.Found >= opts.MaxBuilds {
			log.Info("reconciler: builds left to the next pass", "max", opts.MaxBuilds, "next from", target.CloneURL)
			p.reconcileCursor.set(target.CloneURL)
			break
		}
		st.Repositories++
		if err := p.reconcileRepo(ctx, log, target, opts, &st); err != nil {
			errs = append(errs, fmt.Errorf("reconcile %s: %w", target.CloneURL, err))
		}
	}
	return st, errors.Join(errs...)
}

func (p *Pipeline) reconcileRepo(ctx context.Context, log *slog.Logger, target forge.Repo, opts ReconcileOptions, st *ReconcileStats) error {
	budget := opts.MaxBuilds - st.Found
	cloneURL := target.CloneURL
	entry, err := p.cfg.Repos.Repo(ctx, cloneURL)
	if err != nil {
		return err
	}
	if why := entry.Blocked(target.OwnerID); why != "" {
		log.Warn("reconciler: repository not built", "repo", cloneURL, "why", why)
		return nil
	}
	f, repo, err := p.cfg.Forge(entry, cloneURL)
	if err != nil {
		return err
	}
	repo.OwnerID = target.OwnerID
	if p.spent(log, f, repo, opts, st) {
		return nil
	}
	heads := forge.Heads(f)
	now := time.Now()
	var events []forge.Event
	branch, commit, date, err := heads.DefaultHead(ctx, repo)
	if errors.Is(err, forge.ErrUnsupported) {
		log.Debug("reconciler: the forge cannot list heads", "repo", cloneURL)
		return nil
	}
	if err != nil {
		return err
	}
	if commit != "" && now.Sub(date) < opts.Window {
		events = append(events, forge.Event{Kind: forge.KindPush, Repo: repo, Commit: commit, Branch: branch})
	}
	prs, err := heads.OpenPullRequests(ctx, repo, opts.MaxPullRequests)
	if err != nil {
		return err
	}
	for _, pr := range prs {
		if now.Sub(pr.Updated) < opts.Window {
			events = append(events, forge.Event{Kind: forge.KindPullRequest, Repo: repo, Commit: pr.Head, Branch: pr.HeadBranch, PullRequest: &pr.PullRequest})
		}
	}
	// The recent branches come after the pull requests: a same-repository pull request's
	// head branch is built as the pull request (its meta, its comment, its trust).
	branches, truncated, err := heads.RecentBranches(ctx, repo, now.Add(-opts.BranchWindow), opts.MaxBranchPages)
	if err != nil {
		log.Warn("reconciler: recent branches not listed", "repo", repo.FullName, "err", err)
	}
	if truncated {
		// Newest first: the next pass reads the same pages, and a push older than them,
		// yet within the window, waits until they age out of it.
		log.Warn("reconciler: more recent branches than the pages read", "repo", repo.FullName, "pages", opts.MaxBranchPages)
		st.Truncated = append(st.Truncated, repo.FullName)
	}
	firstBranch := len(events)
	for _, b := range branches {
		if b.Name != branch && b.Commit != "" {
			events = append(events, forge.Event{Kind: forge.KindPush, Repo: repo, Commit: b.Commit, Branch: b.Name})
		}
	}
	if len(events) == 0 {
		return nil
	}
	all, err := p.cfg.Builds.Recent(ctx, cloneURL, 1000)
	if err != nil {
		return err
	}
	built := map[string]bool{}
	for _, s := range all {
		if s.Meta["REPO_URL"] == cloneURL {
			built[s.Meta["COMMIT"]] = true
		}
	}
	started := 0
	var errs []error
	for i, ev := range events {
		if started >= budget {
			break
		}
		if p.spent(log, f, repo, opts, st) {
			break
		}
		st.Heads++
		if i >= firstBranch && built[ev.Commit] {
			// A recent branch whose head was built (on another branch, or as a pull
			// request): its statuses are read where it was built.
			continue
		}
		if err := ev.Validate(); err != nil {
			log.Warn("reconciler: head not built", "repo", repo.FullName, "commit", ev.Commit, "err", err)
			continue
		}
		n, deferred, err := p.reconcileHead(ctx, log, ev, entry, f, repo, built[ev.Commit], opts)
		started += n
		if deferred {
			st.Deferred++
		}
		if n > 0 {
			built[ev.Commit] = true // another event of the commit (a branch and a pull request) is not built twice
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	st.Found += started
	return errors.Join(errs...)
}

// spent reports whether f's request budget is down to the reserve, and then records and
// logs that the pass leaves repo, with when the budget resets: the next pass after it
// takes the repository up again.
func (p *Pipeline) spent(log *slog.Logger, f forge.Forge, repo forge.Repo, opts ReconcileOptions, st *ReconcileStats) bool {
	left, reset, ok := f.Budget()
	if !ok || left > opts.Reserve {
		return false
	}
	if !slices.Contains(st.Limited, repo.FullName) {
		st.Limited = append(st.Limited, repo.FullName)
		log.Warn("reconciler: pass cut short for a repository: the forge's rate limit is nearly spent", "repo", repo.FullName, "left", left, "reserve", opts.Reserve, "resets", reset.UTC().Format(time.RFC3339))
	}
	return true
}

// reconcileHead builds ev's head when it has neither an Albatros status nor a build, and
// reports the ended builds its pending statuses link to.
//
// A head that has neither is left to a later pass (deferred) while its delivery may still
// be on its way or waiting its turn (see ReconcileOptions.Settled).
func (p *Pipeline) reconcileHead(ctx context.Context, log *slog.Logger, ev forge.Event, entry *registry.Repo, f forge.Forge, repo forge.Repo, built bool, opts ReconcileOptions) (n int, deferred bool, err error) {
	seen := built
	{
		for _, fl := range p.flavors(entry) {
			cur, found, err := f.LatestStatus(ctx, repo, ev.Commit, StatusContext(fl))
			if errors.Is(err, forge.ErrUnsupported) {
				break // a forge that cannot read statuses back: the builds alone say
			}
			if err != nil {
				return 0, false, err // the forge is in trouble: the next pass tries again
			}
			if !found || (cur.State == forge.StateError && cur.Description == NomadDownDescription) {
				continue
			}
			if cur.State == forge.StatePending && !p.reportIfLinkedEnded(ctx, log, cur.TargetURL) {
				// Pending for a build that is no build of the bot's (Nomad collected it,
				// or its record was lost with a bot that died while Consul was down): the
				// head is built again, rather than left pending forever.
				continue
			}
			seen = true
		}
	}
	if seen {
		return 0, false, nil
	}
	log = log.With("repo", repo.FullName, "commit", ev.Commit, "trigger", ev.Trigger())
	if opts.Settled != nil {
		first := p.reconcileSeen.first(ev.Repo.CloneURL+"\x00"+ev.Trigger()+"\x00"+ev.Commit, time.Now())
		if due := first.Add(opts.Grace); time.Now().Before(due) || opts.Settled().Before(due) {
			log.Info("reconciler: a head without status or build, whose delivery may still be on its way or waiting its turn: left to a later pass", "first found", first)
			p.cfg.Observe.Reconciled(FindingDeferred)
			return 0, true, nil
		}
	}
	log.Info("reconciler: a head without status or build: building it")
	p.cfg.Observe.Reconciled(FindingUnbuiltHead)
	d, err := p.build(ctx, log, ev, entry, f, repo, Options{Reconciled: true})
	if ev.PullRequest != nil {
		err = errors.Join(err, p.converse(ctx, log, f, repo, entry, ev.PullRequest.Number))
	}
	for _, x := range d {
		if !x.Duplicate {
			n++
		}
	}
	return n, false, err
}

// reportIfLinkedEnded reports the build a pending status links to, if it has ended. It
// returns false only when the status links to a build of this bot's that does not exist
// (any more), or that is not the bot's: nothing will ever end it.
func (p *Pipeline) reportIfLinkedEnded(ctx context.Context, log *slog.Logger, targetURL string) bool {
	path, ok := strings.CutPrefix(targetURL, p.cfg.BaseURL)
	if !ok {
		return true
	}
	ns, id, ok := orchestrator.ParseLogPath(path)
	if !ok {
		return true
	}
	if _, err := p.cfg.Builds.Build(ctx, ns, id); errors.Is(err, orchestrator.ErrNotFound) {
		log.Info("reconciler: a pending status of a build that is not there", "job", id, "err", err)
		p.cfg.Observe.Reconciled(FindingMissingBuild)
		return false
	} else if err != nil {
		return true
	}
	out, done, err := p.cfg.Builds.Outcome(ctx, ns, id)
	if err != nil || !done {
		return true
	}
	log.Info("reconciler: a pending status of a build that has ended", "job", id)
	p.cfg.Observe.Reconciled(FindingEndedBuild)
	if err := p.Report(ctx, log, out); err != nil {
		log.Warn("reconciler: build result not reported", "job", id, "err", err)
	}
	return true
}

// reconcileCursor is where the next reconciliation pass starts: after the repository where
// the last one ran out of builds. Passes run one at a time (the leader's), but it is safe
// for concurrent use.
type reconcileCursor struct {
	mu   sync.Mutex
	from string // a clone URL; "" starts at the first
}

// set makes the next pass start at cloneURL.
func (c *reconcileCursor) set(cloneURL string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.from = cloneURL
}

// rotate returns repos (sorted by clone URL) from the cursor on, then those before it,
// and resets the cursor.
func (c *reconcileCursor) rotate(repos []forge.Repo) []forge.Repo {
	c.mu.Lock()
	from := c.from
	c.from = ""
	c.mu.Unlock()
	if from == "" {
		return repos
	}
	i := slices.IndexFunc(repos, func(r forge.Repo) bool { return r.CloneURL >= from })
	if i <= 0 {
		return repos
	}
	return append(slices.Clone(repos[i:]), repos[:i]...)
}

// reconcileSeen remembers when each head was first found without a build (see
// ReconcileOptions.Settled), and when last, to forget those no pass finds any more.
type reconcileSeen struct {
	mu sync.Mutex
	m  map[string][2]time.Time // first, last
}

// first returns when key was first found, now if never before.
func (s *reconcileSeen) first(key string, now time.Time) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string][2]time.Time{}
	}
	t, ok := s.m[key]
	if !ok {
		t[0] = now
	}
	t[1] = now
	s.m[key] = t
	return t[0]
}

// prune forgets the heads last found before then.
func (s *reconcileSeen) prune(before time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, t := range s.m {
		if t[1].Before(before) {
			delete(s.m, k)
		}
	}
}
