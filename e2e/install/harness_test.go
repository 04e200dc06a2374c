// Package install tests installing Albatros on Gitea organizations end to end: the bot
// binary with its Gitea account and OAuth2 application, against real Nomad, Consul and
// Gitea on loopback, driven through its pages as a user drives them (a real headless
// Chromium for the whole install, an HTTP client with cookies for the rest).
package install

import (
	"context"
	"encoding/base64"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	sdk "code.gitea.io/sdk/gitea"

	"github.com/albatros-ci/albatros/testenv"
)

var env = testenv.New(testenv.Options{Nomad: true, Consul: true, Gitea: true})

func TestMain(m *testing.M) { os.Exit(env.Run(m)) }

// secretKey is the bots' ALBATROS_SECRET_KEY.
const secretKey = "test-secret-key-0123456789abcdef-0123456789"

var (
	setupOnce sync.Once
	setupErr  error
	botBin    string
	account   *testenv.User // the bot's own Gitea account
	mainBot   *testenv.Bot
	recorded  *recorder // the bot's public URL
)

// bot returns the package's bot, with its Gitea account and OAuth2 application, started on
// first use and stopped with the servers.
func bot(t *testing.T) *testenv.Bot {
	t.Helper()
	g := env.Gitea(t)
	env.Nomad(t)
	env.Consul(t)
	setupOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		dir, err := os.MkdirTemp("", "alb-install-")
		if err != nil {
			setupErr = err
			return
		}
		env.AtStop(func() { os.RemoveAll(dir) })
		if botBin, setupErr = testenv.BuildBot(ctx, dir); setupErr != nil {
			return
		}
		account = g.CreateUser(t, testenv.UniqueName("albatros"))
		// The bot's public URL is a recorder in front of it, so that a test can deliver a
		// webhook again exactly as Gitea sent it; replicas share that URL.
		recorded = newRecorder()
		env.AtStop(recorded.srv.Close)
		mainBot, setupErr = startBotURL(ctx, t, "2s", recorded.srv.URL)
		if setupErr != nil {
			return
		}
		env.AtStop(mainBot.Stop)
		recorded.target, setupErr = url.Parse(mainBot.URL)
	})
	if setupErr != nil {
		t.Fatalf("start the bot: %v", setupErr)
	}
	mainBot.LogOnFailure(t)
	return mainBot
}

// startBot starts a bot with the package's Gitea account, an OAuth2 application of its own
// (its redirect URI names the bot's address) and the given hook check interval.
func startBot(ctx context.Context, t testing.TB, interval string) (*testenv.Bot, error) {
	return startBotURL(ctx, t, interval, "")
}

var (
	appsMu sync.Mutex
	apps   = map[string]struct{ id, secret string }{}
)

// startBotURL starts a bot as startBot does, with ALBATROS_URL set to url when it is not
// empty: a replica behind the same address as another bot.
func startBotURL(ctx context.Context, t testing.TB, interval, url string) (*testenv.Bot, error) {
	g, n, c := env.Gitea(t), env.Nomad(t), env.Consul(t)
	addr, err := testenv.FreeAddr()
	if err != nil {
		return nil, err
	}
	if url == "" {
		url = "http://" + addr
	}
	// Replicas behind one URL share one OAuth2 application, as they would in production.
	appsMu.Lock()
	app, ok := apps[url]
	if !ok {
		app.id, app.secret = g.CreateOAuth2App(t, account, testenv.UniqueName("albatros"), url+"/login/gitea/callback")
		apps[url] = app
	}
	appsMu.Unlock()
	id, secret := app.id, app.secret
	return testenv.StartBotOn(ctx, botBin, addr, append(append(n.Env(), c.Env()...),
		"ALBATROS_URL="+url,
		"ALBATROS_GITEA_URL="+strings.TrimSuffix(g.URL, "/"),
		"ALBATROS_GITEA_TOKEN="+account.Token,
		"ALBATROS_GITEA_CLIENT_ID="+id,
		"ALBATROS_GITEA_CLIENT_SECRET="+secret,
		"ALBATROS_SECRET_KEY="+secretKey,
		"ALBATROS_HOOK_CHECK_INTERVAL="+interval,
		"ALBATROS_BUILDER_DRIVER=raw_exec",
		// TARGET: the run parameter of TestRunButton, which the builders declare.
		`ALBATROS_BUILDER_VARS=cpu=100,memory=128,params=["TARGET"]`,
		"ALBATROS_LOG_LEVEL=debug",
		"ALBATROS_RECONCILE_INTERVAL=0", // at start only: a pass mid-test would build heads
	))
}

// client is a person using the bot's pages: an HTTP client with cookies, that follows
// redirects between the bot and Gitea.
type client struct {
	t    *testing.T
	http *http.Client
	bot  *testenv.Bot
}

func newClient(t *testing.T, b *testenv.Bot) *client {
	jar, _ := cookiejar.New(nil)
	return &client{t: t, http: &http.Client{Jar: jar, Timeout: 60 * time.Second}, bot: b}
}

// do sends a request and returns the final answer, after redirects, with its body.
func (c *client) do(method, u string, form url.Values, header http.Header) (*http.Response, string) {
	c.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func (c *client) get(path string) (*http.Response, string) {
	c.t.Helper()
	return c.do(http.MethodGet, c.bot.URL+path, nil, nil)
}

func (c *client) post(path string, form url.Values) (*http.Response, string) {
	c.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	return c.do(http.MethodPost, c.bot.URL+path, form, nil)
}

var hiddenRE = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)

