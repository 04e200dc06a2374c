package logfan_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/albatros-ci/albatros/logfan"
	"github.com/albatros-ci/albatros/orchestrator"
)

// build is a log being written: the source hands each upstream what is written to it.
type build struct {
	mu       sync.Mutex
	lines    chan string // closed: the build ended
	follows  int
	canceled int
	fail     error
}

func newBuild() *build { return &build{lines: make(chan string, 1024)} }

func (b *build) source(ctx context.Context, ns, job, logType string, w io.Writer) (orchestrator.Outcome, error) {
	b.mu.Lock()
	b.follows++
	b.mu.Unlock()
	for {
		select {
		case <-ctx.Done():
			b.mu.Lock()
			b.canceled++
			b.mu.Unlock()
			return orchestrator.Outcome{}, ctx.Err()
		case line, ok := <-b.lines:
			if !ok {
				if b.fail != nil {
					return orchestrator.Outcome{}, b.fail
				}
				return orchestrator.Outcome{JobID: job, Result: orchestrator.Success, Final: true, Description: "passed"}, nil
			}
			if _, err := io.WriteString(w, line); err != nil {
				return orchestrator.Outcome{}, err
			}
		}
	}
}

func (b *build) counts() (follows, canceled int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.follows, b.canceled
}

func noSecrets() []string { return nil }

type result struct {
	out  orchestrator.Outcome
	err  error
	text string
}

// watch starts a viewer; its result arrives on the channel once Watch returns.
func watch(ctx context.Context, h *logfan.Hub, values func() []string, w io.Writer) <-chan result {
	done := make(chan result, 1)
	go func() {
		var buf bytes.Buffer
		if w == nil {
			w = &buf
		}
		out, err := h.Watch(ctx, "ci", "job-1", orchestrator.Stdout, values, w)
		done <- result{out, err, buf.String()}
	}()
	return done
}

// A thousand viewers of one running build: one upstream, and every viewer receives every
// byte and the outcome, whether it came at the start, in the middle or after the end.
func TestThousandViewersOneUpstream(t *testing.T) {
	b := newBuild()
	h := logfan.New(b.source, logfan.Options{})
	var want strings.Builder
	var early, late []<-chan result
	for range 500 {
		early = append(early, watch(context.Background(), h, noSecrets, nil))
	}
	for i := range 300 {
		line := fmt.Sprintf("line %04d %s\n", i, strings.Repeat("x", i%200))
		want.WriteString(line)
		b.lines <- line
		if i == 150 {
			for range 400 {
				late = append(late, watch(context.Background(), h, noSecrets, nil))
			}
		}
	}
	close(b.lines)
	for _, r := range append(early, late...) {
		got := <-r
		if got.err != nil || got.out.Result != orchestrator.Success {
			t.Fatalf("viewer: %+v %v", got.out, got.err)
		}
		if got.text != want.String() {
			t.Fatalf("viewer got %d bytes, want %d", len(got.text), want.Len())
		}
	}
	// After the end, within the linger: from the tape, without another upstream.
	for range 100 {
		got := <-watch(context.Background(), h, noSecrets, nil)
		if got.err != nil || got.text != want.String() {
			t.Fatalf("viewer after the end: %d bytes, %v", len(got.text), got.err)
		}
	}
	if follows, _ := b.counts(); follows != 1 || h.Upstreams() != 1 {
		t.Errorf("%d follows of the build (%d upstreams) for 1000 viewers, want 1", follows, h.Upstreams())
	}
}

// The log is masked once, upstream, also when a secret is split across writes.
func TestMaskedOnceForAll(t *testing.T) {
	b := newBuild()
	h := logfan.New(b.source, logfan.Options{})
	asked := 0
	values := func() []string { asked++; return []string{"hunter2-secret"} }
	var viewers []<-chan result
	for range 3 {
		viewers = append(viewers, watch(context.Background(), h, values, nil))
	}
	b.lines <- "token: hunt"
	b.lines <- "er2-sec"
	b.lines <- "ret done\n"
	close(b.lines)
	for _, r := range viewers {
		got := <-r
		if got.text != "token: *** done\n" {
			t.Errorf("viewer got %q", got.text)
		}
	}
	if asked != 1 {
		t.Errorf("the secrets were asked %d times, want once (one upstream)", asked)
	}
}

// blockingWriter never returns from Write until released.
type blockingWriter struct{ release chan struct{} }

func (w blockingWriter) Write(p []byte) (int, error) { <-w.release; return len(p), nil }

