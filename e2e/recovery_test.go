package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"code.gitea.io/sdk/gitea"
	consul "github.com/hashicorp/consul/api"
	nomad "github.com/hashicorp/nomad/api"

	"github.com/albatros-ci/albatros/pipeline"
	"github.com/albatros-ci/albatros/testenv"
)

// ownBot starts a bot on addr with a registry of its own (Consul prefix prefix), so that it
// leads its own event stream and reconciler, apart from the package's bot, and may be
// killed. extra settings come last.
func ownBot(t *testing.T, addr, prefix string, extra ...string) *testenv.Bot {
	t.Helper()
	bot(t) // builds the binary
	n, c := env.Nomad(t), env.Consul(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	settings := append(append(n.Env(), c.Env()...),
		"ALBATROS_BUILDER_DRIVER=raw_exec",
		"ALBATROS_BUILDER_VARS=cpu=100,memory=128",
		"ALBATROS_LOG_LEVEL=debug",
		"ALBATROS_CONSUL_PREFIX="+prefix,
	)
	b, err := testenv.StartBotOn(ctx, botBin, addr, append(settings, extra...))
	if err != nil {
		t.Fatalf("start a bot of its own: %v", err)
	}
	t.Cleanup(b.Stop)
	b.LogOnFailure(t)
	return b
}

// registerUnder writes the repository's entry (with its hook secret and Gitea access)
// under a registry prefix of its own, and points a webhook at addr through a recorder.
func (p *project) registerUnder(prefix, addr string) {
	p.t.Helper()
	p.registerIn(env.Consul(p.t).Client(p.t), prefix, addr)
}

// registerIn is registerUnder in the Consul that c talks to.
func (p *project) registerIn(c *consul.Client, prefix, addr string) {
	p.t.Helper()
	raw, err := json.Marshal(entry{
		"hook":  map[string]string{"secret": p.secret},
		"gitea": map[string]string{"url": p.g.URL, "token": p.owner.Token},
	})
	if err != nil {
		p.t.Fatal(err)
	}
	key := prefix + base64.StdEncoding.EncodeToString([]byte(p.repo.CloneURL))
	if _, err := c.KV().Put(&consul.KVPair{Key: key, Value: raw}, nil); err != nil {
		p.t.Fatal(err)
	}
	p.proxy = newRecorder(p.t, "http://"+addr+"/webhook/gitea")
	p.g.CreateWebhook(p.t, p.owner, p.repo, p.proxy.URL(), p.secret)
}

// waitJobsDead waits until every build of sha in Nomad has ended.
func (p *project) waitJobsDead(sha string) {
	p.t.Helper()
	c := env.Nomad(p.t).Client(p.t)
	deadline := time.Now().Add(60 * time.Second)
	for {
		dead, n := 0, 0
		for id, meta := range p.jobs() {
			if meta["COMMIT"] != sha {
				continue
			}
			n++
			if j, _, err := c.Jobs().Info(id, &nomad.QueryOptions{Namespace: "ci"}); err == nil && j.Status != nil && *j.Status == "dead" {
				dead++
			}
		}
		if n > 0 && dead == n {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("the builds of %s did not end within 60s (%d of %d)", sha[:7], dead, n)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// count is how many times sha got state in context.
func (p *project) count(sha, context string, state gitea.StatusState) int {
	n := 0
	for _, s := range p.statuses(sha, context) {
		if s == state {
			n++
		}
	}
	return n
}

// A bot killed (SIGKILL) mid-build and started again: the build that ended while no bot ran
// gets its final status, the one still running is followed to its end, a push made while
// the bot was down (its delivery failed) is built by the reconciler; each once.
func TestBotKilledAndRestarted(t *testing.T) {
	t.Parallel() // after the tests that stop shared servers; it shares none of its own
	addr, err := testenv.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	prefix := testenv.UniqueName("recovery") + "/"
	first := ownBot(t, addr, prefix)
	p := newProject(t, nil, "")
	p.registerUnder(prefix, addr)
	base := p.push("main", script("echo base\n")) // the default branch
	p.waitStatus(base, "albatros/default", gitea.StatusSuccess)
	quick := p.g.Push(t, p.owner, p.repo, "quick", "main", script("sleep 3\necho quick\n"), "quick")
	slow := p.g.Push(t, p.owner, p.repo, "slow", "main", script("sleep 40\necho slow\n"), "slow")
	p.waitStatus(quick, "albatros/default", gitea.StatusPending)
	p.waitStatus(slow, "albatros/default", gitea.StatusPending)

	first.Kill()
	p.waitJobsDead(quick)
	// Pushed while no bot runs: Gitea's delivery fails, and is never retried.
	missed := p.push("main", script("echo missed\n"))
	deadline := time.Now().Add(30 * time.Second)
	for len(p.proxy.deliveriesOf(missed)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("Gitea did not try to deliver the push made while the bot was down")
		}
		time.Sleep(200 * time.Millisecond)
	}

	ownBot(t, addr, prefix)
	p.waitStatus(quick, "albatros/default", gitea.StatusSuccess)
	p.waitStatus(slow, "albatros/default", gitea.StatusSuccess)
	st := p.waitStatus(missed, "albatros/default", gitea.StatusSuccess)
	if pending := p.statuses(missed, "albatros/default"); len(pending) == 0 {
		t.Fatal("no status of the missed push")
	}
	found := false
	for _, s := range p.g.Statuses(t, p.repo, missed) {
		if s.State == gitea.StatusPending && s.Description == pipeline.ReconciledDescription {
			found = true
		}
	}
	if !found {
		t.Errorf("the missed push's pending status does not say the reconciler found it")
	}
	t.Logf("missed push built: %s", st.TargetURL)

	p.builtOnce(quick, slow, missed)
}

// builtOnce checks that each commit has one build in Nomad and one success status.
func (p *project) builtOnce(shas ...string) {
	p.t.Helper()
	byCommit := map[string]int{}
	for _, meta := range p.jobs() {
		byCommit[meta["COMMIT"]]++
	}
	for _, sha := range shas {
		if byCommit[sha] != 1 {
			p.t.Errorf("%d builds of %s, want 1", byCommit[sha], sha[:7])
		}
		if n := p.count(sha, "albatros/default", gitea.StatusSuccess); n != 1 {
			p.t.Errorf("%d success statuses of %s, want 1: %v", n, sha[:7], p.statuses(sha, "albatros/default"))
		}
	}
}

// deliveriesOf returns the deliveries the recorder saw for a push of sha.
func (r *recorder) deliveriesOf(sha string) []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []delivery
	for _, d := range r.got {
		if strings.Contains(string(d.Body), sha) {
			out = append(out, d)
		}
	}
	return out
}
