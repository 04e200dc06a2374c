// Command escape measures what a build's log that opens an escape sequence and never ends
// it costs the bot, against the same log without it: a fork's pull request printing ESC and
// megabytes of spaces, watched on its live page by a few open tabs, must not cost the bot
// more than the spaces alone.
//
// On a Nomad dev agent of its own (loopback), for -rounds rounds, alternating, a build
// writes -mib MiB of spaces after a 3-second sleep, then a last line; -viewers viewers (a
// child process: this program run again with -client) read its live log page from the
// bot's HTTP handler (server.New with the real orchestrator) to its end:
//
//   - plain (the baseline): the spaces alone;
//   - escape: ESC, then the same spaces, never terminated;
//   - and the two again for a build that got the secrets (its log rendered and masked
//     once, by package logtext), with -secrets.
//
// For each it reports the bot's CPU time (user and system, getrusage of this process, from
// before the dispatch to the last viewer's end) and its peak resident memory (VmRSS sampled
// every 100 ms) above what it held before. Every viewer must receive the last line. It
// prints a Markdown report.
//
//	go run ./bench/escape -mib 16 -viewers 6 -rounds 3 -secrets
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/albatros-ci/albatros/bench/benchkit"
	"github.com/albatros-ci/albatros/orchestrator"
	"github.com/albatros-ci/albatros/registry"
	"github.com/albatros-ci/albatros/registry/registrytest"
	"github.com/albatros-ci/albatros/secrets"
	"github.com/albatros-ci/albatros/server"
	"github.com/albatros-ci/albatros/testenv"
	"github.com/albatros-ci/albatros/webhook"
)

func main() {
	mib := flag.Int("mib", 16, "MiB of spaces the build writes")
	viewers := flag.Int("viewers", 6, "viewers of the build's live page")
	rounds := flag.Int("rounds", 3, "measurements of each kind, alternating")
	withSecrets := flag.Bool("secrets", false, "also measure builds that got the secrets")
	client := flag.String("client", "", "(internal) be the viewers of this URL")
	flag.Parse()
	if *client != "" {
		if err := watch(*client, *viewers); err != nil {
			fmt.Fprintln(os.Stderr, "escape -client:", err)
			os.Exit(1)
		}
		return
	}
	benchkit.Main("escape", func(p *testenv.Program) error { return run(p, *mib, *viewers, *rounds, *withSecrets) })
}

const (
	ns      = "ci"
	repoURL = "https://git.example.com/bench/app.git"
	secret  = "bench-secret-value-1"
	last    = "the last line of the build"
)

// kind is one log to measure.
type kind struct {
	name    string
	job     string // its builder
	secrets bool
}

