package secrets_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/albatros-ci/albatros/secrets"
)

// mask writes chunks, one Write each, to a masker hiding values and returns what came out
// after Flush.
func mask(t testing.TB, values []string, chunks ...string) string {
	t.Helper()
	var out bytes.Buffer
	m := secrets.NewMasker(&out, values)
	for _, c := range chunks {
		n, err := m.Write([]byte(c))
		if err != nil || n != len(c) {
			t.Fatalf("Write(%q) = %d, %v; want %d, nil", c, n, err, len(c))
		}
	}
	if err := m.Flush(); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	return out.String()
}

var maskTests = []struct {
	name   string
	values []string
	in     string
	want   string
}{
	{
		name:   "one secret",
		values: []string{"hunter2"},
		in:     "password is hunter2.",
		want:   "password is ***.",
	},
	{
		name:   "every occurrence",
		values: []string{"hunter2"},
		in:     "hunter2hunter2 hunter2\nhunter",
		want:   "****** ***\nhunter",
	},
	{
		name:   "several secrets",
		values: []string{"tok-123", "p@ss"},
		in:     "curl -u admin:p@ss -H 'Authorization: tok-123' https://example.com",
		want:   "curl -u admin:*** -H 'Authorization: ***' https://example.com",
	},
	{
		name:   "longest wins when a secret starts another",
		values: []string{"abc", "abcdef"},
		in:     "xabcdefx abcx abcde",
		want:   "x***x ***x ***de",
	},
	{
		name:   "longest wins whatever the order of values",
		values: []string{"abcdef", "abc"},
		in:     "xabcdefx abcx abcde",
		want:   "x***x ***x ***de",
	},
	{
		name:   "a secret inside another is masked with it",
		values: []string{"secret", "mysecretvalue"},
		in:     "mysecretvalue secret mysecret",
		want:   "*** *** my***",
	},
	{
		name:   "leftmost match first",
		values: []string{"cdef", "abcd"},
		in:     "abcdef",
		want:   "***ef",
	},
	{
		name:   "overlapping occurrences of one secret",
		values: []string{"aba"},
		in:     "ababa",
		want:   "***ba",
	},
	{
		name:   "values shorter than MinLength are not masked",
		values: []string{"", "1", "on", "abc"},
		in:     "1 on abc on1",
		want:   "1 on *** on1",
	},
	{
		name:   "duplicate values",
		values: []string{"dup", "dup", "dup"},
		in:     "dup dupdup",
		want:   "*** ******",
	},
	{
		name:   "multi-line secret masked whole",
		values: []string{"-----BEGIN KEY-----\nAAAABBBB\n  indented  \nxy\n-----END KEY-----\n"},
		in:     "key:\n-----BEGIN KEY-----\nAAAABBBB\n  indented  \nxy\n-----END KEY-----\ndone\n",
		want:   "key:\n***done\n",
	},
	{
		name:   "each line of a multi-line secret masked on its own",
		values: []string{"-----BEGIN KEY-----\nAAAABBBB\n  indented  \nxy\n-----END KEY-----\n"},
		in:     "AAAABBBB | indented |   indented   | xy | -----END KEY-----",
		want:   "*** | *** |   ***   | xy | ***",
	},
	{
		name:   "lines of a CRLF secret",
		values: []string{"first-line\r\nsecond-line\r\n"},
		in:     "first-line\nsecond-line\r\nfirst-line\r\nsecond-line\r\n",
		want:   "***\n***\r\n***",
	},
	{
		name:   "lone CR splits lines too",
		values: []string{"before\rafter"},
		in:     "before after before\rafter",
		want:   "*** *** ***",
	},
	{
		name:   "no secrets",
		values: nil,
		in:     "nothing to hide\n",
		want:   "nothing to hide\n",
	},
	{
		name:   "only short values",
		values: []string{"a", "bc"},
		in:     "abc bc a",
		want:   "abc bc a",
	},
	{
		name:   "text ending with the start of a secret",
		values: []string{"hunter2"},
		in:     "hunter2 hunt",
		want:   "*** hunt",
	},
	{
		name:   "the mask itself",
		values: []string{"***"},
		in:     "a***b",
		want:   "a***b",
	},
	{
		name:   "binary and UTF-8",
		values: []string{"pässwörd", "\x00\xff\x01"},
		in:     "pässwörd\x00\xff\x01\x00\xff",
		want:   "******\x00\xff",
	},
}

