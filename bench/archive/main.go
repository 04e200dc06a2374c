// Command archive measures the archive of finished builds against the cheapest ways to do
// the same work, on both stores (a directory, and a real S3 server: versitygw from
// tools/), in the same run, -rounds times each, alternating:
//
//   - archiving a -mib MiB build log: the bot's archive.Write (zstd, the log's object,
//     the index entries, the record) against a bare PUT of the same compressed bytes (the
//     target's baseline), and against a bare zstd and PUT;
//   - serving that archived log over loopback HTTP: the bot's GET /build (the access
//     check, the archive's record, the decompression, the response) against a bare
//     net/http handler that GETs the object and decompresses it into its response;
//   - the history page of a repository with -builds archived builds: the bot's GET
//     /builds/<owner>/<repo> (50 rows), from a fresh archive (no record in memory) and
//     again, against a bare listing of the same 51 index entries and GET of 50 records;
//   - a badge, cached: the bot's GET /badge/<owner>/<repo>.svg against a bare net/http
//     handler writing the same bytes, -requests requests from 8 clients.
//
// It prints a Markdown report.
//
//	go run ./bench/archive -mib 50 -builds 10000 -rounds 3
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/albatros-ci/albatros/archive"
	"github.com/albatros-ci/albatros/bench/benchkit"
	"github.com/albatros-ci/albatros/forge"
	"github.com/albatros-ci/albatros/forge/forgetest"
	"github.com/albatros-ci/albatros/orchestrator/orchestratortest"
	"github.com/albatros-ci/albatros/registry"
	"github.com/albatros-ci/albatros/registry/registrytest"
	"github.com/albatros-ci/albatros/server"
	"github.com/albatros-ci/albatros/testenv"
	"github.com/albatros-ci/albatros/web"
	"github.com/albatros-ci/albatros/webhook"
)

func main() {
	mib := flag.Int("mib", 50, "size of the build log archived and served, MiB")
	builds := flag.Int("builds", 10000, "archived builds of the repository whose history page is read")
	rounds := flag.Int("rounds", 3, "measurements of each kind, alternating")
	requests := flag.Int("requests", 20000, "badge requests per round")
	flag.Parse()
	benchkit.Main("archive", func(p *testenv.Program) error { return run(p, *mib, *builds, *rounds, *requests) })
}

const (
	gitea    = "http://gitea.invalid"
	cloneURL = gitea + "/org/app.git"
)

type store struct {
	name string
	st   archive.Store
}

func run(p *testenv.Program, mib, builds, rounds, requests int) error {
	ctx := context.Background()
	dir, err := benchkit.TempDir(p, "archive")
	if err != nil {
		return err
	}
	d, err := archive.NewDir(dir)
	if err != nil {
		return err
	}
	bin, err := testenv.Binary("versitygw")
	if err != nil {
		return err
	}
	s3, err := testenv.StartS3(ctx, bin, "bench")
	if err != nil {
		return err
	}
	p.Cleanup(s3.Stop)
	s, err := archive.NewS3(s3.Bucket, "bench", s3.Getenv)
	if err != nil {
		return err
	}
	stores := []store{{"directory", d}, {"S3 (versitygw)", s}}
	log := buildLog(mib << 20)
	fmt.Printf("## The archive\n\n`go run ./bench/archive -mib %d -builds %d -rounds %d -requests %d`: %d rounds, medians.\n\n", mib, builds, rounds, requests, rounds)
	for _, st := range stores {
		if err := archiving(ctx, st, log, rounds); err != nil {
			return fmt.Errorf("%s: archiving: %w", st.name, err)
		}
	}
	for _, st := range stores {
		if err := serving(ctx, st, log, rounds); err != nil {
			return fmt.Errorf("%s: serving: %w", st.name, err)
		}
	}
	for _, st := range stores {
		if err := history(ctx, st, builds, rounds); err != nil {
			return fmt.Errorf("%s: history: %w", st.name, err)
		}
	}
	return badges(ctx, stores[1], rounds, requests)
}

