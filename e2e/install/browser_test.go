package install

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	sdk "code.gitea.io/sdk/gitea"
	"github.com/chromedp/chromedp"

	"github.com/albatros-ci/albatros/testenv"
)

// browser is the test's headless Chromium.
func browser(t *testing.T) context.Context { return testenv.Browser(t) }

// signIn fills Gitea's sign-in form, shown in the browser, and sends it. Gitea's scripts
// may still be rewriting the form when it shows ("Could not find node with given id", "No
// node with given id found"): then it waits and fills it again.
func signIn(t *testing.T, ctx context.Context, user, password string) {
	t.Helper()
	var err error
	for attempt := range 5 {
		if attempt > 0 {
			time.Sleep(500 * time.Millisecond)
		}
		err = chromedp.Do(ctx,
			chromedp.WaitVisible(chromedp.CSS("#user_name")),
			chromedp.SetValue(chromedp.CSS("#user_name"), user),
			chromedp.SetValue(chromedp.CSS("#password"), password),
			chromedp.Submit(chromedp.CSS("#password")),
		)
		if err == nil || !strings.Contains(err.Error(), "given id") {
			break
		}
	}
	if err != nil {
		loc, _ := chromedp.Run(ctx, chromedp.Location())
		t.Fatalf("sign in on Gitea (at %s): %v", loc, err)
	}
}

// shot saves a screenshot of the page as name.png in $ALBATROS_SCREENSHOTS, when set (the
// README's pictures: ALBATROS_SCREENSHOTS=docs/img go test ./e2e/install -run Browser):
// the window, or the whole page when full.
func shot(t *testing.T, ctx context.Context, name string, full bool) {
	t.Helper()
	sel := ""
	if full {
		sel = "body"
	}
	shotOf(t, ctx, name, sel)
}

// shotOf saves a screenshot of the element sel (the window when sel is empty), as shot does.
func shotOf(t *testing.T, ctx context.Context, name, sel string) {
	testenv.Screenshot(t, ctx, name, sel)
}

// The whole install in a real browser, as an organization's owner does it: the home page's
// Install Albatros, Gitea's sign-in and authorize pages, the organization's Install button;
// then a repository created afterwards builds green with no other setup.
func TestInstallInTheBrowser(t *testing.T) {
	p := newProject(t)
	b := bot(t)
	ctx := browser(t)
	do, text := testenv.Steps(t, ctx)
	do("home page", chromedp.Navigate(b.URL+"/"), chromedp.WaitVisible(chromedp.CSS("#install")))
	shot(t, ctx, "home", false)
	do("Install Albatros", chromedp.Click(chromedp.CSS("#install")), chromedp.WaitVisible(chromedp.CSS("#user_name")))
	signIn(t, ctx, p.owner.Name, p.owner.Password)
	do("Gitea's authorize page", chromedp.WaitVisible(chromedp.CSS("#authorize-app")))
	shot(t, ctx, "gitea-authorize", false)
	do("authorize the bot", chromedp.Click(chromedp.CSS("#authorize-app")), chromedp.WaitVisible(chromedp.CSS("#org-"+p.org)))
	shot(t, ctx, "organizations", false)
	do("Install on the organization",
		chromedp.Click(chromedp.CSS("#org-"+p.org+" button")),
		chromedp.WaitVisible(chromedp.CSS("#flash")),
	)
	if got := text("#flash"); !strings.Contains(got, "Albatros is installed") {
		t.Fatalf("after Install: %q", got)
	}
	if hooks := p.hooks(); len(hooks) != 1 || !p.botIsOwner() {
		t.Fatalf("after install in the browser: hooks %+v, bot owner %v", hooks, p.botIsOwner())
	}

	repo := p.g.CreateRepo(t, p.owner, p.org, "website")
	sha := p.g.Push(t, p.owner, repo, "main", "", script("echo building the website\nsleep 1\necho done\n"), "first commit")
	p.waitStatus(repo, sha, sdk.StatusSuccess)
	failing := p.g.Push(t, p.owner, repo, "topic", "main", script("echo a test fails\nexit 1\n"), "a failing change")
	p.waitStatus(repo, failing, sdk.StatusFailure)

	do("the organization's page lists the builds", chromedp.Navigate(b.URL+"/orgs/"+p.org), chromedp.WaitVisible(chromedp.CSS("#builds")))
	if got := text("#builds"); !strings.Contains(got, sha[:10]) || !strings.Contains(got, "success") || !strings.Contains(got, "failure") {
		t.Fatalf("builds on the page: %q", got)
	}
	shot(t, ctx, "organization", true)
	do("the log of the build", chromedp.Click(chromedp.CSS(`#builds a[href*="/logs/"]`)), chromedp.WaitVisible(chromedp.CSS("#result")))
	shot(t, ctx, "log", false)

	// The repository's page links its history, which the signed-in owner reads.
	do("the repository's page", chromedp.Navigate(b.URL+"/orgs/"+p.org+"/repos/website"), chromedp.WaitVisible(chromedp.CSS("#history-link")))
	shot(t, ctx, "repository", true)
	do("its history", chromedp.Click(chromedp.CSS("#history-link")), chromedp.WaitVisible(chromedp.CSS("#history")))
	if got := text("#history"); !strings.Contains(got, sha[:10]) || !strings.Contains(got, failing[:10]) || !strings.Contains(got, "push by "+p.owner.Name) {
		t.Fatalf("the history page: %q", got)
	}
	if got := text("header.top"); !strings.Contains(got, "signed in as") || !strings.Contains(got, p.owner.Name) {
		t.Errorf("the history page's header, signed in: %q", got)
	}
	// The badge is the default branch's, whatever branch built last, and is drawn.
	if got := text("#badge-markdown"); !strings.Contains(got, "/badge/"+p.org+"/website.svg?branch=main") {
		t.Errorf("the badge's markdown: %q", got)
	}
	if w, err := chromedp.Run(ctx, chromedp.Poll[int](`document.querySelector("#badge").complete && document.querySelector("#badge").naturalWidth`)); err != nil || w == 0 {
		t.Errorf("the badge was not drawn: %d %v", w, err)
	}
	shot(t, ctx, "history-signed-in", true)
}

