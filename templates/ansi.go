package templates

import (
	"fmt"
	"io"
	"math"
	"strconv"
)

// ANSI is an io.Writer that turns terminal output into HTML: text is escaped, SGR colour and
// style sequences (16, 256 and 24-bit colours, bold, faint, italic, underline) become spans,
// and every other escape sequence is dropped. Sequences split across writes are parsed as
// they come, so that a converter holds at most a CSI sequence's parameters (64 bytes)
// between writes and its cost is linear in its input, however the input is cut. A sequence
// longer than its cap (an nF sequence of more than 16 bytes, a CSI of more than 66, an OSC,
// DCS, SOS, PM or APC string of more than 4 KiB) is dropped at the cap, and what follows is
// shown as text. Call Close at the end to close the open span.
type ANSI struct {
	w     io.Writer
	style style // the style the next text gets
	shown style // the style of the span open in the output
	open  bool  // a span is open in the output
	cr    bool  // the previous byte was a lone carriage return

	seq     seqState     // the escape sequence being read, if any
	seqLen  int          // its bytes so far, ESC included
	params  [maxCSI]byte // the parameter bytes of a CSI sequence being read
	nparams int
	nums    [maxCSI/2 + 1]int // the SGR parameters read from params
	out     []byte            // the HTML of the current write, reused
}

// seqState is where an escape sequence being read has got to.
type seqState uint8

const (
	seqNone      seqState = iota
	seqEsc                // ESC read
	seqNF                 // ESC and intermediates (0x20–0x2F): nF, e.g. ESC ( B
	seqCSI                // ESC [ and parameters
	seqString             // ESC ] (OSC), ESC P (DCS), ESC X, ESC ^, ESC _: a string ended by BEL or ST
	seqStringEsc          // ESC inside a string: ST (ESC \) if a backslash follows
)

// Caps on escape sequences. A terminal writes none this long; past them the bytes are
// someone's output that happened to follow a stray ESC, and are shown.
const (
	maxNF     = 16   // ESC, intermediates and the final byte
	maxCSI    = 63   // parameter and intermediate bytes between ESC [ and the final byte
	maxString = 4096 // index of the last byte of a string sequence
	outChunk  = 32 << 10
	keepOut   = 4 << 10 // the output buffer kept between writes
)

type style struct {
	fg, bg                         string // class suffix ("1", "9") or "#rrggbb"
	bold, faint, italic, underline bool
}

// NewANSI returns a converter writing HTML to w.
func NewANSI(w io.Writer) *ANSI { return &ANSI{w: w} }

// Write converts p. It writes the HTML in pieces of at most about 32 KiB of input, so that
// a large write needs no large buffer.
func (a *ANSI) Write(p []byte) (int, error) {
	for rest := p; len(rest) > 0; {
		n := min(len(rest), outChunk)
		a.convert(rest[:n])
		rest = rest[n:]
		if len(a.out) > 0 {
			_, err := a.w.Write(a.out)
			a.out = a.out[:0]
			if err != nil {
				return 0, err
			}
		}
	}
	if cap(a.out) > keepOut {
		// A catching-up or bursty write: its buffer is not kept for the stream's life (a
		// live page holds one converter per viewer, mostly idle, by the thousand).
		a.out = nil
	}
	return len(p), nil
}

// convert appends the HTML of p to a.out. Every byte is looked at once: a sequence split
// across writes goes on from the state the previous write left.
func (a *ANSI) convert(p []byte) {
	text := 0 // start of the current run of plain text
	for i := 0; i < len(p); i++ {
		c := p[i]
		if a.seq != seqNone {
			if a.inSequence(c) {
				text = i + 1
				continue
			}
			// The sequence was too long and is dropped: c is text, or starts a sequence.
			text = i
		}
		if a.cr && c != '\n' && c != '\r' {
			// A carriage return alone starts the line again (progress bars): show it as a
			// new line rather than overwrite.
			a.span()
			a.out = append(a.out, '\n')
		}
		a.cr = false
		switch c {
		case '\r':
			a.text(p[text:i])
			text = i + 1
			a.cr = true
		case 0x1b:
			a.text(p[text:i])
			text = i + 1
			a.seq, a.seqLen = seqEsc, 1
		}
	}
	a.text(p[text:])
}

