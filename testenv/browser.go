package testenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// Browser starts a headless Chromium for the test (see Chromium), stopped at its end: a
// missing browser skips the test, or fails it under CI=true. Pages that call alert() (Gitea's,
// when their JavaScript bundle is missing) have every dialog accepted, so that none can
// stall the test.
func Browser(t *testing.T) context.Context {
	t.Helper()
	bin, err := Chromium()
	if err != nil {
		if InCI() {
			t.Fatalf("CI=true and %v", err)
		}
		t.Skipf("%v", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.WindowSize(1200, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			t.Logf("accepting a %s dialog: %q", ev.Type, ev.Message)
			_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
	tctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(cancel)
	return tctx
}

// Screenshot saves a screenshot of the element sel (the window when sel is empty) as
// name.png in $ALBATROS_SCREENSHOTS, when set: the README's pictures
// (ALBATROS_SCREENSHOTS=docs/img go test ./e2e/install ./e2e/history -run Browser).
func Screenshot(t *testing.T, ctx context.Context, name, sel string) {
	t.Helper()
	dir := os.Getenv("ALBATROS_SCREENSHOTS")
	if dir == "" {
		return
	}
	take := chromedp.CaptureScreenshot()
	if sel != "" {
		take = chromedp.Screenshot(chromedp.CSS(sel))
	}
	png, err := chromedp.Run(ctx, take)
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// Until evaluates the JavaScript expression js every 100 ms until it is truthy or ctx ends.
// Unlike chromedp.Poll, it lives through the page's navigations: an evaluation whose page
// was replaced meanwhile ("Cannot find context", "context was destroyed") is tried again.
func Until(ctx context.Context, js string) error {
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool]("!!("+js+")"))
		switch {
		case err == nil && ok:
			return nil
		case err != nil && !strings.Contains(err.Error(), "context"):
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", js, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Steps returns a browser test's two steps on ctx: do runs actions, failing the test with
// what and the page it was at; text reads an element's text, failing the test without it.
func Steps(t *testing.T, ctx context.Context) (do func(what string, actions ...chromedp.Action[chromedp.Void]), text func(sel string) string) {
	do = func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			loc, _ := chromedp.Run(ctx, chromedp.Location())
			t.Fatalf("%s (at %s): %v", what, loc, err)
		}
	}
	text = func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	return do, text
}
