package pipeline

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/albatros-ci/albatros/archive"
	"github.com/albatros-ci/albatros/forge"
	"github.com/albatros-ci/albatros/orchestrator"
	"github.com/albatros-ci/albatros/registry"
	"github.com/albatros-ci/albatros/secrets"
)

// repos is the registry as the pipeline uses it.
type repos interface {
	Repo(ctx context.Context, cloneURL string) (*registry.Repo, error)
}

// builds is the orchestrator as the pipeline uses it.
type builds interface {
	Dispatch(ctx context.Context, req orchestrator.DispatchRequest) (orchestrator.Dispatched, error)
	Build(ctx context.Context, ns, id string) (*orchestrator.Build, error)
	Outcome(ctx context.Context, ns, id string) (orchestrator.Outcome, bool, error)
	Recent(ctx context.Context, repoPrefix string, limit int) ([]orchestrator.Summary, error)
	Stop(ctx context.Context, ns, id string) error
	ByKey(ctx context.Context, b orchestrator.Builder, key string) (orchestrator.Dispatched, bool, error)
	Discard(ctx context.Context, ns, id string) error
	Follow(ctx context.Context, ns, jobID, logType string, w io.Writer) (orchestrator.Outcome, error)
}

// archiver is the archive of finished builds as the pipeline uses it.
type archiver interface {
	// Write archives a build once; written is false when it was already.
	Write(ctx context.Context, rec archive.Record, logs archive.Logs) (written bool, err error)
	List(ctx context.Context, q archive.Query) (archive.Page, error)
}

// claims is the coordination of the bots in Consul as the pipeline uses it (see
// registry.Coordination): the build keys' claims (registry.Dedup) and the lines' records
// of their newest builds (registry.Line), and the settlement of a claim with its line's
// record in one write.
type claims interface {
	Claim(ctx context.Context, key string) (registry.Dedup, bool, error)
	Settle(ctx context.Context, key, ns, jobID string) error
	Release(ctx context.Context, key string) error
	// Claimed reports whether any of keys is claimed or settled.
	Claimed(ctx context.Context, keys ...string) (bool, error)
	SwapLine(ctx context.Context, line string, next registry.Line) (registry.Line, bool, error)
	// SettleLine settles key's claim and swaps line's record in one write.
	SettleLine(ctx context.Context, key, ns, jobID, line string, next registry.Line) (registry.Line, bool, error)
}

// locks is the registry's locks, as the pipeline uses them (a lock per pull request).
type locks interface {
	Lock(ctx context.Context, name string) (unlock func(), ok bool, err error)
}

// ForgeFor returns the forge client for a registered repository, and the repository as that
// forge names it.
type ForgeFor func(entry *registry.Repo, cloneURL string) (forge.Forge, forge.Repo, error)

// Config is what a pipeline is made of.
type Config struct {
	Repos  repos
	Builds builds
	Forge  ForgeFor
	// BaseURL is the bot's public URL, for the links in statuses.
	BaseURL string
	// Builder is the default builder; a repository may name its own.
	Builder orchestrator.Builder
	// Untrusted, when set, is the builder of code not trusted (forks, strangers): the
	// default builder registered in another namespace, maybe on other nodes and another
	// network, so that fork code never runs beside the builds that get secrets. It takes
	// the place of the default builder and of an installed organization's choice; a
	// hand-written entry's builder is kept.
	Untrusted *orchestrator.Builder
	// Locks serialize the bots writing one pull request's comment (nil: one bot).
	Locks locks
	// Claims, when set, are asked before every dispatch and report: a build key already
	// dispatched (by this bot or another) is found there, without asking Nomad to scan its
	// children, and each report is written by one bot; and they record the newest build
	// of each branch or pull request and flavor, so that a new build finds the one it
	// supersedes without listing Nomad's builds. Without them (one bot), every dispatch
	// and report is this bot's, and the builds are listed.
	Claims claims
	// Log receives what the claims' protocol tolerates (a settlement or release that
	// failed: the claim then goes stale before another bot takes it over); nil discards.
	Log *slog.Logger
	// Trust records the commits whose code the bot judged trusted: a pull request between
	// branches of the repository gets the secrets only for those (nil: never).
	Trust trust
	// Archive, when set, keeps every build that ends (its record and masked logs) before
	// its final status is written, and the pull requests' comments show the builds that
	// Nomad has collected from it.
	Archive archiver
	// History, when set, is the page of a pull request's builds on the bot (the history
	// page filtered to it), linked from its comment; "" for none.
	History func(cloneURL string, pr int64) string
	// BuilderNamespaces are where the builder of an installed organization's repository
	// (chosen by its owners on the settings page) may come from; a per-repository entry,
	// written by the operator, may name any.
	BuilderNamespaces []string
	// Observe is told what the pipeline does, for the bot's metrics (nil: nobody).
	Observe Observer
	// Schedules, when set, records the repositories' schedules: the slots built, and the
	// issues their failures opened (nil: no schedule runs, and none is told).
	Schedules scheduleStates
}

