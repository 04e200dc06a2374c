package logtext

// editCredit is how many cells the edits in the middle of a line may move or blank per
// byte read, on average (see screen.earn): a three-byte CSI @ or CSI P pays for editing a
// line of 192 columns, wider than the rows these sequences edit on a terminal, and rendering
// a byte of plain text costs about as much as moving 64 cells does.
const editCredit = 64

// erase erases from the cursor to the end of the line (0), from its start to the cursor
// (1), or all of it (2, 3). Erased cells at the end of the line are dropped rather than
// blanked: they show nothing either way, and the relayed line has no trailing spaces that
// were never written.
//
// The edits read the line's length, not its cells, until they are sure to change them: the
// text is made cells (materialize) only for an edit that is not dropped.
func (s *screen) erase(mode int) {
	switch mode {
	case 0:
		if s.cursor < s.end() {
			s.truncate(s.cursor)
		}
	case 1:
		switch {
		case s.cursor+1 >= s.end():
			s.truncate(s.home)
		case s.afford(s.cursor + 1 - s.home):
			s.materialize()
			s.fill(s.cells[s.home : s.cursor+1])
		}
	case 2, 3:
		s.truncate(s.home)
	}
}

// eraseChars blanks n cells from the cursor on.
func (s *screen) eraseChars(n int) {
	switch {
	case s.cursor >= s.end():
	case s.cursor+n >= s.end():
		s.truncate(s.cursor)
	case s.afford(n):
		s.materialize()
		s.fill(s.cells[s.cursor : s.cursor+n])
	}
}

// deleteChars deletes n cells at the cursor; the cells after them move left.
func (s *screen) deleteChars(n int) {
	if s.cursor >= s.end() {
		return
	}
	n = min(n, s.end()-s.cursor)
	moved := s.end() - s.cursor - n
	if !s.afford(moved) {
		return
	}
	s.materialize()
	s.cells = append(s.cells[:s.cursor], s.cells[s.cursor+n:]...)
	s.work += moved
}

// insertChars inserts n blanks at the cursor; the cells after them move right, and those
// pushed past the last column are lost.
func (s *screen) insertChars(n int) {
	if s.cursor >= s.end() {
		return
	}
	n = min(n, maxMove, s.width-s.cursor)
	old, end := s.end(), min(s.end()+n, s.width)
	if !s.afford(end - s.cursor) {
		return
	}
	s.materialize()
	for len(s.cells) < end {
		s.cells = append(s.cells, blank)
	}
	s.work += end - old + copy(s.cells[s.cursor+n:], s.cells[s.cursor:old])
	s.fill(s.cells[s.cursor : s.cursor+n])
}

// truncate ends the line at column n, at most its length.
func (s *screen) truncate(n int) {
	if n > len(s.cells) {
		s.materialize() // n is in the text
	}
	s.cells = s.cells[:n]
	s.text, s.runs, s.textN = s.text[:0], s.runs[:0], 0
}

// afford reports whether an edit may move or blank m cells, and if so takes them from what
// the bytes read so far have earned (see screen.earn). An edit it refuses is dropped.
func (s *screen) afford(m int) bool {
	if s.earn == 0 {
		return true
	}
	s.credit = min(s.credit+s.earn*(s.read-s.paid), s.earn*s.width)
	s.paid = s.read
	if m > s.credit {
		return false
	}
	s.credit -= m
	return true
}

// fill blanks cells, copying blanks already written: a copy moves cells faster than a
// loop stores them.
func (s *screen) fill(cells []cell) {
	if len(cells) > 0 {
		cells[0] = blank
	}
	for n := 1; n < len(cells); n *= 2 {
		copy(cells[n:], cells[:n])
	}
	s.work += len(cells)
}
