package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"code.gitea.io/sdk/gitea"
	consul "github.com/hashicorp/consul/api"

	"github.com/albatros-ci/albatros/bench/benchkit"
	"github.com/albatros-ci/albatros/forge/forges"
	"github.com/albatros-ci/albatros/orchestrator"
	"github.com/albatros-ci/albatros/pipeline"
	"github.com/albatros-ci/albatros/registry"
	"github.com/albatros-ci/albatros/testenv"
	"github.com/albatros-ci/albatros/webhook"
)

// giteaRun is the bot of the "bot, real Gitea" kind: its own intake and pipeline, writing
// statuses to a real Gitea, on commits that exist there.
type giteaRun struct {
	pid      int
	sdk      *gitea.Client // the baseline's
	repo     *testenv.Repo
	url      string
	template []byte
	intake   *webhook.Intake
	warnings *warnings
	shas     []string // not delivered yet
	deliver  func(url string, template []byte, shas []string, inflight int, wait func()) (float64, error)
	drain    func()
}

// withRealGitea starts Gitea, pushes commits (count, plus a few for warming up) to a
// repository of its own, registers the repository and returns its bot, warmed up.
func withRealGitea(ctx context.Context, p *testenv.Program, count int, template []byte, templateURL string, kv *consul.KV, reg *registry.Registry, o *orchestrator.Orchestrator,
	deliver func(string, []byte, []string, int, func()) (float64, error), drain func()) (*giteaRun, error) {
	bin, err := testenv.Binary("gitea")
	if err != nil {
		return nil, err
	}
	g, err := testenv.StartGitea(ctx, bin)
	if err != nil {
		return nil, err
	}
	p.Cleanup(g.Stop)
	user := g.CreateUser(p, "bench")
	g.CreateOrg(p, user, "bench-org")
	repo := g.CreateRepo(p, user, "bench-org", "rate")
	const warm = 20
	shas, err := pushCommits(ctx, p, g, repo, user, 2*count+warm)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "rate: %d commits pushed to %s\n", len(shas), repo.CloneURL)

	entry, _ := json.Marshal(map[string]any{
		"hook":    map[string]string{"secret": secret},
		"builder": map[string]string{"namespace": ns, "job": job},
		"gitea":   map[string]string{"url": g.URL, "token": user.Token},
	})
	if _, err := kv.Put(&consul.KVPair{Key: "albatros/" + base64.StdEncoding.EncodeToString([]byte(repo.CloneURL)), Value: entry}, nil); err != nil {
		return nil, err
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if e, err := reg.Repo(ctx, repo.CloneURL); err == nil && e != nil {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the registry never followed the entry of %s", repo.CloneURL)
		}
	}
	pipe := pipeline.New(pipeline.Config{
		Repos: reg, Builds: o, Forge: forges.New(forges.Config{HTTP: forges.HTTPClient()}).For,
		BaseURL: "http://bot.example.com", Builder: orchestrator.Builder{Namespace: ns, Job: job}, Locks: reg, Claims: reg,
	})
	w := &warnings{}
	intake := webhook.New(reg, pipe, slog.New(w), webhook.Options{Nomad: o.Ready})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: intake.Gitea()}
	go func() { _ = srv.Serve(l) }()
	p.Cleanup(func() { _ = srv.Close() })
	sdk, err := gitea.NewClient(g.URL, gitea.SetToken(user.Token), gitea.SetHTTPClient(forges.HTTPClient()))
	if err != nil {
		return nil, err
	}
	run := &giteaRun{
		pid: g.PID(), sdk: sdk, repo: repo, url: "http://" + l.Addr().String() + "/webhook/gitea",
		template: bytes.ReplaceAll(template, []byte(templateURL), []byte(repo.CloneURL)),
		intake:   intake, warnings: w, shas: shas, deliver: deliver, drain: drain,
	}
	if _, err := run.measure(warm)(8); err != nil {
		return nil, fmt.Errorf("warming up: %w", err)
	}
	return run, nil
}

// take takes n commits not used yet.
func (g *giteaRun) take(n int) ([]string, error) {
	if len(g.shas) < n {
		return nil, fmt.Errorf("%d commits left for %d builds", len(g.shas), n)
	}
	shas := g.shas[:n]
	g.shas = g.shas[n:]
	return shas, nil
}