// The bot's comment as people see it on the pull request's page in Gitea: the table of
// the head's builds, the request for approval, the earlier heads collapsed.
func TestPullRequestPageInTheBrowser(t *testing.T) {
	x := conversation(t, "default nix")
	outsider := x.g.CreateUser(t, testenv.UniqueName("contributor"))
	fork := x.g.Fork(t, outsider, x.repo)
	x.g.Push(t, outsider, fork, "fix-typo", "main", script(printToken+"echo first try\n"), "Fix a typo")
	x.open(outsider, outsider.Name+":fix-typo")
	x.waitComment("the first head's builds", func(b string) bool { return strings.Count(b, "✅ success") == 2 })
	head := x.g.Push(t, outsider, fork, "fix-typo", "", script(printToken+"echo the fix\nexit 1\n"), "Fix the fix")
	x.waitComment("the second head's builds", func(b string) bool {
		return strings.Contains(b, "/commit/"+head) && strings.Contains(b, "failure") && strings.Contains(b, "<details>")
	})

	ctx := browser(t)
	do, _ := testenv.Steps(t, ctx)
	do("Gitea's sign-in page", chromedp.Navigate(x.g.URL+"user/login"))
	signIn(t, ctx, x.owner.Name, x.owner.Password)
	time.Sleep(time.Second)
	do("the pull request's page", chromedp.Navigate(fmt.Sprintf("%s%s/pulls/%d", x.g.URL, x.repo.FullName(), x.number)),
		chromedp.WaitVisible(chromedp.CSS(".timeline-item.comment")))
	text, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(".timeline")))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Albatros", "default", "nix", "without the repository's secrets", "/approve " + head, "Earlier commits"} {
		if !strings.Contains(text, want) {
			t.Errorf("the pull request's page lacks %q", want)
		}
	}
	shotOf(t, ctx, "pull-request", ".issue-content-left")
}

