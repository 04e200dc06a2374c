package logtext

import (
	"bytes"
	"slices"
	"strings"

	"github.com/albatros-ci/albatros/secrets"
)

// maskRunes is what a match is relayed as, one cell a rune; maskText is their UTF-8.
var (
	maskRunes = []rune(secrets.Mask)
	maskText  = string(maskRunes)
)

// span is a match: the cells [start, end) of a line.
type span struct{ start, end int }

// matcher finds the secrets in the text of a line, as secrets.Masker finds them in bytes:
// leftmost first, the longest of those that start at the same cell, never overlapping.
type matcher struct {
	secrets [][]rune   // longest first
	ascii   [128][]int // indexes into secrets, by an ASCII first rune
	other   map[rune][]int
	longest int // runes of the longest secret

	// The secrets in UTF-8, to find them in the text of a screen (findText), by first byte.
	text  [][]byte   // as secrets
	first [256][]int // indexes into text
	only  int        // the first byte of every secret when they all have the same, else -1
	// The first byte, and the first two bytes, of the secrets, when only is -1.
	starts *[256]bool
	pairs  *[1 << 16 / 64]uint64
}

// newMatcher returns a matcher of values as a viewer would see them printed: each value,
// and each line of a value of several lines, trimmed, rendered by a screen (so that a value
// holding a control character or an escape sequence is looked for as it shows). Like
// secrets.NewMasker, it leaves out values shorter than secrets.MinLength bytes, before and
// after rendering. A value of several lines is found line by line only: a line of the log
// holds no line end.
func newMatcher(values []string) *matcher {
	m := &matcher{other: map[rune][]int{}}
	seen := map[string]bool{}
	add := func(v string) {
		text := render(v)
		if len(v) < secrets.MinLength || len(string(text)) < secrets.MinLength || seen[string(text)] {
			return
		}
		seen[string(text)] = true
		m.secrets = append(m.secrets, text)
	}
	for _, v := range values {
		if !strings.Contains(v, "\n") {
			add(v)
		}
		if strings.ContainsAny(v, "\r\n") {
			for line := range strings.FieldsFuncSeq(v, func(r rune) bool { return r == '\n' || r == '\r' }) {
				add(strings.TrimSpace(line))
			}
		}
	}
	slices.SortStableFunc(m.secrets, func(a, b []rune) int { return len(b) - len(a) })
	for i, s := range m.secrets {
		if s[0] < 128 {
			m.ascii[s[0]] = append(m.ascii[s[0]], i)
		} else {
			m.other[s[0]] = append(m.other[s[0]], i)
		}
		m.longest = max(m.longest, len(s))
	}
	m.only = -1
	for i, s := range m.secrets {
		b := []byte(string(s))
		m.text = append(m.text, b)
		m.first[b[0]] = append(m.first[b[0]], i)
		if i == 0 {
			m.only = int(b[0])
		} else if m.only != int(b[0]) {
			m.only = -1
		}
	}
	if m.only < 0 && len(m.text) > 0 {
		m.starts, m.pairs = new([256]bool), new([1 << 16 / 64]uint64)
		for _, b := range m.text {
			k := pair(b) // a secret has 3 bytes or more (secrets.MinLength)
			m.starts[b[0]] = true
			m.pairs[k/64] |= 1 << (k % 64)
		}
	}
	return m
}

// pair is the first two bytes of b as a number.
func pair(b []byte) uint { return uint(b[0])<<8 | uint(b[1]) }

// render is the text a screen shows for v, written alone on a line.
func render(v string) []rune {
	s := screen{width: 1 << 20}
	s.feed([]byte(v))
	s.finish()
	text := make([]rune, len(s.cells))
	for i, c := range s.cells {
		text[i] = c.r
	}
	return text
}

// find appends the matches in cells to spans, in order.
func (m *matcher) find(cells []cell, spans []span) []span {
	if len(m.secrets) == 0 {
		return spans
	}
	for i := 0; i < len(cells); {
		if n := m.at(cells[i:]); n > 0 {
			spans = append(spans, span{i, i + n})
			i += n
		} else {
			i++
		}
	}
	return spans
}

// at returns the length of the longest secret cells starts with, or 0.
func (m *matcher) at(cells []cell) int {
	var candidates []int
	if r := cells[0].r; r < 128 {
		candidates = m.ascii[r]
	} else {
		candidates = m.other[r]
	}
next:
	for _, k := range candidates {
		s := m.secrets[k]
		if len(s) > len(cells) {
			continue
		}
		for j := 1; j < len(s); j++ {
			if cells[j].r != s[j] {
				continue next
			}
		}
		return len(s)
	}
	return 0
}

// findText appends the matches in text to spans, in order, as byte offsets: text is the
// UTF-8 of cells, and the matches are those find finds in them. Valid UTF-8 is matched as
// its characters are: a secret's bytes start with a character's first byte and end with a
// character's last; and the secrets that match at the same byte are each the start of the
// longest, so that it is the longest by characters as by bytes.
func (m *matcher) findText(text []byte, spans []span) []span {
	if len(m.text) == 0 {
		return spans
	}
	for i := 0; i < len(text); {
		// The next byte that starts a secret.
		if m.only >= 0 {
			j := bytes.IndexByte(text[i:], byte(m.only))
			if j < 0 {
				break
			}
			i += j
		} else {
			for i+1 < len(text) {
				if m.starts[text[i]] {
					if k := pair(text[i:]); m.pairs[k/64]&(1<<(k%64)) != 0 {
						break
					}
				}
				i++
			}
			if i+1 >= len(text) {
				break
			}
		}
		if n := m.atText(text[i:]); n > 0 {
			spans = append(spans, span{i, i + n})
			i += n
		} else {
			i++
		}
	}
	return spans
}

// atText returns the length in bytes of the longest secret text starts with, or 0.
func (m *matcher) atText(text []byte) int {
	for _, k := range m.first[text[0]] {
		// A secret has 3 bytes or more (secrets.MinLength): its last byte tells most
		// candidates from it before its others are compared.
		if t := m.text[k]; len(t) <= len(text) && text[len(t)-1] == t[len(t)-1] && string(text[1:len(t)]) == string(t[1:]) {
			return len(t)
		}
	}
	return 0
}

// masked walks the cells of a line from a column on, as they are relayed: each match
// replaced by the mask, in the style of the match's first cell.
type masked struct {
	cells []cell
	spans []span
	i     int // the next cell
	k     int // the next match
	m     int // the next rune of the mask, inside match k
}

// newMasked walks cells from column from on. A match that starts before from and ends after
// it (a secret across the cut of a long line) is masked from there.
func newMasked(cells []cell, spans []span, from int) masked {
	k := 0
	for k < len(spans) && spans[k].end <= from {
		k++
	}
	if k < len(spans) && spans[k].start < from {
		spans[k].start = from
	}
	return masked{cells: cells, spans: spans, i: from, k: k}
}

func (o *masked) next() (cell, bool) {
	if o.k < len(o.spans) && o.i == o.spans[o.k].start {
		c := cell{maskRunes[o.m], o.cells[o.i].st}
		if o.m++; o.m == len(maskRunes) {
			o.m, o.i = 0, o.spans[o.k].end
			o.k++
		}
		return c, true
	}
	if o.i == len(o.cells) {
		return cell{}, false
	}
	o.i++
	return o.cells[o.i-1], true
}
