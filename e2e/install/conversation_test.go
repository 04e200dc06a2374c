package install

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	sdk "code.gitea.io/sdk/gitea"
	nomad "github.com/hashicorp/nomad/api"

	"github.com/albatros-ci/albatros/pipeline"
	"github.com/albatros-ci/albatros/testenv"
)

// recorder is the bot's public address for the conversation tests: a reverse proxy to the
// bot that keeps every webhook delivery, so that a test can deliver one again exactly as
// Gitea sent it.
type recorder struct {
	srv    *httptest.Server
	target *url.URL
	mu     sync.Mutex
	got    []delivery
}

type delivery struct {
	header http.Header
	body   []byte
}

func newRecorder() *recorder {
	r := &recorder{}
	proxy := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(r.target)
		pr.Out.Host = pr.In.Host
	}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method == http.MethodPost && req.URL.Path == "/webhook/gitea" {
			body, _ := io.ReadAll(req.Body)
			r.mu.Lock()
			r.got = append(r.got, delivery{req.Header.Clone(), body})
			r.mu.Unlock()
			req.Body = io.NopCloser(bytes.NewReader(body))
		}
		proxy.ServeHTTP(w, req)
	}))
	return r
}

// comment returns Gitea's delivery of the comment id.
func (r *recorder) comment(t *testing.T, id int64) delivery {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		for _, d := range r.got {
			var p struct {
				Comment struct {
					ID int64 `json:"id"`
				} `json:"comment"`
			}
			if d.header.Get("X-Gitea-Event") == "issue_comment" && json.Unmarshal(d.body, &p) == nil && p.Comment.ID == id {
				r.mu.Unlock()
				return d
			}
		}
		r.mu.Unlock()
		time.Sleep(100 * time.Millisecond)
	}
	r.mu.Lock()
	for _, d := range r.got {
		t.Logf("recorded %s %s: %.300s", d.header.Get("X-Gitea-Event"), d.header.Get("X-Gitea-Event-Type"), d.body)
	}
	r.mu.Unlock()
	t.Fatalf("no delivery of comment %d", id)
	return delivery{}
}

// conversationBot is the package's bot and the recorder that is its public URL.
func conversationBot(t *testing.T) (*testenv.Bot, *recorder) {
	t.Helper()
	return bot(t), recorded
}

// pr is a pull request of a project on the conversation bot, and who acts on it.
type pr struct {
	*project
	c      *client
	repo   *testenv.Repo
	number int64
	rec    *recorder
}

// conversation installs Albatros (through the conversation bot) on a new organization
// with flavors and a secret, the owner trusted, and opens a pull request from a branch of
// the repository; it waits until the head's builds are green.
func conversation(t *testing.T, flavors string) *pr {
	t.Helper()
	b, rec := conversationBot(t)
	p := newProject(t)
	c := newClient(t, b)
	c.signIn(p.owner)
	c.install(p.org)
	if resp, _ := c.post("/orgs/"+p.org+"/settings", url.Values{"users": {p.owner.Name}, "flavors": {flavors}}); resp.StatusCode != http.StatusOK {
		t.Fatalf("settings: %d", resp.StatusCode)
	}
	if resp, _ := c.post("/orgs/"+p.org+"/secrets", url.Values{"name": {"DEPLOY_TOKEN"}, "value": {"conversation-s3cr3t"}}); resp.StatusCode != http.StatusOK {
		t.Fatalf("secret: %d", resp.StatusCode)
	}
	repo := p.g.CreateRepo(t, p.owner, p.org, "app")
	p.g.Push(t, p.owner, repo, "main", "", script(printToken), "main")
	return &pr{project: p, c: c, repo: repo, rec: rec}
}

// open opens a pull request from head ("branch", or "user:branch" of a fork) as user.
func (x *pr) open(user *testenv.User, head string) {
	x.t.Helper()
	x.number = x.g.CreatePullRequest(x.t, user, x.repo, head, "main", "a change")
}

// botComments returns the bot's conversation comments on the pull request.
func (x *pr) botComments() []*sdk.Comment {
	x.t.Helper()
	list, _, err := x.g.Client(x.t, x.owner.Token).ListIssueComments(x.repo.Owner, x.repo.Name, x.number, sdk.ListIssueCommentOptions{})
	if err != nil {
		x.t.Fatal(err)
	}
	var out []*sdk.Comment
	for _, c := range list {
		if c.Poster != nil && c.Poster.UserName == account.Name && strings.HasPrefix(c.Body, pipeline.Marker) {
			out = append(out, c)
		}
	}
	return out
}

