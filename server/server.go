// Package server is the bot's HTTP surface: it routes the webhook endpoints to the intake,
// serves build logs (plain text at /build, the original Albatros's URL, and a live HTML page
// at /logs/<namespace>/<job>), with every secret the build received masked, and answers
// /healthz. Both log endpoints read one shared follow of each build's log (logfan), within
// bounds that keep anonymous readers from taking the bot's connections to Nomad. It owns
// no state; what it shows comes from Nomad and the registry.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/albatros-ci/albatros/archive"
	"github.com/albatros-ci/albatros/forge/forges"
	"github.com/albatros-ci/albatros/logfan"
	"github.com/albatros-ci/albatros/logtext"
	"github.com/albatros-ci/albatros/orchestrator"
	"github.com/albatros-ci/albatros/registry"
	"github.com/albatros-ci/albatros/secrets"
	"github.com/albatros-ci/albatros/templates"
	"github.com/albatros-ci/albatros/webhook"
)

// builds is the orchestrator as the log pages use it.
type builds interface {
	Build(ctx context.Context, ns, id string) (*orchestrator.Build, error)
	Follow(ctx context.Context, ns, jobID, logType string, w io.Writer) (orchestrator.Outcome, error)
}

// repos is the registry as the log pages use it: for the repository's current secrets.
type repos interface {
	Repo(ctx context.Context, cloneURL string) (*registry.Repo, error)
}

// archived is the archive of finished builds as the log pages use it: what they serve
// once Nomad has collected a build (or its client the build's log).
type archived interface {
	Build(ctx context.Context, ns, jobID string) (*archive.Record, error)
	Log(ctx context.Context, ns, jobID, stream string) (io.ReadCloser, error)
}

// Check is a readiness check of a dependency, run by /healthz.
type Check struct {
	Name  string
	Check func(context.Context) error
}

// Config is what the server serves.
type Config struct {
	Intake *webhook.Intake
	Builds builds
	Repos  repos
	Checks []Check
	// Namespace is where /build looks for a job when the request names no namespace.
	Namespace string
	// Pages, when set, adds the web pages (home, sign-in, installs, settings) to the
	// routes; without them / answers a line of text.
	Pages interface{ Register(*http.ServeMux) }
	// Logs, when set, decides who may read a build's log, and answers itself when the
	// request may not (private repositories); without it every log is open.
	Logs interface {
		AllowLog(w http.ResponseWriter, r *http.Request, cloneURL string) bool
	}
	// Archive, when set, serves the logs of the builds that have ended from the archive:
	// those Nomad has collected, and those whose log its client has.
	Archive archived
	// LogBounds bound the logs followed in Nomad and their viewers (logfan's defaults
	// when zero).
	LogBounds logfan.Options
	// Stall is how long one write of a log stream may wait on its reader before the reader
	// is dropped (WriteTimeout when zero): a stream has no deadline as a whole, for a log
	// is written as long as its build runs, but a reader that stops reading does not hold
	// its slot, its decoder and its connection for ever.
	Stall time.Duration
	// ArchiveReads bounds the archived logs read at once (DefaultArchiveReads when zero):
	// each holds a decoder (up to its 8 MiB window) and a read of the store.
	ArchiveReads int
	// ArchiveRate is the slowest pace, in bytes a second, at which an archived log is
	// read (DefaultArchiveRate when zero): a reader gets the log's time at that pace and
	// Stall more, and is dropped past it, so that readers who read a few bytes a second,
	// each write within Stall, cannot hold the ArchiveReads for hours.
	ArchiveRate int64
	// Metrics, when set, is served at GET /metrics (the bot's Prometheus metrics); leave it
	// out to serve them on a listener of their own.
	Metrics http.Handler
	Log     *slog.Logger
}

// DefaultArchiveReads is how many archived logs are read at once by default.
const DefaultArchiveReads = 32

