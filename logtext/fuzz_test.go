package logtext

import (
	"bytes"
	"slices"
	"testing"
	"time"
	"unicode/utf8"
)

// expand builds a log from a fuzzed template: bytes 1 and 2 stand for the two secrets, 3 for
// the first half of the first, and 4 to 6 for sequences that split text, so that the
// fuzzer reaches split and near matches easily.
func expand(template []byte, a, b string) []byte {
	var out []byte
	for _, c := range template {
		switch c {
		case 1:
			out = append(out, a...)
		case 2:
			out = append(out, b...)
		case 3:
			out = append(out, a[:len(a)/2]...)
		case 4:
			out = append(out, "\x1b[1;31m"...)
		case 5:
			out = append(out, "\x1b]8;;https://x\x1b\\"...)
		case 6:
			out = append(out, "\x1b[3D"...)
		default:
			out = append(out, c)
		}
	}
	return out
}

// shownSecrets returns the secrets of m that a viewer must never see: all but those with a
// '*' in them, which a mask and the text beside it may make up.
func shownSecrets(m *matcher) *matcher {
	v := &matcher{other: map[rune][]int{}}
	for _, s := range m.secrets {
		if slices.Contains(s, '*') {
			continue
		}
		i := len(v.secrets)
		v.secrets = append(v.secrets, s)
		if s[0] < 128 {
			v.ascii[s[0]] = append(v.ascii[s[0]], i)
		} else {
			v.other[s[0]] = append(v.other[s[0]], i)
		}
		v.longest = max(v.longest, len(s))
	}
	return v
}

// viewerSees renders out as a terminal would, a byte at a time, and returns the first
// secret of m that its line shows at any moment, if any.
func viewerSees(m *matcher, out []byte) []rune {
	var leak []rune
	s := screen{width: 1 << 30}
	for i := range out {
		s.feed(out[i : i+1])
		if leak != nil || len(m.secrets) == 0 || s.cursor == 0 {
			continue
		}
		// A secret can only have appeared around the cell written last.
		c := min(s.cursor-1, len(s.cells))
		window := s.cells[max(0, c-m.longest+1):min(len(s.cells), c+m.longest)]
		if spans := m.find(window, nil); len(spans) > 0 {
			for _, cl := range window[spans[0].start:spans[0].end] {
				leak = append(leak, cl.r)
			}
		}
	}
	return leak
}

// FuzzWriter checks that what a Writer relays never shows a secret, neither on a terminal
// (which overwrites at '\r') nor on the live page (which starts a line there), whatever the
// log, its framing and the delays that pass, and also when it drops edits (a maxLine of
// 128 or more leaves them a cell a byte, so that it does); that it is valid UTF-8; and that
// it is bounded by the input.
func FuzzWriter(f *testing.F) {
	f.Add("secret", "hunter2", []byte("pw: \x01 \x02 \x03\x04\x01 sec\x04ret\r\x03\n"), []byte{3, 0x83, 5}, byte(16))
	f.Add("abcdef", "abc", []byte("xxxret\rsec\x06\x01\n\x02\x05\x03 \x01\x01"), []byte{1, 1, 0x81, 1, 0x82}, byte(4))
	f.Add("line-1\nline-2\n", "  line-2  ", []byte("\x01line-1\r\n\x03\x02\x1b[2K\r"), []byte{0x85, 5, 5}, byte(0))
	f.Add("aab", "aaab", []byte("aaaaab\x03\x03ab\x1b[Gaa\x1b7a\x1b8b"), []byte{0x81, 0x81, 1, 0x81}, byte(2))
	f.Add("pässwörd", "\x1b[1mbold\x1b[m", []byte("p\xc3\x1b[0m\xa4ss\x01bold\b\bld\x02"), []byte{2, 0x82, 2}, byte(7))
	f.Add("tab\tsecret", "x", []byte("tab\t\x1b[1m\x01\x1b[Ctab\x1b[1D\tsecret"), []byte{0x9f}, byte(40))
	f.Add("secret", "abcdef", []byte("abcdefghij\r\x1b[@\x1b[@\x1b[@\x01\x1b[4G\x1b[P\x1b[P\x03\x1b[2X\x1b[1K\x02"), []byte{5, 0x83, 3}, byte(168))
	f.Fuzz(func(t *testing.T, a, b string, template, chunks []byte, maxLine byte) {
		if len(a) > 32 || len(b) > 32 || len(template) > 256 || len(chunks) > 64 {
			return
		}
		values := []string{a, b}
		in := expand(template, a, b)
		clock := &fakeClock{}
		var out bytes.Buffer
		w := New(&out, values, Options{Delay: time.Second, MaxLine: 1 + int(maxLine)%48, AfterFunc: clock.AfterFunc})
		if maxLine >= 0x80 {
			w.s.earn = 1
		}
		rest, waits := in, 0
		for _, c := range chunks {
			n := min(int(c&0x1f), len(rest))
			if _, err := w.Write(rest[:n]); err != nil {
				t.Fatal(err)
			}
			rest = rest[n:]
			if c&0x80 != 0 {
				clock.Advance(time.Second)
				waits++
			}
		}
		if _, err := w.Write(rest); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		got := out.Bytes()

		m := shownSecrets(w.match)
		if leak := viewerSees(m, got); leak != nil {
			t.Fatalf("a terminal shows secret %q: values %q, log %q, chunks %v, output %q", string(leak), values, in, chunks, got)
		}
		if leak := viewerSees(m, bytes.ReplaceAll(got, []byte("\r"), []byte("\n"))); leak != nil {
			t.Fatalf("the page shows secret %q: values %q, log %q, chunks %v, output %q", string(leak), values, in, chunks, got)
		}
		if !utf8.Valid(got) {
			t.Fatalf("output is not UTF-8: %q", got)
		}

		// Bound: every cell relayed once costs at most its character and a change of style
		// (cellBytes). Without a delay passing, each cell is relayed once, and a byte makes
		// at most 1+maxMove cells; each delay relays the line at most once more, and makes
		// at most two later relays redraws. Line ends and redraws add a few bytes each.
		const cellBytes = 4 + len("\x1b[0;1;2;3;4;5;7;8;9;38;2;255;255;255;48;2;255;255;255m")
		lines := bytes.Count(in, []byte("\n"))
		limit := cellBytes*((1+maxMove)*len(in)+(3*waits)*w.s.width) + 16*(lines+3*waits+2)
		if len(got) > limit {
			t.Fatalf("%d bytes relayed for %d of input and %d delays, want at most %d", len(got), len(in), waits, limit)
		}
	})
}
