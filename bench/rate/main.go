// Command rate measures how many builds per second the bot starts from signed pushes,
// against a bare loop of Nomad dispatches with idempotency tokens, in the same run, at 1
// and 8 in flight: the bot's own cost per build on the way to Nomad.
//
// On a Consul and a Nomad dev agent of its own (loopback), it times, alternating, -rounds
// times each:
//
//   - bare (the baseline): -n dispatches of a builder through Nomad's API, each with a fresh
//     idempotency token, by Nomad's Go client as it comes (it asks for gzipped answers);
//   - bare, cheapest: the same without a token, asking for uncompressed answers, as the
//     bot's dispatch does when it holds a build's claim: the floor of what a dispatch costs
//     Nomad (a token costs Nomad a scan of every child of the builder it keeps, and the
//     children pile up during the run);
//   - bot, forge stubbed: -n signed Gitea pushes (each of a new commit on a branch of its
//     own) posted to the bot's intake as the bot serves it (registry following Consul in
//     memory, Nomad readiness check, dedup records in Consul, the real orchestrator), with
//     a recording fake forge for the pending statuses; timed until every build is
//     dispatched and its pending status written;
//   - bare, Gitea status writes (with -gitea, the default): -n pending statuses written to
//     a real Gitea (its own server, a repository holding every commit pushed to) through
//     its SDK, each on a commit of its own: Gitea's own rate, the baseline of the next;
//   - bot, real Gitea (with -gitea): the bot's, its pending statuses written to that Gitea
//     through its forge client; any warning the bot logs fails the run.
//
// Every measurement of dispatches is timed until Nomad has also evaluated them (no pending
// evaluation left), so that none leaves its evaluations to the next one's time and CPU.
// The builder's group has a count of 0 (benchkit.Builder, unplaced): a build costs Nomad
// its job and an evaluation that places nothing, not a run. It prints a Markdown report.
//
//	go run ./bench/rate -n 300 -rounds 3
package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	consul "github.com/hashicorp/consul/api"
	nomad "github.com/hashicorp/nomad/api"

	"github.com/albatros-ci/albatros/bench/benchkit"
	"github.com/albatros-ci/albatros/forge"
	"github.com/albatros-ci/albatros/forge/forgetest"
	"github.com/albatros-ci/albatros/forge/gitea"
	"github.com/albatros-ci/albatros/orchestrator"
	"github.com/albatros-ci/albatros/pipeline"
	"github.com/albatros-ci/albatros/registry"
	"github.com/albatros-ci/albatros/testenv"
	"github.com/albatros-ci/albatros/webhook"
)

func main() {
	n := flag.Int("n", 300, "builds started per measurement")
	rounds := flag.Int("rounds", 3, "measurements of each kind at each concurrency, alternating")
	withGitea := flag.Bool("gitea", true, "also measure the bot writing its statuses to a real Gitea")
	flag.Parse()
	if !*withGitea {
		kinds = slices.DeleteFunc(kinds, func(k string) bool { return k == realGitea || k == bareGitea })
	}
	benchkit.Main("rate", func(p *testenv.Program) error { return run(p, *n, *rounds, *withGitea) })
}

const (
	ns, job = "ci", "bench-builder"
	secret  = "bench-hook-secret"
)

const (
	bareGitea = "bare, Gitea status writes"
	realGitea = "bot, real Gitea"
)

const cheapest = "bare, cheapest"

var kinds = []string{"bare", cheapest, "bot, forge stubbed", bareGitea, realGitea}

