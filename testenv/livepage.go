package testenv

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
)

// ReadLivePage reads a build's live log page to its end, calling watching once the log has
// begun (its <pre> arrived): the viewer is receiving the build's lines from then on.
func ReadLivePage(body io.Reader, watching func()) (string, error) {
	var page strings.Builder
	buf := make([]byte, 4096)
	started := false
	for {
		n, err := body.Read(buf)
		page.Write(buf[:n])
		if !started && strings.Contains(page.String(), "<pre") {
			started = true
			watching()
		}
		if err == io.EOF {
			return page.String(), nil
		}
		if err != nil {
			return page.String(), err
		}
	}
}

// LivePage is what one viewer of a live log page received: the answer's status and the
// page, or the error that cut it short.
type LivePage struct {
	Status int
	Body   string
	Err    error
}

// WatchLivePage has n viewers read the live log page at url with client, at once, each to
// its end. Once every viewer is receiving the log (or has failed), it calls watching, in
// the caller's goroutine, while they still watch; it returns every viewer's page when
// all have ended.
func WatchLivePage(client *http.Client, url string, n int, watching func()) []LivePage {
	pages := make([]LivePage, n)
	var wg, started sync.WaitGroup
	started.Add(n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			once := sync.OnceFunc(started.Done)
			defer once()
			resp, err := client.Get(url)
			if err != nil {
				pages[i].Err = err
				return
			}
			defer resp.Body.Close()
			pages[i].Status = resp.StatusCode
			pages[i].Body, pages[i].Err = ReadLivePage(resp.Body, once)
		}()
	}
	started.Wait()
	watching()
	wg.Wait()
	return pages
}

// LinesScript is a build's .albatros script body that sleeps 3 s, then writes lines lines
// "line <i> of the build", 50 ms apart: a build that viewers can join while it runs.
func LinesScript(lines int) string {
	return fmt.Sprintf("sleep 3\ni=1\nwhile [ $i -le %d ]; do echo \"line $i of the build\"; i=$((i+1)); sleep 0.05; done\n", lines)
}

// Complete returns nil when the viewer received the whole page of a successful build of
// LinesScript(lines): every line, and the result.
func (p LivePage) Complete(lines int) error {
	if p.Err != nil {
		return p.Err
	}
	if p.Status != http.StatusOK || !strings.Contains(p.Body, `class="success"`) {
		return fmt.Errorf("answered %d without the build's success: %.2000s", p.Status, p.Body)
	}
	for i := 1; i <= lines; i++ {
		if !strings.Contains(p.Body, fmt.Sprintf("line %d of the build\n", i)) {
			return fmt.Errorf("line %d missing: %.2000s", i, p.Body)
		}
	}
	return nil
}