// Observer is told what the pipeline does, for the bot's metrics. Its methods must be
// quick and safe for concurrent use.
type Observer interface {
	// Dispatched is a dispatch asked of Nomad, which took took and failed with err (nil:
	// made, or found made before).
	Dispatched(took time.Duration, err error)
	// Reported is a final status (success, failure, error) this bot wrote.
	Reported(flavor, state string)
	// ReportRetried is a report tried again; ReportGivenUp one left to the reconciler.
	ReportRetried()
	ReportGivenUp()
	// Reconciled is a finding of the reconciler (one of the Finding… constants).
	Reconciled(finding string)
	// Archived is a write to the archive: written, already written (false), or failed.
	Archived(written bool, err error)
}

// The reconciler's findings, as told to Observer.Reconciled.
const (
	FindingUnbuiltHead  = "unbuilt_head"  // a head without status or build: built
	FindingDeferred     = "deferred"      // one whose delivery may be on its way: left to a later pass
	FindingMissingBuild = "missing_build" // a pending status of a build that is not there
	FindingEndedBuild   = "ended_build"   // a pending status of a build that has ended: reported
)

// unobserved is the Observer of a pipeline that has none.
type unobserved struct{}

func (unobserved) Dispatched(time.Duration, error) {}
func (unobserved) Reported(string, string)         {}
func (unobserved) ReportRetried()                  {}
func (unobserved) ReportGivenUp()                  {}
func (unobserved) Reconciled(string)               {}
func (unobserved) Archived(bool, error)            {}

// Pipeline turns events into builds and outcomes into statuses.
type Pipeline struct {
	cfg      Config
	protocol *protocol
	logins   logins
	// strangers bounds the replies to refused commands.
	strangers strangers
	// reconcileCursor is where the next reconciliation pass starts; reconcileSeen when
	// each head was first found without a build.
	reconcileCursor reconcileCursor
	reconcileSeen   reconcileSeen
	// slotsDone are the schedules' slots this bot saw done.
	slotsDone slotsDone
}

// New returns a pipeline.
func New(cfg Config) *Pipeline {
	cfg.BaseURL = strings.TrimSuffix(cfg.BaseURL, "/")
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Observe == nil {
		cfg.Observe = unobserved{}
	}
	p := &Pipeline{cfg: cfg, protocol: &protocol{builds: cfg.Builds, log: cfg.Log, observe: cfg.Observe}}
	if cfg.Claims != nil {
		p.protocol.claims = cfg.Claims
	}
	return p
}

// SecretsUnreadableDescription is the status of an event not built because the
// repository's secrets could not be opened (the bot's sealing key does not open them):
// nothing could be masked, and nothing is said of them.
const SecretsUnreadableDescription = "not built: the repository's secrets could not be opened"

// DefaultFlavor is the flavor of a repository that names none.
const DefaultFlavor = "default"

// StatusContext is the commit status context of a flavor's builds.
func StatusContext(flavor string) string { return "albatros/" + flavor }

// contextOf is the status context of a build of flavor asked with opts.
func contextOf(flavor string, opts Options) string {
	if opts.Started != nil {
		return StartedContext(flavor, opts.Started.Cause)
	}
	return StatusContext(flavor)
}

// Options are what a delivery's URL and authentication add to its event.
type Options struct {
	// Flavor, when set, builds this one flavor instead of the entry's (the original
	// /hook?flavor=; the webhook checks it against the entry before).
	Flavor string
	// NoSecrets withholds the secrets whatever the event says: the delivery's sender could
	// not be proven (a /hook?token= delivery, when the bot is set to refuse those secrets).
	NoSecrets bool
	// Unsigned says the delivery was not signed (a /hook?token= delivery): what it says of
	// who commented or closed a pull request is not believed, and such events are refused.
	Unsigned bool
	// Approved gives the secrets to the builds of this exact commit: a maintainer's
	// /approve of it.
	Approved bool
	// Again names a request to build what was built before (a /rebuild comment, an
	// approval): a new build, once per request.
	Again string
	// Reconciled says the reconciler found the event (its delivery never arrived); the
	// pending status says so.
	Reconciled bool
	// By is who asked for the build, when not the event's sender: the author of a
	// /rebuild or /approve comment.
	By string
	// Started, when set, makes the build one no push starts (Start): its flavor, key,
	// trust, meta and status context are its own.
	Started *Started
}

