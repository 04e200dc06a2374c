// Package deploy tests the bot run as the operator runs it: the shipped job
// (hcl/albatros.nomad.hcl) on an ACL-enabled Nomad, raw_exec with the binary of make build,
// its settings in the Variable nomad/jobs/albatros, its Nomad access through its workload
// identity and the shipped policy attached to the job, its Consul token and the event
// stream's from the Variable, behind a load balancer that sends requests to the service's
// registered allocations. Two allocations become healthy and build a push; a new version
// then rolls out one allocation at a time while pushes keep arriving, and every push is
// built once with one final status.
package deploy

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"code.gitea.io/sdk/gitea"
	consul "github.com/hashicorp/consul/api"
	nomad "github.com/hashicorp/nomad/api"

	"github.com/albatros-ci/albatros/hcl"
	"github.com/albatros-ci/albatros/testenv"
)

var env = testenv.New(testenv.Options{Nomad: true, Consul: true, Gitea: true, S3: true})

func TestMain(m *testing.M) { os.Exit(env.Run(m)) }

// botNS is the bot's own namespace, the shipped job's default: the operators'.
const botNS = "albatros"

// balancer sends each request to one of the allocations that the service "albatros" has
// registered in Nomad (read every 250 ms), in turn, as Traefik or Fabio would from Nomad's
// catalog: a stopping allocation leaves the catalog (shutdown_delay) before it stops.
type balancer struct {
	mu      sync.Mutex
	targets []string
	next    atomic.Uint64
	served  sync.Map // target -> *atomic.Int64
}

func (b *balancer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	targets := b.targets
	b.mu.Unlock()
	if len(targets) == 0 {
		http.Error(w, "no bot registered", http.StatusBadGateway)
		return
	}
	target := targets[int(b.next.Add(1))%len(targets)]
	n, _ := b.served.LoadOrStore(target, new(atomic.Int64))
	n.(*atomic.Int64).Add(1)
	u, _ := url.Parse("http://" + target)
	httputil.NewSingleHostReverseProxy(u).ServeHTTP(w, r)
}

// wait waits until the balancer sends requests to n allocations.
func (b *balancer) wait(t *testing.T, n int) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		b.mu.Lock()
		got := len(b.targets)
		b.mu.Unlock()
		if got == n {
			return
		}
	}
	t.Fatalf("the service does not list %d allocations", n)
}

