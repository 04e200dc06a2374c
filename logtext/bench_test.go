package logtext

import (
	"bytes"
	"io"
	"os"
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
