// Command logrelay measures how fast the bot relays a finished build's log, against
// Nomad's own plain log read, in the same run: what a user downloading a big log (or a
// script reading /build) waits for.
//
// On a Nomad dev agent of its own (loopback), it runs one build whose task writes -mib MiB
// to stdout (Nomad rotates it into several files), then reads that log, alternating, -n
// times each:
//
//   - nomad, plain (the baseline): GET /v1/client/fs/logs/<alloc>?plain=true, to the end,
//     asking for it uncompressed, as the bot does;
//   - nomad, plain, gzip: the same as Go's HTTP client asks for it by default (gzipped,
//     which Nomad then compresses on the fly);
//   - nomad, frames: the Go client's AllocFS().Logs (JSON frames, base64 data), which the
//     bot read until it asked for plain bytes;
//   - bot: GET /build?job=…&log=stdout on the bot's HTTP handler (server.New, with the real
//     orchestrator): the build looked up, its log followed to its end, masked with the
//     repository's secrets and written out.
//
// It prints a Markdown report.
//
//	go run ./bench/logrelay -mib 50 -n 5
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	nomad "github.com/hashicorp/nomad/api"

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
	mib := flag.Int("mib", 50, "MiB the build writes to stdout")
	n := flag.Int("n", 5, "reads of each kind, alternating")
	flag.Parse()
	benchkit.Main("logrelay", func(p *testenv.Program) error { return run(p, *mib, *n) })
}

const (
	ns, job = "ci", "bench-logs"
	repoURL = "https://git.example.com/bench/app.git"
)

var kinds = []string{"nomad, plain", "nomad, plain, gzip", "nomad, frames", "bot"}

func run(p *testenv.Program, mib, n int) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	_, nm, err := benchkit.Servers(ctx, p, false, true)
	if err != nil {
		return err
	}
	nc := nm.Client(p)
	size := int64(mib) << 20
	if err := registerBuilder(nc, size); err != nil {
		return err
	}
	o, err := orchestrator.New(orchestrator.NewMemoryLedger())
	if err != nil {
		return err
	}
	meta := map[string]string{"REPO_URL": repoURL, "COMMIT": strings.Repeat("a", 40), "BRANCH": "main", "FLAVOR": "default"}
	// A build that got the secrets: the bot renders and masks its log (package logtext).
	payload, err := secrets.Payload("", map[string]string{"TOKEN": "bench-secret-value-1", "KEY": "bench-secret-value-2"})
	if err != nil {
		return err
	}
	d, err := o.Dispatch(ctx, orchestrator.DispatchRequest{Builder: orchestrator.Builder{Namespace: ns, Job: job}, Meta: meta, Payload: payload, HasSecrets: true})
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "logrelay: waiting for the build to write %d MiB\n", mib)
	out, err := o.Follow(ctx, ns, d.JobID, orchestrator.Stdout, io.Discard)
	if err != nil {
		return err
	}
	if out.Result != orchestrator.Success {
		return fmt.Errorf("the build did not succeed: %+v", out)
	}
	allocs, _, err := nc.Jobs().Allocations(d.JobID, true, &nomad.QueryOptions{Namespace: ns})
	if err != nil || len(allocs) != 1 {
		return fmt.Errorf("allocations of %s: %d, %v", d.JobID, len(allocs), err)
	}
	alloc, _, err := nc.Allocations().Info(allocs[0].ID, &nomad.QueryOptions{Namespace: ns})
	if err != nil {
		return err
	}

	repos := &registrytest.Fake{Repos: map[string]*registry.Repo{repoURL: {Secrets: map[string]string{"TOKEN": "bench-secret-value-1", "KEY": "bench-secret-value-2"}}}}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	handler := server.New(server.Config{Intake: webhook.New(repos, nil, log, webhook.Options{}), Builds: o, Repos: repos, Namespace: ns, Log: log})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: handler}
	go func() { _ = srv.Serve(l) }()
	p.Cleanup(func() { _ = srv.Close() })
	botURL := "http://" + l.Addr().String() + "/build?" + url.Values{"job": {d.JobID}, "namespace": {ns}, "log": {"stdout"}}.Encode()
	plainURL := nm.Addr + "/v1/client/fs/logs/" + alloc.ID + "?" + url.Values{"task": {orchestrator.Task}, "type": {"stdout"}, "origin": {"start"}, "offset": {"0"}, "plain": {"true"}, "namespace": {ns}}.Encode()

	identity := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	get := func(c *http.Client, u string) (int64, error) {
		resp, err := c.Get(u)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return 0, fmt.Errorf("GET %s: %s", u, resp.Status)
		}
		return io.Copy(io.Discard, resp.Body)
	}
	frames := func() (int64, error) {
		stop := make(chan struct{})
		defer close(stop)
		ch, errs := nc.AllocFS().Logs(alloc, false, orchestrator.Task, "stdout", "start", 0, stop, &nomad.QueryOptions{Namespace: ns})
		var total int64
		for f := range ch {
			total += int64(len(f.Data))
		}
		select {
		case err := <-errs:
			return total, err
		default:
			return total, nil
		}
	}
	read := map[string]func() (int64, error){
		"nomad, plain":       func() (int64, error) { return get(identity, plainURL) },
		"nomad, plain, gzip": func() (int64, error) { return get(http.DefaultClient, plainURL) },
		"nomad, frames":      frames,
		"bot":                func() (int64, error) { return get(identity, botURL) },
	}
	rates := map[string][]float64{}
	for round := range n {
		for _, k := range kinds {
			t0 := time.Now()
			got, err := read[k]()
			if err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
			if got < size {
				return fmt.Errorf("%s read %d bytes, want at least %d", k, got, size)
			}
			rate := float64(got) / (1 << 20) / time.Since(t0).Seconds()
			rates[k] = append(rates[k], rate)
			fmt.Fprintf(os.Stderr, "logrelay: round %d %-14s %7.1f MiB/s (%d bytes)\n", round+1, k, rate, got)
		}
	}
	report(os.Stdout, rates, mib, n)
	return nil
}

// registerBuilder registers a builder whose build writes size bytes of text to stdout, in
// log files of 10 MiB that Nomad rotates.
func registerBuilder(nc *nomad.Client, size int64) error {
	line := "albatros log relay benchmark: a line of a build's output, 63 bytes"
	maxFiles, fileMB := 20, 10
	return benchkit.Builder(nc, ns, job, map[string]any{"command": "/bin/sh", "args": []string{"-c", fmt.Sprintf("yes %q | head -c %d", line, size)}},
		false, &nomad.LogConfig{MaxFiles: &maxFiles, MaxFileSizeMB: &fileMB})
}

func report(w io.Writer, rates map[string][]float64, mib, n int) {
	fmt.Fprintf(w, "Result, %s, %s/%s, %d CPUs, %s; a finished build's %d MiB stdout, %d reads of each kind, alternating:\n\n",
		time.Now().UTC().Format("2006-01-02"), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version(), mib, n)
	fmt.Fprintln(w, "| read | MiB/s (median) | min | max | ratio to Nomad's plain read |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	base := benchkit.Median(rates["nomad, plain"])
	for _, k := range kinds {
		fmt.Fprintf(w, "| %s | %.1f | %.1f | %.1f | %.2f× |\n", k, benchkit.Median(rates[k]), slices.Min(rates[k]), slices.Max(rates[k]), benchkit.Median(rates[k])/base)
	}
}
