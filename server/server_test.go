package server_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/albatros-ci/albatros/forge"
	"github.com/albatros-ci/albatros/logfan"
	"github.com/albatros-ci/albatros/orchestrator"
	"github.com/albatros-ci/albatros/orchestrator/orchestratortest"
	"github.com/albatros-ci/albatros/pipeline"
	"github.com/albatros-ci/albatros/registry"
	"github.com/albatros-ci/albatros/registry/registrytest"
	"github.com/albatros-ci/albatros/secrets"
	"github.com/albatros-ci/albatros/server"
	"github.com/albatros-ci/albatros/webhook"
)

// A build as the bot dispatches it: the job ID holds a slash.
const (
	buildID   = "builder/dispatch-albatros-k0123456789abcdef0123-1700000000-abcd1234"
	repoURL   = "http://127.0.0.1:33669/org-67e531e3/parsed.git"
	commit    = "33520fc545ee8d54b0ca4f9700611016abe1e613"
	defaultNS = "ci"
)

// The secrets a build received (its payload) and those of the repository's current entry.
const (
	payloadToken = "payload-token-4242"
	injectedKey  = "deploy-key-from-inject"
	currentToken = "current-token-7777"
	currentInj   = "injected-secret-9999"
	htmlSecret   = `p<a>ss&"wd`
)

