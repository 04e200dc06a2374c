package templates_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/albatros-ci/albatros/templates"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// checkGolden compares got with testdata/name, or rewrites the file with -update.
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (run go test -update to accept it):\n%s", path, firstDifference(got, want))
	}
}

// firstDifference shows the first line where got and want differ.
func firstDifference(got, want []byte) string {
	g, w := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	for i := range max(len(g), len(w)) {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return fmt.Sprintf("line %d:\ngot  %q\nwant %q", i+1, gl, wl)
		}
	}
	return "same lines, different bytes"
}

// convert writes chunks, one Write each, to a converter and returns its HTML after Close.
func convert(t testing.TB, chunks ...string) string {
	t.Helper()
	var out bytes.Buffer
	a := templates.NewANSI(&out)
	for _, c := range chunks {
		n, err := a.Write([]byte(c))
		if err != nil || n != len(c) {
			t.Fatalf("Write(%q) = %d, %v; want %d, nil", c, n, err, len(c))
		}
	}
	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return out.String()
}

type ansiTest struct {
	name string
	in   string
	want string
}

var ansiTests = []ansiTest{
	// Escaping.
	{"plain text", "hello, world\n", "hello, world\n"},
	{"html escaped", `<a href="x">Tom & Jerry's</a>`, "&lt;a href=&#34;x&#34;&gt;Tom &amp; Jerry&#39;s&lt;/a&gt;"},
	{"escaped inside a span", "\x1b[31m<b>&</b>\x1b[0m", `<span class="fg1">&lt;b&gt;&amp;&lt;/b&gt;</span>`},
	{"utf-8 kept", "✓ grün\n", "✓ grün\n"},

	// 256 colours.
	{"256 base colour", "\x1b[38;5;1mx", `<span class="fg1">x</span>`},
	{"256 bright colour", "\x1b[38;5;15mx", `<span class="fg15">x</span>`},
	{"256 background base", "\x1b[48;5;9mx", `<span class="bg9">x</span>`},
	{"256 cube first", "\x1b[38;5;16mx", `<span style="color:#000000">x</span>`},
	{"256 cube red", "\x1b[38;5;196mx", `<span style="color:#ff0000">x</span>`},
	{"256 cube orange", "\x1b[38;5;208mx", `<span style="color:#ff8700">x</span>`},
	{"256 cube mixed", "\x1b[38;5;110mx", `<span style="color:#87afd7">x</span>`},
	{"256 cube last", "\x1b[38;5;231mx", `<span style="color:#ffffff">x</span>`},
	{"256 grey first", "\x1b[38;5;232mx", `<span style="color:#080808">x</span>`},
	{"256 grey middle", "\x1b[38;5;244mx", `<span style="color:#808080">x</span>`},
	{"256 grey last", "\x1b[38;5;255mx", `<span style="color:#eeeeee">x</span>`},
	{"256 background", "\x1b[48;5;21mx", `<span style="background-color:#0000ff">x</span>`},
	{"256 out of range clamped", "\x1b[38;5;300mx", `<span style="color:#eeeeee">x</span>`},
	{"256 colon form", "\x1b[38:5:208mx", `<span style="color:#ff8700">x</span>`},

	// 24-bit colours.
	{"truecolor", "\x1b[38;2;255;128;0mx", `<span style="color:#ff8000">x</span>`},
	{"truecolor background", "\x1b[48;2;1;2;3mx", `<span style="background-color:#010203">x</span>`},
	{"truecolor both", "\x1b[38;2;10;20;30;48;2;40;50;60mx", `<span style="color:#0a141e;background-color:#28323c">x</span>`},
	{"truecolor clamped", "\x1b[38;2;999;0;256mx", `<span style="color:#ff00ff">x</span>`},
	{"class and style", "\x1b[1;31;48;2;0;0;0mx", `<span class="fg1 b" style="background-color:#000000">x</span>`},
	{"incomplete extended colour ignored", "\x1b[38;5mx\x1b[38;2;1;2mx", "xx"},

	// Styles and their resets.
	{"bold", "\x1b[1mB\x1b[22mN", `<span class="b">B</span>N`},
	{"faint", "\x1b[2mF\x1b[22mN", `<span class="f">F</span>N`},
	{"italic", "\x1b[3mI\x1b[23mN", `<span class="i">I</span>N`},
	{"underline", "\x1b[4mU\x1b[24mN", `<span class="u">U</span>N`},
	{"all styles at once", "\x1b[4;3;2;1;93;104mx", `<span class="fg11 bg12 b f i u">x</span>`},
	{"22 ends bold and faint", "\x1b[1;2;3mx\x1b[22my", `<span class="b f i">x</span><span class="i">y</span>`},
	{"default foreground", "\x1b[31;42mx\x1b[39my\x1b[49mz", `<span class="fg1 bg2">x</span><span class="bg2">y</span>z`},
	{"style added", "\x1b[31ma\x1b[1mb\x1b[0mc", `<span class="fg1">a</span><span class="fg1 b">b</span>c`},
	{"same style again keeps the span", "\x1b[31ma\x1b[31mb\x1b[0m", `<span class="fg1">ab</span>`},
	{"colour replaced", "\x1b[31ma\x1b[32mb", `<span class="fg1">a</span><span class="fg2">b</span>`},
	{"ESC[0m closes", "\x1b[31mred\x1b[0m plain", `<span class="fg1">red</span> plain`},
	{"ESC[m closes", "\x1b[31mred\x1b[m plain", `<span class="fg1">red</span> plain`},
	{"reset then colour in one sequence", "\x1b[1ma\x1b[0;32mb", `<span class="b">a</span><span class="fg2">b</span>`},
	{"reset without span writes nothing", "\x1b[0ma\x1b[mb\x1b[22;39mc", "abc"},
	{"unknown SGR ignored", "\x1b[5;7;9mblink", "blink"},
	{"close at the end", "\x1b[1;31mstill open", `<span class="fg1 b">still open</span>`},

	// Other sequences are dropped.
	{"erase line", "\x1b[2Kline", "line"},
	{"cursor up", "one\x1b[1Atwo", "onetwo"},
	{"cursor position", "\x1b[10;20Hx", "x"},
	{"private mode", "\x1b[?25lhidden cursor\x1b[?25h", "hidden cursor"},
	{"window title BEL", "\x1b]0;title\x07text", "text"},
	{"window title ST", "\x1b]2;title\x1b\\text", "text"},
	{"hyperlink", "\x1b]8;;https://example.com/?a=<b>\x1b\\link\x1b]8;;\x1b\\", "link"},
	{"two-byte sequence", "\x1b=keypad\x1b>", "keypad"},
	{"reset terminal", "\x1bcclear", "clear"},
	{"colour after dropped sequence", "\x1b[2K\x1b[32mok\x1b[0m", `<span class="fg2">ok</span>`},

	// Line ends.
	{"CRLF", "a\r\nb\r\n", "a\nb\n"},
	{"lone CR", "50%\r100%\n", "50%\n100%\n"},
	{"CR at the start", "\rx", "\nx"},
	{"CR before a sequence", "a\r\x1b[32mb", "a\n" + `<span class="fg2">b</span>`},
	{"CR inside a span", "\x1b[33m10%\r20%\x1b[0m\n", `<span class="fg3">10%` + "\n" + `20%</span>` + "\n"},
}

