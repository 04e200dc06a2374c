package github_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/albatros-ci/albatros/forge"
	"github.com/albatros-ci/albatros/forge/github"
	"github.com/albatros-ci/albatros/forge/github/githubtest"
)

// fakeApp is a fake GitHub with an organization acme (owner alice, team core with carol),
// its repository acme/app, and the App installed on acme.
func fakeApp(t *testing.T) (*githubtest.Server, *github.App, int64) {
	t.Helper()
	s, err := githubtest.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	for _, u := range []string{"alice", "bob", "carol", "mallory"} {
		s.AddUser(u)
	}
	s.AddOrg("acme", "alice")
	s.AddTeam("acme", "core", "carol")
	s.AddRepo("acme", "app", true, "")
	s.SetPermission("acme/app", "bob", "write")
	s.SetPermission("acme/app", "mallory", "read")
	id := s.Install("acme")
	app, err := github.NewApp(github.AppConfig{ID: s.App.ID, PrivateKey: s.App.KeyPEM, APIURL: s.API})
	if err != nil {
		t.Fatal(err)
	}
	return s, app, id
}

var acmeApp = forge.Repo{FullName: "acme/app", Owner: "acme", Name: "app"}

func TestAppActsAsItsInstallation(t *testing.T) {
	s, app, id := fakeApp(t)
	ctx := context.Background()
	c, err := app.Installation(id)
	if err != nil {
		t.Fatal(err)
	}
	sha := strings.Repeat("a", 40)
	if err := c.SetStatus(ctx, forge.Status{Repo: acmeApp, Commit: sha, State: forge.StatePending, Context: "albatros/default", TargetURL: "https://ci/logs/x"}); err != nil {
		t.Fatal(err)
	}
	got := s.Statuses(sha)
	if len(got) != 1 || got[0].Creator != "albatros-ci[bot]" || got[0].State != "pending" {
		t.Fatalf("statuses %+v", got)
	}
	if me, err := c.Me(ctx); err != nil || me != "albatros-ci[bot]" {
		t.Errorf("Me = %q, %v", me, err)
	}
	for user, want := range map[string]bool{"alice": true, "bob": true, "mallory": false, "carol": false, "nobody": false} {
		if ok, err := c.CanWrite(ctx, acmeApp, user); err != nil || ok != want {
			t.Errorf("CanWrite(%s) = %v, %v; want %v", user, ok, err, want)
		}
	}
	for user, want := range map[string]bool{"alice": true, "mallory": true, "carol": false} {
		if ok, err := c.CanRead(ctx, acmeApp, user); err != nil || ok != want {
			t.Errorf("CanRead(%s) = %v, %v; want %v", user, ok, err, want)
		}
	}
	if private, err := c.IsPrivate(ctx, acmeApp); err != nil || !private {
		t.Errorf("IsPrivate = %v, %v", private, err)
	}
	teamID, err := c.TeamID(ctx, "acme", "core")
	if err != nil || teamID == 0 {
		t.Fatalf("TeamID = %d, %v", teamID, err)
	}
	for _, team := range []forge.Team{{Name: "core"}, {Name: "renamed", ID: teamID}} {
		if in, err := c.IsTeamMember(ctx, "acme", team, "carol"); err != nil || !in {
			t.Errorf("IsTeamMember(%+v, carol) = %v, %v", team, in, err)
		}
		if in, err := c.IsTeamMember(ctx, "acme", team, "bob"); err != nil || in {
			t.Errorf("IsTeamMember(%+v, bob) = %v, %v", team, in, err)
		}
	}
	if _, err := c.TeamID(ctx, "acme", "nope"); !errorsIs(err, forge.ErrNotFound) {
		t.Errorf("TeamID of no team: %v", err)
	}
	if uid, _, err := c.UserID(ctx, "bob"); err != nil || uid != s.UserID("bob") {
		t.Errorf("UserID = %d, %v", uid, err)
	}
	repos, err := c.OrgRepos(ctx, "acme")
	if err != nil || len(repos) != 1 || repos[0].FullName != "acme/app" || repos[0].OwnerID == 0 || !strings.HasSuffix(repos[0].CloneURL, "/acme/app.git") {
		t.Errorf("OrgRepos = %+v, %v", repos, err)
	}
}