// payload is the secrets file of a trusted build, rendered as the pipeline renders it.
func payload(t *testing.T) []byte {
	t.Helper()
	p, err := secrets.Payload("set +x\nexport DEPLOY_KEY="+injectedKey+"\n", map[string]string{"PAYLOAD_TOKEN": payloadToken})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// currentEntry is the repository's entry now: its secrets have changed since the build.
func currentEntry() *registry.Repo {
	r := &registry.Repo{
		Inject:  "set +x\nexport INJECTED='" + currentInj + "'\n",
		Secrets: map[string]string{"CURRENT_TOKEN": currentToken, "HTML": htmlSecret},
	}
	r.Hook.Secret = "webhook-secret"
	return r
}

// buildIn names the build in namespace ns, as Build is asked for it.
func buildIn(ns string) orchestratortest.Ref {
	return orchestratortest.Ref{Namespace: ns, ID: buildID}
}

// follow is a Follow call of the log of type logType of the build in namespace ns.
func follow(ns, logType string) orchestratortest.FollowCall {
	return orchestratortest.FollowCall{Namespace: ns, ID: buildID, LogType: logType}
}

// fakeHandler is the pipeline behind the intake; the routes need one, these tests send it
// nothing valid.
type fakeHandler struct {
	mu    sync.Mutex
	count int
}

func (f *fakeHandler) Handle(context.Context, *slog.Logger, forge.Event, *registry.Repo, pipeline.Options) ([]orchestrator.Dispatched, error) {
	f.mu.Lock()
	f.count++
	f.mu.Unlock()
	return nil, nil
}

func (f *fakeHandler) Unavailable(context.Context, *slog.Logger, forge.Event, *registry.Repo, pipeline.Options, error) error {
	return nil
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// fixture is a server on fakes.
type fixture struct {
	builds  *orchestratortest.Fake
	repos   *registrytest.Fake
	handler *fakeHandler
	url     string
}

func newFixture(t *testing.T, builds *orchestratortest.Fake, checks ...server.Check) *fixture {
	t.Helper()
	f := &fixture{
		builds:  builds,
		repos:   &registrytest.Fake{Repos: map[string]*registry.Repo{repoURL: currentEntry()}},
		handler: &fakeHandler{},
	}
	intake := webhook.New(f.repos, f.handler, quiet(), webhook.Options{})
	srv := httptest.NewServer(server.New(server.Config{
		Intake: intake, Builds: builds, Repos: f.repos, Checks: checks, Namespace: defaultNS, Log: quiet(),
	}))
	t.Cleanup(func() {
		srv.Close()
		intake.Wait()
	})
	f.url = srv.URL
	return f
}

func get(t *testing.T, u string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// buildMeta is the meta of the build the tests read.
func buildMeta() map[string]string {
	return map[string]string{"REPO_URL": repoURL, "COMMIT": commit, "BRANCH": "main", "FLAVOR": "nix"}
}

// build is Nomad knowing one build, buildID in defaultNS: finished and failed, its log
// holding every secret, split across writes.
func build(t *testing.T) *orchestratortest.Fake {
	b := &orchestratortest.Fake{
		LogChunks: []string{
			"start\n",
			"payload=payload-to", "ken-4242 deploy=deploy-key-", "from-inject\n",
			"current=current-", "token-", "7777 injected=inj", "ected-secret-9999\n",
			"end\n",
		},
		FollowOutcome: orchestrator.Outcome{Result: orchestrator.Failure, Description: "the build failed with exit code 1"},
	}
	b.AddBuild(defaultNS, buildID, "builder", buildMeta(), payload(t), "dead")
	return b
}

const maskedLog = "start\npayload=*** deploy=***\ncurrent=*** injected=***\nend\n"

var allSecrets = []string{payloadToken, injectedKey, currentToken, currentInj, htmlSecret}

func TestPlainLog(t *testing.T) {
	tests := []struct {
		name     string
		query    url.Values
		buildErr error
		wantCode int
		wantBody string                      // the whole body for 200, else a substring
		want     orchestratortest.FollowCall // for 200: what was followed
		wantAsk  orchestratortest.Ref        // the build Build was asked for; zero for no call
	}{
		{
			name:     "stdout",
			query:    url.Values{"job": {buildID}, "log": {"stdout"}},
			wantCode: 200, wantBody: maskedLog, want: follow(defaultNS, "stdout"), wantAsk: buildIn(defaultNS),
		},
		{
			name:     "stdout by default",
			query:    url.Values{"job": {buildID}},
			wantCode: 200, wantBody: maskedLog, want: follow(defaultNS, "stdout"), wantAsk: buildIn(defaultNS),
		},
		{
			name:     "stderr",
			query:    url.Values{"job": {buildID}, "log": {"stderr"}},
			wantCode: 200, wantBody: maskedLog, want: follow(defaultNS, "stderr"), wantAsk: buildIn(defaultNS),
		},
		{
			name:     "namespace named",
			query:    url.Values{"job": {buildID}, "namespace": {"team-a"}},
			wantCode: 200, wantBody: maskedLog, want: follow("team-a", "stdout"), wantAsk: buildIn("team-a"),
		},
		{
			name:     "bogus log",
			query:    url.Values{"job": {buildID}, "log": {"bogus"}},
			wantCode: 400, wantBody: "stdout or stderr",
		},
		// Other jobs' logs are never read: they may hold other people's secrets.
		{name: "another dispatched job", query: url.Values{"job": {"web/dispatch-123-abc"}}, wantCode: 404},
		{name: "a dispatch without the marker", query: url.Values{"job": {"builder/dispatch-1700000000-abcd1234"}}, wantCode: 404},
		{name: "a service job", query: url.Values{"job": {"redis"}}, wantCode: 404},
		{name: "a service job in another namespace", query: url.Values{"job": {"redis"}, "namespace": {"default"}}, wantCode: 404},
		{name: "no job", query: url.Values{}, wantCode: 404},
		{
			name:     "build unknown to Nomad",
			query:    url.Values{"job": {buildID}},
			buildErr: fmt.Errorf("build %s in ci: %w", buildID, orchestrator.ErrNotFound),
			wantCode: 404, wantAsk: buildIn(defaultNS),
		},
		{
			name:     "Nomad down",
			query:    url.Values{"job": {buildID}},
			buildErr: errors.New("build: Get http://nomad:4646/v1/job: connection refused"),
			wantCode: 503, wantAsk: buildIn(defaultNS),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := build(t)
			b.BuildErr = tc.buildErr
			if ns := tc.query.Get("namespace"); ns != "" {
				// Nomad knows the build where the request looks for it.
				b.AddBuild(ns, buildID, "builder", buildMeta(), payload(t), "dead")
			}
			f := newFixture(t, b)
			resp, got := get(t, f.url+"/build?"+tc.query.Encode())
			if resp.StatusCode != tc.wantCode {
				t.Fatalf("status %d (%q), want %d", resp.StatusCode, got, tc.wantCode)
			}
			asked, follows := b.BuildCalls(), b.FollowCalls()
			if tc.wantAsk == (orchestratortest.Ref{}) && len(asked) > 0 {
				t.Errorf("Nomad was asked for %+v, want no call", asked)
			}
			if tc.wantAsk != (orchestratortest.Ref{}) && !slices.Equal(asked, []orchestratortest.Ref{tc.wantAsk}) {
				t.Errorf("Nomad was asked for %+v, want [%+v]", asked, tc.wantAsk)
			}
			if tc.wantCode != 200 {
				if len(follows) > 0 {
					t.Errorf("log followed: %+v, want none", follows)
				}
				if !strings.Contains(got, tc.wantBody) {
					t.Errorf("answer %q, want it to contain %q", got, tc.wantBody)
				}
				return
			}
			if got != tc.wantBody {
				t.Errorf("log:\n%q\nwant\n%q", got, tc.wantBody)
			}
			for _, s := range allSecrets {
				if strings.Contains(got, s) {
					t.Errorf("log shows the secret %q", s)
				}
			}
			if !slices.Equal(follows, []orchestratortest.FollowCall{tc.want}) {
				t.Errorf("followed %+v, want [%+v]", follows, tc.want)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
				t.Errorf("Content-Type %q, want text/plain", ct)
			}
			if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("X-Content-Type-Options %q, want nosniff", resp.Header.Get("X-Content-Type-Options"))
			}
			if asked, _ := f.repos.Calls(); !slices.Contains(asked, repoURL) {
				t.Errorf("registry asked for %q, want the build's repository %s (for its current secrets)", asked, repoURL)
			}
		})
	}
}

// Each source of secrets is masked on its own: the payload alone, the current entry alone.
func TestPlainLogMasksEachSource(t *testing.T) {
	for _, tc := range []struct {
		name    string
		payload []byte
		entry   *registry.Repo
		regErr  error
		log     string
		want    string
	}{
		{
			name: "payload only (repository no longer registered)", payload: payload(t),
			log: "a payload-token-4242 b deploy-key-from-inject c", want: "a *** b *** c",
		},
		{
			name: "registry down: not served", payload: payload(t), regErr: errors.New("consul down"),
			log: "a payload-token-4242 b", want: "a *** b",
		},
		{
			// Rotated since the build got the secrets: the current ones are masked too.
			name: "current secrets map only", payload: payload(t), entry: &registry.Repo{Secrets: map[string]string{"X": "only-in-the-map"}},
			log: "x=only-in-the-map\n", want: "x=***\n",
		},
		{
			name: "current inject only", payload: payload(t), entry: &registry.Repo{Inject: `export X="only in inject"`},
			log: "x=only in inject\n", want: "x=***\n",
		},
		{
			// A build that got no secrets has none to leak: masking its log with the
			// repository's would tell it whether its guess of one is right.
			name: "a build without the secrets is not masked with the repository's", payload: secrets.Empty(),
			entry: &registry.Repo{Secrets: map[string]string{"X": "only-in-the-map"}},
			log:   "x=only-in-the-map\nx=only-in", want: "x=only-in-the-map\nx=only-in",
		},
		{
			// What the masker held back as a possible start of a secret is written at the end.
			name: "a log ending with the start of a secret", payload: payload(t),
			log: "last words: payload-tok", want: "last words: payload-tok",
		},
		{
			name: "a secret spanning lines, printed one line at a time", payload: func() []byte {
				p, _ := secrets.Payload("", map[string]string{"KEY": "-----BEGIN KEY-----\nkey-material-line\n-----END KEY-----"})
				return p
			}(),
			log: "line: key-material-line\n", want: "line: ***\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := build(t)
			b.AddBuild(defaultNS, buildID, "builder", buildMeta(), tc.payload, "dead")
			// One byte per write: every secret is split as awkwardly as it can be.
			b.LogChunks = strings.Split(tc.log, "")
			f := newFixture(t, b)
			f.repos.Repos = map[string]*registry.Repo{}
			if tc.entry != nil {
				f.repos.Repos[repoURL] = tc.entry
			}
			f.repos.RepoErr = tc.regErr
			resp, got := get(t, f.url+"/build?job="+url.QueryEscape(buildID))
			if tc.regErr != nil {
				// Masked with part of its secrets, a log is not served.
				if resp.StatusCode != http.StatusServiceUnavailable || strings.Contains(got, "payload-token") {
					t.Errorf("registry down: status %d, %q; want 503 and no log", resp.StatusCode, got)
				}
				return
			}
			if resp.StatusCode != 200 || got != tc.want {
				t.Errorf("status %d, log %q; want 200, %q", resp.StatusCode, got, tc.want)
			}
		})
	}
}