// colourTests are the 16-colour SGR codes and the classes they become.
func colourTests() []ansiTest {
	var tests []ansiTest
	for _, c := range []struct {
		first, class int
		prefix       string
	}{{30, 0, "fg"}, {90, 8, "fg"}, {40, 0, "bg"}, {100, 8, "bg"}} {
		for i := range 8 {
			code := c.first + i
			class := fmt.Sprintf("%s%d", c.prefix, c.class+i)
			tests = append(tests, ansiTest{
				name: fmt.Sprintf("SGR %d", code),
				in:   fmt.Sprintf("\x1b[%dmx\x1b[0m", code),
				want: fmt.Sprintf(`<span class="%s">x</span>`, class),
			})
		}
	}
	return tests
}

func TestANSI(t *testing.T) {
	for _, tt := range append(colourTests(), ansiTests...) {
		t.Run(tt.name, func(t *testing.T) {
			if got := convert(t, tt.in); got != tt.want {
				t.Errorf("convert(%q) =\n%q\nwant\n%q", tt.in, got, tt.want)
			}
		})
	}
}

// ESC ( B selects the ASCII character set; `tput sgr0` writes it before ESC[m on xterm, so
// shell scripts that colour with tput put it in build logs.
func TestANSIDropsCharsetDesignation(t *testing.T) {
	for _, tt := range []ansiTest{
		{"ASCII", "\x1b(Bok", "ok"},
		{"tput sgr0", "\x1b[31mred\x1b(B\x1b[m plain", `<span class="fg1">red</span> plain`},
		{"DEC graphics", "\x1b)0x", "x"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := convert(t, tt.in); got != tt.want {
				t.Errorf("convert(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestANSISplitWrites checks that cutting the input anywhere, once or at every byte, gives
// the same HTML as one Write.
func TestANSISplitWrites(t *testing.T) {
	for _, tt := range append(colourTests(), ansiTests...) {
		t.Run(tt.name, func(t *testing.T) {
			checkSplits(t, tt.in)
		})
	}
}

func checkSplits(t *testing.T, in string) {
	t.Helper()
	whole := convert(t, in)
	for i := 0; i <= len(in); i++ {
		if got := convert(t, in[:i], in[i:]); got != whole {
			t.Fatalf("convert(%q, %q) =\n%q\none Write gives\n%q", in[:i], in[i:], got, whole)
		}
	}
	var bytewise []string
	for i := range len(in) {
		bytewise = append(bytewise, in[i:i+1])
	}
	if got := convert(t, bytewise...); got != whole {
		t.Errorf("convert(%q) one byte at a time =\n%q\none Write gives\n%q", in, got, whole)
	}
}

func TestANSIHoldsIncompleteSequence(t *testing.T) {
	var out bytes.Buffer
	a := templates.NewANSI(&out)
	steps := []struct{ write, want string }{
		{"ok \x1b", "ok "},
		{"[3", "ok "},
		{"2m", `ok `}, // the span opens with the text it colours

		{"green", `ok <span class="fg2">green`},
		{"\x1b]0;long ti", `ok <span class="fg2">green`},
		{"tle\x07 done", `ok <span class="fg2">green done`},
	}
	for _, s := range steps {
		if n, err := a.Write([]byte(s.write)); n != len(s.write) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s.write, n, err)
		}
		if out.String() != s.want {
			t.Fatalf("after %q: %q, want %q", s.write, out.String(), s.want)
		}
	}
}

func TestANSIClose(t *testing.T) {
	var out bytes.Buffer
	a := templates.NewANSI(&out)
	if err := a.Close(); err != nil || out.Len() != 0 {
		t.Fatalf("Close without a span: %v, wrote %q", err, out.String())
	}
	if _, err := a.Write([]byte("\x1b[31mred")); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if want := `<span class="fg1">red</span>`; out.String() != want {
		t.Errorf("after two Closes: %q, want %q", out.String(), want)
	}
}

var errBroken = errors.New("broken pipe")

type brokenWriter struct{}

func (brokenWriter) Write([]byte) (int, error) { return 0, errBroken }

func TestANSIWriteError(t *testing.T) {
	a := templates.NewANSI(brokenWriter{})
	if _, err := a.Write([]byte("\x1b[1mbold")); !errors.Is(err, errBroken) {
		t.Errorf("Write: %v, want %v", err, errBroken)
	}
	if err := a.Close(); !errors.Is(err, errBroken) {
		t.Errorf("Close: %v, want %v", err, errBroken)
	}
}

func TestANSIBuildLogGolden(t *testing.T) {
	in, err := os.ReadFile("testdata/build.log")
	if err != nil {
		t.Fatal(err)
	}
	got := convert(t, string(in))
	checkGolden(t, "build.html.golden", []byte(got))
	checkSplits(t, string(in))

	// Nomad hands the log over in frames of any size.
	var frames []string
	for rest := string(in); rest != ""; {
		n := min(len(rest), 1+len(frames)*7%61)
		frames = append(frames, rest[:n])
		rest = rest[n:]
	}
	if framed := convert(t, frames...); framed != got {
		t.Errorf("log in %d frames differs from one Write", len(frames))
	}
}

// writeIn writes in to a converter in pieces of size bytes (all of it at once when size is
// 0) and returns the HTML after Close.
func writeIn(t testing.TB, in []byte, size int) string {
	t.Helper()
	var out bytes.Buffer
	a := templates.NewANSI(&out)
	if size == 0 {
		size = len(in)
	}
	for rest := in; len(rest) > 0; {
		n := min(size, len(rest))
		if k, err := a.Write(rest[:n]); k != n || err != nil {
			t.Fatalf("Write of %d bytes = %d, %v", n, k, err)
		}
		rest = rest[n:]
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

// TestANSIOverlongSequences feeds an escape sequence that never ends, followed by text: the
// sequence is dropped once it passes its cap, and the text after it is shown, the same
// whether the input comes at once, in Nomad-sized frames or a byte at a time.
func TestANSIOverlongSequences(t *testing.T) {
	const n = 1 << 20
	for _, tt := range []struct {
		name   string
		start  string // the sequence's opening
		filler byte   // n of these follow it
		end    string // then this
		cap    int    // at most this many bytes of the input are dropped
		tail   string // and the output ends with filler bytes, then this
	}{
		// nF: ESC ( B and the like. Spaces are intermediates, a byte after ESC and
		// intermediates is the final one: 'a' ends the sequence at once.
		{"ESC and spaces", "\x1b", ' ', "after", 16, "after"},
		{"ESC and letters", "\x1b", 'a', "after", 2, "after"},
		{"unterminated CSI", "\x1b[", '1', "\x1b[32mok\x1b[0m", 66, `<span class="fg2">ok</span>`},
		{"unterminated OSC", "\x1b]0;", 'x', "\x1b]2;title\x07after", 4097, "after"},
		{"unterminated DCS", "\x1bP", 'q', "after", 4097, "after"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			in := []byte(tt.start + strings.Repeat(string(tt.filler), n) + tt.end)
			got := writeIn(t, in, 0)
			body, ok := strings.CutSuffix(got, tt.tail)
			if !ok {
				t.Fatalf("output ends with %q, want %q", got[max(0, len(got)-40):], tt.tail)
			}
			if strings.Trim(body, string(tt.filler)) != "" {
				t.Fatalf("output before %q is not all %q: %q…", tt.tail, tt.filler, body[:min(len(body), 40)])
			}
			if shown := len(tt.start) + n - len(body); shown > tt.cap {
				t.Errorf("%d bytes dropped, want at most %d", shown, tt.cap)
			}
			for _, size := range []int{1, 32 << 10} {
				if split := writeIn(t, in, size); split != got {
					t.Errorf("in writes of %d bytes: %d bytes of HTML, differing from one Write (%d bytes)", size, len(split), len(got))
				}
			}
		})
	}
}

// TestANSIHoldsAtMostTheCap checks that a converter in the middle of a sequence that does
// not end holds no more than the sequence's parameters: writing more of it, a byte at a time
// or 32 KiB at a time, allocates nothing, so nothing grows.
func TestANSIHoldsAtMostTheCap(t *testing.T) {
	big := bytes.Repeat([]byte{' '}, 32<<10)
	for _, tt := range []struct {
		name, start string
		more        byte
	}{
		{"nF", "\x1b(", ' '},
		{"CSI", "\x1b[", '1'},
		{"OSC", "\x1b]8;;", 'x'},
		{"APC", "\x1b_", 'x'},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := templates.NewANSI(io.Discard)
			if _, err := a.Write([]byte("text " + tt.start)); err != nil {
				t.Fatal(err)
			}
			one := []byte{tt.more}
			if allocs := testing.AllocsPerRun(5000, func() { _, _ = a.Write(one) }); allocs != 0 {
				t.Errorf("a Write of one byte of an unterminated sequence allocates %v times, want 0", allocs)
			}
			if _, err := a.Write([]byte(tt.start)); err != nil {
				t.Fatal(err)
			}
			// At most the output buffer of the write, which is not kept between writes
			// beyond a few KiB (a live page has a converter per viewer, mostly idle).
			if allocs := testing.AllocsPerRun(100, func() { _, _ = a.Write(big) }); allocs > 1 {
				t.Errorf("a Write of 32 KiB after %q allocates %v times, want at most 1", tt.start, allocs)
			}
		})
	}

	// What a converter keeps alive after 8 MiB of a sequence that never ends.
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	a := templates.NewANSI(io.Discard)
	_, _ = a.Write([]byte("\x1b"))
	for range 256 {
		_, _ = a.Write(big)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(a)
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > 1<<20 {
		t.Errorf("heap grew by %d bytes while a converter read ESC and 8 MiB of spaces", grown)
	}
}

// BenchmarkANSI converts 16 MiB in 32 KiB writes (Nomad's frames, logfan's chunks), with
// and without a dangling escape sequence in front: the costs should be alike.
func BenchmarkANSI(b *testing.B) {
	const size = 16 << 20
	logText, err := os.ReadFile("testdata/build.log")
	if err != nil {
		b.Fatal(err)
	}
	spaces := bytes.Repeat([]byte{' '}, size)
	log := bytes.Repeat(logText, size/len(logText)+1)[:size]
	for _, bm := range []struct {
		name string
		in   []byte
	}{
		{"spaces", spaces},
		{"ESC+spaces", append([]byte{0x1b}, spaces...)},
		{"CSI+digits", append([]byte("\x1b["), bytes.Repeat([]byte{'1'}, size)...)},
		{"log", log},
		{"OSC+log", append([]byte("\x1b]0;"), log...)},
	} {
		b.Run(bm.name, func(b *testing.B) {
			b.SetBytes(int64(len(bm.in)))
			b.ReportAllocs()
			for b.Loop() {
				a := templates.NewANSI(io.Discard)
				for rest := bm.in; len(rest) > 0; {
					n := min(len(rest), 32<<10)
					if _, err := a.Write(rest[:n]); err != nil {
						b.Fatal(err)
					}
					rest = rest[n:]
				}
				_ = a.Close()
			}
		})
	}
}
