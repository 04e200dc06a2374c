package metrics_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/albatros-ci/albatros/metrics"
)

// scrape reads the metrics as Prometheus does, in its text format.
func scrape(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("scrape: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return string(b)
}

func wantLines(t *testing.T, got string, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if !strings.Contains(got, "\n"+l+"\n") {
			t.Errorf("no line %q in the metrics", l)
		}
	}
}

// What the bot is told shows in the scrape, under the names and labels documented; an
// event header a sender made up is "other", however many they make up.
func TestMetricsCountWhatTheyAreTold(t *testing.T) {
	m := metrics.New()
	m.Delivery("gitea", "push", 202)
	m.Delivery("gitea", "push", 202)
	m.Delivery("gitea", "push", 403)
	for _, made := range []string{"x-1", "x-2", "<script>", strings.Repeat("a", 300)} {
		m.Delivery("github", made, 400)
	}
	m.Delivery("github", "", 400)
	m.Dispatched(30*time.Millisecond, nil)
	m.Dispatched(2*time.Second, errors.New("nomad: 500"))
	m.Reported("default", "success")
	m.Reported("nix", "failure")
	m.ReportRetried()
	m.ReportRetried()
	m.ReportGivenUp()
	m.Reconciled("unbuilt_head")
	m.Archived(true, nil)
	m.Archived(false, nil)
	m.Archived(false, errors.New("s3: 503"))
	queue := 3.0
	m.Gauge("albatros_queue_deliveries", "waiting", func() float64 { return queue })
	held := make(chan struct{})
	go m.Lead("events", func() { <-held })
	for !strings.Contains(scrape(t, m), "\nalbatros_leader{role=\"events\"} 1\n") {
		time.Sleep(time.Millisecond)
	}
	got := scrape(t, m)
	wantLines(t, got,
		`albatros_deliveries_total{code="202",event="push",forge="gitea"} 2`,
		`albatros_deliveries_total{code="403",event="push",forge="gitea"} 1`,
		`albatros_deliveries_total{code="400",event="other",forge="github"} 4`,
		`albatros_deliveries_total{code="400",event="none",forge="github"} 1`,
		`albatros_dispatches_total{outcome="ok"} 1`,
		`albatros_dispatches_total{outcome="error"} 1`,
		`albatros_dispatch_duration_seconds_bucket{le="0.05"} 1`,
		`albatros_dispatch_duration_seconds_bucket{le="2.5"} 2`,
		`albatros_dispatch_duration_seconds_count 2`,
		`albatros_builds_total{flavor="default",state="success"} 1`,
		`albatros_builds_total{flavor="nix",state="failure"} 1`,
		`albatros_reports_total{outcome="retried"} 2`,
		`albatros_reports_total{outcome="given_up"} 1`,
		`albatros_reconciler_findings_total{finding="unbuilt_head"} 1`,
		`albatros_archive_writes_total{outcome="written"} 1`,
		`albatros_archive_writes_total{outcome="already"} 1`,
		`albatros_archive_writes_total{outcome="error"} 1`,
		`albatros_queue_deliveries 3`,
		`albatros_leader{role="events"} 1`,
	)
	for _, l := range strings.Split(got, "\n") {
		if strings.HasPrefix(l, "albatros_deliveries_total{") && !strings.Contains(l, `event="push"`) && !strings.Contains(l, `event="other"`) && !strings.Contains(l, `event="none"`) {
			t.Errorf("a made-up event is a label value: %s", l)
		}
	}
	for _, runtime := range []string{"go_goroutines ", "go_memstats_heap_alloc_bytes ", "process_resident_memory_bytes "} {
		if !strings.Contains(got, "\n"+runtime) {
			t.Errorf("no %s among the runtime's metrics", runtime)
		}
	}
	close(held)
	for !strings.Contains(scrape(t, m), "\nalbatros_leader{role=\"events\"} 0\n") {
		time.Sleep(time.Millisecond)
	}
}

// The transport counts each request by the class of its answer, and a request that got
// none as an error; it passes the answer on untouched.
func TestTransportCountsRequestsByOutcome(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			io.WriteString(w, "fine")
		case "/missing":
			http.NotFound(w, r)
		default:
			http.Error(w, "down", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	m := metrics.New()
	c := &http.Client{Transport: m.Transport("nomad", http.DefaultTransport)}
	for _, path := range []string{"/ok", "/ok", "/missing", "/broken"} {
		resp, err := c.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if path == "/ok" && string(body) != "fine" {
			t.Errorf("body %q", body)
		}
	}
	if _, err := c.Get("http://127.0.0.1:1/"); err == nil {
		t.Fatal("a request to a closed port answered")
	}
	c.CloseIdleConnections()
	wantLines(t, scrape(t, m),
		`albatros_requests_total{outcome="2xx",service="nomad"} 2`,
		`albatros_requests_total{outcome="4xx",service="nomad"} 1`,
		`albatros_requests_total{outcome="5xx",service="nomad"} 1`,
		`albatros_requests_total{outcome="error",service="nomad"} 1`,
	)
}

// However many flavors builds are reported in, the flavor label has at most MaxFlavors
// values and "other".
func TestFlavorLabelIsBounded(t *testing.T) {
	m := metrics.New()
	for i := range 1000 {
		m.Reported("f"+strconv.Itoa(i), "success")
	}
	got := scrape(t, m)
	if n := strings.Count(got, "\nalbatros_builds_total{"); n != metrics.MaxFlavors+1 {
		t.Errorf("%d series of albatros_builds_total, want %d", n, metrics.MaxFlavors+1)
	}
	wantLines(t, got, `albatros_builds_total{flavor="other",state="success"} `+strconv.Itoa(1000-metrics.MaxFlavors), `albatros_builds_total{flavor="f0",state="success"} 1`)
}