// hrefs returns the links of the page's nav, unescaped, by their text.
func hrefs(t *testing.T, page string) map[string]string {
	t.Helper()
	nav := regexp.MustCompile(`(?s)<nav>(.*?)</nav>`).FindStringSubmatch(page)
	if nav == nil {
		t.Fatalf("no nav in the page:\n%s", page)
	}
	links := map[string]string{}
	for _, m := range regexp.MustCompile(`<a href="([^"]*)">([^<]*)</a>`).FindAllStringSubmatch(nav[1], -1) {
		links[m[2]] = html.UnescapeString(m[1])
	}
	return links
}

func TestLogPage(t *testing.T) {
	b := build(t)
	b.LogChunks = append(b.LogChunks,
		"\x1b[3", "1mred\x1b[0m plain\n", // a colour sequence split across writes
		"<script>alert(1)</script>\n",
		"html secret: p<a>s", `s&"wd`+"\n",
		"last: current-tok", // the start of a secret, never finished: held back, then shown
	)
	b.FollowOutcome = orchestrator.Outcome{Result: orchestrator.Failure, Description: "the build failed: it printed " + payloadToken + " and " + currentToken}
	f := newFixture(t, b)
	page := "/logs/" + defaultNS + "/" + buildID

	resp, got := get(t, f.url+page)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d (%q), want 200", resp.StatusCode, got)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("Content-Type %q, want text/html", ct)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("Content-Security-Policy %q, want default-src 'none'", csp)
	}
	if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("X-Content-Type-Options %q, want nosniff", resp.Header.Get("X-Content-Type-Options"))
	}
	if follows := b.FollowCalls(); !slices.Equal(follows, []orchestratortest.FollowCall{follow(defaultNS, "stdout")}) {
		t.Errorf("followed %+v, want the build's stdout", follows)
	}

	for _, want := range []string{
		`<a href="http://127.0.0.1:33669/org-67e531e3/parsed">org-67e531e3/parsed</a>`,
		"<dd>" + commit + "</dd>",
		"<dt>branch</dt><dd>main</dd>",
		"<dt>flavor</dt><dd>nix</dd>",
		"<dd>" + defaultNS + "/" + buildID + "</dd>",
		"<title>org-67e531e3/parsed 33520fc545 · nix · Albatros</title>",
		`<span class="fg1">red</span> plain`,
		"&lt;script&gt;alert(1)&lt;/script&gt;",
		"start\npayload=*** deploy=***\ncurrent=*** injected=***\nend\n",
		"html secret: ***\nlast: current-tok</pre>",
		`<footer class="failure" id="result">failure: the build failed: it printed *** and ***</footer>`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(got, "<script>") {
		t.Errorf("the log's HTML reached the page unescaped")
	}
	for _, s := range append(allSecrets, html.EscapeString(htmlSecret), "p&lt;a&gt;s") {
		if strings.Contains(got, s) {
			t.Errorf("page shows the secret %q", s)
		}
	}

	// The links: stderr's page, and this stream as plain text.
	links := hrefs(t, got)
	stderrPage, raw := links["stderr"], links["plain text"]
	if stderrPage != page+"?log=stderr" {
		t.Errorf("stderr link %q, want %q", stderrPage, page+"?log=stderr")
	}
	if _, ok := links["stdout"]; ok {
		t.Errorf("the current stream (stdout) is linked: %q", links)
	}
	ru, err := url.Parse(raw)
	if err != nil || ru.Path != "/build" || ru.Query().Get("job") != buildID || ru.Query().Get("namespace") != defaultNS || ru.Query().Get("log") != "stdout" {
		t.Errorf("plain text link %q, want /build of job %s in %s, stdout", raw, buildID, defaultNS)
	}

	// Following the links reaches the right streams.
	followedBefore := len(b.FollowCalls())
	resp, stderrHTML := get(t, f.url+stderrPage)
	if resp.StatusCode != 200 {
		t.Fatalf("stderr page: status %d", resp.StatusCode)
	}
	links = hrefs(t, stderrHTML)
	if links["stdout"] != page {
		t.Errorf("on the stderr page, stdout link %q, want %q", links["stdout"], page)
	}
	if ru, err := url.Parse(links["plain text"]); err != nil || ru.Query().Get("log") != "stderr" || ru.Query().Get("job") != buildID {
		t.Errorf("on the stderr page, plain text link %q, want /build of stderr", links["plain text"])
	}
	resp, plain := get(t, f.url+raw)
	if resp.StatusCode != 200 || !strings.HasPrefix(plain, maskedLog) {
		t.Errorf("plain text link: status %d, %q", resp.StatusCode, plain)
	}
	// The build has ended: its plain text is read whole, apart from the page's follow.
	if follows := b.FollowCalls()[followedBefore:]; !slices.Equal(follows, []orchestratortest.FollowCall{follow(defaultNS, "stderr"), follow(defaultNS, "stdout")}) {
		t.Errorf("the links followed %+v, want stderr then stdout of %s", follows, buildID)
	}
}

