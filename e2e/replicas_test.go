package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"code.gitea.io/sdk/gitea"
	consul "github.com/hashicorp/consul/api"
	nomad "github.com/hashicorp/nomad/api"

	"github.com/albatros-ci/albatros/testenv"
)

// fanOut is a webhook target that delivers every delivery three times to the bots: to
// each at once, then to the first again; Gitea gets the first answer.
type fanOut struct {
	mu   sync.Mutex
	bots []string // webhook URLs; a stopped bot is removed
}

func (f *fanOut) handler(t *testing.T) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		bots := append([]string(nil), f.bots...)
		f.mu.Unlock()
		targets := append(bots, bots[0])
		codes := make([]int, len(targets))
		var wg sync.WaitGroup
		for i, target := range targets {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequest(http.MethodPost, target, bytes.NewReader(body))
				for k, v := range r.Header {
					if k != "Content-Length" {
						req.Header[k] = v
					}
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					codes[i] = http.StatusBadGateway
					return
				}
				resp.Body.Close()
				codes[i] = resp.StatusCode
			}()
		}
		wg.Wait()
		w.WriteHeader(codes[0])
	})
}

// fannedBots starts two bots of their own on the registry at prefix, with extra settings,
// behind a fanOut: its URL (target) is where the test's webhooks post. They stop with the
// test.
func fannedBots(t *testing.T, prefix string, extra ...string) ([]*testenv.Bot, *fanOut, *httptest.Server) {
	t.Helper()
	var bots []*testenv.Bot
	out := &fanOut{}
	for range 2 {
		addr, err := testenv.FreeAddr()
		if err != nil {
			t.Fatal(err)
		}
		b := ownBot(t, addr, prefix, extra...)
		bots = append(bots, b)
		out.bots = append(out.bots, b.URL+"/webhook/gitea")
	}
	target := httptest.NewServer(out.handler(t))
	t.Cleanup(target.Close)
	return bots, out, target
}

// envInt reads a positive integer setting of the test, or def.
func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: a positive integer, please", name, v)
	}
	return n
}

// Two bots on one registry, every push delivered three times (to each bot, and to one of
// them again), one bot stopped half-way: each push builds exactly once and gets exactly one
// final status. ALBATROS_SOAK_PUSHES and ALBATROS_SOAK_REPOS scale it (30 over 3 by
// default; the figure is 500 over 20).
func TestTwoBotsEveryDeliveryThrice(t *testing.T) {
	t.Parallel() // after the tests that stop shared servers; it shares none of its own
	pushes, repos := envInt(t, "ALBATROS_SOAK_PUSHES", 30), envInt(t, "ALBATROS_SOAK_REPOS", 3)
	prefix := testenv.UniqueName("replicas") + "/"
	bots, out, target := fannedBots(t, prefix, "ALBATROS_RECONCILE_INTERVAL=0")

	const secret = "replicas-webhook-secret"
	g, owner, all := soakRepos(t, prefix, secret, repos)
	for _, repo := range all {
		g.CreateWebhook(t, owner, repo, target.URL, secret, "push")
	}

	var made []pushed
	start := time.Now()
	for i := range pushes {
		if i == pushes/2 {
			// The first bot stops (SIGTERM); deliveries reach the second only.
			out.mu.Lock()
			out.bots = out.bots[1:]
			out.mu.Unlock()
			bots[0].Stop()
		}
		repo := all[i%len(all)]
		// A branch per push: pushes to one branch would supersede each other's builds.
		sha := g.Push(t, owner, repo, fmt.Sprintf("b%d", i), "main", script(fmt.Sprintf("echo build %d %s\n", i, prefix)), fmt.Sprintf("push %d", i))
		made = append(made, pushed{repo, sha})
	}
	t.Logf("%d pushes over %d repositories in %s", pushes, repos, time.Since(start).Round(time.Second))

	// Every push: one final status, success, exactly once.
	oneBuildEach(t, g, made, time.Now().Add(time.Duration(pushes)*time.Second+2*time.Minute))
	t.Logf("all final in %s", time.Since(start).Round(time.Second))
	t.Logf("%d pushes, %d deliveries to the bots", pushes, pushes*3)
}

