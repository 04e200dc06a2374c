package logtext

import (
	"encoding/binary"
	"slices"
	"unicode/utf8"
)

// cell is one column of the line being rendered: a character and its style.
type cell struct {
	r  rune
	st style
}

// blank is what erased columns, and columns skipped by cursor movements, show.
var blank = cell{r: ' '}

// Caps on escape sequences and on what they may do. No program writes sequences this long;
// the bytes past a cap are output that followed a stray ESC, and are shown as text.
const (
	maxNF     = 16   // an nF sequence (ESC ( B …): ESC, intermediates, final byte
	maxCSI    = 256  // parameter and intermediate bytes of a CSI sequence
	maxString = 4096 // an OSC, DCS, SOS, PM or APC string, ESC included
	maxParams = 32   // numeric parameters of a CSI sequence that are read; the rest are ignored
	// maxMove is how far past the end of the line's cells a cursor movement may go, and how
	// many columns one insertion may add: the blanks it makes cost no input, and the line
	// must not grow much faster than the input does.
	maxMove = 256
	// maxRuns is how many styles the text kept as bytes (screen.text) may change through
	// before it is made cells: it bounds the memory of the runs.
	maxRuns = 64
)

// parseState is where the parser of escape sequences is.
type parseState uint8

const (
	ground    parseState = iota
	escape               // ESC read
	nf                   // ESC and intermediates (0x20–0x2F)
	csi                  // ESC [ and parameters
	str                  // OSC, DCS, SOS, PM or APC: a string ended by BEL or ST (ESC \)
	strEscape            // ESC inside a string
)

// screen renders a byte stream the way a terminal renders its current line: characters are
// written at the cursor, overwriting; '\r', '\b', and the CSI sequences that move the cursor
// within a line or erase (C D G H E F K J X P @ s u, and ESC 7 and ESC 8) take effect; SGR
// sets the style of what is written next; every other sequence, and every control character
// a terminal shows nothing for, is dropped. A tab is one cell holding '\t', so that it is
// relayed as it came. Invalid UTF-8 and C1 control characters written as bytes become
// U+FFFD; C1 control characters written as UTF-8 are dropped.
//
// When lazy is set, the characters written at the end of the line, the common case, are
// kept as bytes (text) after the cells, and are made cells only when something else than
// writing at the end needs them (see materialize): the line is cells then text, and a Writer
// relays a line that is all text from its bytes.
//
// Rows, the screen, scrolling, and the width of characters are not modelled: each character
// is one column, and vertical movements are ignored. Nothing is lost for masking by that,
// since what a screen relays is only what it modelled; nor by dropping the edits that its
// credit does not cover (see earn).
type screen struct {
	cells []cell // the line, or its start when text holds more: len(cells)+textN <= width
	// text is the UTF-8 of the textN cells after cells, when lazy: printable characters and
	// tabs, each a cell; runs are its styles. A cell of text is one of cells once made one.
	text  []byte
	runs  []textRun
	textN int
	lazy  bool
	// home is the first column that can be written: the cells before it are the end of a
	// part of the line already cut off, kept to find secrets across the cut.
	home   int
	cursor int // home <= cursor <= width; at width, the next character needs full
	saved  int // the column ESC 7 saved
	width  int
	style  style // the style of the next character

	state  parseState
	seqLen int // bytes of the sequence being read, ESC included
	seq    [maxCSI]byte
	nseq   int
	utf    [utf8.UTFMax]byte // the start of a character cut by the end of a write
	nutf   int
	ps     [maxParams]int
	colon  [maxParams]bool

	// The edits in the middle of the line (ICH, DCH, and ECH and EL 1 short of its end) move
	// or blank cells that no byte writes, up to the whole line each: without a bound, a line
	// of n cells makes each of them cost n. When earn is set, each byte read earns that many
	// cells, saved up to a full line's worth (earn*width); an edit that would move or blank
	// more cells than are saved is dropped, and costs nothing. Which edits are dropped
	// depends on the bytes and the columns only. Left 0 (a secret's rendering, which the
	// secret's length bounds), edits are not bounded.
	earn   int
	credit int // cells saved, as of the byte paid
	paid   int // the bytes read whose cells are in credit
	read   int // the bytes read, up to the one the sequence parser reads
	// work counts the cells moved, blanked, scanned or walked beyond the one each character
	// writes: what rendering spends its time on besides reading, for the tests that bound it.
	work int

	// endLine is called at '\n' and must clear the line. Without it, the line is cleared.
	endLine func()
	// full is called when a character is to be written at column width, and must move the
	// cursor back. Without it, the character overwrites the last column.
	full func()
}

