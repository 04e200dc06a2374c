package e2e

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"code.gitea.io/sdk/gitea"
	nomad "github.com/hashicorp/nomad/api"

	forgegitea "github.com/albatros-ci/albatros/forge/gitea"
	"github.com/albatros-ci/albatros/testenv"
)

const printEnv = `echo "COMMIT=$COMMIT BRANCH=$BRANCH FLAVOR=$FLAVOR TAG=${TAG-unset} PR=${PR-unset}"
printf '\033[32mgreen\033[0m <b>not bold</b>\n'
`

func TestPushBuildsAndReports(t *testing.T) {
	p := newProject(t, entry{}, "/webhook/gitea")
	sha := p.push("main", script(printEnv))

	pending := p.waitStatus(sha, "albatros/default", gitea.StatusPending)
	final := p.waitStatus(sha, "albatros/default", gitea.StatusSuccess)
	if pending.TargetURL == "" || final.TargetURL != pending.TargetURL || !strings.HasPrefix(final.TargetURL, bot(t).URL+"/logs/ci/builder/dispatch-albatros-") {
		t.Fatalf("status links: pending %q, success %q", pending.TargetURL, final.TargetURL)
	}
	if got := p.statuses(sha, "albatros/default"); len(got) != 2 || got[0] != gitea.StatusPending || got[1] != gitea.StatusSuccess {
		t.Fatalf("status history %v, want [pending success]", got)
	}

	// The link opens the build's log page, which shows the script's output in colour.
	code, page := get(t, final.TargetURL)
	want := "COMMIT=" + sha + " BRANCH=main FLAVOR=default TAG=unset PR=unset"
	if code != http.StatusOK || !strings.Contains(page, want) {
		t.Fatalf("log page %d lacks %q:\n%s", code, want, page)
	}
	if !strings.Contains(page, `<span class="fg2">green</span>`) || !strings.Contains(page, "&lt;b&gt;not bold&lt;/b&gt;") {
		t.Fatalf("log page does not render ANSI colours or escape HTML:\n%s", page)
	}
	if !strings.Contains(page, `class="success"`) {
		t.Fatalf("log page does not end with the result:\n%s", page)
	}

	// The original's plain-text endpoint serves the same log.
	_, job := jobFromLink(t, final.TargetURL)
	code, plain := get(t, bot(t).URL+"/build?job="+job+"&log=stdout")
	if code != http.StatusOK || !strings.Contains(plain, want) || !strings.Contains(plain, "\x1b[32mgreen") {
		t.Fatalf("/build %d:\n%s", code, plain)
	}
	if meta := p.jobs()[job]; meta["COMMIT"] != sha || meta["BRANCH"] != "main" || meta["FLAVOR"] != "default" || meta["REPO_URL"] != p.repo.CloneURL {
		t.Fatalf("job %s meta %v", job, meta)
	}
}

func TestFailingScriptReportsFailure(t *testing.T) {
	p := newProject(t, entry{}, "/webhook/gitea")
	sha := p.push("main", script("echo compiling\necho 'error: it broke' >&2\nexit 2\n"))
	st := p.waitStatus(sha, "albatros/default", gitea.StatusFailure)
	if !strings.Contains(st.Description, "exit code 2") {
		t.Fatalf("failure description %q", st.Description)
	}
	_, page := get(t, st.TargetURL)
	if !strings.Contains(page, "error: it broke") || !strings.Contains(page, `class="failure"`) {
		t.Fatalf("log page:\n%s", page)
	}
}