func run(p *testenv.Program, mib, viewers, rounds int, withSecrets bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	_, nm, err := benchkit.Servers(ctx, p, false, true)
	if err != nil {
		return err
	}
	spaces := fmt.Sprintf("head -c %d /dev/zero | tr '\\0' ' '", mib<<20)
	builders := map[string]string{
		"plain":  "sleep 3; " + spaces + "; echo; echo '" + last + "'",
		"escape": "sleep 3; printf '\\033'; " + spaces + "; echo; echo '" + last + "'",
	}
	for job, script := range builders {
		if err := benchkit.Builder(nm.Client(p), ns, job, map[string]any{"command": "/bin/sh", "args": []string{"-c", script}}, false, nil); err != nil {
			return err
		}
	}
	kinds := []kind{{"plain", "plain", false}, {"escape", "escape", false}}
	if withSecrets {
		kinds = append(kinds, kind{"plain, secrets", "plain", true}, kind{"escape, secrets", "escape", true})
	}
	o, err := orchestrator.New(orchestrator.NewMemoryLedger())
	if err != nil {
		return err
	}
	defer o.Close()
	repos := &registrytest.Fake{Repos: map[string]*registry.Repo{repoURL: {Secrets: map[string]string{"TOKEN": secret}}}}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	bot := server.New(server.Config{Intake: webhook.New(repos, nil, log, webhook.Options{}), Builds: o, Repos: repos, Namespace: ns, Log: log})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: bot}
	go func() { _ = srv.Serve(l) }()
	p.Cleanup(func() { _ = srv.Close() })
	base := "http://" + l.Addr().String()
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	payload, err := secrets.Payload("", map[string]string{"TOKEN": secret})
	if err != nil {
		return err
	}

	cpu, mem := map[string][]float64{}, map[string][]float64{}
	for round := range rounds {
		for _, k := range kinds {
			runtime.GC()
			debug.FreeOSMemory()
			before, err := testenv.RSS(os.Getpid())
			if err != nil {
				return err
			}
			start := cpuTime()
			req := orchestrator.DispatchRequest{Builder: orchestrator.Builder{Namespace: ns, Job: k.job}, Meta: map[string]string{
				"REPO_URL": repoURL, "COMMIT": strings.Repeat("a", 40), "BRANCH": "main", "FLAVOR": "default",
			}}
			if k.secrets {
				req.Payload, req.HasSecrets = payload, true
			}
			d, err := o.Dispatch(ctx, req)
			if err != nil {
				return err
			}
			peak, err := measure(ctx, exe, base+orchestrator.LogPath(d.Namespace, d.JobID), viewers)
			if err != nil {
				return fmt.Errorf("%s: %w", k.name, err)
			}
			used := (cpuTime() - start).Seconds()
			grew := float64(peak-before) / (1 << 20)
			cpu[k.name], mem[k.name] = append(cpu[k.name], used), append(mem[k.name], grew)
			fmt.Fprintf(os.Stderr, "escape: round %d %-16s CPU %.2f s, memory +%.1f MiB\n", round+1, k.name, used, grew)
		}
	}
	report(os.Stdout, kinds, cpu, mem, mib, viewers, rounds)
	return nil
}

// cpuTime is this process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// measure runs the viewers of url in a child process, sampling this process's resident
// memory meanwhile, and returns its peak.
func measure(ctx context.Context, exe, url string, viewers int) (int64, error) {
	cmd := exec.CommandContext(ctx, exe, "-client", url, "-viewers", strconv.Itoa(viewers))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var peak int64
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case err := <-done:
			if err != nil {
				return 0, fmt.Errorf("the viewers: %w", err)
			}
			return peak, nil
		case <-t.C:
			if n, err := testenv.RSS(os.Getpid()); err == nil && n > peak {
				peak = n
			}
		}
	}
}

// watch is the child process: viewers of url, each reading the page to its end; it fails
// unless every viewer received the build's last line.
func watch(url string, viewers int) error {
	pages := testenv.WatchLivePage(&http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: viewers}}, url, viewers, func() {})
	for i, p := range pages {
		if p.Err != nil {
			return fmt.Errorf("viewer %d: %w", i, p.Err)
		}
		if p.Status != http.StatusOK || !strings.Contains(p.Body, last) {
			return fmt.Errorf("viewer %d: %d, without the last line", i, p.Status)
		}
	}
	return nil
}

func report(w io.Writer, kinds []kind, cpu, mem map[string][]float64, mib, viewers, rounds int) {
	fmt.Fprintf(w, "Result, %s, %s/%s, %d CPUs, %s; a build writing %d MiB of spaces, %d viewers of its live page, %d rounds of each, alternating:\n\n",
		time.Now().UTC().Format("2006-01-02"), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version(), mib, viewers, rounds)
	fmt.Fprintln(w, "| log | bot CPU, s (median) | min | max | ratio to plain | bot memory, MiB above idle (median) | min | max | ratio to plain |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|")
	for _, k := range kinds {
		baseName := "plain"
		if k.secrets {
			baseName = "plain, secrets"
		}
		c, m := cpu[k.name], mem[k.name]
		fmt.Fprintf(w, "| %s | %.2f | %.2f | %.2f | %.2f× | %.1f | %.1f | %.1f | %.2f× |\n", k.name,
			benchkit.Median(c), slices.Min(c), slices.Max(c), benchkit.Median(c)/benchkit.Median(cpu[baseName]),
			benchkit.Median(m), slices.Min(m), slices.Max(m), benchkit.Median(m)/benchkit.Median(mem[baseName]))
	}
}
