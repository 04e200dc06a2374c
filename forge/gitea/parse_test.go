package gitea_test

import (
	"encoding/json"
	"errors"
	"flag"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	sdk "code.gitea.io/sdk/gitea"

	"github.com/albatros-ci/albatros/forge"
	"github.com/albatros-ci/albatros/forge/forgetest"
	"github.com/albatros-ci/albatros/forge/gitea"
	"github.com/albatros-ci/albatros/testenv"
)

var update = flag.Bool("update", false, "rewrite forge/forgetest/testdata/gitea/*.json with deliveries captured from the real Gitea")

var env = testenv.New(testenv.Options{Gitea: true})

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(env.Run(m))
}

// captured are the deliveries captured from the real Gitea, shared with the intake's tests.
var captured = forgetest.Gitea

// capture is one delivery as stored in testdata: the headers the parser reads and the body.
type capture struct {
	Event     string          `json:"event"`
	EventType string          `json:"event_type,omitempty"`
	Delivery  string          `json:"delivery"`
	Body      json.RawMessage `json:"body"`
}

func (c capture) header() http.Header {
	h := http.Header{}
	h.Set("X-Gitea-Event", c.Event)
	if c.EventType != "" {
		h.Set("X-Gitea-Event-Type", c.EventType)
	}
	h.Set("X-Gitea-Delivery", c.Delivery)
	return h
}

// expectation is what a captured delivery must parse to. Commit is checked against the body
// itself (after, or the pull request head's sha), since every capture has its own SHAs.
type expectation struct {
	kind    forge.Kind
	ignored string // substring of the ignore reason, for ignored deliveries
	branch  string
	tag     string
	pr      bool
	fork    bool
	action  string
}

var expectations = map[string]expectation{
	"push_branch.json":        {kind: forge.KindPush, branch: "main"},
	"push_tag.json":           {kind: forge.KindTag, tag: "v1.0.0"},
	"pr_opened_fork.json":     {kind: forge.KindPullRequest, branch: "patch", pr: true, fork: true, action: "opened"},
	"pr_synchronized.json":    {kind: forge.KindPullRequest, branch: "patch", pr: true, fork: true, action: "synchronized"},
	"pr_closed.json":          {kind: forge.KindPullRequestClosed},
	"pr_comment_created.json": {kind: forge.KindComment},
	"pr_comment_edited.json":  {ignored: "edited"},
	"pr_same_repo.json":       {kind: forge.KindPullRequest, branch: "feature", pr: true, fork: false, action: "opened"},
	"create_branch.json":      {ignored: `event "create" is not handled`},
	"delete_branch.json":      {ignored: `event "delete" is not handled`},
}

func TestParseCapturedPayloads(t *testing.T) {
	entries, err := fs.ReadDir(captured, ".")
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, e := range entries {
		want, ok := expectations[e.Name()]
		if !ok {
			t.Errorf("testdata/%s has no expectation", e.Name())
			continue
		}
		seen++
		raw, _ := fs.ReadFile(captured, e.Name())
		var c capture
		if err := json.Unmarshal(raw, &c); err != nil {
			t.Fatalf("%s: %v", e.Name(), err)
		}
		check(t, e.Name(), c, want)
	}
	if seen != len(expectations) {
		t.Errorf("testdata holds %d of the %d expected captures; run go test ./forge/gitea -run Live -update", seen, len(expectations))
	}
}

