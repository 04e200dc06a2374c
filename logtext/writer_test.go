package logtext

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// relay writes chunks, one Write each, to a Writer masking values, and returns what it
// relayed after Close. Its clock never moves: only line ends, long lines and Close relay.
func relay(t testing.TB, values []string, chunks ...string) string {
	t.Helper()
	return relayOpts(t, values, Options{}, chunks...)
}

func relayOpts(t testing.TB, values []string, opts Options, chunks ...string) string {
	t.Helper()
	clock := &fakeClock{}
	out := &tape{clock: clock}
	opts.AfterFunc = clock.AfterFunc
	w := New(out, values, opts)
	for _, c := range chunks {
		if n, err := w.Write([]byte(c)); err != nil || n != len(c) {
			t.Fatalf("Write(%q) = %d, %v; want %d, nil", c, n, err, len(c))
		}
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return out.String()
}

type relayTest struct {
	name   string
	values []string
	in     string
	want   string
}

var secret = []string{"secret"}

// splitTests are secrets that the bytes of the log split, but a viewer sees whole.
var splitTests = []relayTest{
	{"SGR inside", secret, "pw: sec\x1b[1mret\n", "pw: ***\n"},
	{"grep --color", secret, "token=\x1b[01;31m\x1b[Ksecret\x1b[m\x1b[K ok\n", "token=\x1b[1;31m***\x1b[0m ok\n"},
	{"mask takes the first cell's style", secret, "\x1b[32msec\x1b[31mret\x1b[0m!\n", "\x1b[32m***\x1b[0m!\n"},
	{"CSI D back", secret, "secXXX\x1b[3Dret\n", "***\n"},
	{"CSI C forward over text", secret, "secXXX\x1b[1G\x1b[3Cret\n", "***\n"},
	{"CSI G column", secret, "XXXret\x1b[Gsec\n", "***\n"},
	{"CSI H position", secret, "XXXret\x1b[2;1Hsec\n", "***\n"},
	{"CSI K erase to the end", secret, "secXXXXXX\x1b[6D\x1b[Kret\n", "***\n"},
	{"CSI P delete", secret, "secXXret\x1b[5D\x1b[2P\n", "***\n"},
	{"CSI u restore", secret, "\x1b[sXXXret\x1b[usec\n", "***\n"},
	{"ESC 7 and ESC 8", secret, "\x1b7XXXret\x1b8sec\n", "***\n"},
	{"OSC title BEL", secret, "sec\x1b]0;building\x07ret\n", "***\n"},
	{"OSC title ST", secret, "sec\x1b]2;building\x1b\\ret\n", "***\n"},
	{"OSC 8 hyperlink", secret, "\x1b]8;;https://example.com/\x1b\\sec\x1b]8;;\x1b\\ret\n", "***\n"},
	{"DCS", secret, "sec\x1bPq#0;2;0;0;0\x1b\\ret\n", "***\n"},
	{"charset designation", secret, "sec\x1b(Bret\n", "***\n"},
	{"CR overwrite", secret, "XXXret\rsec\n", "***\n"},
	{"BS", secret, "seX\bcret\n", "***\n"},
	{"BS several", secret, "secXXX\b\b\bret\n", "***\n"},
	{"controls that show nothing", secret, "sec\x00\x07\x7fret\n", "***\n"},
	{"C1 control", secret, "sec\u0085ret\n", "***\n"},
	{"private mode", secret, "sec\x1b[?25lret\n", "***\n"},
	{"erased, not joined", secret, "secret\x1b[3G\x1b[X\n", "se ret\n"},
	{"split by an insertion", secret, "secret\x1b[4G\x1b[@\n", "sec ret\n"},
	{"on two lines, not joined", secret, "sec\nret\n", "sec\nret\n"},
}

// maskTests are secrets.Masker's semantics, on the rendered text.
var maskTests = []relayTest{
	{"every occurrence", []string{"hunter2"}, "hunter2hunter2 hunter2\nhunter", "****** ***\nhunter"},
	{"several secrets", []string{"tok-123", "p@ss"}, "curl -u admin:p@ss -H 'Authorization: tok-123'\n", "curl -u admin:*** -H 'Authorization: ***'\n"},
	{"longest wins", []string{"abc", "abcdef"}, "xabcdefx abcx abcde\n", "x***x ***x ***de\n"},
	{"longest wins whatever the order", []string{"abcdef", "abc"}, "xabcdefx abcx abcde\n", "x***x ***x ***de\n"},
	{"a secret inside another", []string{"secret", "mysecretvalue"}, "mysecretvalue secret mysecret\n", "*** *** my***\n"},
	{"leftmost first", []string{"cdef", "abcd"}, "abcdef\n", "***ef\n"},
	{"overlapping occurrences", []string{"aba"}, "ababa\n", "***ba\n"},
	{"short values are not masked", []string{"", "1", "on", "abc"}, "1 on abc on1\n", "1 on *** on1\n"},
	{
		"a value of several lines, line by line",
		[]string{"-----BEGIN KEY-----\nAAAABBBB\n  indented  \nxy\n-----END KEY-----\n"},
		"key:\n-----BEGIN KEY-----\nAAAABBBB\n  indented  \nxy\n-----END KEY-----\ndone\n",
		"key:\n***\n***\n  ***  \nxy\n***\ndone\n",
	},
	{"lines of a CRLF value", []string{"first-line\r\nsecond-line\r\n"}, "first-line\nsecond-line\r\n", "***\n***\n"},
	{"a value with a lone CR, as it prints", []string{"before\rafter"}, "before after before\rafter\n", "*** *** ***\n"},
	{"a value holding sequences, as it shows", []string{"\x1b[1mbold-secret\x1b[0m"}, "is bold-secret\n", "is ***\n"},
	{"the mask itself", []string{"***"}, "a***b\n", "a***b\n"},
	{"UTF-8", []string{"pässwörd"}, "pässwörd!\n", "***!\n"},
	{"invalid UTF-8 as U+FFFD", []string{"p\xe4ss"}, "p\xe4ss p\xe5ss\n", "*** ***\n"},
	{"no values", nil, "nothing to hide\n", "nothing to hide\n"},
}

// passTests are logs without secrets in them: text comes out as it came, styles in their
// canonical form.
var passTests = []relayTest{
	{"plain ASCII", secret, "make: Entering directory '/build'\n\tcc -O2 -c x.c  \n\n!\"#$%&'()*+,-./09:;<=>?@AZ[\\]^_`az{|}~\n", "make: Entering directory '/build'\n\tcc -O2 -c x.c  \n\n!\"#$%&'()*+,-./09:;<=>?@AZ[\\]^_`az{|}~\n"},
	{"UTF-8 text", secret, "✓ grün ünïcödé 日本語 🦀\n", "✓ grün ünïcödé 日本語 🦀\n"},
	{"cargo colours", secret, "\x1b[1m\x1b[32m   Compiling\x1b[0m serde v1.0\n", "\x1b[1;32m   Compiling\x1b[0m serde v1.0\n"},
	{"reset at the line's end", secret, "\x1b[31mred\n", "\x1b[31mred\x1b[0m\n"},
	{"style goes on to the next line", secret, "\x1b[31mred\nstill\x1b[0m\n", "\x1b[31mred\x1b[0m\n\x1b[31mstill\x1b[0m\n"},
	{"256 and 24-bit colours", secret, "\x1b[38;5;208mo\x1b[48;2;1;2;3mb\x1b[0m\n", "\x1b[38;5;208mo\x1b[48;2;1;2;3mb\x1b[0m\n"},
	{"base colours of the 256", secret, "\x1b[38;5;1ma\x1b[48;5;12mb\x1b[m\n", "\x1b[31ma\x1b[104mb\x1b[0m\n"},
	{"colon forms", secret, "\x1b[38:2::255:0:0mr\x1b[4:3mu\x1b[4:0;38:5:2mg\x1b[m\n", "\x1b[38;2;255;0;0mr\x1b[4mu\x1b[0;32mg\x1b[0m\n"},
	{"smallest change", secret, "\x1b[1;31ma\x1b[32mb\x1b[22mc\x1b[1;2;3;4;5;7;8;9md\x1b[0;4me\x1b[0m\n", "\x1b[1;31ma\x1b[32mb\x1b[22mc\x1b[1;2;3;4;5;7;8;9md\x1b[0;4me\x1b[0m\n"},
	{"sequences without text write nothing", secret, "\x1b[31m\x1b[0m\x1b[1m\x1b[22mplain\n", "plain\n"},
	{"dropped sequences", secret, "\x1b[?25l\x1b]0;title\x07\x1b(Bo\x1b=k\x1b[>4;2m\x1b[1A\n", "ok\n"},
	{"CRLF", secret, "a\r\nb\r\n", "a\nb\n"},
	{"progress", secret, "10%\r50%\r100%\n", "100%\n"},
	{"erased progress", secret, "working...\r\x1b[Kdone\n", "done\n"},
	{"erase to the start", secret, "abcdef\x1b[3G\x1b[1K\n", "   def\n"},
	{"columns skipped are blank", secret, "a\x1b[3Cb\x1b[10Gc\n", "a   b    c\n"},
	{"no line end at the end", secret, "partial", "partial"},
	{"styled at the end", secret, "\x1b[1mbold", "\x1b[1mbold\x1b[0m"},
	{"ESC at the end", secret, "text\x1b", "text"},
	{"character cut at the end", secret, "ab\xe2\x82", "ab\uFFFD\uFFFD"},
	{"invalid UTF-8", secret, "a\xffb\xc3(\n", "a\uFFFDb\uFFFD(\n"},
	{"overlong CSI dropped, the rest shown", secret, "\x1b[" + strings.Repeat("1", 300) + "mok\n", strings.Repeat("1", 300-maxCSI) + "mok\n"},
}

func allTests() []relayTest {
	return append(append(append([]relayTest(nil), splitTests...), maskTests...), passTests...)
}

func TestWriter(t *testing.T) {
	for _, tt := range allTests() {
		t.Run(tt.name, func(t *testing.T) {
			if got := relay(t, tt.values, tt.in); got != tt.want {
				t.Errorf("relayed %q\n got %q\nwant %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestWriterSplitWrites cuts the input at every pair of positions, and into bytes: every
// secret and every sequence is cut every way, and the output is the same as from one Write.
func TestWriterSplitWrites(t *testing.T) {
	for _, tt := range allTests() {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in
			for i := 0; i <= len(in); i++ {
				for j := i; j <= len(in); j += max(1, len(in)/40) {
					if got := relay(t, tt.values, in[:i], in[i:j], in[j:]); got != tt.want {
						t.Fatalf("relayed %q | %q | %q\n got %q\nwant %q", in[:i], in[i:j], in[j:], got, tt.want)
					}
				}
			}
			var bytewise []string
			for i := range len(in) {
				bytewise = append(bytewise, in[i:i+1])
			}
			if got := relay(t, tt.values, bytewise...); got != tt.want {
				t.Errorf("relayed %q one byte at a time\n got %q\nwant %q", in, got, tt.want)
			}
		})
	}
}

// TestWriterPlainText checks that printable ASCII, tabs and line ends come out byte for
// byte, in any framing.
func TestWriterPlainText(t *testing.T) {
	var b strings.Builder
	for i := range 2000 {
		for c := ' ' + rune(i%7); c <= '~'; c += rune(1 + i%5) {
			b.WriteRune(c)
			if c%11 == 0 {
				b.WriteByte('\t')
			}
		}
		b.WriteString(strings.Repeat(" ", i%3) + "\n")
	}
	in := b.String()
	for _, size := range []int{len(in), 32 << 10, 61, 1} {
		var chunks []string
		for rest := in; rest != ""; rest = rest[min(size, len(rest)):] {
			chunks = append(chunks, rest[:min(size, len(rest))])
		}
		if got := relay(t, []string{"not-in-there"}, chunks...); got != in {
			t.Fatalf("in writes of %d bytes, %d bytes came out of %d: %s", size, len(got), len(in), firstDifference(got, in))
		}
	}
}

// firstDifference shows the first line where got and want differ.
func firstDifference(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := range max(len(g), len(w)) {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return fmt.Sprintf("line %d:\n got %q\nwant %q", i+1, gl, wl)
		}
	}
	return "same lines, different bytes"
}

// TestWriterBuildLogGolden relays the captured build log of the templates' tests, with the
// commit as a secret: it is in the log's window title (dropped) and on a line of its own.
func TestWriterBuildLogGolden(t *testing.T) {
	in, err := os.ReadFile("../templates/testdata/build.log")
	if err != nil {
		t.Fatal(err)
	}
	got := relay(t, []string{"3f2c9d1"}, string(in))
	if strings.Contains(got, "3f2c9d1") {
		t.Errorf("the secret shows in the relayed log")
	}
	path := filepath.Join("testdata", "build.txt.golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (run go test -update to accept it):\n%s", path, firstDifference(got, string(want)))
	}

	// Nomad hands the log over in frames of any size.
	var frames []string
	for rest := string(in); rest != ""; {
		n := min(len(rest), 1+len(frames)*7%61)
		frames = append(frames, rest[:n])
		rest = rest[n:]
	}
	if framed := relay(t, []string{"3f2c9d1"}, frames...); framed != got {
		t.Errorf("log in %d frames differs from one Write:\n%s", len(frames), firstDifference(framed, got))
	}
}

// TestWriterLongLines cuts lines longer than MaxLine: a secret anywhere in them, across a
// cut too, is masked, and what comes out is the masked line, in any framing.
func TestWriterLongLines(t *testing.T) {
	const maxLine = 8
	for at := 0; at < 40; at++ {
		line := strings.Repeat("a", at) + "secret" + strings.Repeat("b", 45-at)
		want := strings.Repeat("a", at) + "***" + strings.Repeat("b", 45-at) + "\n"
		for _, size := range []int{len(line) + 1, 5, 1} {
			clock := &fakeClock{}
			out := &tape{clock: clock}
			w := New(out, secret, Options{MaxLine: maxLine, AfterFunc: clock.AfterFunc})
			in := line + "\n"
			for rest := in; rest != ""; rest = rest[min(size, len(rest)):] {
				if _, err := w.Write([]byte(rest[:min(size, len(rest))])); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if got := out.String(); got != want {
				t.Fatalf("secret at %d, writes of %d bytes: got %q, want %q", at, size, got, want)
			}
		}
	}
}

// TestWriterLongLineRelayedAtMaxLine checks that a line that does not end is relayed as it
// grows past MaxLine, with no delay passing, and that the Writer keeps about a line.
func TestWriterLongLineRelayedAtMaxLine(t *testing.T) {
	clock := &fakeClock{}
	out := &tape{clock: clock}
	w := New(out, secret, Options{MaxLine: 1024, AfterFunc: clock.AfterFunc})
	width := 1024 + len("secret") - 1
	chunk := bytes.Repeat([]byte("abcdefgh"), 4<<10)
	written := 0
	for range 32 { // 1 MiB
		if _, err := w.Write(chunk); err != nil {
			t.Fatal(err)
		}
		written += len(chunk)
		if got := len(out.String()); got < written-width {
			t.Fatalf("%d bytes relayed of %d written, want all but at most %d", got, written, width)
		}
	}
	if cap(w.s.cells) > 2*width || cap(w.sent) > 2*width {
		t.Errorf("a Writer holds %d cells and %d relayed ones, want about %d", cap(w.s.cells), cap(w.sent), width)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != strings.Repeat("abcdefgh", 128<<10) {
		t.Errorf("%d bytes relayed, not the line as written", len(got))
	}
}

// TestWriterCursorMovesBounded checks that sequences that make blanks cannot make the output
// much longer than the input.
func TestWriterCursorMovesBounded(t *testing.T) {
	for _, seq := range []string{"\x1b[99999C", "\x1b[99999G", "\x1b[1;99999H", "\x1b[99999a", "x\x1b[G\x1b[99999@"} {
		in := strings.Repeat(seq+"x", 100) + "\n"
		got := relay(t, nil, in)
		if limit := 100 * (maxMove + 2); len(got) > limit {
			t.Errorf("%q a hundred times: %d bytes relayed, want at most %d", seq, len(got), limit)
		}
	}
}