// Many viewers of one build's page at once: Nomad is asked for the build and its log once,
// and every viewer gets the whole log, masked.
func TestLogPageViewersShareOneRead(t *testing.T) {
	b := build(t)
	f := newFixture(t, b)
	page := f.url + "/logs/" + defaultNS + "/" + buildID
	var wg sync.WaitGroup
	bodies := make([]string, 50)
	for i := range bodies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get(page)
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			bodies[i] = string(body)
		}()
	}
	wg.Wait()
	for _, body := range bodies {
		if !strings.Contains(body, "payload=*** deploy=***") || !strings.Contains(body, "end") {
			t.Fatalf("a viewer's page lacks the masked log:\n%s", body)
		}
		for _, secret := range allSecrets {
			if strings.Contains(body, secret) {
				t.Fatalf("a viewer's page shows %q", secret)
			}
		}
	}
	if n := len(b.BuildCalls()); n != 1 {
		t.Errorf("Nomad was asked for the build %d times for 50 viewers, want once", n)
	}
	if n := len(b.FollowCalls()); n != 1 {
		t.Errorf("Nomad's log was followed %d times for 50 viewers, want once", n)
	}
}

// Followers of /build, curl's and scripts' endpoint, share one follow of the log in Nomad
// too, and so do they with the page's viewers.
func TestPlainLogFollowersShareOneRead(t *testing.T) {
	b := build(t)
	b.AddBuild(defaultNS, buildID, "builder", buildMeta(), payload(t), "running")
	b.FollowHold = make(chan struct{})
	f := newFixture(t, b)
	var wg sync.WaitGroup
	bodies := make([]string, 50)
	for i := range bodies {
		u := f.url + "/build?job=" + url.QueryEscape(buildID)
		if i%2 == 1 {
			u = f.url + "/logs/" + defaultNS + "/" + buildID
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get(u)
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			bodies[i] = string(body)
		}()
	}
	time.Sleep(300 * time.Millisecond) // every follower has joined the running build's log
	close(b.FollowHold)
	wg.Wait()
	for i, body := range bodies {
		if !strings.Contains(body, "payload=*** deploy=***") || !strings.Contains(body, "end") {
			t.Fatalf("follower %d lacks the masked log:\n%s", i, body)
		}
	}
	if n := len(b.FollowCalls()); n != 1 {
		t.Errorf("Nomad's log was followed %d times for 50 followers of both kinds, want once", n)
	}
}

