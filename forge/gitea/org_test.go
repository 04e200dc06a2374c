package gitea_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	sdk "code.gitea.io/sdk/gitea"

	"github.com/albatros-ci/albatros/forge"
	"github.com/albatros-ci/albatros/forge/gitea"
	"github.com/albatros-ci/albatros/testenv"
)

func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c
}

// The organization calls the install and its repair make, against the real Gitea: an owner
// makes the bot an owner, and the bot then manages the organization's webhook itself.
func TestOrgHooksAndOwners(t *testing.T) {
	g := env.Gitea(t)
	owner := g.CreateUser(t, testenv.UniqueName("owner"))
	bot := g.CreateUser(t, testenv.UniqueName("bot"))
	org := testenv.UniqueName("org")
	g.CreateOrg(t, owner, org)
	asOwner := gitea.New(g.URL, owner.Token, nil)
	asBot := gitea.New(g.URL, bot.Token, nil)

	if me, err := asBot.Me(ctx(t)); err != nil || me != bot.Name {
		t.Fatalf("Me = %q, %v", me, err)
	}
	if ok, err := asOwner.IsOwner(ctx(t), org, bot.Name); err != nil || ok {
		t.Fatalf("IsOwner(bot) before = %v, %v", ok, err)
	}
	if _, err := asBot.CreateOrgHook(ctx(t), org, forge.Hook{URL: "http://127.0.0.1:1/x", ContentType: "json", Events: []string{"push"}, Active: true, Secret: "s"}); err == nil {
		t.Fatal("a non-owner created an organization hook")
	}
	if err := asOwner.AddOwner(ctx(t), org, bot.Name); err != nil {
		t.Fatal(err)
	}
	if ok, err := asOwner.IsOwner(ctx(t), org, bot.Name); err != nil || !ok {
		t.Fatalf("IsOwner(bot) after AddOwner = %v, %v", ok, err)
	}
	if orgs, err := asBot.MyOrgs(ctx(t)); err != nil || !slices.Contains(orgs, org) {
		t.Fatalf("MyOrgs = %v, %v", orgs, err)
	}

	events := []string{"create", "delete", "pull_request", "push"}
	// Gitea lists "pull_request" as the whole family it stands for, PR comments included.
	covers := func(got []string) bool {
		for _, e := range append(slices.Clone(events), "pull_request_comment", "pull_request_sync") {
			if !slices.Contains(got, e) {
				return false
			}
		}
		return true
	}
	want := forge.Hook{URL: "http://127.0.0.1:1/webhook/gitea", ContentType: "json", Events: events, Active: true, Secret: "first"}
	h, err := asBot.CreateOrgHook(ctx(t), org, want)
	if err != nil {
		t.Fatal(err)
	}
	hooks, err := asBot.ListOrgHooks(ctx(t), org)
	if err != nil || len(hooks) != 1 {
		t.Fatalf("ListOrgHooks = %+v, %v", hooks, err)
	}
	got := hooks[0]
	if got.ID != h.ID || got.URL != want.URL || got.ContentType != "json" || !got.Active || !covers(got.Events) {
		t.Fatalf("hook read back %+v, want %+v", got, want)
	}
	// Edited with its events: they stay.
	want.ID, want.URL, want.Active = h.ID, "http://127.0.0.1:2/webhook/gitea", false
	if err := asBot.EditOrgHook(ctx(t), org, want); err != nil {
		t.Fatal(err)
	}
	hooks, _ = asBot.ListOrgHooks(ctx(t), org)
	if len(hooks) != 1 || hooks[0].URL != want.URL || hooks[0].Active || !covers(hooks[0].Events) {
		t.Fatalf("after edit: %+v", hooks)
	}
	if err := asBot.DeleteOrgHook(ctx(t), org, h.ID); err != nil {
		t.Fatal(err)
	}
	if err := asBot.DeleteOrgHook(ctx(t), org, h.ID); err != nil {
		t.Fatalf("deleting a hook twice: %v", err)
	}
	if hooks, _ := asBot.ListOrgHooks(ctx(t), org); len(hooks) != 0 {
		t.Fatalf("after delete: %+v", hooks)
	}

	// Team membership, of a team the bot is not in.
	member := g.CreateUser(t, testenv.UniqueName("member"))
	team, _, err := g.Client(t, owner.Token).CreateTeam(org, sdk.CreateTeamOption{Name: "release", Permission: sdk.AccessModeRead, Units: []sdk.RepoUnitType{sdk.RepoUnitCode}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Client(t, owner.Token).AddTeamMember(team.ID, member.Name); err != nil {
		t.Fatal(err)
	}
	id, err := asBot.TeamID(ctx(t), org, "release")
	if err != nil || id != team.ID {
		t.Fatalf("TeamID(release) = %d, %v; want %d", id, err, team.ID)
	}
	if _, err := asBot.TeamID(ctx(t), org, "no-such-team"); !errors.Is(err, forge.ErrNotFound) {
		t.Errorf("TeamID(no-such-team) = %v, want ErrNotFound", err)
	}
	for user, want := range map[string]bool{member.Name: true, owner.Name: false} {
		for _, tm := range []forge.Team{{Name: "release"}, {Name: "release", ID: team.ID}} {
			if ok, err := asBot.IsTeamMember(ctx(t), org, tm, user); err != nil || ok != want {
				t.Errorf("IsTeamMember(%+v, %s) = %v, %v; want %v", tm, user, ok, err, want)
			}
		}
	}
	if ok, err := asBot.IsTeamMember(ctx(t), org, forge.Team{Name: "no-such-team"}, member.Name); err != nil || ok {
		t.Errorf("IsTeamMember(no-such-team) = %v, %v", ok, err)
	}
	// A team of that name made again is another team: asked by the id recorded, its new
	// members are not members of the old one.
	if _, err := g.Client(t, owner.Token).DeleteTeam(team.ID); err != nil {
		t.Fatal(err)
	}
	again, _, err := g.Client(t, owner.Token).CreateTeam(org, sdk.CreateTeamOption{Name: "release", Permission: sdk.AccessModeRead, Units: []sdk.RepoUnitType{sdk.RepoUnitCode}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Client(t, owner.Token).AddTeamMember(again.ID, member.Name); err != nil {
		t.Fatal(err)
	}
	if ok, err := asBot.IsTeamMember(ctx(t), org, forge.Team{Name: "release", ID: team.ID}, member.Name); err != nil || ok {
		t.Errorf("IsTeamMember of the deleted team's id = %v, %v; want false", ok, err)
	}

	// Ids of organizations and users, and their absence.
	if id, err := asBot.OrgID(ctx(t), org); err != nil || id == 0 {
		t.Errorf("OrgID(%s) = %d, %v", org, id, err)
	}
	if _, err := asBot.OrgID(ctx(t), "no-such-org-"+testenv.UniqueName("x")); !errors.Is(err, forge.ErrNotFound) {
		t.Errorf("OrgID of no organization: %v, want ErrNotFound", err)
	}
	if id, registered, err := asBot.UserID(ctx(t), member.Name); err != nil || id == 0 || time.Since(registered) > time.Hour {
		t.Errorf("UserID(%s) = %d, registered %v, %v", member.Name, id, registered, err)
	}
	if _, _, err := asBot.UserID(ctx(t), "no-such-user-"+testenv.UniqueName("x")); !errors.Is(err, forge.ErrNotFound) {
		t.Errorf("UserID of no user: %v, want ErrNotFound", err)
	}

	// Who may read a private repository, as the bot (an owner) sees it.
	private := g.CreatePrivateRepo(t, owner, org, "secret-app")
	public := g.CreateRepo(t, owner, org, "open-app")
	outsider := g.CreateUser(t, testenv.UniqueName("outsider"))
	repoOf := func(r *testenv.Repo) forge.Repo {
		return forge.Repo{Owner: r.Owner, Name: r.Name, FullName: r.FullName(), CloneURL: r.CloneURL}
	}
	if p, err := asBot.IsPrivate(ctx(t), repoOf(private)); err != nil || !p {
		t.Errorf("IsPrivate(private) = %v, %v", p, err)
	}
	if p, err := asBot.IsPrivate(ctx(t), repoOf(public)); err != nil || p {
		t.Errorf("IsPrivate(public) = %v, %v", p, err)
	}
	for user, want := range map[string]bool{owner.Name: true, outsider.Name: false, member.Name: false} {
		if ok, err := asBot.CanRead(ctx(t), repoOf(private), user); err != nil || ok != want {
			t.Errorf("CanRead(private, %s) = %v, %v; want %v", user, ok, err, want)
		}
	}
	repos, err := asBot.OrgRepos(ctx(t), org)
	if err != nil || len(repos) != 2 || repos[0].Name != "open-app" || repos[1].Name != "secret-app" {
		t.Errorf("OrgRepos = %+v, %v", repos, err)
	}

	if err := asOwner.RemoveOwner(ctx(t), org, bot.Name); err != nil {
		t.Fatal(err)
	}
	if ok, _ := asOwner.IsOwner(ctx(t), org, bot.Name); ok {
		t.Fatal("the bot is still an owner after RemoveOwner")
	}
}