// replies returns the other comments of the bot (its replies to commands).
func (x *pr) replies() []string {
	x.t.Helper()
	list, _, err := x.g.Client(x.t, x.owner.Token).ListIssueComments(x.repo.Owner, x.repo.Name, x.number, sdk.ListIssueCommentOptions{})
	if err != nil {
		x.t.Fatal(err)
	}
	var out []string
	for _, c := range list {
		if c.Poster != nil && c.Poster.UserName == account.Name && !strings.HasPrefix(c.Body, pipeline.Marker) {
			out = append(out, c.Body)
		}
	}
	return out
}

// waitComment waits until the bot's one comment satisfies ok, and returns it.
func (x *pr) waitComment(what string, ok func(body string) bool) string {
	x.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	var last []*sdk.Comment
	for time.Now().Before(deadline) {
		last = x.botComments()
		if len(last) > 1 {
			x.t.Fatalf("the bot wrote %d conversation comments", len(last))
		}
		if len(last) == 1 && ok(last[0].Body) {
			return last[0].Body
		}
		time.Sleep(300 * time.Millisecond)
	}
	body := ""
	if len(last) == 1 {
		body = last[0].Body
	}
	x.t.Fatalf("the bot's comment never showed %s; last:\n%s", what, body)
	return ""
}

// say comments body on the pull request as user, and returns the comment.
func (x *pr) say(user *testenv.User, body string) *sdk.Comment {
	x.t.Helper()
	c, _, err := x.g.Client(x.t, user.Token).CreateIssueComment(x.repo.Owner, x.repo.Name, x.number, sdk.CreateIssueCommentOption{Body: body})
	if err != nil {
		x.t.Fatal(err)
	}
	return c
}

// reactions are the reactions on a comment.
func (x *pr) reactions(id int64) []string {
	x.t.Helper()
	rs, _, err := x.g.Client(x.t, x.owner.Token).GetIssueCommentReactions(x.repo.Owner, x.repo.Name, id)
	if err != nil {
		x.t.Fatal(err)
	}
	var out []string
	for _, r := range rs {
		out = append(out, r.Reaction)
	}
	return out
}

// builds are the Nomad jobs of the pull request's commit sha, by flavor (not the builds of
// the pushes of its branch).
func (x *pr) builds(sha string) map[string][]string {
	x.t.Helper()
	out := map[string][]string{}
	for id, meta := range jobs(x.t, x.repo) {
		if meta["COMMIT"] == sha && meta["PR"] == strconv.FormatInt(x.number, 10) {
			out[meta["FLAVOR"]] = append(out[meta["FLAVOR"]], id)
		}
	}
	return out
}

// waitBuilds waits until sha has n builds in flavor, and no more.
func (x *pr) waitBuilds(sha, flavor string, n int) {
	x.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if got := len(x.builds(sha)[flavor]); got == n {
			return
		} else if got > n {
			x.t.Fatalf("%d builds of %s in %s, want %d", got, sha[:7], flavor, n)
		}
		time.Sleep(200 * time.Millisecond)
	}
	x.t.Fatalf("%d builds of %s in %s, want %d", len(x.builds(sha)[flavor]), sha[:7], flavor, n)
}

// One comment per pull request, edited in place through three pushes and two flavors,
// while a second bot reports the same builds: each flavor's state and log for the head,
// and the earlier heads collapsed.
func TestOneCommentPerPullRequest(t *testing.T) {
	x := conversation(t, "default nix")
	// A second replica behind the same URL follows the same builds and writes the same
	// comment.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	second, err := startBotURL(ctx, t, "1m", public(t))
	if err != nil {
		t.Fatal(err)
	}
	defer second.Stop()
	second.LogOnFailure(t)

	var heads []string
	heads = append(heads, x.g.Push(t, x.owner, x.repo, "topic", "main", script("echo one\n"), "one"))
	x.open(x.owner, "topic")
	for i, body := range []string{"echo two\n", "echo three\n"} {
		x.waitComment("the builds of push "+string(rune('1'+i)), func(b string) bool {
			return strings.Contains(b, heads[len(heads)-1][:7]) && strings.Count(b, "✅ success") == 2
		})
		heads = append(heads, x.g.Push(t, x.owner, x.repo, "topic", "", script(body), "more"))
	}
	head := heads[2]
	body := x.waitComment("the head's two flavors green, the earlier heads collapsed", func(b string) bool {
		return strings.Contains(b, "/commit/"+head) && strings.Count(b, "✅ success") == 2 &&
			strings.Contains(b, "<details>") && strings.Contains(b, heads[0][:7]) && strings.Contains(b, heads[1][:7])
	})
	for _, want := range []string{"| default | ✅ success |", "| nix | ✅ success |", public(t) + "/logs/ci/builder/dispatch-albatros-"} {
		if !strings.Contains(body, want) {
			t.Errorf("the comment lacks %q:\n%s", want, body)
		}
	}
	if n := strings.Count(body, "\n- "); n != 2 {
		t.Errorf("%d collapsed lines of earlier heads, want 2:\n%s", n, body)
	}
	time.Sleep(2 * time.Second) // both bots have reported everything by now
	if n := len(x.botComments()); n != 1 {
		t.Fatalf("%d conversation comments, want 1", n)
	}
}

