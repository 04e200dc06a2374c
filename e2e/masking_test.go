package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"code.gitea.io/sdk/gitea"

	"github.com/albatros-ci/albatros/testenv"
)

// arrivals reads url to its end and returns when each of markers first arrived, from the
// request's start.
func arrivals(t *testing.T, url string, markers ...string) (map[string]time.Duration, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
	got := map[string]time.Duration{}
	var body strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		body.Write(buf[:n])
		for _, m := range markers {
			if _, seen := got[m]; !seen && strings.Contains(body.String(), m) {
				got[m] = time.Since(start)
			}
		}
		if err == io.EOF {
			return got, body.String()
		}
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
	}
}

// plainURL is the /build URL of the build a status links to, on the bot that links to it.
func plainURL(t *testing.T, st *gitea.Status) string {
	t.Helper()
	base, _, _ := strings.Cut(st.TargetURL, "/logs/")
	ns, job := jobFromLink(t, st.TargetURL)
	return base + "/build?namespace=" + ns + "&job=" + job
}

// A build that got no secrets prints the start of the repository's secret, then, seconds
// later, a wrong guess: both the plain log and the live page relay the start at once. Before
// the fix, its log was masked with the repository's secrets, and the masker held back a
// start of one until the next write: the start arrived together with the guess, and a
// fork's author read the secret character by character.
func TestUntrustedBuildIsNoOracle(t *testing.T) {
	t.Parallel() // after the tests that stop shared servers; it shares none of its own
	const secret = "oracle-s3cr3t-value-4711"
	e := secretEntry() // trusts nobody: the push runs without the secrets
	e["secrets"] = map[string]string{"DEPLOY_TOKEN": secret}
	p := newProject(t, e, "/webhook/gitea")
	sha := p.push("main", script("sleep 2\nprintf 'X:"+secret[:8]+"'\nsleep 6\necho\necho 'Y:wrong guess'\n"))
	st := p.waitStatus(sha, "albatros/default", gitea.StatusPending)
	// Both read at once, while the build runs.
	views := map[string]string{"plain log": plainURL(t, st), "live page": st.TargetURL}
	got := map[string]map[string]time.Duration{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for name, url := range views {
		wg.Go(func() {
			a, _ := arrivals(t, url, "X:"+secret[:8], "Y:wrong")
			mu.Lock()
			got[name] = a
			mu.Unlock()
		})
	}
	wg.Wait()
	for name := range views {
		x, y := got[name]["X:"+secret[:8]], got[name]["Y:wrong"]
		if x == 0 || y == 0 || y-x < 3*time.Second {
			t.Errorf("%s: the secret's start arrived at %v, the wrong guess at %v: want the start relayed at once, seconds before", name, x, y)
		}
	}
}

// A build that got the secrets: what is relayed of a line not yet ended does not depend on
// whether it is the start of a secret. Each partial line shows after the same fixed delay,
// the secret's start as well as anything else. Before the fix, the start of the secret was
// held until the line's end, seconds later, and the other at once.
func TestTrustedBuildHoldsEveryLineAlike(t *testing.T) {
	t.Parallel() // after the tests that stop shared servers; it shares none of its own
	p := newProject(t, nil, "")
	e := withHook(secretEntry(p.owner.Name), p)
	const secret = "alike-s3cr3t-value-0815"
	e["secrets"] = map[string]string{"DEPLOY_TOKEN": secret}
	p.register(e)
	p.proxy = newRecorder(t, bot(t).URL+"/webhook/gitea")
	p.g.CreateWebhook(t, p.owner, p.repo, p.proxy.URL(), p.secret)
	sha := p.push("main", script("sleep 2\nprintf 'A:"+secret[:8]+"'\nsleep 4\necho\nprintf 'B:notasecret'\nsleep 4\necho\necho end\n"))
	st := p.waitStatus(sha, "albatros/default", gitea.StatusPending)
	got, body := arrivals(t, plainURL(t, st), "A:"+secret[:8], "B:notasecret", "end")
	a, b := got["A:"+secret[:8]], got["B:notasecret"]
	if a == 0 || b == 0 {
		t.Fatalf("the partial lines never arrived (A %v, B %v):\n%s", a, b, body)
	}
	// Both were written 4 s apart and both are held alike: they arrive 4 s apart.
	if d := b - a; d < 3*time.Second || d > 5*time.Second {
		t.Errorf("the secret's start arrived at %v, the other partial line at %v (%v apart): want both after the same delay, 4 s apart", a, b, d)
	}
	if strings.Contains(body, secret) {
		t.Errorf("the relayed log shows the secret:\n%s", body)
	}
}

// 150 followers of one running build's plain log (/build) are served from one follow of it
// in Nomad, each costing the bot about what a viewer of its live page costs (150 of those,
// measured the same way on a bot of their own; resident memory is noisy when other tests
// run beside, hence the margin of twice and 16 KiB); a push meanwhile is dispatched and
// gets its pending status, and the bot's log shows no refused call. Before the fix, each
// follower opened its own stream to Nomad, and past Nomad's 100 connections per client
// the bot's calls were refused.
func TestPlainLogFollowersShareOneStream(t *testing.T) {
	// Not in parallel: it measures the bot's memory, which the others' load makes noisy.
	const followers = 150
	perFollower := clientsCost(t, followers, true)
	perViewer := clientsCost(t, followers, false)
	t.Logf("%d clients each: %d KiB per /build follower, %d KiB per live page viewer", followers, perFollower>>10, perViewer>>10)
	if perFollower > 2*perViewer+16<<10 {
		t.Errorf("the bot holds %d KiB per follower of /build, want about a live page viewer's (%d KiB)", perFollower>>10, perViewer>>10)
	}
}

// clientsCost has n clients read one running build's log to its end, on a bot of their
// own, the plain log or the live page, and returns the bot's memory per client; with plain,
// it checks that a push made meanwhile is dispatched.
func clientsCost(t *testing.T, n int, plain bool) int64 {
	t.Helper()
	const lines = 200
	addr, err := testenv.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	prefix := testenv.UniqueName("followers") + "/"
	b := ownBot(t, addr, prefix)
	p := newProject(t, nil, "")
	p.registerUnder(prefix, addr)
	sha := p.push("main", script(testenv.LinesScript(lines)))
	pending := p.waitStatus(sha, "albatros/default", gitea.StatusPending)
	time.Sleep(time.Second)
	rss := func() int64 {
		// The least of a few samples: what the clients hold, not the garbage of the
		// moment (a few MiB, of the order of the heap's own swings).
		var least int64
		for range 5 {
			time.Sleep(200 * time.Millisecond)
			v, err := b.RSS()
			if err != nil {
				t.Fatal(err)
			}
			if least == 0 || v < least {
				least = v
			}
		}
		return least
	}
	before := rss()
	url, first := pending.TargetURL, "line 1 of the build"
	if plain {
		url = plainURL(t, pending)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n}}
	defer client.CloseIdleConnections()
	var wg, started sync.WaitGroup
	started.Add(n)
	bodies := make([]string, n)
	for i := range n {
		wg.Go(func() {
			once := sync.OnceFunc(started.Done)
			defer once()
			resp, err := client.Get(url)
			if err != nil {
				bodies[i] = err.Error()
				return
			}
			defer resp.Body.Close()
			var body strings.Builder
			if resp.StatusCode != http.StatusOK {
				fmt.Fprintf(&body, "answered %d: ", resp.StatusCode)
			}
			buf := make([]byte, 4096)
			for {
				k, err := resp.Body.Read(buf)
				body.Write(buf[:k])
				if strings.Contains(body.String(), first) {
					once()
				}
				if err != nil {
					break
				}
			}
			bodies[i] = body.String()
		})
	}
	started.Wait()
	during := rss()
	if st := p.statuses(sha, "albatros/default"); st[len(st)-1] != gitea.StatusPending {
		t.Errorf("the build had ended before every client was reading (%v): not a live view", st)
	}
	if plain {
		// A push while they follow: dispatched, with its pending status.
		other := newProject(t, nil, "")
		other.registerUnder(prefix, addr)
		next := other.push("main", script("echo pushed while 150 followed a log\n"))
		other.waitStatus(next, "albatros/default", gitea.StatusPending)
	}
	wg.Wait()
	for i, body := range bodies {
		if !strings.Contains(body, "line 200 of the build") {
			t.Fatalf("client %d did not receive the whole log:\n%.500s", i, body)
		}
	}
	if log := b.Log(); strings.Contains(log, "code: 429") || strings.Contains(log, "Too Many Requests") || strings.Contains(log, "follow log") {
		t.Errorf("the bot's log shows trouble following the log:\n%s", log)
	}
	return (during - before) / int64(n)
}