// check parses a capture and compares it with the expectation and with its own body.
func check(t *testing.T, name string, c capture, want expectation) {
	t.Helper()
	ev, err := gitea.Parse(c.header(), c.Body)
	if want.ignored != "" {
		if !errors.Is(err, forge.ErrIgnoreEvent) || !strings.Contains(err.Error(), want.ignored) {
			t.Errorf("%s: error %v, want ignored (%s)", name, err, want.ignored)
		}
		return
	}
	if err != nil {
		t.Errorf("%s: %v", name, err)
		return
	}
	if want.kind == forge.KindComment || want.kind == forge.KindPullRequestClosed {
		checkPullRequestNews(t, name, c, ev, want)
		return
	}
	var body struct {
		After       string `json:"after"`
		PullRequest struct {
			Head struct {
				Sha string `json:"sha"`
			} `json:"head"`
		} `json:"pull_request"`
		Repository struct {
			CloneURL string `json:"clone_url"`
			FullName string `json:"full_name"`
		} `json:"repository"`
		Sender struct {
			Login string `json:"login"`
		} `json:"sender"`
	}
	_ = json.Unmarshal(c.Body, &body)
	commit := body.After
	if want.pr {
		commit = body.PullRequest.Head.Sha
	}
	if ev.Kind != want.kind || ev.Commit != commit || !regexp.MustCompile(`^[0-9a-f]{40}$`).MatchString(ev.Commit) ||
		ev.Branch != want.branch || ev.Tag != want.tag || ev.Delivery != c.Delivery || ev.Sender != body.Sender.Login || ev.Sender == "" ||
		ev.Repo.CloneURL != body.Repository.CloneURL || ev.Repo.FullName != body.Repository.FullName || ev.Repo.Owner == "" || ev.Repo.Name == "" {
		t.Errorf("%s: parsed %+v (repo %+v)", name, ev, ev.Repo)
	}
	if want.pr {
		pr := ev.PullRequest
		if pr == nil || pr.Number == 0 || pr.Fork != want.fork || pr.Action != want.action || pr.HeadBranch != want.branch || pr.BaseBranch != "main" {
			t.Errorf("%s: pull request %+v", name, pr)
		} else if want.fork && pr.HeadRepo.CloneURL == ev.Repo.CloneURL {
			t.Errorf("%s: a fork's head repository is the base repository", name)
		}
	} else if ev.PullRequest != nil {
		t.Errorf("%s: pull request on a %s", name, ev.Kind)
	}
}

// checkPullRequestNews checks a comment on a pull request, or its closing, against its body.
func checkPullRequestNews(t *testing.T, name string, c capture, ev forge.Event, want expectation) {
	t.Helper()
	var body struct {
		Number int64 `json:"number"`
		Issue  struct {
			Number int64 `json:"number"`
		} `json:"issue"`
		Comment struct {
			ID   int64  `json:"id"`
			Body string `json:"body"`
			User struct {
				Login string `json:"login"`
			} `json:"user"`
		} `json:"comment"`
		Repository struct {
			CloneURL string `json:"clone_url"`
		} `json:"repository"`
	}
	_ = json.Unmarshal(c.Body, &body)
	number := body.Number
	if want.kind == forge.KindComment {
		number = body.Issue.Number
	}
	if ev.Kind != want.kind || ev.Commit != "" || ev.Repo.CloneURL != body.Repository.CloneURL || ev.PullRequest == nil || ev.PullRequest.Number != number || number == 0 {
		t.Errorf("%s: parsed %+v", name, ev)
		return
	}
	if want.kind == forge.KindComment {
		cm := ev.Comment
		if cm == nil || cm.ID != body.Comment.ID || cm.Body != body.Comment.Body || cm.Author != body.Comment.User.Login || cm.Author == "" || !strings.Contains(cm.Body, "/rebuild") {
			t.Errorf("%s: comment %+v", name, cm)
		}
	} else if ev.Comment != nil {
		t.Errorf("%s: a comment on a closed pull request: %+v", name, ev.Comment)
	}
}

// A push whose after is all zeros deletes the ref. Gitea 1.26 sends a delete event instead
// (captured above), but GitHub and older Gitea send this push: it must not build.
func TestPushOfDeletedRefIsIgnored(t *testing.T) {
	raw, err := fs.ReadFile(captured, "push_branch.json")
	if err != nil {
		t.Fatal(err)
	}
	var c capture
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	var body map[string]any
	_ = json.Unmarshal(c.Body, &body)
	for _, zeros := range []string{strings.Repeat("0", 40), strings.Repeat("0", 64)} {
		body["after"] = zeros
		c.Body, _ = json.Marshal(body)
		_, err := gitea.Parse(c.header(), c.Body)
		if !errors.Is(err, forge.ErrIgnoreEvent) || !strings.Contains(err.Error(), "deletion of refs/heads/main") {
			t.Errorf("push with after=%s…: %v, want ignored as a deletion", zeros[:8], err)
		}
	}
}