// Past the bounds of what is read at once, a log request is answered 503 with nothing
// started in Nomad, and the log already followed is still served.
func TestLogBounds(t *testing.T) {
	b := build(t)
	b.AddBuild(defaultNS, buildID, "builder", buildMeta(), payload(t), "running")
	b.FollowHold = make(chan struct{})
	defer close(b.FollowHold)
	other := "builder/dispatch-albatros-k" + strings.Repeat("f", 20) + "-1700000001-beef0001"
	b.AddBuild(defaultNS, other, "builder", buildMeta(), payload(t), "running")
	f := &fixture{builds: b, repos: &registrytest.Fake{Repos: map[string]*registry.Repo{repoURL: currentEntry()}}, handler: &fakeHandler{}}
	srv := httptest.NewServer(server.New(server.Config{
		Intake: webhook.New(f.repos, f.handler, quiet(), webhook.Options{}), Builds: b, Repos: f.repos, Namespace: defaultNS, Log: quiet(),
		LogBounds: logfan.Options{MaxUpstreams: 1, MaxViewers: 2},
	}))
	defer srv.Close()
	first, err := http.Get(srv.URL + "/build?job=" + url.QueryEscape(buildID))
	if err != nil {
		t.Fatal(err)
	}
	defer first.Body.Close()
	if first.StatusCode != http.StatusOK {
		t.Fatalf("the first follower: %d", first.StatusCode)
	}
	resp, body := get(t, srv.URL+"/build?job="+url.QueryEscape(other))
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(body, "too many build logs") {
		t.Errorf("a second log with one upstream allowed: %d %q, want 503 with Retry-After", resp.StatusCode, body)
	}
	second, err := http.Get(srv.URL + "/logs/" + defaultNS + "/" + buildID)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Body.Close()
	if second.StatusCode != http.StatusOK {
		t.Errorf("a viewer of the log already followed: %d, want 200", second.StatusCode)
	}
	if resp, _ := get(t, srv.URL+"/build?job="+url.QueryEscape(buildID)); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("a third viewer with two allowed: %d, want 503", resp.StatusCode)
	}
	if n := len(b.FollowCalls()); n != 1 {
		t.Errorf("%d follows started in Nomad, want 1", n)
	}
}

// The plain log of a build that has ended is served whole, however big, at the reader's
// pace: straight from Nomad, not from a shared tape that keeps only its newest part.
func TestPlainLogOfAnEndedBuildIsWhole(t *testing.T) {
	b := build(t)
	b.AddBuild(defaultNS, buildID, "builder", buildMeta(), secrets.Empty(), "dead")
	chunk := strings.Repeat("x", 1<<20-1) + "\n"
	b.LogChunks = slices.Repeat([]string{chunk}, 40) // 40 MiB: more than a tape keeps
	f := newFixture(t, b)
	resp, got := get(t, f.url+"/build?job="+url.QueryEscape(buildID))
	if resp.StatusCode != http.StatusOK || len(got) != 40<<20 {
		t.Errorf("status %d, %d bytes; want 200 and the whole 40 MiB", resp.StatusCode, len(got))
	}
}

