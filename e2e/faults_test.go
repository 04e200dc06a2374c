package e2e

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"code.gitea.io/sdk/gitea"
	nomad "github.com/hashicorp/nomad/api"

	"github.com/albatros-ci/albatros/pipeline"
	"github.com/albatros-ci/albatros/registry"
	"github.com/albatros-ci/albatros/testenv"
)

// Faults, injected into real servers, one after the other: Nomad restarted while a build
// runs, Nomad down when a delivery arrives, Gitea down when a result is due. Every build
// ends with its final status once they are back, none twice.
func TestFaults(t *testing.T) {
	bin := testenv.NeedBinary(t, "nomad")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// A Nomad of its own that keeps its state on disk, to restart; the package's is a
	// dev agent, and other tests use it.
	n, err := testenv.StartPersistentNomad(ctx, bin)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Stop)
	addr, err := testenv.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	prefix := testenv.UniqueName("faults") + "/"
	b := ownBot(t, addr, prefix, "NOMAD_ADDR="+n.Addr, "ALBATROS_RECONCILE_INTERVAL=2s")
	logged := func(what string) {
		t.Helper()
		if !strings.Contains(b.Log(), what) {
			t.Errorf("the bot's log does not say %q", what)
		}
	}
	p := newProject(t, nil, "")
	p.registerUnder(prefix, addr)
	count := func(sha string) int {
		q := &nomad.QueryOptions{Namespace: testenv.DefaultNamespace}
		jobs, _, err := n.Client(t).Jobs().List(q)
		if err != nil {
			t.Fatal(err)
		}
		c := 0
		for _, j := range jobs {
			if j.ParentID != "" {
				if job, _, err := n.Client(t).Jobs().Info(j.ID, q); err == nil && job.Meta["COMMIT"] == sha {
					c++
				}
			}
		}
		return c
	}
	once := func(name, sha string) {
		t.Helper()
		if c := count(sha); c != 1 {
			t.Errorf("%s: %d builds of %s, want 1", name, c, sha[:7])
		}
		if c := p.count(sha, "albatros/default", gitea.StatusSuccess); c != 1 {
			t.Errorf("%s: %d success statuses of %s, want 1: %v", name, c, sha[:7], p.statuses(sha, "albatros/default"))
		}
	}

	// Nomad restarted while a build runs: its events before the restart are gone from
	// Nomad's buffer; the bot lists what changed, and the build ends with its status.
	restarted := p.push("main", script("sleep 8\necho survived a restart\n"))
	p.waitStatus(restarted, "albatros/default", gitea.StatusPending)
	time.Sleep(2 * time.Second) // the task runs
	n.StopAgent()
	time.Sleep(2 * time.Second)
	if err := n.StartAgent(ctx); err != nil {
		t.Fatal(err)
	}
	p.waitStatus(restarted, "albatros/default", gitea.StatusSuccess)
	once("nomad restarted", restarted)
	logged("event stream")
	logged("caught up on the builds that changed meanwhile")

	// Nomad down when a delivery arrives: 503, an error status that says so, and the build
	// once Nomad is back, by the reconciler.
	n.StopAgent()
	missed := p.push("main", script("echo built once nomad was back\n"))
	st := p.waitStatus(missed, "albatros/default", gitea.StatusError)
	if st.Description != pipeline.NomadDownDescription {
		t.Errorf("status while Nomad is down: %q, want %q", st.Description, pipeline.NomadDownDescription)
	}
	if d := p.proxy.deliveriesOf(missed); len(d) == 0 || d[len(d)-1].Status != http.StatusServiceUnavailable {
		t.Errorf("deliveries of the push while Nomad is down: %+v, want 503", d)
	}
	if err := n.StartAgent(ctx); err != nil {
		t.Fatal(err)
	}
	p.waitStatus(missed, "albatros/default", gitea.StatusSuccess)
	once("nomad down at delivery", missed)
	logged("reconciler: a head without status or build: building it")

	// Gitea down when the result is due (after the build has cloned the code): the bot
	// retries until it is back.
	late := p.push("main", script("sleep 5\necho done while gitea was down\n"))
	p.waitStatus(late, "albatros/default", gitea.StatusPending)
	time.Sleep(3 * time.Second) // the build has cloned
	g := env.Gitea(t)
	g.StopServer()
	time.Sleep(8 * time.Second) // the build ends, its report fails and is retried
	if err := g.StartServer(ctx); err != nil {
		t.Fatal(err)
	}
	p.waitStatus(late, "albatros/default", gitea.StatusSuccess)
	once("gitea down", late)
	logged("build result not reported yet: retrying")
}

// Consul stopped while the bot runs: the bot serves the entries it read last, so a push
// still builds and reports, and /healthz says it is degraded; once Consul is back,
// without restarting the bot, /healthz is plain "ok" again, and the bot's dedup records
// and leaderships work again.
func TestConsulDown(t *testing.T) {
	t.Parallel() // after the tests that stop shared servers; it shares none of its own
	bin := testenv.NeedBinary(t, "consul")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// A Consul of its own that keeps its keys on disk, to stop and start again; the
	// package's is a dev agent, and other tests use it.
	c, err := testenv.StartPersistentConsul(ctx, bin)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	addr, err := testenv.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	prefix := testenv.UniqueName("consuldown") + "/"
	b := ownBot(t, addr, prefix, "CONSUL_HTTP_ADDR="+c.Addr, "ALBATROS_RECONCILE_INTERVAL=2s")
	p := newProject(t, nil, "")
	p.registerIn(c.Client(t), prefix, addr)
	health := func() (int, string) {
		resp, err := http.Get(b.URL + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}

	before := p.push("main", script("echo built before consul stopped\n"))
	p.waitStatus(before, "albatros/default", gitea.StatusSuccess)

	c.StopAgent()
	during := p.push("main", script("echo built while consul was down\n"))
	if d := p.proxy.wait("push", during); d.Status != http.StatusAccepted {
		t.Errorf("a delivery while Consul is down: %d, want 202 (the entry last read)", d.Status)
	}
	p.waitStatus(during, "albatros/default", gitea.StatusSuccess)
	if code, body := health(); code != http.StatusOK || !strings.Contains(body, "degraded: consul") || !strings.Contains(body, "serving the entries last read") {
		t.Errorf("/healthz while Consul is down: %d %q, want 200 saying it serves the entries last read", code, body)
	}

	if err := c.StartAgent(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for code, body := health(); code != http.StatusOK || strings.Contains(body, "degraded"); code, body = health() {
		if time.Now().After(deadline) {
			t.Fatalf("/healthz 30 s after Consul is back: %d %q", code, body)
		}
		time.Sleep(500 * time.Millisecond)
	}
	after := p.push("main", script("echo built after consul came back\n"))
	p.waitStatus(after, "albatros/default", gitea.StatusSuccess)
	p.builtOnce(before, during, after)
	// The build after Consul came back was claimed in Consul again.
	pairs, _, err := c.Client(t).KV().List(registry.RunPrefix(prefix)+"dedup/", nil)
	if err != nil {
		t.Fatal(err)
	}
	settled := 0
	for _, pair := range pairs {
		if strings.Contains(string(pair.Value), `"job"`) {
			settled++
		}
	}
	if settled < 2 { // the first build's, and the last one's (each with its report records)
		t.Errorf("%d settled dedup records after Consul came back, want the builds' again", settled)
	}
	if !strings.Contains(b.Log(), "registry: reading the entries failed, retrying") {
		t.Error("the bot's log does not say that reading the entries failed")
	}
}
