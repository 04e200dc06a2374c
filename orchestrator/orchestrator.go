// Package orchestrator is Albatros's side of Nomad: it registers builder jobs, checks that a
// job honours the builder contract, dispatches builds, follows their logs, and turns Nomad's
// event stream into build results. It is the only package that imports Nomad's api package;
// the rest of the bot speaks the types here.
//
// The builder contract: a parameterized batch job that accepts the meta keys REPO_URL,
// COMMIT, BRANCH and FLAVOR (and may accept TAG and PR), with a task group "runner" holding
// a task "executor", whose logs are the build's logs.
//
// It does not decide what to build or who may have secrets; the pipeline does.
package orchestrator

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	nomad "github.com/hashicorp/nomad/api"
)

// The names of the builder contract.
const (
	Group = "runner"
	Task  = "executor"
)

// Meta keys given to every build, and those given when the builder accepts them.
var (
	RequiredMeta = []string{"REPO_URL", "COMMIT", "BRANCH", "FLAVOR"}
	OptionalMeta = []string{"TAG", "PR"}
)

// dispatchMarker goes into every dispatched job's ID
// (<builder>/dispatch-albatros-k<digest of the build key>-<time>-<id>) so that the event
// stream tells the bot's builds apart from the cluster's other jobs.
const dispatchMarker = "albatros"

// ErrContract is returned for a builder job that does not honour the builder contract.
var ErrContract = errors.New("does not meet the builder contract")

// ErrNotFound is returned for a build or builder job Nomad does not know (or has collected).
var ErrNotFound = errors.New("not found in nomad")

// Orchestrator talks to one Nomad region.
type Orchestrator struct {
	// ns is WithNamespace's ("" for Nomad's default); readToken WithReadToken's.
	ns, readToken string
	c             *nomad.Client
	// ledger says which jobs are the bot's builds, and which of them got the secrets.
	ledger Ledger

	// The namespaces Watch's event stream covers: Nomad resolves the wildcard when it
	// subscribes, so a dispatch into any other namespace asks Watch to subscribe again.
	mu          sync.Mutex
	watched     map[string]bool // nil while nothing watches
	resubscribe chan struct{}

	// The builders in use, kept fresh by blocking queries (see builder) until done ends
	// (Close).
	bmu      sync.Mutex
	builders map[Builder]*builderEntry
	done     context.Context
	close    context.CancelFunc
}

// New returns an orchestrator on the Nomad agent that the standard NOMAD_* environment
// variables (NOMAD_ADDR, NOMAD_TOKEN, NOMAD_REGION, NOMAD_CACERT, …) point at; NOMAD_ADDR
// may be a unix socket (unix:///path), such as the task API socket a Nomad task with a
// workload identity finds in its secrets directory. The ledger records each build before
// its dispatch; only the jobs it names are builds (Build, Recent, Watch).
func New(ledger Ledger, opts ...Option) (*Orchestrator, error) {
	if ledger == nil {
		return nil, errors.New("nomad client: no ledger of the bot's builds")
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	cfg := nomad.DefaultConfig()
	tr := transport()
	cfg.HttpClient = &http.Client{Transport: tr}
	if path, ok := strings.CutPrefix(cfg.Address, "unix://"); ok {
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}
	} else if err := nomad.ConfigureTLS(cfg.HttpClient, cfg.TLSConfig); err != nil {
		return nil, fmt.Errorf("nomad client TLS: %w", err)
	}
	var rt http.RoundTripper = identity{tr}
	if o.wrap != nil {
		rt = o.wrap(rt)
	}
	cfg.HttpClient.Transport = rt
	c, err := nomad.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("nomad client: %w", err)
	}
	done, close := context.WithCancel(context.Background())
	return &Orchestrator{c: c, ledger: ledger, ns: o.ns, readToken: o.read, resubscribe: make(chan struct{}, 1), done: done, close: close}, nil
}

// Option changes how New makes an orchestrator.
type Option func(*options)

type options struct {
	wrap func(http.RoundTripper) http.RoundTripper
	ns   string
	read string
}

// WithNamespace is the namespace of the requests that name none: a job's parse, before its
// namespace is known (Nomad asks for parse-job there; the shipped policy grants it in the
// builders' namespace, not in "default").
func WithNamespace(ns string) Option {
	return func(o *options) { o.ns = ns }
}

// WithReadToken is the token of the event stream (Watch), when the other requests go with
// a workload identity (NOMAD_TOKEN in a task with an identity block), which Nomad 1.6's
// event stream does not take: it looks its token up among the ACL tokens. Its policy is
// hcl/acl/nomad-read.hcl.
func WithReadToken(token string) Option {
	return func(o *options) { o.read = token }
}