func TestLogPageHeader(t *testing.T) {
	for _, tc := range []struct {
		name  string
		meta  map[string]string
		want  []string
		never []string
	}{
		{
			name:  "credentials in the clone URL are not shown",
			meta:  map[string]string{"REPO_URL": "https://ci:cred-in-url@git.example.com/org/app.git", "COMMIT": commit, "BRANCH": "main", "FLAVOR": "default"},
			want:  []string{`<a href="https://git.example.com/org/app">org/app</a>`},
			never: []string{"cred-in-url"},
		},
		{
			name:  "a tag is shown instead of the branch",
			meta:  map[string]string{"REPO_URL": repoURL, "COMMIT": commit, "BRANCH": "main", "TAG": "v1.0.0", "FLAVOR": "default"},
			want:  []string{"<dt>tag</dt><dd>v1.0.0</dd>"},
			never: []string{"<dt>branch</dt>"},
		},
		{
			name: "a pull request",
			meta: map[string]string{"REPO_URL": repoURL, "COMMIT": commit, "BRANCH": "patch", "PR": "7", "FLAVOR": "default"},
			want: []string{"<dt>branch</dt><dd>patch</dd>", "<dt>pull request</dt><dd>#7</dd>"},
		},
		{
			name:  "HTML in the meta is escaped",
			meta:  map[string]string{"REPO_URL": repoURL, "COMMIT": commit, "BRANCH": "<b>x</b>", "FLAVOR": "default"},
			want:  []string{"<dd>&lt;b&gt;x&lt;/b&gt;</dd>"},
			never: []string{"<b>x</b>"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := build(t)
			b.AddBuild(defaultNS, buildID, "builder", tc.meta, payload(t), "dead")
			f := newFixture(t, b)
			resp, got := get(t, f.url+"/logs/"+defaultNS+"/"+buildID)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d (%q)", resp.StatusCode, got)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("page lacks %q", w)
				}
			}
			for _, n := range tc.never {
				if strings.Contains(got, n) {
					t.Errorf("page shows %q", n)
				}
			}
		})
	}
}

func TestLogPageOutcome(t *testing.T) {
	for _, tc := range []struct {
		name      string
		outcome   orchestrator.Outcome
		followErr error
		want      string
	}{
		{"success", orchestrator.Outcome{Result: orchestrator.Success, Description: "the build passed in 3s"},
			nil, `<footer class="success" id="result">success: the build passed in 3s</footer>`},
		{"error", orchestrator.Outcome{Result: orchestrator.Error, Description: "the build did not start: no node"},
			nil, `<footer class="error" id="result">error: the build did not start: no node</footer>`},
		{"log unreadable", orchestrator.Outcome{}, errors.New("stream: connection reset"),
			`<footer class="error" id="result">error: the log could not be read to its end</footer>`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := build(t)
			b.FollowOutcome, b.FollowErr = tc.outcome, tc.followErr
			f := newFixture(t, b)
			resp, got := get(t, f.url+"/logs/"+defaultNS+"/"+buildID)
			if resp.StatusCode != 200 || !strings.Contains(got, tc.want) {
				t.Errorf("status %d, page ends %q; want 200 and %q", resp.StatusCode, tail(got), tc.want)
			}
		})
	}
}

func tail(s string) string {
	if i := strings.Index(s, "</pre>"); i >= 0 {
		return s[i:]
	}
	return s
}

func TestLogPageRefusals(t *testing.T) {
	for _, tc := range []struct {
		name     string
		path     string
		buildErr error
		wantCode int
		wantAsk  bool
	}{
		{name: "bogus log", path: "/logs/ci/" + buildID + "?log=bogus", wantCode: 400},
		{name: "a service job", path: "/logs/ci/redis", wantCode: 404},
		{name: "another dispatched job", path: "/logs/ci/web/dispatch-123-abc", wantCode: 404},
		{name: "a service job in another namespace", path: "/logs/default/redis", wantCode: 404},
		{name: "build unknown to Nomad", path: "/logs/ci/" + buildID,
			buildErr: fmt.Errorf("build: %w", orchestrator.ErrNotFound), wantCode: 404, wantAsk: true},
		{name: "Nomad down", path: "/logs/ci/" + buildID,
			buildErr: errors.New("connection refused"), wantCode: 503, wantAsk: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := build(t)
			b.BuildErr = tc.buildErr
			f := newFixture(t, b)
			resp, got := get(t, f.url+tc.path)
			if resp.StatusCode != tc.wantCode {
				t.Errorf("status %d (%q), want %d", resp.StatusCode, got, tc.wantCode)
			}
			asked, follows := b.BuildCalls(), b.FollowCalls()
			if tc.wantAsk != (len(asked) > 0) {
				t.Errorf("Nomad asked for %+v; want a call: %v", asked, tc.wantAsk)
			}
			if len(follows) > 0 {
				t.Errorf("log followed: %+v, want none", follows)
			}
			for _, s := range allSecrets {
				if strings.Contains(got, s) {
					t.Errorf("refusal shows the secret %q", s)
				}
			}
		})
	}
}