// buildLog is n bytes of a compiler's log: lines of paths, flags, timings and hashes.
func buildLog(n int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	words := []string{"CC", "LD", "AR", "GEN", "warning:", "note:", "-O2", "-Wall", "-fPIC", "src/net", "src/fs", "include/linux", "unused", "variable", "ok", "PASS", "--- RUN"}
	var b bytes.Buffer
	for b.Len() < n {
		fmt.Fprintf(&b, "[%8.3f] %s %s/%s_%04d.c", float64(b.Len())/1e6, words[r.IntN(4)], words[9+r.IntN(3)], words[12+r.IntN(2)], r.IntN(5000))
		for range r.IntN(4) {
			fmt.Fprintf(&b, " %s", words[r.IntN(len(words))])
		}
		fmt.Fprintf(&b, " hash=%08x\n", r.Uint32())
	}
	return b.Bytes()[:n]
}

func record(i int, queued time.Time) archive.Record {
	return archive.Record{
		Namespace: "ci", JobID: fmt.Sprintf("builder/dispatch-albatros-k%020d-%d-bench", i, queued.Unix()), Builder: "builder",
		Repo: cloneURL, Commit: fmt.Sprintf("%040x", i), Branch: "main", Flavor: "default", Cause: "push", Sender: "alice",
		State: []string{"success", "failure", "error"}[i%3], Reason: "the build passed after 1m0s",
		Queued: queued, Started: queued.Add(time.Second), Ended: queued.Add(time.Minute),
	}
}

func compress(log []byte) []byte {
	var buf bytes.Buffer
	enc, _ := zstd.NewWriter(&buf, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	_, _ = enc.Write(log)
	_ = enc.Close()
	return buf.Bytes()
}

func median(d []time.Duration) time.Duration {
	f := make([]float64, len(d))
	for i, v := range d {
		f[i] = float64(v)
	}
	return time.Duration(benchkit.Median(f))
}

func mibps(n int, d time.Duration) float64 { return float64(n) / (1 << 20) / d.Seconds() }

var seq int

func archiving(ctx context.Context, st store, log []byte, rounds int) error {
	a := archive.New(st.st, archive.Options{MaxLog: int64(len(log)) + 1})
	packed := compress(log)
	var bare, bareZ, bot []time.Duration
	for range rounds {
		seq++
		t0 := time.Now()
		if err := st.st.Put(ctx, fmt.Sprintf("bare/%d.zst", seq), bytes.NewReader(packed), int64(len(packed))); err != nil {
			return err
		}
		bare = append(bare, time.Since(t0))
		t0 = time.Now()
		z := compress(log)
		if err := st.st.Put(ctx, fmt.Sprintf("bare/%d-z.zst", seq), bytes.NewReader(z), int64(len(z))); err != nil {
			return err
		}
		bareZ = append(bareZ, time.Since(t0))
		t0 = time.Now()
		rec := record(1_000_000+seq, time.Now())
		_, err := a.Write(ctx, rec, func(_ context.Context, stream string, w io.Writer) error {
			if stream == "stdout" {
				_, err := w.Write(log)
				return err
			}
			return nil
		})
		if err != nil {
			return err
		}
		bot = append(bot, time.Since(t0))
	}
	b, bz, o := median(bare), median(bareZ), median(bot)
	fmt.Printf("### Archiving a %d MiB log, %s\n\n%d MiB of log compress to %.1f MiB (zstd, fastest).\n\n| | median | MiB of log/s | bot ÷ it |\n|---|---|---|---|\n", len(log)>>20, st.name, len(log)>>20, float64(len(packed))/(1<<20))
	fmt.Printf("| bare PUT of the compressed bytes (the target's baseline) | %s | %.0f | **%.2fx** |\n", b.Round(time.Millisecond), mibps(len(log), b), b.Seconds()/o.Seconds())
	fmt.Printf("| bare zstd and PUT | %s | %.0f | %.2fx |\n", bz.Round(time.Millisecond), mibps(len(log), bz), bz.Seconds()/o.Seconds())
	fmt.Printf("| bot: archive.Write (zstd, log, index, record) | %s | %.0f | 1 |\n\n", o.Round(time.Millisecond), mibps(len(log), o))
	return nil
}

// visible is a forge on which every repository is public.
type visible struct{ *forgetest.Forge }

func (visible) IsPrivate(context.Context, forge.Repo) (bool, error) { return false, nil }

func forgeFor(*registry.Repo, string) (forge.Forge, forge.Repo, error) {
	return visible{&forgetest.Forge{}}, forge.Repo{CloneURL: cloneURL, Owner: "org", Name: "app", FullName: "org/app"}, nil
}

func listen(h http.Handler) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), func() { _ = srv.Close() }, nil
}