// flavorRE is what a flavor may be: it becomes a status context and the FLAVOR variable of
// the builder's shell.
var flavorRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ValidFlavor reports whether name may be a flavor.
func ValidFlavor(name string) bool {
	return flavorRE.MatchString(name) && !strings.Contains(name, "..")
}

// Handle starts the builds of an event on a registered repository: one per flavor
// (opts.Flavor, else the entry's flavors, else "default"), each with a pending status linking
// to its log page. Secrets go only to builds of code from a trusted source (see
// trustedCode). Delivering the same event again starts nothing new. It returns the builds,
// in flavor order.
//
// A comment on a pull request runs its commands (see comment), a closed pull request stops
// its builds (see closed); a pull request's builds are shown in its conversation comment.
func (p *Pipeline) Handle(ctx context.Context, log *slog.Logger, ev forge.Event, entry *registry.Repo, opts Options) ([]orchestrator.Dispatched, error) {
	f, repo, err := p.cfg.Forge(entry, ev.Repo.CloneURL)
	if err != nil {
		return nil, fmt.Errorf("forge for %s: %w", ev.Repo.CloneURL, err)
	}
	if why := entry.Blocked(ev.Repo.OwnerID); why != "" {
		return nil, fmt.Errorf("%s: nothing done: %s", ev.Repo.CloneURL, why)
	}
	if opts.Unsigned && (ev.Kind == forge.KindComment || ev.Kind == forge.KindPullRequestClosed) {
		return nil, fmt.Errorf("%s of %s in an unsigned delivery: refused (who wrote it cannot be proven)", ev.Kind, ev.Repo.CloneURL)
	}
	switch ev.Kind {
	case forge.KindComment:
		return p.comment(ctx, log, ev, entry, f, repo, opts)
	case forge.KindPullRequestClosed:
		return nil, p.closed(ctx, log, ev, entry, f, repo)
	}
	out, err := p.build(ctx, log, ev, entry, f, repo, opts)
	if ev.PullRequest != nil {
		err = errors.Join(err, p.converse(ctx, log, f, repo, entry, ev.PullRequest.Number))
	}
	return out, err
}

