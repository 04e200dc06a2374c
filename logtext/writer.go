// Package logtext is what the viewers of a build's log see when the build received secrets:
// the log rendered the way a terminal renders it, line by line, with the secrets masked in
// the text as rendered, relayed as plain text with canonical colours. Its output is what
// the plain log (GET /build, read by curl and scripts, often on a terminal) serves and what
// the live page turns into HTML.
//
// It replaces masking the bytes (secrets.Masker), which fails twice over: a secret split by a
// colour, a cursor movement, an OSC sequence or a carriage return (grep --color, progress
// bars) is in no byte range but shows whole once rendered; and holding back only the bytes
// that may start a secret tells whoever watches the log, by when a guess shows, whether it is
// the start of one.
//
// It is not for the log of a build that received no secrets (relay it as it comes), and
// does not write HTML (templates.ANSI does, from what a Writer relays).
package logtext

import (
	"errors"
	"io"
	"sync"
	"time"
	"unicode/utf8"
)

// Defaults of Options.
const (
	DefaultDelay   = 500 * time.Millisecond
	DefaultMaxLine = 16 << 10
)

const (
	writeChunk = 32 << 10  // input rendered between two writes of output
	flushAt    = 64 << 10  // output held before it is written, within a write
	keepOut    = 256 << 10 // output buffer kept between writes
	keepCells  = 4 << 10   // cells kept between lines
)

// ErrClosed is what Write returns after Close.
var ErrClosed = errors.New("logtext: write after close")

// Timer is a timer started by Options.AfterFunc, as *time.Timer is.
type Timer interface {
	// Stop keeps the timer from firing if it has not yet, and reports whether it did.
	Stop() bool
}

// Options tune a Writer. The zero value is the defaults.
type Options struct {
	// Delay is how long a line that has not ended is held, from the first of its bytes not
	// yet relayed, whatever it holds (DefaultDelay when 0).
	Delay time.Duration
	// MaxLine is the length, in cells (one a character), past which a line that has not
	// ended is relayed as if its delay had passed (DefaultMaxLine when 0; never less than
	// the longest secret). It also bounds a Writer's memory: two lines of MaxLine cells,
	// each with twice the longest secret more, at 16 bytes a cell, and the text of one at 4
	// bytes a character at most (a little over 1 MiB at the default).
	MaxLine int
	// AfterFunc starts a timer that calls f after d, on a goroutine of its own
	// (time.AfterFunc when nil). Tests pass a fake clock.
	AfterFunc func(d time.Duration, f func()) Timer
}

// Writer relays the log of a build that received secrets, rendered and masked (see New).
// Safe for concurrent use: the flush at the end of a delay runs on a timer's goroutine and
// takes the Writer's lock, as Write and Close do.
type Writer struct {
	mu        sync.Mutex
	w         io.Writer
	delay     time.Duration
	maxLine   int // cells relayed at a cut, at least
	hold      int // cells kept after a cut, and kept before its new home: the longest secret less one
	afterFunc func(time.Duration, func()) Timer
	match     *matcher

	s     screen
	sent  []cell // the cells of the current line relayed since it last started on the output
	spans []span // the matches in the current line, reused
	out   []byte // output not yet written
	shown style  // the style the output is in

	wrapped   bool // cells of the current line were cut off (MaxLine): it cannot be redrawn whole
	unrelayed bool // bytes came since the last relay of the whole line
	timer     Timer
	gen       uint64 // counts timers started and stopped, so that a stale one does nothing
	closed    bool
	err       error // the first error of w: every later call returns it
}

