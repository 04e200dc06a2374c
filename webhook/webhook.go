// Package webhook receives forge deliveries over HTTP: it bounds and authenticates them
// (HMAC signature, or the original Albatros's URL token), parses them into forge events,
// answers at once, and hands the events to the pipeline on a detached, bounded context that
// shutdown waits for. Every refusal (bad signature or token, unknown repository, malformed
// or oversized body) is answered with its HTTP status before anything is dispatched or
// written to the forge.
package webhook

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/albatros-ci/albatros/commands"
	"github.com/albatros-ci/albatros/forge"
	"github.com/albatros-ci/albatros/forge/forges"
	"github.com/albatros-ci/albatros/orchestrator"
	"github.com/albatros-ci/albatros/pipeline"
	"github.com/albatros-ci/albatros/registry"
)

// DefaultReadBudget bounds the memory of the bodies being read before they are authenticated,
// all deliveries together: past it, a delivery is answered 503 before its body is read.
const DefaultReadBudget = 48 << 20

// repos is the registry as intake uses it.
type repos interface {
	Repo(ctx context.Context, cloneURL string) (*registry.Repo, error)
	Org(ctx context.Context, orgURL string) (*registry.Org, error)
}

// handler is the pipeline as intake uses it.
type handler interface {
	Handle(ctx context.Context, log *slog.Logger, ev forge.Event, entry *registry.Repo, opts pipeline.Options) ([]orchestrator.Dispatched, error)
	Unavailable(ctx context.Context, log *slog.Logger, ev forge.Event, entry *registry.Repo, opts pipeline.Options, cause error) error
}

// Options are the intake's settings.
type Options struct {
	// TokenSecrets lets /hook?token= deliveries that carry no verified signature give builds
	// the repository's secrets, as the original Albatros did. The token only proves that the
	// caller knows the hook URL, not who sent the event: an operator may refuse it.
	TokenSecrets bool
	// ReadBudget bounds the bytes of unauthenticated bodies held at once (DefaultReadBudget
	// when zero).
	ReadBudget int64
	// Nomad, when set, is asked before a delivery is accepted: when it fails, the delivery
	// is answered 503 (the forge shows it failed, and may be asked to redeliver) and the
	// handler is told (Unavailable), to say so in the commit's statuses.
	Nomad func(context.Context) error
	// QueueBytes bounds what the answered deliveries waiting their turn hold
	// (DefaultQueueBytes when zero): past it, deliveries are answered 503.
	QueueBytes int64
	// App, when set, is the bot's GitHub App: deliveries to the GitHub endpoint signed
	// with its webhook secret are its installations' (see Intake.Handler).
	App App
	// Observe, when set, is told of each delivery answered: the route's forge (not the
	// sender's word), the delivery's event header as sent (clamp it before using it as a
	// label), and the answer's HTTP status.
	Observe func(forge, event string, code int)
}

// App is the bot's GitHub App as intake uses it.
type App interface {
	// WebhookSecrets returns the secrets the App's deliveries may be signed with (the
	// current one, and the previous while it is rotated); none when the bot has no App.
	WebhookSecrets(ctx context.Context) ([]string, error)
	// Installation records what a KindInstallation event says, and returns what it did.
	Installation(ctx context.Context, ev forge.Event) (string, error)
}

// Intake serves the webhook endpoints.
type Intake struct {
	repos   repos
	handler handler
	log     *slog.Logger
	opts    Options
	budget  budget
	// queue holds the answered deliveries until they are handled, MaxHandling at a time: a
	// burst of deliveries waits there rather than opening a connection to Nomad each
	// (Nomad answers a client's 101st connection with 429).
	queue *queue
	// nomad is Options.Nomad's answer, shared by the deliveries of a second.
	nomad *readiness
}

// nomadFresh is how long an answer of Nomad's, yes or no, spares the next deliveries the
// check: a burst of deliveries costs Nomad one check a second, not one each, and during an
// outage deliveries do not wait for a check each (3 s at most). A delivery in the second
// after Nomad went down is accepted, and its dispatch fails with an error status.
const nomadFresh = time.Second

