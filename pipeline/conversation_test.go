package pipeline_test

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/albatros-ci/albatros/forge"
	"github.com/albatros-ci/albatros/orchestrator"
	"github.com/albatros-ci/albatros/orchestrator/orchestratortest"
	"github.com/albatros-ci/albatros/pipeline"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden with the comments the pipeline writes now")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./pipeline -update)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

const sha2 = "0b5f1d7e2c9a4b3e6f8d1c2b3a4e5f6d7c8b9a0e"

// forkPR is pull request 42 from mallory's fork, at head.
func forkPR(head string) forge.PullRequestInfo {
	return forge.PullRequestInfo{
		PullRequest: forge.PullRequest{Number: 42, HeadRepo: forge.Repo{CloneURL: "https://git.example.com/mallory/app.git", FullName: "mallory/app", Owner: "mallory", Name: "app"}, HeadBranch: "feature", BaseBranch: "main", Fork: true, Author: "mallory"},
		Head:        head, Open: true,
	}
}

// comments returns the bot's conversation comments.
func botComments(h *harness) []forge.Comment {
	list, _ := h.forge.Comments(context.Background(), appRepo, 42)
	var out []forge.Comment
	for _, c := range list {
		if c.Author == "albatros" && strings.HasPrefix(c.Body, pipeline.Marker) {
			out = append(out, c)
		}
	}
	return out
}

// The pull request's one comment: written at dispatch, edited (never doubled) by a
// redelivery and by a new head, which collapses the earlier one; it asks for an approval
// of the head while its builds run without the secrets.
func TestConversationComment(t *testing.T) {
	e := entryWith("default", "nix")
	e.Secrets = map[string]string{"TOKEN": "tok-123"}
	h := newHarness(e)
	h.forge.SetPR(forkPR(sha))
	ev := prEvent("mallory", "mallory")
	if _, err := h.p.Handle(context.Background(), discard, ev, e, pipeline.Options{}); err != nil {
		t.Fatal(err)
	}
	c := botComments(h)
	if len(c) != 1 {
		t.Fatalf("%d comments after the first push, want 1", len(c))
	}
	golden(t, "conversation-first.golden", c[0].Body)

	if _, err := h.p.Handle(context.Background(), discard, ev, e, pipeline.Options{}); err != nil {
		t.Fatal(err)
	}
	if c := botComments(h); len(c) != 1 {
		t.Fatalf("%d comments after a redelivery, want 1", len(c))
	}

	h.forge.SetPR(forkPR(sha2))
	ev2 := prEvent("mallory", "mallory")
	ev2.Commit = sha2
	if _, err := h.p.Handle(context.Background(), discard, ev2, e, pipeline.Options{}); err != nil {
		t.Fatal(err)
	}
	c = botComments(h)
	if len(c) != 1 || h.forge.Edits() == 0 {
		t.Fatalf("%d comments, %d edits after a second head; want 1 comment, edited", len(c), h.forge.Edits())
	}
	golden(t, "conversation-second.golden", c[0].Body)
}

