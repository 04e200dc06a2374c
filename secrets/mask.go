package secrets

import (
	"bytes"
	"io"
	"slices"
	"strings"
)

// Mask is what a masked secret is replaced with.
const Mask = "***"

// MinLength is the shortest value a masker hides: one- and two-character values ("1",
// "on") would blank out ordinary output and are not secrets worth the name.
const MinLength = 3

// Masker is an io.Writer that replaces every occurrence of its secrets with Mask before
// writing to the underlying writer, also when a secret is split across writes. A secret
// that spans several lines is masked whole, and each of its lines is masked on its own too,
// so that printing one line of a key does not leak it. Call Flush at the end of the stream.
type Masker struct {
	w       io.Writer
	secrets [][]byte   // longest first, so the longest match wins
	byFirst [256][]int // indexes into secrets by first byte
	pending []byte     // bytes not yet written: a possible start of a secret
	out     bytes.Buffer
}

// NewMasker returns a masker writing to w that hides values.
func NewMasker(w io.Writer, values []string) *Masker {
	m := &Masker{w: w}
	seen := map[string]bool{}
	add := func(s string) {
		if len(s) >= MinLength && !seen[s] {
			seen[s] = true
			m.secrets = append(m.secrets, []byte(s))
		}
	}
	for _, v := range values {
		add(v)
		if strings.ContainsAny(v, "\r\n") {
			for line := range strings.FieldsFuncSeq(v, func(r rune) bool { return r == '\n' || r == '\r' }) {
				add(strings.TrimSpace(line))
			}
		}
	}
	slices.SortStableFunc(m.secrets, func(a, b []byte) int { return len(b) - len(a) })
	for i, s := range m.secrets {
		m.byFirst[s[0]] = append(m.byFirst[s[0]], i)
	}
	return m
}

// Write masks p and writes what can no longer be the start of a secret.
func (m *Masker) Write(p []byte) (int, error) {
	if len(m.secrets) == 0 {
		return m.w.Write(p)
	}
	m.pending = append(m.pending, p...)
	if err := m.drain(false); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Flush writes the bytes held back as a possible start of a secret: the stream has ended.
func (m *Masker) Flush() error {
	if len(m.secrets) == 0 {
		return nil
	}
	return m.drain(true)
}

// drain scans pending, appending masked output to m.out, and stops at a partial match
// unless final. What was scanned is written and dropped from pending.
func (m *Masker) drain(final bool) error {
	buf := m.pending
	i, start := 0, 0 // start: first byte of buf not yet copied to out
scan:
	for i < len(buf) {
		for _, k := range m.byFirst[buf[i]] {
			s := m.secrets[k]
			rest := buf[i:]
			if bytes.HasPrefix(rest, s) {
				m.out.Write(buf[start:i])
				m.out.WriteString(Mask)
				i += len(s)
				start = i
				continue scan
			}
			if !final && len(rest) < len(s) && bytes.HasPrefix(s, rest) {
				break scan // may become a secret with the next write
			}
		}
		i++
	}
	m.out.Write(buf[start:i])
	m.pending = append(m.pending[:0], buf[i:]...)
	if m.out.Len() == 0 {
		return nil
	}
	_, err := m.w.Write(m.out.Bytes())
	m.out.Reset()
	return err
}

// MaskString returns s with every one of values masked, as a Masker masks a stream: for the
// short texts the bot writes itself (commit status descriptions, log lines, page footers).
func MaskString(s string, values []string) string {
	var b strings.Builder
	m := NewMasker(&b, values)
	_, _ = io.WriteString(m, s)
	_ = m.Flush()
	return b.String()
}