// textRun is a part of screen.text in one style: the bytes from the end of the previous run
// to end.
type textRun struct {
	end int
	st  style
}

// end is the length of the line, in cells.
func (s *screen) end() int { return len(s.cells) + s.textN }

// materialize makes the text cells.
func (s *screen) materialize() {
	if s.textN == 0 {
		return
	}
	s.cells = slices.Grow(s.cells, s.textN)
	i := 0
	for _, run := range s.runs {
		for i < run.end {
			if c := s.text[i]; c < utf8.RuneSelf {
				s.cells = append(s.cells, cell{rune(c), run.st})
				i++
			} else {
				r, n := utf8.DecodeRune(s.text[i:])
				s.cells = append(s.cells, cell{r, run.st})
				i += n
			}
		}
	}
	s.text, s.runs, s.textN = s.text[:0], s.runs[:0], 0
}

// appendText writes b, the UTF-8 of n cells, at the end of the line, the cursor's column.
func (s *screen) appendText(b []byte, n int) {
	s.extendRun(len(b))
	s.text = append(s.text, b...)
	s.textN += n
	s.cursor += n
}

// appendByte is appendText of one character of ASCII.
func (s *screen) appendByte(c byte) {
	s.extendRun(1)
	s.text = append(s.text, c)
	s.textN++
	s.cursor++
}

// extendRun makes the runs of the text hold m more bytes in the current style.
func (s *screen) extendRun(m int) {
	if k := len(s.runs); k > 0 && s.runs[k-1].st == s.style {
		s.runs[k-1].end += m
		return
	}
	s.newRun(m)
}

// newRun starts a run of m bytes in the current style.
func (s *screen) newRun(m int) {
	if len(s.runs) == maxRuns {
		s.materialize()
	}
	s.runs = append(s.runs, textRun{len(s.text) + m, s.style})
}

// printable8 reports whether the 8 bytes of v are all printable ASCII (' ' to '~'): no byte
// is below 0x20 (v-0x20 borrows into its high bit, which it did not have), and none is
// above 0x7e (v+1 carries into its high bit, or had it).
func printable8(v uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	return (v-0x20*ones)&^v&highs == 0 && (v+ones|v)&highs == 0
}

// takeText writes the characters p starts with at the end of the line, the cursor's column,
// as text: printable ASCII, tabs, and whole UTF-8 characters other than C1 controls, as
// many as fit before the last column. It returns how many bytes it read; feed reads the
// next one.
func (s *screen) takeText(p []byte) int {
	room := s.width - s.cursor
	i, n := 0, 0 // bytes, cells
	for i < len(p) && n < room {
		switch c := p[i]; {
		case c >= 0x20 && c < 0x7f || c == '\t':
			i, n = i+1, n+1
			// Then eight at a time, while they are all printable ASCII.
			for i+8 <= len(p) && n+8 <= room && printable8(binary.LittleEndian.Uint64(p[i:])) {
				i, n = i+8, n+8
			}
			continue
		case c >= 0x80:
			// One byte is invalid UTF-8, or a character cut by the end of p.
			if r, size := utf8.DecodeRune(p[i:]); size > 1 && r >= 0xa0 {
				i, n = i+size, n+1
				continue
			}
		}
		break
	}
	if i == 1 {
		s.appendByte(p[0]) // a character between sequences
	} else if i > 0 {
		s.appendText(p[:i], n)
	}
	return i
}

// overwrite writes the printable ASCII characters and tabs p starts with over the cells from
// the cursor on, as put does, up to the end of the cells (a line rewritten after '\r'). The
// line must have no text. It returns how many bytes it read.
func (s *screen) overwrite(p []byte) int {
	cells := s.cells[s.cursor:]
	n := 0
	for n < len(p) && n < len(cells) {
		if c := p[n]; c >= 0x20 && c < 0x7f || c == '\t' {
			cells[n] = cell{rune(c), s.style}
			n++
			continue
		}
		break
	}
	s.cursor += n
	return n
}

