package logtext

import (
	"encoding/binary"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// relayBoth relays in through a Writer that keeps text as bytes (as New makes it) and
// through one that makes every character a cell at once, the model the text stands for, and
// returns what each relayed, one string a write with the time of the fake clock in front.
// chunks and waits frame it as FuzzWriter does.
func relayBoth(t *testing.T, values []string, in, chunks []byte, maxLine int, earn int) (lazy, cells []string) {
	t.Helper()
	run := func(keepText bool) []string {
		clock := &fakeClock{}
		out := &tape{clock: clock}
		w := New(out, values, Options{Delay: time.Second, MaxLine: maxLine, AfterFunc: clock.AfterFunc})
		w.s.lazy = keepText
		if earn > 0 {
			w.s.earn = earn
		}
		rest := in
		for _, c := range chunks {
			n := min(int(c&0x1f), len(rest))
			if _, err := w.Write(rest[:n]); err != nil {
				t.Fatal(err)
			}
			rest = rest[n:]
			if c&0x80 != 0 {
				clock.Advance(time.Second)
			}
		}
		if _, err := w.Write(rest); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range out.writes {
			got = append(got, r.at.String()+" "+r.data)
		}
		return got
	}
	return run(true), run(false)
}

// FuzzTextAsCells checks that keeping the text of a line as bytes changes nothing: what is
// relayed, and when, is what the cells it stands for relay, whatever the log, its framing,
// the delays, MaxLine and the credit of edits.
func FuzzTextAsCells(f *testing.F) {
	f.Add("secret", "hunter2", []byte("pw: \x01 \x02 \x03\x04\x01 sec\x04ret\r\x03\n"), []byte{3, 0x83, 5}, byte(16))
	f.Add("abcdef", "abc", []byte("xxxret\rsec\x06\x01\n\x02\x05\x03 \x01\x01"), []byte{1, 1, 0x81, 1, 0x82}, byte(4))
	f.Add("line-1\nline-2\n", "  line-2  ", []byte("\x01line-1\r\n\x03\x02\x1b[2K\r"), []byte{0x85, 5, 5}, byte(0))
	f.Add("aab", "aaab", []byte("aaaaab\x03\x03ab\x1b[Gaa\x1b7a\x1b8b"), []byte{0x81, 0x81, 1, 0x81}, byte(2))
	f.Add("pässwörd", "\x1b[1mbold\x1b[m", []byte("p\xc3\x1b[0m\xa4ss\x01bold\b\bld\x02"), []byte{2, 0x82, 2}, byte(7))
	f.Add("tab\tsecret", "x", []byte("tab\t\x1b[1m\x01\x1b[Ctab\x1b[1D\tsecret"), []byte{0x9f}, byte(40))
	f.Add("secret", "abcdef", []byte("abcdefghij\r\x1b[@\x1b[@\x1b[@\x01\x1b[4G\x1b[P\x1b[P\x03\x1b[2X\x1b[1K\x02"), []byte{5, 0x83, 3}, byte(168))
	f.Add("bench-secret-value-1", "bench-secret-value-2", []byte("a build's bench-secret-value-\x01\x02\n\x04x\x01\x04y\x02\x1b[Kz\n\xef\xbf\xbd\xc2\x85\xe2\x9c\x93\x01\xff\n"), []byte{0x1f, 0x1f, 7}, byte(47))
	f.Add("日本語のひみつ", "ü-geheim-ü", []byte("\x01\x02 日本語の\x04ひみつ ü-geheim\x1b[0m-ü\t\x01\n"), []byte{1, 2, 3, 0x84, 5}, byte(20))
	f.Fuzz(func(t *testing.T, a, b string, template, chunks []byte, maxLine byte) {
		if len(a) > 32 || len(b) > 32 || len(template) > 256 || len(chunks) > 64 {
			return
		}
		earn := 0
		if maxLine >= 0x80 {
			earn = 1
		}
		in := expand(template, a, b)
		lazy, cells := relayBoth(t, []string{a, b}, in, chunks, 1+int(maxLine)%48, earn)
		if !slices.Equal(lazy, cells) {
			t.Fatalf("values %q, log %q, chunks %v:\nas text  %q\nas cells %q", []string{a, b}, in, chunks, lazy, cells)
		}
	})
}

// TestTextAsCells relays the logs of the other tests, the build log and long lines both
// ways, in several framings, with the default MaxLine and a small one.
func TestTextAsCells(t *testing.T) {
	build, err := os.ReadFile("../templates/testdata/build.log")
	if err != nil {
		t.Fatal(err)
	}
	type input struct {
		values []string
		in     string
	}
	var inputs []input
	for _, tt := range allTests() {
		inputs = append(inputs, input{tt.values, tt.in})
	}
	inputs = append(inputs,
		input{[]string{"3f2c9d1"}, string(build)},
		input{[]string{"bench-secret-value-1", "bench-secret-value-2"}, strings.Repeat("albatros log relay benchmark: bench-secret-value-1 and bench-secret-value-2\n", 50)},
		input{secret, strings.Repeat("abcdefgh", 300) + "secret" + strings.Repeat("\x1b[31mx\x1b[32my", 100) + "\rsec\n"},
		input{secret, strings.Repeat("\x1b[3"+"1m"+"a\x1b[0mb", 200) + "secret\n"},
	)
	for _, in := range inputs {
		for _, maxLine := range []int{0, 7, 50} {
			for _, chunks := range [][]byte{nil, {3, 0x85, 7, 0x81}, {0x1f, 0x1f, 0x9f, 1, 1, 1, 0x82}} {
				lazy, cells := relayBoth(t, in.values, []byte(in.in), chunks, maxLine, 0)
				if !slices.Equal(lazy, cells) {
					t.Fatalf("values %q, log %q, MaxLine %d, chunks %v:\nas text  %q\nas cells %q", in.values, in.in, maxLine, chunks, lazy, cells)
				}
			}
		}
	}
}

// TestTextMemory checks that a line that never ends, kept as text, holds about a line of
// text and a bounded number of styles, whatever its characters and styles.
func TestTextMemory(t *testing.T) {
	for _, chunk := range []string{
		strings.Repeat("ü", 16<<10),
		strings.Repeat("\x1b[31m日\x1b[32mx", 4<<10),
		strings.Repeat("abcdefgh", 4<<10),
	} {
		w := New(io.Discard, secret, Options{MaxLine: 1024})
		for range 32 {
			if _, err := io.WriteString(w, chunk); err != nil {
				t.Fatal(err)
			}
		}
		width := w.s.width
		if cap(w.s.text) > 2*4*width || cap(w.s.runs) > maxRuns || cap(w.s.cells) > 2*width {
			t.Errorf("%.20q…: %d bytes of text, %d runs, %d cells, want about %d cells' worth", chunk, cap(w.s.text), cap(w.s.runs), cap(w.s.cells), width)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPrintable8 checks the test of 8 bytes at a time against one byte at a time: every byte
// value at every position among printable ones and others, and random words.
func TestPrintable8(t *testing.T) {
	check := func(b [8]byte) {
		want := true
		for _, c := range b {
			want = want && c >= 0x20 && c <= 0x7e
		}
		if got := printable8(binary.LittleEndian.Uint64(b[:])); got != want {
			t.Fatalf("printable8(%q) = %v, want %v", b[:], got, want)
		}
	}
	for _, fill := range []byte{' ', 'a', '~', 0x1f, 0x7f, 0x80, 0xff, 0} {
		for pos := range 8 {
			for c := range 256 {
				var b [8]byte
				for i := range b {
					b[i] = fill
				}
				b[pos] = byte(c)
				check(b)
			}
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 1 << 20 {
		var b [8]byte
		for i := range b {
			b[i] = byte(0x1c + r.IntN(0x68)) // around both ends of the range, mostly inside
		}
		check(b)
		binary.LittleEndian.PutUint64(b[:], r.Uint64())
		check(b)
	}
}
