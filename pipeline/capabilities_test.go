package pipeline_test

import (
	"context"
	"strings"
	"testing"

	"github.com/albatros-ci/albatros/forge"
	"github.com/albatros-ci/albatros/forge/forgetest"
	"github.com/albatros-ci/albatros/pipeline"
)

// Each decision that depends on what the forge can tell denies when the forge cannot
// (forge.ErrUnsupported): shown here on the same events, with and without the capability.

// A closed pull request stops its builds only when the forge confirms it closed.
func TestClosedNeedsTheForgesWord(t *testing.T) {
	for _, lacks := range []bool{false, true} {
		e := entryWith("default")
		h := newHarness(e)
		if _, err := h.p.Handle(context.Background(), discard, prEvent("quentin", ""), e, pipeline.Options{}); err != nil {
			t.Fatal(err)
		}
		info, _ := h.forge.PullRequestInfo(context.Background(), appRepo, 42)
		info.Open = false
		h.forge.SetPR(info)
		if lacks {
			h.forges.Forge = forgetest.Without(h.forge, forgetest.PullRequests)
		}
		closed := forge.Event{Kind: forge.KindPullRequestClosed, Repo: appRepo, Sender: "quentin", PullRequest: &forge.PullRequest{Number: 42}}
		if _, err := h.p.Handle(context.Background(), discard, closed, e, pipeline.Options{}); err != nil {
			t.Fatal(err)
		}
		if want, n := map[bool]int{false: 1, true: 0}[lacks], len(h.builds.Stopped()); n != want {
			t.Errorf("forge lacking pull requests %v: %d builds stopped, want %d", lacks, n, want)
		}
	}
}

// A writer's /rebuild runs only when the forge can tell writers: one that cannot has
// none, and only trusted users' commands run.
func TestCommandsNeedTheForgesWriters(t *testing.T) {
	for _, lacks := range []bool{false, true} {
		e := entryWith("default") // trusts quentin, not wendy
		h := newHarness(e)
		h.forge.Writers = []string{"wendy"}
		h.forge.SetPR(forkPR(sha2))
		if lacks {
			h.forges.Forge = forgetest.Without(h.forge, forgetest.Writers)
		}
		if _, err := h.p.Handle(context.Background(), discard, prComment(h, "wendy", "/rebuild"), e, pipeline.Options{}); err != nil {
			t.Fatal(err)
		}
		want := map[bool]int{false: 1, true: 0}[lacks]
		if n := len(h.builds.Dispatches()); n != want {
			t.Errorf("forge lacking writers %v: %d builds from a writer's /rebuild, want %d", lacks, n, want)
		}
		if lacks {
			cs, _ := h.forge.Comments(context.Background(), appRepo, 42)
			if last := cs[len(cs)-1]; !strings.Contains(last.Body, "nothing was run") {
				t.Errorf("last comment %q, want the refusal", last.Body)
			}
		}
	}
}

// A trusted team's member gets the secrets only when the forge can tell team members.
func TestTrustedTeamsNeedTheForgesTeams(t *testing.T) {
	for _, lacks := range []bool{false, true} {
		e := entryWith()
		e.Trusted.Senders = nil
		e.Trusted.Teams = []string{"release"}
		e.Secrets = map[string]string{"TOKEN": "tok-123"}
		h := newHarness(e)
		h.forge.Teams = map[string][]string{"org/release": {"tess"}}
		if lacks {
			h.forges.Forge = forgetest.Without(h.forge, forgetest.TeamMembers)
		}
		ev := pushEvent()
		ev.Sender = "tess"
		if _, err := h.p.Handle(context.Background(), discard, ev, e, pipeline.Options{}); err != nil {
			t.Fatal(err)
		}
		d := h.builds.Dispatches()
		if len(d) != 1 || d[0].HasSecrets == lacks {
			t.Errorf("forge lacking teams %v: dispatched %+v, want one build with secrets %v", lacks, d, !lacks)
		}
	}
}

// A pull request's stopped build is built again on a new delivery only when the forge says
// the pull request is open at that head.
func TestBuildAgainNeedsTheForgesWord(t *testing.T) {
	for _, lacks := range []bool{false, true} {
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
		info.Open = true
		h.forge.SetPR(info)
		if lacks {
			h.forges.Forge = forgetest.Without(h.forge, forgetest.PullRequests)
		}
		if _, err := h.p.Handle(context.Background(), discard, ev, e, pipeline.Options{}); err != nil {
			t.Fatal(err)
		}
		if want, n := map[bool]int{false: 2, true: 1}[lacks], len(h.builds.Started()); n != want {
			t.Errorf("forge lacking pull requests %v: %d builds after the reopening, want %d", lacks, n, want)
		}
	}
}
