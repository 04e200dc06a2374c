package install

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	sdk "code.gitea.io/sdk/gitea"

	"github.com/albatros-ci/albatros/testenv"
)

// An organization deleted without uninstalling, and its name taken by someone else's new
// organization: the installation stays the old one's, quarantined. The bot puts no webhook
// on the new organization, builds nothing of it, and shows its new owner neither the old
// trusted users nor the old secrets' names; installing again starts afresh. Before the fix,
// the installations' check "repaired" the webhook onto the new organization, whose owner
// then had the old one's settings, trust list and secrets.
func TestOrganizationNameTakenAgain(t *testing.T) {
	p, c := installed(t)
	g := p.g
	repo := g.CreateRepo(t, p.owner, p.org, "app")
	if resp, page := c.post("/orgs/"+p.org+"/settings", url.Values{"users": {p.owner.Name}}); resp.StatusCode != http.StatusOK {
		t.Fatalf("save settings: %d\n%s", resp.StatusCode, page)
	}
	if resp, page := c.post("/orgs/"+p.org+"/secrets", url.Values{"name": {"OLD_ORG_TOKEN"}, "value": {"old-org-s3cr3t"}}); resp.StatusCode != http.StatusOK {
		t.Fatalf("set secret: %d\n%s", resp.StatusCode, page)
	}
	if rec := string(p.record()); !strings.Contains(rec, `"org_id":`) || !strings.Contains(rec, `"user_ids":`) {
		t.Fatalf("the installation does not record the organization's and the trusted users' ids:\n%s", rec)
	}

	admin := g.Client(t, "")
	if _, err := admin.DeleteRepo(repo.Owner, repo.Name); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.DeleteOrg(p.org); err != nil {
		t.Fatal(err)
	}
	mallory := g.CreateUser(t, testenv.UniqueName("mallory"))
	g.CreateOrg(t, mallory, p.org)
	theirs := g.CreateRepo(t, mallory, p.org, "app")
	sha := g.Push(t, mallory, theirs, "main", "", script(printToken), "the new organization's code")

	// The check (every 2 s here) finds another organization behind the name.
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(string(p.record()), `"quarantine":`) {
		if time.Now().After(deadline) {
			t.Fatalf("the installation is not quarantined 30 s after its organization was replaced:\n%s", p.record())
		}
		time.Sleep(300 * time.Millisecond)
	}
	time.Sleep(5 * time.Second) // two more checks: none may repair anything there
	hooks, _, err := g.Client(t, mallory.Token).ListOrgHooks(p.org, sdk.ListHooksOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(hooks) > 0 {
		t.Errorf("the bot put a webhook on the new organization: %+v", hooks[0].Config)
	}
	if st := g.Statuses(t, theirs, sha); len(st) > 0 {
		t.Errorf("the new organization's commit was built: %+v", st[0])
	}
	if !strings.Contains(bot(t).Log(), "installation quarantined") {
		t.Error("the bot's log does not say the installation is quarantined")
	}

	// The new owner sees the quarantine, not the old settings.
	mc := newClient(t, bot(t))
	orgs := mc.signIn(mallory)
	if !strings.Contains(orgs, "quarantined") || !strings.Contains(orgs, "Install again") {
		t.Errorf("the new owner's organizations do not show the quarantine:\n%s", orgs)
	}
	_, home := mc.get("/")
	if !strings.Contains(home, `id="quarantine-`+p.org+`"`) {
		t.Errorf("the home page does not say the installation is quarantined:\n%s", home)
	}
	for _, path := range []string{"/orgs/" + p.org, "/orgs/" + p.org + "/repos/app"} {
		resp, page := mc.get(path)
		if resp.StatusCode != http.StatusConflict || strings.Contains(page, "OLD_ORG_TOKEN") || strings.Contains(page, p.owner.Name) {
			t.Errorf("GET %s as the new owner: %d, want 409 without the old settings:\n%s", path, resp.StatusCode, page)
		}
	}
	if resp, _ := mc.post("/orgs/"+p.org+"/settings", url.Values{"users": {mallory.Name}}); resp.StatusCode != http.StatusConflict {
		t.Errorf("the new owner changed the quarantined installation's settings: %d", resp.StatusCode)
	}

	// Installing again starts afresh: nothing of the old organization's.
	mc.install(p.org)
	rec := string(p.record())
	if strings.Contains(rec, "OLD_ORG_TOKEN") || strings.Contains(rec, p.owner.Name) || strings.Contains(rec, `"quarantine"`) {
		t.Errorf("installing again kept the old organization's settings:\n%s", rec)
	}
}

// A trusted user deleted and a new user registered under the name: the new one is not
// trusted, as the settings page recorded the trusted user's id.
func TestTrustedUserRegisteredAgain(t *testing.T) {
	p, c := installed(t)
	g := p.g
	repo := g.CreateRepo(t, p.owner, p.org, "app")
	alice := g.CreateUser(t, testenv.UniqueName("alice"))
	g.AddCollaborator(t, p.owner, repo, alice.Name)
	if resp, page := c.post("/orgs/"+p.org+"/settings", url.Values{"users": {alice.Name}}); resp.StatusCode != http.StatusOK {
		t.Fatalf("save settings: %d\n%s", resp.StatusCode, page)
	}
	if resp, page := c.post("/orgs/"+p.org+"/secrets", url.Values{"name": {"DEPLOY_TOKEN"}, "value": {"trust-s3cr3t"}}); resp.StatusCode != http.StatusOK {
		t.Fatalf("set secret: %d\n%s", resp.StatusCode, page)
	}
	g.Push(t, p.owner, repo, "main", "", script(printToken), "main")
	first := g.Push(t, alice, repo, "alice", "main", script(printToken+"echo alice\n"), "by alice")
	if log := buildLog(t, p, repo, first); !strings.Contains(log, "token=[trust-s3cr3t]") {
		t.Fatalf("the trusted user's push did not get the secret:\n%s", log)
	}

	if _, err := g.Client(t, "").AdminDeleteUser(alice.Name); err != nil {
		t.Fatal(err)
	}
	impostor := g.CreateUser(t, alice.Name)
	g.AddCollaborator(t, p.owner, repo, impostor.Name)
	second := g.Push(t, impostor, repo, "impostor", "main", script(printToken+"echo impostor\n"), "by the new user of the name")
	if log := buildLog(t, p, repo, second); !strings.Contains(log, "token=[none]") {
		t.Errorf("a new user under a trusted user's name got the secret:\n%s", log)
	}
	// A name that is no user is refused on the page, and changes nothing.
	if resp, page := c.post("/orgs/"+p.org+"/settings", url.Values{"users": {"no-such-user-" + testenv.UniqueName("x")}}); resp.StatusCode != http.StatusBadRequest || !strings.Contains(page, "Gitea has no user") {
		t.Errorf("an unknown user: %d, want 400 saying so\n%s", resp.StatusCode, page)
	}
}

// buildLog is Nomad's own log of the build of sha, once its status is final.
func buildLog(t *testing.T, p *project, repo *testenv.Repo, sha string) string {
	t.Helper()
	st := p.waitStatus(repo, sha, sdk.StatusSuccess)
	ns, job := jobFromLink(t, st.TargetURL)
	return env.Nomad(t).BuildLog(t, ns, job)
}

// An organization renamed without uninstalling: Gitea answers for the old name with the
// organization under its new one (same id), and the installation follows it to the new
// name, settings and secrets included, so that its builds (whose deliveries name the new
// name) get the secrets again. A squatter who then takes the old name and installs there
// starts afresh.
func TestRenamedOrganizationKeepsItsInstallation(t *testing.T) {
	const secret = "renamed-s3cr3t-4242"
	p, c := installed(t)
	g := p.g
	if resp, page := c.post("/orgs/"+p.org+"/settings", url.Values{"users": {p.owner.Name}}); resp.StatusCode != http.StatusOK {
		t.Fatalf("save settings: %d\n%s", resp.StatusCode, page)
	}
	if resp, page := c.post("/orgs/"+p.org+"/secrets", url.Values{"name": {"DEPLOY_TOKEN"}, "value": {secret}}); resp.StatusCode != http.StatusOK {
		t.Fatalf("set secret: %d\n%s", resp.StatusCode, page)
	}
	old := &project{t: t, g: g, owner: p.owner, org: p.org}
	renamed := testenv.UniqueName("renamed")
	if _, err := g.Client(t, p.owner.Token).RenameOrg(p.org, sdk.RenameOrgOption{NewName: renamed}); err != nil {
		t.Fatal(err)
	}
	p.org = renamed
	deadline := time.Now().Add(30 * time.Second)
	for p.record() == nil || old.record() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("the installation did not follow its organization's rename: new %s, old %s", p.record(), old.record())
		}
		time.Sleep(300 * time.Millisecond)
	}
	rec := string(p.record())
	if !strings.Contains(rec, "DEPLOY_TOKEN") || !strings.Contains(rec, p.owner.Name) || strings.Contains(rec, secret) || strings.Contains(rec, `"quarantine"`) {
		t.Fatalf("the installation under the new name lacks the old settings (or holds the secret in clear):\n%s", rec)
	}
	repo := g.CreateRepo(t, p.owner, renamed, "app")
	sha := g.Push(t, p.owner, repo, "main", "", script(printToken), "after the rename")
	if log := buildLog(t, p, repo, sha); !strings.Contains(log, "token=["+secret+"]") {
		t.Errorf("a trusted push of the renamed organization did not get its secret:\n%s", log)
	}

	// A squatter takes the old name, and installs there: afresh.
	mallory := g.CreateUser(t, testenv.UniqueName("mallory"))
	g.CreateOrg(t, mallory, old.org)
	mc := newClient(t, bot(t))
	mc.signIn(mallory)
	mc.install(old.org)
	if rec := string(old.record()); rec == "" || strings.Contains(rec, "DEPLOY_TOKEN") || strings.Contains(rec, p.owner.Name) {
		t.Errorf("the squatter's installation holds the renamed organization's settings:\n%s", rec)
	}
	if rec := string(p.record()); !strings.Contains(rec, "DEPLOY_TOKEN") {
		t.Errorf("the renamed organization lost its installation to the squatter's:\n%s", rec)
	}
}
