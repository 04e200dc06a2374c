package webhook

import (
	"context"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/albatros-ci/albatros/forge"
)

// DefaultQueueBytes bounds what the answered deliveries waiting their turn hold, all
// together: past it, a delivery is answered 503 before it is accepted.
const DefaultQueueBytes = 64 << 20

// waitingOverhead is what a waiting delivery holds besides the strings of its event: its
// job, its closure and logger, and the registry entry it was read with (an installation's
// is made for each delivery). bench/queue measures it.
const waitingOverhead = 2 << 10

// job is one answered delivery's work, waiting its turn or being done.
type job struct {
	log  *slog.Logger
	kind forge.Kind
	size int64
	work func(context.Context) error
}

// queue holds the answered deliveries' work, in order, MaxHandling done at a time, within a
// bound on the bytes the waiting ones hold. What waits is the delivery once verified and
// parsed (its event, its entry, its options), never its body: tens of thousands fit in
// the default bound.
type queue struct {
	max     int64
	timeout time.Duration

	mu       sync.Mutex
	jobs     []job // waiting, oldest first, from head
	head     int
	bytes    int64 // of the waiting and running jobs
	running  int
	stopping bool       // no more deliveries taken (shutdown)
	closed   bool       // no more jobs started either
	idle     *sync.Cond // signalled when a job ends
	refused  int64      // deliveries refused for the bound, since start
	accepted int64
}

func newQueue(max int64, timeout time.Duration) *queue {
	q := &queue{max: max, timeout: timeout}
	q.idle = sync.NewCond(&q.mu)
	return q
}

// size is what a delivery of ev holds while it waits.
func size(ev forge.Event) int64 {
	n := waitingOverhead + len(ev.Delivery) + len(ev.Commit) + len(ev.Branch) + len(ev.Tag) + len(ev.Sender) + repoSize(ev.Repo)
	if pr := ev.PullRequest; pr != nil {
		n += 128 + repoSize(pr.HeadRepo) + len(pr.HeadBranch) + len(pr.BaseBranch) + len(pr.Author) + len(pr.Action)
	}
	if c := ev.Comment; c != nil {
		n += 64 + len(c.Body) + len(c.Author)
	}
	return int64(n)
}

func repoSize(r forge.Repo) int {
	return len(r.CloneURL) + len(r.FullName) + len(r.Owner) + len(r.Name) + len(r.HTMLURL)
}

// push queues j; false when the bound (or shutdown) refuses it, with nothing queued.
func (q *queue) push(j job) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.stopping || q.closed || q.bytes+j.size > q.max {
		q.refused++
		return false
	}
	q.accepted++
	q.bytes += j.size
	q.jobs = append(q.jobs, j)
	if q.running < MaxHandling {
		q.running++
		go q.work()
	}
	return true
}

// work does the queued jobs, one after the other, until none is left (or shutdown).
func (q *queue) work() {
	for {
		q.mu.Lock()
		if q.closed || q.head == len(q.jobs) {
			q.running--
			q.idle.Broadcast()
			q.mu.Unlock()
			return
		}
		j := q.jobs[q.head]
		q.jobs[q.head] = job{}
		q.head++
		if q.head > 1024 && q.head*2 > len(q.jobs) {
			q.jobs = append([]job(nil), q.jobs[q.head:]...) // drop the done ones' room
			q.head = 0
		}
		q.mu.Unlock()
		q.run(j)
		q.mu.Lock()
		q.bytes -= j.size
		q.idle.Broadcast()
		q.mu.Unlock()
	}
}

// run does one job on a context of its own: the delivery is answered, and its work must
// not end with the request.
func (q *queue) run(j job) {
	defer func() {
		if p := recover(); p != nil {
			j.log.Error("panic while handling a delivery", "panic", p, "stack", string(debug.Stack()))
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), q.timeout)
	defer cancel()
	if err := j.work(ctx); err != nil {
		j.log.Error("event not fully handled", "err", err)
	}
}

// wait blocks until every queued job is done.
func (q *queue) wait() {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.running > 0 || q.head < len(q.jobs) {
		q.idle.Wait()
	}
}

// drain stops taking deliveries, lets the queued ones be done until ctx ends, and then
// drops those still waiting; it returns how many it dropped, by event kind, once the
// running ones are done.
func (q *queue) drain(ctx context.Context) map[forge.Kind]int {
	q.mu.Lock()
	q.stopping = true
	q.mu.Unlock()
	done := make(chan struct{})
	go func() {
		q.wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	left := map[forge.Kind]int{}
	for _, j := range q.jobs[q.head:] {
		left[j.kind]++
		q.bytes -= j.size
	}
	q.jobs, q.head = nil, 0
	for q.running > 0 {
		q.idle.Wait()
	}
	return left
}

// stats are the queue's counts: deliveries waiting, bytes held, accepted and refused.
func (q *queue) stats() (waiting int, bytes, accepted, refused int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.jobs) - q.head, q.bytes, q.accepted, q.refused
}
