package e2e

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"code.gitea.io/sdk/gitea"
	nomad "github.com/hashicorp/nomad/api"

	"github.com/albatros-ci/albatros/orchestrator"
	"github.com/albatros-ci/albatros/testenv"
)

// The tests of what untrusted code, a fork's author, an org member and another tenant of
// the Nomad cluster can make the bot do (issue 16, Hardening II).

// secretEntry is a registry entry whose builds print whether they got its secret.
func secretEntry(trusted ...string) entry {
	return entry{
		"trusted": map[string]any{"senders": trusted},
		"secrets": map[string]string{"DEPLOY_TOKEN": "tok-" + testenv.UniqueName("secret")},
	}
}

const printsSecret = `echo "token=[${DEPLOY_TOKEN-none}]"` + "\n"

// gotSecrets reports whether the build a status links to got the secrets, from Nomad's
// own log of it.
func gotSecrets(t *testing.T, st *gitea.Status) bool {
	t.Helper()
	ns, job := jobFromLink(t, st.TargetURL)
	raw := env.Nomad(t).BuildLog(t, ns, job)
	switch {
	case strings.Contains(raw, "token=[none]"):
		return false
	case strings.Contains(raw, "token=[tok-"):
		return true
	}
	t.Fatalf("the build %s printed neither:\n%s", job, raw)
	return false
}

// evilBuilder registers, in a namespace of another tenant's, a parameterized job with the
// builder contract whose children run cmd, and returns the namespace.
func evilBuilder(t *testing.T, cmd string) string {
	t.Helper()
	n := env.Nomad(t)
	ns := n.CreateNamespace(t, testenv.UniqueName("evil"))
	job, err := n.Client(t).Jobs().ParseHCL(`job "builder" {
  type = "batch"
  parameterized {
    meta_required = ["REPO_URL", "COMMIT", "BRANCH", "FLAVOR"]
    meta_optional = ["PR", "TAG"]
    payload       = "optional"
  }
  group "runner" {
    task "executor" {
      driver = "raw_exec"
      config {
        command = "/bin/sh"
        args    = ["-c", `+strconv.Quote(cmd)+`]
      }
      resources {
        cpu    = 50
        memory = 32
      }
    }
  }
}`, true)
	if err != nil {
		t.Fatal(err)
	}
	job.Namespace = &ns
	if _, _, err := n.Client(t).Jobs().Register(job, &nomad.WriteOptions{Namespace: ns}); err != nil {
		t.Fatal(err)
	}
	return ns
}