// inSequence takes c as the next byte of the escape sequence being read. It reports false
// when the sequence has grown past its cap without c ending it: the sequence is then dropped,
// and c is to be read as if no sequence had started.
func (a *ANSI) inSequence(c byte) bool {
	j := a.seqLen // index of c in the sequence
	a.seqLen++
	switch a.seq {
	case seqEsc:
		switch {
		case c == '[':
			a.seq, a.nparams = seqCSI, 0
		case c == ']' || c == 'P' || c == 'X' || c == '^' || c == '_':
			a.seq = seqString
		case c >= 0x20 && c <= 0x2f:
			a.seq = seqNF
		default: // a two-byte sequence (ESC =, ESC c, ESC 7 …)
			a.seq = seqNone
		}
	case seqNF: // intermediates 0x20–0x2F, then one final byte
		if c < 0x20 || c > 0x2f {
			a.seq = seqNone
		} else if j >= maxNF-1 {
			a.seq = seqNone // no room left for the final byte
			return false
		}
	case seqCSI: // parameters, intermediates, one final byte in @–~
		switch {
		case c >= 0x40 && c <= 0x7e:
			a.seq = seqNone
			if c == 'm' {
				a.sgr(a.parseSGR())
			}
		case a.nparams == maxCSI:
			a.seq = seqNone
			return false
		default:
			a.params[a.nparams] = c
			a.nparams++
		}
	case seqString, seqStringEsc: // (window titles, hyperlinks …): ends with BEL or ESC \
		switch {
		case c == 0x07 || a.seq == seqStringEsc && c == '\\':
			a.seq = seqNone
		case j > maxString:
			a.seq = seqNone
			return false
		case c == 0x1b:
			a.seq = seqStringEsc
		default:
			a.seq = seqString
		}
	}
	return true
}

// text appends a run of plain text, escaped, in the current style.
func (a *ANSI) text(b []byte) {
	if len(b) == 0 {
		return
	}
	a.span()
	a.out = appendEscaped(a.out, b)
}

// appendEscaped appends b escaped as html.EscapeString does, without its two string copies.
func appendEscaped(out, b []byte) []byte {
	start := 0
	for i, c := range b {
		var esc string
		switch c {
		case '<':
			esc = "&lt;"
		case '>':
			esc = "&gt;"
		case '&':
			esc = "&amp;"
		case '\'':
			esc = "&#39;"
		case '"':
			esc = "&#34;"
		default:
			continue
		}
		out = append(append(out, b[start:i]...), esc...)
		start = i + 1
	}
	return append(out, b[start:]...)
}

// Close ends the open span, if any. A sequence left incomplete is dropped.
func (a *ANSI) Close() error {
	a.seq = seqNone
	if a.open {
		a.open = false
		_, err := io.WriteString(a.w, "</span>")
		return err
	}
	return nil
}

// parseSGR reads the parameters of an SGR sequence as numbers into a.nums: fields split at
// ';' and ':', empty ones skipped, a field that is not a decimal integer read as 0, no field
// at all read as a reset.
func (a *ANSI) parseSGR() []int {
	nums := a.nums[:0]
	params := a.params[:a.nparams]
	for len(params) > 0 {
		end := 0
		for end < len(params) && params[end] != ';' && params[end] != ':' {
			end++
		}
		if end > 0 {
			nums = append(nums, atoi(params[:end]))
		}
		params = params[min(end+1, len(params)):]
	}
	if len(nums) == 0 {
		nums = append(nums, 0)
	}
	return nums
}

// atoi is strconv.Atoi without the string: b as a signed decimal integer, or 0 when it is
// not one or does not fit in an int.
func atoi(b []byte) int {
	neg := false
	if len(b) > 0 && (b[0] == '+' || b[0] == '-') {
		neg, b = b[0] == '-', b[1:]
	}
	if len(b) == 0 {
		return 0
	}
	v := 0
	for _, c := range b {
		if c < '0' || c > '9' || v > (math.MaxInt-int(c-'0'))/10 {
			return 0
		}
		v = v*10 + int(c-'0')
	}
	if neg {
		return -v
	}
	return v
}

