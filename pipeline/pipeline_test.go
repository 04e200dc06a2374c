package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/albatros-ci/albatros/forge"
	"github.com/albatros-ci/albatros/forge/forgetest"
	"github.com/albatros-ci/albatros/orchestrator"
	"github.com/albatros-ci/albatros/orchestrator/orchestratortest"
	"github.com/albatros-ci/albatros/pipeline"
	"github.com/albatros-ci/albatros/registry"
	"github.com/albatros-ci/albatros/registry/registrytest"
	"github.com/albatros-ci/albatros/secrets"
)

const (
	orgID    = 7 // the id of the organization "org" on the forge
	cloneURL = "https://git.example.com/org/app.git"
	sha      = "6dcb09b5b57875f334f61aebed695e2e4193db5e"
	baseURL  = "https://ci.example.com" // the bot's URL, without the trailing slash it is configured with
)

var (
	appRepo        = forge.Repo{CloneURL: cloneURL, FullName: "org/app", Owner: "org", OwnerID: orgID, Name: "app", HTMLURL: "https://git.example.com/org/app"}
	defaultBuilder = orchestrator.Builder{Namespace: "ci", Job: "builder"}
	discard        = slog.New(slog.DiscardHandler)
)

// harness is a pipeline on fakes, with the fakes at hand to shape and inspect.
type harness struct {
	p      *pipeline.Pipeline
	repos  *registrytest.Fake
	builds *orchestratortest.Fake
	forge  *forgetest.Forge
	forges *forgetest.Forges
	trust  *registrytest.Trust
}

// newHarness returns a pipeline whose registry holds entry for cloneURL.
func newHarness(entry *registry.Repo) *harness {
	h := &harness{
		repos:  &registrytest.Fake{Repos: map[string]*registry.Repo{cloneURL: entry}},
		builds: &orchestratortest.Fake{},
		forge:  &forgetest.Forge{},
		trust:  &registrytest.Trust{},
	}
	h.forges = &forgetest.Forges{Forge: h.forge, Repo: appRepo}
	// The bot's account, and the pull request that prEvent is about.
	h.forge.Login = "albatros"
	h.forge.SetPR(forge.PullRequestInfo{PullRequest: forge.PullRequest{Number: 42, HeadRepo: appRepo, HeadBranch: "feature", BaseBranch: "main", Author: "quentin"}, Head: sha, Open: true})
	h.p = pipeline.New(pipeline.Config{
		Repos:   h.repos,
		Builds:  h.builds,
		Forge:   h.forges.For,
		BaseURL: baseURL + "/",
		Builder: defaultBuilder,
		Trust:   h.trust,
	})
	return h
}

func entryWith(flavors ...string) *registry.Repo {
	e := &registry.Repo{Flavors: flavors}
	e.Trusted.Senders = []string{"quentin"}
	return e
}

func pushEvent() forge.Event {
	return forge.Event{Kind: forge.KindPush, Delivery: "delivery-1", Repo: appRepo, Commit: sha, Branch: "main", Sender: "quentin"}
}

func tagEvent() forge.Event {
	return forge.Event{Kind: forge.KindTag, Delivery: "delivery-2", Repo: appRepo, Commit: sha, Tag: "v1.2.0", Sender: "quentin"}
}

// agitEvent is an AGit pull request (pushed for review to refs/for/main) by author,
// reopened by sender.
func agitEvent(sender, author string) forge.Event {
	ev := prEvent(sender, "")
	ev.Branch = "refs/pull/42/head"
	ev.PullRequest.HeadBranch, ev.PullRequest.Fork, ev.PullRequest.AGit, ev.PullRequest.Author = ev.Branch, true, true, author
	ev.PullRequest.Action = "reopened"
	return ev
}

// prEvent is a pull request opened by sender, from a fork owned by forkOwner, or from a
// branch of the repository itself when forkOwner is empty.
func prEvent(sender, forkOwner string) forge.Event {
	head, fork := appRepo, forkOwner != ""
	if fork {
		head = forge.Repo{CloneURL: "https://git.example.com/" + forkOwner + "/app.git", FullName: forkOwner + "/app", Owner: forkOwner, Name: "app"}
	}
	return forge.Event{
		Kind: forge.KindPullRequest, Delivery: "delivery-3", Repo: appRepo, Commit: sha, Branch: "feature", Sender: sender,
		PullRequest: &forge.PullRequest{Number: 42, HeadRepo: head, HeadBranch: "feature", BaseBranch: "main", Fork: fork, Action: "opened"},
	}
}

// synced makes ev a pull request's update (synchronize) pushed by the sender of id
// sender, to a fork whose owner's id is owner.
func synced(ev forge.Event, sender, owner int64) forge.Event {
	ev.PullRequest.Action, ev.SenderID, ev.PullRequest.HeadRepo.OwnerID = "synchronize", sender, owner
	return ev
}

// edits makes ev an action of a fork's pull request whose branch the base repository's
// writers may push to, by the sender of id sender, the fork's owner's id being owner.
func edits(ev forge.Event, action string, sender, owner int64) forge.Event {
	ev.PullRequest.Action, ev.SenderID, ev.PullRequest.HeadRepo.OwnerID, ev.PullRequest.MaintainerEdits = action, sender, owner, true
	return ev
}

func flavorsOf(reqs []orchestrator.DispatchRequest) []string {
	var out []string
	for _, r := range reqs {
		out = append(out, r.Meta["FLAVOR"])
	}
	return out
}

func contextsOf(ss []forge.Status) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s.Context)
	}
	return out
}

func TestHandleOneBuildPerFlavor(t *testing.T) {
	tests := []struct {
		name    string
		flavors []string // the entry's
		flavor  string   // Handle's argument
		want    []string
	}{
		{"entry flavors", []string{"default", "nix", "arm"}, "", []string{"default", "nix", "arm"}},
		{"argument overrides entry", []string{"default", "nix"}, "arm", []string{"arm"}},
		{"argument without entry flavors", nil, "nix", []string{"nix"}},
		{"none is default", nil, "", []string{"default"}},
		{"empty list is default", []string{}, "", []string{"default"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(entryWith(tt.flavors...))
			got, err := h.p.Handle(context.Background(), discard, pushEvent(), h.repos.Repos[cloneURL], pipeline.Options{Flavor: tt.flavor})
			if err != nil {
				t.Fatalf("Handle: %v", err)
			}
			reqs := h.builds.Dispatches()
			if f := flavorsOf(reqs); !slices.Equal(f, tt.want) {
				t.Errorf("dispatched flavors %q, want %q", f, tt.want)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("Handle returned %d builds, want %d: %+v", len(got), len(tt.want), got)
			}
			for i, d := range got {
				b, err := h.builds.Build(context.Background(), d.Namespace, d.JobID)
				if err != nil {
					t.Fatalf("build %d returned by Handle is not one the fake dispatched: %v", i, err)
				}
				if b.Meta["FLAVOR"] != tt.want[i] {
					t.Errorf("build %d returned by Handle has flavor %q, want %q (flavor order)", i, b.Meta["FLAVOR"], tt.want[i])
				}
			}
			var wantContexts []string
			for _, f := range tt.want {
				wantContexts = append(wantContexts, "albatros/"+f)
			}
			if c := contextsOf(h.forge.Statuses()); !slices.Equal(c, wantContexts) {
				t.Errorf("status contexts %q, want %q", c, wantContexts)
			}
		})
	}
}