// New returns a Writer that renders a build's log and relays it to w, with values masked
// (the secrets the build received and its repository's).
//
// When a line ends ('\n'), it is relayed as rendered: its text, each match of a secret
// replaced by secrets.Mask in the style of the match's first cell, the shortest SGR sequence
// wherever the style changes, a reset if it ends styled, then '\n'. A line of printable ASCII
// with no sequences in it is relayed byte for byte; "\r\n" becomes '\n'.
//
// A line that has not ended is held, whatever it holds, until a '\n' or until Delay after
// the first of its bytes not yet relayed; then what is rendered of it is relayed, its
// complete matches masked. When the line goes on, if the cells relayed are unchanged, only
// the new ones follow; if any changed (overwritten after '\r' or a cursor movement, erased,
// or now part of a complete match), "\r\x1b[K" and the whole line follow, so that a terminal
// ends up showing the masked line, and the live page, which shows a lone '\r' as a line end,
// shows it on a line of its own.
//
// A line that outgrows MaxLine cells by twice the longest secret is cut: its first MaxLine
// cells (more if a match straddles the cut) are relayed as if its delay had passed, and
// are final; the rest stay in the line, so that a secret written across the cut is found
// whole, and so do the last cells before the cut, unwritable, so that a secret that the
// rest of the line completes later is found too, and masked from the cut on. '\r' and
// cursor movements then go back to the cut at most, and a later change to the rest of the
// line is relayed after a '\n' instead of a '\r', since the cut part cannot be redrawn.
//
// Insertions and deletions of characters (CSI @, CSI P), and erasures that stop short of the
// line's end (CSI X, CSI 1 K), move or blank cells that no byte wrote, up to the whole line
// each. Each byte of the log earns them 64 cells, saved up to a full line's worth, and one
// that would cost more than is saved is dropped, so that a Writer's work stays linear in its
// input whatever its lines: a sequence of three bytes pays for editing a line of 192
// columns, wider than the rows a terminal edits, and savings pay for more. Which edits are
// dropped depends on the bytes and the columns, never on the text.
//
// What is relayed, and when, depends on the bytes of the log, on when they arrive and on the
// complete matches of secrets in it, never on whether some text is the start of a secret:
// a build cannot learn a secret piece by piece from its own log. What a build can still show
// of a secret:
//   - a secret written in two pieces with a pause of Delay or more between them: the first
//     piece is relayed before the second arrives. The line is then redrawn masked, but the
//     piece stays in what was relayed before (on the page, the line above). Likewise, in a
//     line longer than MaxLine, the piece before the cut of a secret that later rewrites
//     of the line complete across it.
//   - a line shorter than secrets.MinLength of a value of several lines, as secrets.Masker
//     does; a value split by '\n' is two lines, and is masked line by line only.
//   - what a viewer renders otherwise than this model: characters of two columns or none
//     (a zero-width space inside a secret), bidirectional text, or a terminal narrower than
//     the line, where '\r' goes to the start of the last row only.
//   - that a whole value was written, since its mask shows, as any masking shows it.
//
// These builds are trusted code that holds the secrets: the point is that nobody reading
// the log gets an oracle, and that no secret leaks by accident.
//
// w is written under the Writer's lock, from Write, from Close and from the timer of a
// delay, never after Close has returned. It need not be safe for concurrent use, but must
// accept writes from a goroutine other than the one calling Write (logfan's tape has its own
// mutex).
func New(w io.Writer, values []string, opts Options) *Writer {
	if opts.Delay <= 0 {
		opts.Delay = DefaultDelay
	}
	if opts.MaxLine <= 0 {
		opts.MaxLine = DefaultMaxLine
	}
	if opts.AfterFunc == nil {
		opts.AfterFunc = func(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }
	}
	x := &Writer{w: w, delay: opts.Delay, afterFunc: opts.AfterFunc, match: newMatcher(values)}
	x.hold = max(0, x.match.longest-1)
	// A cut must leave room after it: at least a held part's worth more than it keeps.
	x.maxLine = max(opts.MaxLine, x.hold+1)
	x.s = screen{width: x.maxLine + 2*x.hold, endLine: x.endLine, full: x.cut, earn: editCredit, lazy: true}
	return x
}