func TestTagAndPullRequestBuilds(t *testing.T) {
	t.Parallel() // after the tests that stop shared servers; its repositories are its own
	p := newProject(t, entry{}, "/webhook/gitea")
	sha := p.push("main", script(printEnv))
	p.waitStatus(sha, "albatros/default", gitea.StatusSuccess)

	p.g.PushTag(t, p.owner, p.repo, "v1.2.3", sha)
	tagJob := p.waitJob(func(m map[string]string) bool { return m["TAG"] == "v1.2.3" })
	_, log := get(t, bot(t).URL+"/build?job="+tagJob+"&log=stdout")
	if !strings.Contains(log, "COMMIT="+sha+" BRANCH= FLAVOR=default TAG=v1.2.3 PR=unset") {
		t.Fatalf("tag build log:\n%s", log)
	}

	feature := p.g.Push(t, p.owner, p.repo, "feature", "main", map[string]testenv.File{"README": {Content: "feature\n"}}, "feature work")
	pr := p.g.CreatePullRequest(t, p.owner, p.repo, "feature", "main", "A feature")
	prJob := p.waitJob(func(m map[string]string) bool { return m["PR"] != "" })
	_, log = get(t, bot(t).URL+"/build?job="+prJob+"&log=stdout")
	want := "COMMIT=" + feature + " BRANCH=feature FLAVOR=default TAG=unset PR=" + strconv.FormatInt(pr, 10)
	if !strings.Contains(log, want) {
		t.Fatalf("pull request build log lacks %q:\n%s", want, log)
	}
}