// DefaultArchiveRate is the slowest pace an archived log is read at by default: a 64 MiB
// log has 17 minutes.
const DefaultArchiveRate = 64 << 10

type server struct {
	Config
	// logs shares each build's followed log among the viewers of its page; builds reads
	// each build once for them.
	logs         *logfan.Hub
	builds       *buildCache
	archiveReads chan struct{}
	stopping     atomic.Bool
	// checked is the dependencies' last answer, shared by the health requests of a second:
	// anonymous requests of /healthz and /readyz cost Nomad one request a second at most.
	checkMu sync.Mutex
	checked checkResult
}

type checkResult struct {
	at               time.Time
	failed, degraded []string
}

// Handler is the bot's HTTP handler.
type Handler struct {
	mux *http.ServeMux
	s   *server
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// Stop says that the bot is stopping: /readyz answers 503 from then on, so that Nomad's
// service check takes the bot out of its service before it stops serving.
func (h *Handler) Stop() { h.s.stopping.Store(true) }

// Logs is the hub that shares the live logs among their viewers (for the metrics).
func (h *Handler) Logs() *logfan.Hub { return h.s.logs }

// New returns the bot's HTTP handler.
func New(cfg Config) *Handler {
	if cfg.Stall == 0 {
		cfg.Stall = WriteTimeout
	}
	if cfg.ArchiveReads == 0 {
		cfg.ArchiveReads = DefaultArchiveReads
	}
	if cfg.ArchiveRate <= 0 {
		cfg.ArchiveRate = DefaultArchiveRate
	}
	s := &server{Config: cfg, logs: logfan.New(cfg.Builds.Follow, cfg.LogBounds), builds: newBuildCache(cfg.Builds.Build), archiveReads: make(chan struct{}, cfg.ArchiveReads)}
	mux := http.NewServeMux()
	for _, d := range forges.Drivers {
		mux.Handle("POST "+d.Path(), cfg.Intake.Handler(d))
	}
	mux.Handle("POST /hook", cfg.Intake.Token())
	mux.HandleFunc("GET /build", s.plainLog)
	mux.HandleFunc("GET /logs/{ns}/{job...}", s.logPage)
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.HandleFunc("GET /livez", s.livez)
	if cfg.Metrics != nil {
		mux.Handle("GET /metrics", cfg.Metrics)
	}
	if cfg.Pages != nil {
		cfg.Pages.Register(mux)
	} else {
		mux.HandleFunc("GET /{$}", s.index)
	}
	return &Handler{mux: mux, s: s}
}

func (s *server) index(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	var hooks []string
	for _, d := range forges.Drivers {
		hooks = append(hooks, "POST "+d.Path())
	}
	fmt.Fprintf(w, "Albatros: a CI on Nomad. Webhooks: %s, POST /hook?token=…; logs: /logs/<namespace>/<job>; health: /healthz\n", strings.Join(hooks, ", "))
}

// healthz answers 200 when every dependency answers, else 503 naming the ones that do not.
// A registry serving the entries it read last, Consul being down, answers 200 "degraded".
func (s *server) healthz(w http.ResponseWriter, r *http.Request) { s.health(w, r, false) }

// readyz is healthz, and 503 "stopping" once the bot stops (Stop): whether the bot should
// be sent deliveries and readers, for Nomad's service check and its update block.
func (s *server) readyz(w http.ResponseWriter, r *http.Request) { s.health(w, r, true) }

// livez answers 200 while the process serves: it asks no dependency, so that a liveness
// probe never restarts a bot for Nomad or Consul being down.
func (s *server) livez(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	fmt.Fprintln(w, "ok")
}

func (s *server) health(w http.ResponseWriter, r *http.Request, ready bool) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	var failed []string
	if ready && s.stopping.Load() {
		failed = append(failed, "stopping")
	}
	res := s.check(ctx)
	failed = append(failed, res.failed...)
	degraded := res.degraded
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if len(failed) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "unavailable: %s\n", strings.Join(failed, ", "))
	} else {
		fmt.Fprintln(w, "ok")
	}
	for _, d := range degraded {
		fmt.Fprintf(w, "degraded: %s\n", d)
	}
}