// evilDispatch dispatches the other tenant's job with the bot's marker in its ID, meta and
// payload, and waits for it to end; it returns its ID.
func evilDispatch(t *testing.T, ns string, meta map[string]string, payload []byte) string {
	t.Helper()
	c := env.Nomad(t).Client(t)
	resp, _, err := c.Jobs().DispatchOpts(&nomad.DispatchOptions{
		JobID: "builder", Meta: meta, Payload: payload, IdPrefixTemplate: "albatros-" + orchestrator.KeyDigest(testenv.UniqueName("k")),
	}, &nomad.WriteOptions{Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	if !orchestrator.IsBuildID(resp.DispatchedJobID) {
		t.Fatalf("%s does not look like a build: the test would mean nothing", resp.DispatchedJobID)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		allocs, _, err := c.Jobs().Allocations(resp.DispatchedJobID, false, &nomad.QueryOptions{Namespace: ns})
		if err == nil && len(allocs) > 0 && (allocs[0].ClientStatus == "complete" || allocs[0].ClientStatus == "failed") {
			return resp.DispatchedJobID
		}
		if time.Now().After(deadline) {
			t.Fatalf("the other tenant's job %s did not end: %v", resp.DispatchedJobID, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Another tenant of the cluster dispatches, in a namespace of its own, a job dressed as a
// build of a registered repository, on a commit the bot never built: the bot writes no
// status for it, serves no log of it, and lists it nowhere. Before the fix, the bot wrote
// albatros/default success on that commit and served the job's log as the repository's.
func TestAnotherTenantsJobIsNoBuild(t *testing.T) {
	t.Parallel()                    // after the tests that stop shared servers; it shares none of its own
	p := newProject(t, entry{}, "") // registered, but no webhook: the bot never hears of the commit
	sha := p.push("main", script("echo never built by the bot\n"))
	ns := evilBuilder(t, "echo forged build log; exit 0")
	meta := map[string]string{"REPO_URL": p.repo.CloneURL, "COMMIT": sha, "BRANCH": "main", "FLAVOR": "default"}
	job := evilDispatch(t, ns, meta, nil)

	time.Sleep(5 * time.Second) // the bot's event stream has seen the job end
	if st := p.g.Statuses(t, p.repo, sha); len(st) > 0 {
		t.Errorf("the other tenant's job got statuses written on %s: %+v", sha[:10], st[0])
	}
	for _, path := range []string{
		orchestrator.LogPath(ns, job),
		"/build?" + url.Values{"job": {job}, "namespace": {ns}}.Encode(),
	} {
		if code, body := get(t, bot(t).URL+path); code != http.StatusNotFound || strings.Contains(body, "forged") {
			t.Errorf("GET %s: %d %q, want 404", path, code, body)
		}
	}
}

// A fork's pull request, from an untrusted user, runs without secrets. Another tenant
// dispatches a job dressed as an earlier build of its head "with the secrets" (a payload
// that looks like the secrets file); a writer's /rebuild must still run it without them.
// Before the fix, "ran with secrets" was read from the Nomad payload of any job with the
// marker, and the rebuild got the secrets.
func TestForgedPayloadGivesNoSecretsToARebuild(t *testing.T) {
	t.Parallel() // after the tests that stop shared servers; it shares none of its own
	g := env.Gitea(t)
	e := secretEntry()
	p := newProject(t, e, "/webhook/gitea")
	p.push("main", script(printsSecret))
	writer := g.CreateUser(t, testenv.UniqueName("writer"))
	g.AddCollaborator(t, p.owner, p.repo, writer.Name)
	outsider := g.CreateUser(t, testenv.UniqueName("outsider"))
	fork := g.Fork(t, outsider, p.repo)
	head := g.Push(t, outsider, fork, "patch", "main", map[string]testenv.File{"CHANGE": {Content: "x\n"}}, "outsider change")
	number := g.CreatePullRequest(t, outsider, p.repo, outsider.Name+":patch", "main", "from a fork")
	first := p.waitStatus(head, "albatros/default", gitea.StatusSuccess)
	if gotSecrets(t, first) {
		t.Fatal("the untrusted fork's build got the secrets")
	}

	evil := evilBuilder(t, "exit 0")
	meta := map[string]string{"REPO_URL": p.repo.CloneURL, "COMMIT": head, "BRANCH": "patch", "FLAVOR": "default", "PR": "1"}
	evilDispatch(t, evil, meta, []byte("# Albatros build secrets (sourced before .albatros runs)\nexport DEPLOY_TOKEN='forged'\n"))

	if _, _, err := g.Client(t, writer.Token).CreateIssueComment(p.repo.Owner, p.repo.Name, number, gitea.CreateIssueCommentOption{Body: "/rebuild"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		st := p.waitStatus(head, "albatros/default", gitea.StatusSuccess)
		if ns, job := jobFromLink(t, st.TargetURL); ns == evil {
			t.Fatalf("the commit's status links to the other tenant's job %s", job)
		}
		if st.TargetURL != first.TargetURL {
			if gotSecrets(t, st) {
				t.Fatal("a writer's /rebuild of the untrusted head got the secrets after another tenant's forged build")
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the /rebuild never built")
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// A pull request between branches of the repository runs the code of whoever pushed its
// head: a branch pushed by an untrusted writer gets no secrets when a trusted owner opens
// the pull request; a commit the trusted owner pushes to it then gets them.
func TestSameRepositoryPullRequestTrustsThePusher(t *testing.T) {
	t.Parallel() // after the tests that stop shared servers; it shares none of its own
	g := env.Gitea(t)
	writer := g.CreateUser(t, testenv.UniqueName("writer"))
	p := newProject(t, nil, "")
	p.register(withHook(secretEntry(p.owner.Name), p))
	p.proxy = newRecorder(t, bot(t).URL+"/webhook/gitea")
	g.CreateWebhook(t, p.owner, p.repo, p.proxy.URL(), p.secret)
	p.push("main", script(printsSecret))
	g.AddCollaborator(t, p.owner, p.repo, writer.Name)

	untrusted := g.Push(t, writer, p.repo, "feature", "main", map[string]testenv.File{"CHANGE": {Content: "w\n"}}, "the writer's change")
	g.CreatePullRequest(t, p.owner, p.repo, "feature", "main", "opened by the trusted owner")
	p.proxy.wait("pull_request", untrusted)
	if secrets := p.prBuildSecrets(untrusted); len(secrets) == 0 || slices.Contains(secrets, true) {
		t.Errorf("the pull request's builds of the untrusted writer's branch, which a trusted owner opened: secrets %v, want none", secrets)
	}

	trusted := g.Push(t, p.owner, p.repo, "feature", "", map[string]testenv.File{"CHANGE": {Content: "o\n"}}, "the owner's change")
	p.proxy.wait("pull_request", trusted)
	for _, d := range p.proxy.deliveriesOf(trusted) {
		if d.Status != http.StatusAccepted {
			t.Errorf("a delivery of the owner's push answered %d", d.Status)
		}
	}
	if secrets := p.prBuildSecrets(trusted); len(secrets) == 0 || slices.Contains(secrets, false) {
		t.Errorf("the pull request's builds of the trusted owner's commit: secrets %v, want all", secrets)
	}
}

// prBuildSecrets waits for the pull request builds of sha to end, and says of each whether
// it got the secrets (from Nomad's own log of it).
func (p *project) prBuildSecrets(sha string) []bool {
	p.t.Helper()
	p.waitStatus(sha, "albatros/default", gitea.StatusSuccess)
	var out []bool
	for id, meta := range p.jobs() {
		if meta["COMMIT"] == sha && meta["PR"] != "" {
			raw := env.Nomad(p.t).BuildLog(p.t, "ci", id)
			out = append(out, strings.Contains(raw, "token=[tok-"))
		}
	}
	return out
}

// An AGit pull request (pushed for review to refs/for/main by a user who can only read the
// repository) is its author's fork: reopened by a trusted owner, it still runs without the
// secrets. Before the fix it looked like a pull request between branches, and a trusted
// sender gave it the secrets.
func TestAGitPullRequestIsAFork(t *testing.T) {
	t.Parallel() // after the tests that stop shared servers; it shares none of its own
	g := env.Gitea(t)
	p := newProject(t, nil, "")
	p.register(withHook(secretEntry(p.owner.Name), p))
	p.proxy = newRecorder(t, bot(t).URL+"/webhook/gitea")
	g.CreateWebhook(t, p.owner, p.repo, p.proxy.URL(), p.secret)
	p.push("main", script(printsSecret))
	reader := g.CreateUser(t, testenv.UniqueName("reader"))

	sha := g.PushForReview(t, reader, p.repo, "main", "agit-topic", map[string]testenv.File{"CHANGE": {Content: "r\n"}}, "for review")
	p.proxy.wait("pull_request", sha)
	first := p.waitStatus(sha, "albatros/default", gitea.StatusSuccess)
	if gotSecrets(t, first) {
		t.Fatal("an AGit pull request of a reader got the secrets")
	}
	prs := g.PullRequests(t, p.repo)
	if len(prs) != 1 || prs[0].Head.Sha != sha {
		t.Fatalf("open pull requests %+v, want the AGit one", prs)
	}
	g.SetPullRequestState(t, p.owner, p.repo, prs[0].Index, false)
	g.SetPullRequestState(t, p.owner, p.repo, prs[0].Index, true)
	if d := p.proxy.wait("pull_request", "reopened"); d.Status != http.StatusAccepted {
		t.Fatalf("the reopened delivery answered %d", d.Status)
	}
	time.Sleep(3 * time.Second) // any build of the reopened pull request is dispatched
	builds := 0
	for id, meta := range p.jobs() {
		if meta["COMMIT"] != sha {
			continue
		}
		builds++
		st := p.waitStatus(sha, "albatros/default", gitea.StatusSuccess)
		if raw := env.Nomad(t).BuildLog(t, "ci", id); !strings.Contains(raw, "token=[none]") {
			t.Errorf("a build of the AGit pull request (%s, status %s) got the secrets once a trusted owner reopened it:\n%s", id, st.TargetURL, raw)
		}
	}
	if builds == 0 {
		t.Fatal("no build of the AGit pull request")
	}
}

// withHook fills in an entry's hook and gitea fields, as newProject does.
func withHook(e entry, p *project) entry {
	e["hook"] = map[string]string{"token": p.token, "secret": p.secret}
	e["gitea"] = map[string]string{"url": p.g.URL, "token": p.owner.Token}
	return e
}