// WithTransport has every request to Nomad go through wrap's round tripper, which calls
// the one it is given (the metrics count them so).
func WithTransport(wrap func(http.RoundTripper) http.RoundTripper) Option {
	return func(o *options) { o.wrap = wrap }
}

// HTTPClient is the HTTP client that the orchestrator gives Nomad's API client (without
// the TLS settings of NOMAD_CACERT and the like), for the bare baselines of benchmarks.
func HTTPClient() *http.Client { return &http.Client{Transport: identity{transport()}} }

// transport is the one transport of every call to Nomad. It keeps as many idle
// connections as the bot uses at once (Nomad's client keeps 3: a burst of builds would
// open, and close, a connection per call, which costs Nomad more than the calls), and asks
// for uncompressed answers: Nomad gzips every answer a client accepts gzipped, even a
// dispatch's hundred bytes, with a fresh gzip writer each, which was about half of Nomad's
// CPU per dispatch (bench/rate: 1.8 against 0.8 ms per bare dispatch). The bot sits near
// its Nomad; Nomad's CPU is the cluster's, the bandwidth is cheap.
func transport() *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 64, 64
	tr.TLSHandshakeTimeout = 10 * time.Second
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	tr.ForceAttemptHTTP2 = false // as the client's own: Nomad's streams want HTTP/1
	tr.DisableCompression = true
	return tr
}

// Close stops the queries that keep the builders in use fresh, and closes idle connections.
func (o *Orchestrator) Close() {
	o.close()
	o.c.Close()
}

// Address is the Nomad API address in use, for messages.
func (o *Orchestrator) Address() string { return o.c.Address() }

// Ready returns nil when Nomad answers and has a leader.
func (o *Orchestrator) Ready(ctx context.Context) error {
	var leader string
	if _, err := o.c.Raw().Query("/v1/status/leader", &leader, (&nomad.QueryOptions{}).WithContext(ctx)); err != nil {
		return fmt.Errorf("nomad at %s: %w", o.c.Address(), err)
	}
	if leader == "" {
		return fmt.Errorf("nomad at %s has no leader", o.c.Address())
	}
	return nil
}

// EnsureNamespace creates namespace ns unless it exists.
func (o *Orchestrator) EnsureNamespace(ctx context.Context, ns string) error {
	q := (&nomad.QueryOptions{}).WithContext(ctx)
	if _, _, err := o.c.Namespaces().Info(ns, q); err == nil {
		return nil
	} else if !isNotFound(err) {
		return fmt.Errorf("nomad namespace %s: %w", ns, err)
	}
	w := (&nomad.WriteOptions{}).WithContext(ctx)
	if _, err := o.c.Namespaces().Register(&nomad.Namespace{Name: ns, Description: "Albatros builds"}, w); err != nil {
		var answered nomad.UnexpectedResponseError
		if errors.As(err, &answered) && answered.StatusCode() == 403 {
			// The bot's shipped policy (hcl/acl) grants no namespaces: only a management
			// token creates one.
			return fmt.Errorf("create nomad namespace %s: the bot's token may not (create it once: nomad namespace apply %s): %w", ns, ns, err)
		}
		return fmt.Errorf("create nomad namespace %s: %w", ns, err)
	}
	return nil
}

// Build is a dispatched build job as Nomad holds it.
type Build struct {
	Namespace string
	ID        string
	// Builder is the parameterized job the build was dispatched from.
	Builder string
	// Meta is the dispatch meta: REPO_URL, COMMIT, BRANCH, FLAVOR, and TAG or PR.
	Meta map[string]string
	// Payload is the dispatch payload (the secrets file), decompressed.
	Payload []byte
	// Secrets is true when the bot gave the build the repository's secrets, as its ledger
	// recorded at the dispatch (never read from the payload, which anyone who dispatches a
	// job can fill).
	Secrets bool
	// Cause and Sender are what started the build, and who, as its record says.
	Cause, Sender string
	// Schedule is the schedule a scheduled build is of (DispatchRequest.Schedule).
	Schedule string
	// Holder is the organization that held the repository's name when the build was
	// dispatched (DispatchRequest.Holder), when HolderKnown (records of bots before it was
	// kept do not say).
	Holder      int64
	HolderKnown bool
	// Status is Nomad's job status: pending, running or dead.
	Status    string
	Submitted time.Time
	// Stopped is true once the job was stopped (Nomad's job stop): superseded, its pull
	// request closed, or by an operator.
	Stopped bool
}

