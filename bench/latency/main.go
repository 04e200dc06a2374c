// Command latency measures, on the real stack (Nomad, Consul, Gitea and the albatros-bot
// binary on loopback), the two latencies a CI user feels:
//
//   - push → pending status: from `git push` returning to the pending status being readable
//     in Gitea's API; the baseline is the same push's delivery to a bare webhook listener on
//     the same repository (Gitea's own part);
//   - task end → final status: from the executor task's finish time in Nomad to the final
//     status being readable in Gitea; the baselines are the same task's terminal event
//     reaching a bare subscriber of Nomad's event stream (Nomad's own part), and one status
//     write to Gitea's API (the forge's own part).
//
// Pushes go one at a time, each waiting for its final status, so that the figures are
// latencies, not queueing. Statuses are polled every -poll; the poll interval bounds the
// resolution. It prints a Markdown report.
//
//	go run ./bench/latency -n 50
package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"code.gitea.io/sdk/gitea"
	consul "github.com/hashicorp/consul/api"
	nomad "github.com/hashicorp/nomad/api"

	"github.com/albatros-ci/albatros/bench/benchkit"
	"github.com/albatros-ci/albatros/testenv"
)

func main() {
	n := flag.Int("n", 50, "number of pushes")
	poll := flag.Duration("poll", 20*time.Millisecond, "status poll interval")
	flag.Parse()
	benchkit.Main("latency", func(p *testenv.Program) error { return run(p, *n, *poll) })
}

// sample is one push's timings.
type sample struct {
	pushed, delivered, pending time.Time // git push returned; bare listener got it; pending readable
	taskEnd, eventSeen, final  time.Time // task finished (Nomad); bare subscriber saw it; final readable
	statusWrite                time.Duration
}

func run(p *testenv.Program, n int, poll time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(n)*time.Minute+10*time.Minute)
	defer cancel()
	dir, err := benchkit.TempDir(p, "alb-bench-")
	if err != nil {
		return err
	}
	botBin, err := testenv.BuildBot(ctx, dir)
	if err != nil {
		return err
	}
	stack, err := testenv.StartStack(ctx, p, botBin, "ALBATROS_BUILDER_DRIVER=raw_exec", "ALBATROS_BUILDER_VARS=cpu=100,memory=128")
	if err != nil {
		return err
	}
	c, nm, g, b := stack.Consul, stack.Nomad, stack.Gitea, stack.Bot

	user := g.CreateUser(p, "bench")
	g.CreateOrg(p, user, "bench-org")
	repo := g.CreateRepo(p, user, "bench-org", "latency")
	entry, _ := json.Marshal(map[string]any{
		"hook":  map[string]string{"secret": "bench-secret"},
		"gitea": map[string]string{"url": g.URL, "token": user.Token},
	})
	key := "albatros/" + base64.StdEncoding.EncodeToString([]byte(repo.CloneURL))
	if _, err := c.Client(p).KV().Put(&consul.KVPair{Key: key, Value: entry}, nil); err != nil {
		return err
	}
	g.CreateWebhook(p, user, repo, b.URL+"/webhook/gitea", "bench-secret", "push")

	// The baselines: a bare webhook listener, and a bare event stream subscriber.
	delivered := &arrivals{at: map[string]time.Time{}}
	listener := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := time.Now()
		var body struct {
			After string `json:"after"`
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		delivered.set(body.After, now)
	}))
	p.Cleanup(listener.Close)
	g.CreateWebhook(p, user, repo, listener.URL, "bench-secret", "push")
	nc := nm.Client(p)
	ended := &arrivals{at: map[string]time.Time{}}
	go subscribe(ctx, nc, ended)

	work := filepath.Join(dir, "work")
	u, _ := url.Parse(repo.CloneURL)
	u.User = url.UserPassword(user.Name, user.Token)
	git := func(args ...string) error {
		cmd := exec.CommandContext(ctx, "git", append([]string{"-c", "user.name=bench", "-c", "user.email=b@example.com", "-c", "commit.gpgsign=false"}, args...)...)
		cmd.Dir = work
		cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "HOME="+dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	if err := git("init", "-q", "-b", "main"); err != nil {
		return err
	}
	if err := git("remote", "add", "origin", u.String()); err != nil {
		return err
	}
	gc := g.Client(p, user.Token)

	var samples []sample
	fmt.Fprintf(os.Stderr, "latency: %d pushes\n", n)
	for i := range n {
		script := fmt.Sprintf("#!/bin/sh\necho build %d\n", i)
		if err := os.WriteFile(filepath.Join(work, ".albatros"), []byte(script), 0o755); err != nil {
			return err
		}
		if err := git("add", "-A"); err != nil {
			return err
		}
		if err := git("commit", "-q", "-m", fmt.Sprintf("build %d", i)); err != nil {
			return err
		}
		out, _ := exec.Command("git", "-C", work, "rev-parse", "HEAD").Output()
		sha := strings.TrimSpace(string(out))
		if err := git("push", "-q", "origin", "HEAD:refs/heads/main"); err != nil {
			return err
		}
		s := sample{pushed: time.Now()}
		var link string
		s.pending, link, err = waitState(ctx, gc, repo, sha, poll, "pending")
		if err != nil {
			return err
		}
		s.final, _, err = waitState(ctx, gc, repo, sha, poll, "success")
		if err != nil {
			return err
		}
		job := link[strings.Index(link, "/logs/ci/")+len("/logs/ci/"):]
		if s.taskEnd, err = taskEnd(ctx, nc, job); err != nil {
			return err
		}
		s.delivered = delivered.wait(ctx, sha)
		s.eventSeen = ended.wait(ctx, job)
		// One status write, timed, on a context of its own.
		t0 := time.Now()
		if _, _, err := gc.CreateStatus(repo.Owner, repo.Name, sha, gitea.CreateStatusOption{State: gitea.StatusSuccess, Context: "bench/write"}); err != nil {
			return err
		}
		s.statusWrite = time.Since(t0)
		samples = append(samples, s)
		fmt.Fprintf(os.Stderr, "  %2d push→pending %6s  task end→final %6s\n", i+1,
			s.pending.Sub(s.pushed).Round(time.Millisecond), s.final.Sub(s.taskEnd).Round(time.Millisecond))
	}
	report(os.Stdout, samples, n, poll)
	return nil
}

