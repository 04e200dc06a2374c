package logtext

import (
	"slices"
	"strings"

	"github.com/albatros-ci/albatros/secrets"
)

// maskRunes is what a match is relayed as, one cell a rune.
var maskRunes = []rune(secrets.Mask)

// span is a match: the cells [start, end) of a line.
type span struct{ start, end int }

// matcher finds the secrets in the text of a line, as secrets.Masker finds them in bytes:
// leftmost first, the longest of those that start at the same cell, never overlapping.
type matcher struct {
	secrets [][]rune   // longest first
	ascii   [128][]int // indexes into secrets, by an ASCII first rune
	other   map[rune][]int
	longest int // runes of the longest secret
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
	return m
}

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
