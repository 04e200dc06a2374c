package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/albatros-ci/albatros/forge/github/githubtest"
	"github.com/albatros-ci/albatros/pipeline"
	"github.com/albatros-ci/albatros/registry"
	"github.com/albatros-ci/albatros/seal"
	"github.com/albatros-ci/albatros/testenv"
)

// The GitHub side, end to end: a bot acting as a GitHub App against githubtest's fake of
// GitHub's API, with the real Nomad and Consul behind it. The repositories' git lives on
// the test's Gitea (the fake passes clones on to it), so that the builder clones what the
// fake's repositories name.

// appKey is the App bot's ALBATROS_SECRET_KEY.
const appKey = "github-app-e2e-secret-key-0123456789abcdef"

// appPrefix keeps the App bot's registry apart from the package's bot: each leads its own
// event stream and reports only its own builds.
const appPrefix = "albatros-gh/"

var (
	appOnce sync.Once
	appFake *githubtest.Server
	appBot  *testenv.Bot
	appErr  error
)

// githubApp returns the fake GitHub and the bot acting as its App, started on first use.
func githubApp(t *testing.T) (*githubtest.Server, *testenv.Bot) {
	t.Helper()
	bot(t) // builds the binary, registers the builder
	n, c := env.Nomad(t), env.Consul(t)
	appOnce.Do(func() {
		if appFake, appErr = githubtest.New(); appErr != nil {
			return
		}
		env.AtStop(appFake.Close)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		appBot, appErr = testenv.StartBot(ctx, botBin, append(append(n.Env(), c.Env()...),
			"ALBATROS_BUILDERS=none",
			"ALBATROS_LOG_LEVEL=debug",
			"ALBATROS_RECONCILE_INTERVAL=0",
			"ALBATROS_CONSUL_PREFIX="+appPrefix,
			"ALBATROS_HOOK_CHECK_INTERVAL=2s", // the App's installations synced with GitHub's list
			"ALBATROS_SECRET_KEY="+appKey,
			"ALBATROS_GITHUB_URL="+appFake.API,
			"ALBATROS_GITHUB_WEB_URL="+appFake.URL,
			fmt.Sprintf("ALBATROS_GITHUB_APP_ID=%d", appFake.App.ID),
			"ALBATROS_GITHUB_APP_KEY="+string(appFake.App.KeyPEM),
			"ALBATROS_GITHUB_WEBHOOK_SECRET="+appFake.App.WebhookSecret,
		))
		if appErr == nil {
			env.AtStop(appBot.Stop)
		}
	})
	if appErr != nil {
		t.Fatalf("start the GitHub App's bot: %v", appErr)
	}
	appBot.LogOnFailure(t)
	return appFake, appBot
}

// ghProject is one test's GitHub account (an organization) and repository app on the fake,
// its git on a Gitea repository of the same names.
type ghProject struct {
	t     *testing.T
	gh    *githubtest.Server
	bot   *testenv.Bot
	git   *project // the Gitea side: pushes
	org   string
	owner string // the organization's owner on GitHub
	full  string // org/app
	inst  int64
}

func newGHProject(t *testing.T) *ghProject {
	t.Helper()
	gh, b := githubApp(t)
	git := newProject(t, nil, "")
	p := &ghProject{t: t, gh: gh, bot: b, git: git, org: git.org, owner: testenv.UniqueName("ghowner")}
	p.full = p.org + "/app"
	gh.AddUser(p.owner)
	gh.AddOrg(p.org, p.owner)
	gh.AddRepo(p.org, "app", false, git.repo.CloneURL)
	return p
}

// deliver posts a delivery of event to the bot as the App's webhook, and wants code.
func (p *ghProject) deliver(event string, body []byte, code int) string {
	p.t.Helper()
	got, answer, err := p.gh.Deliver(p.bot.URL+"/webhook/github", event, body)
	if err != nil {
		p.t.Fatal(err)
	}
	if got != code {
		p.t.Fatalf("%s delivery answered %d %q, want %d", event, got, answer, code)
	}
	return answer
}

// push pushes files on branch (on the Gitea behind the fake), sets the fake's branch and
// delivers the push as sender; it returns the commit.
func (p *ghProject) push(branch, sender string, files map[string]testenv.File) string {
	p.t.Helper()
	sha := p.git.push(branch, files)
	p.gh.SetBranch(p.full, branch, sha)
	p.deliver("push", p.gh.PushPayload(p.full, branch, sha, sender), http.StatusAccepted)
	return sha
}