// sgr applies SGR parameters to the style of the text that follows.
func (a *ANSI) sgr(p []int) {
	s := a.style
	for i := 0; i < len(p); i++ {
		switch v := p[i]; {
		case v == 0:
			s = style{}
		case v == 1:
			s.bold = true
		case v == 2:
			s.faint = true
		case v == 3:
			s.italic = true
		case v == 4:
			s.underline = true
		case v == 22:
			s.bold, s.faint = false, false
		case v == 23:
			s.italic = false
		case v == 24:
			s.underline = false
		case v >= 30 && v <= 37:
			s.fg = strconv.Itoa(v - 30)
		case v >= 90 && v <= 97:
			s.fg = strconv.Itoa(v - 90 + 8)
		case v == 39:
			s.fg = ""
		case v >= 40 && v <= 47:
			s.bg = strconv.Itoa(v - 40)
		case v >= 100 && v <= 107:
			s.bg = strconv.Itoa(v - 100 + 8)
		case v == 49:
			s.bg = ""
		case v == 38 || v == 48:
			c, used := extendedColour(p[i+1:])
			i += used
			if v == 38 {
				s.fg = c
			} else {
				s.bg = c
			}
		}
	}
	a.style = s
}

// span makes the open span match the current style before text is written, so that a style
// set and changed again before any text leaves no empty span behind.
func (a *ANSI) span() {
	if a.open && a.shown == a.style {
		return
	}
	if a.open {
		a.out = append(a.out, "</span>"...)
		a.open = false
	}
	s := a.style
	if s == (style{}) {
		return
	}
	a.out = append(a.out, "<span"...)
	// Classes first (palette colours, then styles), then inline CSS for 24-bit colours.
	sep := ` class="`
	class := func(name ...string) {
		a.out = append(a.out, sep...)
		for _, n := range name {
			a.out = append(a.out, n...)
		}
		sep = " "
	}
	if s.fg != "" && s.fg[0] != '#' {
		class("fg", s.fg)
	}
	if s.bg != "" && s.bg[0] != '#' {
		class("bg", s.bg)
	}
	for _, f := range [...]struct {
		on   bool
		name string
	}{{s.bold, "b"}, {s.faint, "f"}, {s.italic, "i"}, {s.underline, "u"}} {
		if f.on {
			class(f.name)
		}
	}
	if sep == " " {
		a.out = append(a.out, '"')
	}
	sep = ` style="`
	for _, c := range [...]struct{ prop, value string }{{"color:", s.fg}, {"background-color:", s.bg}} {
		if c.value != "" && c.value[0] == '#' {
			a.out = append(append(append(a.out, sep...), c.prop...), c.value...)
			sep = ";"
		}
	}
	if sep == ";" {
		a.out = append(a.out, '"')
	}
	a.out = append(a.out, '>')
	a.open, a.shown = true, s
}

// extendedColour reads "5;n" (256 colours) or "2;r;g;b" (24-bit) after 38 or 48. It returns
// the colour (a class suffix for the 16 base colours, else #rrggbb) and how many parameters
// it used.
func extendedColour(p []int) (string, int) {
	switch {
	case len(p) >= 2 && p[0] == 5:
		n := clamp(p[1])
		if n < 16 {
			return strconv.Itoa(n), 2
		}
		return xterm256(n), 2
	case len(p) >= 4 && p[0] == 2:
		return fmt.Sprintf("#%02x%02x%02x", clamp(p[1]), clamp(p[2]), clamp(p[3])), 4
	}
	return "", len(p)
}

func clamp(v int) int { return max(0, min(255, v)) }

// xterm256 is the colour of entries 16–255 of the xterm palette.
func xterm256(n int) string {
	if n >= 232 {
		g := 8 + (n-232)*10
		return fmt.Sprintf("#%02x%02x%02x", g, g, g)
	}
	n -= 16
	level := func(v int) int {
		if v == 0 {
			return 0
		}
		return 55 + v*40
	}
	return fmt.Sprintf("#%02x%02x%02x", level(n/36), level(n/6%6), level(n%6))
}