func TestHandleMeta(t *testing.T) {
	tests := []struct {
		name string
		ev   forge.Event
		want map[string]string
	}{
		{"push", pushEvent(), map[string]string{"REPO_URL": cloneURL, "COMMIT": sha, "BRANCH": "main", "FLAVOR": "nix"}},
		{"tag", tagEvent(), map[string]string{"REPO_URL": cloneURL, "COMMIT": sha, "BRANCH": "", "FLAVOR": "nix", "TAG": "v1.2.0"}},
		{"pull request", prEvent("quentin", ""), map[string]string{"REPO_URL": cloneURL, "COMMIT": sha, "BRANCH": "feature", "FLAVOR": "nix", "PR": "42"}},
		{"fork pull request", prEvent("mallory", "mallory"), map[string]string{"REPO_URL": cloneURL, "COMMIT": sha, "BRANCH": "feature", "FLAVOR": "nix", "PR": "42"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(entryWith("nix"))
			if _, err := h.p.Handle(context.Background(), discard, tt.ev, h.repos.Repos[cloneURL], pipeline.Options{}); err != nil {
				t.Fatalf("Handle: %v", err)
			}
			reqs := h.builds.Dispatches()
			if len(reqs) != 1 {
				t.Fatalf("%d dispatches, want 1", len(reqs))
			}
			if !maps.Equal(reqs[0].Meta, tt.want) {
				t.Errorf("meta %v, want %v", reqs[0].Meta, tt.want)
			}
		})
	}
}

func TestHandleBuilder(t *testing.T) {
	tests := []struct {
		name    string
		builder *registry.Builder // the entry's
		want    orchestrator.Builder
	}{
		{"default", nil, defaultBuilder},
		{"entry's job in the default namespace", &registry.Builder{Job: "mine"}, orchestrator.Builder{Namespace: "ci", Job: "mine"}},
		{"entry's job and namespace", &registry.Builder{Job: "mine", Namespace: "team"}, orchestrator.Builder{Namespace: "team", Job: "mine"}},
		{"entry without a job", &registry.Builder{Namespace: "team"}, defaultBuilder},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := entryWith()
			e.Builder = tt.builder
			h := newHarness(e)
			got, err := h.p.Handle(context.Background(), discard, pushEvent(), e, pipeline.Options{})
			if err != nil {
				t.Fatalf("Handle: %v", err)
			}
			reqs := h.builds.Dispatches()
			if len(reqs) != 1 || reqs[0].Builder != tt.want {
				t.Fatalf("dispatched %+v, want one build of %s", reqs, tt.want)
			}
			// The log link follows the build into its builder's namespace.
			want := baseURL + "/logs/" + tt.want.Namespace + "/" + got[0].JobID
			if s := h.forge.Statuses(); len(s) != 1 || s[0].TargetURL != want {
				t.Errorf("statuses %+v, want one linking to %s", s, want)
			}
		})
	}
}

func TestHandleSecrets(t *testing.T) {
	const inject = "set +x\nexport SECRET1=xx"
	vars := map[string]string{"REGISTRY_TOKEN": "tok-123", "DEPLOY_KEY": "it's a key"}
	full, err := secrets.Payload(inject, vars)
	if err != nil {
		t.Fatal(err)
	}
	injectOnly, err := secrets.Payload(inject, nil)
	if err != nil {
		t.Fatal(err)
	}
	varsOnly, err := secrets.Payload("", vars)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name        string
		senders     []string
		inject      string
		vars        map[string]string
		ev          forge.Event
		wantPayload []byte
		wantSecrets bool
		pushedBy    string // who pushed ev's commit before (its push delivery)
	}{
		{"trusted push", []string{"quentin", "lx"}, inject, vars, pushEvent(), full, true, ""},
		{"trusted tag", []string{"quentin"}, inject, vars, tagEvent(), full, true, ""},
		// A pull request between branches runs the code of whoever pushed its head.
		{"pull request of a trusted push", []string{"quentin"}, inject, vars, prEvent("mallory", ""), full, true, "quentin"},
		{"trusted sender, untrusted push", []string{"quentin"}, inject, vars, prEvent("quentin", ""), secrets.Empty(), false, "mallory"},
		{"trusted sender, push unknown", []string{"quentin"}, inject, vars, prEvent("quentin", ""), secrets.Empty(), false, ""},
		// An AGit pull request is its author's fork.
		{"AGit, untrusted author, trusted sender", []string{"quentin"}, inject, vars, agitEvent("quentin", "mallory"), secrets.Empty(), false, ""},
		{"AGit, trusted author", []string{"quentin"}, inject, vars, agitEvent("mallory", "quentin"), full, true, ""},
		{"trusted, inject only", []string{"quentin"}, inject, nil, pushEvent(), injectOnly, true, ""},
		{"trusted, secrets only", []string{"quentin"}, "", vars, pushEvent(), varsOnly, true, ""},
		{"trusted, nothing to give", []string{"quentin"}, "", nil, pushEvent(), secrets.Empty(), false, ""},
		{"untrusted push", []string{"lx"}, inject, vars, pushEvent(), secrets.Empty(), false, ""},
		{"no trusted senders", nil, inject, vars, pushEvent(), secrets.Empty(), false, ""},
		{"empty sender", []string{"", "quentin"}, inject, vars, func() forge.Event { e := pushEvent(); e.Sender = ""; return e }(), secrets.Empty(), false, ""},
		{"untrusted fork pull request", []string{"quentin"}, inject, vars, prEvent("mallory", "mallory"), secrets.Empty(), false, ""},
		{"untrusted pull request", []string{"quentin"}, inject, vars, prEvent("mallory", ""), secrets.Empty(), false, ""},
		// The fork's code runs: its owner decides, not who opened the pull request; and
		// opened by someone else (a writer may have pushed to the branch through another
		// pull request allowing maintainers' edits), its head is not vouched for.
		{"untrusted fork, trusted sender", []string{"quentin"}, inject, vars, prEvent("quentin", "mallory"), secrets.Empty(), false, ""},
		{"trusted fork, opened by someone else", []string{"lx"}, inject, vars, prEvent("mallory", "lx"), secrets.Empty(), false, ""},
		{"trusted fork, trusted sender", []string{"quentin"}, inject, vars, prEvent("quentin", "quentin"), full, true, ""},
		// An update pushed to the fork's branch by someone else than its owner (a
		// maintainer's edit, which GitHub and Gitea allow by default) is their code too.
		{"trusted fork, updated by its owner", []string{"lx"}, inject, vars, synced(prEvent("lx", "lx"), 7, 7), full, true, ""},
		{"trusted fork, updated by an untrusted writer", []string{"lx"}, inject, vars, synced(prEvent("mallory", "lx"), 9, 7), secrets.Empty(), false, ""},
		{"trusted fork, updated by another trusted user", []string{"lx", "quentin"}, inject, vars, synced(prEvent("quentin", "lx"), 8, 7), full, true, ""},
		// With maintainer edits allowed, the head may be a writer's, unless an update or
		// the opening by the fork's owner says otherwise.
		{"maintainer edits, opened by the fork's owner", []string{"lx"}, inject, vars, edits(prEvent("lx", "lx"), "opened", 7, 7), full, true, ""},
		{"maintainer edits, reopened by the fork's owner", []string{"lx"}, inject, vars, edits(prEvent("lx", "lx"), "reopened", 7, 7), secrets.Empty(), false, ""},
		{"maintainer edits, opened by someone else", []string{"lx"}, inject, vars, edits(prEvent("mallory", "lx"), "opened", 9, 7), secrets.Empty(), false, ""},
		{"maintainer edits, updated by the fork's owner", []string{"lx"}, inject, vars, edits(prEvent("lx", "lx"), "synchronize", 7, 7), full, true, ""},
		{"maintainer edits, updated by an untrusted writer", []string{"lx"}, inject, vars, edits(prEvent("mallory", "lx"), "synchronize", 9, 7), secrets.Empty(), false, ""},
		// Edits turned off since (or allowed to another pull request of the branch): a
		// reopening still cannot say who pushed the head.
		{"no maintainer edits, reopened by the fork's owner", []string{"lx"}, inject, vars, func() forge.Event {
			ev := edits(prEvent("lx", "lx"), "reopened", 7, 7)
			ev.PullRequest.MaintainerEdits = false
			return ev
		}(), secrets.Empty(), false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := entryWith("default", "nix")
			e.Trusted.Senders, e.Inject, e.Secrets = tt.senders, tt.inject, tt.vars
			h := newHarness(e)
			if tt.pushedBy != "" {
				push := pushEvent()
				push.Branch, push.Sender = "feature", tt.pushedBy
				if _, err := h.p.Handle(context.Background(), discard, push, e, pipeline.Options{}); err != nil {
					t.Fatalf("Handle the push: %v", err)
				}
			}
			before := len(h.builds.Dispatches())
			if _, err := h.p.Handle(context.Background(), discard, tt.ev, e, pipeline.Options{}); err != nil {
				t.Fatalf("Handle: %v", err)
			}
			reqs := h.builds.Dispatches()[before:]
			if len(reqs) != 2 {
				t.Fatalf("%d dispatches, want 2", len(reqs))
			}
			for _, r := range reqs {
				if string(r.Payload) != string(tt.wantPayload) || r.HasSecrets != tt.wantSecrets {
					t.Errorf("flavor %s: payload %q (HasSecrets %v), want %q (HasSecrets %v)",
						r.Meta["FLAVOR"], r.Payload, r.HasSecrets, tt.wantPayload, tt.wantSecrets)
				}
				if !tt.wantSecrets {
					for _, v := range append(slices.Collect(maps.Values(vars)), "SECRET1=xx") {
						if strings.Contains(string(r.Payload), v) {
							t.Errorf("flavor %s: a build without secrets got %q", r.Meta["FLAVOR"], v)
						}
					}
				}
			}
		})
	}
}