func TestHealthz(t *testing.T) {
	ok := func(context.Context) error { return nil }
	down := func(context.Context) error { return errors.New("connection refused") }
	stale := func(context.Context) error { return fmt.Errorf("consul unreachable: %w", registry.ErrStale) }
	for _, tc := range []struct {
		name     string
		checks   []server.Check
		wantCode int
		wantBody string
	}{
		{"no checks", nil, 200, "ok\n"},
		{"all pass", []server.Check{{"nomad", ok}, {"consul", ok}}, 200, "ok\n"},
		{"one fails", []server.Check{{"nomad", ok}, {"consul", down}}, 503, "unavailable: consul\n"},
		{"two fail", []server.Check{{"nomad", down}, {"consul", ok}, {"gitea", down}}, 503, "unavailable: nomad, gitea\n"},
		{"consul down, entries served", []server.Check{{"nomad", ok}, {"consul", stale}}, 200, "ok\ndegraded: consul: serving the entries last read\n"},
		{"nomad down, consul stale", []server.Check{{"nomad", down}, {"consul", stale}}, 503, "unavailable: nomad\ndegraded: consul: serving the entries last read\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, build(t), tc.checks...)
			resp, got := get(t, f.url+"/healthz")
			if resp.StatusCode != tc.wantCode || got != tc.wantBody {
				t.Errorf("status %d %q, want %d %q", resp.StatusCode, got, tc.wantCode, tc.wantBody)
			}
		})
	}
}

// /readyz answers as /healthz does until the bot stops, then 503 "stopping" while it still
// serves; /livez answers 200 whatever the dependencies say, stopping or not.
// The dependencies are asked once a second at most, however many ask the bot's health.
func TestHealthChecksAreSharedForASecond(t *testing.T) {
	var calls atomic.Int64
	counted := server.Check{Name: "nomad", Check: func(context.Context) error { calls.Add(1); return nil }}
	f := newFixture(t, build(t), counted)
	for range 20 {
		get(t, f.url+"/healthz")
		get(t, f.url+"/readyz")
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("40 health requests asked Nomad %d times, want once", n)
	}
	time.Sleep(1100 * time.Millisecond)
	get(t, f.url+"/readyz")
	if n := calls.Load(); n != 2 {
		t.Errorf("a second later: %d calls, want 2", n)
	}
}

func TestReadyzAndLivez(t *testing.T) {
	down := func(context.Context) error { return errors.New("connection refused") }
	stale := func(context.Context) error { return fmt.Errorf("consul unreachable: %w", registry.ErrStale) }
	for _, tc := range []struct {
		name     string
		checks   []server.Check
		stopped  bool
		wantCode int
		wantBody string
	}{
		{"ready", nil, false, 200, "ok\n"},
		{"consul stale", []server.Check{{"consul", stale}}, false, 200, "ok\ndegraded: consul: serving the entries last read\n"},
		{"nomad down", []server.Check{{"nomad", down}}, false, 503, "unavailable: nomad\n"},
		{"stopping", nil, true, 503, "unavailable: stopping\n"},
		{"stopping, nomad down", []server.Check{{"nomad", down}}, true, 503, "unavailable: stopping, nomad\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			repos := &registrytest.Fake{Repos: map[string]*registry.Repo{repoURL: currentEntry()}}
			intake := webhook.New(repos, &fakeHandler{}, quiet(), webhook.Options{})
			h := server.New(server.Config{Intake: intake, Builds: build(t), Repos: repos, Checks: tc.checks, Namespace: defaultNS, Log: quiet()})
			srv := httptest.NewServer(h)
			t.Cleanup(srv.Close)
			if tc.stopped {
				h.Stop()
			}
			resp, got := get(t, srv.URL+"/readyz")
			if resp.StatusCode != tc.wantCode || got != tc.wantBody {
				t.Errorf("/readyz %d %q, want %d %q", resp.StatusCode, got, tc.wantCode, tc.wantBody)
			}
			if resp, got := get(t, srv.URL+"/livez"); resp.StatusCode != 200 || got != "ok\n" {
				t.Errorf("/livez %d %q, want 200 ok", resp.StatusCode, got)
			}
			if resp, _ := get(t, srv.URL+"/metrics"); resp.StatusCode != 404 {
				t.Errorf("/metrics without Config.Metrics: %d, want 404", resp.StatusCode)
			}
		})
	}
}

func TestRoutes(t *testing.T) {
	for _, tc := range []struct {
		method, path string
		wantCode     int
	}{
		{"GET", "/", 200},
		{"GET", "/nothing-here", 404},
		{"GET", "/webhook/gitea", 405},
		{"GET", "/hook?token=x", 405},
		{"POST", "/build?job=" + url.QueryEscape(buildID), 405},
		{"POST", "/healthz", 405},
		// The webhook routes reach the intake: a body that is not JSON is refused by it.
		{"POST", "/webhook/gitea", 400},
		{"POST", "/webhook/github", 400},
		{"POST", "/webhook/gitlab", 404}, // no row in forges.Drivers
		{"POST", "/hook?token=x", 400},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			b := build(t)
			f := newFixture(t, b)
			req, err := http.NewRequest(tc.method, f.url+tc.path, strings.NewReader("not json"))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.wantCode {
				t.Errorf("status %d (%q), want %d", resp.StatusCode, body, tc.wantCode)
			}
			if asked, follows := b.BuildCalls(), b.FollowCalls(); len(asked)+len(follows) > 0 {
				t.Errorf("Nomad was asked %+v %+v", asked, follows)
			}
		})
	}
}