func TestMasker(t *testing.T) {
	for _, tt := range maskTests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mask(t, tt.values, tt.in); got != tt.want {
				t.Errorf("masked %q = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestMaskerSplitWrites cuts the input at every pair of positions, so that every secret is
// split in every possible way (including empty writes), and at every byte.
func TestMaskerSplitWrites(t *testing.T) {
	for _, tt := range maskTests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in
			for i := 0; i <= len(in); i++ {
				for j := i; j <= len(in); j++ {
					if got := mask(t, tt.values, in[:i], in[i:j], in[j:]); got != tt.want {
						t.Fatalf("masked %q | %q | %q = %q, want %q", in[:i], in[i:j], in[j:], got, tt.want)
					}
				}
			}
			var bytewise []string
			for i := range len(in) {
				bytewise = append(bytewise, in[i:i+1])
			}
			if got := mask(t, tt.values, bytewise...); got != tt.want {
				t.Errorf("masked %q one byte at a time = %q, want %q", in, got, tt.want)
			}
		})
	}
}

// TestMaskerHoldsBackPrefix checks what is written before Flush: never the start of a
// secret that the next write may complete, and all of it once the match fails or Flush
// ends the stream.
func TestMaskerHoldsBackPrefix(t *testing.T) {
	var out bytes.Buffer
	m := secrets.NewMasker(&out, []string{"hunter2"})
	steps := []struct {
		write string // "" means Flush
		want  string
	}{
		{"password: hun", "password: "},
		{"ter", "password: "},
		{"2, again: hunter", "password: ***, again: "},
		{"!", "password: ***, again: hunter!"},
		{" end: hunt", "password: ***, again: hunter! end: "},
		{"", "password: ***, again: hunter! end: hunt"},
	}
	for _, s := range steps {
		if s.write == "" {
			if err := m.Flush(); err != nil {
				t.Fatalf("Flush: %v", err)
			}
		} else if _, err := m.Write([]byte(s.write)); err != nil {
			t.Fatalf("Write(%q): %v", s.write, err)
		}
		if out.String() != s.want {
			t.Fatalf("after %q: output %q, want %q", s.write, out.String(), s.want)
		}
	}
	if err := m.Flush(); err != nil || out.String() != steps[len(steps)-1].want {
		t.Errorf("second Flush: %v, output %q", err, out.String())
	}
}

// recorder keeps each Write it receives.
type recorder struct{ writes []string }

func (r *recorder) Write(p []byte) (int, error) {
	r.writes = append(r.writes, string(p))
	return len(p), nil
}

func TestMaskerPassthrough(t *testing.T) {
	for _, values := range [][]string{nil, {}, {"", "ab"}} {
		var rec recorder
		m := secrets.NewMasker(&rec, values)
		for _, w := range []string{"hel", "lo\n", "ab"} {
			if n, err := m.Write([]byte(w)); n != len(w) || err != nil {
				t.Fatalf("Write(%q) = %d, %v", w, n, err)
			}
		}
		if err := m.Flush(); err != nil {
			t.Fatalf("Flush: %v", err)
		}
		// Nothing is held back or merged: each write goes through as it came.
		if want := []string{"hel", "lo\n", "ab"}; strings.Join(rec.writes, "|") != strings.Join(want, "|") {
			t.Errorf("values %q: writes %q, want %q", values, rec.writes, want)
		}
	}
}

var errBroken = errors.New("broken pipe")

type brokenWriter struct{}

func (brokenWriter) Write([]byte) (int, error) { return 0, errBroken }

func TestMaskerWriteError(t *testing.T) {
	m := secrets.NewMasker(brokenWriter{}, []string{"hunter2"})
	if _, err := m.Write([]byte("some output\n")); !errors.Is(err, errBroken) {
		t.Errorf("Write: %v, want %v", err, errBroken)
	}

	m = secrets.NewMasker(brokenWriter{}, []string{"hunter2"})
	if _, err := m.Write([]byte("hunt")); err != nil {
		t.Fatalf("Write of a held-back prefix: %v", err)
	}
	if err := m.Flush(); !errors.Is(err, errBroken) {
		t.Errorf("Flush: %v, want %v", err, errBroken)
	}

	m = secrets.NewMasker(brokenWriter{}, nil)
	if _, err := m.Write([]byte("x")); !errors.Is(err, errBroken) {
		t.Errorf("Write without secrets: %v, want %v", err, errBroken)
	}
}

