package install

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	sdk "code.gitea.io/sdk/gitea"
	"github.com/chromedp/chromedp"
)

// The secret a trusted build prints split by what a terminal and the live page do not
// show: colour codes, an OSC sequence (a window title), cursor movements, a carriage
// return, a backspace, and grep --color. Masking applies to what viewers see: the plain
// log, rendered as a terminal renders it, and the live page, rendered by a real Chromium,
// show none of it. Before the fix, the bytes were masked, and every one of these showed
// the secret whole once rendered.
func TestSecretSplitByEscapesIsMasked(t *testing.T) {
	const secret = "split-s3cr3t-0123456789"
	p, c := installed(t)
	repo := p.g.CreateRepo(t, p.owner, p.org, "app")
	if resp, page := c.post("/orgs/"+p.org+"/settings", url.Values{"users": {p.owner.Name}}); resp.StatusCode != http.StatusOK {
		t.Fatalf("save settings: %d\n%s", resp.StatusCode, page)
	}
	if resp, page := c.post("/orgs/"+p.org+"/secrets", url.Values{"name": {"DEPLOY_TOKEN"}, "value": {secret}}); resp.StatusCode != http.StatusOK {
		t.Fatalf("set secret: %d\n%s", resp.StatusCode, page)
	}
	lines := []string{
		`printf 'sgr:split-s3\033[1mcr3t-0123456789\033[0m\n'`,
		`printf 'osc:split-s3\033]0;a title\007cr3t-0123456789\n'`,
		`printf 'csi:split-s3XXXX\033[4Dcr3t-0123456789\n'`,
		`printf 'cr:????????cr3t-0123456789\rcr:split-s3\n'`,
		`printf 'bs:split-s3x\bcr3t-0123456789\n'`,
		`echo "grep:$DEPLOY_TOKEN" | grep --color=always s3cr3t`,
		`echo "plain:$DEPLOY_TOKEN"`,
	}
	sha := p.g.Push(t, p.owner, repo, "main", "", script(strings.Join(lines, "\n")+"\n"), "prints the secret in pieces")
	st := p.waitStatus(repo, sha, sdk.StatusSuccess)
	ns, job := jobFromLink(t, st.TargetURL)
	if raw := env.Nomad(t).BuildLog(t, ns, job); !strings.Contains(raw, "plain:"+secret) {
		t.Fatalf("the build did not get the secret:\n%q", raw)
	}

	_, plain := newClient(t, bot(t)).get("/build?namespace=" + ns + "&job=" + url.QueryEscape(job))
	shown := terminal(plain)
	if strings.Contains(shown, secret) || strings.Contains(plain, secret) {
		t.Errorf("the plain log shows the secret once rendered:\n%q\nrendered:\n%s", plain, shown)
	}
	for _, want := range []string{"sgr:***", "osc:***", "csi:***", "cr:***", "bs:***", "plain:***"} {
		if !strings.Contains(shown, want) {
			t.Errorf("the plain log, rendered, lacks %q:\n%s", want, shown)
		}
	}

	ctx := browser(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(st.TargetURL), chromedp.WaitVisible(chromedp.CSS("#result"))); err != nil {
		t.Fatalf("the live page in the browser: %v", err)
	}
	text, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#log")))
	if err != nil {
		t.Fatalf("the live page's text in the browser: %v", err)
	}
	if strings.Contains(text, secret) || strings.Contains(strings.ReplaceAll(text, "\n", ""), secret) {
		t.Errorf("the live page, as Chromium shows it, shows the secret:\n%s", text)
	}
	for _, want := range []string{"sgr:***", "osc:***", "csi:***", "cr:***", "bs:***", "plain:***"} {
		if !strings.Contains(text, want) {
			t.Errorf("the live page, as Chromium shows it, lacks %q:\n%s", want, text)
		}
	}
}

var sgrRE = regexp.MustCompile("\x1b\\[[0-9;]*[mK]")

// terminal is what a terminal shows of the plain log: colours dropped, and of each line
// what the last carriage return left (the bot's output holds nothing else).
func terminal(log string) string {
	var out []string
	for line := range strings.SplitSeq(sgrRE.ReplaceAllString(log, ""), "\n") {
		if i := strings.LastIndexByte(line, '\r'); i >= 0 {
			line = line[i+1:]
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}
