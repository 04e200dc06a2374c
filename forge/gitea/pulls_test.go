package gitea_test

import (
	"slices"
	"testing"
	"time"

	sdk "code.gitea.io/sdk/gitea"

	"github.com/albatros-ci/albatros/forge"
	"github.com/albatros-ci/albatros/forge/gitea"
	"github.com/albatros-ci/albatros/testenv"
)

// Pull requests, their comments and who may write, against the real Gitea, as the bot
// (an owner of the organization, as installing makes it) sees them.
func TestPullRequestsCommentsAndWriters(t *testing.T) {
	g := env.Gitea(t)
	owner := g.CreateUser(t, testenv.UniqueName("owner"))
	bot := g.CreateUser(t, testenv.UniqueName("bot"))
	org := testenv.UniqueName("org")
	g.CreateOrg(t, owner, org)
	if err := gitea.New(g.URL, owner.Token, nil).AddOwner(ctx(t), org, bot.Name); err != nil {
		t.Fatal(err)
	}
	asBot := gitea.New(g.URL, bot.Token, nil)
	tr := g.CreateRepo(t, owner, org, "app")
	repo := forge.Repo{Owner: tr.Owner, Name: tr.Name, FullName: tr.FullName(), CloneURL: tr.CloneURL}

	// Who may write: a collaborator, a member of a team with write on the code unit only,
	// the owner; not a member of a read team, nor an outsider.
	collaborator := g.CreateUser(t, testenv.UniqueName("collab"))
	g.AddCollaborator(t, owner, tr, collaborator.Name)
	unitWriter := g.CreateUser(t, testenv.UniqueName("unitwriter"))
	reader := g.CreateUser(t, testenv.UniqueName("reader"))
	outsider := g.CreateUser(t, testenv.UniqueName("outsider"))
	admin := g.Client(t, owner.Token)
	writeTeam, _, err := admin.CreateTeam(org, sdk.CreateTeamOption{Name: "coders", IncludesAllRepositories: true, Permission: sdk.AccessModeRead,
		UnitsMap: map[string]string{"repo.code": "write", "repo.pulls": "write", "repo.issues": "read"}})
	if err != nil {
		t.Fatal(err)
	}
	readTeam, _, err := admin.CreateTeam(org, sdk.CreateTeamOption{Name: "readers", IncludesAllRepositories: true, Permission: sdk.AccessModeRead, Units: []sdk.RepoUnitType{sdk.RepoUnitCode}})
	if err != nil {
		t.Fatal(err)
	}
	for team, user := range map[int64]string{writeTeam.ID: unitWriter.Name, readTeam.ID: reader.Name} {
		if _, err := admin.AddTeamMember(team, user); err != nil {
			t.Fatal(err)
		}
	}
	for user, want := range map[string]bool{owner.Name: true, collaborator.Name: true, unitWriter.Name: true, reader.Name: false, outsider.Name: false} {
		if got, err := asBot.CanWrite(ctx(t), repo, user); err != nil || got != want {
			t.Errorf("CanWrite(%s) = %v, %v; want %v", user, got, err, want)
		}
	}

	// A pull request, as the bot reads it.
	first := g.Push(t, owner, tr, "main", "", map[string]testenv.File{"A": {Content: "a\n"}}, "base")
	second := g.Push(t, owner, tr, "topic", "main", map[string]testenv.File{"B": {Content: "b\n"}}, "one")
	third := g.Push(t, owner, tr, "topic", "", map[string]testenv.File{"B": {Content: "c\n"}}, "two")
	n := g.CreatePullRequest(t, owner, tr, "topic", "main", "a change")
	info, err := asBot.PullRequestInfo(ctx(t), repo, n)
	if err != nil || info.Head != third || !info.Open || info.Author != owner.Name || info.HeadBranch != "topic" || info.BaseBranch != "main" || info.Fork || info.Number != n {
		t.Fatalf("PullRequestInfo = %+v, %v", info, err)
	}
	commits, err := asBot.PullRequestCommits(ctx(t), repo, n)
	if err != nil || !slices.Contains(commits, second) || !slices.Contains(commits, third) || slices.Contains(commits, first) {
		t.Fatalf("PullRequestCommits = %v, %v; want %s and %s, not the base %s", commits, err, second, third, first)
	}

	// Comments: made, edited, listed, reacted to.
	c, err := asBot.CreateComment(ctx(t), repo, n, "first words")
	if err != nil || c.ID == 0 || c.Author != bot.Name {
		t.Fatalf("CreateComment = %+v, %v", c, err)
	}
	if err := asBot.EditComment(ctx(t), repo, c.ID, "second words"); err != nil {
		t.Fatal(err)
	}
	list, err := asBot.Comments(ctx(t), repo, n)
	if err != nil || len(list) != 1 || list[0].ID != c.ID || list[0].Body != "second words" || list[0].Author != bot.Name {
		t.Fatalf("Comments = %+v, %v", list, err)
	}
	for range 2 {
		if err := asBot.React(ctx(t), repo, c.ID, "eyes"); err != nil {
			t.Fatalf("React: %v", err)
		}
	}
	reactions, _, err := g.Client(t, owner.Token).GetIssueCommentReactions(tr.Owner, tr.Name, c.ID)
	if err != nil || len(reactions) != 1 || reactions[0].Reaction != "eyes" {
		t.Fatalf("reactions %+v, %v", reactions, err)
	}
}

// Recent branches, as the reconciler reads them from the real Gitea: newest head commit
// first, and none older than asked for.
func TestRecentBranches(t *testing.T) {
	g := env.Gitea(t)
	owner := g.CreateUser(t, testenv.UniqueName("owner"))
	tr := g.CreateRepo(t, owner, "", "app")
	repo := forge.Repo{Owner: tr.Owner, Name: tr.Name, FullName: tr.FullName(), CloneURL: tr.CloneURL}
	c := gitea.New(g.URL, owner.Token, nil)
	g.Push(t, owner, tr, "main", "", map[string]testenv.File{"A": {Content: "a\n"}}, "base")
	time.Sleep(1100 * time.Millisecond) // commit dates are to the second
	side := g.Push(t, owner, tr, "side", "main", map[string]testenv.File{"B": {Content: "b\n"}}, "side")
	got, truncated, err := c.RecentBranches(ctx(t), repo, time.Now().Add(-time.Hour), 5)
	if err != nil || truncated || len(got) != 2 || got[0].Name != "side" || got[0].Commit != side || got[1].Name != "main" {
		t.Fatalf("RecentBranches = %+v, %v, %v; want side then main", got, truncated, err)
	}
	if got, _, err := c.RecentBranches(ctx(t), repo, time.Now().Add(time.Hour), 5); err != nil || len(got) != 0 {
		t.Errorf("RecentBranches since an hour from now = %+v, %v; want none", got, err)
	}
}
