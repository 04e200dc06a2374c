package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"code.gitea.io/sdk/gitea"

	"github.com/albatros-ci/albatros/testenv"
)

// A thousand people watch one running build's live log page, with Nomad's default limit of
// 100 connections per client: each one receives every line and the result, and the bot's
// memory grows by at most 64 KiB per viewer.
func TestThousandViewersOfOneBuild(t *testing.T) {
	// Not in parallel: it measures the bot's memory, which the others' load makes noisy.
	const viewers, lines = 1000, 200
	addr, err := testenv.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	prefix := testenv.UniqueName("viewers") + "/"
	b := ownBot(t, addr, prefix)
	p := newProject(t, nil, "")
	p.registerUnder(prefix, addr)
	sha := p.push("main", script(testenv.LinesScript(lines)))
	pending := p.waitStatus(sha, "albatros/default", gitea.StatusPending)
	time.Sleep(time.Second) // the bot settles after its dispatch
	before, err := b.RSS()
	if err != nil {
		t.Fatal(err)
	}

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: viewers}}
	defer client.CloseIdleConnections()
	var during int64
	pages := testenv.WatchLivePage(client, pending.TargetURL, viewers, func() {
		time.Sleep(500 * time.Millisecond)
		if during, err = b.RSS(); err != nil {
			t.Error(err)
		}
		if st := p.statuses(sha, "albatros/default"); st[len(st)-1] != gitea.StatusPending {
			t.Errorf("the build had ended before every viewer was watching (%v): not a live view", st)
		}
	})
	failed := 0
	for _, page := range pages {
		if err := page.Complete(lines); err != nil {
			if failed == 0 {
				t.Errorf("a viewer's page: %v", err)
			}
			failed++
		}
	}
	if failed > 0 || during == 0 {
		t.Fatalf("%d of %d viewers failed", failed, viewers)
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