// tokenOf returns the idempotency token a fresh pipeline (a restarted bot, or another one)
// gives the build of ev in the default flavor, or in flavor.
func tokenOf(t *testing.T, ev forge.Event, builder *registry.Builder, flavor string) string {
	t.Helper()
	e := entryWith()
	e.Builder = builder
	h := newHarness(e)
	if ev.PullRequest != nil {
		pr := *ev.PullRequest
		pr.Author = ev.Sender
		h.forge.SetPR(forge.PullRequestInfo{PullRequest: pr, Head: ev.Commit, Open: true})
	}
	if _, err := h.p.Handle(context.Background(), discard, ev, e, pipeline.Options{Flavor: flavor}); err != nil {
		t.Fatalf("Handle: %v", err)
	}
	reqs := h.builds.Dispatches()
	if len(reqs) != 1 || reqs[0].IdempotencyToken == "" {
		t.Fatalf("dispatches %+v, want one with a token", reqs)
	}
	return reqs[0].IdempotencyToken
}

func TestHandleIdempotencyToken(t *testing.T) {
	base := tokenOf(t, pushEvent(), nil, "")

	redelivered := pushEvent()
	redelivered.Delivery = "delivery-99"
	if got := tokenOf(t, redelivered, nil, ""); got != base {
		t.Errorf("the same push delivered again has token %s, want %s", got, base)
	}
	if got := tokenOf(t, pushEvent(), &registry.Builder{Job: "builder", Namespace: "ci"}, ""); got != base {
		t.Errorf("naming the default builder in the entry changed the token: %s, want %s", got, base)
	}

	differ := map[string]struct {
		ev      forge.Event
		builder *registry.Builder
		flavor  string
	}{
		"commit": {ev: func() forge.Event { e := pushEvent(); e.Commit = strings.Repeat("a", 40); return e }()},
		"branch": {ev: func() forge.Event { e := pushEvent(); e.Branch = "dev"; return e }()},
		"repository": {ev: func() forge.Event {
			e := pushEvent()
			e.Repo.CloneURL = "https://git.example.com/org/other.git"
			return e
		}()},
		"flavor":              {ev: pushEvent(), flavor: "nix"},
		"tag":                 {ev: tagEvent()},
		"builder job":         {ev: pushEvent(), builder: &registry.Builder{Job: "mine"}},
		"builder ns":          {ev: pushEvent(), builder: &registry.Builder{Job: "builder", Namespace: "team"}},
		"pull request":        {ev: prEvent("quentin", "")},
		"tag named as branch": {ev: func() forge.Event { e := tagEvent(); e.Tag = "main"; return e }()},
	}
	seen := map[string]string{base: "push to main"}
	for name, d := range differ {
		got := tokenOf(t, d.ev, d.builder, d.flavor)
		if other, dup := seen[got]; dup {
			t.Errorf("token of the build with another %s equals the token of %s: %s", name, other, got)
		}
		seen[got] = "another " + name
	}

	// Same tag, pull request: the token follows the trigger too.
	tag2 := tagEvent()
	tag2.Tag = "v1.2.1"
	if tokenOf(t, tag2, nil, "") == tokenOf(t, tagEvent(), nil, "") {
		t.Errorf("two tags on the same commit share a token")
	}
	pr2 := prEvent("quentin", "")
	pr2.PullRequest.Number = 43
	if tokenOf(t, pr2, nil, "") == tokenOf(t, prEvent("quentin", ""), nil, "") {
		t.Errorf("two pull requests with the same head commit share a token")
	}
	prAgain := prEvent("quentin", "")
	prAgain.Delivery = "delivery-100"
	if tokenOf(t, prAgain, nil, "") != tokenOf(t, prEvent("quentin", ""), nil, "") {
		t.Errorf("the same pull request event delivered twice has two tokens")
	}
}