func (b *balancer) follow(ctx context.Context, c *nomad.Client) {
	for ctx.Err() == nil {
		regs, _, err := c.Services().Get("albatros", (&nomad.QueryOptions{Namespace: botNS}).WithContext(ctx))
		if err == nil {
			var targets []string
			for _, r := range regs {
				if r.JobID == "albatros" && r.Namespace == botNS { // not a service of the name from another job
					targets = append(targets, net.JoinHostPort(r.Address, fmt.Sprint(r.Port)))
				}
			}
			b.mu.Lock()
			b.targets = targets
			b.mu.Unlock()
		}
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
}

const script = `echo "built with token=[${DEPLOY_TOKEN-none}]"` + "\n"

func TestTheShippedJobRollsOutWithoutLosingAPush(t *testing.T) {
	n, c, g, s3 := env.Nomad(t), env.Consul(t), env.Gitea(t), env.S3(t)
	nc := n.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()

	dir := t.TempDir()
	bin, err := testenv.BuildBot(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}

	// The load balancer, whose URL is the bot's public one.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lb := &balancer{}
	srv := &http.Server{Handler: lb, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	followCtx, stopFollow := context.WithCancel(ctx)
	defer stopFollow()
	go lb.follow(followCtx, nc)
	botURL := "http://" + ln.Addr().String()

	// A repository registered by hand under the bot's prefix, its webhook on the balancer.
	prefix := "deploy/"
	owner := g.CreateUser(t, testenv.UniqueName("owner"))
	org := testenv.UniqueName("org")
	g.CreateOrg(t, owner, org)
	repo := g.CreateRepo(t, owner, org, "app")
	hook := "whsec-" + testenv.UniqueName("h")
	raw, _ := json.Marshal(map[string]any{
		"hook":    map[string]string{"secret": hook},
		"gitea":   map[string]string{"url": g.URL, "token": owner.Token},
		"trusted": map[string]any{"senders": []string{owner.Name}},
		"secrets": map[string]string{"DEPLOY_TOKEN": "deploy-secret-1"},
	})
	if _, err := c.Client(t).KV().Put(&consul.KVPair{Key: prefix + base64.StdEncoding.EncodeToString([]byte(repo.CloneURL)), Value: raw}, nil); err != nil {
		t.Fatal(err)
	}
	g.CreateWebhook(t, owner, repo, botURL+"/webhook/gitea", hook)

	n.CreateNamespace(t, botNS)
	// The shipped policies: the bot's attached to the job, the Consul and event stream's as
	// tokens in the Variable.
	if _, err := nc.ACLPolicies().Upsert(&nomad.ACLPolicy{
		Name: "albatros-bot-job", Rules: hcl.NomadBotPolicy(testenv.DefaultNamespace),
		JobACL: &nomad.JobACL{Namespace: botNS, JobID: "albatros"},
	}, nil); err != nil {
		t.Fatal(err)
	}
	consulToken, err := c.BotToken(prefix)
	if err != nil {
		t.Fatal(err)
	}
	readToken, err := n.ReadToken(testenv.DefaultNamespace)
	if err != nil {
		t.Fatal(err)
	}
	items := nomad.VariableItems{
		"ALBATROS_URL":                botURL,
		"ALBATROS_GITEA_URL":          strings.TrimSuffix(g.URL, "/"),
		"ALBATROS_CONSUL_PREFIX":      prefix,
		"ALBATROS_RECONCILE_INTERVAL": "15s",
		"ALBATROS_ARCHIVE":            s3.URL("deploy"),
		"CONSUL_HTTP_ADDR":            c.Addr,
		"CONSUL_HTTP_TOKEN":           consulToken,
		"ALBATROS_NOMAD_READ_TOKEN":   readToken,
	}
	for _, kv := range s3.Env() {
		k, v, _ := strings.Cut(kv, "=")
		items[k] = v
	}
	if _, _, err := nc.Variables().Create(&nomad.Variable{Namespace: botNS, Path: "nomad/jobs/albatros", Items: items}, &nomad.WriteOptions{Namespace: botNS}); err != nil {
		t.Fatal(err)
	}

	// The builders are the operator's to register: Nomad 1.6 registers no job for a
	// workload identity.
	spec := hcl.Builders[hcl.DefaultBuilder]
	builder, err := nc.Jobs().ParseHCLOpts(&nomad.JobsParseRequest{JobHCL: spec.Source, Variables: spec.VarFile(map[string]string{"driver": "raw_exec", "cpu": "100", "memory": "128"}), Canonicalize: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := nc.Jobs().Register(builder, &nomad.WriteOptions{Namespace: testenv.DefaultNamespace}); err != nil {
		t.Fatal(err)
	}

	register := func(version string) {
		t.Helper()
		job, err := nc.Jobs().ParseHCLOpts(&nomad.JobsParseRequest{
			JobHCL:       hcl.BotJob,
			Variables:    fmt.Sprintf("driver = \"raw_exec\"\nbinary = %q\nversion = %q\n", bin, version),
			Canonicalize: true,
		})
		if err != nil {
			t.Fatalf("parse the shipped job: %v", err)
		}
		if *job.Namespace != botNS {
			t.Fatalf("the shipped job's namespace: %s, want %s", *job.Namespace, botNS)
		}
		if _, _, err := nc.Jobs().Register(job, &nomad.WriteOptions{Namespace: botNS}); err != nil {
			t.Fatalf("register the shipped job: %v", err)
		}
	}
	t.Cleanup(func() { _, _, _ = nc.Jobs().Deregister("albatros", true, &nomad.WriteOptions{Namespace: botNS}) })
	register("v1")
	waitDeployed(t, ctx, nc, 2)
	lb.wait(t, 2)

	push := func(note string) string {
		return g.Push(t, owner, repo, "main", "", map[string]testenv.File{
			".albatros": {Content: script, Executable: true},
			"NOTE":      {Content: note + "\n"},
		}, "commit: "+note)
	}
	first := push("first")
	g.WaitStatus(t, repo, first, "albatros/default", gitea.StatusSuccess, 3*time.Minute)

	// A new version rolls out, one allocation at a time, while pushes keep arriving.
	register("v2")
	var shas []string
	for i := range 5 {
		shas = append(shas, push(fmt.Sprintf("during the rollout %d", i)))
		time.Sleep(3 * time.Second)
	}
	waitDeployed(t, ctx, nc, 2)
	for _, sha := range append([]string{first}, shas...) {
		// The last push supersedes the others of main that still run: success or
		// superseded, each once.
		st := waitFinal(t, g, repo, sha)
		if finals := finalStatuses(t, g, repo, sha); finals != 1 {
			t.Errorf("%s: %d final statuses, want 1 (%s)", sha[:8], finals, st.Description)
		}
		if jobs := buildsOf(t, n, repo, sha); jobs != 1 {
			t.Errorf("%s: %d builds in Nomad, want 1", sha[:8], jobs)
		}
	}
	last := shas[len(shas)-1]
	if st := g.WaitStatus(t, repo, last, "albatros/default", gitea.StatusSuccess, time.Minute); st == nil {
		t.Errorf("the last push did not pass")
	}

	// A build asks Consul and Nomad without a token, and looks for the bot's tokens: it is
	// refused, and finds none.
	probe := fmt.Sprintf(`code() { curl -s -o /dev/null -w '%%{http_code}' "$@"; }
echo "consul-read=$(curl -s http://%[1]s/v1/kv/%[2]s?recurse | wc -c)"
echo "consul-write=$(code -X PUT -d evil http://%[1]s/v1/kv/%[2]sevil)"
echo "nomad=$(code '%[3]s/v1/jobs?namespace=ci')"
echo "socket=$(code --unix-socket "$NOMAD_SECRETS_DIR/api.sock" 'http://localhost/v1/jobs?namespace=ci')"
echo "tokens=$(env | grep -c -e '^NOMAD_TOKEN=' -e '^CONSUL_HTTP_TOKEN=' -e '^ALBATROS_.*TOKEN')"
for f in nomad_token consul-token nomad-read-token; do test -e "$NOMAD_SECRETS_DIR/$f" && echo "found $f"; done
echo probed
`, c.Addr, prefix, n.Addr)
	probed := g.Push(t, owner, repo, "probe", "", map[string]testenv.File{".albatros": {Content: probe, Executable: true}}, "probe the build's access")
	g.WaitStatus(t, repo, probed, "albatros/default", gitea.StatusSuccess, 3*time.Minute)
	var probeJob string
	for _, st := range g.Statuses(t, repo, probed) {
		if i := strings.Index(st.TargetURL, "/logs/"+testenv.DefaultNamespace+"/"); i >= 0 {
			probeJob = st.TargetURL[i+len("/logs/"+testenv.DefaultNamespace+"/"):]
		}
	}
	out := n.BuildLog(t, testenv.DefaultNamespace, probeJob)
	for _, want := range []string{"consul-read=0", "consul-write=403", "nomad=403", "tokens=0", "probed"} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("the build's probe: no %q in\n%s", want, out)
		}
	}
	if !strings.Contains(out, "socket=401") && !strings.Contains(out, "socket=403") {
		t.Errorf("the build's task API socket answered without a token:\n%s", out)
	}
	if strings.Contains(out, "found ") {
		t.Errorf("the build found a token file:\n%s", out)
	}

	served := 0
	lb.served.Range(func(_, v any) bool {
		if v.(*atomic.Int64).Load() > 0 {
			served++
		}
		return true
	})
	if served < 3 {
		t.Errorf("requests reached %d allocations, want the two of v1 and at least one of v2", served)
	}
}

// deployWithin bounds a deployment: each allocation has healthy_deadline (3 m) to become
// healthy.
var deployWithin = 90 * time.Second

// waitDeployed waits for the job's latest deployment to succeed with want healthy
// allocations.
func waitDeployed(t *testing.T, ctx context.Context, c *nomad.Client, want int) {
	t.Helper()
	deadline := time.Now().Add(deployWithin)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		d, _, err := c.Jobs().LatestDeployment("albatros", &nomad.QueryOptions{Namespace: botNS})
		if err == nil && d != nil {
			healthy := 0
			for _, tg := range d.TaskGroups {
				healthy += tg.HealthyAllocs
			}
			switch {
			case d.Status == "successful" && healthy >= want:
				return
			case d.Status == "failed":
				t.Fatalf("deployment %s failed: %s", d.ID, d.StatusDescription)
			}
		}
		time.Sleep(time.Second)
	}
	allocs, _, _ := c.Jobs().Allocations("albatros", false, &nomad.QueryOptions{Namespace: botNS})
	for _, stub := range allocs {
		t.Logf("allocation %s: %s/%s", stub.ID[:8], stub.ClientStatus, stub.DesiredStatus)
		if a, _, err := c.Allocations().Info(stub.ID, &nomad.QueryOptions{Namespace: botNS}); err == nil {
			for task, st := range a.TaskStates {
				for _, ev := range st.Events {
					t.Logf("  %s: %s %s %s", task, ev.Type, ev.DisplayMessage, ev.Details)
				}
				cancel := make(chan struct{})
				frames, errs := c.AllocFS().Logs(a, false, task, "stderr", "end", 4096, cancel, &nomad.QueryOptions{Namespace: botNS})
				var tail []byte
			read:
				for {
					select {
					case f := <-frames:
						if f == nil {
							break read
						}
						tail = append(tail, f.Data...)
					case err := <-errs:
						t.Logf("  %s's stderr: %v", task, err)
						break read
					case <-time.After(2 * time.Second):
						break read
					}
				}
				close(cancel)
				t.Logf("  %s's stderr ends with:\n%s", task, tail)
			}
		}
	}
	t.Fatalf("the job did not deploy %d healthy allocations", want)
}

// waitFinal waits until sha's albatros/default status is final, and returns it.
func waitFinal(t *testing.T, g *testenv.Gitea, repo *testenv.Repo, sha string) *gitea.Status {
	t.Helper()
	deadline := time.Now().Add(4 * time.Minute)
	for time.Now().Before(deadline) {
		for _, s := range g.Statuses(t, repo, sha) {
			if s.Context == "albatros/default" && s.State != gitea.StatusPending {
				return s
			}
		}
		time.Sleep(time.Second)
	}
	t.Fatalf("%s: no final status", sha[:8])
	return nil
}

func finalStatuses(t *testing.T, g *testenv.Gitea, repo *testenv.Repo, sha string) int {
	n := 0
	for _, s := range g.Statuses(t, repo, sha) {
		if s.Context == "albatros/default" && s.State != gitea.StatusPending {
			n++
		}
	}
	return n
}

// buildsOf counts the builds of commit sha of repo.
func buildsOf(t *testing.T, n *testenv.Nomad, repo *testenv.Repo, sha string) int {
	t.Helper()
	count := 0
	for _, meta := range n.Builds(t, repo.CloneURL) {
		if meta["COMMIT"] == sha {
			count++
		}
	}
	return count
}