// A build prints ESC and then 16 MiB without a terminator, watched by six viewers of its
// live page: the bot's memory grows by a bounded amount, and every viewer gets the text
// after it. Before the fix, the renderer held the whole sequence per viewer and scanned it
// again at every write: 521 MiB and 35 s of CPU, here.
func TestDanglingEscapeIsBounded(t *testing.T) {
	t.Parallel() // after the tests that stop shared servers; it shares none of its own
	const viewers = 6
	addr, err := testenv.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	prefix := testenv.UniqueName("escape") + "/"
	b := ownBot(t, addr, prefix)
	p := newProject(t, nil, "")
	p.registerUnder(prefix, addr)
	sha := p.push("main", script("sleep 3\nprintf '\\033'\nhead -c 16777216 /dev/zero | tr '\\0' ' '\necho\necho 'after the escape'\n"))
	pending := p.waitStatus(sha, "albatros/default", gitea.StatusPending)
	time.Sleep(time.Second)
	before, err := b.RSS()
	if err != nil {
		t.Fatal(err)
	}
	var peak int64
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(200 * time.Millisecond):
				if n, err := b.RSS(); err == nil && n > peak {
					peak = n
				}
			}
		}
	}()
	pages := testenv.WatchLivePage(&http.Client{}, pending.TargetURL, viewers, func() {})
	close(done)
	for i, page := range pages {
		if page.Err != nil || !strings.Contains(page.Body, "after the escape") {
			t.Errorf("viewer %d: %v, page ends %q", i, page.Err, tail(page.Body, 200))
		}
	}
	grew := peak - before
	t.Logf("six viewers of ESC and 16 MiB: bot RSS %d MiB before, %d MiB at most", before>>20, peak>>20)
	if grew > 160<<20 {
		t.Errorf("the bot's memory grew by %d MiB, want at most 160 MiB (the tape keeps 32 MiB)", grew>>20)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
