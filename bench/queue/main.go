// Command queue measures the memory the bot's intake holds for verified deliveries waiting
// their turn, against the cheapest way to hold the same deliveries: a slice of their parsed
// events, in the same process and run. A burst of tens of thousands of pushes must wait
// within the intake's bound (Options.QueueBytes, 96 MiB by default) rather than be refused.
//
// In one process, without servers (the pipeline is a handler that waits until told to go
// on, so that every delivery stays queued), -n signed Gitea pushes, each a commit of its
// own, -rounds times each, alternating:
//
//   - bare (the baseline): the bodies parsed (gitea.Parse) and their events kept in a slice;
//   - bot: the bodies posted to the intake over loopback HTTP, verified, parsed and queued,
//     MaxHandling of them held by the handler and the others waiting.
//
// It measures the Go heap in use after a garbage collection (runtime.ReadMemStats), before
// and once all are held, and for the bot what its queue counts against the bound. It fails
// unless every delivery is accepted. It prints a Markdown report.
//
//	go run ./bench/queue -n 20000 -rounds 3
package main

import (
	"bytes"
	"context"
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
	"time"

	"github.com/albatros-ci/albatros/bench/benchkit"
	"github.com/albatros-ci/albatros/forge"
	"github.com/albatros-ci/albatros/forge/gitea"
	"github.com/albatros-ci/albatros/orchestrator"
	"github.com/albatros-ci/albatros/pipeline"
	"github.com/albatros-ci/albatros/registry"
	"github.com/albatros-ci/albatros/testenv"
	"github.com/albatros-ci/albatros/webhook"
)

func main() {
	n := flag.Int("n", 20000, "deliveries held")
	rounds := flag.Int("rounds", 3, "measurements of each kind, alternating")
	flag.Parse()
	benchkit.Main("queue", func(p *testenv.Program) error { return run(*n, *rounds) })
}

const secret = "bench-hook-secret"

// held is a handler that holds every delivery until released.
type held struct {
	release chan struct{}
	mu      sync.Mutex
	count   int
}

func (h *held) Handle(ctx context.Context, _ *slog.Logger, _ forge.Event, _ *registry.Repo, _ pipeline.Options) ([]orchestrator.Dispatched, error) {
	h.mu.Lock()
	h.count++
	h.mu.Unlock()
	select {
	case <-h.release:
	case <-ctx.Done():
	}
	return nil, nil
}

func (h *held) Unavailable(context.Context, *slog.Logger, forge.Event, *registry.Repo, pipeline.Options, error) error {
	return nil
}

func run(n, rounds int) error {
	push, cloneURL, err := benchkit.GiteaPush()
	if err != nil {
		return err
	}
	bodies := make([][]byte, n)
	for i := range n {
		push["after"] = fmt.Sprintf("%040x", i+1)
		push["ref"] = fmt.Sprintf("refs/heads/burst-%d", i)
		if bodies[i], err = json.Marshal(push); err != nil {
			return err
		}
	}
	repos := freshEntries{cloneURL: cloneURL}
	perDelivery := map[string][]float64{}
	var queued []float64
	for round := range rounds {
		bare, err := measureBare(bodies)
		if err != nil {
			return err
		}
		bot, counted, err := measureBot(bodies, repos)
		if err != nil {
			return err
		}
		perDelivery["bare"] = append(perDelivery["bare"], bare)
		perDelivery["bot"] = append(perDelivery["bot"], bot)
		queued = append(queued, counted)
		fmt.Fprintf(os.Stderr, "queue: round %d: bare %.0f B, bot %.0f B per delivery (queue counts %.0f)\n", round+1, bare, bot, counted)
	}
	report(os.Stdout, perDelivery, queued, n, rounds)
	return nil
}

// heap is the Go heap in use after a collection.
func heap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// measureBare parses the bodies and keeps their events, and returns the heap per event.
func measureBare(bodies [][]byte) (float64, error) {
	header := http.Header{"X-Gitea-Event": {"push"}}
	before := heap()
	events := make([]forge.Event, 0, len(bodies))
	for _, b := range bodies {
		ev, err := gitea.Parse(header, b)
		if err != nil {
			return 0, err
		}
		events = append(events, ev)
	}
	after := heap()
	runtime.KeepAlive(events)
	return float64(after-before) / float64(len(bodies)), nil
}