// check runs the Checks, or answers what they answered less than a second ago.
func (s *server) check(ctx context.Context) checkResult {
	s.checkMu.Lock()
	defer s.checkMu.Unlock()
	if time.Since(s.checked.at) < time.Second {
		return s.checked
	}
	var res checkResult
	for _, c := range s.Checks {
		err := c.Check(ctx)
		switch {
		case errors.Is(err, registry.ErrStale):
			// Consul is down, and the entries last read are served: the bot works. The
			// details (addresses, keys) go to the log, not to whoever asks.
			s.Log.Warn("health check degraded", "dependency", c.Name, "err", err)
			res.degraded = append(res.degraded, c.Name+": "+registry.ErrStale.Error())
		case err != nil:
			s.Log.Warn("health check failed", "dependency", c.Name, "err", err)
			res.failed = append(res.failed, c.Name)
		}
	}
	res.at = time.Now()
	s.checked = res
	return res
}

// build finds the build a log request names: in Nomad (b), or, once it has ended, in the
// archive (rec). It answers 404 (or 503, or 403 for a reader who may not read it) itself
// when it returns neither.
func (s *server) build(w http.ResponseWriter, r *http.Request, ns, id string) (b *orchestrator.Build, rec *archive.Record) {
	if ns == "" || id == "" || !orchestrator.IsBuildID(id) {
		http.Error(w, "no such build", http.StatusNotFound)
		return nil, nil
	}
	b, err := s.builds.get(r.Context(), ns, id)
	// Ended (its log may be gone from Nomad's client) or collected: the archive's, once
	// archived. A build that ended and is not archived yet is served from Nomad.
	if s.Archive != nil && (errors.Is(err, orchestrator.ErrNotFound) || (err == nil && b.Status == "dead")) {
		rec, aerr := s.Archive.Build(r.Context(), ns, id)
		switch {
		case aerr == nil:
			if !s.heldBy(w, r, rec) {
				return nil, nil
			}
			if s.Logs != nil && !s.Logs.AllowLog(w, r, rec.Repo) {
				return nil, nil
			}
			return nil, rec
		case err != nil && !errors.Is(aerr, archive.ErrNotFound):
			s.Log.Error("read archived build", "job", id, "namespace", ns, "err", aerr)
			w.Header().Set("Retry-After", "10")
			http.Error(w, "the archive of builds is unavailable", http.StatusServiceUnavailable)
			return nil, nil
		}
	}
	if err != nil {
		if r.Context().Err() != nil {
			return nil, nil
		}
		if errors.Is(err, orchestrator.ErrNotFound) {
			http.Error(w, "no such build (Nomad may have garbage-collected it)", http.StatusNotFound)
		} else if errors.Is(err, errReadsBusy) {
			w.Header().Set("Retry-After", "10")
			http.Error(w, "too many builds are being looked up at once: try again shortly", http.StatusServiceUnavailable)
		} else {
			s.Log.Error("read build", "job", id, "namespace", ns, "err", err)
			http.Error(w, "nomad unavailable", http.StatusServiceUnavailable)
		}
		return nil, nil
	}
	if b.HolderKnown && s.Repos != nil {
		// Still in Nomad, as once archived (heldBy): the build is its dispatching holder's,
		// and whoever holds the repository's name now does not get its log.
		entry, err := s.Repos.Repo(r.Context(), b.Meta["REPO_URL"])
		switch {
		case errors.Is(err, registry.ErrNotFound):
			http.Error(w, "no such build (its repository is no longer built here)", http.StatusNotFound)
			return nil, nil
		case err != nil:
			s.Log.Warn("read the build's repository", "repo", b.Meta["REPO_URL"], "err", err)
			w.Header().Set("Retry-After", "10")
			http.Error(w, "registry unavailable", http.StatusServiceUnavailable)
			return nil, nil
		case entry.Holder() != b.Holder:
			http.Error(w, "no such build (its repository is no longer built here)", http.StatusNotFound)
			return nil, nil
		}
	}
	if s.Logs != nil && !s.Logs.AllowLog(w, r, b.Meta["REPO_URL"]) {
		return nil, nil
	}
	return b, nil
}

