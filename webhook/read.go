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
// many slow or huge unauthenticated bodies cannot take the bot's memory. A body is read in
// chunks from a pool, each charged before it is filled: a client is charged for what it has
// sent (to the next 64 KiB), not for what it announces, and reading makes no garbage for
// the collector to catch up with. A complete body is joined into one slice, charged too.
// Past the budget the delivery is refused (errBusy). What a body holds is given back by
// release, which the caller defers (also on error).
func (in *Intake) read(w http.ResponseWriter, r *http.Request, max int64) (body []byte, release func(), err error) {
	var held int64
	var chunks [][]byte
	free := func() {
		for _, c := range chunks {
			chunkPool.Put(c[:chunkSize])
		}
		chunks = nil
	}
	release = func() {
		free()
		in.budget.release(held)
	}
	if r.ContentLength > max {
		return nil, release, fmt.Errorf("%w: %d bytes announced, at most %d read", errTooLarge, r.ContentLength, max)
	}
	busy := fmt.Errorf("%w: the read budget of %d bytes is taken", errBusy, in.budget.max)
	lr := http.MaxBytesReader(w, r.Body, max)
	var total int64
	for {
		if len(chunks) == 0 || len(chunks[len(chunks)-1]) == chunkSize {
			if !in.budget.acquire(chunkSize) {
				return nil, release, busy
			}
			held += chunkSize
			chunks = append(chunks, chunkPool.Get().([]byte)[:0])
		}
		c := chunks[len(chunks)-1]
		n, err := lr.Read(c[len(c):chunkSize])
		chunks[len(chunks)-1] = c[:len(c)+n]
		total += int64(n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				return nil, release, fmt.Errorf("%w: more than %d bytes", errTooLarge, max)
			}
			return nil, release, fmt.Errorf("%w: %v", errUnreadable, err)
		}
	}
	if !in.budget.acquire(total) {
		return nil, release, busy
	}
	held += total
	body = make([]byte, 0, total)
	for _, c := range chunks {
		body = append(body, c...)
	}
	free()
	return body, release, nil
}

// chunkSize is the unit a body is read and charged in.
const chunkSize = 64 << 10

var chunkPool = sync.Pool{New: func() any { return make([]byte, chunkSize) }}

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
