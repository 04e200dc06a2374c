// Package metrics is the bot's Prometheus metrics: what it was delivered and answered, what
// it dispatched and how fast, how its builds ended, what waits, how its requests to the
// forge, Nomad and Consul fared, what its reports and its reconciler did, its live logs, its
// archive writes and the leaderships it holds, with Go's runtime and the process beside
// them. It owns the Prometheus client: the other packages tell it what happened through
// the small interfaces they declare (pipeline.Observer, webhook.Options.Observe), which a
// *Metrics satisfies.
//
// No label takes a value an outsider chooses: a delivery's event is one of the names the
// bot knows (else "other"), a status code is a number, a flavor is one of the first
// MaxFlavors the bot reported (else "other": an entry that declares none lets /hook?flavor=
// name any). No repository, commit or user is a label.
package metrics

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the bot's metrics, in a registry of their own (not Prometheus's global one).
type Metrics struct {
	reg *prometheus.Registry

	deliveries    *prometheus.CounterVec
	dispatches    *prometheus.CounterVec
	dispatchTime  prometheus.Histogram
	builds        *prometheus.CounterVec
	requests      *prometheus.CounterVec
	reports       *prometheus.CounterVec
	reconciler    *prometheus.CounterVec
	archiveWrites *prometheus.CounterVec
	leader        *prometheus.GaugeVec

	flavorsMu sync.Mutex
	flavors   map[string]bool // the flavors that are label values
}

// MaxFlavors bounds the flavor label's values: past them, a flavor is "other".
const MaxFlavors = 64

// New returns the bot's metrics, the Go runtime's and the process's among them.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		reg: reg,
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "albatros_deliveries_total",
			Help: "Webhook deliveries answered, by forge, event (one the bot knows, else other) and HTTP status of the answer.",
		}, []string{"forge", "event", "code"}),
		dispatches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "albatros_dispatches_total",
			Help: "Dispatches of builder jobs asked of Nomad, by outcome (ok, error).",
		}, []string{"outcome"}),
		dispatchTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "albatros_dispatch_duration_seconds",
			Help:    "How long a dispatch took, from the claim of its build key to Nomad's answer.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		builds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "albatros_builds_total",
			Help: "Builds whose final status this bot wrote, by state (success, failure, error) and flavor.",
		}, []string{"state", "flavor"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "albatros_requests_total",
			Help: "Requests of the bot to the forge, Nomad and Consul, by outcome: the class of the answer's status (2xx, 3xx, 4xx, 5xx) or error (no answer).",
		}, []string{"service", "outcome"}),
		reports: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "albatros_reports_total",
			Help: "Reports of build results not written at once, by what became of them: retried (once per retry), given_up (left to the reconciler).",
		}, []string{"outcome"}),
		reconciler: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "albatros_reconciler_findings_total",
			Help: "What the reconciler found: unbuilt_head (a head without status or build, built), deferred (one left to a later pass), missing_build (a pending status of no build), ended_build (a pending status of a build that ended).",
		}, []string{"finding"}),
		archiveWrites: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "albatros_archive_writes_total",
			Help: "Writes of finished builds to the archive, by outcome (written, already: another bot or an earlier try had, error).",
		}, []string{"outcome"}),
		leader: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "albatros_leader",
			Help: "1 while this bot holds the leadership of a role (events, reconciler, installations, archive-retention), else 0.",
		}, []string{"role"}),
	}
	reg.MustRegister(m.deliveries, m.dispatches, m.dispatchTime, m.builds, m.requests, m.reports, m.reconciler, m.archiveWrites, m.leader,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, o := range []string{"ok", "error"} {
		m.dispatches.WithLabelValues(o)
	}
	for _, o := range []string{"retried", "given_up"} {
		m.reports.WithLabelValues(o)
	}
	for _, o := range []string{"written", "already", "error"} {
		m.archiveWrites.WithLabelValues(o)
	}
	return m
}

// Handler serves the metrics in Prometheus's text (or OpenMetrics) format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg, MaxRequestsInFlight: 4})
}

// Gauge adds a gauge whose value f gives when the metrics are read (the queue's length,
// the live logs' viewers): f must be quick and safe for concurrent use.
func (m *Metrics) Gauge(name, help string, f func() float64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
}