// waitJob waits for a build of the project whose meta satisfies match.
func (p *project) waitJob(match func(map[string]string) bool) string {
	p.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		for id, meta := range p.jobs() {
			if match(meta) {
				return id
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	p.t.Fatalf("no matching build; builds:\n%s", describe(p.jobs()))
	return ""
}

func TestForkPullRequestSecrets(t *testing.T) {
	t.Parallel() // after the tests that stop shared servers; its repositories are its own
	const token = "s3cr3t-deploy-token-4711"
	const key = "-----BEGIN KEY-----\nline-one-of-the-key\nline-two-of-the-key\n-----END KEY-----"
	g := env.Gitea(t)
	trustee := g.CreateUser(t, testenv.UniqueName("trustee"))
	e := entry{
		"trusted": map[string]any{"senders": []string{trustee.Name}},
		"inject":  "set +x\nexport INJECTED=injected-value-0815",
		"secrets": map[string]string{"DEPLOY_TOKEN": token, "SSH_KEY": key},
	}
	p := newProject(t, e, "/webhook/gitea")
	// The script prints every secret: whole, one line of the key, and the token in two
	// writes a second apart, so that it reaches the bot in separate log frames.
	p.push("main", script(`echo "token=[${DEPLOY_TOKEN-none}] injected=[${INJECTED-none}]"
echo "$SSH_KEY"
echo "$SSH_KEY" | sed -n 2p
printf '%s' "${DEPLOY_TOKEN%%-4711}"; sleep 1; echo "-4711"
`))
	outsider := g.CreateUser(t, testenv.UniqueName("outsider"))

	// A fork pull request from a user nobody trusts: it runs, without secrets.
	fork := g.Fork(t, outsider, p.repo)
	untrustedSHA := g.Push(t, outsider, fork, "patch", "main", map[string]testenv.File{"CHANGE": {Content: "x\n"}}, "outsider change")
	g.CreatePullRequest(t, outsider, p.repo, outsider.Name+":patch", "main", "untrusted")
	untrusted := p.waitStatus(untrustedSHA, "albatros/default", gitea.StatusSuccess)

	// The same from a trusted user's fork: the build gets the secrets.
	fork2 := g.Fork(t, trustee, p.repo)
	trustedSHA := g.Push(t, trustee, fork2, "patch", "main", map[string]testenv.File{"CHANGE": {Content: "y\n"}}, "trusted change")
	g.CreatePullRequest(t, trustee, p.repo, trustee.Name+":patch", "main", "trusted")
	trusted := p.waitStatus(trustedSHA, "albatros/default", gitea.StatusSuccess)

	// The outsider's code, in a pull request a trusted maintainer opens (the repository's
	// owner, trusted too): the code that runs is still the outsider's, so the build gets no
	// secrets.
	e["trusted"] = map[string]any{"senders": []string{trustee.Name, p.owner.Name}}
	p.register(e)
	sneakySHA := g.Push(t, outsider, fork, "sneaky", "main", map[string]testenv.File{"CHANGE": {Content: "z\n"}}, "outsider change, opened by a maintainer")
	g.CreatePullRequest(t, p.owner, p.repo, outsider.Name+":sneaky", "main", "opened by a trusted maintainer from an untrusted fork")
	sneaky := p.waitStatus(sneakySHA, "albatros/default", gitea.StatusSuccess)

	_, untrustedJob := jobFromLink(t, untrusted.TargetURL)
	_, trustedJob := jobFromLink(t, trusted.TargetURL)
	_, sneakyJob := jobFromLink(t, sneaky.TargetURL)
	if raw := env.Nomad(t).BuildLog(t, "ci", untrustedJob); !strings.Contains(raw, "token=[none] injected=[none]") {
		t.Fatalf("untrusted build saw secrets:\n%s", raw)
	}
	if raw := env.Nomad(t).BuildLog(t, "ci", sneakyJob); !strings.Contains(raw, "token=[none] injected=[none]") {
		t.Fatalf("an untrusted fork's code, in a pull request opened by a trusted user, saw secrets:\n%s", raw)
	}
	// Nomad's own log proves the trusted build received them...
	raw := env.Nomad(t).BuildLog(t, "ci", trustedJob)
	if !strings.Contains(raw, "token=["+token+"] injected=[injected-value-0815]") || !strings.Contains(raw, key) {
		t.Fatalf("trusted build did not get the secrets:\n%s", raw)
	}
	// ...and nothing the bot relays shows them.
	for _, job := range []string{untrustedJob, trustedJob} {
		_, plain := get(t, bot(t).URL+"/build?job="+job+"&log=stdout")
		_, page := get(t, bot(t).URL+"/logs/ci/"+job)
		for name, out := range map[string]string{"/build": plain, "log page": page} {
			for _, secret := range []string{token, "injected-value-0815", "line-one-of-the-key", "line-two-of-the-key"} {
				if strings.Contains(out, secret) {
					t.Errorf("%s of %s shows the secret %q:\n%s", name, job, secret, out)
				}
			}
		}
		// The whole key, its second line alone, and the token written in two pieces.
		if job == trustedJob && !strings.Contains(plain, "token=[***] injected=[***]\n***\n***\n***\n") {
			t.Errorf("trusted build's relayed log is not masked as expected:\n%s", plain)
		}
	}
	for _, st := range append(p.g.Statuses(t, p.repo, trustedSHA), p.g.Statuses(t, p.repo, untrustedSHA)...) {
		if strings.Contains(st.Description, token) {
			t.Errorf("status shows the secret: %+v", st)
		}
	}
}

func TestBadDeliveriesChangeNothing(t *testing.T) {
	t.Parallel() // after the tests that stop shared servers; its repositories are its own
	// A repository whose webhook only records: the test sends its real delivery, altered.
	p := newProject(t, entry{}, "")
	rec := newRecorder(t, "http://127.0.0.1:1/") // forwards nowhere
	p.g.CreateWebhook(t, p.owner, p.repo, rec.URL(), p.secret)
	sha := p.push("main", script("echo hi\n"))
	real := rec.wait("push", sha)

	// The same push, made to a repository that is on Gitea but not in the registry.
	unknown := newProject(t, nil, "")
	unknownSHA := unknown.push("main", script("echo hi\n"))
	unknownBody := bytes.ReplaceAll(real.Body, []byte(p.repo.CloneURL), []byte(unknown.repo.CloneURL))
	unknownBody = bytes.ReplaceAll(unknownBody, []byte(sha), []byte(unknownSHA))

	signed := func(body []byte, secret string) http.Header {
		h := real.Header.Clone()
		sig := forgegitea.Sign(body, secret)
		h.Set("X-Gitea-Signature", sig)
		h.Set("X-Hub-Signature-256", "sha256="+sig)
		return h
	}
	unsigned := real.Header.Clone()
	unsigned.Del("X-Gitea-Signature")
	unsigned.Del("X-Hub-Signature-256")
	unsigned.Del("X-Hub-Signature")
	huge := append(bytes.Repeat([]byte(" "), 26<<20), real.Body...)
	uploadPack := bytes.ReplaceAll(real.Body, []byte(`"after": "`+sha), []byte(`"after": "--upload-pack=touch /tmp/albatros-pwned`))
	newlineRef := bytes.ReplaceAll(real.Body, []byte(`"ref": "refs/heads/main"`), []byte(`"ref": "refs/heads/main\nFLAVOR=evil"`))
	for name, b := range map[string][]byte{"upload-pack": uploadPack, "newline": newlineRef} {
		if bytes.Equal(b, real.Body) {
			t.Fatalf("the %s variant did not change the captured body:\n%s", name, real.Body)
		}
	}

	cases := []struct {
		name   string
		path   string
		header http.Header
		body   []byte
		want   int
	}{
		{"wrong signature", "/webhook/gitea", signed(real.Body, "not-the-secret"), real.Body, http.StatusForbidden},
		{"no signature", "/webhook/gitea", unsigned, real.Body, http.StatusUnauthorized},
		{"body changed after signing", "/webhook/gitea", real.Header, bytes.Replace(real.Body, []byte(sha), []byte(strings.Repeat("0", 39)+"1"), 1), http.StatusForbidden},
		{"wrong token", "/hook?token=nope", real.Header, real.Body, http.StatusForbidden},
		{"no token", "/hook", real.Header, real.Body, http.StatusUnauthorized},
		// Answered as a bad signature is: probing does not list the registered repositories.
		{"unknown repository", "/webhook/gitea", signed(unknownBody, p.secret), unknownBody, http.StatusForbidden},
		// The genuine delivery, replayed with a flavor of the replayer's choosing.
		{"replayed with a flavor in the URL", "/webhook/gitea?flavor=evil", real.Header, real.Body, http.StatusBadRequest},
		{"replayed with an empty flavor", "/webhook/gitea?flavor=", real.Header, real.Body, http.StatusBadRequest},
		// Signed, but with fields that would reach git as options or break the meta.
		{"commit that is a git option", "/webhook/gitea", signed(uploadPack, p.secret), uploadPack, http.StatusBadRequest},
		{"branch with a newline", "/webhook/gitea", signed(newlineRef, p.secret), newlineRef, http.StatusBadRequest},
		{"malformed JSON", "/webhook/gitea", signed([]byte(`{"repository": {`), p.secret), []byte(`{"repository": {`), http.StatusBadRequest},
		{"not a repository event", "/webhook/gitea", signed([]byte(`{"zen":"hi"}`), p.secret), []byte(`{"zen":"hi"}`), http.StatusBadRequest},
		{"26 MiB body", "/webhook/gitea", signed(huge, p.secret), huge, http.StatusRequestEntityTooLarge},
	}
	for _, c := range cases {
		code, answer := send(t, c.path, c.header, c.body)
		if code != c.want {
			t.Errorf("%s: %d %q, want %d", c.name, code, answer, c.want)
		}
	}
	// The real delivery, for contrast, is accepted as it is.
	if code, answer := send(t, "/webhook/gitea", real.Header, real.Body); code != http.StatusAccepted {
		t.Fatalf("the genuine delivery: %d %q", code, answer)
	}
	p.waitStatus(sha, "albatros/default", gitea.StatusSuccess)
	// Only the genuine delivery built anything or wrote to Gitea.
	if jobs := p.jobs(); len(jobs) != 1 {
		t.Fatalf("builds: %d, want 1 (only the genuine delivery):\n%s", len(jobs), describe(jobs))
	}
	if jobs := unknown.jobs(); len(jobs) != 0 {
		t.Fatalf("builds of the unknown repository:\n%s", describe(jobs))
	}
	if got := p.statuses(sha, "albatros/default"); len(got) != 2 {
		t.Fatalf("statuses %v, want the genuine build's pending and success only", got)
	}
	for _, st := range p.g.Statuses(t, p.repo, sha) {
		if st.Context != "albatros/default" {
			t.Errorf("a status in context %q: the replay chose a build", st.Context)
		}
	}
	if _, err := os.Stat("/tmp/albatros-pwned"); err == nil {
		t.Error("/tmp/albatros-pwned exists: a commit reached git as an option")
	}
	if got := unknown.g.Statuses(t, unknown.repo, unknownSHA); len(got) != 0 {
		t.Fatalf("statuses written for the unknown repository: %v", got)
	}
}

func TestRedeliveryBuildsOnce(t *testing.T) {
	t.Parallel() // after the tests that stop shared servers; its repositories are its own
	p := newProject(t, entry{}, "/webhook/gitea")
	sha := p.push("main", script("echo once\n"))
	d := p.proxy.wait("push", sha)
	if d.Status != http.StatusAccepted {
		t.Fatalf("first delivery answered %d", d.Status)
	}
	// Gitea's redelivery, twice, as it sent it.
	for range 2 {
		if code, answer := send(t, "/webhook/gitea", d.Header, d.Body); code != http.StatusAccepted {
			t.Fatalf("redelivery answered %d %q", code, answer)
		}
	}
	p.waitStatus(sha, "albatros/default", gitea.StatusSuccess)
	time.Sleep(2 * time.Second) // time for a wrongly doubled build to show up
	if jobs := p.jobs(); len(jobs) != 1 {
		t.Fatalf("%d builds for one delivery sent three times:\n%s", len(jobs), describe(jobs))
	}
	if got := p.statuses(sha, "albatros/default"); len(got) != 2 || got[0] != gitea.StatusPending {
		t.Fatalf("statuses %v, want one pending then success", got)
	}
}

func TestOriginalHookURLAndFlavors(t *testing.T) {
	t.Parallel() // after the tests that stop shared servers; its repositories are its own
	p := newProject(t, entry{"flavors": []string{"fast", "slow"}}, "")
	b := bot(t)
	// The original's URL, signed too, since the entry has a webhook secret: one flavor of
	// the entry's.
	p.g.CreateWebhook(t, p.owner, p.repo, b.URL+"/hook?token="+p.token+"&flavor=slow", p.secret)
	// A flavor the entry lacks, and a hook without the entry's secret (Gitea then signs with
	// an empty key): refused.
	nightly := newRecorder(t, b.URL+"/hook?token="+p.token+"&flavor=nightly")
	p.g.CreateWebhook(t, p.owner, p.repo, nightly.URL(), p.secret)
	unsigned := newRecorder(t, b.URL+"/hook?token="+p.token)
	p.g.CreateWebhook(t, p.owner, p.repo, unsigned.URL(), "")

	sha := p.push("main", script(printEnv))
	st := p.waitStatus(sha, "albatros/slow", gitea.StatusSuccess)
	_, job := jobFromLink(t, st.TargetURL)
	if meta := p.jobs()[job]; meta["FLAVOR"] != "slow" {
		t.Fatalf("flavor from the URL: %v", meta)
	}
	if d := nightly.wait("push", sha); d.Status != http.StatusBadRequest {
		t.Errorf("/hook with a flavor the entry lacks: %d, want 400", d.Status)
	}
	if d := unsigned.wait("push", sha); d.Status != http.StatusForbidden {
		t.Errorf("/hook without the secret of an entry that has one: %d, want 403", d.Status)
	}
	time.Sleep(2 * time.Second) // time for a wrong build to show up
	if jobs := p.jobs(); len(jobs) != 1 {
		t.Fatalf("builds %s, want only the slow flavor's", describe(jobs))
	}
	for _, st := range p.g.Statuses(t, p.repo, sha) {
		if st.Context != "albatros/slow" {
			t.Errorf("status in context %s", st.Context)
		}
	}

	// Without a flavor in the URL, the entry's flavors each get a build.
	p2 := newProject(t, entry{"flavors": []string{"fast", "slow"}}, "/webhook/gitea")
	sha2 := p2.push("main", script(printEnv))
	p2.waitStatus(sha2, "albatros/fast", gitea.StatusSuccess)
	p2.waitStatus(sha2, "albatros/slow", gitea.StatusSuccess)
}

func TestMissingBuilderIsAnErrorStatus(t *testing.T) {
	p := newProject(t, entry{"builder": map[string]string{"job": "no-such-builder"}}, "/webhook/gitea")
	sha := p.push("main", script("echo hi\n"))
	st := p.waitStatus(sha, "albatros/default", gitea.StatusError)
	if !strings.Contains(st.Description, "no-such-builder") {
		t.Fatalf("error status %q does not name the builder", st.Description)
	}
}

func TestHealthz(t *testing.T) {
	code, body := get(t, bot(t).URL+"/healthz")
	if code != http.StatusOK || strings.TrimSpace(body) != "ok" {
		t.Fatalf("/healthz: %d %q", code, body)
	}
}

// registerBuilder registers a job of the user's own through Nomad's API, as a user would.
func registerBuilder(t *testing.T, hcl string) {
	t.Helper()
	c := env.Nomad(t).Client(t)
	job, err := c.Jobs().ParseHCL(hcl, true)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	if _, _, err := c.Jobs().Register(job, &nomad.WriteOptions{Namespace: *job.Namespace}); err != nil {
		t.Fatalf("register: %v", err)
	}
}

func TestOwnBuilderBreakingTheContract(t *testing.T) {
	name := testenv.UniqueName("nometa")
	registerBuilder(t, `job "`+name+`" {
  namespace = "ci"
  type = "batch"
  parameterized { meta_required = ["REPO_URL", "COMMIT"] }
  group "build" {
    task "main" {
      driver = "raw_exec"
      config { command = "true" }
    }
  }
}`)
	p := newProject(t, entry{"builder": map[string]string{"job": name}}, "/webhook/gitea")
	sha := p.push("main", script("echo hi\n"))
	st := p.waitStatus(sha, "albatros/default", gitea.StatusError)
	for _, want := range []string{name + " does not meet the builder contract", "meta BRANCH, FLAVOR not accepted", `no task "executor" in group "runner"`} {
		if !strings.Contains(st.Description, want) {
			t.Errorf("error status %q does not say %q", st.Description, want)
		}
	}
	if jobs := p.jobs(); len(jobs) != 0 {
		t.Fatalf("a build was dispatched to a builder breaking the contract:\n%s", describe(jobs))
	}
}

func TestUnplaceableBuildIsAnErrorStatus(t *testing.T) {
	name := testenv.UniqueName("windows")
	registerBuilder(t, `job "`+name+`" {
  namespace = "ci"
  type = "batch"
  parameterized { meta_required = ["REPO_URL", "COMMIT", "BRANCH", "FLAVOR"] }
  constraint {
    attribute = "${attr.kernel.name}"
    value     = "windows"
  }
  group "runner" {
    task "executor" {
      driver = "raw_exec"
      config { command = "true" }
    }
  }
}`)
	p := newProject(t, entry{"builder": map[string]string{"job": name}}, "/webhook/gitea")
	sha := p.push("main", script("echo hi\n"))
	st := p.waitStatus(sha, "albatros/default", gitea.StatusError)
	if !strings.Contains(st.Description, "no node can run this build") || !strings.Contains(st.Description, "kernel.name") {
		t.Fatalf("error status %q does not explain the placement failure", st.Description)
	}
	// Its log page says the same and ends.
	_, page := get(t, st.TargetURL)
	if !strings.Contains(page, `class="error"`) || !strings.Contains(page, "no node can run this build") {
		t.Fatalf("log page:\n%s", page)
	}
}

// The log page streams: its first lines arrive while the build still runs.
func TestLogPageStreamsLive(t *testing.T) {
	p := newProject(t, entry{}, "/webhook/gitea")
	sha := p.push("main", script("echo step-one\nsleep 5\necho step-two\n"))
	pending := p.waitStatus(sha, "albatros/default", gitea.StatusPending)
	resp, err := http.Get(pending.TargetURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var page strings.Builder
	buf := make([]byte, 4096)
	for !strings.Contains(page.String(), "step-one") {
		n, err := resp.Body.Read(buf)
		page.Write(buf[:n])
		if err != nil {
			t.Fatalf("page ended before step-one: %v\n%s", err, page.String())
		}
	}
	if strings.Contains(page.String(), "step-two") || strings.Contains(page.String(), "</footer>") {
		t.Fatalf("the page arrived only once the build had ended:\n%s", page.String())
	}
	if st := p.statuses(sha, "albatros/default"); st[len(st)-1] != gitea.StatusPending {
		t.Fatalf("the build had already ended (%v): not a live view", st)
	}
	rest, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(rest), "step-two") || !strings.Contains(string(rest), `class="success"`) {
		t.Fatalf("the rest of the page:\n%s", rest)
	}
}

// A bad setting stops the bot at start, with a message naming it.
func TestBotRefusesBadSettings(t *testing.T) {
	bot(t)
	cmd := exec.Command(botBin, "-addr", "nonsense")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")} // no ALBATROS_URL
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Fatalf("bot with bad settings: %v\n%s", err, out)
	}
	for _, want := range []string{"ALBATROS_URL (-url): is required", `ALBATROS_ADDR (-addr): "nonsense" is not host:port`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("message lacks %q:\n%s", want, out)
		}
	}
}

