package logtext

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
)

// workTest is an input that edits a line over and over: setup, then seq until the input is
// big enough; with delay, a delay passes after each write, so that the line is relayed and
// redrawn.
type workTest struct {
	name, setup, seq string
	delay            bool
}

// workTests edit a line of width cells in every way that costs more than a byte's worth on
// a long line, or could: the edits in its middle, and moves, rewrites and redraws.
func workTests(width int) []workTest {
	line, col, last := strings.Repeat("a", width), strconv.Itoa(width), strconv.Itoa(width-1)
	return []workTest{
		{"ICH at the start", line + "\r", "\x1b[@", false},
		{"ICH and DCH at the start", line + "\r", "\x1b[P\x1b[@", false},
		{"DCH and refill", line + "\r", "\x1b[Pa", false},
		{"DCH at the start, append", line, "\r\x1b[P\x1b[" + col + "Ga", false},
		{"ECH short of the end", line + "\r", "\x1b[" + last + "X", false},
		{"ECH past the end", line + "\r", "\x1b[99999X", false},
		{"EL 1 short of the end", line + "\x1b[" + last + "G", "\x1b[1K", false},
		{"EL 1 at the end", line, "\x1b[1K", false},
		{"EL 0 after CR", line, "\r\x1b[K" + line[:100], false},
		{"moves and writes", line, "\r\x1b[" + col + "Gb\x1b[5Dc\x1b[2;9Hd\x1b[999Ce\x1b8f", false},
		{"CR and rewrite", line, "\rbb", false},
		{"CR and redraw", line, "\rb", true},
		{"blanks past the end", "", "\x1b[999Cx", false},
		{"inserted blanks", "x\r", "\x1b[999@", false},
		{"line ends", line, "\r\x1b[999@\n" + line, false},
	}
}

func (tt workTest) input(size int) []byte {
	in := []byte(tt.setup)
	for len(in) < size {
		in = append(in, tt.seq...)
	}
	return in
}

// editWriter returns a Writer with a fake clock whose edits earn earn cells a byte, 0 for
// no bound.
func editWriter(w io.Writer, earn int) (*Writer, *fakeClock) {
	clock := &fakeClock{}
	x := New(w, []string{"hunter2-the-secret-value"}, Options{AfterFunc: clock.AfterFunc})
	x.s.earn = earn
	return x, clock
}

// TestWriterWorkLinear bounds what a Writer does besides reading its input, by its count of
// the cells it moves, blanks, scans and walks: a few times what a byte earns its edits, per
// byte, whatever the length of the line edited. Without the bound on edits, the line's
// length each would be thousands a byte.
func TestWriterWorkLinear(t *testing.T) {
	for _, width := range []int{1000, DefaultMaxLine - 100} {
		for _, tt := range workTests(width) {
			in := tt.input(64 << 10)
			w, clock := editWriter(io.Discard, editCredit)
			for rest := in; len(rest) > 0; {
				n := min(len(rest), 32<<10)
				if _, err := w.Write(rest[:n]); err != nil {
					t.Fatal(err)
				}
				rest = rest[n:]
				if tt.delay {
					clock.Advance(DefaultDelay)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if limit := 3 * editCredit * len(in); w.s.work > limit {
				t.Errorf("%s, line of %d: %d cells of work for %d bytes (%d a byte), want at most %d",
					tt.name, width, w.s.work, len(in), w.s.work/len(in), limit)
			}
		}
	}
}

// TestWriterEditsKept edits a line a terminal's width long, a few thousand times, in every
// way: no edit is dropped, and the line is relayed as without a bound.
func TestWriterEditsKept(t *testing.T) {
	var b strings.Builder
	b.WriteString(strings.Repeat("0123456789", 20))
	for i := range 5000 {
		fmt.Fprintf(&b, "\x1b[%dG", 1+i*37%190)
		switch i % 6 {
		case 0:
			b.WriteString("\x1b[@x")
		case 1:
			b.WriteString("\x1b[P")
		case 2:
			b.WriteString("\x1b[3@")
		case 3:
			b.WriteString("\x1b[3P")
		case 4:
			b.WriteString("\x1b[5X")
		case 5:
			b.WriteString("\x1b[1K\rok")
		}
	}
	b.WriteString("\n")
	relayed := func(earn int) string {
		var out strings.Builder
		w, _ := editWriter(&out, earn)
		if _, err := io.WriteString(w, b.String()); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		return out.String()
	}
	if got, want := relayed(editCredit), relayed(0); got != want {
		t.Errorf("bounded edits relayed\n %q\nunbounded ones\n %q", got, want)
	}
}

// TestWriterEditsDropped checks that an edit the credit does not cover is dropped, and that
// which are depends on the bytes only, not on how they are framed.
func TestWriterEditsDropped(t *testing.T) {
	// With a cell a byte: "abcdef\r\x1b[@" has earned 10 cells and the insertion costs 7
	// (the line grows by one); the next has earned 3 more and would cost 8.
	var out strings.Builder
	w, _ := editWriter(&out, 1)
	if _, err := io.WriteString(w, "abcdef\r\x1b[@\x1b[@\n"); err != nil {
		t.Fatal(err)
	}
	if want := " abcdef\n"; out.String() != want {
		t.Errorf("relayed %q, want %q", out.String(), want)
	}

	for _, tt := range workTests(300) {
		in := string(tt.input(4<<10)) + "\n"
		var want string
		for _, size := range []int{len(in), 7, 1} {
			var out strings.Builder
			w, _ := editWriter(&out, editCredit)
			for rest := in; rest != ""; rest = rest[min(size, len(rest)):] {
				if _, err := io.WriteString(w, rest[:min(size, len(rest))]); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if size == len(in) {
				want = out.String()
			} else if out.String() != want {
				t.Errorf("%s: in writes of %d bytes: %s", tt.name, size, firstDifference(out.String(), want))
			}
		}
	}
}
