package testenv_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"code.gitea.io/sdk/gitea"
	consul "github.com/hashicorp/consul/api"
	nomad "github.com/hashicorp/nomad/api"

	"github.com/albatros-ci/albatros/testenv"
)

var env = testenv.New(testenv.Options{Nomad: true, Consul: true, Gitea: true})

func TestMain(m *testing.M) { os.Exit(env.Run(m)) }

// The builder contract: a parameterized batch job, group "runner", task "executor", with the
// four required meta keys; here it prints them, and the test reads them back through the
// log API.
const contractJob = `
job "harness-builder" {
  type = "batch"
  parameterized {
    payload       = "optional"
    meta_required = ["REPO_URL", "COMMIT", "BRANCH", "FLAVOR"]
  }
  group "runner" {
    restart {
      attempts = 0
      mode     = "fail"
    }
    reschedule {
      attempts  = 0
      unlimited = false
    }
    task "executor" {
      driver = "raw_exec"
      config {
        command = "/bin/sh"
        args    = ["-c", "echo repo=$NOMAD_META_REPO_URL commit=$NOMAD_META_COMMIT branch=$NOMAD_META_BRANCH flavor=$NOMAD_META_FLAVOR; cat $NOMAD_TASK_DIR/payload"]
      }
      dispatch_payload {
        file = "payload"
      }
      resources {
        cpu    = 100
        memory = 64
      }
    }
  }
}
`

func TestNomadDispatchAndLogs(t *testing.T) {
	n := env.Nomad(t)
	c := n.Client(t)
	ns := n.CreateNamespace(t, "harness")

	job, err := c.Jobs().ParseHCL(contractJob, true)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	job.Namespace = &ns
	w := &nomad.WriteOptions{Namespace: ns}
	if _, _, err := c.Jobs().Register(job, w); err != nil {
		t.Fatalf("register: %v", err)
	}
	meta := map[string]string{"REPO_URL": "http://example.com/a/b.git", "COMMIT": "0123abc", "BRANCH": "main", "FLAVOR": "default"}
	resp, _, err := c.Jobs().Dispatch(*job.ID, meta, []byte("the payload\n"), "", w)
	if err != nil {
		t.Fatalf("dispatch: %v", err)
	}

	// A missing required meta key is refused by Nomad itself.
	if _, _, err := c.Jobs().Dispatch(*job.ID, map[string]string{"COMMIT": "x"}, nil, "", w); err == nil {
		t.Fatalf("dispatch without REPO_URL, BRANCH, FLAVOR was accepted")
	}

	q := &nomad.QueryOptions{Namespace: ns}
	alloc := waitAlloc(t, c, resp.DispatchedJobID, q)
	if alloc.ClientStatus != nomad.AllocClientStatusComplete {
		t.Fatalf("allocation ended %s: %+v", alloc.ClientStatus, alloc.TaskStates)
	}
	cancel := make(chan struct{})
	defer close(cancel)
	frames, errs := c.AllocFS().Logs(alloc, false, "executor", "stdout", "start", 0, cancel, q)
	var out bytes.Buffer
	for f := range frames {
		out.Write(f.Data)
	}
	select {
	case err := <-errs:
		if err != nil {
			t.Fatalf("logs: %v", err)
		}
	default:
	}
	want := "repo=http://example.com/a/b.git commit=0123abc branch=main flavor=default\nthe payload\n"
	if out.String() != want {
		t.Fatalf("stdout = %q, want %q", out.String(), want)
	}
}