func errorsIs(err, target error) bool {
	return err != nil && strings.Contains(err.Error(), target.Error())
}

// A token GitHub refuses (past its expiry on GitHub's clock, or revoked) is renewed at
// once, and the request sent again: nothing fails. The client stays the installation's.
func TestAppRenewsARefusedToken(t *testing.T) {
	s, app, id := fakeApp(t)
	ctx := context.Background()
	c, _ := app.Installation(id)
	sha := strings.Repeat("b", 40)
	write := func(state forge.State) {
		t.Helper()
		if err := c.SetStatus(ctx, forge.Status{Repo: acmeApp, Commit: sha, State: state, Context: "albatros/default"}); err != nil {
			t.Fatalf("SetStatus %s: %v", state, err)
		}
	}
	write(forge.StatePending)
	if n := s.TokensIssued(); n != 1 {
		t.Fatalf("%d tokens issued for one request", n)
	}
	write(forge.StatePending)
	if n := s.TokensIssued(); n != 1 {
		t.Fatalf("a valid token was not kept: %d issued", n)
	}
	s.ExpireTokens()
	write(forge.StateSuccess) // a POST with a body, sent twice
	if n := s.TokensIssued(); n != 2 {
		t.Fatalf("%d tokens issued after the first was refused, want 2", n)
	}
	if st := s.Statuses(sha); len(st) != 3 || st[2].State != "success" {
		t.Fatalf("statuses %+v", st)
	}
	again, _ := app.Installation(id)
	if again != c {
		t.Error("a new client for the same installation")
	}
	// An installation gone: its token is refused, and so is a new one.
	s.Uninstall(id)
	if err := c.SetStatus(ctx, forge.Status{Repo: acmeApp, Commit: sha, State: forge.StateError, Context: "albatros/default"}); err == nil {
		t.Error("a status written for an uninstalled App")
	}
}

// A token about to expire is renewed before it is used (ghinstallation renews a minute
// before expires_at).
func TestAppRenewsATokenBeforeItExpires(t *testing.T) {
	s, app, id := fakeApp(t)
	s.TokenTTL = 30 * time.Second
	c, _ := app.Installation(id)
	for i := range 3 {
		if _, err := c.IsPrivate(context.Background(), acmeApp); err != nil {
			t.Fatal(err)
		}
		if n := s.TokensIssued(); n != i+1 {
			t.Fatalf("%d tokens for %d requests with tokens expiring within a minute", n, i+1)
		}
	}
}

