package history

import (
	"strings"
	"testing"

	"code.gitea.io/sdk/gitea"
	"github.com/chromedp/chromedp"

	"github.com/albatros-ci/albatros/testenv"
)

// The history page and its badge in a real browser: the builds newest first, a state's
// filter, the badge drawn, and an archived build's log opened from the page.
func TestHistoryPageInTheBrowser(t *testing.T) {
	prefix := testenv.UniqueName("hist-browser") + "/"
	b := startBot(t, prefix, "file://"+t.TempDir())
	p := newProject(t, prefix, b)
	var shas []string
	for _, note := range []string{"first", "second"} {
		sha := p.push("main", "", note)
		p.waitStatus(sha, gitea.StatusSuccess)
		shas = append(shas, sha)
	}
	failing := p.g.Push(t, p.owner, p.repo, "main", "", map[string]testenv.File{
		".albatros": {Content: "echo running the tests\necho '1 test failed' >&2\nexit 1\n", Executable: true},
	}, "a change that breaks the tests")
	p.waitStatus(failing, gitea.StatusFailure)
	fixed := p.push("main", "", "the fix")
	p.waitStatus(fixed, gitea.StatusSuccess)

	ctx := testenv.Browser(t)
	page := b.URL + "/builds/" + p.repo.Owner + "/" + p.repo.Name
	const rowsJS = `[...document.querySelectorAll("#history tr")].slice(1).map(r => r.innerText)`
	if err := chromedp.Do(ctx, chromedp.Navigate(page), chromedp.WaitVisible(chromedp.CSS("#history"))); err != nil {
		t.Fatalf("the history page: %v", err)
	}
	rows, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](rowsJS))
	if err != nil {
		t.Fatal(err)
	}
	badgeWidth, err := chromedp.Run(ctx, chromedp.Poll[int](`document.querySelector("#badge").complete && document.querySelector("#badge").naturalWidth`))
	if err != nil {
		t.Fatalf("the badge: %v", err)
	}
	if len(rows) != 4 || !strings.Contains(rows[0], fixed[:10]) || !strings.Contains(rows[1], failing[:10]) || !strings.Contains(rows[1], "failure") || !strings.Contains(rows[3], shas[0][:10]) {
		t.Fatalf("rows, newest first: %q", rows)
	}
	if badgeWidth == 0 {
		t.Errorf("the badge was not drawn")
	}
	testenv.Screenshot(t, ctx, "history", "main")
	testenv.Screenshot(t, ctx, "badge", "#badge")
	badge, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#badge-markdown")))
	if err != nil || !strings.Contains(badge, "/badge/"+p.repo.Owner+"/"+p.repo.Name+".svg?branch=main") {
		t.Errorf("the badge's markdown: %q %v", badge, err)
	}

	if err := chromedp.Do(ctx,
		chromedp.SetValue(chromedp.CSS("#state"), "failure"),
		chromedp.Submit(chromedp.CSS("#filter button")),
		chromedp.WaitVisible(chromedp.CSS(`#history`)),
	); err != nil {
		t.Fatal(err)
	}
	failures, err := chromedp.Run(ctx, chromedp.Poll[[]string](`location.search.includes("state=failure") && `+rowsJS))
	if err != nil {
		t.Fatal(err)
	}
	if len(failures) != 1 || !strings.Contains(failures[0], failing[:10]) {
		t.Fatalf("filtered by failure: %q", failures)
	}
	href, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('#history a[href*="/logs/"]').href`))
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(href)); err != nil {
		t.Fatal(err)
	}
	logText, err := chromedp.Run(ctx, chromedp.Poll[string](`document.body.innerText.includes("1 test failed") && document.body.innerText`))
	if err != nil {
		t.Fatalf("the failed build's log from the page: %v", err)
	}
	if !strings.Contains(logText, "running the tests") {
		t.Errorf("the log page: %q", logText)
	}
	testenv.Screenshot(t, ctx, "archived-log", "")
}
