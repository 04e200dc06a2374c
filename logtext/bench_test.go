package logtext

import (
	"bytes"
	"io"
	"os"
	"strings"
	"testing"
)

// BenchmarkWriter relays 16 MiB in 32 KiB writes (Nomad's frames), with and without a
// dangling escape sequence in front, and a line that never ends: the costs should be
// alike, and linear in the input.
func BenchmarkWriter(b *testing.B) {
	const size = 16 << 20
	logText, err := os.ReadFile("../templates/testdata/build.log")
	if err != nil {
		b.Fatal(err)
	}
	spaces := bytes.Repeat([]byte{' '}, size)
	log := bytes.Repeat(logText, size/len(logText)+1)[:size]
	line := []byte("ok: a line of plain text as a build prints it, of some length\n")
	plain := bytes.Repeat(line, size/len(line)+1)[:size]
	values := []string{"3f2c9d1", "hunter2-token", "-----BEGIN KEY-----\nMIIEvQIBADANBg\n-----END KEY-----"}
	for _, bm := range []struct {
		name string
		in   []byte
	}{
		{"plain", plain},
		{"ESC+plain", append([]byte{0x1b}, plain...)},
		{"log", log},
		{"OSC+log", append([]byte("\x1b]0;"), log...)},
		{"spaces", spaces},
		{"ESC+spaces", append([]byte{0x1b}, spaces...)},
		{"CSI+digits", append([]byte("\x1b["), bytes.Repeat([]byte{'1'}, size)...)},
	} {
		b.Run(bm.name, func(b *testing.B) {
			b.SetBytes(int64(len(bm.in)))
			b.ReportAllocs()
			for b.Loop() {
				w := New(io.Discard, values, Options{})
				for rest := bm.in; len(rest) > 0; {
					n := min(len(rest), 32<<10)
					if _, err := w.Write(rest[:n]); err != nil {
						b.Fatal(err)
					}
					rest = rest[n:]
				}
				if err := w.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkWriterEdits relays 2 MiB of edits of a line of 16,000 cells, in 32 KiB writes:
// insertions and deletions at its start, erasures short of its end, rewrites after '\r',
// and, with a delay passing after each write, redraws. They should cost about what plain
// text does, not the line's length each.
func BenchmarkWriterEdits(b *testing.B) {
	const size, width = 2 << 20, 16000
	line := string(bytes.Repeat([]byte{'a'}, width))
	repeat := func(setup, seq string) []byte {
		in := []byte(setup)
		for len(in) < size {
			in = append(in, seq...)
		}
		return in
	}
	for _, bm := range []struct {
		name  string
		in    []byte
		delay bool // a delay passes after each write
	}{
		{"plain", repeat("", "a"), false},
		{"ICH", repeat(line+"\r", "\x1b[@"), false},
		{"DCH+ICH", repeat(line+"\r", "\x1b[P\x1b[@"), false},
		{"DCH+refill", repeat(line+"\r", "\x1b[Pa"), false},
		{"DCH+append", repeat(line, "\r\x1b[P\x1b[16000Ga"), false},
		{"ECH", repeat(line+"\r", "\x1b[15999X"), false},
		{"EL1", repeat(line+"\x1b[15999G", "\x1b[1K"), false},
		{"EL1 at end", repeat(line, "\x1b[1K"), false},
		{"CR+rewrite", repeat(line, "\r"+strings.Repeat("b", 80)), false},
		{"CR+redraw", repeat(line, "\rb"), true},
	} {
		b.Run(bm.name, func(b *testing.B) {
			b.SetBytes(int64(len(bm.in)))
			b.ReportAllocs()
			for b.Loop() {
				clock := &fakeClock{}
				w := New(io.Discard, []string{"hunter2-the-secret-value"}, Options{AfterFunc: clock.AfterFunc})
				for rest := bm.in; len(rest) > 0; {
					n := min(len(rest), 32<<10)
					if _, err := w.Write(rest[:n]); err != nil {
						b.Fatal(err)
					}
					rest = rest[n:]
					if bm.delay {
						clock.Advance(DefaultDelay)
					}
				}
				if err := w.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkWriterRelay is the relay of GET /build measured on the real stack (bench/logrelay):
// the log of a build that got two secrets of 20 bytes, 50 MiB of lines of plain ASCII as
// `yes` writes them (the line bench/logrelay writes: 67 bytes with its '\n', whatever it
// says), in Nomad's read chunks of 32 KiB, to a sink that costs nothing.
func BenchmarkWriterRelay(b *testing.B) {
	benchmarkRelay(b, []string{"bench-secret-value-1", "bench-secret-value-2"})
}

// BenchmarkWriterRelayManySecrets is BenchmarkWriterRelay with 20 secrets that start with
// as many bytes, most of them letters of the log's text.
func BenchmarkWriterRelayManySecrets(b *testing.B) {
	var values []string
	for _, c := range "abcdefghilnoprstuy_0" {
		values = append(values, string(c)+"-bench-secret-value")
	}
	benchmarkRelay(b, values)
}

func benchmarkRelay(b *testing.B, values []string) {
	const size = 50 << 20
	line := []byte("albatros log relay benchmark: a line of a build's output, 63 bytes\n")
	in := bytes.Repeat(line, size/len(line)+1)[:size]
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		w := New(io.Discard, values, Options{})
		for rest := in; len(rest) > 0; {
			n := min(len(rest), 32<<10)
			if _, err := w.Write(rest[:n]); err != nil {
				b.Fatal(err)
			}
			rest = rest[n:]
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
