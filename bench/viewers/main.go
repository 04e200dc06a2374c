// Command viewers measures the memory the bot holds per viewer of a running build's live
// log page, against a bare streaming handler in the same process and run: what a popular
// build's page costs the bot.
//
// On a Nomad dev agent of its own (loopback), for -rounds rounds, alternating:
//
//   - bare (the baseline): a net/http handler that streams the same lines, at the same
//     pace, to each of -viewers viewers (one goroutine and one connection each: what any
//     Go server pays to hold a response open);
//   - bot: the bot's HTTP handler (server.New, with the real orchestrator), -viewers
//     viewers of the live log page (/logs/<ns>/<job>) of one running build, which writes
//     -lines lines 50 ms apart after a 3-second sleep.
//
// The viewers run in a child process (this program run again with -client), so that the
// resident memory measured (/proc/self/status, VmRSS) is the handler's: sampled after a
// garbage collection before the viewers connect, then once they all receive the page.
// Every viewer must receive every line and the page's end. It prints a Markdown report.
//
//	go run ./bench/viewers -viewers 1000 -rounds 3
package main

import (
	"bufio"
	"cmp"
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
	"time"

	"github.com/albatros-ci/albatros/bench/benchkit"
	"github.com/albatros-ci/albatros/orchestrator"
	"github.com/albatros-ci/albatros/registry"
	"github.com/albatros-ci/albatros/registry/registrytest"
	"github.com/albatros-ci/albatros/server"
	"github.com/albatros-ci/albatros/testenv"
	"github.com/albatros-ci/albatros/webhook"
)

func main() {
	viewers := flag.Int("viewers", 1000, "viewers of the build's page")
	lines := flag.Int("lines", 200, "lines the build writes, 50 ms apart")
	rounds := flag.Int("rounds", 3, "measurements of each kind, alternating")
	client := flag.String("client", "", "(internal) be the viewers of this URL")
	flag.Parse()
	if *client != "" {
		if err := watch(*client, *viewers, *lines); err != nil {
			fmt.Fprintln(os.Stderr, "viewers -client:", err)
			os.Exit(1)
		}
		return
	}
	benchkit.Main("viewers", func(p *testenv.Program) error { return run(p, *viewers, *lines, *rounds) })
}

const (
	ns, job = "ci", "bench-builder"
	repoURL = "https://git.example.com/bench/app.git"
)

var kinds = []string{"bare", "bot"}

func run(p *testenv.Program, viewers, lines, rounds int) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	_, nm, err := benchkit.Servers(ctx, p, false, true)
	if err != nil {
		return err
	}
	script := testenv.LinesScript(lines)
	if err := benchkit.Builder(nm.Client(p), ns, job, map[string]any{"command": "/bin/sh", "args": []string{"-c", script}}, false, nil); err != nil {
		return err
	}
	o, err := orchestrator.New(orchestrator.NewMemoryLedger())
	if err != nil {
		return err
	}
	defer o.Close()
	repos := &registrytest.Fake{Repos: map[string]*registry.Repo{repoURL: {Secrets: map[string]string{"TOKEN": "bench-secret-value-1"}}}}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	bot := server.New(server.Config{Intake: webhook.New(repos, nil, log, webhook.Options{}), Builds: o, Repos: repos, Namespace: ns, Log: log})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /bare", func(w http.ResponseWriter, r *http.Request) { bare(w, r, lines) })
	mux.Handle("/", bot)
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(l) }()
	p.Cleanup(func() { _ = srv.Close() })
	base := "http://" + l.Addr().String()
	exe, err := os.Executable()
	if err != nil {
		return err
	}

	perViewer := map[string][]float64{}
	for round := range rounds {
		for _, k := range kinds {
			url := base + "/bare"
			if k == "bot" {
				d, err := o.Dispatch(ctx, orchestrator.DispatchRequest{Builder: orchestrator.Builder{Namespace: ns, Job: job}, Meta: map[string]string{
					"REPO_URL": repoURL, "COMMIT": strings.Repeat("a", 40), "BRANCH": "main", "FLAVOR": "default",
				}})
				if err != nil {
					return err
				}
				url = base + orchestrator.LogPath(d.Namespace, d.JobID)
			}
			kib, err := measure(ctx, exe, url, viewers, lines)
			if err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
			perViewer[k] = append(perViewer[k], kib)
			fmt.Fprintf(os.Stderr, "viewers: round %d %-5s %.1f KiB per viewer\n", round+1, k, kib)
		}
	}
	report(os.Stdout, perViewer, viewers, lines, rounds)
	return nil
}

// bare streams what the build writes, at its pace, as a page that ends like the bot's.
func bare(w http.ResponseWriter, r *http.Request, lines int) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fl := w.(http.Flusher)
	fmt.Fprint(w, "<!doctype html><pre>")
	fl.Flush()
	select {
	case <-r.Context().Done():
		return
	case <-time.After(3 * time.Second):
	}
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for i := 1; i <= lines; i++ {
		fmt.Fprintf(w, "line %d of the build\n", i)
		fl.Flush()
		select {
		case <-r.Context().Done():
			return
		case <-t.C:
		}
	}
	fmt.Fprint(w, `</pre><p class="success">the build succeeded</p>`)
}

// measure runs the viewers of url in a child process and returns this process's resident
// memory added per viewer once they all receive the page.
func measure(ctx context.Context, exe, url string, viewers, lines int) (float64, error) {
	runtime.GC()
	debug.FreeOSMemory()
	before, err := testenv.RSS(os.Getpid())
	if err != nil {
		return 0, err
	}
	cmd := exec.CommandContext(ctx, exe, "-client", url, "-viewers", strconv.Itoa(viewers), "-lines", strconv.Itoa(lines))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(out)
	var during int64
	for sc.Scan() {
		if sc.Text() == "watching" {
			time.Sleep(500 * time.Millisecond)
			if during, err = testenv.RSS(os.Getpid()); err != nil {
				return 0, err
			}
		}
	}
	if err := cmd.Wait(); err != nil {
		return 0, fmt.Errorf("the viewers: %w", err)
	}
	if during == 0 {
		return 0, fmt.Errorf("the viewers never all watched")
	}
	return float64(during-before) / 1024 / float64(viewers), nil
}

// watch is the child process: viewers of url, each reading the page to its end. It prints
// "watching" once every viewer receives the page, and fails unless every viewer received
// every line and the page's end.
func watch(url string, viewers, lines int) error {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: viewers}}
	pages := testenv.WatchLivePage(client, url, viewers, func() { fmt.Println("watching") })
	failed := 0
	var first error
	for _, p := range pages {
		if err := p.Complete(lines); err != nil {
			failed++
			first = cmp.Or(first, err)
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d viewers failed, the first: %w", failed, viewers, first)
	}
	return nil
}

func report(w io.Writer, perViewer map[string][]float64, viewers, lines, rounds int) {
	fmt.Fprintf(w, "Result, %s, %s/%s, %d CPUs, %s; %d viewers of a build writing %d lines, %d rounds of each, alternating:\n\n",
		time.Now().UTC().Format("2006-01-02"), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version(), viewers, lines, rounds)
	fmt.Fprintln(w, "| handler | KiB per viewer (median) | min | max | ratio to bare |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	base := benchkit.Median(perViewer["bare"])
	for _, k := range kinds {
		v := perViewer[k]
		fmt.Fprintf(w, "| %s | %.1f | %.1f | %.1f | %.2f× |\n", k, benchkit.Median(v), slices.Min(v), slices.Max(v), benchkit.Median(v)/base)
	}
}