// Listings follow GitHub's Link pagination: more comments than a page holds are all read,
// and the one comment is edited in place.
func TestAppCommentsAndPullRequests(t *testing.T) {
	s, app, id := fakeApp(t)
	ctx := context.Background()
	c, _ := app.Installation(id)
	head := strings.Repeat("c", 40)
	s.SetBranch("acme/app", "main", strings.Repeat("d", 40))
	s.SetPull("acme/app", githubtest.Pull{Number: 7, HeadOwner: "mallory", HeadBranch: "fix", HeadSHA: head, Base: "main", Author: "mallory", Open: true})
	s.SetPull("acme/app", githubtest.Pull{Number: 8, HeadOwner: "acme", HeadBranch: "topic", HeadSHA: strings.Repeat("e", 40), Base: "main", Author: "bob", Open: true, Updated: time.Now().Add(-time.Hour)})
	for i := range 130 {
		s.AddComment("acme/app", 7, "bob", fmt.Sprintf("comment %d", i))
	}
	mine, err := c.CreateComment(ctx, acmeApp, 7, "builds: pending")
	if err != nil || mine.Author != "albatros-ci[bot]" {
		t.Fatalf("CreateComment = %+v, %v", mine, err)
	}
	if err := c.EditComment(ctx, acmeApp, mine.ID, "builds: success"); err != nil {
		t.Fatal(err)
	}
	all, err := c.Comments(ctx, acmeApp, 7)
	if err != nil || len(all) != 131 || all[130].Body != "builds: success" || all[0].Body != "comment 0" {
		t.Fatalf("Comments: %d, %v", len(all), err)
	}
	if got := s.Comments("acme/app", 7); got[130].Edits != 1 {
		t.Errorf("the bot's comment edited %d times", got[130].Edits)
	}
	if err := c.React(ctx, acmeApp, all[0].ID, "eyes"); err != nil {
		t.Fatal(err)
	}
	if err := c.React(ctx, acmeApp, all[0].ID, "eyes"); err != nil {
		t.Fatal(err)
	}
	if r := s.Reactions(all[0].ID); len(r) != 1 || r[0].By != "albatros-ci[bot]" {
		t.Errorf("reactions %+v", r)
	}
	info, err := c.PullRequestInfo(ctx, acmeApp, 7)
	if err != nil || info.Head != head || !info.Fork || !info.Open || info.HeadRepo.Owner != "mallory" || info.Author != "mallory" || info.BaseBranch != "main" {
		t.Fatalf("PullRequestInfo = %+v, %v", info, err)
	}
	commits, err := c.PullRequestCommits(ctx, acmeApp, 7)
	if err != nil || !slices.Equal(commits, []string{head}) {
		t.Errorf("PullRequestCommits = %v, %v", commits, err)
	}
	open, err := c.OpenPullRequests(ctx, acmeApp, 10)
	if err != nil || len(open) != 2 || open[0].Number != 7 || open[1].Number != 8 || open[1].Fork {
		t.Errorf("OpenPullRequests = %+v, %v", open, err)
	}
	branch, sha, date, err := c.DefaultHead(ctx, acmeApp)
	if err != nil || branch != "main" || sha != strings.Repeat("d", 40) || date.IsZero() {
		t.Errorf("DefaultHead = %s %s %v, %v", branch, sha, date, err)
	}
}

// An installation sees only its account's repositories (GitHub answers 404 for others).
func TestAppInstallationSeesOnlyItsOwn(t *testing.T) {
	s, app, id := fakeApp(t)
	s.AddOrg("other", "mallory")
	s.AddRepo("other", "app", false, "")
	c, _ := app.Installation(id)
	err := c.SetStatus(context.Background(), forge.Status{Repo: forge.Repo{FullName: "other/app", Owner: "other", Name: "app"}, Commit: strings.Repeat("f", 40), State: forge.StatePending, Context: "albatros/default"})
	if err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("status on another account's repository: %v", err)
	}
}

// The client reads GitHub's rate-limit headers: what is left, and none once GitHub refuses
// for the limit.
func TestAppBudget(t *testing.T) {
	s, app, id := fakeApp(t)
	c, _ := app.Installation(id)
	if _, _, ok := c.Budget(); ok {
		t.Fatal("a budget known before any request")
	}
	s.SetRateRemaining(id, 100)
	if _, err := c.IsPrivate(context.Background(), acmeApp); err != nil {
		t.Fatal(err)
	}
	left, reset, ok := c.Budget()
	if !ok || left != 99 || time.Until(reset) < 59*time.Minute {
		t.Fatalf("Budget = %d, %v, %v; want 99 left, reset in an hour", left, reset, ok)
	}
	s.SetRateRemaining(id, 0)
	if _, err := c.IsPrivate(context.Background(), acmeApp); err == nil || !strings.Contains(err.Error(), "rate limit") {
		t.Fatalf("a request past the limit: %v", err)
	}
	if left, _, ok := c.Budget(); !ok || left != 0 {
		t.Fatalf("Budget past the limit = %d, %v", left, ok)
	}
}