// feed renders p. A sequence or a character cut by the end of p goes on with the next feed.
func (s *screen) feed(p []byte) {
	i, read := 0, s.read
	defer func() { s.read = read + len(p) }()
	if s.nutf > 0 {
		i = s.completeRune(p)
	}
	for i < len(p) {
		c := p[i]
		if s.state != ground {
			s.read = read + i + 1 // what an edit that c ends may spend: up to c
			if s.inSequence(c) {
				i++
				continue
			}
		}
		if s.lazy && (c >= 0x20 && c != 0x7f || c == '\t') {
			if s.cursor == s.end() && s.cursor < s.width {
				if c < utf8.RuneSelf && (i+1 == len(p) || p[i+1] == 0x1b) {
					s.appendByte(c) // a character alone, between sequences
					i++
					continue
				}
				if n := s.takeText(p[i:]); n > 0 {
					i += n
					continue
				}
			} else if s.cursor < len(s.cells) && s.textN == 0 {
				if n := s.overwrite(p[i:]); n > 0 {
					i += n
					continue
				}
			}
		}
		switch {
		case c >= 0x20 && c < 0x7f:
			s.put(rune(c))
		case c >= 0x80:
			if !utf8.FullRune(p[i:]) {
				s.nutf = copy(s.utf[:], p[i:])
				return
			}
			r, n := utf8.DecodeRune(p[i:])
			s.char(r)
			i += n
			continue
		default:
			s.control(c)
		}
		i++
	}
}

// completeRune reads the character whose first bytes the previous feed held, and returns
// how many bytes of p it took.
func (s *screen) completeRune(p []byte) int {
	held := s.nutf
	buf := s.utf[:held+copy(s.utf[held:], p)]
	if !utf8.FullRune(buf) {
		s.nutf = len(buf)
		return len(p)
	}
	s.nutf = 0
	r, n := utf8.DecodeRune(buf)
	if r == utf8.RuneError && n == 1 {
		// The held bytes start no character, and none of them starts one either (they are a
		// lead byte and continuation bytes): each is one U+FFFD, and p is read from its start.
		for range held {
			s.put(utf8.RuneError)
		}
		return 0
	}
	s.char(r)
	return n - held
}

// finish ends the stream: a character cut short shows as U+FFFD, a sequence cut short is
// dropped.
func (s *screen) finish() {
	for range s.nutf {
		s.put(utf8.RuneError)
	}
	s.nutf = 0
	s.state = ground
}

// char writes a decoded character, unless it is a C1 control: a terminal that takes those
// as controls would show something else than the cell, one that does not shows nothing.
func (s *screen) char(r rune) {
	if r >= 0x80 && r < 0xa0 {
		return
	}
	s.put(r)
}

func (s *screen) control(c byte) {
	switch c {
	case '\n':
		if s.endLine != nil {
			s.endLine()
		} else {
			s.clear()
		}
	case '\r':
		s.cursor = s.home
	case '\b':
		s.cursor = max(s.home, s.cursor-1)
	case '\t':
		s.put('\t')
	case 0x1b:
		s.state, s.seqLen = escape, 1
	}
}

// put writes one character at the cursor.
func (s *screen) put(r rune) {
	if s.cursor >= s.width {
		if s.full != nil {
			s.full()
		} else {
			s.cursor = s.width - 1
		}
	}
	if s.lazy {
		if s.cursor == s.end() {
			var b [utf8.UTFMax]byte
			s.appendText(utf8.AppendRune(b[:0], r), 1)
			return
		}
		if s.textN > 0 {
			s.materialize()
		}
	}
	c := cell{r, s.style}
	if s.cursor < len(s.cells) {
		s.cells[s.cursor] = c
	} else {
		for len(s.cells) < s.cursor {
			s.cells = append(s.cells, blank)
			s.work++
		}
		s.cells = append(s.cells, c)
	}
	s.cursor++
}

// clear starts a new line.
func (s *screen) clear() {
	s.cells = s.cells[:0]
	s.text, s.runs, s.textN = s.text[:0], s.runs[:0], 0
	s.home, s.cursor = 0, 0
}

