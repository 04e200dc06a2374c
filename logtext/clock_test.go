package logtext

import (
	"sync"
	"time"
)

// fakeClock is time for tests: timers fire only when Advance passes their time, on the
// goroutine that calls Advance, in the order of their times.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Duration // since the clock was made
	timers []*fakeTimer
}

type fakeTimer struct {
	clock *fakeClock
	at    time.Duration
	f     func()
	done  bool // fired or stopped
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{clock: c, at: c.now + d, f: f}
	c.timers = append(c.timers, t)
	return t
}

func (t *fakeTimer) Stop() bool {
	t.clock.mu.Lock()
	defer t.clock.mu.Unlock()
	stopped := !t.done
	t.done = true
	return stopped
}

// Advance moves the clock d on, firing the timers due meanwhile.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	end := c.now + d
	for {
		var next *fakeTimer
		for _, t := range c.timers {
			if !t.done && t.at <= end && (next == nil || t.at < next.at) {
				next = t
			}
		}
		if next == nil {
			break
		}
		next.done = true
		c.now = next.at
		c.mu.Unlock()
		next.f()
		c.mu.Lock()
	}
	c.now = end
	c.mu.Unlock()
}

func (c *fakeClock) Now() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// tape records what a Writer relays, and when by its clock.
type tape struct {
	clock  *fakeClock
	writes []relayed
}

type relayed struct {
	at   time.Duration
	data string
}

func (t *tape) Write(p []byte) (int, error) {
	t.writes = append(t.writes, relayed{t.clock.Now(), string(p)})
	return len(p), nil
}

func (t *tape) String() string {
	var s string
	for _, w := range t.writes {
		s += w.data
	}
	return s
}