func TestParseRejectsMalformed(t *testing.T) {
	h := http.Header{}
	h.Set("X-Gitea-Event", "push")
	for name, body := range map[string]string{
		"not json":        `{"ref":`,
		"no repository":   `{"ref":"refs/heads/main","after":"0123456789012345678901234567890123456789"}`,
		"no after":        `{"ref":"refs/heads/main","repository":{"clone_url":"http://x/a/b.git"}}`,
		"wrong type":      `{"ref":5,"repository":{"clone_url":"http://x/a/b.git"}}`,
		"empty object":    `{}`,
		"array":           `[]`,
		"pr without head": `{"action":"opened","pull_request":{"number":1},"repository":{"clone_url":"http://x/a/b.git"}}`,
	} {
		hh := h.Clone()
		if strings.HasPrefix(name, "pr") {
			hh.Set("X-Gitea-Event", "pull_request")
		}
		if _, err := gitea.Parse(hh, []byte(body)); !errors.Is(err, forge.ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
	if _, err := gitea.Parse(http.Header{}, []byte(`{}`)); !errors.Is(err, forge.ErrMalformed) {
		t.Errorf("no event header: %v, want ErrMalformed", err)
	}
	if _, err := gitea.Locate([]byte(`{"repository":{}}`)); !errors.Is(err, forge.ErrMalformed) {
		t.Errorf("Locate without clone_url: %v", err)
	}
}

// listener collects the deliveries Gitea sends it.
type listener struct {
	mu  sync.Mutex
	got []capture
}

func (l *listener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	l.mu.Lock()
	l.got = append(l.got, capture{Event: r.Header.Get("X-Gitea-Event"), EventType: r.Header.Get("X-Gitea-Event-Type"), Delivery: r.Header.Get("X-Gitea-Delivery"), Body: body})
	l.mu.Unlock()
}

// wait returns the first delivery of event that satisfies match.
func (l *listener) wait(t *testing.T, event string, match func(map[string]any) bool) capture {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		l.mu.Lock()
		for _, c := range l.got {
			var m map[string]any
			if c.Event == event && json.Unmarshal(c.Body, &m) == nil && match(m) {
				l.mu.Unlock()
				return c
			}
		}
		l.mu.Unlock()
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no %s delivery matched within 30s", event)
	return capture{}
}

func field(m map[string]any, path ...string) any {
	var cur any = m
	for _, p := range path {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[p]
	}
	return cur
}

// TestParseLiveDeliveries makes the real Gitea send every kind of delivery the bot meets,
// parses each as it arrives, and with -update stores them as the testdata above.
func TestParseLiveDeliveries(t *testing.T) {
	g := env.Gitea(t)
	owner := g.CreateUser(t, testenv.UniqueName("owner"))
	outsider := g.CreateUser(t, testenv.UniqueName("outsider"))
	org := testenv.UniqueName("org")
	g.CreateOrg(t, owner, org)
	repo := g.CreateRepo(t, owner, org, "parsed")

	l := &listener{}
	srv := httptest.NewServer(l)
	defer srv.Close()
	g.CreateWebhook(t, owner, repo, srv.URL, "secret")

	is := func(k, v string) func(map[string]any) bool {
		return func(m map[string]any) bool { return field(m, strings.Split(k, ".")...) == v }
	}
	got := map[string]capture{}

	main := g.Push(t, owner, repo, "main", "", map[string]testenv.File{"README": {Content: "one\n"}}, "first")
	got["push_branch.json"] = l.wait(t, "push", is("after", main))
	g.PushTag(t, owner, repo, "v1.0.0", main)
	got["push_tag.json"] = l.wait(t, "push", is("ref", "refs/tags/v1.0.0"))

	g.Push(t, owner, repo, "doomed", "main", map[string]testenv.File{"D": {Content: "d\n"}}, "doomed")
	got["create_branch.json"] = l.wait(t, "create", is("ref", "doomed"))
	g.DeleteRef(t, owner, repo, "refs/heads/doomed")
	got["delete_branch.json"] = l.wait(t, "delete", is("ref", "doomed"))
	// Gitea 1.26 sends only a delete event for a deleted branch, no push; see
	// TestPushOfDeletedRefIsIgnored for the push other forges send.

	fork := g.Fork(t, outsider, repo)
	first := g.Push(t, outsider, fork, "patch", "main", map[string]testenv.File{"P": {Content: "1\n"}}, "patch 1")
	n := g.CreatePullRequest(t, outsider, repo, outsider.Name+":patch", "main", "from a fork")
	got["pr_opened_fork.json"] = l.wait(t, "pull_request", func(m map[string]any) bool {
		return field(m, "action") == "opened" && field(m, "pull_request", "head", "sha") == first
	})
	second := g.Push(t, outsider, fork, "patch", "", map[string]testenv.File{"P": {Content: "2\n"}}, "patch 2")
	got["pr_synchronized.json"] = l.wait(t, "pull_request", func(m map[string]any) bool {
		return field(m, "action") == "synchronized" && field(m, "pull_request", "head", "sha") == second
	})
	// A comment on the pull request, then the same comment edited: Gitea sends both as
	// issue_comment, with X-Gitea-Event-Type pull_request_comment.
	body := "Looks good.\n\n/rebuild nix\n\n> /rebuild quoted\n"
	c, _, err := g.Client(t, owner.Token).CreateIssueComment(repo.Owner, repo.Name, n, sdk.CreateIssueCommentOption{Body: body})
	if err != nil {
		t.Fatal(err)
	}
	got["pr_comment_created.json"] = l.wait(t, "issue_comment", func(m map[string]any) bool {
		return field(m, "action") == "created" && field(m, "comment", "body") == body
	})
	if _, _, err := g.Client(t, owner.Token).EditIssueComment(repo.Owner, repo.Name, c.ID, sdk.EditIssueCommentOption{Body: body + "edited\n"}); err != nil {
		t.Fatal(err)
	}
	got["pr_comment_edited.json"] = l.wait(t, "issue_comment", is("action", "edited"))
	closePR(t, g, owner, repo, n)
	got["pr_closed.json"] = l.wait(t, "pull_request", is("action", "closed"))

	feature := g.Push(t, owner, repo, "feature", "main", map[string]testenv.File{"F": {Content: "f\n"}}, "feature")
	g.CreatePullRequest(t, owner, repo, "feature", "main", "same repository")
	got["pr_same_repo.json"] = l.wait(t, "pull_request", func(m map[string]any) bool {
		return field(m, "action") == "opened" && field(m, "pull_request", "head", "sha") == feature
	})

	for name, c := range got {
		check(t, name, c, expectations[name])
	}
	if !*update {
		return
	}
	for name, c := range got {
		var pretty any
		_ = json.Unmarshal(c.Body, &pretty)
		body, _ := json.MarshalIndent(pretty, "  ", "  ")
		out, _ := json.MarshalIndent(capture{Event: c.Event, EventType: c.EventType, Delivery: c.Delivery, Body: body}, "", "  ")
		if err := os.WriteFile(filepath.Join(forgetest.GiteaDir, name), append(out, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func closePR(t *testing.T, g *testenv.Gitea, owner *testenv.User, repo *testenv.Repo, n int64) {
	t.Helper()
	closed := sdk.StateClosed
	if _, _, err := g.Client(t, owner.Token).EditPullRequest(repo.Owner, repo.Name, n, sdk.EditPullRequestOption{State: &closed}); err != nil {
		t.Fatalf("close pull request #%d: %v", n, err)
	}
}

// Fields that reach git, Nomad and the builder's shell are refused when git would refuse
// them, even in a delivery whose signature verified.
func TestParseRejectsHostileFields(t *testing.T) {
	load := func(name string) (capture, map[string]any) {
		raw, err := fs.ReadFile(captured, name)
		if err != nil {
			t.Fatal(err)
		}
		var c capture
		if err := json.Unmarshal(raw, &c); err != nil {
			t.Fatal(err)
		}
		var body map[string]any
		if err := json.Unmarshal(c.Body, &body); err != nil {
			t.Fatal(err)
		}
		return c, body
	}
	cases := map[string]struct {
		file   string
		mutate func(map[string]any)
	}{
		"option as commit":       {"push_branch.json", func(b map[string]any) { b["after"] = "--upload-pack=touch /tmp/pwned" }},
		"short commit":           {"push_branch.json", func(b map[string]any) { b["after"] = "abc1234" }},
		"newline in branch":      {"push_branch.json", func(b map[string]any) { b["ref"] = "refs/heads/main\nFLAVOR=evil" }},
		"option as branch":       {"push_branch.json", func(b map[string]any) { b["ref"] = "refs/heads/--exec=sh" }},
		"dotdot in tag":          {"push_tag.json", func(b map[string]any) { b["ref"] = "refs/tags/v1..0" }},
		"ext:: clone url":        {"push_branch.json", func(b map[string]any) { field(b, "repository").(map[string]any)["clone_url"] = "ext::sh -c id" }},
		"option as pr head sha":  {"pr_opened_fork.json", func(b map[string]any) { field(b, "pull_request", "head").(map[string]any)["sha"] = "--upload-pack=id" }},
		"escape in pr head ref":  {"pr_opened_fork.json", func(b map[string]any) { field(b, "pull_request", "head").(map[string]any)["ref"] = "patch\x1b[2J" }},
		"control char in sender": {"push_branch.json", func(b map[string]any) { field(b, "sender").(map[string]any)["login"] = "x\ry" }},
	}
	for name, tc := range cases {
		c, body := load(tc.file)
		tc.mutate(body)
		c.Body, _ = json.Marshal(body)
		if ev, err := gitea.Parse(c.header(), c.Body); !errors.Is(err, forge.ErrMalformed) {
			t.Errorf("%s: Parse = %+v, %v; want ErrMalformed", name, ev, err)
		}
	}
}