// nomadCheckTimeout bounds one check of Nomad's readiness.
const nomadCheckTimeout = 3 * time.Second

// readiness is a check shared by the deliveries that arrive together: one runs at a time,
// the others wait for its answer, and an answer serves for nomadFresh.
type readiness struct {
	check func(context.Context) error

	mu     sync.Mutex
	at     time.Time     // of the last answer
	err    error         // the last answer
	flight chan struct{} // closed when the check running ends; nil when none runs
}

// get returns the last answer if fresh, else the answer of a check (one for all).
func (r *readiness) get(ctx context.Context) error {
	r.mu.Lock()
	for {
		if !r.at.IsZero() && time.Since(r.at) < nomadFresh {
			err := r.err
			r.mu.Unlock()
			return err
		}
		if r.flight == nil {
			break
		}
		ch := r.flight
		r.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		r.mu.Lock()
	}
	ch := make(chan struct{})
	r.flight = ch
	r.mu.Unlock()
	// The answer is as old as the check's start: a slow "yes" is not fresh for longer.
	start := time.Now()
	err := r.run()
	r.mu.Lock()
	r.at, r.err, r.flight = start, err, nil
	r.mu.Unlock()
	close(ch)
	return err
}

// run runs the check once, on a context of its own (other deliveries wait for its
// answer); a check that panics answers an error, and the waiters go on.
func (r *readiness) run() (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("nomad readiness check panicked: %v", p)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), nomadCheckTimeout)
	defer cancel()
	return r.check(ctx)
}

// MaxHandling is how many answered deliveries are handled at once; the others wait their
// turn, within Options.QueueBytes.
const MaxHandling = 16

// New returns an intake that looks repositories up in repos and hands events to h.
func New(repos repos, h handler, log *slog.Logger, opts Options) *Intake {
	if opts.ReadBudget <= 0 {
		opts.ReadBudget = DefaultReadBudget
	}
	if opts.QueueBytes <= 0 {
		opts.QueueBytes = DefaultQueueBytes
	}
	// The work of one delivery, once its turn comes, is bounded in time.
	in := &Intake{repos: repos, handler: h, log: log, opts: opts, budget: budget{max: opts.ReadBudget}}
	in.queue = newQueue(opts.QueueBytes, 2*time.Minute, in.inTurn)
	if opts.Nomad != nil {
		in.nomad = &readiness{check: opts.Nomad}
	}
	return in
}

// Wait blocks until the work of every answered delivery is done.
func (in *Intake) Wait() { in.queue.wait() }

// Drain stops taking deliveries (they are answered 503), lets the answered ones be handled
// until ctx ends, then drops those still waiting and cancels those being handled: a bot
// stopping. It returns the dropped ones once the cancelled ones have returned. The
// reconciler builds the heads of branches and pull requests among them (see
// pipeline.Reconcile); tags and comments must be redelivered from the forge.
func (in *Intake) Drain(ctx context.Context) []Dropped { return in.queue.drain(ctx) }

// Settled is a time before which every delivery the intake accepted has been handled (now,
// when none waits): a head the forge listed before it, with no build, was not delivered
// here (see pipeline.ReconcileOptions.Settled).
func (in *Intake) Settled() time.Time { return in.queue.settled() }

// Queue says how many answered deliveries wait their turn and what they hold, and how many
// were accepted and refused for the bound since the bot started.
func (in *Intake) Queue() (waiting int, bytes int64, counts QueueCounts) { return in.queue.stats() }

// Sentinel errors of intake, mapped to HTTP statuses by refuse.
var (
	errTooLarge    = errors.New("body too large")
	errBusy        = errors.New("too many deliveries being read")
	errUnreadable  = errors.New("body could not be read")
	errUnknownRepo = errors.New("unknown repository")
	errFlavor      = errors.New("bad flavor")
	errNomad       = errors.New("nomad unreachable")
	// errBlocked: the repository's installation is quarantined, or its owner is not the
	// organization Albatros was installed on (registry.Repo.Blocked).
	errBlocked = errors.New("not built")
)