// build dispatches the builds of an event (see Handle).
func (p *Pipeline) build(ctx context.Context, log *slog.Logger, ev forge.Event, entry *registry.Repo, f forge.Forge, repo forge.Repo, opts Options) ([]orchestrator.Dispatched, error) {
	if why := entry.Blocked(ev.Repo.OwnerID); why != "" {
		return nil, fmt.Errorf("%s: not built: %s", ev.Repo.CloneURL, why)
	}
	var err error
	flavors := entry.Flavors
	if opts.Flavor != "" {
		flavors = []string{opts.Flavor}
	}
	started := opts.Started
	if started != nil {
		flavors = []string{started.Flavor}
	}
	if len(flavors) == 0 {
		flavors = []string{DefaultFlavor}
	}
	builder := p.cfg.Builder
	if b := entry.Builder; b != nil && b.Job != "" {
		builder = orchestrator.Builder{Job: b.Job, Namespace: b.Namespace}
		if builder.Namespace == "" {
			builder.Namespace = p.cfg.Builder.Namespace
		}
	}
	if entry.Installed && !slices.Contains(p.cfg.BuilderNamespaces, builder.Namespace) {
		err := fmt.Errorf("builder %s: its namespace is not one this bot lets organizations use", builder)
		for _, fl := range flavors {
			if serr := f.SetStatus(ctx, forge.Status{Repo: repo, Commit: ev.Commit, Context: contextOf(fl, opts), State: forge.StateError, Description: err.Error()}); serr != nil {
				err = errors.Join(err, serr)
			}
		}
		return nil, err
	}
	trusted, why := opts.Approved && !opts.NoSecrets, trustedApprove
	if started != nil {
		// Judged by the caller; nothing is recorded of the commit.
		trusted, why = started.Trusted, ""
	} else if !opts.NoSecrets && !trusted {
		if trusted, why, err = p.trustedCode(ctx, log, f, ev, entry); err != nil {
			// Fail closed: the build runs, without the secrets.
			trusted = false
			log.Warn("trust could not be checked: building without secrets", "err", err)
		}
	}
	if trusted && !opts.Unsigned {
		// What an unsigned delivery says of its sender is not proven: it may get the
		// secrets (ALBATROS_HOOK_TOKEN_SECRETS=allow), not vouch for the commit.
		p.recordTrust(ctx, log, ev, why)
	}
	if started == nil && ev.Kind == forge.KindPush && ev.PullRequest == nil && opts.Again == "" {
		// Every push of a branch, the reconciler's finds too (their pusher unknown, so not
		// trusted): the branch's schedules go by its last push.
		p.recordHead(ctx, log, ev, trusted && !opts.Unsigned)
	}
	// The bot's own log is masked with the repository's secrets; what the forge shows only
	// with those the build gets (a build without them has none to leak, and masking its
	// words with them would tell a build whether its guess of one is right).
	mask, err := entry.SecretValues()
	if err != nil {
		err = fmt.Errorf("secrets of %s: %w", ev.Repo.CloneURL, err)
		for _, fl := range flavors {
			if !ValidFlavor(fl) {
				continue
			}
			status := forge.Status{Repo: repo, Commit: ev.Commit, Context: contextOf(fl, opts), State: forge.StateError, Description: SecretsUnreadableDescription}
			if serr := f.SetStatus(ctx, status); serr != nil {
				err = errors.Join(err, serr)
			}
		}
		return nil, err
	}
	payload, hasSecrets, shown := secrets.Empty(), false, []string(nil)
	if trusted && entry.HasSecrets() {
		plain, err := entry.OpenSecrets()
		if err == nil {
			payload, err = secrets.Payload(entry.Inject, plain)
		}
		if err != nil {
			return nil, fmt.Errorf("secrets of %s: %w", ev.Repo.CloneURL, err)
		}
		hasSecrets, shown = true, mask
	}
	log = log.With("commit", ev.Commit, "trigger", ev.Trigger(), "sender", ev.Sender, "trusted", trusted)
	// Code not trusted runs apart (Untrusted): on the default builder's twin, also when an
	// installed organization chose another builder (its owners choose among the operator's
	// namespaces, not where fork code runs); a hand-written entry's builder is the
	// operator's choice, and kept.
	if !trusted && p.cfg.Untrusted != nil && (builder == p.cfg.Builder || entry.Installed) {
		builder = *p.cfg.Untrusted
	}

	var out []orchestrator.Dispatched
	var errs []error
	superseding := supersedes(ev, entry) && started == nil
	// The builds a new one may supersede, listed once, when line records cannot tell.
	listRecent := sync.OnceValue(func() []orchestrator.Summary {
		recent, err := p.cfg.Builds.Recent(ctx, ev.Repo.CloneURL, 200)
		if err != nil {
			log.Warn("older builds not superseded: they could not be listed", "err", err)
		}
		return recent
	})
	if superseding && p.cfg.Claims == nil {
		listRecent() // before the dispatch: the new build is not among them
	}
	for _, fl := range flavors {
		status := forge.Status{Repo: repo, Commit: ev.Commit, Context: contextOf(fl, opts)}
		if !ValidFlavor(fl) {
			// From the registry entry; the forge refuses such a status context anyway.
			errs = append(errs, fmt.Errorf("flavor %q of %s is not a valid flavor name", fl, ev.Repo.CloneURL))
			continue
		}
		req := orchestrator.DispatchRequest{
			Builder:          builder,
			Meta:             meta(ev, fl),
			Payload:          payload,
			HasSecrets:       hasSecrets,
			IdempotencyToken: idempotencyToken(ev, fl, builder, hasSecrets, opts.Again),
			Cause:            cause(ev, opts),
			Sender:           cmp.Or(opts.By, ev.Sender),
			Holder:           entry.Holder(),
		}
		if started != nil {
			for k, v := range started.Params {
				if _, set := req.Meta[k]; !set && !slices.Contains(orchestrator.OptionalMeta, k) {
					req.Meta[k] = v // a parameter never stands for the contract's meta
				}
			}
			req.IdempotencyToken = startedToken(ev.Repo.CloneURL, *started)
			req.Cause, req.Sender, req.Schedule = started.Cause, started.By, started.Schedule
		}
		line := ""
		if superseding {
			line = lineOf(ev, fl)
		}
		d, swap, err := p.protocol.dispatch(ctx, req, line)
		if err == nil && d.Duplicate && started == nil {
			// A slot or a run is built once, even when its build was stopped.
			d, err = p.again(ctx, log, ev, f, repo, req, d)
			swap = nil
		}
		if err != nil {
			log.Error("dispatch failed", "flavor", fl, "builder", builder.String(), "err", secrets.MaskString(err.Error(), mask))
			status.State, status.Description = forge.StateError, secrets.MaskString(readable(err), shown)
			if unreachable(err) {
				// As if the delivery had found Nomad down: the reconciler builds it.
				status.Description = NomadDownDescription
			}
			if serr := f.SetStatus(ctx, status); serr != nil {
				err = errors.Join(err, serr)
			}
			errs = append(errs, err)
			continue
		}
		out = append(out, d)
		if d.Duplicate {
			log.Info("build already dispatched for this event", "flavor", fl, "job", d.JobID)
			continue
		}
		log.Info("build dispatched", "flavor", fl, "job", d.JobID, "namespace", d.Namespace)
		if superseding {
			older, ok := p.lineBefore(ctx, log, ev, fl, d, swap)
			if !ok {
				older = listRecent()
			}
			if err := p.supersede(ctx, log, f, repo, ev, fl, older, d, opts.Again != ""); err != nil {
				errs = append(errs, err)
			}
		}
		status.State, status.Description, status.TargetURL = forge.StatePending, "queued in Nomad", p.LogURL(d.Namespace, d.JobID)
		if opts.Reconciled {
			status.Description = ReconciledDescription
		}
		if err := f.SetStatus(ctx, status); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := p.reportIfEnded(ctx, log, d); err != nil {
			errs = append(errs, err)
		}
	}
	return out, errors.Join(errs...)
}