// arrivals records when each key was first seen.
type arrivals struct {
	mu sync.Mutex
	at map[string]time.Time
}

func (a *arrivals) set(key string, t time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.at[key]; !ok {
		a.at[key] = t
	}
}

func (a *arrivals) wait(ctx context.Context, key string) time.Time {
	for ctx.Err() == nil {
		a.mu.Lock()
		t, ok := a.at[key]
		a.mu.Unlock()
		if ok {
			return t
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Time{}
}

// subscribe records when each build's allocation is first seen terminal on Nomad's event
// stream: what any subscriber, the bot included, can learn at the earliest.
func subscribe(ctx context.Context, c *nomad.Client, ended *arrivals) {
	ch, err := c.EventStream().Stream(ctx, map[nomad.Topic][]string{nomad.TopicAllocation: {"*"}}, 0, &nomad.QueryOptions{Namespace: "*"})
	if err != nil {
		return
	}
	for evs := range ch {
		now := time.Now()
		for _, e := range evs.Events {
			if a, err := e.Allocation(); err == nil && a != nil && (a.ClientStatus == "complete" || a.ClientStatus == "failed") {
				ended.set(a.JobID, now)
			}
		}
	}
}

// waitState polls the commit's statuses until the albatros/default one has state, and
// returns when it was first seen, and its link.
func waitState(ctx context.Context, gc *gitea.Client, repo *testenv.Repo, sha string, poll time.Duration, state string) (time.Time, string, error) {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		list, _, err := gc.ListStatuses(repo.Owner, repo.Name, sha, gitea.ListStatusesOption{})
		if err == nil {
			for _, s := range list {
				if s.Context == "albatros/default" && string(s.State) == state {
					return time.Now(), s.TargetURL, nil
				}
			}
		}
		time.Sleep(poll)
	}
	return time.Time{}, "", fmt.Errorf("status of %s never became %s", sha, state)
}

// taskEnd is when the build's executor task finished, as Nomad recorded it.
func taskEnd(ctx context.Context, c *nomad.Client, job string) (time.Time, error) {
	q := (&nomad.QueryOptions{Namespace: "ci"}).WithContext(ctx)
	stubs, _, err := c.Jobs().Allocations(job, true, q)
	if err != nil || len(stubs) == 0 {
		return time.Time{}, fmt.Errorf("allocations of %s: %v", job, err)
	}
	ts := stubs[0].TaskStates["executor"]
	if ts == nil || ts.FinishedAt.IsZero() {
		return time.Time{}, fmt.Errorf("task of %s has no finish time", job)
	}
	return ts.FinishedAt, nil
}

type stats struct{ median, p95, min, max time.Duration }

func summarize(ds []time.Duration) stats {
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(q float64) time.Duration { return s[min(len(s)-1, int(q*float64(len(s)-1)+0.5))] }
	return stats{median: at(0.5), p95: at(0.95), min: s[0], max: s[len(s)-1]}
}

func report(w io.Writer, samples []sample, n int, poll time.Duration) {
	var pushPending, delivery, endFinal, endEvent, write []time.Duration
	for _, s := range samples {
		pushPending = append(pushPending, s.pending.Sub(s.pushed))
		delivery = append(delivery, s.delivered.Sub(s.pushed))
		endFinal = append(endFinal, s.final.Sub(s.taskEnd))
		endEvent = append(endEvent, s.eventSeen.Sub(s.taskEnd))
		write = append(write, s.statusWrite)
	}
	ms := func(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }
	ratio := func(a, b time.Duration) string { return fmt.Sprintf("%.2f×", float64(a)/float64(b)) }
	row := func(name string, s stats) string {
		return fmt.Sprintf("| %s | %s | %s | %s | %s |\n", name, ms(s.median), ms(s.p95), ms(s.min), ms(s.max))
	}
	pp, dl, ef, ee, wr := summarize(pushPending), summarize(delivery), summarize(endFinal), summarize(endEvent), summarize(write)
	var b bytes.Buffer
	fmt.Fprintf(&b, "Measured %s on %s/%s, %d CPUs, %s; %d pushes, one at a time; statuses polled every %s.\n\n",
		time.Now().UTC().Format("2006-01-02"), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version(), n, poll)
	b.WriteString("| latency | median | p95 | min | max |\n|---|---|---|---|---|\n")
	b.WriteString(row("push → pending status (bot)", pp))
	b.WriteString(row("push → delivery at a bare listener (baseline: Gitea)", dl))
	b.WriteString(row("task end → final status (bot)", ef))
	b.WriteString(row("task end → terminal event at a bare subscriber (baseline: Nomad)", ee))
	b.WriteString(row("one status write to Gitea (baseline: forge)", wr))
	fmt.Fprintf(&b, "\nRatios (median, p95): push → pending is %s, %s of Gitea's own delivery; task end → final status is %s, %s of Nomad's own event latency.\n",
		ratio(pp.median, dl.median), ratio(pp.p95, dl.p95), ratio(ef.median, ee.median), ratio(ef.p95, ee.p95))
	_, _ = w.Write(b.Bytes())
}
