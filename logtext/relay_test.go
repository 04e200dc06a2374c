package logtext

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/albatros-ci/albatros/secrets"
	"github.com/albatros-ci/albatros/templates"
)

const delay = 500 * time.Millisecond

// step is a write (none when empty) followed by a wait; want is all that was relayed after
// them.
type step struct {
	write string
	wait  time.Duration
	want  string
}

// runSteps runs steps on a Writer masking values, then Close, and returns what was relayed.
func runSteps(t *testing.T, values []string, opts Options, steps []step) *tape {
	t.Helper()
	clock := &fakeClock{}
	out := &tape{clock: clock}
	opts.AfterFunc = clock.AfterFunc
	w := New(out, values, opts)
	for i, s := range steps {
		if s.write != "" {
			if _, err := w.Write([]byte(s.write)); err != nil {
				t.Fatalf("step %d: Write(%q): %v", i, s.write, err)
			}
		}
		clock.Advance(s.wait)
		if got := out.String(); got != s.want {
			t.Fatalf("step %d (%q, then %v): relayed\n %q\nwant\n %q", i, s.write, s.wait, got, s.want)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return out
}

func TestWriterDelay(t *testing.T) {
	runSteps(t, secret, Options{Delay: delay}, []step{
		{"building", delay - 1, ""},
		{"", 1, "building"},
		{"...", delay / 2, "building"},
		{"", delay / 2, "building..."},
		{" done\n", 0, "building... done\n"},
		{"next", 0, "building... done\n"},
	})
}

// TestWriterDelayFromFirstByte checks that the delay runs from the first byte not relayed:
// later bytes do not push it back, and a line end starts it again for the next line.
func TestWriterDelayFromFirstByte(t *testing.T) {
	runSteps(t, secret, Options{Delay: delay}, []step{
		{"a", 300 * time.Millisecond, ""},
		{"b", 200 * time.Millisecond, "ab"},
		{"c", 300 * time.Millisecond, "ab"},
		{"d", 200 * time.Millisecond, "abcd"},
		{"e\nf", 300 * time.Millisecond, "abcde\n"}, // f came with the line end: its own delay
		{"", 200 * time.Millisecond, "abcde\nf"},
		{"\x1b[1m", delay, "abcde\nf"}, // a sequence alone is held and relays nothing
		{"g\n", 0, "abcde\nf\x1b[1mg\x1b[0m\n"},
	})
}

// TestWriterRedraw checks what follows a line relayed before it ended: the new cells when
// the relayed ones are unchanged, else "\r", an erase and the whole line.
func TestWriterRedraw(t *testing.T) {
	for _, tt := range []struct {
		name  string
		steps []step
	}{
		{"appended", []step{
			{"abc", delay, "abc"},
			{"def\n", 0, "abcdef\n"},
		}},
		{"progress", []step{
			{"10%", delay, "10%"},
			{"\r20%", delay, "10%\r\x1b[K20%"},
			{"\r100%\n", 0, "10%\r\x1b[K20%\r\x1b[K100%\n"},
		}},
		{"overwritten alike", []step{
			{"abc", delay, "abc"},
			{"\rab", delay, "abc"},
			{"\n", 0, "abc\n"},
		}},
		{"shorter", []step{
			{"a long line", delay, "a long line"},
			{"\r\x1b[Kok\n", 0, "a long line\r\x1b[Kok\n"},
		}},
		{"secret completed later", []step{
			{"X:sec", delay, "X:sec"},
			{"ret!\n", 0, "X:sec\r\x1b[KX:***!\n"},
		}},
		{"complete secret relayed masked", []step{
			{"X:secret", delay, "X:***"},
			{"!\n", 0, "X:***!\n"},
		}},
		{"styled", []step{
			{"\x1b[31m10%", delay, "\x1b[31m10%"},
			{"\r20%\n", 0, "\x1b[31m10%\x1b[0m\r\x1b[K\x1b[31m20%\x1b[0m\n"},
		}},
		{"nothing new", []step{
			{"abc", delay, "abc"},
			{"\x1b[0m", delay, "abc"},
		}},
	} {
		t.Run(tt.name, func(t *testing.T) { runSteps(t, secret, Options{Delay: delay}, tt.steps) })
	}
}

// TestWriterRedrawAfterCut checks that a line that was cut at MaxLine is redrawn on a line
// of its own: its cut part is no longer there to redraw.
func TestWriterRedrawAfterCut(t *testing.T) {
	runSteps(t, nil, Options{Delay: delay, MaxLine: 4}, []step{
		{"abcdef", 0, "abcd"},
		{"", delay, "abcdef"},
		{"gh", delay, "abcdefgh"},
		{"\rXY\n", 0, "abcdefgh\nXYgh\n"},
	})
}

// relays records a stream's relays as (time, length) pairs: what a build could measure of
// its own log, short of reading it.
func relays(t *tape) []string {
	var out []string
	for _, w := range t.writes {
		out = append(out, fmt.Sprintf("%v:%d", w.at, len(w.data)))
	}
	return out
}

// watch writes "X:" then the guess a byte at a time, 100ms apart, waits, ends the line and
// writes it again all at once, and returns the relays.
func watch(newWriter func(io.Writer, *fakeClock) io.WriteCloser, guess string) []string {
	clock := &fakeClock{}
	out := &tape{clock: clock}
	w := newWriter(out, clock)
	_, _ = io.WriteString(w, "X:")
	for i := range len(guess) {
		clock.Advance(100 * time.Millisecond)
		_, _ = io.WriteString(w, guess[i:i+1])
	}
	clock.Advance(2 * time.Second)
	_, _ = io.WriteString(w, " !\nX:"+guess)
	clock.Advance(time.Second)
	_, _ = io.WriteString(w, "?")
	clock.Advance(time.Second)
	_ = w.Close()
	return relays(out)
}

// TestNoPrefixOracle is the security review's oracle: a build writes a guess and watches
// when its log shows it. Whether the guess is the start of a secret must change neither when
// nor how much is relayed.
func TestNoPrefixOracle(t *testing.T) {
	const value = "hunter2-long-secret-value"
	logtext := func(w io.Writer, c *fakeClock) io.WriteCloser {
		return New(w, []string{value}, Options{Delay: delay, AfterFunc: c.AfterFunc})
	}
	for n := 1; n < len(value); n++ {
		prefix := value[:n]
		other := strings.Repeat("#", n) // the same length, and the start of nothing
		if a, b := watch(logtext, prefix), watch(logtext, other); !slices.Equal(a, b) {
			t.Errorf("guess %q relayed as %v, guess %q as %v", prefix, a, other, b)
		}
	}

	// The same watch tells a secret's start from anything else through secrets.Masker,
	// which holds back only what may start a secret: the test can see an oracle.
	masker := func(w io.Writer, _ *fakeClock) io.WriteCloser {
		return maskerCloser{secrets.NewMasker(w, []string{value})}
	}
	if a, b := watch(masker, value[:8]), watch(masker, "########"); slices.Equal(a, b) {
		t.Errorf("secrets.Masker relays a secret's start as anything else (%v): the watch sees nothing", a)
	}
}

type maskerCloser struct{ *secrets.Masker }

func (m maskerCloser) Close() error { return m.Flush() }

func TestWriterClose(t *testing.T) {
	clock := &fakeClock{}
	out := &tape{clock: clock}
	w := New(out, secret, Options{AfterFunc: clock.AfterFunc})
	if _, err := w.Write([]byte("line\n\x1b[1mheld")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if want := "line\n\x1b[1mheld\x1b[0m"; out.String() != want {
		t.Fatalf("after Close: %q, want %q", out.String(), want)
	}
	writes := len(out.writes)
	clock.Advance(time.Hour)
	if len(out.writes) != writes {
		t.Errorf("the delay's timer wrote %v after Close", out.writes[writes:])
	}
	if _, err := w.Write([]byte("more")); !errors.Is(err, ErrClosed) {
		t.Errorf("Write after Close: %v, want %v", err, ErrClosed)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

var errBroken = errors.New("broken pipe")

type brokenWriter struct{}

func (brokenWriter) Write([]byte) (int, error) { return 0, errBroken }

func TestWriterWriteError(t *testing.T) {
	w := New(brokenWriter{}, secret, Options{})
	if _, err := w.Write([]byte("a line\n")); !errors.Is(err, errBroken) {
		t.Errorf("Write: %v, want %v", err, errBroken)
	}
	if _, err := w.Write([]byte("more\n")); !errors.Is(err, errBroken) {
		t.Errorf("Write after an error: %v, want %v", err, errBroken)
	}
	if err := w.Close(); !errors.Is(err, errBroken) {
		t.Errorf("Close: %v, want %v", err, errBroken)
	}

	// An error met by the delay's flush comes out of the next call.
	clock := &fakeClock{}
	w = New(brokenWriter{}, secret, Options{AfterFunc: clock.AfterFunc})
	if _, err := w.Write([]byte("held")); err != nil {
		t.Fatalf("Write of a held line: %v", err)
	}
	clock.Advance(time.Second)
	if _, err := w.Write([]byte("more")); !errors.Is(err, errBroken) {
		t.Errorf("Write after the delay's flush failed: %v, want %v", err, errBroken)
	}
}

// syncBuffer is a log tape: its own mutex, and a signal at every write.
type syncBuffer struct {
	mu    sync.Mutex
	b     strings.Builder
	wrote chan struct{}
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.Write(p)
	select {
	case s.wrote <- struct{}{}:
	default:
	}
	return len(p), nil
}

// TestWriterConcurrentTimer writes while real timers flush (run it with -race): whatever
// interleaving, the relayed text is the line as written, since it only grows.
func TestWriterConcurrentTimer(t *testing.T) {
	out := &syncBuffer{wrote: make(chan struct{}, 1)}
	w := New(out, secret, Options{Delay: time.Millisecond})
	for i := range 300 {
		if _, err := w.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		if i%50 == 0 {
			select {
			case <-out.wrote: // the delay's flush, from its goroutine
			case <-time.After(10 * time.Second):
				t.Fatal("no flush within 10s of a 1ms delay")
			}
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	out.mu.Lock()
	defer out.mu.Unlock()
	if got := out.b.String(); got != strings.Repeat("x", 300) {
		t.Errorf("relayed %q", got)
	}
}

// TestWriterSecretCompletedAcrossCut rewrites, after a line was cut at MaxLine, the cells
// just after the cut so that they finish a secret that began before it: the relayed part
// is final and shows its start, but the rest is masked.
func TestWriterSecretCompletedAcrossCut(t *testing.T) {
	// MaxLine 8 and a secret of 6: the line is cut when its 19th cell comes, after
	// "aaaaaase"; "\r" then goes back to the cut, and "c" makes "secret" across it.
	got := relayOpts(t, secret, Options{MaxLine: 8}, "aaaaaaseXret"+strings.Repeat("b", 7)+"\rc\n")
	if want := "aaaaaase***bbbbbbb\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestWriterOnThePage renders what a Writer relays as the live page does: a line redrawn
// after its delay shows on a line of its own, masked, under what was relayed before.
func TestWriterOnThePage(t *testing.T) {
	out := runSteps(t, secret, Options{Delay: delay}, []step{
		{"\x1b[32mX:sec", delay, "\x1b[32mX:sec"},
		{"ret!\n", 0, "\x1b[32mX:sec\x1b[0m\r\x1b[K\x1b[32mX:***!\x1b[0m\n"},
	})
	var page strings.Builder
	a := templates.NewANSI(&page)
	for _, w := range out.writes {
		if _, err := io.WriteString(a, w.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if want := `<span class="fg2">X:sec</span>` + "\n" + `<span class="fg2">X:***!</span>` + "\n"; page.String() != want {
		t.Errorf("page %q, want %q", page.String(), want)
	}
}