func fetch(c *http.Client, u string) (int64, error) {
	resp, err := c.Get(u)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err == nil && resp.StatusCode != 200 {
		err = fmt.Errorf("GET %s: %d", u, resp.StatusCode)
	}
	return n, err
}

func serving(ctx context.Context, st store, log []byte, rounds int) error {
	a := archive.New(st.st, archive.Options{MaxLog: int64(len(log)) + 1})
	seq++
	rec := record(2_000_000+seq, time.Now())
	if _, err := a.Write(ctx, rec, func(_ context.Context, stream string, w io.Writer) error {
		if stream == "stdout" {
			_, err := w.Write(log)
			return err
		}
		return nil
	}); err != nil {
		return err
	}
	key := "builds/" + archive.BuildKey(rec.Namespace, rec.JobID) + "/stdout.zst"
	bareH := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc, err := st.st.Get(r.Context(), key)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		defer rc.Close()
		dec, _ := zstd.NewReader(rc, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
		defer dec.Close()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = dec.WriteTo(w)
	})
	repos := &registrytest.Fake{Repos: map[string]*registry.Repo{cloneURL: {}}}
	quiet := slog.New(slog.DiscardHandler)
	intake := webhook.New(repos, nil, quiet, webhook.Options{})
	pages := web.New(web.Config{BaseURL: "http://bot.invalid", GiteaURL: gitea, Records: pagesRecords{repos}, Forge: forgeFor, Archive: a, Log: quiet})
	botH := server.New(server.Config{Intake: intake, Builds: &orchestratortest.Fake{}, Repos: repos, Namespace: "ci", Logs: pages, Archive: a, Log: quiet})
	bareURL, stopBare, err := listen(bareH)
	if err != nil {
		return err
	}
	defer stopBare()
	botURL, stopBot, err := listen(botH)
	if err != nil {
		return err
	}
	defer stopBot()
	c := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	q := url.Values{"job": {rec.JobID}, "namespace": {rec.Namespace}}.Encode()
	var bare, bot []time.Duration
	for range rounds {
		t0 := time.Now()
		n, err := fetch(c, bareURL+"/")
		if err != nil || n != int64(len(log)) {
			return fmt.Errorf("bare: %d bytes, %v", n, err)
		}
		bare = append(bare, time.Since(t0))
		t0 = time.Now()
		n, err = fetch(c, botURL+"/build?"+q)
		if err != nil || n != int64(len(log)) {
			return fmt.Errorf("bot: %d bytes, %v", n, err)
		}
		bot = append(bot, time.Since(t0))
	}
	b, o := median(bare), median(bot)
	fmt.Printf("### Serving the archived %d MiB log, %s\n\n| over loopback HTTP | median | MiB/s | bot ÷ it |\n|---|---|---|---|\n", len(log)>>20, st.name)
	fmt.Printf("| bare handler: GET the object, zstd into the response (the target's baseline) | %s | %.0f | **%.2fx** |\n", b.Round(time.Millisecond), mibps(len(log), b), b.Seconds()/o.Seconds())
	fmt.Printf("| bot: `GET /build` | %s | %.0f | 1 |\n\n", o.Round(time.Millisecond), mibps(len(log), o))
	return nil
}

// pagesRecords is the registry as the pages use it: the repository registered, no
// installation.
type pagesRecords struct{ *registrytest.Fake }

func (pagesRecords) Installation(context.Context, string) (*registry.Installation, error) {
	return nil, registry.ErrNotFound
}
func (pagesRecords) PutInstallation(context.Context, *registry.Installation) error  { return nil }
func (pagesRecords) SetSecret(*registry.Installation, string, string, string) error { return nil }