// A repository's schedules and run parameters set on its settings page, and a run asked
// with the Run button of its history page, in the browser: a schedule that is not five
// cron fields, or of a flavor the repository has not, is refused with why; the saved
// schedule shows its next slot; the run lands on its live log, with the parameter chosen in
// its meta.
func TestSchedulesAndRunInTheBrowser(t *testing.T) {
	p, _ := installed(t)
	b := bot(t)
	repo := p.g.CreateRepo(t, p.owner, p.org, "app")
	sha := p.g.Push(t, p.owner, repo, "main", "", script("echo \"deploying to $NOMAD_META_TARGET\"\n"), "app")
	p.waitStatus(repo, sha, sdk.StatusSuccess)
	ctx := browser(t)
	do, text := testenv.Steps(t, ctx)
	page := "/orgs/" + p.org + "/repos/app"
	do("sign in", chromedp.Navigate(b.URL+"/login?next="+page), chromedp.WaitVisible(chromedp.CSS("#user_name")))
	signIn(t, ctx, p.owner.Name, p.owner.Password)
	// Gitea asks to authorize the bot again only if this user never did.
	if err := testenv.Until(ctx, `document.querySelector("#authorize-app") || document.querySelector("#settings-form")`); err != nil {
		t.Fatal(err)
	}
	if ok, _ := chromedp.Run(ctx, chromedp.Evaluate[bool](`!!document.querySelector("#authorize-app")`)); ok {
		do("authorize", chromedp.Click(chromedp.CSS("#authorize-app")))
	}
	do("the repository's page", chromedp.WaitVisible(chromedp.CSS("#schedules")))
	do("a schedule with four cron fields",
		chromedp.SetValue(chromedp.CSS("#schedules"), "nightly 0 3 * * Europe/Paris main"),
		chromedp.Submit(chromedp.CSS("#schedules")),
		chromedp.WaitVisible(chromedp.CSS("#error")),
	)
	if got := text("#error"); !strings.Contains(got, "line 1") {
		t.Errorf("a bad schedule: %q", got)
	}
	do("a schedule of a flavor the repository has not",
		chromedp.SetValue(chromedp.CSS("#schedules"), "nightly 0 3 * * * Europe/Paris main big"),
		chromedp.Submit(chromedp.CSS("#schedules")),
		chromedp.WaitVisible(chromedp.CSS("#error")),
	)
	if got := text("#error"); !strings.Contains(got, `flavor "big" is not one of the repository's (default)`) {
		t.Errorf("a schedule's unknown flavor: %q", got)
	}
	do("a schedule and a parameter",
		chromedp.SetValue(chromedp.CSS("#schedules"), "nightly 0 3 * * * Europe/Paris main\nweekly 30 6 * * 1 UTC main"),
		chromedp.SetValue(chromedp.CSS("#params"), "TARGET choice staging,production"),
		chromedp.Submit(chromedp.CSS("#schedules")),
		chromedp.WaitVisible(chromedp.CSS("#flash")),
		chromedp.WaitVisible(chromedp.CSS("#schedule-list")),
	)
	if got := text("#schedule-nightly"); !strings.Contains(got, "0 3 * * * Europe/Paris main") || !strings.Contains(got, "not yet") {
		t.Errorf("the saved schedule: %q", got)
	}
	shot(t, ctx, "schedules", true)

	do("the history page's Run button",
		chromedp.Navigate(b.URL+"/builds/"+p.org+"/app"),
		chromedp.Click(chromedp.CSS("#run summary")),
		chromedp.WaitVisible(chromedp.CSS("#run-submit")),
		chromedp.SetValue(chromedp.CSS("#param-TARGET"), "production"),
	)
	shot(t, ctx, "run", true)
	do("run", chromedp.Click(chromedp.CSS("#run-submit")), chromedp.WaitVisible(chromedp.CSS("#log")))
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil || !strings.Contains(loc, "/logs/") {
		t.Fatalf("after Run: at %s, %v", loc, err)
	}
	_, job := jobFromLink(t, loc)
	if meta := jobs(t, repo)[job]; meta["TARGET"] != "production" || meta["COMMIT"] != sha {
		t.Errorf("the run's meta: %v", meta)
	}
	deadline := time.Now().Add(90 * time.Second)
	for !strings.Contains(text("#log"), "deploying to production") {
		if time.Now().After(deadline) {
			t.Fatalf("the run's log: %q", text("#log"))
		}
		time.Sleep(time.Second)
	}

	// Signed out: the history page without the Run button; the settings page asks to sign in.
	anon := browser(t)
	ado, atext := testenv.Steps(t, anon)
	ado("the history page, signed out", chromedp.Navigate(b.URL+"/builds/"+p.org+"/app"), chromedp.WaitVisible(chromedp.CSS("#history")))
	if n, err := chromedp.Run(anon, chromedp.Evaluate[int](`document.querySelectorAll("#run, #run-form").length`)); err != nil || n != 0 {
		t.Errorf("a visitor signed out sees the Run form (%d, %v)", n, err)
	}
	if got := atext("#history"); !strings.Contains(got, "run by "+p.owner.Name) {
		t.Errorf("the run in the history: %q", got)
	}
	shot(t, anon, "history-signed-out", true)
	ado("the settings page, signed out", chromedp.Navigate(b.URL+page), chromedp.WaitVisible(chromedp.CSS("#user_name")))
}