// /rebuild by a user with write access builds the head again, each comment once; by
// anyone else it is refused with a reply. The bot's own comments, commands in quotes or
// code and edited comments run nothing.
func TestRebuild(t *testing.T) {
	x := conversation(t, "default nix")
	head := x.g.Push(t, x.owner, x.repo, "topic", "main", script("echo hi\n"), "change")
	x.open(x.owner, "topic")
	x.waitComment("the head's builds", func(b string) bool { return strings.Count(b, "✅ success") == 2 })

	writer := x.g.CreateUser(t, testenv.UniqueName("writer"))
	x.g.AddCollaborator(t, x.owner, x.repo, writer.Name)
	c := x.say(writer, "The nix job flaked.\n\n/rebuild\n")
	x.waitBuilds(head, "default", 2)
	x.waitBuilds(head, "nix", 2)
	deadline := time.Now().Add(20 * time.Second)
	for r := x.reactions(c.ID); !(contains(r, "eyes") && contains(r, "rocket")); r = x.reactions(c.ID) {
		if time.Now().After(deadline) {
			t.Fatalf("reactions on the accepted /rebuild: %v, want eyes and rocket", r)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The same comment delivered again is still one rebuild.
	d := x.rec.comment(t, c.ID)
	req, _ := http.NewRequest(http.MethodPost, bot(t).URL+"/webhook/gitea", bytes.NewReader(d.body))
	req.Header = d.header.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("redelivery: %v %v", resp, err)
	}
	resp.Body.Close()

	x.say(writer, "/rebuild nix")
	x.waitBuilds(head, "nix", 3)

	// Nothing runs for these.
	outsider := x.g.CreateUser(t, testenv.UniqueName("outsider"))
	x.say(outsider, "/rebuild")
	x.say(writer, "> /rebuild\n\n```\n/rebuild\n```\n    /rebuild\n")
	edited := x.say(writer, "nothing to see")
	if _, _, err := x.g.Client(t, writer.Token).EditIssueComment(x.repo.Owner, x.repo.Name, edited.ID, sdk.EditIssueCommentOption{Body: "/rebuild"}); err != nil {
		t.Fatal(err)
	}
	x.say(writer, "/rebuild no-such-flavor")
	deadline = time.Now().Add(30 * time.Second)
	for {
		r := x.replies()
		if len(r) >= 2 {
			joined := strings.Join(r, "\n---\n")
			if !strings.Contains(joined, "@"+outsider.Name+" only this repository's maintainers") || !strings.Contains(joined, "`no-such-flavor` is not a flavor") {
				t.Fatalf("replies:\n%s", joined)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replies: %q, want one to the outsider and one about the flavor", r)
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(3 * time.Second) // time for a wrong build to show up
	got := x.builds(head)
	if len(got["default"]) != 2 || len(got["nix"]) != 3 {
		t.Fatalf("builds of the head: %v, want 2 default and 3 nix", got)
	}
	if n := len(x.botComments()); n != 1 {
		t.Fatalf("%d conversation comments, want 1", n)
	}
}

// A fork's code runs without the secrets, and the comment asks for an approval of that
// commit; /approve of the head runs it with them, /approve of an older commit runs nothing
// and says which is the head; a push after the approval runs without them again.
func TestApproveBindsToACommit(t *testing.T) {
	x := conversation(t, "default")
	outsider := x.g.CreateUser(t, testenv.UniqueName("forker"))
	fork := x.g.Fork(t, outsider, x.repo)
	first := x.g.Push(t, outsider, fork, "patch", "main", script(printToken+"echo first\n"), "first")
	second := x.g.Push(t, outsider, fork, "patch", "", script(printToken+"echo second\n"), "second")
	x.open(outsider, outsider.Name+":patch")
	x.waitBuilds(second, "default", 1)
	body := x.waitComment("the request for approval", func(b string) bool {
		return strings.Contains(b, "without the repository's secrets") && strings.Contains(b, "/approve "+second)
	})
	if strings.Contains(body, "conversation-s3cr3t") {
		t.Fatal("the comment shows the secret")
	}
	if log := lastLog(t, x, second); !strings.Contains(log, "token=[none]") {
		t.Fatalf("the fork's build got the secrets:\n%s", log)
	}

	// An approval of the older commit runs nothing.
	x.say(x.owner, "/approve "+first)
	// Nor does one by a prefix of the head (it could be forged), nor one by a writer who is
	// not trusted.
	x.say(x.owner, "/approve "+second[:12])
	writer := x.g.CreateUser(t, testenv.UniqueName("writer"))
	x.g.AddCollaborator(t, x.owner, x.repo, writer.Name)
	x.say(writer, "/approve "+second)
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := strings.Join(x.replies(), "\n")
		if strings.Contains(r, "its head is now `"+second[:12]+"`") && strings.Contains(r, "takes the full id") && strings.Contains(r, "@"+writer.Name+" only this repository's trusted users") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replies %q, want one naming the head, one asking for the full id, one refusing the writer", x.replies())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if n := len(x.builds(second)["default"]); n != 1 {
		t.Fatalf("%d builds of the head after refused approvals, want 1", n)
	}
	// An approval of the head runs it with the secrets, once however often it is given.
	x.say(x.owner, "/approve "+second)
	x.waitBuilds(second, "default", 2)
	x.say(x.owner, "Approved again.\n/approve "+second)
	x.waitComment("the approval", func(b string) bool { return strings.Contains(b, "Approved") })
	time.Sleep(2 * time.Second)
	if n := len(x.builds(second)["default"]); n != 2 {
		t.Fatalf("%d builds of the approved head, want 2 (one approval run)", n)
	}
	if log := lastLog(t, x, second); !strings.Contains(log, "token=[conversation-s3cr3t]") {
		t.Fatalf("the approved build did not get the secrets:\n%s", log)
	}
	// A push after the approval runs without the secrets, and asks again.
	third := x.g.Push(t, outsider, fork, "patch", "", script(printToken+"echo third\n"), "third")
	x.waitBuilds(third, "default", 1)
	x.waitComment("a new request for approval", func(b string) bool { return strings.Contains(b, "/approve "+third) })
	if log := lastLog(t, x, third); !strings.Contains(log, "token=[none]") {
		t.Fatalf("a push after the approval got the secrets:\n%s", log)
	}
}

// lastLog is the Nomad log of the newest finished build of sha.
func lastLog(t *testing.T, x *pr, sha string) string {
	t.Helper()
	st := x.waitStatus(x.repo, sha, sdk.StatusSuccess)
	ns, job := jobFromLink(t, st.TargetURL)
	return env.Nomad(t).BuildLog(t, ns, job)
}

// Closing a pull request stops its running build, marks its status and says so.
func TestClosingStopsBuilds(t *testing.T) {
	x := conversation(t, "default")
	head := x.g.Push(t, x.owner, x.repo, "topic", "main", script("echo long build\nsleep 120\n"), "slow")
	x.open(x.owner, "topic")
	x.waitComment("the build", func(b string) bool { return strings.Contains(b, "| default |") })
	time.Sleep(2 * time.Second) // the build starts its script
	closed := sdk.StateClosed
	if _, _, err := x.g.Client(t, x.owner.Token).EditPullRequest(x.repo.Owner, x.repo.Name, x.number, sdk.EditPullRequestOption{State: &closed}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		st := x.g.Statuses(t, x.repo, head)
		if len(st) > 0 && st[0].State == sdk.StatusError && st[0].Description == pipeline.ClosedDescription {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("statuses %+v, want error %q", st, pipeline.ClosedDescription)
		}
		time.Sleep(300 * time.Millisecond)
	}
	x.waitComment("the closing", func(b string) bool {
		return strings.Contains(b, "This pull request is closed") && strings.Contains(b, "error")
	})
	c := env.Nomad(t).Client(t)
	for _, id := range x.builds(head)["default"] {
		job, _, err := c.Jobs().Info(id, &nomad.QueryOptions{Namespace: "ci"})
		if err != nil || job.Stop == nil || !*job.Stop {
			st := ""
			if job != nil && job.Status != nil {
				st = *job.Status
			}
			t.Errorf("build %s is not stopped (status %s): %v", id, st, err)
		}
	}
	// Reopened on the same commit, it builds again (Nomad's idempotency would hand back
	// the stopped build), and closing stops that one too.
	open := sdk.StateOpen
	if _, _, err := x.g.Client(t, x.owner.Token).EditPullRequest(x.repo.Owner, x.repo.Name, x.number, sdk.EditPullRequestOption{State: &open}); err != nil {
		t.Fatal(err)
	}
	x.waitBuilds(head, "default", 2)
	x.waitStatus(x.repo, head, sdk.StatusPending)
	if _, _, err := x.g.Client(t, x.owner.Token).EditPullRequest(x.repo.Owner, x.repo.Name, x.number, sdk.EditPullRequestOption{State: &closed}); err != nil {
		t.Fatal(err)
	}
	x.waitStatus(x.repo, head, sdk.StatusError)
}