func history(ctx context.Context, st store, n, rounds int) error {
	a := archive.New(st.st, archive.Options{})
	t0 := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 16)
	start := time.Now().Add(-time.Duration(n) * time.Minute)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if _, err := a.Write(ctx, record(i, start.Add(time.Duration(i)*time.Minute)), nil); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	filled := time.Since(t0)
	repos := &registrytest.Fake{Repos: map[string]*registry.Repo{cloneURL: {}}}
	quiet := slog.New(slog.DiscardHandler)
	c := &http.Client{}
	var bare, cold, warm []time.Duration
	for range rounds {
		fresh := archive.New(st.st, archive.Options{})
		t0 := time.Now()
		names, err := st.st.List(ctx, "repos/"+archive.RepoKey(0, cloneURL)+"/all/", "", 51)
		if err != nil || len(names) != 51 {
			return fmt.Errorf("bare list: %d, %v", len(names), err)
		}
		var bw sync.WaitGroup
		for _, name := range names[:50] {
			bw.Add(1)
			sem <- struct{}{}
			go func() {
				defer bw.Done()
				defer func() { <-sem }()
				build := strings.Split(name, "_")[1]
				rc, err := st.st.Get(ctx, "builds/"+build+"/record.json")
				if err == nil {
					_, _ = io.Copy(io.Discard, rc)
					rc.Close()
				}
			}()
		}
		bw.Wait()
		bare = append(bare, time.Since(t0))

		pages := web.New(web.Config{BaseURL: "http://bot.invalid", GiteaURL: gitea, Records: pagesRecords{repos}, Forge: forgeFor, Archive: fresh, Log: quiet})
		mux := http.NewServeMux()
		pages.Register(mux)
		u, stop, err := listen(mux)
		if err != nil {
			return err
		}
		for i, into := range []*[]time.Duration{&cold, &warm} {
			t0 := time.Now()
			resp, err := c.Get(u + "/builds/org/app")
			if err != nil {
				stop()
				return err
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			*into = append(*into, time.Since(t0))
			if resp.StatusCode != 200 || strings.Count(string(body), ">log</a>") != 50 {
				stop()
				return fmt.Errorf("history page (request %d): %d, %d rows", i, resp.StatusCode, strings.Count(string(body), ">log</a>"))
			}
		}
		stop()
	}
	b, co, wa := median(bare), median(cold), median(warm)
	fmt.Printf("### The history page of a repository with %d builds, %s\n\n(%d builds archived in %s, 16 at a time.)\n\n| | median | bot ÷ it |\n|---|---|---|\n", n, st.name, n, filled.Round(time.Second))
	fmt.Printf("| bare: list 51 index entries, GET 50 records | %s | |\n", b.Round(100*time.Microsecond))
	fmt.Printf("| bot: `GET /builds/org/app`, no record in memory | %s | %.2fx |\n", co.Round(100*time.Microsecond), b.Seconds()/co.Seconds())
	fmt.Printf("| bot: the same page again | %s | %.2fx |\n\n", wa.Round(100*time.Microsecond), b.Seconds()/wa.Seconds())
	return nil
}

func badges(ctx context.Context, st store, rounds, requests int) error {
	a := archive.New(st.st, archive.Options{})
	repos := &registrytest.Fake{Repos: map[string]*registry.Repo{cloneURL: {}}}
	quiet := slog.New(slog.DiscardHandler)
	pages := web.New(web.Config{BaseURL: "http://bot.invalid", GiteaURL: gitea, Records: pagesRecords{repos}, Forge: forgeFor, Archive: a, Log: quiet})
	mux := http.NewServeMux()
	pages.Register(mux)
	botURL, stopBot, err := listen(mux)
	if err != nil {
		return err
	}
	defer stopBot()
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	resp, err := c.Get(botURL + "/badge/org/app.svg?branch=main")
	if err != nil {
		return err
	}
	svg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("badge: %d %s", resp.StatusCode, svg)
	}
	bareURL, stopBare, err := listen(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/svg+xml")
		w.Header().Set("Cache-Control", "public, max-age=60")
		_, _ = w.Write(svg)
	}))
	if err != nil {
		return err
	}
	defer stopBare()
	load := func(u string) (float64, error) {
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		t0 := time.Now()
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range requests / 8 {
					if _, err := fetch(c, u); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		return float64(requests) / time.Since(t0).Seconds(), <-errs
	}
	var bare, bot []float64
	for range rounds {
		r, err := load(bareURL + "/badge/org/app.svg?branch=main")
		if err != nil {
			return err
		}
		bare = append(bare, r)
		if r, err = load(botURL + "/badge/org/app.svg?branch=main"); err != nil {
			return err
		}
		bot = append(bot, r)
	}
	b, o := benchkit.Median(bare), benchkit.Median(bot)
	fmt.Printf("### A badge, cached\n\n%d requests a round from 8 clients over loopback HTTP, keep-alive.\n\n| | requests/s | bot ÷ it |\n|---|---|---|\n", requests)
	fmt.Printf("| bare net/http handler writing the same SVG (the target's baseline) | %.0f | **%.2fx** |\n", b, o/b)
	fmt.Printf("| bot: `GET /badge/org/app.svg` | %.0f | 1 |\n\n", o)
	_ = ctx
	return nil
}