// A viewer that does not read holds neither the stream nor the other viewers back.
func TestSlowViewerHoldsNobody(t *testing.T) {
	b := newBuild()
	h := logfan.New(b.source, logfan.Options{})
	stuck := blockingWriter{release: make(chan struct{})}
	slow := watch(context.Background(), h, noSecrets, stuck)
	fast := watch(context.Background(), h, noSecrets, nil)
	for i := range 200 {
		b.lines <- fmt.Sprintf("line %d\n", i)
	}
	close(b.lines)
	select {
	case got := <-fast:
		if got.err != nil || strings.Count(got.text, "\n") != 200 {
			t.Fatalf("fast viewer: %d lines, %v", strings.Count(got.text, "\n"), got.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a stuck viewer held the others back")
	}
	close(stuck.release)
	if got := <-slow; got.err != nil {
		t.Errorf("slow viewer: %v", got.err)
	}
}

// collector is a viewer that reads slowly: it sleeps at its first write.
type collector struct {
	buf   bytes.Buffer
	once  sync.Once
	first chan struct{}
	wait  chan struct{}
}

func (c *collector) Write(p []byte) (int, error) {
	c.once.Do(func() {
		close(c.first)
		<-c.wait
	})
	return c.buf.Write(p)
}

// A viewer that falls behind what the tape keeps is told how much it missed, and gets the
// rest whole; the stream went on meanwhile.
func TestLaggingViewerSkipsWhatIsNoLongerKept(t *testing.T) {
	b := newBuild()
	h := logfan.New(b.source, logfan.Options{Keep: 64 << 10})
	c := &collector{first: make(chan struct{}), wait: make(chan struct{})}
	done := make(chan result, 1)
	go func() {
		out, err := h.Watch(context.Background(), "ci", "job-1", orchestrator.Stdout, noSecrets, c)
		done <- result{out: out, err: err}
	}()
	b.lines <- "first\n"
	<-c.first // the viewer is stuck in its first write
	line := strings.Repeat("y", 1023) + "\n"
	for range 256 { // 256 KiB: four times what is kept
		b.lines <- line
	}
	b.lines <- "last\n"
	close(b.lines)
	time.Sleep(100 * time.Millisecond) // the upstream has written everything
	close(c.wait)
	got := <-done
	if got.err != nil {
		t.Fatal(got.err)
	}
	text := c.buf.String()
	if !strings.HasPrefix(text, "first\n\n[… ") || !strings.Contains(text, "bytes of this log were written faster than they were read here") {
		t.Errorf("no skip marker after the first line: %.120q", text)
	}
	if !strings.HasSuffix(text, line+"last\n") {
		t.Errorf("the end of the log is not whole: …%q", text[max(0, len(text)-60):])
	}
	if n := len(text); n > 80<<10 {
		t.Errorf("the lagging viewer got %d bytes, want at most what is kept and a marker", n)
	}
}

// When the last viewer leaves a running build, its upstream stops after the linger; a
// viewer coming back in time keeps it; one coming later starts another.
func TestUpstreamStopsWhenNobodyWatches(t *testing.T) {
	b := newBuild()
	h := logfan.New(b.source, logfan.Options{Linger: 200 * time.Millisecond})
	ctx, leave := context.WithCancel(context.Background())
	r := watch(ctx, h, noSecrets, nil)
	b.lines <- "hello\n"
	time.Sleep(50 * time.Millisecond)
	leave()
	if got := <-r; !errors.Is(got.err, context.Canceled) {
		t.Fatalf("viewer that left: %v", got.err)
	}
	// Back within the linger: the same upstream, from the start of the tape.
	ctx2, leave2 := context.WithCancel(context.Background())
	r2 := watch(ctx2, h, noSecrets, nil)
	time.Sleep(400 * time.Millisecond)
	if follows, canceled := b.counts(); follows != 1 || canceled != 0 {
		t.Fatalf("a viewer back within the linger: %d follows, %d canceled; want 1, 0", follows, canceled)
	}
	leave2()
	<-r2
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, canceled := b.counts(); canceled == 1 && h.Watching() == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the upstream of a build nobody watches was not stopped (watching %d)", h.Watching())
		}
		time.Sleep(20 * time.Millisecond)
	}
	r3 := watch(context.Background(), h, noSecrets, nil)
	b.lines <- "again\n"
	close(b.lines)
	got := <-r3
	if got.err != nil || got.text != "again\n" {
		t.Errorf("a viewer after the upstream stopped: %q %v", got.text, got.err)
	}
	if follows, _ := b.counts(); follows != 2 {
		t.Errorf("%d follows, want 2", follows)
	}
}

// An upstream that fails ends every viewer with its error; the next viewer tries again.
func TestUpstreamErrorIsRetriedByTheNextViewer(t *testing.T) {
	b := newBuild()
	b.fail = errors.New("nomad went away")
	h := logfan.New(b.source, logfan.Options{})
	r := watch(context.Background(), h, noSecrets, nil)
	b.lines <- "partial\n"
	close(b.lines)
	got := <-r
	if got.err == nil || got.text != "partial\n" {
		t.Fatalf("viewer of a failed upstream: %q %v", got.text, got.err)
	}
	time.Sleep(50 * time.Millisecond)
	b.lines = make(chan string, 1)
	b.fail = nil
	close(b.lines)
	if got := <-watch(context.Background(), h, noSecrets, nil); got.err != nil {
		t.Errorf("next viewer: %v", got.err)
	}
	if follows, _ := b.counts(); follows != 2 {
		t.Errorf("%d follows, want a second one after the failure", follows)
	}
}