// heldBy reports whether an archived build is still its repository's as the bot builds
// it now (archive.Record.HeldBy), answering 404 itself when not: once an installation is
// gone, whoever takes its names later does not get its builds.
func (s *server) heldBy(w http.ResponseWriter, r *http.Request, rec *archive.Record) bool {
	entry, err := s.Repos.Repo(r.Context(), rec.Repo)
	switch {
	case errors.Is(err, registry.ErrNotFound):
	case err != nil:
		s.Log.Warn("read the archived build's repository", "repo", rec.Repo, "err", err)
		w.Header().Set("Retry-After", "10")
		http.Error(w, "registry unavailable", http.StatusServiceUnavailable)
		return false
	case rec.HeldBy(true, entry.Holder()):
		return true
	}
	http.Error(w, "no such build (its repository is no longer built here)", http.StatusNotFound)
	return false
}

// archivedLog opens an archived build's log, answering itself when it cannot. Reading it
// takes one of the ArchiveReads slots (a decoder and a read of the store each), given
// back on Close.
func (s *server) archivedLog(w http.ResponseWriter, r *http.Request, rec *archive.Record, stream string) io.ReadCloser {
	var release func()
	select {
	case s.archiveReads <- struct{}{}:
		release = sync.OnceFunc(func() { <-s.archiveReads })
	default:
		s.Log.Warn("archived log not served", "job", rec.JobID, "err", "too many archived logs read at once", "max", cap(s.archiveReads))
		w.Header().Set("Retry-After", "10")
		http.Error(w, "too many build logs are being read at once: try again shortly", http.StatusServiceUnavailable)
		return nil
	}
	rc, err := s.Archive.Log(r.Context(), rec.Namespace, rec.JobID, stream)
	if errors.Is(err, archive.ErrNotFound) {
		release()
		return io.NopCloser(strings.NewReader("")) // a build that never ran has no log
	}
	if err != nil {
		release()
		s.Log.Error("read archived log", "job", rec.JobID, "namespace", rec.Namespace, "err", err)
		w.Header().Set("Retry-After", "10")
		http.Error(w, "the archive of builds is unavailable", http.StatusServiceUnavailable)
		return nil
	}
	return releasing{rc, release}
}

// releasing gives a slot back when its reader is closed.
type releasing struct {
	io.ReadCloser
	release func()
}

// WriteTo lets the archive's decoder write in its own blocks (without a copy through Read).
func (r releasing) WriteTo(w io.Writer) (int64, error) {
	if wt, ok := r.ReadCloser.(io.WriterTo); ok {
		return wt.WriteTo(w)
	}
	return io.Copy(w, struct{ io.Reader }{r.ReadCloser})
}

func (r releasing) Close() error {
	defer r.release()
	return r.ReadCloser.Close()
}

// recordBuild is an archived build as the log page's header shows it.
func recordBuild(rec *archive.Record) *orchestrator.Build {
	return &orchestrator.Build{Namespace: rec.Namespace, ID: rec.JobID, Meta: rec.Summary().Meta, Submitted: rec.Queued, Status: "dead"}
}