// A running build's log reaches the reader as it is written, not when the build ends.
func TestLogsAreStreamed(t *testing.T) {
	for _, path := range []string{
		"/build?job=" + url.QueryEscape(buildID),
		"/logs/" + defaultNS + "/" + buildID,
	} {
		t.Run(path, func(t *testing.T) {
			b := build(t)
			b.LogChunks = []string{"first line\n", "second line\n"}
			b.FollowHold = make(chan struct{})
			f := newFixture(t, b)

			// The reader reports when the first line arrived, then the rest of the body.
			first := make(chan error, 1)
			rest := make(chan string, 1)
			go func() {
				defer close(rest)
				resp, err := http.Get(f.url + path)
				if err != nil {
					first <- err
					return
				}
				defer resp.Body.Close()
				if resp.Header.Get("Cache-Control") != "no-store" {
					t.Errorf("Cache-Control %q, want no-store", resp.Header.Get("Cache-Control"))
				}
				r := bufio.NewReader(resp.Body)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						first <- fmt.Errorf("status %d, no first line: %v", resp.StatusCode, err)
						return
					}
					if strings.HasSuffix(line, "first line\n") {
						first <- nil
						break
					}
				}
				body, _ := io.ReadAll(r)
				rest <- string(body)
			}()
			select {
			case err := <-first:
				if err != nil {
					t.Error(err)
				}
			case <-time.After(5 * time.Second):
				t.Error("the first line did not arrive while the build was running")
			}
			close(b.FollowHold)
			if r := <-rest; !strings.Contains(r, "second line\n") {
				t.Errorf("after the build ended: %q; want the second line", r)
			}
		})
	}
}

// The server's write timeout cuts off a slow response, but not a log stream, which lasts
// as long as its build.
func TestWriteTimeoutSparesLogStreams(t *testing.T) {
	b := build(t)
	b.FollowHold = make(chan struct{})
	slowCheck := server.Check{Name: "slow", Check: func(ctx context.Context) error {
		select {
		case <-time.After(2 * time.Second):
		case <-ctx.Done():
		}
		return nil
	}}
	repos := &registrytest.Fake{Repos: map[string]*registry.Repo{repoURL: currentEntry()}}
	intake := webhook.New(repos, &fakeHandler{}, quiet(), webhook.Options{})
	handler := server.New(server.Config{Intake: intake, Builds: b, Repos: repos, Checks: []server.Check{slowCheck}, Namespace: defaultNS, Log: quiet()})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := server.HTTPServer(ln.Addr().String(), handler, server.Timeouts{Read: time.Second, Write: time.Second}, context.Background())
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	base := "http://" + ln.Addr().String()

	// A build that runs 2.5 s, longer than both timeouts: its log page arrives whole.
	time.AfterFunc(2500*time.Millisecond, func() { close(b.FollowHold) })
	resp, page := get(t, base+"/logs/"+defaultNS+"/"+buildID)
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "end") || !strings.Contains(page, `class="failure"`) {
		t.Fatalf("log page of a build outlasting the write timeout: %d\n%s", resp.StatusCode, page)
	}
	// A response that takes longer than the write timeout is cut off. (On a connection of
	// its own: Go's client would retry a GET cut off on a reused one, and the health checks'
	// answer, kept for a second, would then come at once.)
	fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	if resp, err := fresh.Get(base + "/healthz"); err == nil {
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil {
			t.Fatalf("a 2 s response with a 1 s write timeout arrived: %d %q", resp.StatusCode, body)
		}
	}
}

// A build still in Nomad is its dispatching holder's, as once archived: when the
// repository's name is held by another installation now (an account renamed, its login
// taken), its log is no longer served.
func TestLogOfAnEarlierHoldersBuild(t *testing.T) {
	b := build(t)
	b.SetHolder(defaultNS, buildID, 7)
	f := newFixture(t, b)
	held := currentEntry()
	held.Installed, held.OrgID = true, 7
	f.repos.Put(repoURL, held)
	if resp, got := get(t, f.url+"/logs/ci/"+buildID); resp.StatusCode != http.StatusOK {
		t.Fatalf("the holder's build: %d %q", resp.StatusCode, got)
	}
	other := currentEntry()
	other.Installed, other.OrgID = true, 8
	f.repos.Put(repoURL, other)
	for _, path := range []string{"/logs/ci/" + buildID, "/build?job=" + buildID + "&log=stdout"} {
		if resp, got := get(t, f.url+path); resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s of an earlier holder's build: %d %q", path, resp.StatusCode, got)
		}
	}
}