// authenticator checks a delivery once its repository's entry is known, and returns the
// options of the builds it may start.
type authenticator func(r *http.Request, body []byte, entry *registry.Repo, repo forge.Repo) (pipeline.Options, error)

// Gitea serves POST /webhook/gitea: deliveries signed with the repository's (or its
// organization's) webhook secret.
func (in *Intake) Gitea() http.Handler { return in.Handler(forges.Gitea) }

// Handler serves POST d.Path(): deliveries of d's forge, signed with the repository's (or
// its organization's) webhook secret. The server routes every row of forges.Drivers. On
// GitHub's endpoint, a delivery signed with the bot's GitHub App's webhook secret
// (Options.App) is the App's: verified before it is parsed, it is about an installation
// (recorded at once) or about a repository of one, which must be an installation's
// repository reached through that very installation.
func (in *Intake) Handler(d forges.Driver) http.Handler {
	return in.serve(d, false, in.signed(d))
}

// GitHub serves POST /webhook/github: deliveries signed (X-Hub-Signature-256) with the
// repository's (or its organization's) webhook secret.
func (in *Intake) GitHub() http.Handler { return in.Handler(forges.GitHub) }

// Token serves POST /hook?token=…&flavor=…, the original Albatros's webhook URL for Gitea:
// the token must equal the repository's hook.token, and when the entry also has a
// hook.secret the delivery must be signed with it too. flavor, when given, must be one of
// the entry's flavors (when it has any) and a valid flavor name. A delivery authenticated by
// the token alone gets no secrets unless Options.TokenSecrets allows it, and its comments and
// closed pull requests are ignored: their author is the body's word.
func (in *Intake) Token() http.Handler {
	return in.serve(forges.Hook, true, func(r *http.Request, body []byte, entry *registry.Repo, _ forge.Repo) (pipeline.Options, error) {
		want := entry.Hook.Token
		got := r.URL.Query().Get("token")
		switch {
		case want == "":
			return pipeline.Options{}, fmt.Errorf("%w: the repository has no hook token", forge.ErrSignature)
		case got == "":
			return pipeline.Options{}, fmt.Errorf("%w: no token in the URL", forge.ErrUnsigned)
		case subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1:
			return pipeline.Options{}, fmt.Errorf("%w: wrong token", forge.ErrSignature)
		}
		signed := entry.Hook.Secret != ""
		if signed {
			if err := forges.Hook.Verify(r.Header, body, entry.Hook.Secret); err != nil {
				return pipeline.Options{}, err
			}
		}
		opts := pipeline.Options{NoSecrets: !signed && !in.opts.TokenSecrets, Unsigned: !signed}
		if r.URL.Query().Has("flavor") {
			fl := r.URL.Query().Get("flavor")
			switch {
			case !pipeline.ValidFlavor(fl):
				return opts, fmt.Errorf("%w: %q is not a flavor name", errFlavor, clip(fl))
			case len(entry.Flavors) > 0 && !slices.Contains(entry.Flavors, fl):
				return opts, fmt.Errorf("%w: %q is not one of the repository's flavors", errFlavor, fl)
			}
			opts.Flavor = fl
		}
		return opts, nil
	})
}

// signed authenticates by the forge's HMAC signature, with the repository's webhook secret
// or, when it has none, its organization's. Nothing outside the signed body chooses what is
// built: a flavor in the URL is refused.
func (in *Intake) signed(d forges.Driver) authenticator {
	return func(r *http.Request, body []byte, entry *registry.Repo, repo forge.Repo) (pipeline.Options, error) {
		if r.URL.Query().Has("flavor") {
			return pipeline.Options{}, fmt.Errorf("%w: a flavor in the URL of a signed endpoint (flavors come from the repository's configuration)", errFlavor)
		}
		if entry.AppInstallation != 0 {
			// Reached through the GitHub App: only the App's signature (checked first)
			// is its, not an organization's hand-written secret.
			return pipeline.Options{}, fmt.Errorf("%w: a repository of the GitHub App's installation takes the App's signature only", forge.ErrSignature)
		}
		secret, err := in.secretOf(r.Context(), entry, repo)
		if err != nil {
			return pipeline.Options{}, err
		}
		return pipeline.Options{}, d.Verify(r.Header, body, secret)
	}
}