// waitState waits for the newest status of sha in context to be state, and returns the
// statuses written on sha.
func (p *ghProject) waitState(sha, context, state string) []githubtest.Status {
	p.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	var last []githubtest.Status
	for time.Now().Before(deadline) {
		last = nil
		for _, s := range p.gh.Statuses(sha) {
			if s.Context == context {
				last = append(last, s)
			}
		}
		if len(last) > 0 && last[len(last)-1].State == state {
			return last
		}
		time.Sleep(150 * time.Millisecond)
	}
	p.t.Fatalf("status %s of %s never became %s: %+v", context, sha, state, last)
	return nil
}

func states(list []githubtest.Status) []string {
	var out []string
	for _, s := range list {
		out = append(out, s.State)
	}
	return out
}

// settings changes the installation's settings as its owner would on the admin page: in
// the bot's registry, with its key.
func (p *ghProject) settings(f func(r *registry.Registry, inst *registry.Installation)) {
	p.t.Helper()
	keys, err := seal.New([]byte(appKey))
	if err != nil {
		p.t.Fatal(err)
	}
	r, err := registry.New(appPrefix, keys)
	if err != nil {
		p.t.Fatal(err)
	}
	defer r.Close()
	ctx := context.Background()
	inst, err := r.Installation(ctx, registry.OrgURLOf(p.gh.URL, p.org))
	if err != nil {
		p.t.Fatalf("the installation's record: %v", err)
	}
	f(r, inst)
	if err := r.PutInstallation(ctx, inst); err != nil {
		p.t.Fatal(err)
	}
}

// install installs the App on the organization, as GitHub tells the bot.
func (p *ghProject) install() {
	p.t.Helper()
	p.inst = p.gh.Install(p.org)
	answer := p.deliver("installation", p.gh.InstallationPayload(p.inst, "created", p.owner), http.StatusOK)
	if !strings.Contains(answer, "installed on "+p.org) {
		p.t.Fatalf("installation answered %q", answer)
	}
}

// TestGitHubAppPushBuildsAndReports: the App installed through GitHub's installation
// event; a push builds, its statuses (written as the App's bot) link to a working log
// page; a token GitHub refuses is renewed without a failed status; a wrongly signed
// delivery builds nothing; once uninstalled, nothing is built.
func TestGitHubAppPushBuildsAndReports(t *testing.T) {
	p := newGHProject(t)
	// Before the App is installed, the account's deliveries build nothing.
	early := p.git.push("main", script(printEnv))
	p.gh.SetBranch(p.full, "main", early)
	p.deliver("push", p.gh.PushPayload(p.full, "main", early, p.owner), http.StatusOK)

	p.install()
	sha := p.push("main", p.owner, script(printEnv))
	list := p.waitState(sha, "albatros/default", "success")
	if got := states(list); strings.Join(got, " ") != "pending success" {
		t.Fatalf("statuses %v, want pending success", got)
	}
	last := list[len(list)-1]
	if last.Creator != p.gh.App.Slug+"[bot]" || !strings.HasPrefix(last.TargetURL, p.bot.URL+"/logs/ci/") {
		t.Fatalf("final status %+v", last)
	}
	if _, page := get(t, last.TargetURL); !strings.Contains(page, "COMMIT="+sha+" BRANCH=main FLAVOR=default") {
		t.Fatalf("log page:\n%s", page)
	}
	if jobs := env.Nomad(t).Builds(t, p.gh.URL+"/"+p.full+".git"); len(jobs) != 1 {
		t.Fatalf("builds %s", describe(jobs))
	}
	// Its history page and badge, as a Gitea repository's.
	if code, page := get(t, p.bot.URL+"/github/builds/"+p.full); code != http.StatusOK || !strings.Contains(page, sha[:10]) || !strings.Contains(page, "/github/badge/"+p.full+".svg") {
		t.Fatalf("the history page: %d\n%s", code, page)
	}
	if code, svg := get(t, p.bot.URL+"/github/badge/"+p.full+".svg?branch=main"); code != http.StatusOK || !strings.Contains(svg, "passing") {
		t.Fatalf("the badge: %d\n%s", code, svg)
	}

	// GitHub refuses the token the bot holds (past its expiry on GitHub's clock): the
	// bot's next writes renew it and go through.
	issued := p.gh.TokensIssued()
	p.gh.ExpireTokens()
	sha2 := p.push("main", p.owner, script(printEnv+"\n# two\n"))
	if got := states(p.waitState(sha2, "albatros/default", "success")); strings.Join(got, " ") != "pending success" {
		t.Fatalf("statuses after the token was refused: %v", got)
	}
	if p.gh.TokensIssued() <= issued {
		t.Fatal("no new installation token")
	}

	// Signed with another secret, or not at all: refused, nothing built.
	sha3 := p.git.push("main", script(printEnv+"\n# three\n"))
	body := p.gh.PushPayload(p.full, "main", sha3, p.owner)
	for _, secret := range []string{"not-the-apps-secret", ""} {
		code, answer, err := p.gh.DeliverSigned(p.bot.URL+"/webhook/github", "push", body, secret)
		if err != nil || (code != http.StatusForbidden && code != http.StatusUnauthorized) {
			t.Errorf("push signed with %q: %d %q %v, want 401 or 403", secret, code, answer, err)
		}
	}

	// Uninstalled: GitHub's later deliveries build nothing.
	uninstalled := p.gh.InstallationPayload(p.inst, "deleted", p.owner)
	p.gh.Uninstall(p.inst)
	if answer := p.deliver("installation", uninstalled, http.StatusOK); !strings.Contains(answer, "uninstalled") {
		t.Fatalf("uninstall answered %q", answer)
	}
	p.deliver("push", body, http.StatusOK)
	time.Sleep(2 * time.Second)
	if st := p.gh.Statuses(sha3); len(st) != 0 {
		t.Fatalf("statuses after the uninstall: %+v", st)
	}
	if jobs := env.Nomad(t).Builds(t, p.gh.URL+"/"+p.full+".git"); len(jobs) != 2 {
		t.Fatalf("builds after the uninstall: %s", describe(jobs))
	}
}