// freshEntries is the registry as the bot's is: each lookup decodes an entry of its own
// (here a registered repository trusting 1,000 users, about 20 KiB), so that a waiting
// delivery that kept its entry would show in the heap.
type freshEntries struct{ cloneURL string }

func (f freshEntries) Repo(_ context.Context, cloneURL string) (*registry.Repo, error) {
	if cloneURL != f.cloneURL {
		return nil, fmt.Errorf("repository %s: %w", cloneURL, registry.ErrNotFound)
	}
	e := &registry.Repo{}
	e.Hook.Secret = secret
	for i := range 1000 {
		e.Trusted.Senders = append(e.Trusted.Senders, fmt.Sprintf("trusted-user-%04d", i))
	}
	return e, nil
}

func (freshEntries) Org(_ context.Context, orgURL string) (*registry.Org, error) {
	return nil, fmt.Errorf("organization %s: %w", orgURL, registry.ErrNotFound)
}

// measureBot posts the bodies to an intake whose handler holds them, and returns the heap
// per delivery once all are accepted, and what its queue counts per delivery.
func measureBot(bodies [][]byte, repos freshEntries) (float64, float64, error) {
	h := &held{release: make(chan struct{})}
	in := webhook.New(repos, h, slog.New(slog.NewTextHandler(io.Discard, nil)), webhook.Options{})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, 0, err
	}
	mux := http.NewServeMux()
	mux.Handle("POST /webhook/gitea", in.Gitea())
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(l) }()
	defer srv.Close()
	url := "http://" + l.Addr().String() + "/webhook/gitea"
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	post := func(b []byte) error {
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Gitea-Event", "push")
		req.Header.Set("X-Gitea-Signature", gitea.Sign(b, secret))
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		answer, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusAccepted {
			return fmt.Errorf("answered %d: %s", resp.StatusCode, strings.TrimSpace(string(answer)))
		}
		return nil
	}
	// Warm the client, the server and the intake up before the measurement.
	if err := post(bodies[0]); err != nil {
		return 0, 0, err
	}
	before := heap()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	work := make(chan []byte)
	for range 8 {
		wg.Go(func() {
			for b := range work {
				if err := post(b); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		})
	}
	for _, b := range bodies[1:] {
		work <- b
	}
	close(work)
	wg.Wait()
	client.CloseIdleConnections()
	select {
	case err := <-errs:
		return 0, 0, fmt.Errorf("a delivery was refused: %w", err)
	default:
	}
	time.Sleep(200 * time.Millisecond) // the idle connections' goroutines end
	after := heap()
	waiting, counted, n := in.Queue()
	if n.Refused > 0 || n.Accepted != int64(len(bodies)) {
		return 0, 0, fmt.Errorf("%d accepted, %d refused, want %d accepted", n.Accepted, n.Refused, len(bodies))
	}
	per := float64(after-before) / float64(len(bodies)-1)
	close(h.release)
	in.Wait()
	return per, float64(counted) / float64(waiting+webhook.MaxHandling), nil
}

func report(w io.Writer, per map[string][]float64, queued []float64, n, rounds int) {
	fmt.Fprintf(w, "Result, %s, %s/%s, %d CPUs, %s; %d verified deliveries held at once, %d rounds of each, alternating:\n\n",
		time.Now().UTC().Format("2006-01-02"), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version(), n, rounds)
	fmt.Fprintln(w, "| held by | bytes of heap per delivery (median) | min | max | ratio to bare | MiB for all |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	base := benchkit.Median(per["bare"])
	for _, k := range []string{"bare", "bot"} {
		v := per[k]
		fmt.Fprintf(w, "| %s | %.0f | %.0f | %.0f | %.2f× | %.1f |\n", k, benchkit.Median(v), slices.Min(v), slices.Max(v), benchkit.Median(v)/base, benchkit.Median(v)*float64(n)/(1<<20))
	}
	fmt.Fprintf(w, "\nThe bot's queue counted %.0f bytes per delivery against its bound (%d MiB): %d deliveries fit.\n",
		benchkit.Median(queued), webhook.DefaultQueueBytes>>20, int(float64(webhook.DefaultQueueBytes)/benchkit.Median(queued)))
}