func run(p *testenv.Program, n, rounds int, withGitea bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	c, nm, err := benchkit.Servers(ctx, p, true, true)
	if err != nil {
		return err
	}
	nc := nm.Client(p)
	if err := benchkit.Builder(nc, ns, job, map[string]any{"command": "true"}, true, nil); err != nil {
		return err
	}

	template, cloneURL, err := pushTemplate()
	if err != nil {
		return err
	}
	entry, _ := json.Marshal(map[string]any{"hook": map[string]string{"secret": secret}, "builder": map[string]string{"namespace": ns, "job": job}})
	if _, err := c.Client(p).KV().Put(&consul.KVPair{Key: "albatros/" + base64.StdEncoding.EncodeToString([]byte(cloneURL)), Value: entry}, nil); err != nil {
		return err
	}
	reg, err := registry.New("albatros/", nil)
	if err != nil {
		return err
	}
	o, err := orchestrator.New(reg)
	if err != nil {
		return err
	}
	defer o.Close()
	reg.Follow(ctx, func(err error) { fmt.Fprintln(os.Stderr, "rate: registry:", err) })
	if err := reg.Synced(ctx); err != nil {
		return err
	}
	fake := &forgetest.Forge{}
	pipe := pipeline.New(pipeline.Config{
		Repos: reg, Builds: o, Forge: (&forgetest.Forges{Forge: fake, Repo: forge.Repo{CloneURL: cloneURL, FullName: "bench/app"}}).For,
		BaseURL: "http://bot.example.com", Builder: orchestrator.Builder{Namespace: ns, Job: job}, Locks: reg, Claims: reg,
	})
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer devnull.Close()
	intake := webhook.New(reg, pipe, slog.New(slog.NewTextHandler(devnull, nil)), webhook.Options{Nomad: o.Ready})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: intake.Gitea()}
	go func() { _ = srv.Serve(l) }()
	p.Cleanup(func() { _ = srv.Close() })
	url := "http://" + l.Addr().String() + "/webhook/gitea"

	plain, err := benchkit.Uncompressed(nm.Addr)
	if err != nil {
		return err
	}
	// drain waits until Nomad has evaluated every build dispatched so far: a dispatch
	// returns once Nomad has recorded it, and its evaluation follows; without the wait,
	// a measurement would leave its evaluations to the next one's time and CPU.
	drain := func() {
		q := (&nomad.QueryOptions{Namespace: ns, Filter: `Status == "pending"`, PerPage: 1}).WithContext(ctx)
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if evals, _, err := plain.Evaluations().List(q); err == nil && len(evals) == 0 {
				return
			}
		}
	}
	seq := 0
	dispatches := func(nc *nomad.Client, inflight int, withToken bool) (float64, error) {
		tokens := make(chan string, n)
		for range n {
			seq++
			tokens <- fmt.Sprintf("albatros-bare-%08d", seq)
		}
		close(tokens)
		meta := map[string]string{"REPO_URL": cloneURL, "COMMIT": strings.Repeat("a", 40), "BRANCH": "main", "FLAVOR": "default"}
		return parallel(inflight, tokens, func(token string) error {
			if !withToken {
				token = ""
			}
			w := (&nomad.WriteOptions{Namespace: ns, IdempotencyToken: token}).WithContext(ctx)
			_, _, err := nc.Jobs().DispatchOpts(&nomad.DispatchOptions{JobID: job, Meta: meta, IdPrefixTemplate: "albatros"}, w)
			return err
		}, drain)
	}
	bare := func(inflight int) (float64, error) { return dispatches(nc, inflight, true) }
	barePlain := func(inflight int) (float64, error) { return dispatches(plain, inflight, false) }
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	// deliver posts a signed push of each of shas to url, from inflight goroutines, and
	// returns the builds per second once wait (the intake's) has returned.
	deliver := func(url string, template []byte, shas []string, inflight int, wait func()) (float64, error) {
		bodies := make(chan string, len(shas))
		for _, sha := range shas {
			bodies <- sha
		}
		close(bodies)
		return parallel(inflight, bodies, func(sha string) error {
			body := bytes.ReplaceAll(template, []byte("@SHA@"), []byte(sha))
			req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-Gitea-Event", "push")
			req.Header.Set("X-Gitea-Delivery", sha)
			req.Header.Set("X-Gitea-Signature", gitea.Sign(body, secret))
			resp, err := client.Do(req)
			if err != nil {
				return err
			}
			answer, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				return fmt.Errorf("delivery answered %d %q", resp.StatusCode, answer)
			}
			return nil
		}, wait)
	}
	bot := func(inflight int) (float64, error) {
		shas := make([]string, n)
		for i := range shas {
			seq++
			shas[i] = fmt.Sprintf("%040x", seq)
		}
		before := len(fake.Statuses())
		rate, err := deliver(url, template, shas, inflight, func() { intake.Wait(); drain() })
		if err != nil {
			return 0, err
		}
		if got := len(fake.Statuses()) - before; got != n {
			return 0, fmt.Errorf("%d pending statuses written for %d pushes", got, n)
		}
		return rate, nil
	}
	measure := map[string]func(int) (float64, error){"bare": bare, cheapest: barePlain, "bot, forge stubbed": bot}
	procs := map[string]int{"nomad": nm.PID(), "consul": c.PID(), "bot and load": os.Getpid()}
	if withGitea {
		g, err := withRealGitea(ctx, p, rounds*2*n, template, cloneURL, c.Client(p).KV(), reg, o, deliver, drain)
		if err != nil {
			return fmt.Errorf("real gitea: %w", err)
		}
		measure[realGitea] = g.measure(n)
		measure[bareGitea] = g.bare(n)
		procs["gitea"] = g.pid
	}
	if _, err := bot(1); err != nil { // warm up: the builder read, connections
		return err
	}
	results := map[int]map[string][]float64{}
	// CPU time per build of each process, by kind, over all its measurements.
	cpu := map[string]map[string]time.Duration{}
	builds := map[string]int{}
	for _, inflight := range []int{1, 8} {
		results[inflight] = map[string][]float64{}
		for round := range rounds {
			for _, k := range kinds {
				before := map[string]time.Duration{}
				for name, pid := range procs {
					before[name] = testenv.CPUTime(pid)
				}
				rate, err := measure[k](inflight)
				if err != nil {
					return fmt.Errorf("%s: %w", k, err)
				}
				if cpu[k] == nil {
					cpu[k] = map[string]time.Duration{}
				}
				for name, pid := range procs {
					cpu[k][name] += testenv.CPUTime(pid) - before[name]
				}
				builds[k] += n
				results[inflight][k] = append(results[inflight][k], rate)
				fmt.Fprintf(os.Stderr, "rate: %d in flight, round %d, %-20s %6.0f builds/s\n", inflight, round+1, k, rate)
			}
		}
	}
	report(os.Stdout, results, n, rounds)
	fmt.Println()
	fmt.Println("CPU time per build, all measurements (`/proc/<pid>/stat`):")
	fmt.Println()
	names := []string{"nomad", "consul", "bot and load"}
	header := "| kind | nomad | consul | bot and load generator |"
	if withGitea {
		names = append(names, "gitea")
		header += " gitea |"
	}
	fmt.Println(header)
	fmt.Println(strings.Repeat("|---", len(names)+1) + "|")
	for _, k := range kinds {
		row := "| " + k + " |"
		for _, name := range names {
			row += fmt.Sprintf(" %.2f ms |", float64(cpu[k][name].Microseconds())/1000/float64(builds[k]))
		}
		fmt.Println(row)
	}
	return nil
}