// waitComment waits until the bot's one comment of the builds of pull request number
// (pipeline.Marker; its answers to refused commands are comments of their own) satisfies
// ok, and returns it.
func (p *ghProject) waitComment(number int, what string, ok func(body string) bool) githubtest.Comment {
	p.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	var mine []githubtest.Comment
	for time.Now().Before(deadline) {
		mine = nil
		for _, c := range p.gh.Comments(p.full, number) {
			if c.Author == p.gh.App.Slug+"[bot]" && strings.HasPrefix(c.Body, pipeline.Marker) {
				mine = append(mine, c)
			}
		}
		if len(mine) > 1 {
			p.t.Fatalf("%d comments of the bot on #%d, want one: %+v", len(mine), number, mine)
		}
		if len(mine) == 1 && ok(mine[0].Body) {
			return mine[0]
		}
		time.Sleep(200 * time.Millisecond)
	}
	p.t.Fatalf("the bot's comment on #%d never showed %s: %+v", number, what, mine)
	return githubtest.Comment{}
}

// say comments body on pull request number as login, and delivers the comment.
func (p *ghProject) say(number int, login, body string) githubtest.Comment {
	p.t.Helper()
	c := p.gh.AddComment(p.full, number, login, body)
	p.deliver("issue_comment", p.gh.CommentPayload(c), http.StatusAccepted)
	return c
}