// again builds once more what a stopped build built, when a dispatch finds it by its
// token: the pull request was reopened on the same commit, or a branch pushed back to a
// commit whose build was superseded. Nomad's idempotency returns any job with the token
// that is not yet garbage-collected, stopped or not. The new token names the stopped build,
// so that a redelivery finds the new build in turn. A pull request's build is started only
// while the pull request is open.
func (p *Pipeline) again(ctx context.Context, log *slog.Logger, ev forge.Event, f forge.Forge, repo forge.Repo, req orchestrator.DispatchRequest, d orchestrator.Dispatched) (orchestrator.Dispatched, error) {
	for range 16 {
		b, err := p.cfg.Builds.Build(ctx, d.Namespace, d.JobID)
		if err != nil {
			if errors.Is(err, orchestrator.ErrNotFound) {
				return d, nil
			}
			return d, err
		}
		if !b.Stopped {
			return d, nil
		}
		if ev.PullRequest != nil {
			info, err := f.PullRequestInfo(ctx, repo, ev.PullRequest.Number)
			if errors.Is(err, forge.ErrUnsupported) {
				log.Warn("the build of this event was stopped, and the forge cannot say whether its pull request is still open at this head: not built again", "job", d.JobID)
				return d, nil
			}
			if err != nil {
				return d, fmt.Errorf("pull request %s#%d: %w", repo.FullName, ev.PullRequest.Number, err)
			}
			if !info.Open || info.Head != ev.Commit {
				return d, nil
			}
		}
		log.Info("the build of this event was stopped: building it again", "job", d.JobID)
		req.IdempotencyToken = chainToken(req.IdempotencyToken, d.JobID)
		if d, _, err = p.protocol.dispatch(ctx, req, ""); err != nil || !d.Duplicate {
			return d, err
		}
	}
	return d, nil
}

// chainToken is the token of the build that follows the stopped build job of token.
func chainToken(token, job string) string {
	h := sha256.Sum256([]byte(token + "\x00after\x00" + job))
	return "albatros-" + hex.EncodeToString(h[:])[:32]
}

