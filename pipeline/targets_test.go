package pipeline_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/albatros-ci/albatros/forge"
	"github.com/albatros-ci/albatros/pipeline"
	"github.com/albatros-ci/albatros/registry"
)

type installed struct {
	urls  []string
	insts []*registry.Installation
}

func (i installed) RepoURLs(context.Context) ([]string, error) { return i.urls, nil }
func (i installed) Installations(context.Context) ([]*registry.Installation, error) {
	return i.insts, nil
}

// orgRepos is the bot's account listing organizations' repositories.
type orgRepos map[string][]forge.Repo

func (o orgRepos) OrgRepos(_ context.Context, org string) ([]forge.Repo, error) {
	if rs, ok := o[org]; ok {
		return rs, nil
	}
	return nil, errors.New("gitea: 404")
}

// A pass looks at the repositories with an entry and those of the installed organizations
// bound to their id on the bot's forge, each once, with its owner's id as the forge lists
// it; not at another forge's installations, quarantined ones, or unbound ones.
func TestReconcilerTargets(t *testing.T) {
	const forgeURL = "https://git.example.com"
	repo := func(org, name string, owner int64) forge.Repo {
		return forge.Repo{CloneURL: forgeURL + "/" + org + "/" + name + ".git", OwnerID: owner}
	}
	r := pipeline.Reconciler{
		Registry: installed{
			urls: []string{forgeURL + "/hand/made.git", forgeURL + "/acme/app.git"},
			insts: []*registry.Installation{
				{URL: forgeURL + "/", Org: "acme", OrgID: 7},
				{URL: forgeURL, Org: "gone", OrgID: 8},                        // its listing fails: logged, the rest listed
				{URL: forgeURL, Org: "evil", OrgID: 9, Quarantine: "renamed"}, // quarantined
				{URL: forgeURL, Org: "new"},                                   // not bound yet
				{URL: "https://other.example.com", Org: "acme", OrgID: 7},     // another forge's
				{Forge: "github", URL: forgeURL, Org: "ghorg", OrgID: 11},     // another kind of forge's
			},
		},
		Bot: orgRepos{
			"acme":  {repo("acme", "app", 7), repo("acme", "lib", 7)},
			"evil":  {repo("evil", "x", 9)},
			"new":   {repo("new", "y", 10)},
			"ghorg": {repo("ghorg", "z", 11)},
		},
		Forge:    "gitea",
		ForgeURL: forgeURL,
	}
	got := r.Targets(context.Background(), discard)
	want := []forge.Repo{repo("acme", "app", 7), repo("acme", "lib", 7), repo("hand", "made", 0)}
	if !slices.Equal(got, want) {
		t.Errorf("targets\n%+v\nwant\n%+v", got, want)
	}
	r.Bot = nil // no bot account: the entries only
	if got := r.Targets(context.Background(), discard); len(got) != 2 || got[0].OwnerID != 0 {
		t.Errorf("targets without the bot's account: %+v, want the two entries", got)
	}
}

// The GitHub App's installations are listed each through its own installation (its
// token), on the App's GitHub only; a suspended one, or one of another GitHub, is not.
func TestReconcilerTargetsOfTheGitHubApp(t *testing.T) {
	const gh = "https://github.example.com"
	repo := func(org, name string, owner int64) forge.Repo {
		return forge.Repo{CloneURL: gh + "/" + org + "/" + name + ".git", OwnerID: owner}
	}
	var asked []int64
	r := pipeline.Reconciler{
		Registry: installed{insts: []*registry.Installation{
			{Forge: "github", URL: gh, Org: "acme", OrgID: 7, InstallationID: 70},
			{Forge: "github", URL: gh, Org: "held", OrgID: 8, InstallationID: 80, Suspended: true},
			{Forge: "github", URL: "https://github.com", Org: "elsewhere", OrgID: 9, InstallationID: 90},
			{Forge: "gitea", URL: "https://git.example.com", Org: "acme", OrgID: 7}, // no bot account for Gitea here
		}},
		AppURL: gh,
		App: func(_ context.Context, id int64) (forge.OrgRepos, error) {
			asked = append(asked, id)
			return orgRepos{"acme": {repo("acme", "app", 7)}, "held": {repo("held", "x", 8)}}, nil
		},
	}
	got := r.Targets(context.Background(), discard)
	if want := []forge.Repo{repo("acme", "app", 7)}; !slices.Equal(got, want) || !slices.Equal(asked, []int64{70}) {
		t.Errorf("targets %+v (installations asked %v), want %+v through installation 70", got, asked, want)
	}
}
