package install

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	sdk "code.gitea.io/sdk/gitea"

	"github.com/albatros-ci/albatros/testenv"
)

const printToken = `echo "token=[${DEPLOY_TOKEN-none}]"` + "\n"

// A secret set on the organization's page reaches the next build of trusted code, and not
// one of untrusted code; its value shows nowhere: not on the pages, in statuses, in the
// relayed logs, in the bot's log, nor in clear in Consul. A team set as trusted makes its
// members' pushes trusted.
func TestSecretsAndTrust(t *testing.T) {
	const secret = "page-set-s3cr3t-31337"
	p, c := installed(t)
	repo := p.g.CreateRepo(t, p.owner, p.org, "app")
	g := p.g
	dev := g.CreateUser(t, testenv.UniqueName("dev"))          // pushes, untrusted
	releaser := g.CreateUser(t, testenv.UniqueName("release")) // pushes, in the trusted team
	g.AddCollaborator(t, p.owner, repo, dev.Name)
	team, _, err := g.Client(t, p.owner.Token).CreateTeam(p.org, sdk.CreateTeamOption{Name: "release", Permission: sdk.AccessModeWrite, IncludesAllRepositories: true, Units: []sdk.RepoUnitType{sdk.RepoUnitCode}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Client(t, p.owner.Token).AddTeamMember(team.ID, releaser.Name); err != nil {
		t.Fatal(err)
	}

	// Settings and the secret, through the page's forms.
	resp, page := c.post("/orgs/"+p.org+"/settings", url.Values{"users": {p.owner.Name}, "teams": {"release"}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "Settings saved") {
		t.Fatalf("save settings: %d\n%s", resp.StatusCode, page)
	}
	resp, page = c.post("/orgs/"+p.org+"/secrets", url.Values{"name": {"DEPLOY_TOKEN"}, "value": {secret}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "Secret set") || !strings.Contains(page, "DEPLOY_TOKEN") {
		t.Fatalf("set secret: %d\n%s", resp.StatusCode, page)
	}
	// Bad input is refused and changes nothing.
	for _, form := range []url.Values{
		{"name": {"1BAD"}, "value": {"x"}},
		{"name": {"OK_NAME"}, "value": {""}},
		{"name": {"A;rm -rf"}, "value": {"x"}},
	} {
		if resp, _ := c.post("/orgs/"+p.org+"/secrets", form); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("secret %v: %d, want 400", form, resp.StatusCode)
		}
	}
	if resp, _ := c.post("/orgs/"+p.org+"/settings", url.Values{"flavors": {"bad flavor;"}}); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a bad flavor: %d, want 400", resp.StatusCode)
	}
	if resp, page := c.post("/orgs/"+p.org+"/settings", url.Values{"users": {p.owner.Name}, "teams": {"release"}, "builder_job": {"no-such-builder"}}); resp.StatusCode != http.StatusBadRequest || !strings.Contains(page, "no-such-builder") {
		t.Errorf("a builder that does not exist: %d, want 400 naming it\n%s", resp.StatusCode, page)
	}

	trusted := g.Push(t, p.owner, repo, "main", "", script(printToken), "by the owner, trusted")
	// On branches of their own: a push to main would supersede the build before it.
	untrusted := g.Push(t, dev, repo, "dev", "main", script(printToken+"echo untrusted\n"), "by a developer, not trusted")
	byTeam := g.Push(t, releaser, repo, "release", "main", script(printToken+"echo team\n"), "by a member of the trusted team")
	logs := map[string]string{}
	var statuses []*sdk.Status
	for name, sha := range map[string]string{"trusted": trusted, "untrusted": untrusted, "team": byTeam} {
		st := p.waitStatus(repo, sha, sdk.StatusSuccess)
		ns, job := jobFromLink(t, st.TargetURL)
		logs[name] = env.Nomad(t).BuildLog(t, ns, job)
		statuses = append(statuses, g.Statuses(t, repo, sha)...)
		// The log the bot relays masks it.
		_, relayed := newClient(t, bot(t)).get("/build?namespace=" + ns + "&job=" + job)
		if strings.Contains(relayed, secret) {
			t.Errorf("%s build's relayed log shows the secret:\n%s", name, relayed)
		}
		if name != "untrusted" && !strings.Contains(relayed, "token=[***]") {
			t.Errorf("%s build's relayed log:\n%s", name, relayed)
		}
	}
	if !strings.Contains(logs["trusted"], "token=["+secret+"]") || !strings.Contains(logs["team"], "token=["+secret+"]") {
		t.Errorf("trusted builds did not get the secret:\n%s\n%s", logs["trusted"], logs["team"])
	}
	if !strings.Contains(logs["untrusted"], "token=[none]") {
		t.Errorf("the untrusted build got the secret:\n%s", logs["untrusted"])
	}
	for _, st := range statuses {
		if strings.Contains(st.Description, secret) {
			t.Errorf("status shows the secret: %+v", st)
		}
	}
	_, orgPage := c.get("/orgs/" + p.org)
	_, repoPage := c.get("/orgs/" + p.org + "/repos/app")
	for where, text := range map[string]string{"organization page": orgPage, "repository page": repoPage, "bot log": bot(t).Log(), "consul": allKV(t)} {
		if strings.Contains(text, secret) {
			t.Errorf("the %s shows the secret in clear", where)
		}
	}
	if !strings.Contains(orgPage, "DEPLOY_TOKEN") {
		t.Error("the organization page does not list the secret's name")
	}

	// Deleted, it reaches no build any more.
	if resp, page := c.post("/orgs/"+p.org+"/secrets/delete", url.Values{"name": {"DEPLOY_TOKEN"}}); resp.StatusCode != http.StatusOK || strings.Contains(page, "<td class=\"mono\">DEPLOY_TOKEN") {
		t.Fatalf("delete secret: %d\n%s", resp.StatusCode, page)
	}
	after := g.Push(t, p.owner, repo, "main", "", script(printToken+"echo after\n"), "after the delete")
	st := p.waitStatus(repo, after, sdk.StatusSuccess)
	ns, job := jobFromLink(t, st.TargetURL)
	if log := env.Nomad(t).BuildLog(t, ns, job); !strings.Contains(log, "token=[none]") {
		t.Errorf("a deleted secret reached a build:\n%s", log)
	}
}

// A private repository's logs are served to its readers only: an anonymous visitor is sent
// to sign in, a signed-in outsider gets 403. A public repository's logs stay open.
func TestPrivateRepositoryLogs(t *testing.T) {
	p, c := installed(t)
	private := p.g.CreatePrivateRepo(t, p.owner, p.org, "closed")
	// Trusted builds fetch a private repository with the organization's ALBATROS_GIT_TOKEN.
	c.post("/orgs/"+p.org+"/settings", url.Values{"users": {p.owner.Name}})
	if resp, _ := c.post("/orgs/"+p.org+"/secrets", url.Values{"name": {"ALBATROS_GIT_TOKEN"}, "value": {p.owner.Token}}); resp.StatusCode != http.StatusOK {
		t.Fatalf("set ALBATROS_GIT_TOKEN: %d", resp.StatusCode)
	}
	public := p.g.CreateRepo(t, p.owner, p.org, "open")
	privSHA := p.g.Push(t, p.owner, private, "main", "", script("echo private build output\n"), "private")
	pubSHA := p.g.Push(t, p.owner, public, "main", "", script("echo public build output\n"), "public")
	privLink := p.waitStatus(private, privSHA, sdk.StatusSuccess).TargetURL
	pubLink := p.waitStatus(public, pubSHA, sdk.StatusSuccess).TargetURL
	ns, job := jobFromLink(t, privLink)
	plain := bot(t).URL + "/build?namespace=" + ns + "&job=" + job

	anonymous := noRedirects(newClient(t, bot(t)))
	for _, link := range []string{privLink, plain} {
		resp, err := anonymous.Get(link)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/login?next=") {
			t.Errorf("anonymous %s: %d to %q, want sign-in", link, resp.StatusCode, loc)
		}
	}
	outsider := newClient(t, bot(t))
	outsider.signIn(p.g.CreateUser(t, testenv.UniqueName("outsider")))
	for _, link := range []string{privLink, plain} {
		if resp, body := outsider.do(http.MethodGet, link, nil, nil); resp.StatusCode != http.StatusForbidden || strings.Contains(body, "private build output") {
			t.Errorf("outsider %s: %d", link, resp.StatusCode)
		}
	}
	reader := p.g.CreateUser(t, testenv.UniqueName("reader"))
	p.g.AddCollaborator(t, p.owner, private, reader.Name)
	rc := newClient(t, bot(t))
	rc.signIn(reader)
	for _, link := range []string{privLink, plain} {
		if resp, body := rc.do(http.MethodGet, link, nil, nil); resp.StatusCode != http.StatusOK || !strings.Contains(body, "private build output") {
			t.Errorf("reader %s: %d\n%s", link, resp.StatusCode, body)
		}
	}
	// Signing in from the status link comes back to the log.
	fresh := newClient(t, bot(t))
	if resp, body := fresh.do(http.MethodGet, privLink, nil, nil); !strings.Contains(resp.Request.URL.Path, "/user/login") {
		t.Fatalf("the status link, signed out, leads to %s:\n%s", resp.Request.URL, body)
	}
	resp, body := fresh.do(http.MethodPost, p.g.URL+"user/login", url.Values{"user_name": {p.owner.Name}, "password": {p.owner.Password}}, nil)
	if strings.Contains(body, `action="/login/oauth/grant"`) {
		t.Fatal("the owner, who granted the bot before, is asked again")
	}
	if resp.Request.URL.String() != privLink || !strings.Contains(body, "private build output") {
		t.Errorf("after signing in from the status link: %s %d", resp.Request.URL, resp.StatusCode)
	}

	pub, err := anonymous.Get(pubLink)
	if err != nil {
		t.Fatal(err)
	}
	pub.Body.Close()
	if pub.StatusCode != http.StatusOK {
		t.Errorf("a public repository's log, anonymous: %d, want 200", pub.StatusCode)
	}
}