// Build reads a dispatched build job; ErrNotFound when Nomad does not know it, or when it
// is not one of the bot's builds (ErrNotOurs: the ledger does not name it).
func (o *Orchestrator) Build(ctx context.Context, ns, id string) (*Build, error) {
	digest, _, ok := digestOf(id)
	if !ok {
		return nil, fmt.Errorf("job %s in %s: %w", id, ns, ErrNotOurs)
	}
	// The ledger first: a job the bot never recorded costs Nomad nothing.
	recs, err := o.ledger.Records(ctx, []string{digest})
	if err != nil {
		return nil, fmt.Errorf("record of %s in %s: %w", id, ns, err)
	}
	if rec, found := recs[digest]; !found || rec.Namespace != ns {
		return nil, fmt.Errorf("job %s in %s: %w", id, ns, ErrNotOurs)
	}
	job, _, err := o.c.Jobs().Info(id, (&nomad.QueryOptions{Namespace: ns}).WithContext(ctx))
	if err != nil {
		if isNotFound(err) {
			return nil, fmt.Errorf("build %s in %s: %w", id, ns, ErrNotFound)
		}
		return nil, fmt.Errorf("build %s in %s: %w", id, ns, err)
	}
	// Only the bot's own dispatches are builds: a child of a builder it dispatched to, as
	// its ledger recorded before the dispatch. The log pages serve nothing else of the
	// cluster, and nothing else gets a status.
	rec := recs[digest]
	if !rec.matches(ns, id, deref(job.ParentID), job.Meta) {
		return nil, fmt.Errorf("job %s in %s: %w", id, ns, ErrNotOurs)
	}
	b := &Build{
		Namespace:   ns,
		ID:          id,
		Builder:     rec.Builder,
		Meta:        job.Meta,
		Payload:     job.Payload,
		Secrets:     rec.Secrets,
		Cause:       rec.Cause,
		Sender:      rec.Sender,
		Schedule:    rec.Schedule,
		Status:      deref(job.Status),
		HolderKnown: rec.Holder != nil,
		Stopped:     job.Stop != nil && *job.Stop,
	}
	if rec.Holder != nil {
		b.Holder = *rec.Holder
	}
	if !b.Secrets {
		b.Payload = nil
	}
	if job.SubmitTime != nil {
		b.Submitted = time.Unix(0, *job.SubmitTime)
	}
	return b, nil
}

// IsBuildID reports whether a job ID has the shape of the bot's dispatched builds. Anyone
// can give a job such an ID: only the ledger says whether it is one (see Build).
func IsBuildID(id string) bool {
	_, _, ok := digestOf(id)
	return ok
}

// isNotFound reports whether Nomad answered 404: its API client's status code only. Never
// the error's text: a transport error's message holds the URL, and job IDs hold "404" one
// time in fifty or so.
func isNotFound(err error) bool {
	var ue nomad.UnexpectedResponseError
	return errors.As(err, &ue) && ue.StatusCode() == 404
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// LogPath is the path of a build's log page on the bot: /logs/<namespace>/<job ID>, each
// segment escaped (a builder's job ID may hold any character but a slash's meaning).
func LogPath(ns, jobID string) string {
	segs := strings.Split(jobID, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return "/logs/" + url.PathEscape(ns) + "/" + strings.Join(segs, "/")
}

// ParseLogPath returns the namespace and job ID of a LogPath.
func ParseLogPath(path string) (ns, jobID string, ok bool) {
	rest, found := strings.CutPrefix(path, "/logs/")
	if !found {
		return "", "", false
	}
	ns, job, found := strings.Cut(rest, "/")
	if !found || ns == "" || job == "" {
		return "", "", false
	}
	segs := strings.Split(job, "/")
	for i, s := range segs {
		u, err := url.PathUnescape(s)
		if err != nil {
			return "", "", false
		}
		segs[i] = u
	}
	n, err := url.PathUnescape(ns)
	if err != nil {
		return "", "", false
	}
	return n, strings.Join(segs, "/"), true
}

// identity asks for uncompressed answers: the Nomad client asks for gzip on every request
// (and decodes gzip only when it is answered so).
type identity struct{ *http.Transport }

func (t identity) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Header.Get("Accept-Encoding") != "" {
		r = r.Clone(r.Context()) // a RoundTripper must not change its caller's request
		r.Header.Del("Accept-Encoding")
	}
	return t.Transport.RoundTrip(r)
}