func TestHandlePendingStatus(t *testing.T) {
	h := newHarness(entryWith())
	got, err := h.p.Handle(context.Background(), discard, pushEvent(), h.repos.Repos[cloneURL], pipeline.Options{})
	if err != nil {
		t.Fatalf("Handle: %v", err)
	}
	if len(got) != 1 || got[0].Duplicate || got[0].Namespace != "ci" {
		t.Fatalf("Handle returned %+v, want one new build in ci", got)
	}
	want := forge.Status{
		Repo:        appRepo,
		Commit:      sha,
		State:       forge.StatePending,
		Context:     "albatros/default",
		Description: "queued in Nomad",
		TargetURL:   "https://ci.example.com/logs/ci/" + got[0].JobID,
	}
	s := h.forge.Statuses()
	if len(s) != 1 {
		t.Fatalf("%d statuses written, want exactly 1: %+v", len(s), s)
	}
	if s[0] != want {
		t.Errorf("status\n %+v\nwant\n %+v", s[0], want)
	}
	if u := h.p.LogURL("ci", got[0].JobID); u != want.TargetURL {
		t.Errorf("LogURL = %s, want the status's link %s", u, want.TargetURL)
	}
	if calls := h.forges.Calls(); len(calls) != 1 || calls[0].CloneURL != cloneURL || calls[0].Entry != h.repos.Repos[cloneURL] {
		t.Errorf("ForgeFor called %+v, want once with the entry and %s", calls, cloneURL)
	}
}

func TestHandleDuplicateWritesNoStatus(t *testing.T) {
	h := newHarness(entryWith("default", "nix"))
	e := h.repos.Repos[cloneURL]
	first, err := h.p.Handle(context.Background(), discard, pushEvent(), e, pipeline.Options{})
	if err != nil {
		t.Fatalf("first Handle: %v", err)
	}
	again := pushEvent()
	again.Delivery = "delivery-redelivered"
	second, err := h.p.Handle(context.Background(), discard, again, e, pipeline.Options{})
	if err != nil {
		t.Fatalf("second Handle: %v", err)
	}
	if len(second) != 2 {
		t.Fatalf("second Handle returned %+v, want the 2 builds", second)
	}
	for i, d := range second {
		if !d.Duplicate || d.JobID != first[i].JobID {
			t.Errorf("redelivery: build %d is %+v, want the duplicate of %s", i, d, first[i].JobID)
		}
	}
	if s := h.forge.Statuses(); len(s) != 2 {
		t.Errorf("%d statuses after a delivery and its redelivery, want 2 (one per flavor, none for duplicates): %+v", len(s), s)
	}
}

func TestHandleDispatchError(t *testing.T) {
	// Errors as the orchestrator returns them.
	errNomad := fmt.Errorf("dispatch ci/builder: %w", errors.New("Unexpected response code: 500 (no cluster leader)"))
	errRefused := fmt.Errorf("builder job ci/builder: %w", errors.New("dial tcp 127.0.0.1:4646: connect: connection refused"))
	errContract := fmt.Errorf("builder ci/builder %w", fmt.Errorf("%w: not parameterized; no task \"executor\" in group \"runner\"", orchestrator.ErrContract))
	errMissing := fmt.Errorf("builder job ci/builder: %w", orchestrator.ErrNotFound)
	tests := []struct {
		name    string
		failing map[string]error
		// wantDesc is the description of the error status of each failing flavor; the
		// others get a pending status.
		wantDesc map[string]string
	}{
		{"middle flavor fails", map[string]error{"nix": errNomad},
			map[string]string{"nix": "could not start the build: 500 (no cluster leader)"}},
		{"all fail", map[string]error{"default": errRefused, "nix": errRefused, "arm": errNomad},
			map[string]string{
				"default": "could not start the build: connection refused",
				"nix":     "could not start the build: connection refused",
				"arm":     "could not start the build: 500 (no cluster leader)",
			}},
		// Since 82462be a builder's own problem is the whole description: it says what to fix,
		// and fits a commit status (GitHub keeps 140 characters).
		{"builder breaks the contract", map[string]error{"default": errContract},
			map[string]string{"default": `builder ci/builder does not meet the builder contract: not parameterized; no task "executor" in group "runner"`}},
		{"builder missing", map[string]error{"arm": errMissing},
			map[string]string{"arm": "builder job ci/builder: not found in nomad"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(entryWith("default", "nix", "arm"))
			h.builds.DispatchErr = tt.failing
			got, err := h.p.Handle(context.Background(), discard, pushEvent(), h.repos.Repos[cloneURL], pipeline.Options{})
			if err == nil {
				t.Fatalf("Handle with failing dispatches returned no error")
			}
			for fl, ferr := range tt.failing {
				if !errors.Is(err, ferr) {
					t.Errorf("Handle's error %q does not wrap %s's dispatch error", err, fl)
				}
			}
			if f := flavorsOf(h.builds.Dispatches()); !slices.Equal(f, []string{"default", "nix", "arm"}) {
				t.Errorf("dispatched %q, want every flavor tried", f)
			}
			if len(got) != 3-len(tt.failing) {
				t.Errorf("Handle returned %d builds, want %d", len(got), 3-len(tt.failing))
			}
			s := h.forge.Statuses()
			if c := contextsOf(s); !slices.Equal(c, []string{"albatros/default", "albatros/nix", "albatros/arm"}) {
				t.Fatalf("status contexts %q, want one per flavor, in order", c)
			}
			for _, st := range s {
				if st.Commit != sha || st.Repo != appRepo {
					t.Errorf("%s: status on %s@%s, want %s@%s", st.Context, st.Repo.FullName, st.Commit, appRepo.FullName, sha)
				}
				want, failed := tt.wantDesc[strings.TrimPrefix(st.Context, "albatros/")]
				if !failed {
					if st.State != forge.StatePending {
						t.Errorf("%s: state %s, want pending", st.Context, st.State)
					}
					continue
				}
				if st.State != forge.StateError || st.Description != want {
					t.Errorf("%s: %s %q, want error %q", st.Context, st.State, st.Description, want)
				}
				if len(st.Description) > 140 {
					t.Errorf("%s: description of %d characters, more than a commit status keeps", st.Context, len(st.Description))
				}
			}
		})
	}
}

func TestHandleStatusWriteError(t *testing.T) {
	h := newHarness(entryWith("default", "nix"))
	errForge := errors.New("gitea: 401 Unauthorized")
	h.forge.SetErr = errForge
	got, err := h.p.Handle(context.Background(), discard, pushEvent(), h.repos.Repos[cloneURL], pipeline.Options{})
	if !errors.Is(err, errForge) {
		t.Errorf("Handle with a failing forge = %v, want an error wrapping %v", err, errForge)
	}
	if len(got) != 2 || len(h.builds.Dispatches()) != 2 {
		t.Errorf("returned %+v after %d dispatches, want both flavors dispatched and returned", got, len(h.builds.Dispatches()))
	}
}