// Go's profiler is off by default, and answers on an address of its own when asked for,
// never on the bot's own.
func TestProfiler(t *testing.T) {
	if code, _ := get(t, bot(t).URL+"/debug/pprof/"); code != http.StatusNotFound {
		t.Errorf("/debug/pprof/ on the bot's address: %d, want 404", code)
	}
	addr, pprofAddr := freeAddr(t), freeAddr(t)
	b := ownBot(t, addr, testenv.UniqueName("pprof")+"/", "ALBATROS_PPROF_ADDR="+pprofAddr)
	if code, body := get(t, "http://"+pprofAddr+"/debug/pprof/"); code != http.StatusOK || !strings.Contains(body, "goroutine") {
		t.Errorf("profiler at ALBATROS_PPROF_ADDR: %d %.80q", code, body)
	}
	if code, _ := get(t, b.URL+"/debug/pprof/"); code != http.StatusNotFound {
		t.Errorf("/debug/pprof/ on the bot's address with the profiler on: %d, want 404", code)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	addr, err := testenv.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// A second push to a branch, and to a pull request, stops the build of the first commit
// still running, whose status says which commit superseded it.
func TestSupersededBuilds(t *testing.T) {
	t.Parallel() // after the tests that stop shared servers; its repositories are its own
	p := newProject(t, entry{}, "/webhook/gitea")
	slow := script("echo long\nsleep 90\n")
	first := p.push("main", slow)
	p.waitStatus(first, "albatros/default", gitea.StatusPending)
	time.Sleep(2 * time.Second) // running, not only queued
	second := p.push("main", script("echo quick\n"))
	st := p.waitStatus(first, "albatros/default", gitea.StatusError)
	if st.Description != "superseded by "+second[:7] {
		t.Errorf("the first commit's status %q, want superseded by %s", st.Description, second[:7])
	}
	p.waitStatus(second, "albatros/default", gitea.StatusSuccess)
	// Nomad's own end of the stopped build does not overwrite it.
	time.Sleep(3 * time.Second)
	if got := p.statuses(first, "albatros/default"); got[len(got)-1] != gitea.StatusError {
		t.Fatalf("statuses of the first commit %v", got)
	}
	if st := p.waitStatus(first, "albatros/default", gitea.StatusError); st.Description != "superseded by "+second[:7] {
		t.Errorf("after Nomad reported the stop: %q", st.Description)
	}

	// The same for the pull request of a fork.
	g := env.Gitea(t)
	outsider := g.CreateUser(t, testenv.UniqueName("forker"))
	fork := g.Fork(t, outsider, p.repo)
	one := g.Push(t, outsider, fork, "patch", "main", slow, "slow change")
	g.CreatePullRequest(t, outsider, p.repo, outsider.Name+":patch", "main", "superseded")
	p.waitStatus(one, "albatros/default", gitea.StatusPending)
	two := g.Push(t, outsider, fork, "patch", "", script("echo better\n"), "better change")
	if st := p.waitStatus(one, "albatros/default", gitea.StatusError); st.Description != "superseded by "+two[:7] {
		t.Errorf("the pull request's first head: %q, want superseded by %s", st.Description, two[:7])
	}
	p.waitStatus(two, "albatros/default", gitea.StatusSuccess)
}