// TestGitHubAppPullRequests: a fork's pull request runs without the secrets, and with them
// once a trusted maintainer approves its commit; /rebuild by a writer builds again, by a
// stranger not; the bot keeps one comment, edited in place; a closed pull request stops
// its builds.
func TestGitHubAppPullRequests(t *testing.T) {
	const token = "gh-deploy-token-0451"
	p := newGHProject(t)
	p.install()
	writer, stranger, forker := testenv.UniqueName("writer"), testenv.UniqueName("stranger"), testenv.UniqueName("forker")
	for _, u := range []string{writer, stranger, forker} {
		p.gh.AddUser(u)
	}
	p.gh.SetPermission(p.full, writer, "write")
	ownerID := p.gh.UserID(p.owner)
	p.settings(func(r *registry.Registry, inst *registry.Installation) {
		s := inst.SettingsOf("")
		s.Trusted.Users, s.Trusted.UserIDs = []string{p.owner}, map[string]int64{p.owner: ownerID}
		inst.SetSettings("", s)
		if err := r.SetSecret(inst, "", "DEPLOY_TOKEN", token); err != nil {
			t.Fatal(err)
		}
	})
	p.push("main", p.owner, script(`echo "token=[${DEPLOY_TOKEN-none}] PR=${PR-unset}"`))

	// The fork's commit (its git pushed to a side branch of the repository's, where the
	// builder fetches it by its SHA).
	forkSHA := p.git.g.Push(t, p.git.owner, p.git.repo, "fork-fix", "main", map[string]testenv.File{"CHANGE": {Content: "fork\n"}}, "the fork's change")
	p.gh.AddRepo(forker, "app", false, p.git.repo.CloneURL)
	p.gh.SetPull(p.full, githubtest.Pull{Number: 1, HeadOwner: forker, HeadBranch: "fix", HeadSHA: forkSHA, Base: "main", Author: forker, Open: true})
	p.deliver("pull_request", p.gh.PullRequestPayload(p.full, 1, "opened", forker), http.StatusAccepted)
	first := p.waitState(forkSHA, "albatros/default", "success")
	_, job := jobFromLink(t, first[len(first)-1].TargetURL)
	if raw := env.Nomad(t).BuildLog(t, "ci", job); !strings.Contains(raw, "token=[none] PR=1") {
		t.Fatalf("the fork's build saw the secret, or no PR:\n%s", raw)
	}
	c := p.waitComment(1, "the request for approval", func(b string) bool { return strings.Contains(b, "/approve "+forkSHA) })
	if strings.Contains(c.Body, token) {
		t.Fatalf("the comment shows the secret:\n%s", c.Body)
	}

	// A stranger's /approve and /rebuild do nothing; a writer's /rebuild builds again,
	// still without secrets; the owner's /approve runs it with them.
	p.say(1, stranger, "/approve "+forkSHA)
	p.say(1, stranger, "/rebuild")
	time.Sleep(3 * time.Second)
	builds := func() int { return len(env.Nomad(t).Builds(t, p.gh.URL+"/"+p.full+".git")) }
	if n := builds(); n != 2 {
		t.Fatalf("%d builds after a stranger's commands, want 2 (the push and the pull request)", n)
	}
	rebuild := p.say(1, writer, "/rebuild")
	waitFor(t, "the writer's rebuild", func() bool { return builds() == 3 })
	waitFor(t, "the rebuild's reactions", func() bool { return len(p.gh.Reactions(rebuild.ID)) == 2 })
	p.say(1, p.owner, "/approve "+forkSHA)
	waitFor(t, "the approved build", func() bool { return builds() == 4 })
	p.waitComment(1, "the approved build's success", func(b string) bool {
		return !strings.Contains(b, "/approve "+forkSHA) && strings.Contains(b, "success")
	})
	var approved string
	for id, meta := range env.Nomad(t).Builds(t, p.gh.URL+"/"+p.full+".git") {
		raw := env.Nomad(t).BuildLog(t, "ci", id)
		if meta["COMMIT"] == forkSHA && strings.Contains(raw, "token=["+token+"]") {
			approved = id
		}
	}
	if approved == "" {
		t.Fatal("no build of the approved commit got the secret")
	}
	final := p.waitComment(1, "its edits", func(string) bool { return true })
	if final.Edits == 0 {
		t.Error("the bot's comment was never edited in place")
	}

	// A closed pull request stops its builds.
	slowSHA := p.git.g.Push(t, p.git.owner, p.git.repo, "slow", "main", map[string]testenv.File{".albatros": {Content: "#!/bin/sh\nsleep 120\n", Executable: true}}, "slow")
	p.gh.SetPull(p.full, githubtest.Pull{Number: 2, HeadOwner: p.org, HeadBranch: "slow", HeadSHA: slowSHA, Base: "main", Author: writer, Open: true})
	p.deliver("pull_request", p.gh.PullRequestPayload(p.full, 2, "opened", writer), http.StatusAccepted)
	p.waitState(slowSHA, "albatros/default", "pending")
	time.Sleep(2 * time.Second)
	p.gh.SetPull(p.full, githubtest.Pull{Number: 2, HeadOwner: p.org, HeadBranch: "slow", HeadSHA: slowSHA, Base: "main", Author: writer, Open: false})
	p.deliver("pull_request", p.gh.PullRequestPayload(p.full, 2, "closed", writer), http.StatusAccepted)
	list := p.waitState(slowSHA, "albatros/default", "error")
	if d := list[len(list)-1].Description; !strings.Contains(d, "closed") {
		t.Errorf("the closed pull request's build: %q", d)
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		if ok() {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s: not within 90s", what)
}

// GitHub does not redeliver a lost delivery by itself: an installation whose event never
// reached the bot is recorded from GitHub's list of the App's installations, and one
// uninstalled while the bot missed it is removed.
func TestGitHubAppInstallationsSynced(t *testing.T) {
	p := newGHProject(t)
	p.inst = p.gh.Install(p.org) // no event
	var sha string
	waitFor(t, "the installation recorded from GitHub's list", func() bool {
		sha = p.git.push("main", script(printEnv))
		p.gh.SetBranch(p.full, "main", sha)
		code, _, err := p.gh.Deliver(p.bot.URL+"/webhook/github", "push", p.gh.PushPayload(p.full, "main", sha, p.owner))
		return err == nil && code == http.StatusAccepted
	})
	p.waitState(sha, "albatros/default", "success")
	p.gh.Uninstall(p.inst) // no event either
	waitFor(t, "the uninstalled installation removed", func() bool {
		code, _, err := p.gh.Deliver(p.bot.URL+"/webhook/github", "push", p.gh.PushPayload(p.full, "main", sha, p.owner))
		return err == nil && code == http.StatusOK
	})
}