// secretOf is the webhook secret deliveries of repo are signed with: its entry's, or when
// it has none, its organization's.
func (in *Intake) secretOf(ctx context.Context, entry *registry.Repo, repo forge.Repo) (string, error) {
	if entry.Hook.Secret != "" {
		return entry.Hook.Secret, nil
	}
	orgURL, err := registry.OrgURL(repo.CloneURL)
	if err != nil {
		return "", nil
	}
	org, err := in.repos.Org(ctx, orgURL)
	switch {
	case err == nil:
		return org.Hook.Secret, nil
	case errors.Is(err, registry.ErrNotFound):
		return "", nil
	}
	return "", err
}

// credential is a digest of what authenticated a delivery of repo: the token and the
// secret of the entry (byToken), or the webhook secret it is signed with. A delivery
// waiting its turn keeps it, and is dropped when the entry no longer has the same: a
// secret rotated (perhaps because it leaked) does not build what the old one signed.
func (in *Intake) credential(ctx context.Context, entry *registry.Repo, repo forge.Repo, byToken bool) ([32]byte, error) {
	if byToken {
		return sha256.Sum256([]byte("token\x00" + entry.Hook.Token + "\x00" + entry.Hook.Secret)), nil
	}
	secret, err := in.secretOf(ctx, entry, repo)
	if err != nil {
		return [32]byte{}, err
	}
	return sha256.Sum256([]byte("secret\x00" + secret)), nil
}

// serve is the intake sequence: bound the body, find the repository, authenticate, parse,
// answer, then hand the event on.
func (in *Intake) serve(d forges.Driver, byToken bool, authenticate authenticator) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		log := in.log.With("forge", d.Name, "delivery", clipID(r.Header.Get(d.DeliveryHeader)), "event", clipID(r.Header.Get(d.EventHeader)))
		code, msg, repo, err := in.intake(w, r, d, log, byToken, authenticate)
		if repo != "" {
			log = log.With("repo", repo)
		}
		if code >= 400 {
			log.Warn("delivery refused", "status", code, "err", err, "took", time.Since(start))
		} else {
			log.Info("delivery", "status", code, "outcome", msg, "took", time.Since(start))
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(code)
		fmt.Fprintln(w, msg)
		if in.opts.Observe != nil {
			in.opts.Observe(d.Name, r.Header.Get(d.EventHeader), code)
		}
	})
}