// Write renders p, relays the lines it ends, and holds the rest. It returns w's first
// error, if any, also one met by the flush of a delay.
func (x *Writer) Write(p []byte) (int, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	switch {
	case x.closed:
		return 0, ErrClosed
	case x.err != nil:
		return 0, x.err
	case len(p) == 0:
		return 0, nil
	}
	n := 0
	for n < len(p) && x.err == nil {
		k := min(len(p)-n, writeChunk)
		x.s.feed(p[n : n+k])
		n += k
		x.flush()
	}
	if x.err != nil {
		return n, x.err
	}
	// Every '\n' ends a line, whatever state the parser is in; bytes after the last one
	// are held, and the delay starts with the first of them.
	if p[len(p)-1] != '\n' {
		x.unrelayed = true
		if x.timer == nil {
			x.startTimer()
		}
	}
	return len(p), nil
}

// Close relays what is held, as if its delay had passed, and a reset if the output is
// styled, without ending the line: the stream has ended. Later writes fail with ErrClosed.
func (x *Writer) Close() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.closed {
		return x.err
	}
	x.closed = true
	x.stopTimer()
	if x.err == nil {
		x.s.finish()
		x.relay(true)
		x.reset()
		x.flush()
	}
	return x.err
}

func (x *Writer) startTimer() {
	x.gen++
	gen := x.gen
	x.timer = x.afterFunc(x.delay, func() { x.expire(gen) })
}

func (x *Writer) stopTimer() {
	if x.timer != nil {
		x.timer.Stop()
		x.timer = nil
		x.gen++ // if it fires anyway, it finds itself stale
	}
}

// expire is the end of the delay of the timer numbered gen.
func (x *Writer) expire(gen uint64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if gen != x.gen || x.closed || x.err != nil {
		return
	}
	x.timer = nil
	if x.unrelayed {
		x.unrelayed = false
		x.relay(false)
		x.flush()
	}
}

// endLine relays the line at its '\n' and starts the next.
func (x *Writer) endLine() {
	x.relay(true)
	x.reset()
	x.out = append(x.out, '\n')
	x.s.clear()
	x.sent = x.sent[:0]
	if cap(x.s.cells) > keepCells {
		x.s.cells, x.sent = nil, nil // a long line: do not keep its memory for the next ones
	}
	if cap(x.s.text) > 4*keepCells {
		x.s.text = nil
	}
	x.wrapped = false
	x.unrelayed = false
	x.stopTimer()
	if len(x.out) >= flushAt {
		x.flush()
	}
}

// relay brings the output up to the line as it renders now, masked: the new cells when
// the relayed ones are unchanged, else the whole line again. When the line is final (it
// ends, or the stream does), nothing of it relayed yet, and all of it text, its bytes are
// relayed (relayText); otherwise its cells.
func (x *Writer) relay(final bool) {
	if final && len(x.s.cells) == 0 && len(x.sent) == 0 {
		x.relayText()
		return
	}
	x.s.materialize()
	x.s.work += len(x.s.cells) + len(x.sent)
	x.spans = x.match.find(x.s.cells, x.spans[:0])
	o := newMasked(x.s.cells, x.spans, x.s.home)
	for _, c := range x.sent {
		if got, ok := o.next(); !ok || got != c {
			x.redraw()
			o = newMasked(x.s.cells, x.spans, x.s.home)
			break
		}
	}
	for c, ok := o.next(); ok; c, ok = o.next() {
		x.emit(c)
		x.sent = append(x.sent, c)
	}
}

// relayText relays the screen's text, masked, as relay would its cells: the text between
// matches as it is, each match as the mask in the style of its first character, the SGR
// sequence of a style wherever it changes. It does not record what it relayed in sent.
func (x *Writer) relayText() {
	s := &x.s
	s.work += s.textN
	x.spans = x.match.findText(s.text, x.spans[:0])
	at, run := 0, 0
	for _, m := range x.spans {
		run = x.emitText(at, m.start, run)
		for s.runs[run].end <= m.start {
			run++
		}
		x.setStyle(s.runs[run].st)
		x.out = append(x.out, maskText...)
		at = m.end
	}
	x.emitText(at, len(s.text), run)
}