// parallel runs do on every item from inflight goroutines, then waits for after (if any),
// and returns the items per second.
func parallel(inflight int, items <-chan string, do func(string) error, after ...func()) (float64, error) {
	var failed atomic.Value
	var count atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range inflight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range items {
				if err := do(it); err != nil {
					failed.Store(err)
					return
				}
				count.Add(1)
			}
		}()
	}
	wg.Wait()
	for _, f := range after {
		f()
	}
	if err, ok := failed.Load().(error); ok {
		return 0, err
	}
	return float64(count.Load()) / time.Since(start).Seconds(), nil
}

// pushTemplate is the push captured from Gitea, on a branch of its own per commit
// (@SHA@ stands for the commit), so that no push supersedes another's build.
func pushTemplate() ([]byte, string, error) {
	m, cloneURL, err := benchkit.GiteaPush()
	if err != nil {
		return nil, "", err
	}
	m["after"] = "@SHA@"
	m["ref"] = "refs/heads/b-@SHA@"
	b, err := json.Marshal(m)
	return b, cloneURL, err
}

func report(w io.Writer, results map[int]map[string][]float64, n, rounds int) {
	fmt.Fprintf(w, "Result, %s, %s/%s, %d CPUs, %s; %d builds per measurement, %d rounds per kind, alternating:\n\n",
		time.Now().UTC().Format("2006-01-02"), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version(), n, rounds)
	fmt.Fprintln(w, "| in flight | kind | builds/s (median) | min | max | ratio to bare |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	for _, inflight := range []int{1, 8} {
		base := benchkit.Median(results[inflight]["bare"])
		for _, k := range kinds {
			v := results[inflight][k]
			fmt.Fprintf(w, "| %d | %s | %.0f | %.0f | %.0f | %.2f× |\n", inflight, k, benchkit.Median(v), slices.Min(v), slices.Max(v), benchkit.Median(v)/base)
		}
	}
	fmt.Fprintln(w)
	ratio := func(inflight int, k, base string) float64 {
		return benchkit.Median(results[inflight][k]) / benchkit.Median(results[inflight][base])
	}
	for _, inflight := range []int{1, 8} {
		fmt.Fprintf(w, "At %d in flight (medians): bot, forge stubbed %.2f× the bare loop, %.2f× the cheapest bare loop",
			inflight, ratio(inflight, "bot, forge stubbed", "bare"), ratio(inflight, "bot, forge stubbed", cheapest))
		if _, ok := results[inflight][realGitea]; ok {
			fmt.Fprintf(w, "; bot, real Gitea %.2f× Gitea's own status writes", ratio(inflight, realGitea, bareGitea))
		}
		fmt.Fprintln(w, ".")
	}
}
