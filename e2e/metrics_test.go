package e2e

import (
	"bufio"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"code.gitea.io/sdk/gitea"
)

// metrics scrapes the bot's /metrics: each sample by its name and labels as written.
func metrics(t *testing.T) map[string]float64 {
	t.Helper()
	code, body := get(t, bot(t).URL+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// The metrics move as a real flow goes: a push delivered, dispatched and passed, a
// delivery refused for its signature, a report the forge refuses retried; and the bot's
// requests to Nomad, Consul and the forge, its leadership and Go's runtime are there.
// (Other tests share the bot: counters are compared by at least.)
func TestMetricsFollowARealFlow(t *testing.T) {
	before := metrics(t)
	p := newProject(t, entry{}, "/webhook/gitea")
	sha := p.push("main", script("echo metrics\n"))
	p.waitStatus(sha, "albatros/default", gitea.StatusSuccess)

	// A delivery the repository's secret did not sign.
	d := p.proxy.wait("push", sha)
	h := d.Header.Clone()
	h.Set("X-Gitea-Signature", strings.Repeat("0", 64))
	if code, _ := send(t, "/webhook/gitea", h, d.Body); code != http.StatusForbidden {
		t.Fatalf("a forged signature: %d, want 403", code)
	}

	// A repository whose forge token is refused: its result is retried.
	refused := newProject(t, entry{"gitea": map[string]string{"url": env.Gitea(t).URL, "token": "not-a-token"}}, "/webhook/gitea")
	refused.push("main", script("echo refused\n"))

	var after map[string]float64
	moved := func(name string, by float64) bool { return after[name]-before[name] >= by }
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		after = metrics(t)
		if moved(`albatros_reports_total{outcome="retried"}`, 1) {
			break
		}
	}
	for _, c := range []struct {
		name string
		by   float64
	}{
		{`albatros_deliveries_total{code="202",event="push",forge="gitea"}`, 2},
		{`albatros_deliveries_total{code="403",event="push",forge="gitea"}`, 1},
		{`albatros_dispatches_total{outcome="ok"}`, 2},
		{`albatros_dispatch_duration_seconds_count`, 2},
		{`albatros_builds_total{flavor="default",state="success"}`, 1},
		{`albatros_reports_total{outcome="retried"}`, 1},
		{`albatros_requests_total{outcome="2xx",service="nomad"}`, 1},
		{`albatros_requests_total{outcome="2xx",service="consul"}`, 1},
		{`albatros_requests_total{outcome="2xx",service="forge"}`, 1},
		{`albatros_requests_total{outcome="4xx",service="forge"}`, 1},
		{`albatros_archive_writes_total{outcome="written"}`, 1},
	} {
		if !moved(c.name, c.by) {
			t.Errorf("%s moved by %v, want at least %v", c.name, after[c.name]-before[c.name], c.by)
		}
	}
	for _, name := range []string{`albatros_leader{role="events"}`, `albatros_leader{role="reconciler"}`} {
		if after[name] != 1 {
			t.Errorf("%s = %v, want 1: the only bot leads", name, after[name])
		}
	}
	for _, name := range []string{"albatros_queue_deliveries", "albatros_log_viewers", "go_goroutines", "process_resident_memory_bytes"} {
		if _, ok := after[name]; !ok {
			t.Errorf("no %s", name)
		}
	}
}
