package github_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/albatros-ci/albatros/forge"
	"github.com/albatros-ci/albatros/forge/forgetest"
	"github.com/albatros-ci/albatros/forge/github"
)

// GitHub's own example payloads; testdata/README.md says where each comes from.
var payloads = forgetest.GitHub

// deliveryID is the example X-GitHub-Delivery of GitHub's webhook documentation.
const deliveryID = "72d3162e-cc78-11e3-81ab-4c9367dc0958"

// payload returns a testdata file's bytes.
func payload(t *testing.T, name string) []byte {
	t.Helper()
	b, err := fs.ReadFile(payloads, name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// delivery returns the headers GitHub sends with a delivery of event.
func delivery(event string) http.Header {
	h := http.Header{}
	h.Set("X-GitHub-Event", event)
	h.Set("X-GitHub-Delivery", deliveryID)
	return h
}

// decode reads a payload as generic JSON, keeping numbers as they are written.
func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

// edit returns a testdata payload changed by f, for the variants GitHub's examples lack.
func edit(t *testing.T, name string, f func(m map[string]any)) []byte {
	t.Helper()
	m := decode(t, payload(t, name))
	f(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// field returns the value at path in a decoded payload, nil when absent.
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

// str returns the string at path, "" when absent or not a string.
func str(m map[string]any, path ...string) string {
	s, _ := field(m, path...).(string)
	return s
}

// repoAt is the forge.Repo a payload's repository object at path describes, read
// independently of the code under test.
func repoAt(m map[string]any, path ...string) forge.Repo {
	at := func(k ...string) string { return str(m, append(append([]string{}, path...), k...)...) }
	return forge.Repo{CloneURL: at("clone_url"), FullName: at("full_name"), Owner: at("owner", "login"), OwnerID: num(m, append(append([]string{}, path...), "owner", "id")...), Name: at("name"), HTMLURL: at("html_url")}
}

// num is the number at path, 0 when there is none.
func num(m map[string]any, path ...string) int64 {
	n, _ := field(m, path...).(json.Number)
	v, _ := n.Int64()
	return v
}

// parseWant is what a payload must parse to, besides what is read from the payload itself.
type parseWant struct {
	event   string // X-GitHub-Event
	kind    forge.Kind
	ignored string // substring of the reason, for ignored deliveries
	branch  string
	tag     string
	action  string // pull request action
}

var parseWants = map[string]parseWant{
	"push_branch.json":              {event: "push", kind: forge.KindPush, branch: "master"},
	"push_tag.json":                 {event: "push", kind: forge.KindTag, tag: "simple-tag"},
	"push_tag_deleted.json":         {event: "push", ignored: "deletion of refs/tags/simple-tag"},
	"pull_request_opened.json":      {event: "pull_request", kind: forge.KindPullRequest, branch: "changes", action: "opened"},
	"pull_request_synchronize.json": {event: "pull_request", kind: forge.KindPullRequest, branch: "changes", action: "synchronize"},
	"pull_request_reopened.json":    {event: "pull_request", kind: forge.KindPullRequest, branch: "changes", action: "reopened"},
	"pull_request_closed.json":      {event: "pull_request", kind: forge.KindPullRequestClosed, branch: "changes", action: "closed"},
	"ping.json":                     {event: "ping", kind: forge.KindPing},
	"ping_organization.json":        {event: "ping", kind: forge.KindPing},
	// GitHub's issue_comment examples are all on issues; one on a pull request is derived
	// (TestParsePullRequestComment).
	"issue_comment_created.json": {event: "issue_comment", ignored: "comment on issue #1, not a pull request"},
	"issue_comment_edited.json":  {event: "issue_comment", ignored: "not a pull request"},
	"issue_comment_deleted.json": {event: "issue_comment", ignored: "not a pull request"},
	// The App's own events, and a pull request delivered through an installation.
	"pull_request_opened_installation.json":      {event: "pull_request", kind: forge.KindPullRequest, branch: "changes", action: "opened"},
	"pull_request_converted_to_draft.json":       {event: "pull_request", ignored: "converted_to_draft"},
	"pull_request_ready_for_review.json":         {event: "pull_request", ignored: "ready_for_review"},
	"installation_created.json":                  {event: "installation", kind: forge.KindInstallation, action: "created"},
	"installation_deleted.json":                  {event: "installation", kind: forge.KindInstallation, action: "deleted"},
	"installation_suspend.json":                  {event: "installation", kind: forge.KindInstallation, action: "suspend"},
	"installation_unsuspend.json":                {event: "installation", kind: forge.KindInstallation, action: "unsuspend"},
	"installation_new_permissions_accepted.json": {event: "installation", ignored: "new_permissions_accepted"},
	"installation_repositories_added.json":       {event: "installation_repositories", kind: forge.KindInstallation, action: "added"},
	"installation_repositories_removed.json":     {event: "installation_repositories", kind: forge.KindInstallation, action: "removed"},
}

var fullSHA = regexp.MustCompile(`^[0-9a-f]{40}$`)

func TestParsePayloads(t *testing.T) {
	entries, err := fs.ReadDir(payloads, ".")
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") { // README.md
			continue
		}
		want, ok := parseWants[e.Name()]
		if !ok {
			t.Errorf("testdata/%s has no expectation", e.Name())
			continue
		}
		seen++
		t.Run(e.Name(), func(t *testing.T) {
			body := payload(t, e.Name())
			ev, err := github.Parse(delivery(want.event), body)
			if want.ignored != "" {
				if !errors.Is(err, forge.ErrIgnoreEvent) || !strings.Contains(err.Error(), want.ignored) {
					t.Fatalf("Parse = %v, want ignored (%s)", err, want.ignored)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			checkEvent(t, ev, decode(t, body), want)
		})
	}
	if seen != len(parseWants) {
		t.Errorf("testdata holds %d of the %d expected payloads", seen, len(parseWants))
	}
}

// checkEvent compares a parsed event with the payload's own values and with want.
func checkEvent(t *testing.T, ev forge.Event, m map[string]any, want parseWant) {
	t.Helper()
	exp := forge.Event{Kind: want.kind, Delivery: deliveryID, Sender: str(m, "sender", "login"), SenderID: num(m, "sender", "id"), Branch: want.branch, Tag: want.tag,
		Installation: num(m, "installation", "id")}
	if want.kind == forge.KindInstallation {
		checkInstall(t, ev, m, want)
		return
	}
	if want.kind == forge.KindPullRequestClosed {
		exp.Branch = ""
	}
	if field(m, "repository") != nil {
		exp.Repo = repoAt(m, "repository")
	}
	var expPR *forge.PullRequest
	switch want.kind {
	case forge.KindPush, forge.KindTag:
		exp.Commit = str(m, "after")
		ref := "refs/heads/" + want.branch
		if want.kind == forge.KindTag {
			ref = "refs/tags/" + want.tag
		}
		if str(m, "ref") != ref {
			t.Fatalf("the payload's ref is %q, not %q", str(m, "ref"), ref)
		}
	case forge.KindPullRequest:
		exp.Commit = str(m, "pull_request", "head", "sha")
		number, _ := field(m, "pull_request", "number").(json.Number).Int64()
		expPR = &forge.PullRequest{
			Number:     number,
			HeadRepo:   repoAt(m, "pull_request", "head", "repo"),
			HeadBranch: str(m, "pull_request", "head", "ref"),
			BaseBranch: str(m, "pull_request", "base", "ref"),
			Fork:       str(m, "pull_request", "head", "repo", "full_name") != str(m, "pull_request", "base", "repo", "full_name"),
			Author:     str(m, "pull_request", "user", "login"),
			AuthorID:   num(m, "pull_request", "user", "id"),
			Action:     str(m, "action"),
		}
		if expPR.HeadBranch != want.branch || expPR.Action != want.action || number == 0 || expPR.BaseBranch == "" {
			t.Fatalf("the payload's pull request is %+v, not from %s, %s", expPR, want.branch, want.action)
		}
	case forge.KindPullRequestClosed:
		number, _ := field(m, "pull_request", "number").(json.Number).Int64()
		expPR = &forge.PullRequest{Number: number, HeadBranch: str(m, "pull_request", "head", "ref"), BaseBranch: str(m, "pull_request", "base", "ref"),
			Author: str(m, "pull_request", "user", "login"), AuthorID: num(m, "pull_request", "user", "id"), Action: "closed"}
	}

	gotPR := ev.PullRequest
	ev.PullRequest = nil
	if ev != exp {
		t.Errorf("Parse =\n%+v, want\n%+v", ev, exp)
	}
	switch {
	case (gotPR == nil) != (expPR == nil):
		t.Errorf("pull request = %+v, want %+v", gotPR, expPR)
	case gotPR != nil && *gotPR != *expPR:
		t.Errorf("pull request =\n%+v, want\n%+v", *gotPR, *expPR)
	}
	// Equal to the payload is not enough if the payload lacked the fields.
	if ev.Sender == "" {
		t.Error("no sender")
	}
	if want.kind != forge.KindPing && want.kind != forge.KindPullRequestClosed && (!fullSHA.MatchString(ev.Commit) || ev.Repo.CloneURL == "" || ev.Repo.Owner == "" || ev.Repo.Name == "") {
		t.Errorf("commit %q, repo %+v: missing fields", ev.Commit, ev.Repo)
	}
}

// GitHub's examples delete only tags (push_tag_deleted.json); a branch deletion is derived
// from push_branch.json, with deleted and after set as GitHub sends them and each alone.
func TestParseBranchDeletion(t *testing.T) {
	for name, f := range map[string]func(m map[string]any){
		"deleted and zero after": func(m map[string]any) { m["deleted"] = true; m["after"] = strings.Repeat("0", 40) },
		"deleted only":           func(m map[string]any) { m["deleted"] = true },
		"zero after only":        func(m map[string]any) { m["after"] = strings.Repeat("0", 40) },
		"zero SHA-256 after":     func(m map[string]any) { m["after"] = strings.Repeat("0", 64) },
	} {
		_, err := github.Parse(delivery("push"), edit(t, "push_branch.json", f))
		if !errors.Is(err, forge.ErrIgnoreEvent) || !strings.Contains(err.Error(), "deletion of refs/heads/master") {
			t.Errorf("%s: Parse = %v, want ignored as a deletion", name, err)
		}
	}
}

func TestParsePushToOtherRef(t *testing.T) {
	body := edit(t, "push_branch.json", func(m map[string]any) { m["ref"] = "refs/notes/commits" })
	if _, err := github.Parse(delivery("push"), body); !errors.Is(err, forge.ErrIgnoreEvent) || !strings.Contains(err.Error(), "refs/notes/commits") {
		t.Errorf("Parse = %v, want ignored", err)
	}
}

// GitHub's pull request examples all come from a branch of the base repository; a fork's is
// derived from pull_request_opened.json by moving the head to another owner.
func TestParseForkPullRequest(t *testing.T) {
	body := edit(t, "pull_request_opened.json", func(m map[string]any) {
		head := field(m, "pull_request", "head", "repo").(map[string]any)
		head["full_name"] = "octocat/Hello-World"
		head["clone_url"] = "https://github.com/octocat/Hello-World.git"
		head["html_url"] = "https://github.com/octocat/Hello-World"
		head["owner"].(map[string]any)["login"] = "octocat"
	})
	ev, err := github.Parse(delivery("pull_request"), body)
	if err != nil {
		t.Fatal(err)
	}
	pr := ev.PullRequest
	wantHead := forge.Repo{CloneURL: "https://github.com/octocat/Hello-World.git", FullName: "octocat/Hello-World", Owner: "octocat", OwnerID: 21031067, Name: "Hello-World", HTMLURL: "https://github.com/octocat/Hello-World"}
	if pr == nil || !pr.Fork || pr.HeadRepo != wantHead || ev.Repo.FullName != "Codertocat/Hello-World" {
		t.Errorf("Parse = %+v, pull request %+v; want a fork's", ev, pr)
	}
}

// Once a fork is deleted, GitHub sends its pull requests with a null head repository.
func TestParseDeletedForkPullRequest(t *testing.T) {
	body := edit(t, "pull_request_synchronize.json", func(m map[string]any) {
		field(m, "pull_request", "head").(map[string]any)["repo"] = nil
	})
	_, err := github.Parse(delivery("pull_request"), body)
	if !errors.Is(err, forge.ErrIgnoreEvent) || !strings.Contains(err.Error(), "head repository was deleted") {
		t.Errorf("Parse = %v, want ignored", err)
	}
}

func TestParseOtherPullRequestActions(t *testing.T) {
	// "synchronized" is Gitea's word; GitHub says "synchronize".
	for _, action := range []string{"edited", "labeled", "assigned", "converted_to_draft", "ready_for_review", "synchronized"} {
		body := edit(t, "pull_request_opened.json", func(m map[string]any) { m["action"] = action })
		_, err := github.Parse(delivery("pull_request"), body)
		if !errors.Is(err, forge.ErrIgnoreEvent) || !strings.Contains(err.Error(), action) {
			t.Errorf("%s: Parse = %v, want ignored", action, err)
		}
	}
}

func TestParseRejectsMalformed(t *testing.T) {
	tests := []struct{ name, event, body string }{
		{"not json", "push", `{"ref":`},
		{"null", "push", `null`},
		{"array", "push", `[]`},
		{"empty object", "push", `{}`},
		{"wrong type", "push", `{"ref":5,"after":"0123456789012345678901234567890123456789"}`},
		{"push without repository", "push", `{"ref":"refs/heads/main","after":"0123456789012345678901234567890123456789"}`},
		{"push without after", "push", `{"ref":"refs/heads/main","repository":{"full_name":"a/b","clone_url":"https://github.com/a/b.git"}}`},
		{"pr without head", "pull_request", `{"action":"opened","pull_request":{"number":1},"repository":{"full_name":"a/b","clone_url":"https://github.com/a/b.git"}}`},
		{"pr without repository", "pull_request", `{"action":"opened","pull_request":{"number":1,"head":{"sha":"0123456789012345678901234567890123456789"},"base":{}}}`},
		{"ping not json", "ping", `{`},
	}
	for _, tt := range tests {
		if _, err := github.Parse(delivery(tt.event), []byte(tt.body)); !errors.Is(err, forge.ErrMalformed) {
			t.Errorf("%s: Parse = %v, want ErrMalformed", tt.name, err)
		}
	}
	if _, err := github.Parse(http.Header{}, payload(t, "push_branch.json")); !errors.Is(err, forge.ErrMalformed) {
		t.Errorf("no X-GitHub-Event: Parse = %v, want ErrMalformed", err)
	}
	// An event the bot ignores is read for its repository alone (whose secret verifies
	// it): a body without one is malformed; with one, the event is ignored, and named.
	if _, err := github.Parse(delivery("star"), []byte(`{`)); !errors.Is(err, forge.ErrMalformed) {
		t.Errorf("ignored event with a bad body: Parse = %v, want ErrMalformed", err)
	}
	ev, err := github.Parse(delivery("star"), []byte(`{"action":"created","repository":{"full_name":"a/b","clone_url":"https://github.com/a/b.git"}}`))
	if !errors.Is(err, forge.ErrIgnoreEvent) || ev.Repo.CloneURL != "https://github.com/a/b.git" {
		t.Errorf("ignored event: Parse = %+v, %v; want ErrIgnoreEvent and its repository", ev.Repo, err)
	}
}

// Locate finds in every payload with a repository the repository Parse reports, whatever
// Parse makes of the event.
func TestLocate(t *testing.T) {
	for name, want := range parseWants {
		body := payload(t, name)
		m := decode(t, body)
		got, err := github.Locate(body)
		if field(m, "repository") == nil {
			if !errors.Is(err, forge.ErrMalformed) {
				t.Errorf("%s: Locate = %+v, %v; want ErrMalformed", name, got, err)
			}
			continue
		}
		if exp := repoAt(m, "repository"); err != nil || got != exp {
			t.Errorf("%s: Locate = %+v, %v; want %+v", name, got, err, exp)
		}
		// Whatever Parse makes of the event (ignored ones too), it names this repository.
		if ev, err := github.Parse(delivery(want.event), body); ev.Repo != got {
			t.Errorf("%s: Parse's repository %+v (%v) is not Locate's %+v", name, ev.Repo, err, got)
		}
	}
	for _, body := range []string{`{`, `{}`, `{"repository":null}`, `{"repository":{}}`, `{"repository":{"full_name":"a/b"}}`, `[]`} {
		if _, err := github.Locate([]byte(body)); !errors.Is(err, forge.ErrMalformed) {
			t.Errorf("Locate(%s) = %v, want ErrMalformed", body, err)
		}
	}
}

// Fields that reach git, Nomad and the builder's shell are refused when git would refuse
// them, even in a delivery whose signature verified.
func TestParseRejectsHostileFields(t *testing.T) {
	cases := map[string]struct {
		event, file string
		mutate      func(map[string]any)
	}{
		"option as commit":      {"push", "push_branch.json", func(m map[string]any) { m["after"] = "--upload-pack=touch /tmp/pwned" }},
		"newline in branch":     {"push", "push_branch.json", func(m map[string]any) { m["ref"] = "refs/heads/main\nx" }},
		"option as tag":         {"push", "push_tag.json", func(m map[string]any) { m["ref"] = "refs/tags/-v1" }},
		"ext:: clone url":       {"push", "push_branch.json", func(m map[string]any) { field(m, "repository").(map[string]any)["clone_url"] = "ext::sh -c id" }},
		"option as pr head sha": {"pull_request", "pull_request_opened.json", func(m map[string]any) { field(m, "pull_request", "head").(map[string]any)["sha"] = "--upload-pack=id" }},
		"bad pr head ref":       {"pull_request", "pull_request_opened.json", func(m map[string]any) { field(m, "pull_request", "head").(map[string]any)["ref"] = "a..b" }},
	}
	for name, tc := range cases {
		body := edit(t, tc.file, tc.mutate)
		if ev, err := github.Parse(delivery(tc.event), body); !errors.Is(err, forge.ErrMalformed) {
			t.Errorf("%s: Parse = %+v, %v; want ErrMalformed", name, ev, err)
		}
	}
}

// checkInstall compares an installation event with its payload.
func checkInstall(t *testing.T, ev forge.Event, m map[string]any, want parseWant) {
	t.Helper()
	in := ev.Install
	if in == nil {
		t.Fatalf("Parse = %+v: no Install", ev)
	}
	id := num(m, "installation", "id")
	if ev.Kind != forge.KindInstallation || ev.Installation != id || in.ID != id || in.Action != want.action || ev.Repo != (forge.Repo{}) {
		t.Errorf("Parse = %+v, install %+v", ev, in)
	}
	if in.Account != str(m, "installation", "account", "login") || in.AccountID != num(m, "installation", "account", "id") || in.AccountID == 0 ||
		in.AccountType != str(m, "installation", "account", "type") {
		t.Errorf("account %s %d %s, payload's %v", in.Account, in.AccountID, in.AccountType, field(m, "installation", "account"))
	}
	names := func(key string) []string {
		var out []string
		list, _ := field(m, key).([]any)
		for _, r := range list {
			out = append(out, r.(map[string]any)["full_name"].(string))
		}
		return out
	}
	got := func(rs []forge.Repo) []string {
		var out []string
		for _, r := range rs {
			if r.Owner != in.Account || r.OwnerID != in.AccountID || r.FullName != r.Owner+"/"+r.Name {
				t.Errorf("listed repository %+v", r)
			}
			out = append(out, r.FullName)
		}
		return out
	}
	wantAdded, wantRemoved := names("repositories_added"), names("repositories_removed")
	if want.action == "created" {
		wantAdded = names("repositories")
	}
	if a, b := strings.Join(got(in.Added), ","), strings.Join(wantAdded, ","); a != b {
		t.Errorf("added %s, want %s", a, b)
	}
	if a, b := strings.Join(got(in.Removed), ","), strings.Join(wantRemoved, ","); a != b {
		t.Errorf("removed %s, want %s", a, b)
	}
}

// GitHub's pull requests are issues; a comment on one carries issue.pull_request
// (documented for the issue_comment event), which GitHub's examples lack: derived from
// issue_comment_created.json.
func TestParsePullRequestComment(t *testing.T) {
	body := edit(t, "issue_comment_created.json", func(m map[string]any) {
		field(m, "issue").(map[string]any)["pull_request"] = map[string]any{"url": "https://api.github.com/repos/Codertocat/Hello-World/pulls/1"}
		field(m, "comment").(map[string]any)["body"] = "/rebuild"
	})
	ev, err := github.Parse(delivery("issue_comment"), body)
	if err != nil {
		t.Fatal(err)
	}
	m := decode(t, body)
	c := ev.Comment
	if ev.Kind != forge.KindComment || ev.PullRequest == nil || ev.PullRequest.Number != num(m, "issue", "number") || c == nil ||
		c.ID != num(m, "comment", "id") || c.Body != "/rebuild" || c.Author != "Codertocat" || c.AuthorID != num(m, "comment", "user", "id") ||
		ev.Repo != repoAt(m, "repository") || ev.Commit != "" {
		t.Errorf("Parse = %+v, comment %+v", ev, c)
	}
	edited := edit(t, "issue_comment_edited.json", func(m map[string]any) {
		field(m, "issue").(map[string]any)["pull_request"] = map[string]any{"url": "x"}
	})
	if _, err := github.Parse(delivery("issue_comment"), edited); !errors.Is(err, forge.ErrIgnoreEvent) || !strings.Contains(err.Error(), "edited") {
		t.Errorf("edited comment: Parse = %v, want ignored", err)
	}
}

// An installation's account and repositories name registry keys: hostile names are
// refused, as is a repository of another account.
func TestParseInstallationRefusesHostileNames(t *testing.T) {
	for name, f := range map[string]func(m map[string]any){
		"account with a slash": func(m map[string]any) { field(m, "installation", "account").(map[string]any)["login"] = "a/../b" },
		"no account id":        func(m map[string]any) { field(m, "installation", "account").(map[string]any)["id"] = 0 },
		"repository of another": func(m map[string]any) {
			field(m, "repositories").([]any)[0].(map[string]any)["full_name"] = "octocat/Hello-World"
		},
		"repository name with ..": func(m map[string]any) { field(m, "repositories").([]any)[0].(map[string]any)["name"] = ".." },
		"strange selection":       func(m map[string]any) { field(m, "installation").(map[string]any)["repository_selection"] = "some" },
	} {
		_, err := github.Parse(delivery("installation"), edit(t, "installation_created.json", f))
		if !errors.Is(err, forge.ErrMalformed) {
			t.Errorf("%s: Parse = %v, want ErrMalformed", name, err)
		}
	}
}