// Commands: who may, what runs, what is said.
func TestCommentCommands(t *testing.T) {
	e := entryWith("default", "nix")
	e.Secrets = map[string]string{"TOKEN": "tok-123"}
	comment := func(h *harness, author, body string) (forge.Event, int) {
		c := h.forge.AddComment(42, author, body)
		return forge.Event{Kind: forge.KindComment, Repo: appRepo, Sender: author, PullRequest: &forge.PullRequest{Number: 42}, Comment: &c}, len(h.builds.Dispatches())
	}
	replies := func(h *harness, not int64) []string {
		list, _ := h.forge.Comments(context.Background(), appRepo, 42)
		var out []string
		for _, c := range list {
			if c.Author == "albatros" && c.ID != not && !strings.HasPrefix(c.Body, pipeline.Marker) {
				out = append(out, c.Body)
			}
		}
		return out
	}
	tests := []struct {
		name, author, body string
		writers            []string
		closed             bool
		wantFlavors        []string // dispatched
		wantSecrets        bool
		wantReply          string
		wantReactions      []string
	}{
		{name: "rebuild by a writer", author: "wanda", body: "/rebuild", writers: []string{"wanda"}, wantFlavors: []string{"default", "nix"}, wantReactions: []string{"eyes", "rocket"}},
		{name: "rebuild of a flavor by a trusted user", author: "quentin", body: "flaky\n/rebuild nix", wantFlavors: []string{"nix"}, wantReactions: []string{"eyes", "rocket"}},
		{name: "rebuild of an unknown flavor", author: "quentin", body: "/rebuild arm", wantReply: "`arm` is not a flavor of this repository (default, nix)", wantReactions: []string{"eyes"}},
		{name: "rebuild of a flavor with backticks", author: "quentin", body: "/rebuild `@everyone`", wantReply: "`@everyone` is not a flavor", wantReactions: []string{"eyes"}},
		{name: "rebuild by an outsider", author: "mallory", body: "/rebuild", wantReply: "@mallory only this repository's maintainers"},
		{name: "the bot's own comment", author: "albatros", body: "/rebuild"},
		{name: "the bot's own comment, other case", author: "Albatros", body: "/rebuild"},
		{name: "quoted", author: "quentin", body: "> /rebuild"},
		{name: "approve the head", author: "quentin", body: "/approve " + sha2, wantFlavors: []string{"default", "nix"}, wantSecrets: true, wantReactions: []string{"eyes", "rocket"}},
		{name: "approve the head, upper case", author: "quentin", body: "/approve " + strings.ToUpper(sha2), wantFlavors: []string{"default", "nix"}, wantSecrets: true, wantReactions: []string{"eyes", "rocket"}},
		{name: "approve by a prefix of the head", author: "quentin", body: "/approve " + sha2[:12], wantReply: "takes the full id of the commit", wantReactions: []string{"eyes"}},
		{name: "approve by a writer who is not trusted", author: "wanda", body: "/approve " + sha2, writers: []string{"wanda"}, wantReply: "only this repository's trusted users may `/approve`", wantReactions: []string{"eyes"}},
		{name: "approve an older commit", author: "quentin", body: "/approve " + sha, wantReply: "its head is now `" + sha2[:12] + "`", wantReactions: []string{"eyes"}},
		{name: "approve no commit of the pull request", author: "quentin", body: "/approve " + strings.Repeat("d", 40), wantReply: "is no commit of this pull request", wantReactions: []string{"eyes"}},
		{name: "approve without a sha", author: "quentin", body: "/approve", wantReply: "`/approve " + sha2 + "` for the head", wantReactions: []string{"eyes"}},
		{name: "approve an older commit, then rebuild", author: "quentin", body: "/approve " + sha + "\n/rebuild nix", wantFlavors: []string{"nix"}, wantReply: "its head is now", wantReactions: []string{"eyes", "rocket"}},
		{name: "on a closed pull request", author: "quentin", body: "/rebuild", closed: true, wantReply: "this pull request is closed", wantReactions: []string{"eyes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(e)
			h.forge.Writers = tt.writers
			pr := forkPR(sha2)
			pr.Open = !tt.closed
			h.forge.SetPR(pr)
			h.forge.Commits = map[int64][]string{42: {sha, sha2}}
			ev, before := comment(h, tt.author, tt.body)
			if _, err := h.p.Handle(context.Background(), discard, ev, e, pipeline.Options{}); err != nil {
				t.Fatalf("Handle: %v", err)
			}
			reqs := h.builds.Dispatches()[before:]
			var flavors []string
			for _, r := range reqs {
				flavors = append(flavors, r.Meta["FLAVOR"])
				if r.Meta["COMMIT"] != sha2 || r.Meta["PR"] != "42" || r.HasSecrets != tt.wantSecrets {
					t.Errorf("dispatched %+v, want the head %s with secrets %v", r.Meta, sha2[:7], tt.wantSecrets)
				}
			}
			if strings.Join(flavors, ",") != strings.Join(tt.wantFlavors, ",") {
				t.Errorf("dispatched flavors %q, want %q", flavors, tt.wantFlavors)
			}
			r := replies(h, ev.Comment.ID)
			if tt.wantReply == "" && len(r) > 0 || tt.wantReply != "" && (len(r) != 1 || !strings.Contains(r[0], tt.wantReply)) {
				t.Errorf("replies %q, want %q", r, tt.wantReply)
			}
			var reactions []string
			for _, x := range h.forge.Reactions() {
				if x.Comment == ev.Comment.ID {
					reactions = append(reactions, x.Reaction)
				}
			}
			if strings.Join(reactions, ",") != strings.Join(tt.wantReactions, ",") {
				t.Errorf("reactions %q, want %q", reactions, tt.wantReactions)
			}
		})
	}
}