func TestHandleForgeLookupError(t *testing.T) {
	h := newHarness(entryWith("default", "nix"))
	errNoForge := errors.New("no gitea url and token")
	h.forges.Err = errNoForge
	got, err := h.p.Handle(context.Background(), discard, pushEvent(), h.repos.Repos[cloneURL], pipeline.Options{})
	if !errors.Is(err, errNoForge) {
		t.Fatalf("Handle = %v, want an error wrapping %v", err, errNoForge)
	}
	if !strings.Contains(err.Error(), cloneURL) {
		t.Errorf("error %q does not name the repository", err)
	}
	if len(got) != 0 || len(h.builds.Dispatches()) != 0 || len(h.forge.Statuses()) != 0 {
		t.Errorf("with no forge: returned %+v, %d dispatches, %d statuses; want nothing", got, len(h.builds.Dispatches()), len(h.forge.Statuses()))
	}
}

func TestHandleReportsBuildThatAlreadyEnded(t *testing.T) {
	h := newHarness(entryWith("default", "nix"))
	h.builds.Ended = map[string]orchestrator.Outcome{
		"nix": {Result: orchestrator.Failure, Description: "the build failed: exit code 1", Final: true},
	}
	got, err := h.p.Handle(context.Background(), discard, pushEvent(), h.repos.Repos[cloneURL], pipeline.Options{})
	if err != nil {
		t.Fatalf("Handle: %v", err)
	}
	s := h.forge.Statuses()
	if len(s) != 3 {
		t.Fatalf("statuses %+v, want pending for each flavor and failure for nix", s)
	}
	if s[0].Context != "albatros/default" || s[0].State != forge.StatePending {
		t.Errorf("first status %+v, want pending on albatros/default", s[0])
	}
	link := baseURL + "/logs/ci/" + got[1].JobID
	if s[1].Context != "albatros/nix" || s[1].State != forge.StatePending || s[1].TargetURL != link {
		t.Errorf("second status %+v, want pending on albatros/nix linking to %s", s[1], link)
	}
	want := forge.Status{Repo: appRepo, Commit: sha, State: forge.StateFailure, Context: "albatros/nix", Description: "the build failed: exit code 1", TargetURL: link}
	if s[2] != want {
		t.Errorf("last status\n %+v\nwant the final one, after the pending\n %+v", s[2], want)
	}
	asked := h.builds.OutcomeCalls()
	wantAsked := []orchestratortest.Ref{{Namespace: got[0].Namespace, ID: got[0].JobID}, {Namespace: got[1].Namespace, ID: got[1].JobID}}
	if !slices.Equal(asked, wantAsked) {
		t.Errorf("outcomes asked of %+v, want of each build after its dispatch", asked)
	}
}

func TestHandleOutcomeError(t *testing.T) {
	h := newHarness(entryWith())
	errNomad := errors.New("allocations: connection refused")
	h.builds.OutcomeErr = errNomad
	_, err := h.p.Handle(context.Background(), discard, pushEvent(), h.repos.Repos[cloneURL], pipeline.Options{})
	if !errors.Is(err, errNomad) {
		t.Errorf("Handle = %v, want an error wrapping %v", err, errNomad)
	}
	if s := h.forge.Statuses(); len(s) != 1 || s[0].State != forge.StatePending {
		t.Errorf("statuses %+v, want the pending one", s)
	}
}

func TestHandleConcurrentDeliveriesDispatchSerially(t *testing.T) {
	h := newHarness(entryWith("default", "nix"))
	h.builds.DispatchDelay = 5 * time.Millisecond
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			ev := pushEvent()
			ev.Delivery = fmt.Sprintf("delivery-%d", i)
			_, errs[i] = h.p.Handle(context.Background(), discard, ev, h.repos.Repos[cloneURL], pipeline.Options{})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Handle %d: %v", i, err)
		}
	}
	reqs := h.builds.Dispatches()
	if len(reqs) != 2*n {
		t.Fatalf("%d dispatches, want %d (every delivery asks for both flavors)", len(reqs), 2*n)
	}
	if o := h.builds.Overlaps(); len(o) > 0 {
		t.Errorf("dispatches with the same token ran concurrently %d times", len(o))
	}
	if started := h.builds.Started(); len(started) != 2 {
		t.Errorf("%d builds started, want 2 (one per flavor)", len(started))
	}
	if c := contextsOf(h.forge.Statuses()); len(c) != 2 || !slices.Contains(c, "albatros/default") || !slices.Contains(c, "albatros/nix") {
		t.Errorf("statuses in contexts %q, want one pending per flavor", c)
	}
}

// reportHarness is a pipeline that knows one build of flavor nix of sha, as Nomad would
// after a restart: dispatched earlier, its meta still there.
func reportHarness() (*harness, orchestrator.Outcome, string) {
	h := newHarness(entryWith("nix"))
	const jobID = "builder/dispatch-albatros-1700000000-abcd1234"
	h.builds.AddBuild("ci", jobID, "builder", map[string]string{"REPO_URL": cloneURL, "COMMIT": sha, "BRANCH": "main", "FLAVOR": "nix"}, nil, "pending")
	out := orchestrator.Outcome{Namespace: "ci", JobID: jobID, Result: orchestrator.Success, Description: "the build succeeded", Final: true}
	return h, out, baseURL + "/logs/ci/" + jobID
}