// knownEvents are the deliveries' event names (Gitea's and GitHub's headers) that are their
// own label value; any other is "other", so that a sender cannot grow the label's values.
var knownEvents = map[string]bool{
	"push": true, "create": true, "delete": true, "pull_request": true, "issue_comment": true,
	"pull_request_comment": true, "ping": true, "installation": true, "installation_repositories": true,
	"repository": true, "release": true, "status": true,
}

// Event is a delivery's event header as a label value: one the bot knows, "other" for any
// other, "none" when missing.
func Event(header string) string {
	switch {
	case header == "":
		return "none"
	case knownEvents[header]:
		return header
	}
	return "other"
}

// Delivery counts a delivery answered with code. forge is the route's (not the sender's
// word); event is the delivery's header, clamped (see Event).
func (m *Metrics) Delivery(forge, event string, code int) {
	m.deliveries.WithLabelValues(forge, Event(event), strconv.Itoa(code)).Inc()
}

// Dispatched counts a dispatch that took took and failed with err (nil: it was made, or
// found made before).
func (m *Metrics) Dispatched(took time.Duration, err error) {
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	m.dispatches.WithLabelValues(outcome).Inc()
	m.dispatchTime.Observe(took.Seconds())
}

// Reported counts a final status this bot wrote.
func (m *Metrics) Reported(flavor, state string) {
	m.builds.WithLabelValues(state, m.flavor(flavor)).Inc()
}

func (m *Metrics) flavor(f string) string {
	m.flavorsMu.Lock()
	defer m.flavorsMu.Unlock()
	if m.flavors[f] {
		return f
	}
	if m.flavors == nil {
		m.flavors = map[string]bool{}
	}
	if len(m.flavors) >= MaxFlavors {
		return "other"
	}
	m.flavors[f] = true
	return f
}

// ReportRetried counts a report tried again.
func (m *Metrics) ReportRetried() { m.reports.WithLabelValues("retried").Inc() }

// ReportGivenUp counts a report given up on.
func (m *Metrics) ReportGivenUp() { m.reports.WithLabelValues("given_up").Inc() }

// Reconciled counts one of the reconciler's findings (pipeline.Finding…).
func (m *Metrics) Reconciled(finding string) { m.reconciler.WithLabelValues(finding).Inc() }

// Archived counts a write to the archive: written, or found already written (written
// false), or failed (err).
func (m *Metrics) Archived(written bool, err error) {
	switch {
	case err != nil:
		m.archiveWrites.WithLabelValues("error").Inc()
	case written:
		m.archiveWrites.WithLabelValues("written").Inc()
	default:
		m.archiveWrites.WithLabelValues("already").Inc()
	}
}

// Lead wraps run, the work of role's leader, so that albatros_leader{role} is 1 while it
// runs.
func (m *Metrics) Lead(role string, run func()) {
	g := m.leader.WithLabelValues(role)
	g.Set(1)
	defer g.Set(0)
	run()
}

// Transport counts the requests made through next as service's (forge, nomad, consul), by
// outcome.
func (m *Metrics) Transport(service string, next http.RoundTripper) http.RoundTripper {
	return roundTripper{next: next, counts: [...]prometheus.Counter{
		m.requests.WithLabelValues(service, "error"),
		m.requests.WithLabelValues(service, "1xx"),
		m.requests.WithLabelValues(service, "2xx"),
		m.requests.WithLabelValues(service, "3xx"),
		m.requests.WithLabelValues(service, "4xx"),
		m.requests.WithLabelValues(service, "5xx"),
	}}
}

type roundTripper struct {
	next   http.RoundTripper
	counts [6]prometheus.Counter // error, then by the status's first digit
}

func (t roundTripper) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(r)
	switch {
	case err != nil:
		t.counts[0].Inc()
	case resp.StatusCode >= 100 && resp.StatusCode < 600:
		t.counts[resp.StatusCode/100].Inc()
	default:
		t.counts[0].Inc()
	}
	return resp, err
}

// CloseIdleConnections closes next's idle connections, as http.Client.CloseIdleConnections
// asks of its transport.
func (t roundTripper) CloseIdleConnections() {
	if c, ok := t.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