// reportIfEnded reports a build that ended before its pending status was written. Report,
// called from the event stream, may have written the final status first; the pending
// status, newer, would then hide it. Checking after the pending write has completed means
// that whichever write lands last is the final one, also with several bots. With dedup
// records the check costs Nomad nothing: every final report claims its record before it
// writes, so no claim now means that any final status comes after the pending one; a claim
// means one may have come before, and the build's outcome is read and written again.
func (p *Pipeline) reportIfEnded(ctx context.Context, log *slog.Logger, d orchestrator.Dispatched) error {
	if p.cfg.Claims != nil {
		var keys []string
		for _, st := range []forge.State{forge.StateSuccess, forge.StateFailure, forge.StateError} {
			keys = append(keys, reportKey(d.Namespace, d.JobID, st))
		}
		claimed, err := p.cfg.Claims.Claimed(ctx, keys...)
		if err == nil && !claimed {
			return nil
		}
		if err != nil {
			log.Warn("report claims not read (Consul failing): asking Nomad whether the build ended", "job", d.JobID, "err", err)
		}
	}
	out, done, err := p.cfg.Builds.Outcome(ctx, d.Namespace, d.JobID)
	if err != nil || !done {
		return err
	}
	return p.report(ctx, log, out, true)
}

// DispatchOnce is the dispatch every build goes through (see dispatch), for benchmarks and
// tools that measure it apart from the forge.
func (p *Pipeline) DispatchOnce(ctx context.Context, req orchestrator.DispatchRequest) (orchestrator.Dispatched, error) {
	d, _, err := p.protocol.dispatch(ctx, req, "")
	return d, err
}

// cause is what started a build, for its record: the event's kind, or the command or the
// reconciler that asked for it.
func cause(ev forge.Event, opts Options) string {
	switch {
	case strings.HasPrefix(opts.Again, "rebuild:"):
		return "rebuild"
	case strings.HasPrefix(opts.Again, "approve:"):
		return "approve"
	case opts.Reconciled:
		return "reconciler"
	}
	return string(ev.Kind)
}

// meta is the dispatch meta of a build: the builder contract's four keys, plus TAG or PR.
func meta(ev forge.Event, flavor string) map[string]string {
	m := map[string]string{
		"REPO_URL": ev.Repo.CloneURL,
		"COMMIT":   ev.Commit,
		"BRANCH":   ev.Branch,
		"FLAVOR":   flavor,
	}
	if ev.Kind == forge.KindTag {
		m["TAG"] = ev.Tag
	}
	if ev.PullRequest != nil {
		m["PR"] = strconv.FormatInt(ev.PullRequest.Number, 10)
	}
	return m
}

// idempotencyToken identifies a build by what it builds and why, not by delivery: a
// redelivery of the same event, from the forge or from a second bot, maps to the same build.
// Whether the build gets the secrets is part of it: a build that ran without them (its
// sender's trust could not be checked, or it came through /hook with the token alone)
// does not stand for one that gets them.
func idempotencyToken(ev forge.Event, flavor string, b orchestrator.Builder, withSecrets bool, again string) string {
	secrets := "without-secrets"
	if withSecrets {
		secrets = "with-secrets"
	}
	h := sha256.New()
	for _, part := range []string{ev.Repo.CloneURL, ev.Commit, flavor, ev.Trigger(), b.String(), secrets, again} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	return "albatros-" + hex.EncodeToString(h.Sum(nil))[:32]
}

// LogURL is the page of a build's live log.
func (p *Pipeline) LogURL(ns, jobID string) string {
	return p.cfg.BaseURL + orchestrator.LogPath(ns, jobID)
}

// readable says, for a commit status, why a build could not start: a builder's own
// problem in full (it says what to fix), anything else by its last, most specific part.
// unreachable reports whether err is a failure to connect to Nomad at all: the request
// never reached it, so nothing was dispatched. (A connection broken after the request was
// sent may have dispatched the build: that is not this.)
func unreachable(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

func readable(err error) string {
	msg := err.Error()
	if errors.Is(err, orchestrator.ErrContract) || errors.Is(err, orchestrator.ErrNotFound) {
		return msg
	}
	if i := strings.LastIndex(msg, ": "); i >= 0 && len(msg)-i > 12 {
		msg = msg[i+2:]
	}
	return "could not start the build: " + msg
}

// keyedMutex locks per key; entries are dropped when no one holds or waits for them.
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*keyedLock
}

type keyedLock struct {
	sync.Mutex
	refs int
}

func (k *keyedMutex) lock(key string) (unlock func()) {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = map[string]*keyedLock{}
	}
	l := k.locks[key]
	if l == nil {
		l = &keyedLock{}
		k.locks[key] = l
	}
	l.refs++
	k.mu.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		k.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
}