func TestReport(t *testing.T) {
	_, _, link := reportHarness()
	otherLink := baseURL + "/logs/ci/builder/dispatch-albatros-1699999999-00000001"
	status := func(state forge.State, context, link string) forge.Status {
		return forge.Status{Repo: appRepo, Commit: sha, State: state, Context: context, TargetURL: link}
	}
	pendingOutcome := orchestrator.Outcome{Result: orchestrator.Pending, Description: "waiting for a node", Final: false}
	tests := []struct {
		name      string
		before    []forge.Status // already on the commit
		outcome   *orchestrator.Outcome
		writeOnly bool  // the forge lacks LatestStatus
		latestErr error // LatestStatus fails
		wantWrite bool
	}{
		{name: "first status", wantWrite: true},
		{name: "after its pending", before: []forge.Status{status(forge.StatePending, "albatros/nix", link)}, wantWrite: true},
		{name: "already reported", before: []forge.Status{status(forge.StateSuccess, "albatros/nix", link)}},
		{name: "same state of another build", before: []forge.Status{status(forge.StateSuccess, "albatros/nix", otherLink)}, wantWrite: true},
		{name: "same state and link in another context", before: []forge.Status{status(forge.StateSuccess, "albatros/default", link)}, wantWrite: true},
		{name: "final over an older final of the same build", before: []forge.Status{status(forge.StateError, "albatros/nix", link)}, wantWrite: true},
		{name: "waiting does not hide the final", before: []forge.Status{status(forge.StateFailure, "albatros/nix", link)}, outcome: &pendingOutcome},
		{name: "waiting repeated", before: []forge.Status{status(forge.StatePending, "albatros/nix", link)}, outcome: &pendingOutcome},
		{name: "waiting over another build's final", before: []forge.Status{status(forge.StateFailure, "albatros/nix", otherLink)}, outcome: &pendingOutcome, wantWrite: true},
		{name: "forge without LatestStatus", before: []forge.Status{status(forge.StateSuccess, "albatros/nix", link)}, writeOnly: true, wantWrite: true},
		{name: "LatestStatus fails", before: []forge.Status{status(forge.StateSuccess, "albatros/nix", link)}, latestErr: errors.New("gitea: 500"), wantWrite: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, out, link := reportHarness()
			if tt.outcome != nil {
				o := *tt.outcome
				o.Namespace, o.JobID = out.Namespace, out.JobID
				out = o
			}
			h.forge.AddStatuses(tt.before...)
			h.forge.LatestErr = tt.latestErr
			if tt.writeOnly {
				h.forges.Forge = forgetest.WriteOnly{Forge: h.forge}
			}
			if err := h.p.Report(context.Background(), discard, out); err != nil {
				t.Fatalf("Report: %v", err)
			}
			s := h.forge.Statuses()
			if !tt.wantWrite {
				if len(s) != len(tt.before) {
					t.Errorf("wrote %+v, want nothing", s[len(tt.before):])
				}
				return
			}
			if len(s) != len(tt.before)+1 {
				t.Fatalf("wrote %d statuses, want 1", len(s)-len(tt.before))
			}
			want := forge.Status{Repo: appRepo, Commit: sha, State: forge.State(out.Result), Context: "albatros/nix", Description: out.Description, TargetURL: link}
			if got := s[len(s)-1]; got != want {
				t.Errorf("wrote\n %+v\nwant\n %+v", got, want)
			}
			if lookups, _ := h.repos.Calls(); !slices.Equal(lookups, []string{cloneURL}) {
				t.Errorf("registry lookups %q, want the build's REPO_URL %s", lookups, cloneURL)
			}
			if calls := h.forges.Calls(); len(calls) != 1 || calls[0].CloneURL != cloneURL || calls[0].Entry != h.repos.Repos[cloneURL] {
				t.Errorf("ForgeFor calls %+v, want one with the build's entry and REPO_URL", calls)
			}
		})
	}
}

func TestReportErrors(t *testing.T) {
	errNomad := errors.New("nomad: connection refused")
	errConsul := errors.New("consul get: connection refused")
	errForge := errors.New("no gitea url and token")
	tests := []struct {
		name   string
		shape  func(h *harness, out *orchestrator.Outcome)
		wantIs error
	}{
		{"build unknown to nomad", func(h *harness, out *orchestrator.Outcome) { out.JobID = "builder/dispatch-albatros-1-gone" }, orchestrator.ErrNotFound},
		{"nomad down", func(h *harness, out *orchestrator.Outcome) { h.builds.BuildErr = errNomad }, errNomad},
		{"repository no longer registered", func(h *harness, out *orchestrator.Outcome) { delete(h.repos.Repos, cloneURL) }, registry.ErrNotFound},
		{"consul down", func(h *harness, out *orchestrator.Outcome) { h.repos.RepoErr = errConsul }, errConsul},
		{"no forge", func(h *harness, out *orchestrator.Outcome) { h.forges.Err = errForge }, errForge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, out, _ := reportHarness()
			tt.shape(h, &out)
			err := h.p.Report(context.Background(), discard, out)
			if !errors.Is(err, tt.wantIs) {
				t.Fatalf("Report = %v, want an error wrapping %v", err, tt.wantIs)
			}
			if !strings.Contains(err.Error(), out.JobID) {
				t.Errorf("error %q does not name the build %s", err, out.JobID)
			}
			if s := h.forge.Statuses(); len(s) != 0 {
				t.Errorf("wrote %+v after a failure, want nothing", s)
			}
		})
	}
}

func TestStatusContext(t *testing.T) {
	if pipeline.DefaultFlavor != "default" {
		t.Errorf("DefaultFlavor = %q, want default", pipeline.DefaultFlavor)
	}
	for flavor, want := range map[string]string{"default": "albatros/default", "nix": "albatros/nix"} {
		if got := pipeline.StatusContext(flavor); got != want {
			t.Errorf("StatusContext(%q) = %q, want %q", flavor, got, want)
		}
	}
}

func TestHandleNoSecretsOption(t *testing.T) {
	e := entryWith()
	e.Secrets = map[string]string{"TOKEN": "tok-123"}
	h := newHarness(e)
	if _, err := h.p.Handle(context.Background(), discard, pushEvent(), e, pipeline.Options{NoSecrets: true}); err != nil {
		t.Fatalf("Handle: %v", err)
	}
	if reqs := h.builds.Dispatches(); len(reqs) != 1 || reqs[0].HasSecrets || string(reqs[0].Payload) != string(secrets.Empty()) {
		t.Errorf("a trusted push with NoSecrets dispatched %+v, want no secrets", reqs)
	}
}

func TestHandleRefusesInvalidFlavors(t *testing.T) {
	h := newHarness(entryWith("ok", "bad flavor", "-x", "fine.1"))
	_, err := h.p.Handle(context.Background(), discard, pushEvent(), h.repos.Repos[cloneURL], pipeline.Options{})
	if err == nil || !strings.Contains(err.Error(), `"bad flavor"`) || !strings.Contains(err.Error(), `"-x"`) {
		t.Errorf("Handle = %v, want an error naming both invalid flavors", err)
	}
	if f := flavorsOf(h.builds.Dispatches()); !slices.Equal(f, []string{"ok", "fine.1"}) {
		t.Errorf("dispatched flavors %q, want only the valid ones", f)
	}
	for _, s := range h.forge.Statuses() {
		if s.Context != "albatros/ok" && s.Context != "albatros/fine.1" {
			t.Errorf("status in context %q", s.Context)
		}
	}
}

func TestValidFlavor(t *testing.T) {
	for name, ok := range map[string]bool{
		"default": true, "nix": true, "arm64.v8": true, "a_b-c": true, "9": true, strings.Repeat("a", 64): true,
		"": false, "-x": false, ".x": false, "a b": false, "a/b": false, "a\nb": false, strings.Repeat("a", 65): false, "é": false,
	} {
		if pipeline.ValidFlavor(name) != ok {
			t.Errorf("ValidFlavor(%q) = %v, want %v", name, !ok, ok)
		}
	}
}