// inSequence reads c as the next byte of the escape sequence being read. It reports false
// when c does not belong to it: the sequence is then over, unfinished or too long, and c is
// to be read as if no sequence had started.
func (s *screen) inSequence(c byte) bool {
	if s.state == str || s.state == strEscape {
		return s.inString(c)
	}
	// A control character ends the sequence and takes effect (ESC starts another one);
	// so does a byte that no sequence holds.
	if c < 0x20 || c >= 0x7f {
		s.state = ground
		return false
	}
	s.seqLen++
	switch s.state {
	case escape:
		switch {
		case c == '[':
			s.state, s.nseq = csi, 0
		case c == ']' || c == 'P' || c == 'X' || c == '^' || c == '_':
			s.state = str
		case c < 0x30:
			s.state = nf
		default:
			s.state = ground
			s.escFinal(c)
		}
	case nf: // character sets and the like: nothing this model draws
		switch {
		case c >= 0x30:
			s.state = ground
		case s.seqLen >= maxNF:
			s.state = ground
			return false
		}
	case csi:
		switch {
		case c >= 0x40:
			s.state = ground
			s.csiFinal(c)
		case s.nseq == maxCSI:
			s.state = ground
			return false
		default:
			s.seq[s.nseq] = c
			s.nseq++
		}
	}
	return true
}

// inString reads c inside an OSC, DCS, SOS, PM or APC string, which shows nothing.
func (s *screen) inString(c byte) bool {
	switch {
	case c == 0x07 || s.state == strEscape && c == '\\': // BEL, or ST
		s.state = ground
		return true
	case s.state == strEscape:
		// ESC and anything else: the string ends unfinished, and ESC starts a sequence.
		s.state, s.seqLen = escape, 1
		return s.inSequence(c)
	case c == '\n' || c == 0x18 || c == 0x1a:
		// A line end (a title has none), CAN or SUB ends the string unfinished: a stray
		// ESC ] does not swallow the lines that follow it.
		s.state = ground
		return false
	case s.seqLen >= maxString:
		s.state = ground
		return false
	case c == 0x1b:
		s.state = strEscape
	}
	s.seqLen++
	return true
}

// escFinal runs the two-byte sequence ESC c.
func (s *screen) escFinal(c byte) {
	switch c {
	case '7':
		s.saved = s.cursor
	case '8':
		s.moveTo(s.saved)
	case 'c': // reset the terminal: the style is what a viewer would notice
		s.style = style{}
	}
}

// csiFinal runs the CSI sequence whose parameters are in s.seq and whose final byte is c.
func (s *screen) csiFinal(c byte) {
	params := s.seq[:s.nseq]
	for _, b := range params {
		if b < '0' || b > ';' {
			return // a private (ESC [ ? 25 l) or intermediate byte: nothing a line shows
		}
	}
	n := s.params(params)
	ps := s.ps[:n]
	arg := func(i int) int { // a count or a column, 1 when absent or 0
		if i < n && ps[i] > 0 {
			return ps[i]
		}
		return 1
	}
	switch c {
	case 'm':
		if n == 0 {
			s.style = style{}
		} else {
			s.style = s.style.sgr(ps, s.colon[:n])
		}
	case 'C', 'a':
		s.cursor = max(s.cursor, min(s.cursor+arg(0), s.limit()))
	case 'D':
		s.cursor = max(s.home, s.cursor-arg(0))
	case 'G', '`':
		s.moveTo(s.home + arg(0) - 1)
	case 'H', 'f': // the row is ignored
		s.moveTo(s.home + arg(1) - 1)
	case 'E', 'F': // next or previous line, at its start: taken as this line's start
		s.cursor = s.home
	case 'K', 'J': // erase in line, in display: what the display loses of this line
		mode := 0
		if n > 0 {
			mode = ps[0]
		}
		s.erase(mode)
	case 'X':
		s.eraseChars(arg(0))
	case 'P':
		s.deleteChars(arg(0))
	case '@':
		s.insertChars(arg(0))
	case 's':
		if n == 0 {
			s.saved = s.cursor
		}
	case 'u':
		s.moveTo(s.saved)
	}
}

// params reads the numbers of a CSI sequence's parameters into s.ps (empty ones are 0), and
// whether a colon follows each into s.colon. It returns how many there are.
func (s *screen) params(b []byte) int {
	if len(b) == 0 {
		return 0
	}
	n, v := 0, 0
	for _, c := range b {
		if c >= '0' && c <= '9' {
			v = min(v*10+int(c-'0'), 1<<16)
			continue
		}
		if n < maxParams {
			s.ps[n], s.colon[n] = v, c == ':'
			n++
		}
		v = 0
	}
	if n < maxParams {
		s.ps[n], s.colon[n] = v, false
		n++
	}
	return n
}

// limit is the rightmost column a cursor movement may reach.
func (s *screen) limit() int { return min(s.end()+maxMove, s.width-1) }

func (s *screen) moveTo(col int) { s.cursor = max(s.home, min(col, s.limit())) }
