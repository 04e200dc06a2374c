package templates

import (
	"fmt"
	"html"
	"io"
	"strconv"
	"strings"
)

// ANSI is an io.Writer that turns terminal output into HTML: text is escaped, SGR colour and
// style sequences (16, 256 and 24-bit colours, bold, faint, italic, underline) become spans,
// and every other escape sequence is dropped. Sequences split across writes are held until
// they are complete. Call Close at the end to close the open span.
type ANSI struct {
	w       io.Writer
	style   style  // the style the next text gets
	shown   style  // the style of the span open in the output
	open    bool   // a span is open in the output
	pending []byte // an escape sequence not yet complete
	cr      bool   // the previous byte was a lone carriage return
}

type style struct {
	fg, bg                         string // class suffix ("1", "9") or "#rrggbb"
	bold, faint, italic, underline bool
}

// NewANSI returns a converter writing HTML to w.
func NewANSI(w io.Writer) *ANSI { return &ANSI{w: w} }

// Write converts p.
func (a *ANSI) Write(p []byte) (int, error) {
	var out strings.Builder
	data := p
	if len(a.pending) > 0 {
		data = append(a.pending, p...)
		a.pending = nil
	}
	text := 0 // start of the current run of plain text
	flush := func(end int) {
		if end > text {
			a.span(&out)
			out.WriteString(html.EscapeString(string(data[text:end])))
		}
	}
	for i := 0; i < len(data); i++ {
		c := data[i]
		if a.cr && c != '\n' && c != '\r' {
			// A carriage return alone starts the line again (progress bars): show it as a
			// new line rather than overwrite.
			a.span(&out)
			out.WriteByte('\n')
		}
		a.cr = false
		switch c {
		case '\r':
			flush(i)
			text = i + 1
			a.cr = true
		case 0x1b:
			flush(i)
			n, seq, complete := escape(data[i:])
			if !complete {
				a.pending = append([]byte(nil), data[i:]...)
				text = len(data)
				i = len(data)
				continue
			}
			if seq != nil {
				a.sgr(seq)
			}
			i += n - 1
			text = i + 1
		}
	}
	flush(len(data))
	if out.Len() > 0 {
		if _, err := io.WriteString(a.w, out.String()); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// Close ends the open span, if any.
func (a *ANSI) Close() error {
	if a.open {
		a.open = false
		_, err := io.WriteString(a.w, "</span>")
		return err
	}
	return nil
}

// escape reads the escape sequence at the start of b (b[0] is ESC). It returns its length,
// the parameters of an SGR sequence (ESC [ … m) or nil for any other, and whether the
// sequence is complete within b.
func escape(b []byte) (n int, sgr []int, complete bool) {
	if len(b) < 2 {
		return 0, nil, false
	}
	switch b[1] {
	case '[': // CSI: parameters, intermediates, one final byte in @–~
		for j := 2; j < len(b); j++ {
			if b[j] >= 0x40 && b[j] <= 0x7e {
				if b[j] != 'm' {
					return j + 1, nil, true
				}
				return j + 1, parseSGR(string(b[2:j])), true
			}
			if j > 64 { // not a sequence anyone writes: drop the ESC alone
				return 1, nil, true
			}
		}
		return 0, nil, false
	case ']': // OSC (window titles, hyperlinks): ends with BEL or ESC \
		for j := 2; j < len(b); j++ {
			if b[j] == 0x07 {
				return j + 1, nil, true
			}
			if b[j] == 0x1b && j+1 < len(b) && b[j+1] == '\\' {
				return j + 2, nil, true
			}
			if j > 4096 {
				return 1, nil, true
			}
		}
		return 0, nil, false
	default: // nF and Fp/Fe/Fs sequences: intermediates 0x20–0x2F, then one final byte
		for j := 1; j < len(b); j++ {
			if b[j] < 0x20 || b[j] > 0x2f {
				return j + 1, nil, true
			}
		}
		return 0, nil, false
	}
}

func parseSGR(params string) []int {
	if params == "" {
		return []int{0}
	}
	var out []int
	for _, f := range strings.FieldsFunc(params, func(r rune) bool { return r == ';' || r == ':' }) {
		v, err := strconv.Atoi(f)
		if err != nil {
			v = 0
		}
		out = append(out, v)
	}
	if len(out) == 0 {
		out = []int{0}
	}
	return out
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
func (a *ANSI) span(out *strings.Builder) {
	if a.open && a.shown == a.style {
		return
	}
	if a.open {
		out.WriteString("</span>")
		a.open = false
	}
	s := a.style
	if s == (style{}) {
		return
	}
	var classes, css []string
	colour := func(prefix, c, prop string) {
		switch {
		case c == "":
		case strings.HasPrefix(c, "#"):
			css = append(css, prop+":"+c)
		default:
			classes = append(classes, prefix+c)
		}
	}
	colour("fg", s.fg, "color")
	colour("bg", s.bg, "background-color")
	for _, f := range []struct {
		on   bool
		name string
	}{{s.bold, "b"}, {s.faint, "f"}, {s.italic, "i"}, {s.underline, "u"}} {
		if f.on {
			classes = append(classes, f.name)
		}
	}
	out.WriteString("<span")
	if len(classes) > 0 {
		fmt.Fprintf(out, ` class="%s"`, strings.Join(classes, " "))
	}
	if len(css) > 0 {
		fmt.Fprintf(out, ` style="%s"`, strings.Join(css, ";"))
	}
	out.WriteString(">")
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