// What the bot writes on the forge is masked like the logs: Nomad's messages and dispatch
// errors may quote a secret.
func TestStatusesAreMasked(t *testing.T) {
	const token = "s3cr3t-in-a-message"
	e := entryWith("default", "nix")
	e.Secrets = map[string]string{"TOKEN": token}
	e.Inject = "export OTHER=inject-s3cr3t"

	h := newHarness(e)
	h.builds.DispatchErr = map[string]error{"nix": fmt.Errorf("dispatch ci/builder: Unexpected response code: 500 (meta value %s inject-s3cr3t)", token)}
	h.builds.Ended = map[string]orchestrator.Outcome{
		"default": {Result: orchestrator.Error, Description: "the build did not start: Driver Failure: exec " + token + " not found", Final: true},
	}
	_, _ = h.p.Handle(context.Background(), discard, pushEvent(), e, pipeline.Options{})
	written := h.forge.Statuses()
	if len(written) != 3 {
		t.Fatalf("statuses %+v, want pending and error on default, error on nix", written)
	}
	for _, s := range written {
		if strings.Contains(s.Description, token) || strings.Contains(s.Description, "inject-s3cr3t") {
			t.Errorf("status %s %s shows a secret: %q", s.Context, s.State, s.Description)
		}
		if s.State == forge.StateError && !strings.Contains(s.Description, "***") {
			t.Errorf("status %s: %q, want the secret masked as ***", s.Context, s.Description)
		}
	}
}

// Members of a trusted team of the repository's organization are trusted; the forge tells
// who they are, and when it cannot, the build runs without secrets.
func TestHandleTrustedTeams(t *testing.T) {
	tests := []struct {
		name    string
		ev      forge.Event
		teamErr error
		want    bool
	}{
		{"push by a team member", func() forge.Event { e := pushEvent(); e.Sender = "tess"; return e }(), nil, true},
		{"push by someone else", func() forge.Event { e := pushEvent(); e.Sender = "mallory"; return e }(), nil, false},
		{"fork of a team member, opened by its owner", prEvent("tess", "tess"), nil, true},
		{"fork of a team member, opened by someone else", prEvent("mallory", "tess"), nil, false},
		{"fork of someone else, opened by a team member", prEvent("tess", "mallory"), nil, false},
		{"the forge cannot tell", func() forge.Event { e := pushEvent(); e.Sender = "tess"; return e }(), errors.New("gitea: 403"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := entryWith()
			e.Trusted.Senders = nil
			e.Trusted.Teams = []string{"release"}
			e.Secrets = map[string]string{"TOKEN": "tok-123"}
			h := newHarness(e)
			h.forge.Teams = map[string][]string{"org/release": {"tess"}, "org/other": {"mallory"}}
			h.forge.TeamErr = tt.teamErr
			if _, err := h.p.Handle(context.Background(), discard, tt.ev, e, pipeline.Options{}); err != nil {
				t.Fatalf("Handle: %v", err)
			}
			reqs := h.builds.Dispatches()
			if len(reqs) != 1 || reqs[0].HasSecrets != tt.want {
				t.Errorf("dispatched %+v, want secrets %v", reqs, tt.want)
			}
		})
	}
}

