package webhook

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/albatros-ci/albatros/forge"
	"github.com/albatros-ci/albatros/pipeline"
)

// DefaultQueueBytes bounds what the answered deliveries waiting their turn (or being
// handled) hold, all together: past it, a delivery is answered 503 before it is accepted.
const DefaultQueueBytes = 96 << 20

// waitingOverhead is what a waiting delivery holds besides the strings of its event: its
// job and logger, and the heap its lookup of the registry leaves fragmented (bench/queue
// measures 1.4 KiB in all with an empty entry, 3.1 KiB with a 20 KiB one). The entry itself
// is not held: it is read again when the delivery's turn comes.
const waitingOverhead = 4 << 10

// job is one answered delivery, waiting its turn or being handled: its event and options
// as the intake verified them, without closure (the event is held once).
type job struct {
	log  *slog.Logger
	size int64
	// at is when the delivery was accepted.
	at   time.Time
	ev   forge.Event
	opts pipeline.Options
	// cred is a digest of what authenticated the delivery (see Intake.credential), by
	// the token's endpoint (byToken) or a signature's.
	cred    [32]byte
	byToken bool
	// byApp: signed with the bot's GitHub App's webhook secret (cred is its digest).
	byApp bool
	// told, when set, is why a refused delivery was refused (Nomad was down): the handler
	// is told, to say so in the commit's statuses. It is not counted as accepted.
	told error
}

// dropped says what j's delivery was, for the log of a bot that stopped before its turn.
func (j *job) dropped() Dropped {
	what := "at " + j.ev.Commit
	if j.ev.Commit == "" && j.ev.PullRequest != nil {
		what = fmt.Sprintf("#%d", j.ev.PullRequest.Number)
	}
	return Dropped{Kind: j.ev.Kind, Repo: j.ev.Repo.FullName, Delivery: j.ev.Delivery, What: what}
}

// Dropped is an answered delivery that a stopping bot did not handle, or did not finish
// (Cancelled: its build may have been dispatched, its pending status not written).
type Dropped struct {
	Kind                 forge.Kind
	Repo, Delivery, What string
	Cancelled            bool
}

// queue holds the answered deliveries' work, in order, MaxHandling done at a time, within a
// bound on the bytes they hold. What waits is the delivery once verified and parsed (its
// event and options), never its body: tens of thousands fit in the default bound.
type queue struct {
	max     int64
	timeout time.Duration
	// handle does a job once its turn comes.
	handle func(context.Context, *job) error
	// base is the context of every job: cancelled when a drain gives up on them.
	base   context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	jobs     []job // waiting, oldest first, from head
	head     int
	bytes    int64 // of the waiting and running jobs
	running  map[*job]struct{}
	workers  int
	stopping bool       // no more deliveries taken (shutdown)
	closed   bool       // no more jobs started either
	idle     *sync.Cond // signalled when a job ends
	counts   QueueCounts
}

// QueueCounts are the deliveries the queue took and refused since the bot started.
type QueueCounts struct {
	// Accepted were answered 202 and queued; Refused answered 503 for the bound; Stopping
	// answered 503 because the bot was stopping.
	Accepted, Refused, Stopping int64
}

func newQueue(max int64, timeout time.Duration, handle func(context.Context, *job) error) *queue {
	q := &queue{max: max, timeout: timeout, handle: handle, running: map[*job]struct{}{}}
	q.base, q.cancel = context.WithCancel(context.Background())
	q.idle = sync.NewCond(&q.mu)
	return q
}

// size is what a delivery of ev holds while it waits: its event's strings, and the
// overhead of its job.
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
	switch {
	case q.stopping || q.closed:
		if j.told == nil {
			q.counts.Stopping++
		}
		return false
	case q.bytes+j.size > q.max:
		if j.told == nil {
			q.counts.Refused++
		}
		return false
	}
	if j.told == nil {
		q.counts.Accepted++
	}
	j.at = time.Now()
	q.bytes += j.size
	q.jobs = append(q.jobs, j)
	if q.workers < MaxHandling {
		q.workers++
		go q.work()
	}
	return true
}

// work does the queued jobs, one after the other, until none is left (or shutdown).
func (q *queue) work() {
	for {
		q.mu.Lock()
		if q.closed || q.head == len(q.jobs) {
			q.workers--
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
		q.running[&j] = struct{}{}
		q.mu.Unlock()
		q.run(j)
		q.mu.Lock()
		delete(q.running, &j)
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
	ctx, cancel := context.WithTimeout(q.base, q.timeout)
	defer cancel()
	if err := q.handle(ctx, &j); err != nil {
		j.log.Error("event not fully handled", "err", err)
	}
}

// wait blocks until every queued job is done.
func (q *queue) wait() {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.workers > 0 || q.head < len(q.jobs) {
		q.idle.Wait()
	}
}

// settled is a time before which every accepted delivery has been handled: now when none
// waits or is being handled, else when the oldest of those was accepted.
func (q *queue) settled() time.Time {
	q.mu.Lock()
	defer q.mu.Unlock()
	t := time.Now()
	if q.head < len(q.jobs) && q.jobs[q.head].at.Before(t) {
		t = q.jobs[q.head].at
	}
	for j := range q.running {
		if j.at.Before(t) {
			t = j.at
		}
	}
	return t
}

// drain stops taking deliveries, lets the queued ones be done until ctx ends, and then
// drops those still waiting and cancels those being done; it returns both (the cancelled
// ones marked) once the cancelled ones have returned.
func (q *queue) drain(ctx context.Context) []Dropped {
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
	var left []Dropped
	for _, j := range q.jobs[q.head:] {
		if j.told == nil {
			left = append(left, j.dropped())
		}
		q.bytes -= j.size
	}
	q.jobs, q.head = nil, 0
	for j := range q.running {
		if j.told == nil {
			d := j.dropped()
			d.Cancelled = true
			left = append(left, d)
		}
	}
	q.cancel() // those being done end now (each records what it dispatched first)
	for q.workers > 0 {
		q.idle.Wait()
	}
	return left
}

// stats are the queue's counts: deliveries waiting, bytes held, and since the start.
func (q *queue) stats() (waiting int, bytes int64, counts QueueCounts) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.jobs) - q.head, q.bytes, q.counts
}