// TestMaskerValuesOfPayload masks with what Values recovers from a real payload, as the
// log pages do.
func TestMaskerValuesOfPayload(t *testing.T) {
	key := "-----BEGIN KEY-----\nMIIEvQIBADANBg\n-----END KEY-----"
	payload, err := secrets.Payload("set +x\nexport SECRET1=xx\nexport LEGACY=\"legacy-token\"",
		map[string]string{"KEY": key, "PASS": "it's s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	in := "xx is too short\nlegacy-token\n" + key + "\nMIIEvQIBADANBg\npass=it's s3cret\n"
	want := "xx is too short\n***\n***\n***\npass=***\n"
	if got := mask(t, secrets.Values(payload), in); got != want {
		t.Errorf("masked =\n%s\nwant\n%s", got, want)
	}
}

// referenceMask is the masker without streaming: at each position, the longest secret that
// starts there is replaced, else the byte is kept.
func referenceMask(values []string, text []byte) []byte {
	var out []byte
	all := effectiveSecrets(values)
	for i := 0; i < len(text); {
		best := ""
		for _, s := range all {
			if len(s) > len(best) && bytes.HasPrefix(text[i:], []byte(s)) {
				best = s
			}
		}
		if best == "" {
			out = append(out, text[i])
			i++
			continue
		}
		out = append(out, secrets.Mask...)
		i += len(best)
	}
	return out
}

// effectiveSecrets is what a masker hides: values of at least MinLength bytes, and the
// trimmed lines of multi-line values.
func effectiveSecrets(values []string) []string {
	var out []string
	for _, v := range values {
		out = append(out, v)
		if strings.ContainsAny(v, "\r\n") {
			for _, line := range strings.FieldsFunc(v, func(r rune) bool { return r == '\r' || r == '\n' }) {
				out = append(out, strings.TrimSpace(line))
			}
		}
	}
	var long []string
	for _, s := range out {
		if len(s) >= secrets.MinLength {
			long = append(long, s)
		}
	}
	return long
}

// expand builds the text to mask from a fuzzed template: bytes 1 and 2 stand for the two
// secrets, 3 for the first half of the first, so that the fuzzer reaches matches and near
// matches easily.
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
		default:
			out = append(out, c)
		}
	}
	return out
}

func FuzzMasker(f *testing.F) {
	f.Add("hunter2", "hunter", []byte("pw: \x01 \x02 \x03\x01\x03"), []byte{1, 2, 3})
	f.Add("abc", "abcdef", []byte("\x01\x02\x03\x02x\x01"), []byte{0, 1, 0, 7})
	f.Add("line-1\nline-2\n", "  line-2  ", []byte("\x01line-1\r\n\x03\x02"), []byte{5, 5, 5})
	f.Add("aab", "aaab", []byte("aaaaab\x03\x03ab"), []byte{1, 1, 1, 1, 1, 1, 1, 1})
	f.Add("x", "", []byte("xx\x01\x02"), []byte(nil))
	f.Fuzz(func(t *testing.T, a, b string, template, chunks []byte) {
		if len(a) > 64 || len(b) > 64 || len(template) > 256 {
			return
		}
		values := []string{a, b}
		text := expand(template, a, b)
		want := referenceMask(values, text)

		var out bytes.Buffer
		m := secrets.NewMasker(&out, values)
		rest := text
		for _, c := range chunks {
			n := min(int(c%16), len(rest))
			if _, err := m.Write(rest[:n]); err != nil {
				t.Fatal(err)
			}
			rest = rest[n:]
		}
		if _, err := m.Write(rest); err != nil {
			t.Fatal(err)
		}
		if err := m.Flush(); err != nil {
			t.Fatal(err)
		}

		got := out.Bytes()
		if !bytes.Equal(got, want) {
			t.Fatalf("values %q, text %q, chunks %v:\nmasker    %q\nreference %q", values, text, chunks, got, want)
		}
		for _, s := range effectiveSecrets(values) {
			// A secret with a '*' may be made up of a mask and the text around it.
			if !strings.Contains(s, "*") && bytes.Contains(got, []byte(s)) {
				t.Fatalf("secret %q leaked: values %q, text %q, output %q", s, values, text, got)
			}
		}
	})
}