// emitText appends the bytes [from, to) of the screen's text to the output, in their
// styles. run is the first run that may hold from; it returns the run that holds to.
func (x *Writer) emitText(from, to, run int) int {
	for runs := x.s.runs; from < to; run++ {
		if end := runs[run].end; end > from {
			end = min(end, to)
			x.setStyle(runs[run].st)
			x.out = append(x.out, x.s.text[from:end]...)
			from = end
			if end < runs[run].end {
				break
			}
		}
	}
	return run
}

// cut makes room at the end of a full line (see New): its first MaxLine cells from home,
// and the rest of a match that starts among them, are relayed as final. Of those, the last
// ones that no match covers (as many as the longest secret, less one) stay before the new
// home, so that a secret that the rest of the line completes later, across the cut, is found
// and masked from the cut on.
func (x *Writer) cut() {
	x.s.materialize()
	for len(x.s.cells) < x.s.cursor {
		x.s.cells = append(x.s.cells, blank) // the columns the cursor skipped are relayed too
	}
	cells, home := x.s.cells, x.s.home
	x.s.work += len(cells) + len(x.sent)
	x.spans = x.match.find(cells, x.spans[:0])
	keep, k, covered := home+x.maxLine, 0, 0
	for ; k < len(x.spans) && x.spans[k].start < keep; k++ {
		keep = max(keep, x.spans[k].end) // within the line: a secret is no longer than hold
		covered = x.spans[k].end
	}
	o := newMasked(cells[:keep], x.spans[:k], home)
	n := 0 // the relayed cells that the cut ones begin with
	for ; n < len(x.sent); n++ {
		c, ok := o.next()
		if !ok {
			break
		}
		if c != x.sent[n] {
			x.redraw()
			o, n = newMasked(cells[:keep], x.spans[:k], home), 0
			break
		}
	}
	if n < len(x.sent) {
		// The output holds the cut cells and more: the more is of the cells that stay.
		x.sent = x.sent[:copy(x.sent, x.sent[n:])]
	} else {
		for c, ok := o.next(); ok; c, ok = o.next() {
			x.emit(c)
		}
		x.sent = x.sent[:0]
	}
	from := max(keep-x.hold, covered) // the first cell kept; maxLine > hold makes it > 0
	x.s.cells = cells[:copy(cells, cells[from:])]
	x.s.work += len(x.s.cells)
	x.s.home = keep - from
	x.s.cursor -= from
	x.s.saved = max(x.s.home, x.s.saved-from)
	x.wrapped = true
	if len(x.out) >= flushAt {
		x.flush()
	}
}

// redraw starts the line again on the output: at its start and erased, or, when the line
// was cut, on a new line.
func (x *Writer) redraw() {
	x.reset()
	if x.wrapped {
		x.out = append(x.out, '\n')
	} else {
		x.out = append(x.out, "\r\x1b[K"...)
	}
	x.sent = x.sent[:0]
}

// emit appends one cell to the output, with the SGR sequence of its style if it changes.
func (x *Writer) emit(c cell) {
	x.setStyle(c.st)
	if c.r < utf8.RuneSelf {
		x.out = append(x.out, byte(c.r))
	} else {
		x.out = utf8.AppendRune(x.out, c.r)
	}
}

// setStyle puts the output in style st, with an SGR sequence if it changes.
func (x *Writer) setStyle(st style) {
	if st != x.shown {
		x.out = appendSGR(x.out, x.shown, st)
		x.shown = st
	}
}

// reset returns the output to the default style.
func (x *Writer) reset() {
	if x.shown != (style{}) {
		x.out = append(x.out, "\x1b[0m"...)
		x.shown = style{}
	}
}

// flush writes the output held.
func (x *Writer) flush() {
	if len(x.out) == 0 {
		return
	}
	if x.err == nil {
		if _, err := x.w.Write(x.out); err != nil {
			x.err = err
		}
	}
	x.out = x.out[:0]
	if cap(x.out) > keepOut {
		x.out = nil
	}
}