// pushed is a push made by a test, to a branch of its own.
type pushed struct {
	repo *testenv.Repo
	sha  string
}

// oneBuildEach waits until each push has one final status, a success, and then checks
// that Nomad has one job of each push's commit.
func oneBuildEach(t *testing.T, g *testenv.Gitea, made []pushed, deadline time.Time) {
	t.Helper()
	for _, m := range made {
		for {
			var states []gitea.StatusState
			list := g.Statuses(t, m.repo, m.sha)
			for i := len(list) - 1; i >= 0; i-- {
				if list[i].Context == "albatros/default" {
					states = append(states, list[i].State)
				}
			}
			finals := 0
			for _, s := range states {
				if s != gitea.StatusPending {
					finals++
				}
			}
			if finals > 0 {
				if finals != 1 || states[len(states)-1] != gitea.StatusSuccess {
					t.Errorf("%s %s: statuses %v, want one final success", m.repo.Name, m.sha[:7], states)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s %s: no final status; statuses %v", m.repo.Name, m.sha[:7], states)
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
	// A moment for a late double to show, then: one Nomad job per push.
	time.Sleep(2 * time.Second)
	byCommit := map[string]int{} // by repository and commit
	c := env.Nomad(t).Client(t)
	stubs, _, err := c.Jobs().ListOptions(&nomad.JobListOptions{Fields: &nomad.JobListFields{Meta: true}}, &nomad.QueryOptions{Namespace: "*"})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range stubs {
		if s.ParentID != "" {
			byCommit[s.Meta["REPO_URL"]+" "+s.Meta["COMMIT"]]++
		}
	}
	jobs := 0
	for _, m := range made {
		n := byCommit[m.repo.CloneURL+" "+m.sha]
		jobs += n
		if n != 1 {
			t.Errorf("%s %s: %d Nomad jobs, want 1", m.repo.Name, m.sha[:7], n)
		}
	}
	t.Logf("%d pushes, %d Nomad jobs", len(made), jobs)
}

// captured is a delivery Gitea sent, held to be posted later.
type captured struct {
	header http.Header
	body   []byte
}

// The worst morning: two bots, pushes to a branch each over several repositories,
// their deliveries held, then each posted three times to each bot all at once (six per
// push). Each push builds once and gets one final status, none twice. The bots' queues
// are bounded by ALBATROS_SOAK_QUEUE_BYTES (1MiB by default, the least the bot takes;
// the bot's own default is 96MiB) and their reconciler runs every ALBATROS_SOAK_RECONCILE
// (5s by default; 0 runs it at start only, so that the burst alone builds the pushes):
// deliveries refused past the bound, and pushes all six of whose deliveries were refused,
// are built by the reconciler, which runs meanwhile. ALBATROS_SOAK_PUSHES and
// ALBATROS_SOAK_REPOS scale it (30 over 3 by default).
func TestTwoBotsBurst(t *testing.T) {
	t.Parallel()
	pushes, repos := envInt(t, "ALBATROS_SOAK_PUSHES", 30), envInt(t, "ALBATROS_SOAK_REPOS", 3)
	queue, every := os.Getenv("ALBATROS_SOAK_QUEUE_BYTES"), os.Getenv("ALBATROS_SOAK_RECONCILE")
	if queue == "" {
		queue = "1MiB"
	}
	if every == "" {
		every = "5s"
	}
	prefix := testenv.UniqueName("burst") + "/"
	var bots []string
	for range 2 {
		addr, err := testenv.FreeAddr()
		if err != nil {
			t.Fatal(err)
		}
		b := ownBot(t, addr, prefix, "ALBATROS_RECONCILE_INTERVAL="+every, "ALBATROS_QUEUE_BYTES="+queue)
		bots = append(bots, b.URL+"/webhook/gitea")
	}
	var mu sync.Mutex
	var held []captured
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		held = append(held, captured{r.Header.Clone(), body})
		mu.Unlock()
	}))
	defer target.Close()

	const secret = "burst-webhook-secret"
	g, owner, all := soakRepos(t, prefix, secret, repos)
	for _, repo := range all {
		g.CreateWebhook(t, owner, repo, target.URL, secret, "push")
	}
	var made []pushed
	for i := range pushes {
		repo := all[i%len(all)]
		sha := g.Push(t, owner, repo, fmt.Sprintf("b%d", i), "main", script(fmt.Sprintf("echo build %d %s\n", i, prefix)), fmt.Sprintf("push %d", i))
		made = append(made, pushed{repo, sha})
	}
	for deadline := time.Now().Add(time.Minute); ; {
		mu.Lock()
		n := len(held)
		mu.Unlock()
		if n >= pushes {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d deliveries from Gitea after %d pushes", n, pushes)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// The burst: every delivery three times to each bot, 64 posts at once.
	type post struct {
		d   captured
		url string
	}
	posts := make(chan post)
	codes := map[int]int{}
	accepted := map[string]int{} // by delivery
	var wg sync.WaitGroup
	start := time.Now()
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range posts {
				req, _ := http.NewRequest(http.MethodPost, p.url, bytes.NewReader(p.d.body))
				for k, v := range p.d.header {
					if k != "Content-Length" {
						req.Header[k] = v
					}
				}
				code := http.StatusBadGateway
				if resp, err := http.DefaultClient.Do(req); err == nil {
					code = resp.StatusCode
					resp.Body.Close()
				}
				mu.Lock()
				codes[code]++
				if code == http.StatusAccepted {
					accepted[p.d.header.Get("X-Gitea-Delivery")]++
				}
				mu.Unlock()
			}
		}()
	}
	for range 3 {
		for _, d := range held {
			for _, u := range bots {
				posts <- post{d, u}
			}
		}
	}
	close(posts)
	wg.Wait()
	lost := 0
	for _, d := range held {
		if accepted[d.header.Get("X-Gitea-Delivery")] == 0 {
			lost++
		}
	}
	t.Logf("%d deliveries posted in %s, answered %v (bound %s); %d pushes had all six refused", 6*len(held), time.Since(start).Round(time.Millisecond), codes, queue, lost)
	for code := range codes {
		if code != http.StatusAccepted && code != http.StatusServiceUnavailable {
			t.Errorf("answers %v: want only 202 and 503", codes)
		}
	}
	oneBuildEach(t, g, made, time.Now().Add(time.Duration(pushes)*time.Second+3*time.Minute))
	t.Logf("all final %s after the burst", time.Since(start).Round(time.Second))
}

// soakRepos makes n repositories of an organization of their own, each registered under
// prefix with the webhook secret and its owner's token, and its default branch pushed
// before any webhook (a commit of this test's own: it is not counted).
func soakRepos(t *testing.T, prefix, secret string, n int) (*testenv.Gitea, *testenv.User, []*testenv.Repo) {
	t.Helper()
	g := env.Gitea(t)
	owner := g.CreateUser(t, testenv.UniqueName("owner"))
	org := testenv.UniqueName("org")
	g.CreateOrg(t, owner, org)
	var all []*testenv.Repo
	for i := range n {
		repo := g.CreateRepo(t, owner, org, fmt.Sprintf("app%d", i))
		raw, _ := json.Marshal(entry{"hook": map[string]string{"secret": secret}, "gitea": map[string]string{"url": g.URL, "token": owner.Token}})
		key := prefix + base64.StdEncoding.EncodeToString([]byte(repo.CloneURL))
		if _, err := env.Consul(t).Client(t).KV().Put(&consul.KVPair{Key: key, Value: raw}, nil); err != nil {
			t.Fatal(err)
		}
		g.Push(t, owner, repo, "main", "", script("echo ok "+prefix+"\n"), "base")
		all = append(all, repo)
	}
	return g, owner, all
}