// signIn signs user in on the bot through Gitea's login and authorize pages, granting the
// bot's application when Gitea asks, and returns the page it ends on (the bot's /orgs).
func (c *client) signIn(user *testenv.User) string {
	c.t.Helper()
	g := env.Gitea(c.t)
	resp, page := c.get("/login?next=/orgs")
	if strings.Contains(resp.Request.URL.Path, "/user/login") {
		resp, page = c.do(http.MethodPost, g.URL+"user/login", url.Values{"user_name": {user.Name}, "password": {user.Password}}, nil)
	}
	if strings.Contains(page, `action="/login/oauth/grant"`) {
		form := url.Values{"granted": {"true"}}
		for _, m := range hiddenRE.FindAllStringSubmatch(page, -1) {
			form.Set(m[1], html.UnescapeString(m[2]))
		}
		resp, page = c.do(http.MethodPost, g.URL+"login/oauth/grant", form, nil)
	}
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/orgs" || !strings.Contains(page, "signed in as <strong>"+user.Name) {
		c.t.Fatalf("sign-in of %s ended at %s with %d:\n%s", user.Name, resp.Request.URL, resp.StatusCode, page)
	}
	return page
}

// install installs Albatros on org through the bot's Install button.
func (c *client) install(org string) {
	c.t.Helper()
	resp, page := c.post("/orgs/"+org+"/install", nil)
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/orgs/"+org || !strings.Contains(page, "Albatros is installed") {
		c.t.Fatalf("install on %s ended at %s with %d:\n%s", org, resp.Request.URL, resp.StatusCode, page)
	}
}

// project is an organization of its own owner, installed or not.
type project struct {
	t     *testing.T
	g     *testenv.Gitea
	owner *testenv.User
	org   string
}

func newProject(t *testing.T) *project {
	g := env.Gitea(t)
	p := &project{t: t, g: g, owner: g.CreateUser(t, testenv.UniqueName("owner")), org: testenv.UniqueName("org")}
	g.CreateOrg(t, p.owner, p.org)
	return p
}

// installed is a project with Albatros installed by its owner, and the owner's client.
func installed(t *testing.T) (*project, *client) {
	p := newProject(t)
	c := newClient(t, bot(t))
	c.signIn(p.owner)
	c.install(p.org)
	return p, c
}

func script(body string) map[string]testenv.File {
	return map[string]testenv.File{".albatros": {Content: "#!/bin/sh\n" + body, Executable: true}}
}

// waitStatus waits until the newest status of sha in context has state.
func (p *project) waitStatus(repo *testenv.Repo, sha string, state sdk.StatusState) *sdk.Status {
	p.t.Helper()
	return p.g.WaitStatus(p.t, repo, sha, "albatros/default", state, 90*time.Second)
}

// hooks lists the organization's webhooks, as its owner sees them.
func (p *project) hooks() []*sdk.Hook {
	p.t.Helper()
	hooks, _, err := p.g.Client(p.t, p.owner.Token).ListOrgHooks(p.org, sdk.ListHooksOptions{})
	if err != nil {
		p.t.Fatal(err)
	}
	return hooks
}

// botIsOwner reports whether the bot account owns the organization.
func (p *project) botIsOwner() bool {
	p.t.Helper()
	perm, _, err := p.g.Client(p.t, p.owner.Token).GetOrgPermissions(p.org, account.Name)
	if err != nil {
		p.t.Fatal(err)
	}
	return perm.IsOwner
}

// record is the installation's record in Consul, raw, or nil.
func (p *project) record() []byte {
	p.t.Helper()
	key := "albatros/install/" + base64.StdEncoding.EncodeToString([]byte(strings.TrimSuffix(p.g.URL, "/")+"/"+p.org))
	pair, _, err := env.Consul(p.t).Client(p.t).KV().Get(key, nil)
	if err != nil {
		p.t.Fatal(err)
	}
	if pair == nil {
		return nil
	}
	return pair.Value
}

// jobs lists the builds Nomad holds for repo, with their meta.
func jobs(t *testing.T, repo *testenv.Repo) map[string]map[string]string {
	t.Helper()
	return env.Nomad(t).Builds(t, repo.CloneURL)
}

// jobFromLink is the namespace and job a status links to (…/logs/<ns>/<job>).
func jobFromLink(t *testing.T, link string) (string, string) {
	t.Helper()
	_, rest, ok := strings.Cut(link, "/logs/")
	ns, job, ok2 := strings.Cut(rest, "/")
	if !ok || !ok2 {
		t.Fatalf("status link %q is not a log page", link)
	}
	return ns, job
}

// allKV is every key and value under albatros/ in Consul, for looking for secrets in clear.
func allKV(t *testing.T) string {
	t.Helper()
	pairs, _, err := env.Consul(t).Client(t).KV().List("albatros/", nil)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, p := range pairs {
		fmt.Fprintf(&b, "%s=%s\n", p.Key, p.Value)
	}
	return b.String()
}

// public is the bot's public URL (ALBATROS_URL): where its webhooks post and its links
// point, the recorder in front of it.
func public(t *testing.T) string {
	t.Helper()
	bot(t)
	return recorded.srv.URL
}
