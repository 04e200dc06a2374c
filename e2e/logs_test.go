package e2e

import (
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

// A thousand people watch one running build's live log page, with Nomad's default limit of
// 100 connections per client: each one receives every line and the result, and the bot's
// memory grows by at most 64 KiB per viewer.
func TestThousandViewersOfOneBuild(t *testing.T) {
	const viewers, lines = 1000, 200
	addr, err := testenv.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	prefix := testenv.UniqueName("viewers") + "/"
	b := ownBot(t, addr, prefix)
	p := newProject(t, nil, "")
	p.registerUnder(prefix, addr)
	sha := p.push("main", script(fmt.Sprintf("sleep 3\ni=1\nwhile [ $i -le %d ]; do echo \"line $i of the build\"; i=$((i+1)); sleep 0.05; done\n", lines)))
	pending := p.waitStatus(sha, "albatros/default", gitea.StatusPending)
	time.Sleep(time.Second) // the bot settles after its dispatch
	before, err := b.RSS()
	if err != nil {
		t.Fatal(err)
	}

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: viewers}}
	defer client.CloseIdleConnections()
	var (
		wg      sync.WaitGroup
		started sync.WaitGroup
		mu      sync.Mutex
		pages   []string
		errs    []error
	)
	started.Add(viewers)
	for range viewers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			once := sync.OnceFunc(started.Done)
			defer once()
			resp, err := client.Get(pending.TargetURL)
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				return
			}
			defer resp.Body.Close()
			var page strings.Builder
			buf := make([]byte, 4096)
			for {
				n, err := resp.Body.Read(buf)
				page.Write(buf[:n])
				if strings.Contains(page.String(), "<pre") {
					once() // receiving the log
				}
				if err == io.EOF {
					break
				}
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
			}
			mu.Lock()
			pages = append(pages, fmt.Sprintf("%d\n%s", resp.StatusCode, page.String()))
			mu.Unlock()
		}()
	}
	started.Wait()
	time.Sleep(500 * time.Millisecond)
	during, err := b.RSS()
	if err != nil {
		t.Fatal(err)
	}
	if st := p.statuses(sha, "albatros/default"); st[len(st)-1] != gitea.StatusPending {
		t.Errorf("the build had ended before every viewer was watching (%v): not a live view", st)
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d viewers failed, the first: %v", len(errs), errs[0])
	}
	for _, page := range pages {
		code, body, _ := strings.Cut(page, "\n")
		if code != "200" || !strings.Contains(body, `class="success"`) {
			t.Fatalf("a viewer's page: %s\n%.2000s", code, body)
		}
		for i := 1; i <= lines; i++ {
			if !strings.Contains(body, fmt.Sprintf("line %d of the build\n", i)) {
				t.Fatalf("a viewer did not receive line %d:\n%.2000s", i, body)
			}
		}
	}
	perViewer := (during - before) / viewers
	t.Logf("%d viewers: bot RSS %d KiB before, %d KiB while they watched: %d KiB per viewer", viewers, before>>10, during>>10, perViewer>>10)
	if perViewer > 64<<10 {
		t.Errorf("the bot holds %d KiB per viewer, want at most 64 KiB", perViewer>>10)
	}
	// Nomad's refusal reads "Unexpected response code: 429 (…)"; job IDs hold hex digits.
	if log := b.Log(); strings.Contains(log, "code: 429") || strings.Contains(log, "Too Many Requests") || strings.Contains(log, "follow log") {
		t.Errorf("the bot's log shows trouble following the log:\n%s", log)
	}
}