// waitAlloc waits until the dispatched job's allocation has ended.
func waitAlloc(t *testing.T, c *nomad.Client, jobID string, q *nomad.QueryOptions) *nomad.Allocation {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		stubs, _, err := c.Jobs().Allocations(jobID, true, q)
		if err != nil {
			t.Fatalf("allocations of %s: %v", jobID, err)
		}
		for _, s := range stubs {
			if s.ClientStatus == nomad.AllocClientStatusComplete || s.ClientStatus == nomad.AllocClientStatusFailed {
				a, _, err := c.Allocations().Info(s.ID, q)
				if err != nil {
					t.Fatalf("allocation %s: %v", s.ID, err)
				}
				return a
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("job %s did not finish within 60s", jobID)
	return nil
}

func TestConsulKV(t *testing.T) {
	c := env.Consul(t)
	kv := c.Client(t).KV()
	key := c.Prefix(t) + "albatros/aHR0cDovL2V4YW1wbGU="
	val := []byte(`{"hook":{"token":"s3cr3t"}}`)
	if _, err := kv.Put(&consul.KVPair{Key: key, Value: val}, nil); err != nil {
		t.Fatalf("put: %v", err)
	}
	got, _, err := kv.Get(key, nil)
	if err != nil || got == nil {
		t.Fatalf("get %s: %v %v", key, got, err)
	}
	if !bytes.Equal(got.Value, val) {
		t.Fatalf("value = %q, want %q", got.Value, val)
	}
	missing, _, err := kv.Get(key+"-missing", nil)
	if err != nil || missing != nil {
		t.Fatalf("missing key: %v %v", missing, err)
	}
}

// delivery is one webhook request as the listener received it.
type delivery struct {
	header http.Header
	body   []byte
}

func TestGiteaWebhookSignedDelivery(t *testing.T) {
	g := env.Gitea(t)
	owner := g.CreateUser(t, testenv.UniqueName("owner"))
	org := testenv.UniqueName("org")
	g.CreateOrg(t, owner, org)
	repo := g.CreateRepo(t, owner, org, "hooked")

	got := make(chan delivery, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- delivery{r.Header.Clone(), body}
	}))
	defer srv.Close()
	secret := "hook-secret-" + testenv.UniqueName("s")
	g.CreateWebhook(t, owner, repo, srv.URL+"/webhook/gitea", secret, "push")

	sha := g.Push(t, owner, repo, "main", "", map[string]testenv.File{
		".albatros": {Content: "#!/bin/sh\necho hi\n", Executable: true},
	}, "first commit")

	var d delivery
	select {
	case d = <-got:
	case <-time.After(30 * time.Second):
		t.Fatalf("no webhook delivery within 30s")
	}
	if ev := d.header.Get("X-Gitea-Event"); ev != "push" {
		t.Fatalf("X-Gitea-Event = %q, want push", ev)
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(d.body)
	want := hex.EncodeToString(mac.Sum(nil))
	if !hmac.Equal([]byte(d.header.Get("X-Gitea-Signature")), []byte(want)) {
		t.Fatalf("X-Gitea-Signature = %q, want %q", d.header.Get("X-Gitea-Signature"), want)
	}
	if !hmac.Equal([]byte(d.header.Get("X-Hub-Signature-256")), []byte("sha256="+want)) {
		t.Fatalf("X-Hub-Signature-256 = %q, want sha256=%s", d.header.Get("X-Hub-Signature-256"), want)
	}
	var payload struct {
		After      string `json:"after"`
		Ref        string `json:"ref"`
		Repository struct {
			CloneURL string `json:"clone_url"`
		} `json:"repository"`
	}
	if err := json.Unmarshal(d.body, &payload); err != nil {
		t.Fatalf("payload: %v", err)
	}
	if payload.After != sha || payload.Ref != "refs/heads/main" || payload.Repository.CloneURL != repo.CloneURL {
		t.Fatalf("payload after=%s ref=%s clone=%s, want %s refs/heads/main %s", payload.After, payload.Ref, payload.Repository.CloneURL, sha, repo.CloneURL)
	}
}

func TestGiteaCommitStatus(t *testing.T) {
	g := env.Gitea(t)
	owner := g.CreateUser(t, testenv.UniqueName("owner"))
	repo := g.CreateRepo(t, owner, "", "statuses")
	sha := g.Push(t, owner, repo, "main", "", map[string]testenv.File{"README": {Content: "x\n"}}, "init")

	c := g.Client(t, owner.Token)
	if _, _, err := c.CreateStatus(repo.Owner, repo.Name, sha, gitea.CreateStatusOption{
		State: gitea.StatusPending, TargetURL: "http://127.0.0.1:1/logs/x", Description: "queued", Context: "albatros/default",
	}); err != nil {
		t.Fatalf("create status: %v", err)
	}
	st := g.Statuses(t, repo, sha)
	if len(st) != 1 {
		t.Fatalf("got %d statuses, want 1", len(st))
	}
	s := st[0]
	if s.State != gitea.StatusPending || s.Context != "albatros/default" || s.TargetURL != "http://127.0.0.1:1/logs/x" || s.Description != "queued" {
		t.Fatalf("status = %+v", s)
	}
	if !strings.HasPrefix(repo.CloneURL, g.URL) {
		t.Fatalf("clone URL %s is not under %s", repo.CloneURL, g.URL)
	}
}
