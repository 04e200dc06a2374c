// Package e2e tests Albatros end to end: the albatros-bot binary, configured through its
// environment as a user configures it, against real Nomad, Consul and Gitea on loopback.
package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"code.gitea.io/sdk/gitea"
	consul "github.com/hashicorp/consul/api"

	"github.com/albatros-ci/albatros/testenv"
)

var env = testenv.New(testenv.Options{Nomad: true, Consul: true, Gitea: true})

func TestMain(m *testing.M) { os.Exit(env.Run(m)) }

var (
	botOnce sync.Once
	theBot  *testenv.Bot
	botBin  string
	botErr  error
)

// bot returns the package's albatros-bot, built and started on first use, stopped with the
// servers.
func bot(t *testing.T) *testenv.Bot {
	t.Helper()
	n, c, _ := env.Nomad(t), env.Consul(t), env.Gitea(t)
	botOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		dir, err := os.MkdirTemp("", "alb-e2e-")
		if err != nil {
			botErr = err
			return
		}
		env.AtStop(func() { os.RemoveAll(dir) })
		botBin, err = testenv.BuildBot(ctx, dir)
		if err != nil {
			botErr = err
			return
		}
		theBot, botErr = testenv.StartBot(ctx, botBin, append(append(n.Env(), c.Env()...),
			"ALBATROS_BUILDER_DRIVER=raw_exec",
			"ALBATROS_BUILDER_VARS=cpu=100,memory=128",
			"ALBATROS_LOG_LEVEL=debug",
			// The reconciler runs at start only: a pass in the middle of a test would build
			// the heads that a test expects to stay unbuilt.
			"ALBATROS_RECONCILE_INTERVAL=0",
		))
		if botErr == nil {
			env.AtStop(theBot.Stop)
		}
	})
	if botErr != nil {
		t.Fatalf("start albatros-bot: %v", botErr)
	}
	return theBot
}

// project is one test's repository: its owner, org, registry entry and webhook.
type project struct {
	t      *testing.T
	g      *testenv.Gitea
	owner  *testenv.User
	org    string
	repo   *testenv.Repo
	secret string // the webhook's HMAC secret
	token  string // the original /hook?token=
	proxy  *recorder
}

// entry is a registry entry, written as raw JSON in the original Albatros's format plus the
// optional fields under test.
type entry map[string]any

// newProject creates a user, an org and a repository on Gitea, registers the repository in
// Consul with e (hook and gitea fields are filled in), and installs a webhook that reaches the
// bot at path through a recording proxy. An empty path installs no webhook.
func newProject(t *testing.T, e entry, path string) *project {
	t.Helper()
	b := bot(t)
	b.LogOnFailure(t)
	g := env.Gitea(t)
	p := &project{t: t, g: g, secret: "whsec-" + testenv.UniqueName("s"), token: "tok-" + testenv.UniqueName("t")}
	p.owner = g.CreateUser(t, testenv.UniqueName("owner"))
	p.org = testenv.UniqueName("org")
	g.CreateOrg(t, p.owner, p.org)
	p.repo = g.CreateRepo(t, p.owner, p.org, "app")
	if e != nil {
		if e["hook"] == nil {
			e["hook"] = map[string]string{"token": p.token, "secret": p.secret}
		}
		if e["gitea"] == nil {
			e["gitea"] = map[string]string{"url": g.URL, "token": p.owner.Token}
		}
		p.register(e)
	}
	if path != "" {
		p.proxy = newRecorder(t, b.URL+path)
		g.CreateWebhook(t, p.owner, p.repo, p.proxy.URL(), p.secret)
	}
	return p
}

// register writes the repository's registry entry.
func (p *project) register(e entry) {
	p.t.Helper()
	raw, err := json.Marshal(e)
	if err != nil {
		p.t.Fatal(err)
	}
	key := "albatros/" + base64.StdEncoding.EncodeToString([]byte(p.repo.CloneURL))
	if _, err := env.Consul(p.t).Client(p.t).KV().Put(&consul.KVPair{Key: key, Value: raw}, nil); err != nil {
		p.t.Fatalf("register %s: %v", p.repo.CloneURL, err)
	}
}

