// Package history tests, end to end, that a build outlives Nomad: the albatros-bot binary
// archives each build that ends, and every link it wrote (statuses, the pull request's
// comment, the pages, the badge) still opens the build once Nomad has collected it, on a
// directory and on a real S3 server (versitygw), across a restart and two replicas, and
// with the store down when a build ends. Its own Nomad, whose garbage collection the
// tests force (which would take other packages' builds from under them), has a client
// that keeps few allocations, as a busy builder node does.
package history

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"code.gitea.io/sdk/gitea"
	consul "github.com/hashicorp/consul/api"
	nomad "github.com/hashicorp/nomad/api"

	"github.com/albatros-ci/albatros/testenv"
)

var env = testenv.New(testenv.Options{Nomad: true, Consul: true, Gitea: true, S3: true, NomadGCMaxAllocs: 3})

func TestMain(m *testing.M) { os.Exit(env.Run(m)) }

var (
	binOnce sync.Once
	botBin  string
	binErr  error
)

// startBot starts an albatros-bot on the package's servers, with its registry under
// prefix and its archive at archiveURL; stopped at the test's end.
func startBot(t *testing.T, prefix, archiveURL string) *testenv.Bot {
	t.Helper()
	addr, err := testenv.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return startBotOn(t, prefix, archiveURL, addr)
}

func startBotOn(t *testing.T, prefix, archiveURL, addr string) *testenv.Bot {
	t.Helper()
	n, c, g, s3 := env.Nomad(t), env.Consul(t), env.Gitea(t), env.S3(t)
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "alb-history-")
		if err != nil {
			binErr = err
			return
		}
		env.AtStop(func() { os.RemoveAll(dir) })
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		botBin, binErr = testenv.BuildBot(ctx, dir)
	})
	if binErr != nil {
		t.Fatalf("build albatros-bot: %v", binErr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	vars := append(append(append(n.Env(), c.Env()...), s3.Env()...),
		"ALBATROS_BUILDER_DRIVER=raw_exec",
		"ALBATROS_BUILDER_VARS=cpu=100,memory=128",
		"ALBATROS_RECONCILE_INTERVAL=0",
		"ALBATROS_LOG_LEVEL=debug",
		"ALBATROS_GITEA_URL="+strings.TrimSuffix(g.URL, "/"),
		"ALBATROS_CONSUL_PREFIX="+prefix,
		"ALBATROS_ARCHIVE="+archiveURL,
	)
	b, err := testenv.StartBotOn(ctx, botBin, addr, vars)
	if err != nil {
		t.Fatalf("start albatros-bot: %v", err)
	}
	t.Cleanup(b.Stop)
	b.LogOnFailure(t)
	return b
}

// project is one test's repository, registered by hand under a bot's prefix, with a
// secret that its trusted owner's pushes get.
type project struct {
	t      *testing.T
	g      *testenv.Gitea
	owner  *testenv.User
	repo   *testenv.Repo
	secret string
}

const script = `echo "hello-archive token=[${DEPLOY_TOKEN-none}]"` + "\n" + `echo "on stderr" >&2` + "\n"

func newProject(t *testing.T, prefix string, bots ...*testenv.Bot) *project {
	t.Helper()
	g := env.Gitea(t)
	p := &project{t: t, g: g, secret: "tok-" + testenv.UniqueName("secret")}
	p.owner = g.CreateUser(t, testenv.UniqueName("owner"))
	org := testenv.UniqueName("org")
	g.CreateOrg(t, p.owner, org)
	p.repo = g.CreateRepo(t, p.owner, org, "app")
	hook := "whsec-" + testenv.UniqueName("h")
	raw, _ := json.Marshal(map[string]any{
		"hook":    map[string]string{"secret": hook},
		"gitea":   map[string]string{"url": g.URL, "token": p.owner.Token},
		"trusted": map[string]any{"senders": []string{p.owner.Name}},
		"secrets": map[string]string{"DEPLOY_TOKEN": p.secret},
	})
	key := prefix + base64.StdEncoding.EncodeToString([]byte(p.repo.CloneURL))
	if _, err := env.Consul(t).Client(t).KV().Put(&consul.KVPair{Key: key, Value: raw}, nil); err != nil {
		t.Fatal(err)
	}
	for _, b := range bots {
		g.CreateWebhook(t, p.owner, p.repo, b.URL+"/webhook/gitea", hook)
	}
	return p
}

func (p *project) push(branch, from, note string) string {
	p.t.Helper()
	return p.g.Push(p.t, p.owner, p.repo, branch, from, map[string]testenv.File{
		".albatros": {Content: script, Executable: true},
		"NOTE":      {Content: note + "\n"},
	}, "commit: "+note)
}

// waitStatus waits until sha's status albatros/default is state, and returns it.
func (p *project) waitStatus(sha string, state gitea.StatusState) *gitea.Status {
	p.t.Helper()
	return p.g.WaitStatus(p.t, p.repo, sha, "albatros/default", state, 2*time.Minute)
}

// comment is the bot's comment on pull request number, once it holds all of want.
func (p *project) comment(number int64, want ...string) string {
	p.t.Helper()
	deadline := time.Now().Add(time.Minute)
	body := ""
	for time.Now().Before(deadline) {
		for _, c := range p.g.Comments(p.t, p.repo, number) {
			if strings.HasPrefix(c.Body, "<!-- albatros") {
				body = c.Body
			}
		}
		missing := false
		for _, w := range want {
			missing = missing || !strings.Contains(body, w)
		}
		if !missing {
			return body
		}
		time.Sleep(300 * time.Millisecond)
	}
	p.t.Fatalf("the comment on #%d never held %q:\n%s", number, want, body)
	return ""
}

// jobOf is the namespace and Nomad job a status links to.
func jobOf(t *testing.T, link string) (ns, job string) {
	t.Helper()
	_, rest, ok := strings.Cut(link, "/logs/")
	if !ok {
		t.Fatalf("status link %q is no log page", link)
	}
	ns, job, _ = strings.Cut(rest, "/")
	return ns, job
}

// collect forces Nomad's garbage collection until it has forgotten every job.
func collect(t *testing.T, jobs ...string) {
	t.Helper()
	c := env.Nomad(t).Client(t)
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		if err := c.System().GarbageCollect(); err != nil {
			t.Fatalf("PUT /v1/system/gc: %v", err)
		}
		left := 0
		for _, j := range jobs {
			if _, _, err := c.Jobs().Info(j, &nomad.QueryOptions{Namespace: "ci"}); err == nil {
				left++
			}
		}
		if left == 0 {
			return
		}
		time.Sleep(time.Second)
	}
	t.Fatalf("Nomad still holds some of %v after its garbage collection", jobs)
}

func get(t *testing.T, u string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// plainURL is the /build URL of a status's build on bot.
func plainURL(t *testing.T, base, link string) string {
	ns, job := jobOf(t, link)
	return fmt.Sprintf("%s/build?namespace=%s&job=%s", base, ns, job)
}

// archivedCount counts the bots' log lines saying they archived job.
func archivedCount(job string, bots ...*testenv.Bot) int {
	n := 0
	for _, b := range bots {
		for _, line := range strings.Split(b.Log(), "\n") {
			if strings.Contains(line, "build archived") && strings.Contains(line, job) {
				n++
			}
		}
	}
	return n
}

// startBotAt starts a bot as startBot does, listening at the URL base (a restart of the
// bot that was there).
func startBotAt(t *testing.T, prefix, archiveURL, base string) *testenv.Bot {
	t.Helper()
	return startBotOn(t, prefix, archiveURL, strings.TrimPrefix(base, "http://"))
}
