package logtext

import "strconv"

// style is how a cell is drawn, as SGR sequences set it: two colours and a set of
// attributes. The zero style is the terminal's default.
type style struct {
	fg, bg colour
	attr   attrs
}

// colour is 0 for the terminal's default, indexed|n for entry n of the 256-colour palette
// (the 16 base colours are entries 0–15, whichever way they were asked for), or rgb|0xrrggbb.
type colour uint32

const (
	indexed colour = 1 << 24
	rgb     colour = 2 << 24
)

// attrs are the SGR attributes a cell can have.
type attrs uint8

const (
	bold attrs = 1 << iota
	faint
	italic
	underline
	blink
	inverse
	conceal
	strike
)

// attrCodes are the SGR codes that set and reset each attribute, in the order of attrs.
// Bold and faint are both reset by 22.
var attrCodes = [...]struct{ on, off int }{
	{1, 22}, {2, 22}, {3, 23}, {4, 24}, {5, 25}, {7, 27}, {8, 28}, {9, 29},
}

// sgr returns st changed by the parameters of one SGR sequence. colon[i] says that
// ps[i+1] is a sub-parameter of ps[i] (38:5:208), as opposed to the next parameter
// (38;5;208); both forms of extended colours are read. Unknown codes are ignored.
func (st style) sgr(ps []int, colon []bool) style {
	for i := 0; i < len(ps); {
		end := i + 1 // end of the colon group that starts at i
		for end < len(ps) && colon[end-1] {
			end++
		}
		v := ps[i]
		switch {
		case v == 38 || v == 48 || v == 58: // 58: underline colour, read to skip it
			var c colour
			ok := false
			if end > i+1 {
				c, ok = colonColour(ps[i+1 : end])
			} else {
				var used int
				c, ok, used = semicolonColour(ps[i+1:])
				end = i + 1 + used
			}
			if ok && v == 38 {
				st.fg = c
			} else if ok && v == 48 {
				st.bg = c
			}
		case v == 4 && end > i+1: // 4:0 is no underline, 4:1 to 4:5 kinds of underline
			if ps[i+1] == 0 {
				st.attr &^= underline
			} else {
				st.attr |= underline
			}
		default:
			st = st.code(v)
		}
		i = end
	}
	return st
}

// code applies one SGR code without parameters.
func (st style) code(v int) style {
	switch {
	case v == 0:
		return style{}
	case v == 22:
		st.attr &^= bold | faint
	case v >= 30 && v <= 37:
		st.fg = indexed | colour(v-30)
	case v == 39:
		st.fg = 0
	case v >= 40 && v <= 47:
		st.bg = indexed | colour(v-40)
	case v == 49:
		st.bg = 0
	case v >= 90 && v <= 97:
		st.fg = indexed | colour(v-90+8)
	case v >= 100 && v <= 107:
		st.bg = indexed | colour(v-100+8)
	default:
		for k, c := range attrCodes {
			switch v {
			case c.on:
				st.attr |= 1 << k
			case c.off:
				st.attr &^= 1 << k
			}
		}
	}
	return st
}

// semicolonColour reads "5;n" or "2;r;g;b" after 38 or 48, and how many parameters it used.
// An incomplete one uses all that are left, as terminals do.
func semicolonColour(p []int) (colour, bool, int) {
	switch {
	case len(p) >= 2 && p[0] == 5:
		return indexed | colour(clamp(p[1])), true, 2
	case len(p) >= 4 && p[0] == 2:
		return rgb | colour(clamp(p[1])<<16|clamp(p[2])<<8|clamp(p[3])), true, 4
	}
	return 0, false, len(p)
}

// colonColour reads the sub-parameters of 38:…: "5:n", "2:r:g:b", or "2:cs:r:g:b" with a
// colour space identifier, as ITU T.416 writes it.
func colonColour(p []int) (colour, bool) {
	switch {
	case len(p) == 2 && p[0] == 5:
		return indexed | colour(clamp(p[1])), true
	case len(p) == 4 && p[0] == 2:
		return rgb | colour(clamp(p[1])<<16|clamp(p[2])<<8|clamp(p[3])), true
	case len(p) >= 5 && p[0] == 2:
		return rgb | colour(clamp(p[2])<<16|clamp(p[3])<<8|clamp(p[4])), true
	}
	return 0, false
}

func clamp(v int) int { return max(0, min(255, v)) }

// appendSGR appends the SGR sequence that changes the output's style from from to to: the
// shorter of the changes alone and a reset followed by all of to, so that the same change
// is always written the same way.
func appendSGR(b []byte, from, to style) []byte {
	if to == (style{}) {
		return append(b, "\x1b[0m"...)
	}
	var diff, full [32]int
	d := changes(diff[:0], from, to)
	f := changes(append(full[:0], 0), style{}, to)
	params := d
	if width(f) < width(d) {
		params = f
	}
	b = append(b, "\x1b["...)
	for i, p := range params {
		if i > 0 {
			b = append(b, ';')
		}
		b = strconv.AppendInt(b, int64(p), 10)
	}
	return append(b, 'm')
}

// changes appends the SGR codes that turn style from into style to.
func changes(ps []int, from, to style) []int {
	on := to.attr &^ from.attr
	if off := from.attr &^ to.attr; off != 0 {
		if off&(bold|faint) != 0 {
			ps = append(ps, 22)
			on |= to.attr & (bold | faint) // 22 reset both: set again the one that stays
		}
		for k, c := range attrCodes {
			if off&(1<<k) != 0 && c.off != 22 {
				ps = append(ps, c.off)
			}
		}
	}
	for k, c := range attrCodes {
		if on&(1<<k) != 0 {
			ps = append(ps, c.on)
		}
	}
	if to.fg != from.fg {
		ps = colourCodes(ps, to.fg, 30, 90, 38, 39)
	}
	if to.bg != from.bg {
		ps = colourCodes(ps, to.bg, 40, 100, 48, 49)
	}
	return ps
}

// colourCodes appends the codes that select c: base is the code of colour 0, bright that of
// colour 8, ext the code of extended colours, def that of the default colour.
func colourCodes(ps []int, c colour, base, bright, ext, def int) []int {
	v := int(c & 0xffffff)
	switch {
	case c == 0:
		return append(ps, def)
	case c&rgb != 0:
		return append(ps, ext, 2, v>>16, v>>8&0xff, v&0xff)
	case v < 8:
		return append(ps, base+v)
	case v < 16:
		return append(ps, bright+v-8)
	}
	return append(ps, ext, 5, v)
}

// width is the length of params written as an SGR sequence's parameters.
func width(params []int) int {
	n := len(params)
	for _, p := range params {
		for n++; p >= 10; p /= 10 { // codes are not negative
			n++
		}
	}
	return n
}