// Many logs watched at once keep their share of the budget each, not Keep each.
func TestBudgetIsShared(t *testing.T) {
	const budget = 256 << 10
	var builds []*build
	srcs := map[string]*build{}
	var mu sync.Mutex
	h := logfan.New(func(ctx context.Context, ns, job, logType string, w io.Writer) (orchestrator.Outcome, error) {
		mu.Lock()
		b := srcs[job]
		mu.Unlock()
		return b.source(ctx, ns, job, logType, w)
	}, logfan.Options{Keep: 1 << 30, Budget: budget})
	var viewers []<-chan result
	for i := range 4 {
		b := newBuild()
		job := fmt.Sprintf("job-%d", i)
		mu.Lock()
		srcs[job] = b
		mu.Unlock()
		builds = append(builds, b)
		stuck := blockingWriter{release: make(chan struct{})}
		defer close(stuck.release)
		done := make(chan result, 1)
		go func() {
			out, err := h.Watch(context.Background(), "ci", job, orchestrator.Stdout, noSecrets, stuck)
			done <- result{out: out, err: err}
		}()
		viewers = append(viewers, done)
	}
	line := strings.Repeat("z", 1023) + "\n"
	for _, b := range builds {
		for range 512 { // 512 KiB each: twice the whole budget
			b.lines <- line
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, b := range builds {
		for len(b.lines) > 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	time.Sleep(100 * time.Millisecond) // the last lines are written
	if kept := h.Kept(); kept > budget+4*(32<<10) || kept < budget/2 {
		t.Errorf("4 logs of 512 KiB keep %d KiB with a budget of %d KiB", kept>>10, budget>>10)
	}
	for _, b := range builds {
		close(b.lines)
	}
	_ = viewers
}

// The hub bounds the logs it follows in Nomad at once and the viewers it serves: past
// either, Join answers ErrBusy and starts nothing; viewers of a log already followed still
// join while the upstreams are all taken.
func TestBounds(t *testing.T) {
	b := newBuild()
	h := logfan.New(b.source, logfan.Options{MaxUpstreams: 2, MaxViewers: 4})
	var joined []*logfan.Viewer
	for _, job := range []string{"job-1", "job-2"} {
		v, err := h.Join("ci", job, orchestrator.Stdout, noSecrets)
		if err != nil {
			t.Fatal(err)
		}
		joined = append(joined, v)
	}
	if _, err := h.Join("ci", "job-3", orchestrator.Stdout, noSecrets); !errors.Is(err, logfan.ErrBusy) {
		t.Fatalf("a third log with two upstreams allowed: %v, want ErrBusy", err)
	}
	for range 2 {
		v, err := h.Join("ci", "job-1", orchestrator.Stdout, noSecrets)
		if err != nil {
			t.Fatalf("a viewer of a log followed already: %v", err)
		}
		joined = append(joined, v)
	}
	if _, err := h.Join("ci", "job-1", orchestrator.Stdout, noSecrets); !errors.Is(err, logfan.ErrBusy) {
		t.Fatalf("a fifth viewer with four allowed: %v, want ErrBusy", err)
	}
	time.Sleep(50 * time.Millisecond)
	if follows, _ := b.counts(); follows != 2 {
		t.Errorf("%d upstreams started, want 2", follows)
	}
	joined[0].Leave()
	joined[0].Leave() // twice is once
	if _, err := h.Join("ci", "job-2", orchestrator.Stdout, noSecrets); err != nil {
		t.Errorf("a viewer after one left: %v", err)
	}
}

// A build that got no secrets is relayed as it came, its repository's secrets or not; one
// that got them is rendered and masked as viewers see it: a secret split by a colour code
// does not show.
func TestMaskedOnlyWithTheBuildsSecrets(t *testing.T) {
	for _, tc := range []struct {
		name   string
		values []string
		want   string
	}{
		{"no secrets", nil, "key=sec\x1b[1mret-value\n"},
		{"secrets", []string{"secret-value"}, "key=***\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBuild()
			h := logfan.New(b.source, logfan.Options{})
			done := watch(context.Background(), h, func() []string { return tc.values }, nil)
			b.lines <- "key=sec\x1b[1mret-value\n"
			close(b.lines)
			r := <-done
			if r.err != nil || r.text != tc.want {
				t.Errorf("relayed %q (%v), want %q", r.text, r.err, tc.want)
			}
		})
	}
}