// A rebuild is a new build once per comment: the same comment delivered again starts
// nothing new, another comment does.
func TestRebuildOncePerComment(t *testing.T) {
	e := entryWith()
	h := newHarness(e)
	h.forge.SetPR(forkPR(sha2))
	first := h.forge.AddComment(42, "quentin", "/rebuild")
	ev := forge.Event{Kind: forge.KindComment, Repo: appRepo, Sender: "quentin", PullRequest: &forge.PullRequest{Number: 42}, Comment: &first}
	for range 2 {
		if _, err := h.p.Handle(context.Background(), discard, ev, e, pipeline.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	second := h.forge.AddComment(42, "quentin", "/rebuild")
	ev.Comment = &second
	if _, err := h.p.Handle(context.Background(), discard, ev, e, pipeline.Options{}); err != nil {
		t.Fatal(err)
	}
	if n := len(h.builds.Started()); n != 2 {
		t.Fatalf("%d builds started by two comments, one delivered twice; want 2", n)
	}
}

// prComment is quentin's (or author's) new comment on pull request 42.
func prComment(h *harness, author, body string) forge.Event {
	c := h.forge.AddComment(42, author, body)
	return forge.Event{Kind: forge.KindComment, Repo: appRepo, Sender: author, PullRequest: &forge.PullRequest{Number: 42}, Comment: &c}
}

// An approval in a delivery that withholds the secrets gives none; comments and closed
// pull requests in unsigned deliveries are refused and change nothing.
func TestUnprovenDeliveries(t *testing.T) {
	e := entryWith("default")
	e.Secrets = map[string]string{"TOKEN": "tok-123"}
	h := newHarness(e)
	h.forge.SetPR(forkPR(sha2))
	if _, err := h.p.Handle(context.Background(), discard, prComment(h, "quentin", "/approve "+sha2), e, pipeline.Options{NoSecrets: true}); err != nil {
		t.Fatal(err)
	}
	if d := h.builds.Dispatches(); len(d) != 1 || d[0].HasSecrets {
		t.Fatalf("dispatches %+v, want one without the secrets", d)
	}
	closed := forge.Event{Kind: forge.KindPullRequestClosed, Repo: appRepo, Sender: "quentin", PullRequest: &forge.PullRequest{Number: 42}}
	for _, ev := range []forge.Event{prComment(h, "quentin", "/rebuild"), closed} {
		if _, err := h.p.Handle(context.Background(), discard, ev, e, pipeline.Options{NoSecrets: true, Unsigned: true}); err == nil {
			t.Errorf("%s in an unsigned delivery: no error", ev.Kind)
		}
	}
	if n, s := len(h.builds.Dispatches()), len(h.builds.Stopped()); n != 1 || s != 0 {
		t.Errorf("%d dispatches, %d stops after unsigned deliveries; want 1 and 0", n, s)
	}
}

// /rebuild gives the secrets only when the commit is trusted (a trusted user pushed it):
// whoever opened the pull request, its head may have been pushed by someone else.
func TestRebuildSecretsFollowTheCommit(t *testing.T) {
	e := entryWith("default")
	e.Secrets = map[string]string{"TOKEN": "tok-123"}
	h := newHarness(e) // pull request 42 between branches, opened by quentin (trusted)
	h.forge.Writers = []string{"wanda"}
	if _, err := h.p.Handle(context.Background(), discard, prComment(h, "wanda", "/rebuild"), e, pipeline.Options{}); err != nil {
		t.Fatal(err)
	}
	push := pushEvent()
	push.Branch = "feature"
	if _, err := h.p.Handle(context.Background(), discard, push, e, pipeline.Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.p.Handle(context.Background(), discard, prComment(h, "wanda", "/rebuild"), e, pipeline.Options{}); err != nil {
		t.Fatal(err)
	}
	var got []bool
	for _, d := range h.builds.Dispatches() {
		got = append(got, d.HasSecrets)
	}
	if !slices.Equal(got, []bool{false, true, true}) {
		t.Errorf("secrets of the rebuild, the trusted push's build, the second rebuild: %v; want false, true, true", got)
	}
}

// A /rebuild stops the build of the same commit still running, and that build's end does
// not overwrite the new build's status.
func TestRebuildReplacesTheRunningBuild(t *testing.T) {
	e := entryWith("default")
	h := newHarness(e)
	if _, err := h.p.Handle(context.Background(), discard, prEvent("quentin", ""), e, pipeline.Options{}); err != nil {
		t.Fatal(err)
	}
	first := h.builds.Started()[0]
	if _, err := h.p.Handle(context.Background(), discard, prComment(h, "quentin", "/rebuild"), e, pipeline.Options{}); err != nil {
		t.Fatal(err)
	}
	started := h.builds.Started()
	if len(started) != 2 || !slices.Equal(h.builds.Stopped(), []orchestratortest.Ref{{Namespace: first.Namespace, ID: first.JobID}}) {
		t.Fatalf("started %v, stopped %v; want a second build and the first stopped", started, h.builds.Stopped())
	}
	before := len(h.forge.Statuses())
	if err := h.p.Report(context.Background(), discard, orchestrator.Outcome{Namespace: first.Namespace, JobID: first.JobID, Result: orchestrator.Error, Description: "stopped", Final: true}); err != nil {
		t.Fatal(err)
	}
	if s := h.forge.Statuses(); len(s) != before {
		t.Errorf("the replaced build's end wrote %+v over the new build's status", s[before:])
	}
}

// A pull request closed and reopened on the same commit builds again (Nomad's idempotency
// would return the stopped build), once however often the reopening is delivered.
func TestReopenedPullRequestBuildsAgain(t *testing.T) {
	e := entryWith("default")
	h := newHarness(e)
	ev := prEvent("quentin", "")
	if _, err := h.p.Handle(context.Background(), discard, ev, e, pipeline.Options{}); err != nil {
		t.Fatal(err)
	}
	info, _ := h.forge.PullRequestInfo(context.Background(), appRepo, 42)
	info.Open = false
	h.forge.SetPR(info)
	closed := forge.Event{Kind: forge.KindPullRequestClosed, Repo: appRepo, Sender: "quentin", PullRequest: &forge.PullRequest{Number: 42}}
	if _, err := h.p.Handle(context.Background(), discard, closed, e, pipeline.Options{}); err != nil {
		t.Fatal(err)
	}
	if n := len(h.builds.Stopped()); n != 1 {
		t.Fatalf("%d builds stopped by the close, want 1", n)
	}
	// A late redelivery of the opening, while closed, starts nothing.
	if _, err := h.p.Handle(context.Background(), discard, ev, e, pipeline.Options{}); err != nil {
		t.Fatal(err)
	}
	if n := len(h.builds.Started()); n != 1 {
		t.Fatalf("%d builds after a redelivery to a closed pull request, want 1", n)
	}
	info.Open = true
	h.forge.SetPR(info)
	for range 2 {
		if _, err := h.p.Handle(context.Background(), discard, ev, e, pipeline.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(h.builds.Started()); n != 2 {
		t.Fatalf("%d builds after reopening (delivered twice), want 2", n)
	}
	last := h.forge.Statuses()[len(h.forge.Statuses())-1]
	if last.State != forge.StatePending || !strings.HasSuffix(last.TargetURL, h.builds.Started()[1].JobID) {
		t.Errorf("last status %+v, want the new build pending", last)
	}
}

// A closed pull request event that the forge contradicts (the pull request is open) stops
// nothing.
func TestClosedButOpen(t *testing.T) {
	e := entryWith("default")
	h := newHarness(e)
	if _, err := h.p.Handle(context.Background(), discard, prEvent("quentin", ""), e, pipeline.Options{}); err != nil {
		t.Fatal(err)
	}
	closed := forge.Event{Kind: forge.KindPullRequestClosed, Repo: appRepo, Sender: "quentin", PullRequest: &forge.PullRequest{Number: 42}}
	if _, err := h.p.Handle(context.Background(), discard, closed, e, pipeline.Options{}); err != nil {
		t.Fatal(err)
	}
	if s := h.builds.Stopped(); len(s) != 0 {
		t.Errorf("stopped %v for a pull request that is open", s)
	}
}

// A stranger's refused commands get one reply per pull request a while, not one each:
// anyone may comment on a public repository's pull requests, and each reply costs the
// forge's rate limit.
func TestStrangersRefusedCommandsGetOneReply(t *testing.T) {
	e := entryWith()
	h := newHarness(e)
	h.forge.SetPR(forkPR(sha2))
	say := func(author string) {
		c := h.forge.AddComment(42, author, "/rebuild")
		ev := forge.Event{Kind: forge.KindComment, Repo: appRepo, Sender: author, PullRequest: &forge.PullRequest{Number: 42}, Comment: &c}
		if _, err := h.p.Handle(context.Background(), discard, ev, e, pipeline.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	repliesTo := func(user string) int {
		list, _ := h.forge.Comments(context.Background(), appRepo, 42)
		n := 0
		for _, c := range list {
			if c.Author == "albatros" && strings.HasPrefix(c.Body, "@"+user+" ") {
				n++
			}
		}
		return n
	}
	for range 5 {
		say("mallory")
	}
	if n := repliesTo("mallory"); n != 1 || len(h.builds.Dispatches()) != 0 {
		t.Fatalf("%d replies to mallory's five refused commands, %d builds; want 1 and none", n, len(h.builds.Dispatches()))
	}
	// Another stranger gets theirs.
	say("eve")
	if n := repliesTo("eve"); n != 1 {
		t.Fatalf("%d replies to eve", n)
	}
}