// secretValues is everything to mask in a build's output: for a build that got the
// secrets (as the bot recorded at its dispatch), those it received (its payload) and the
// repository's current ones; for any other build, nothing. A build without the secrets
// has none of them to leak, and masking its log with them would tell it whether a guess
// of one is right. When the repository's entry cannot be read, nothing is served (503): a
// log masked with part of its secrets would be shared with every viewer.
func (s *server) secretValues(w http.ResponseWriter, r *http.Request, b *orchestrator.Build) ([]string, bool) {
	if !b.Secrets {
		return nil, true
	}
	values := secrets.Values(b.Payload)
	entry, err := s.Repos.Repo(r.Context(), b.Meta["REPO_URL"])
	switch {
	case errors.Is(err, registry.ErrNotFound):
		return values, true
	case err != nil:
		s.Log.Warn("read repository secrets for masking", "repo", b.Meta["REPO_URL"], "err", err)
		http.Error(w, "registry unavailable: the log cannot be masked", http.StatusServiceUnavailable)
		return nil, false
	}
	mask, err := entry.SecretValues()
	if err != nil {
		s.Log.Warn("open repository secrets for masking", "repo", b.Meta["REPO_URL"], "err", err)
		http.Error(w, "the repository's secrets cannot be opened: the log cannot be masked", http.StatusServiceUnavailable)
		return nil, false
	}
	return append(values, mask...), true
}

func logType(r *http.Request) (string, bool) {
	switch t := r.URL.Query().Get("log"); t {
	case "", orchestrator.Stdout:
		return orchestrator.Stdout, true
	case orchestrator.Stderr:
		return t, true
	default:
		return "", false
	}
}

// plainLog serves GET /build?job=<id>&log=stdout|stderr[&namespace=<ns>]: the build's log as
// plain text, following it while the build runs and ending when it ends, from the same
// shared follow of the log as the live page.
func (s *server) plainLog(w http.ResponseWriter, r *http.Request) {
	stream, ok := logType(r)
	if !ok {
		http.Error(w, "log must be stdout or stderr", http.StatusBadRequest)
		return
	}
	ns := r.URL.Query().Get("namespace")
	if ns == "" {
		ns = s.Namespace
	}
	b, rec := s.build(w, r, ns, r.URL.Query().Get("job"))
	if rec != nil {
		rc := s.archivedLog(w, r, rec, stream)
		if rc == nil {
			return
		}
		defer rc.Close()
		streamHeaders(w, "text/plain; charset=utf-8")
		if _, err := io.Copy(s.pacedFor(w, rec.Logs[stream].Size), rc); err != nil && r.Context().Err() == nil {
			s.Log.Warn("read archived log", "job", rec.JobID, "err", err)
		}
		return
	}
	if b == nil {
		return
	}
	values, ok := s.secretValues(w, r, b)
	if !ok {
		return
	}
	if b.Status == "dead" {
		s.wholeLog(w, r, b, stream, values)
		return
	}
	v, ok := s.join(w, b, stream, values)
	if !ok {
		return
	}
	defer v.Leave()
	streamHeaders(w, "text/plain; charset=utf-8")
	if _, err := v.Copy(r.Context(), s.flusher(w)); err != nil && r.Context().Err() == nil {
		s.Log.Warn("follow log", "job", b.ID, "err", err)
	}
}

// wholeLog serves the plain log of a finished build whole, read from Nomad at the reader's
// pace (a shared tape keeps only the newest part of a big log for readers that fall
// behind), within the same bound on reads as the shared ones.
func (s *server) wholeLog(w http.ResponseWriter, r *http.Request, b *orchestrator.Build, stream string, values []string) {
	release, err := s.logs.Reserve()
	if err != nil {
		s.Log.Warn("log not served", "job", b.ID, "err", err)
		w.Header().Set("Retry-After", "10")
		http.Error(w, "too many build logs are being read at once: try again shortly", http.StatusServiceUnavailable)
		return
	}
	defer release()
	streamHeaders(w, "text/plain; charset=utf-8")
	var out io.Writer = s.flusher(w)
	var masked *logtext.Writer
	if len(values) > 0 {
		masked = logtext.New(out, values, logtext.Options{})
		out = masked
	}
	if _, err := s.Builds.Follow(r.Context(), b.Namespace, b.ID, stream, out); err != nil && r.Context().Err() == nil {
		s.Log.Warn("read log", "job", b.ID, "err", err)
	}
	if masked != nil {
		_ = masked.Close()
	}
}