// bare returns the measurement of n status writes to Gitea through its SDK, each on a
// commit of its own: Gitea's own rate, the baseline of the bot's writes.
func (g *giteaRun) bare(n int) func(int) (float64, error) {
	return func(inflight int) (float64, error) {
		shas, err := g.take(n)
		if err != nil {
			return 0, err
		}
		items := make(chan string, n)
		for _, sha := range shas {
			items <- sha
		}
		close(items)
		return parallel(inflight, items, func(sha string) error {
			_, _, err := g.sdk.CreateStatus(g.repo.Owner, g.repo.Name, sha, gitea.CreateStatusOption{
				State: gitea.StatusPending, Context: "bench/bare", Description: "queued", TargetURL: "http://bot.example.com/logs/" + sha,
			})
			return err
		})
	}
}

// measure returns the measurement of n builds at a number in flight.
func (g *giteaRun) measure(n int) func(int) (float64, error) {
	return func(inflight int) (float64, error) {
		shas, err := g.take(n)
		if err != nil {
			return 0, err
		}
		rate, err := g.deliver(g.url, g.template, shas, inflight, func() { g.intake.Wait(); g.drain() })
		if err != nil {
			return 0, err
		}
		if n, last := g.warnings.get(); n > 0 {
			return 0, fmt.Errorf("the bot logged %d warnings, the last: %s", n, last)
		}
		return rate, nil
	}
}

// pushCommits makes count empty commits, one after the other, on branch bench of repo and
// pushes them (one ref: Gitea's push processing is one update), and returns their SHAs,
// oldest first, once Gitea's API shows the branch.
func pushCommits(ctx context.Context, p *testenv.Program, g *testenv.Gitea, repo *testenv.Repo, user *testenv.User, count int) ([]string, error) {
	dir, err := benchkit.TempDir(p, "alb-rate-git-")
	if err != nil {
		return nil, err
	}
	git := func(stdin string, args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "HOME="+dir)
		cmd.Stdin = strings.NewReader(stdin)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		if err := cmd.Run(); err != nil {
			return "", fmt.Errorf("git %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
		}
		return out.String(), nil
	}
	if _, err := git("", "init", "-q", "-b", "bench"); err != nil {
		return nil, err
	}
	var stream strings.Builder
	for i := range count {
		msg := fmt.Sprintf("bench commit %d\n", i)
		fmt.Fprintf(&stream, "commit refs/heads/bench\ncommitter bench <bench@example.com> %d +0000\ndata %d\n%s\n", 1700000000+i, len(msg), msg)
	}
	if _, err := git(stream.String(), "fast-import", "--quiet"); err != nil {
		return nil, err
	}
	out, err := git("", "rev-list", "--reverse", "bench")
	if err != nil {
		return nil, err
	}
	shas := strings.Fields(out)
	if len(shas) != count {
		return nil, fmt.Errorf("%d commits made, want %d", len(shas), count)
	}
	u, err := url.Parse(repo.CloneURL)
	if err != nil {
		return nil, err
	}
	u.User = url.UserPassword(user.Name, user.Token)
	if _, err := git("", "push", "-q", u.String(), "bench:refs/heads/bench"); err != nil {
		return nil, err
	}
	gc := g.Client(p, user.Token)
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		b, _, err := gc.GetRepoBranch(repo.Owner, repo.Name, "bench")
		if err == nil && b.Commit != nil && b.Commit.ID == shas[len(shas)-1] {
			return shas, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("gitea never showed branch bench at %s: %v", shas[len(shas)-1], err)
		}
	}
}

// warnings is a log handler that counts the bot's warnings and errors, and keeps the last.
type warnings struct {
	mu   sync.Mutex
	n    int
	last string
}

func (w *warnings) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

func (w *warnings) Handle(_ context.Context, r slog.Record) error {
	msg := r.Message
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "err" {
			msg += ": " + a.Value.String()
		}
		return true
	})
	w.mu.Lock()
	w.n++
	w.last = msg
	w.mu.Unlock()
	return nil
}

func (w *warnings) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w *warnings) WithGroup(string) slog.Handler      { return w }

func (w *warnings) get() (int, string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n, w.last
}