// push commits files on branch as the owner and returns the commit.
func (p *project) push(branch string, files map[string]testenv.File) string {
	p.t.Helper()
	return p.g.Push(p.t, p.owner, p.repo, branch, "", files, "commit on "+branch)
}

// waitStatus waits until the newest status of sha in context has state, and returns it.
func (p *project) waitStatus(sha, context string, state gitea.StatusState) *gitea.Status {
	p.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	var last *gitea.Status
	for time.Now().Before(deadline) {
		for _, s := range p.g.Statuses(p.t, p.repo, sha) {
			if s.Context == context {
				last = s
				break
			}
		}
		if last != nil && last.State == state {
			return last
		}
		time.Sleep(150 * time.Millisecond)
	}
	p.t.Fatalf("status %s of %s never became %s; last: %+v", context, sha, state, last)
	return nil
}

// statuses lists the states of sha in context, oldest first.
func (p *project) statuses(sha, context string) []gitea.StatusState {
	p.t.Helper()
	var out []gitea.StatusState
	list := p.g.Statuses(p.t, p.repo, sha)
	for i := len(list) - 1; i >= 0; i-- {
		if list[i].Context == context {
			out = append(out, list[i].State)
		}
	}
	return out
}

// jobs lists the builds Nomad holds for the repository, with their meta.
func (p *project) jobs() map[string]map[string]string {
	p.t.Helper()
	return env.Nomad(p.t).Builds(p.t, p.repo.CloneURL)
}

// jobFromLink is the Nomad job a status links to (…/logs/<ns>/<job>).
func jobFromLink(t *testing.T, link string) (ns, job string) {
	t.Helper()
	_, rest, ok := strings.Cut(link, "/logs/")
	if !ok {
		t.Fatalf("status link %q is not a log page", link)
	}
	ns, job, ok = strings.Cut(rest, "/")
	if !ok {
		t.Fatalf("status link %q names no job", link)
	}
	return ns, job
}

// get fetches url and returns its status and body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

// delivery is one webhook request as Gitea sent it.
type delivery struct {
	Header http.Header
	Body   []byte
	Status int // what the bot answered
}

// recorder is a proxy between Gitea and the bot that keeps every delivery, so that a test
// can send one again exactly as Gitea sent it.
type recorder struct {
	t      *testing.T
	srv    *httptest.Server
	target string
	mu     sync.Mutex
	got    []delivery
}

func newRecorder(t *testing.T, target string) *recorder {
	r := &recorder{t: t, target: target}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		code, answer := r.forward(req.Header, body)
		r.mu.Lock()
		r.got = append(r.got, delivery{Header: req.Header.Clone(), Body: body, Status: code})
		r.mu.Unlock()
		w.WriteHeader(code)
		w.Write(answer)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *recorder) URL() string { return r.srv.URL }

func (r *recorder) forward(h http.Header, body []byte) (int, []byte) {
	req, _ := http.NewRequest(http.MethodPost, r.target, bytes.NewReader(body))
	for k, v := range h {
		if k != "Content-Length" {
			req.Header[k] = v
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return http.StatusBadGateway, []byte(err.Error())
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, answer
}

// wait returns the first delivery of event whose body contains substr.
func (r *recorder) wait(event, substr string) delivery {
	r.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		for _, d := range r.got {
			if d.Header.Get("X-Gitea-Event") == event && strings.Contains(string(d.Body), substr) {
				r.mu.Unlock()
				return d
			}
		}
		r.mu.Unlock()
		time.Sleep(100 * time.Millisecond)
	}
	r.t.Fatalf("no %s delivery containing %q within 60s", event, substr)
	return delivery{}
}

// send posts body with header to the bot at path and returns the answer's status and body.
func send(t *testing.T, path string, header http.Header, body []byte) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, bot(t).URL+path, bytes.NewReader(body))
	for k, v := range header {
		if k != "Content-Length" {
			req.Header[k] = v
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(answer)
}

// script is an .albatros that prints what the build sees.
func script(body string) map[string]testenv.File {
	return map[string]testenv.File{".albatros": {Content: "#!/bin/sh\n" + body, Executable: true}}
}

func describe(m map[string]map[string]string) string {
	var b strings.Builder
	for id, meta := range m {
		fmt.Fprintf(&b, "%s %v\n", id, meta)
	}
	return b.String()
}