// join makes a viewer of a build's log, answering 503 itself past the hub's bounds.
func (s *server) join(w http.ResponseWriter, b *orchestrator.Build, stream string, values []string) (*logfan.Viewer, bool) {
	v, err := s.logs.Join(b.Namespace, b.ID, stream, func() []string { return values })
	if err != nil {
		s.Log.Warn("log not served", "job", b.ID, "err", err)
		w.Header().Set("Retry-After", "10")
		http.Error(w, "too many build logs are being read at once: try again shortly", http.StatusServiceUnavailable)
		return nil, false
	}
	return v, true
}

// logPage serves GET /logs/{ns}/{job...}: the build's live log as HTML.
func (s *server) logPage(w http.ResponseWriter, r *http.Request) {
	stream, ok := logType(r)
	if !ok {
		http.Error(w, "log must be stdout or stderr", http.StatusBadRequest)
		return
	}
	b, rec := s.build(w, r, r.PathValue("ns"), r.PathValue("job"))
	if rec != nil {
		s.archivedPage(w, r, rec, stream)
		return
	}
	if b == nil {
		return
	}
	values, ok := s.secretValues(w, r, b)
	if !ok {
		return
	}
	page := pageOf(b, stream)
	v, ok := s.join(w, b, stream, values)
	if !ok {
		return
	}
	defer v.Leave()

	streamHeaders(w, "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	fw := s.flusher(w)
	if err := templates.LogHead(fw, page); err != nil {
		return
	}
	// One follow of the log in Nomad, masked once, however many people watch it.
	ansi := templates.NewANSI(fw)
	out, err := v.Copy(r.Context(), ansi)
	_ = ansi.Close()
	if err != nil {
		if r.Context().Err() != nil {
			return
		}
		s.Log.Warn("follow log", "job", b.ID, "err", err)
		out = orchestrator.Outcome{Result: orchestrator.Error, Description: "the log could not be read to its end"}
	}
	// The description is Nomad's words about the build; mask it too.
	_ = templates.LogFoot(fw, templates.LogResult{Result: string(out.Result), Description: secrets.MaskString(out.Description, values)})
}

// archivedPage serves an archived build's log as the live page shows a finished one.
func (s *server) archivedPage(w http.ResponseWriter, r *http.Request, rec *archive.Record, stream string) {
	rc := s.archivedLog(w, r, rec, stream)
	if rc == nil {
		return
	}
	defer rc.Close()
	streamHeaders(w, "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	fw := s.flusher(w)
	if err := templates.LogHead(fw, pageOf(recordBuild(rec), stream)); err != nil {
		return
	}
	// The page is some three times the log's size (its markup); its head and foot are
	// small.
	ansi := templates.NewANSI(s.pacedFor(w, 3*rec.Logs[stream].Size))
	_, err := io.Copy(ansi, rc)
	_ = ansi.Close()
	if err != nil {
		if r.Context().Err() == nil {
			s.Log.Warn("read archived log", "job", rec.JobID, "err", err)
		}
		return
	}
	// The reason was masked when the status was written.
	_ = templates.LogFoot(fw, templates.LogResult{Result: rec.State, Description: rec.Reason})
}

func pageOf(b *orchestrator.Build, stream string) templates.LogPage {
	repoURL := strings.TrimSuffix(b.Meta["REPO_URL"], ".git")
	name := repoURL
	if u, err := url.Parse(repoURL); err == nil && (u.Scheme == "http" || u.Scheme == "https") {
		name = strings.Trim(u.Path, "/")
		u.User = nil
		repoURL = u.String()
	} else {
		repoURL = ""
	}
	commit := b.Meta["COMMIT"]
	short := commit
	if len(short) > 10 {
		short = short[:10]
	}
	base := orchestrator.LogPath(b.Namespace, b.ID)
	p := templates.LogPage{
		Repo: name, RepoURL: repoURL, Commit: commit, ShortCommit: short,
		Branch: b.Meta["BRANCH"], Tag: b.Meta["TAG"], PR: b.Meta["PR"], Flavor: b.Meta["FLAVOR"],
		Namespace: b.Namespace, JobID: b.ID, Submitted: b.Submitted,
		Raw: "/build?" + url.Values{"job": {b.ID}, "namespace": {b.Namespace}, "log": {stream}}.Encode(),
	}
	for _, name := range []string{orchestrator.Stdout, orchestrator.Stderr} {
		page := base
		if name != orchestrator.Stdout {
			page += "?log=" + name
		}
		p.Streams = append(p.Streams, templates.Stream{Name: name, Page: page, Current: name == stream})
	}
	return p
}

// Default timeouts of the bot's HTTP server.
const (
	ReadHeaderTimeout = 10 * time.Second
	WriteTimeout      = 60 * time.Second
	IdleTimeout       = 120 * time.Second
)

// Timeouts are how long a client may take to send a request (Read: headers and body), and
// how long the bot may take to write a response (Write; the log streams excepted).
type Timeouts struct {
	Read, Write time.Duration
}

// HTTPServer returns the bot's HTTP server for handler: a client has t.Read to send a whole
// request, every response but the log streams must be written within t.Write (WriteTimeout
// when zero), and idle connections close after IdleTimeout. base is the context of every
// request; cancelling it ends the log streams at shutdown.
func HTTPServer(addr string, handler http.Handler, t Timeouts, base context.Context) *http.Server {
	if t.Write == 0 {
		t.Write = WriteTimeout
	}
	header := ReadHeaderTimeout
	if t.Read > 0 {
		header = min(header, t.Read)
	}
	return &http.Server{
		Addr:              addr,
		Handler:           handler,
		ReadHeaderTimeout: header,
		ReadTimeout:       t.Read,
		WriteTimeout:      t.Write,
		IdleTimeout:       IdleTimeout,
		BaseContext:       func(net.Listener) context.Context { return base },
	}
}

// streamHeaders sets the headers of a log stream, and lifts the server's write deadline
// from its connection: a log is written for as long as its build runs.
func streamHeaders(w http.ResponseWriter, contentType string) {
	_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // tell reverse proxies not to hold the stream back
}

// flusher returns a writer that flushes the response after every write, so that a log
// reaches the browser as the build writes it, each write within s.Stall.
func (s *server) flusher(w http.ResponseWriter) io.Writer {
	return flushWriter{w: w, rc: http.NewResponseController(w), stall: s.Stall}
}

// paced returns a writer whose every write is done within s.Stall, unflushed: for a log
// that is whole already, the response's buffer fills before it is sent.
func (s *server) paced(w http.ResponseWriter) io.Writer {
	return flushWriter{w: w, rc: http.NewResponseController(w), stall: s.Stall, buffered: true}
}

// pacedFor is paced for a response of about size bytes, which must be written within its
// time at ArchiveRate and Stall more.
func (s *server) pacedFor(w http.ResponseWriter, size int64) io.Writer {
	until := time.Now().Add(s.Stall + time.Duration(float64(size)/float64(s.ArchiveRate)*float64(time.Second)))
	return flushWriter{w: w, rc: http.NewResponseController(w), stall: s.Stall, buffered: true, until: until}
}

type flushWriter struct {
	w        io.Writer
	rc       *http.ResponseController
	stall    time.Duration
	buffered bool
	until    time.Time // when set, no write goes past it
}

func (f flushWriter) Write(p []byte) (int, error) {
	deadline := time.Now().Add(f.stall)
	if !f.until.IsZero() && f.until.Before(deadline) {
		deadline = f.until
	}
	_ = f.rc.SetWriteDeadline(deadline)
	n, err := f.w.Write(p)
	if err == nil && !f.buffered {
		err = f.rc.Flush()
	}
	return n, err
}
