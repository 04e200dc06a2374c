// Command ingest measures what the bot's intake costs per delivery that it verifies and then
// ignores (a signed push deleting a branch: read, looked up, verified, parsed, answered),
// the work every delivery pays before anything is built, against a bare net/http handler
// that only reads the body, in the same run, over loopback HTTP, at 1 and 8 deliveries in
// flight.
//
// On a Consul of its own (loopback), it times, for -d each, alternating, -rounds times:
//
//   - bare: a handler that reads the body and answers 200 (the baseline);
//   - bot: the intake as the bot serves it (its registry following the entries in memory,
//     its log written to /dev/null);
//   - bot, Consul per delivery: the same with a registry that reads Consul for every
//     delivery, as the bot did before it followed its entries.
//
// It prints a Markdown report; the load generator shares the process and its 2 CPUs with
// the handlers, alike for all three.
//
//	go run ./bench/ingest -d 5s -rounds 3
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

	"github.com/albatros-ci/albatros/bench/benchkit"
	"github.com/albatros-ci/albatros/forge/gitea"
	"github.com/albatros-ci/albatros/pipeline"
	"github.com/albatros-ci/albatros/registry"
	"github.com/albatros-ci/albatros/testenv"
	"github.com/albatros-ci/albatros/webhook"
)

func main() {
	d := flag.Duration("d", 5*time.Second, "how long each measurement runs")
	rounds := flag.Int("rounds", 3, "measurements of each handler at each concurrency, alternating")
	flag.Parse()
	benchkit.Main("ingest", func(p *testenv.Program) error { return run(p, *d, *rounds) })
}

const secret = "bench-hook-secret"

// handlers are what is measured, in report order.
var handlers = []string{"bare", "bot", "bot, Consul per delivery"}

func run(p *testenv.Program, d time.Duration, rounds int) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	c, _, err := benchkit.Servers(ctx, p, true, false)
	if err != nil {
		return err
	}

	body, err := deletionPush()
	if err != nil {
		return err
	}
	var cap struct {
		Repository struct {
			CloneURL string `json:"clone_url"`
		} `json:"repository"`
	}
	if err := json.Unmarshal(body, &cap); err != nil {
		return err
	}
	entry, _ := json.Marshal(map[string]any{"hook": map[string]string{"secret": secret}})
	key := "albatros/" + base64.StdEncoding.EncodeToString([]byte(cap.Repository.CloneURL))
	if _, err := c.Client(p).KV().Put(&consul.KVPair{Key: key, Value: entry}, nil); err != nil {
		return err
	}

	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer devnull.Close()
	log := slog.New(slog.NewTextHandler(devnull, nil))
	intake := func(follow bool) (http.Handler, error) {
		reg, err := registry.New("albatros/", nil)
		if err != nil {
			return nil, err
		}
		if follow {
			reg.Follow(ctx, func(err error) { fmt.Fprintln(os.Stderr, "ingest: registry:", err) })
			if err := reg.Synced(ctx); err != nil {
				return nil, err
			}
		}
		// Ignored deliveries never reach the pipeline.
		return webhook.New(reg, pipeline.New(pipeline.Config{}), log, webhook.Options{}).Gitea(), nil
	}
	bot, err := intake(true)
	if err != nil {
		return err
	}
	perDelivery, err := intake(false)
	if err != nil {
		return err
	}
	bare := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK)
	})
	urls := map[string]string{}
	for name, h := range map[string]http.Handler{"bare": bare, "bot": bot, "bot, Consul per delivery": perDelivery} {
		u, err := serve(p, h)
		if err != nil {
			return err
		}
		urls[name] = u
	}

	header := http.Header{}
	header.Set("Content-Type", "application/json")
	header.Set("X-Gitea-Event", "push")
	header.Set("X-Gitea-Delivery", "bench")
	header.Set("X-Gitea-Signature", gitea.Sign(body, secret))
	// Each handler answers the delivery as it should before anything is timed.
	for _, name := range handlers {
		code, answer, err := post(http.DefaultClient, urls[name], header, body)
		if err != nil {
			return err
		}
		if code != http.StatusOK || (name != "bare" && !strings.Contains(answer, "ignored: deletion")) {
			return fmt.Errorf("%s answers %d %q, want 200 and the deletion ignored", name, code, answer)
		}
	}

	results := map[int]map[string][]float64{}
	for _, inflight := range []int{1, 8} {
		results[inflight] = map[string][]float64{}
		for round := range rounds {
			for _, name := range handlers {
				rate, err := measure(urls[name], header, body, inflight, d)
				if err != nil {
					return err
				}
				results[inflight][name] = append(results[inflight][name], rate)
				fmt.Fprintf(os.Stderr, "ingest: %d in flight, round %d, %-26s %8.0f req/s\n", inflight, round+1, name, rate)
			}
		}
	}
	report(os.Stdout, results, len(body), d, rounds)
	return nil
}

// deletionPush is the push captured from Gitea with its after set to zeros: a deletion, which
// the bot verifies, parses and ignores.
func deletionPush() ([]byte, error) {
	m, _, err := benchkit.GiteaPush()
	if err != nil {
		return nil, err
	}
	m["after"] = strings.Repeat("0", 40)
	return json.Marshal(m)
}

func serve(p *testenv.Program, h http.Handler) (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	p.Cleanup(func() { _ = srv.Close() })
	return "http://" + l.Addr().String() + "/webhook/gitea", nil
}

func post(client *http.Client, url string, header http.Header, body []byte) (int, string, error) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header = header.Clone()
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	answer, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(answer), err
}

// measure posts the delivery from inflight goroutines for d and returns the answers per
// second; any answer but 200 fails it.
func measure(url string, header http.Header, body []byte, inflight int, d time.Duration) (float64, error) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: inflight, MaxConnsPerHost: inflight}}
	defer client.CloseIdleConnections()
	var done atomic.Int64
	var failed atomic.Value
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	start := time.Now()
	for range inflight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				code, answer, err := post(client, url, header, body)
				if err == nil && code != http.StatusOK {
					err = fmt.Errorf("answer %d %q", code, answer)
				}
				if err != nil {
					failed.Store(err)
					return
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	if err, ok := failed.Load().(error); ok {
		return 0, err
	}
	return float64(done.Load()) / time.Since(start).Seconds(), nil
}

func report(w io.Writer, results map[int]map[string][]float64, size int, d time.Duration, rounds int) {
	fmt.Fprintf(w, "Result, %s, %s/%s, %d CPUs, %s; a signed %d-byte push deleting a branch, %d rounds of %s per handler, alternating:\n\n",
		time.Now().UTC().Format("2006-01-02"), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version(), size, rounds, d)
	fmt.Fprintln(w, "| in flight | handler | deliveries/s (median) | min | max | ratio to bare |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	for _, inflight := range []int{1, 8} {
		base := benchkit.Median(results[inflight]["bare"])
		for _, name := range handlers {
			v := results[inflight][name]
			fmt.Fprintf(w, "| %d | %s | %.0f | %.0f | %.0f | %.2f× |\n", inflight, name, benchkit.Median(v), slices.Min(v), slices.Max(v), benchkit.Median(v)/base)
		}
	}
}