// A build that ran without the secrets does not stand for one that gets them: a delivery of
// the same event whose sender's trust can be checked again starts the build with secrets.
func TestTokenFollowsTheSecrets(t *testing.T) {
	e := entryWith()
	e.Secrets = map[string]string{"TOKEN": "tok-123"}
	h := newHarness(e)
	if _, err := h.p.Handle(context.Background(), discard, pushEvent(), e, pipeline.Options{NoSecrets: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.p.Handle(context.Background(), discard, pushEvent(), e, pipeline.Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.p.Handle(context.Background(), discard, pushEvent(), e, pipeline.Options{}); err != nil {
		t.Fatal(err)
	}
	reqs := h.builds.Dispatches()
	if len(reqs) != 3 || reqs[0].IdempotencyToken == reqs[1].IdempotencyToken || reqs[1].IdempotencyToken != reqs[2].IdempotencyToken {
		t.Fatalf("tokens without, with, with secrets: %+v", reqs)
	}
	if started := h.builds.Started(); len(started) != 2 {
		t.Errorf("%d builds started, want one without and one with the secrets", len(started))
	}
}

// An installation is its organization's, by id: a delivery about a repository whose owner
// is another organization (one that took the name of the installed one), or about one of a
// quarantined installation, or of one not yet bound to its organization, builds nothing.
func TestInstallationBoundToItsOrganization(t *testing.T) {
	for _, tt := range []struct {
		name       string
		orgID      int64
		quarantine string
		owner      int64
		built      bool
	}{
		{"its organization", orgID, "", orgID, true},
		{"another organization of the name", orgID, "", orgID + 1, false},
		{"an event without the owner's id", orgID, "", 0, false},
		{"quarantined", orgID, "the organization org is gone", orgID, false},
		{"not yet bound", 0, "", orgID, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := entryWith()
			e.Installed, e.OrgID, e.Quarantine = true, tt.orgID, tt.quarantine
			h := newHarness(e)
			h.p = pipeline.New(pipeline.Config{Repos: h.repos, Builds: h.builds, Forge: h.forges.For, BaseURL: baseURL, Builder: defaultBuilder, BuilderNamespaces: []string{"ci"}})
			ev := pushEvent()
			ev.Repo.OwnerID = tt.owner
			_, err := h.p.Handle(context.Background(), discard, ev, e, pipeline.Options{})
			if built := len(h.builds.Dispatches()) > 0; built != tt.built || (err == nil) != tt.built {
				t.Errorf("built %v (err %v), want %v", built, err, tt.built)
			}
			if !tt.built && len(h.forge.Statuses()) > 0 {
				t.Errorf("statuses written: %+v", h.forge.Statuses())
			}
		})
	}
}

// The builder an installed organization's owners choose must come from an allowed
// namespace; an operator's own entry may name any.
func TestInstalledBuilderNamespaces(t *testing.T) {
	for _, tt := range []struct {
		name      string
		installed bool
		ns        string
		ok        bool
	}{
		{"installed, allowed namespace", true, "ci", true},
		{"installed, another tenant's namespace", true, "payroll", false},
		{"operator's entry, any namespace", false, "payroll", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := entryWith()
			e.Installed, e.OrgID = tt.installed, orgID
			e.Builder = &registry.Builder{Job: "their-job", Namespace: tt.ns}
			h := newHarness(e)
			h.p = pipeline.New(pipeline.Config{Repos: h.repos, Builds: h.builds, Forge: h.forges.For, BaseURL: baseURL, Builder: defaultBuilder, BuilderNamespaces: []string{"ci"}})
			_, err := h.p.Handle(context.Background(), discard, pushEvent(), e, pipeline.Options{})
			if got := len(h.builds.Dispatches()) == 1; got != tt.ok || (err == nil) != tt.ok {
				t.Fatalf("dispatched %v, err %v; want dispatched %v", got, err, tt.ok)
			}
			if !tt.ok {
				if s := h.forge.Statuses(); len(s) != 1 || s[0].State != forge.StateError || !strings.Contains(s[0].Description, "not one this bot lets organizations use") {
					t.Errorf("statuses %+v", s)
				}
			}
		})
	}
}

// A new commit of a branch or pull request stops the older builds of the same flavor still
// queued or running, and marks them superseded; tags, other branches, and entries that say
// so are left alone.
func TestSupersede(t *testing.T) {
	no := false
	for _, tt := range []struct {
		name       string
		second     func(forge.Event) forge.Event
		supersede  *bool
		wantStops  int
		wantStatus string
	}{
		{"a second push to the branch", func(e forge.Event) forge.Event { return e }, nil, 2, "superseded by 0b5f1d7"},
		{"a push to another branch", func(e forge.Event) forge.Event { e.Branch = "other"; return e }, nil, 0, ""},
		{"the entry keeps older builds", func(e forge.Event) forge.Event { return e }, &no, 0, ""},
		{"a tag", func(e forge.Event) forge.Event { e.Kind, e.Tag, e.Branch = forge.KindTag, "v2", ""; return e }, nil, 0, ""},
	} {
		for _, mode := range []string{"listing the builds", "with the claims' line records"} {
			records := mode != "listing the builds"
			t.Run(tt.name+", "+mode, func(t *testing.T) {
				e := entryWith("default", "nix")
				e.Supersede = tt.supersede
				h := newHarness(e)
				reg := &registrytest.Claims{}
				if records {
					h.p = pipeline.New(pipeline.Config{Repos: h.repos, Builds: h.builds, Forge: h.forges.For, BaseURL: baseURL, Builder: defaultBuilder, Claims: reg})
				}
				first := pushEvent()
				if _, err := h.p.Handle(context.Background(), discard, first, e, pipeline.Options{}); err != nil {
					t.Fatal(err)
				}
				second := tt.second(pushEvent())
				second.Commit = sha2
				if _, err := h.p.Handle(context.Background(), discard, second, e, pipeline.Options{}); err != nil {
					t.Fatal(err)
				}
				if n := len(h.builds.Stopped()); n != tt.wantStops {
					t.Fatalf("%d builds stopped, want %d", n, tt.wantStops)
				}
				if tt.wantStops == 0 {
					return
				}
				var marked []string
				for _, s := range h.forge.Statuses() {
					if s.Commit == sha && s.State == forge.StateError {
						marked = append(marked, s.Context+": "+s.Description)
					}
				}
				if len(marked) != 2 || !strings.Contains(marked[0], tt.wantStatus) || !strings.Contains(marked[1], tt.wantStatus) {
					t.Errorf("statuses of the first commit: %q, want both flavors %q", marked, tt.wantStatus)
				}
				if records && reg.Swaps() != 4 {
					t.Errorf("%d line records written for two pushes of two flavors, want 4", reg.Swaps())
				}
				if settled := reg.SettledLines(); records && settled != 4 {
					t.Errorf("%d line records written with their claim's settlement, want all 4", settled)
				}
			})
		}
	}
}

// A push chooses its branch or tag, which trusted code may act on (a release, a deploy):
// an untrusted writer's tag or branch on a commit a trusted user pushed runs without the
// secrets. And an unsigned delivery (/hook?token=) that gets the secrets does not vouch for
// its commit: a pull request of it later gets none.
func TestPushesAreTrustedByTheirPusher(t *testing.T) {
	e := entryWith("default")
	e.Secrets = map[string]string{"TOKEN": "tok-123"}
	h := newHarness(e)
	if _, err := h.p.Handle(context.Background(), discard, pushEvent(), e, pipeline.Options{}); err != nil {
		t.Fatal(err)
	}
	tag := tagEvent()
	tag.Sender = "mallory"
	branch := pushEvent()
	branch.Branch, branch.Sender = "production", "mallory"
	for _, ev := range []forge.Event{tag, branch} {
		if _, err := h.p.Handle(context.Background(), discard, ev, e, pipeline.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	reqs := h.builds.Dispatches()
	if len(reqs) != 3 || !reqs[0].HasSecrets || reqs[1].HasSecrets || reqs[2].HasSecrets {
		t.Fatalf("secrets of the trusted push, the writer's tag and branch of its commit: %v", func() (out []bool) {
			for _, r := range reqs {
				out = append(out, r.HasSecrets)
			}
			return
		}())
	}

	other := sha2
	unsigned := pushEvent()
	unsigned.Commit, unsigned.Branch = other, "feature"
	if _, err := h.p.Handle(context.Background(), discard, unsigned, e, pipeline.Options{Unsigned: true}); err != nil {
		t.Fatal(err)
	}
	if why, _ := h.trust.CommitTrust(context.Background(), cloneURL, other); why != "" {
		t.Errorf("an unsigned delivery recorded its commit as trusted (%s)", why)
	}
}

// Code not trusted (a stranger's fork) runs on the builder registered for it (another
// namespace, pool and network); trusted code on the default one; a hand-written entry's
// builder is its own whoever pushes, an installed organization's is not for its forks.
func TestUntrustedCodeRunsOnItsOwnBuilder(t *testing.T) {
	h := newHarness(entryWith())
	untrusted := orchestrator.Builder{Namespace: "forks", Job: defaultBuilder.Job}
	h.p = pipeline.New(pipeline.Config{Repos: h.repos, Builds: h.builds, Forge: h.forges.For, BaseURL: baseURL, Builder: defaultBuilder, Untrusted: &untrusted, Trust: h.trust})
	entry := h.repos.Repos[cloneURL]
	if _, err := h.p.Handle(context.Background(), discard, prEvent("mallory", "mallory"), entry, pipeline.Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.p.Handle(context.Background(), discard, pushEvent(), entry, pipeline.Options{}); err != nil {
		t.Fatal(err)
	}
	own := entryWith()
	own.Builder = &registry.Builder{Job: "my-builder", Namespace: "ci"}
	fork := prEvent("mallory", "mallory")
	fork.Delivery, fork.Commit = "delivery-9", strings.Repeat("c", 40)
	if _, err := h.p.Handle(context.Background(), discard, fork, own, pipeline.Options{}); err != nil {
		t.Fatal(err)
	}
	// An installed organization's choice of builder is not where its forks' code runs.
	h.p = pipeline.New(pipeline.Config{Repos: h.repos, Builds: h.builds, Forge: h.forges.For, BaseURL: baseURL, Builder: defaultBuilder, Untrusted: &untrusted, Trust: h.trust, BuilderNamespaces: []string{"ci"}})
	installed := entryWith()
	installed.Installed, installed.OrgID = true, 7
	installed.Builder = &registry.Builder{Job: "nixcache", Namespace: "ci"}
	fork.Delivery, fork.Commit = "delivery-10", strings.Repeat("d", 40)
	if _, err := h.p.Handle(context.Background(), discard, fork, installed, pipeline.Options{}); err != nil {
		t.Fatal(err)
	}
	d := h.builds.Dispatches()
	if len(d) != 4 {
		t.Fatalf("dispatches %+v", d)
	}
	for i, want := range []orchestrator.Builder{untrusted, defaultBuilder, {Namespace: "ci", Job: "my-builder"}, untrusted} {
		if d[i].Builder != want {
			t.Errorf("dispatch %d (secrets %v) on %s, want %s", i, d[i].HasSecrets, d[i].Builder, want)
		}
	}
}