// intake returns the HTTP status, the message for the forge, the repository once it is
// known, and the error behind a refusal.
func (in *Intake) intake(w http.ResponseWriter, r *http.Request, d forges.Driver, log *slog.Logger, byToken bool, authenticate authenticator) (code int, msg, repoName string, err error) {
	refused := func(err error) (int, string, string, error) {
		code, msg, err := refuse(err)
		return code, msg, repoName, err
	}
	body, release, err := in.read(w, r, d.MaxBody)
	defer release()
	if err != nil {
		return refused(err)
	}
	if d.Name == forges.GitHub.Name && in.opts.App != nil && !byToken {
		cred, ok, err := in.appSigned(r, d, body)
		if err != nil {
			// The App cannot be read (Consul down, a key rotated away): what is not its
			// delivery, a repository's own webhook's, goes on.
			log.Warn("the GitHub App's webhook secret could not be read: deliveries signed with it are refused", "err", err)
		}
		if ok {
			return in.appIntake(r, d, log, body, cred)
		}
		if ev, _ := d.Parse(r.Header, body); ev.Repo.CloneURL == "" {
			// No repository to be a repository's webhook's: the App's, and not signed
			// with its secret (or its secret unknown now).
			if err != nil {
				return refused(err)
			}
			return refused(d.Verify(r.Header, body, ""))
		}
	}
	// One decode of the body, before authentication; of what it read, only the repository
	// is used until the raw body is verified: it says whose secret to check. The event, or
	// the parser's error, is acted on once the body is verified.
	ev, perr := d.Parse(r.Header, body)
	repo := ev.Repo
	if repo.CloneURL == "" {
		if perr == nil || errors.Is(perr, forge.ErrIgnoreEvent) {
			perr = fmt.Errorf("%w: no repository", forge.ErrMalformed)
		}
		return refused(perr)
	}
	entry, err := in.repos.Repo(r.Context(), repo.CloneURL)
	if err != nil {
		if errors.Is(err, registry.ErrNotFound) {
			err = fmt.Errorf("%w: %s", errUnknownRepo, repo.CloneURL)
		}
		return refused(err)
	}
	opts, err := authenticate(r, body, entry, repo)
	if err != nil {
		return refused(err)
	}
	cred, err := in.credential(r.Context(), entry, repo, byToken)
	if err != nil {
		return refused(err)
	}
	repoName = repo.FullName
	if perr != nil {
		return refused(perr)
	}
	if ev.Kind == forge.KindPing {
		return http.StatusOK, "pong", repoName, nil
	}
	return in.accept(r, log, ev, entry, opts, job{cred: cred, byToken: byToken})
}

// accept hands a verified delivery of a known repository to the queue, once the
// repository is not blocked and what waits is kept small; j holds what authenticated it.
func (in *Intake) accept(r *http.Request, log *slog.Logger, ev forge.Event, entry *registry.Repo, opts pipeline.Options, j job) (code int, msg, repoName string, err error) {
	repo := ev.Repo
	repoName = repo.FullName
	refused := func(err error) (int, string, string, error) {
		code, msg, err := refuse(err)
		return code, msg, repoName, err
	}
	// An organization's installation is bound to its id: a name taken again by another
	// organization does not inherit it.
	if why := entry.Blocked(repo.OwnerID); why != "" {
		return refused(fmt.Errorf("%w: %s", errBlocked, why))
	}
	// Who wrote a comment or closed a pull request is the body's word: only a signature
	// makes it the forge's.
	if opts.Unsigned && (ev.Kind == forge.KindComment || ev.Kind == forge.KindPullRequestClosed) {
		return refused(fmt.Errorf("%w: %s in a delivery authenticated by the token alone (give the webhook a secret)", forge.ErrIgnoreEvent, ev.Kind))
	}

	// What waits is kept small: of a comment, what commands.Parse reads; of the delivery's
	// ID (a header, not signed), what an ID needs.
	if c := ev.Comment; c != nil && len(c.Body) > commands.MaxComment {
		c.Body = strings.ToValidUTF8(c.Body[:commands.MaxComment], "")
	}
	ev.Delivery = clipID(ev.Delivery)
	hlog := log.With("repo", repoName)
	if in.nomad != nil {
		nerr := in.nomad.get(r.Context())
		if nerr != nil && r.Context().Err() != nil {
			// The sender gave up while the check ran: nothing is said of Nomad.
			return refused(fmt.Errorf("%w: %w", errBusy, r.Context().Err()))
		}
		if nerr != nil {
			j.log, j.size, j.ev, j.opts, j.told = hlog, size(ev), ev, opts, nerr
			in.queue.push(j)
			return refused(fmt.Errorf("%w: %w", errNomad, nerr))
		}
	}
	// Answer now; dispatch and the pending status follow, in turn, on a context of their
	// own. What waits is the parsed delivery, not its body nor its entry.
	j.log, j.size, j.ev, j.opts = hlog, size(ev), ev, opts
	accepted := in.queue.push(j)
	if !accepted {
		waiting, bytes, _ := in.queue.stats()
		return refused(fmt.Errorf("%w: %d deliveries wait their turn, holding %d bytes", errBusy, waiting, bytes))
	}
	what := "at " + ev.Commit
	if ev.Commit == "" && ev.PullRequest != nil {
		what = fmt.Sprintf("#%d", ev.PullRequest.Number)
	}
	return http.StatusAccepted, fmt.Sprintf("accepted: %s of %s %s", ev.Kind, repo.FullName, what), repoName, nil
}

