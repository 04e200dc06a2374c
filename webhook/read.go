package webhook

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
)

// read reads a delivery's body, at most max bytes, within the intake's read budget: the
// bytes of every body being read before authentication count against one bound, so that
// many slow or huge unauthenticated bodies cannot take the bot's memory. The budget a body
// holds is given back by release, which the caller defers (also on error).
func (in *Intake) read(w http.ResponseWriter, r *http.Request, max int64) (body []byte, release func(), err error) {
	release = func() {}
	if r.ContentLength > max {
		return nil, release, fmt.Errorf("%w: %d bytes announced, at most %d read", errTooLarge, r.ContentLength, max)
	}
	// Forges send Content-Length; a body without one may take the endpoint's whole maximum.
	size := r.ContentLength
	if size < 0 {
		size = max
	}
	if !in.budget.acquire(size) {
		return nil, release, fmt.Errorf("%w: %d bytes asked, the read budget of %d bytes is taken", errBusy, size, in.budget.max)
	}
	release = func() { in.budget.release(size) }
	// size+1, so that a body longer than announced (or than max) shows as too large.
	buf := make([]byte, 0, size+1)
	lr := http.MaxBytesReader(w, r.Body, size)
	for {
		n, err := lr.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			return buf, release, nil
		}
		if err != nil {
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				return nil, release, fmt.Errorf("%w: more than %d bytes", errTooLarge, size)
			}
			return nil, release, fmt.Errorf("%w: %v", errUnreadable, err)
		}
	}
}

// budget is a count of bytes that may be taken without waiting.
type budget struct {
	mu   sync.Mutex
	max  int64
	used int64
}

func (b *budget) acquire(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n > b.max {
		return false
	}
	b.used += n
	return true
}

func (b *budget) release(n int64) {
	b.mu.Lock()
	b.used -= n
	b.mu.Unlock()
}
