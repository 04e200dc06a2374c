package github

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/albatros-ci/albatros/forge"
)

var _ forge.Limits = (*Client)(nil)

// rate is what GitHub's answers say of a client's budget: X-RateLimit-Remaining and
// X-RateLimit-Reset, on every answer, and none left on a 403 or 429 that says the limit
// is reached.
type rate struct {
	mu        sync.Mutex
	known     bool
	remaining int
	reset     time.Time
}

// watch reads the rate-limit headers of every answer that comes through next.
func (r *rate) watch(next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return roundTripper(func(req *http.Request) (*http.Response, error) {
		resp, err := next.RoundTrip(req)
		if err == nil {
			r.note(resp)
		}
		return resp, err
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

func (r *rate) note(resp *http.Response) {
	rem, err := strconv.Atoi(resp.Header.Get("X-RateLimit-Remaining"))
	if err != nil {
		return
	}
	reset, _ := strconv.ParseInt(resp.Header.Get("X-RateLimit-Reset"), 10, 64)
	if resp.StatusCode == http.StatusTooManyRequests || (resp.StatusCode == http.StatusForbidden && rem == 0) {
		rem = 0
	}
	r.mu.Lock()
	r.known, r.remaining, r.reset = true, rem, time.Unix(reset, 0)
	r.mu.Unlock()
}

// Budget returns the requests GitHub last said the client has left, and when they reset.
func (c *Client) Budget() (int, time.Time, bool) {
	if c.rate == nil {
		return 0, time.Time{}, false
	}
	c.rate.mu.Lock()
	defer c.rate.mu.Unlock()
	return c.rate.remaining, c.rate.reset, c.rate.known
}