// inTurn handles a delivery once its turn comes: its repository's entry is read again then
// (a waiting delivery holds no entry, which may be large, and a repository removed or
// quarantined meanwhile is not built), and the pipeline is handed the event, or told that
// Nomad was down.
func (in *Intake) inTurn(ctx context.Context, j *job) error {
	entry, err := in.repos.Repo(ctx, j.ev.Repo.CloneURL)
	if errors.Is(err, registry.ErrNotFound) {
		j.log.Warn("delivery not handled: its repository is no longer registered")
		return nil
	}
	if err != nil {
		return fmt.Errorf("entry of %s: %w", j.ev.Repo.CloneURL, err)
	}
	if why := entry.Blocked(j.ev.Repo.OwnerID); why != "" {
		j.log.Warn("delivery not handled: its repository is blocked now", "why", why)
		return nil
	}
	var cred [32]byte
	if j.byApp {
		if cred, err = in.appCredential(ctx, j.cred, entry, j.ev); err != nil {
			return err
		}
	} else if cred, err = in.credential(ctx, entry, j.ev.Repo, j.byToken); err != nil {
		return fmt.Errorf("webhook secret of %s: %w", j.ev.Repo.CloneURL, err)
	}
	if cred != j.cred {
		j.log.Warn("delivery not handled: the repository's webhook secret or token changed since it was accepted")
		return nil
	}
	if fl := j.opts.Flavor; fl != "" && len(entry.Flavors) > 0 && !slices.Contains(entry.Flavors, fl) {
		j.log.Warn("delivery not handled: its flavor is no longer one of the repository's", "flavor", fl)
		return nil
	}
	if j.told != nil {
		return in.handler.Unavailable(ctx, j.log, j.ev, entry, j.opts, j.told)
	}
	_, err = in.handler.Handle(ctx, j.log, j.ev, entry, j.opts)
	return err
}

// refuse maps an intake error to its HTTP status and a short message; the detail goes to the
// log only. An unknown repository is refused exactly as a bad signature is, so that probing
// does not tell which repositories are registered.
func refuse(err error) (int, string, error) {
	switch {
	case errors.Is(err, forge.ErrIgnoreEvent):
		return http.StatusOK, "ignored: " + err.Error(), nil
	case errors.Is(err, errTooLarge):
		return http.StatusRequestEntityTooLarge, "body too large", err
	case errors.Is(err, errBusy):
		return http.StatusServiceUnavailable, "busy: too many deliveries at once, retry later", err
	case errors.Is(err, errUnreadable):
		return http.StatusBadRequest, "the body could not be read", err
	case errors.Is(err, errFlavor):
		return http.StatusBadRequest, err.Error(), err
	case errors.Is(err, forge.ErrMalformed):
		return http.StatusBadRequest, "malformed payload", err
	case errors.Is(err, forge.ErrUnsigned):
		return http.StatusUnauthorized, "missing signature or token", err
	case errors.Is(err, forge.ErrSignature), errors.Is(err, errUnknownRepo):
		return http.StatusForbidden, "bad signature or token", err
	case errors.Is(err, registry.ErrUnavailable):
		return http.StatusServiceUnavailable, "registry unavailable", err
	case errors.Is(err, errBlocked):
		return http.StatusForbidden, "not built: this organization's installation is quarantined (the bot's log says why)", err
	case errors.Is(err, errNomad):
		return http.StatusServiceUnavailable, "nomad unreachable: nothing was built, redeliver later", err
	default:
		return http.StatusInternalServerError, "internal error", err
	}
}

// clipID clips a header's ID to what an ID needs (Gitea's and GitHub's are 36 bytes).
func clipID(s string) string {
	if len(s) > 128 {
		return strings.ToValidUTF8(s[:128], "")
	}
	return s
}

// clip keeps an error message about hostile input short.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
