package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"
	"unicode/utf8"

	"github.com/albatros-ci/albatros/commands"
	"github.com/albatros-ci/albatros/forge"
	"github.com/albatros-ci/albatros/forge/forges"
	"github.com/albatros-ci/albatros/forge/forgetest"
	"github.com/albatros-ci/albatros/forge/gitea"
	"github.com/albatros-ci/albatros/orchestrator"
	"github.com/albatros-ci/albatros/pipeline"
	"github.com/albatros-ci/albatros/registry"
	"github.com/albatros-ci/albatros/registry/registrytest"
	"github.com/albatros-ci/albatros/webhook"
)

// capture is one delivery as stored in testdata.
type capture struct {
	Event    string          `json:"event"`
	Delivery string          `json:"delivery"`
	Body     json.RawMessage `json:"body"`
}

func load(t testing.TB, name string) capture {
	t.Helper()
	raw, err := fs.ReadFile(forgetest.Gitea, name)
	if err != nil {
		t.Fatal(err)
	}
	var c capture
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return c
}

// What the captures are about.
const (
	cloneURL = "http://127.0.0.1:33669/org-67e531e3/parsed.git"
	orgURL   = "http://127.0.0.1:33669/org-67e531e3"
	fullName = "org-67e531e3/parsed"

	repoSecret = "repo-webhook-secret"
	orgSecret  = "org-webhook-secret"
	hookToken  = "original-albatros-token"
)

// handled is one call of the pipeline, with the state of its context when it looked.
type handled struct {
	ev          forge.Event
	entry       *registry.Repo
	opts        pipeline.Options
	ctxErr      error
	deadline    time.Time
	hasDeadline bool
}

// fakeHandler is the pipeline. When release is set, Handle signals entered and waits for
// release (or the end of its context) before it looks at its context and records the call.
type fakeHandler struct {
	entered chan struct{}
	release chan struct{}

	mu          sync.Mutex
	handled     []handled
	unavailable []error // the causes Unavailable was told
}

func (f *fakeHandler) Unavailable(_ context.Context, _ *slog.Logger, _ forge.Event, _ *registry.Repo, _ pipeline.Options, cause error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.unavailable = append(f.unavailable, cause)
	return nil
}

func (f *fakeHandler) Handle(ctx context.Context, _ *slog.Logger, ev forge.Event, entry *registry.Repo, opts pipeline.Options) ([]orchestrator.Dispatched, error) {
	if f.entered != nil {
		f.entered <- struct{}{}
	}
	if f.release != nil {
		select {
		case <-f.release:
		case <-ctx.Done():
		}
	}
	h := handled{ev: ev, entry: entry, opts: opts, ctxErr: ctx.Err()}
	h.deadline, h.hasDeadline = ctx.Deadline()
	f.mu.Lock()
	f.handled = append(f.handled, h)
	f.mu.Unlock()
	return []orchestrator.Dispatched{{Namespace: "ci", JobID: "builder/dispatch-albatros-1-x"}}, nil
}

func (f *fakeHandler) calls() []handled {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.handled)
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// serve starts the intake's two endpoints.
func serve(t *testing.T, in *webhook.Intake) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("/webhook/gitea", in.Gitea())
	mux.Handle("/hook", in.Token())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// signer sets the signature headers of a delivery.
type signer func(h http.Header, body []byte)

func giteaSig(secret string) signer {
	return func(h http.Header, body []byte) { h.Set("X-Gitea-Signature", gitea.Sign(body, secret)) }
}

func hubSig(secret string) signer {
	return func(h http.Header, body []byte) { h.Set("X-Hub-Signature-256", "sha256="+gitea.Sign(body, secret)) }
}

// bothSigs signs as Gitea does: both headers.
func bothSigs(secret string) signer {
	return func(h http.Header, body []byte) { giteaSig(secret)(h, body); hubSig(secret)(h, body) }
}

func unsigned(http.Header, []byte) {}

// hostilePush is a captured push whose commit is an option for git.
func hostilePush(t *testing.T) []byte {
	return bytes.Replace(load(t, "push_branch.json").Body, []byte(`"after": "`), []byte(`"after": "--upload-pack=touch /tmp/x `), 1)
}

// mistypedPush is a captured push whose after is a number.
func mistypedPush(t *testing.T) []byte {
	b := load(t, "push_branch.json").Body
	i := bytes.Index(b, []byte(`"after": "`))
	j := bytes.IndexByte(b[i+len(`"after": "`):], '"')
	return slices.Concat(b[:i], []byte(`"after": 5`), b[i+len(`"after": "`)+j+1:])
}

// post sends a delivery as Gitea does: event and delivery headers, JSON body, signed by sign
// over body (tamper, if set, changes the body after signing).
func post(t *testing.T, url string, event, delivery string, body []byte, sign signer, tamper func([]byte) []byte) (*http.Response, string) {
	t.Helper()
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	if event != "" {
		h.Set("X-Gitea-Event", event)
	}
	h.Set("X-Gitea-Delivery", delivery)
	sign(h, body)
	if tamper != nil {
		body = tamper(bytes.Clone(body))
	}
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = h
	resp, err := http.DefaultClient.Do(req)
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

// edit changes a JSON body.
func edit(t testing.TB, body []byte, change func(map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	change(m)
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// pingBody is a ping delivery's body, shaped as Gitea sends it when a webhook is tested, with
// the repository and sender of a captured delivery (no ping was captured).
func pingBody(t *testing.T) []byte {
	t.Helper()
	var push map[string]any
	if err := json.Unmarshal(load(t, "push_branch.json").Body, &push); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(map[string]any{
		"zen":        "Keep it logically awesome.",
		"hook_id":    1,
		"hook":       map[string]any{"id": 1, "type": "gitea", "active": true, "events": []string{"push", "pull_request"}},
		"repository": push["repository"],
		"sender":     push["sender"],
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func entry(secret, token string) *registry.Repo {
	r := &registry.Repo{}
	r.Hook.Secret = secret
	r.Hook.Token = token
	return r
}

func withFlavors(r *registry.Repo, flavors ...string) *registry.Repo {
	r.Flavors = flavors
	return r
}

func org(secret string) *registry.Org {
	o := &registry.Org{}
	o.Hook.Secret = secret
	return o
}

// wantEvent is what Handle must receive.
type wantEvent struct {
	kind   forge.Kind
	commit string
	branch string
	tag    string
	sender string
	pr     int64 // the pull request's number; 0: not a pull request
	fork   bool
	flavor string
	// noSecrets: the pipeline is told to withhold the secrets.
	noSecrets bool
}

func TestIntake(t *testing.T) {
	const (
		mainSHA  = "33520fc545ee8d54b0ca4f9700611016abe1e613"
		forkSHA  = "f4a722966b023978241fdd0dd36dda6b1e10fde0"
		syncSHA  = "d24b9d1371c70db2419c2403115a8e357766461c"
		featSHA  = "435def68240ec18d96fc7f2af545f206b63fee9a"
		owner    = "owner-b03cca4d"
		outsider = "outsider-42180001"
	)
	registryDown := fmt.Errorf("%w: consul get albatros/…: connection refused", registry.ErrUnavailable)
	corrupt := errors.New("consul key albatros/… is not a valid entry: invalid character")

	tests := []struct {
		name    string
		capture string                    // file in testdata; "" for body
		body    func(t *testing.T) []byte // when capture is ""
		event   string                    // overrides the capture's event; "-" sends none
		path    string
		sign    signer
		tamper  func([]byte) []byte
		entry   *registry.Repo // nil: not registered
		repoErr error
		org     *registry.Org // nil: not registered
		orgErr  error
		// denyTokenSecrets sets the intake to refuse secrets to /hook deliveries that are
		// authenticated by the token alone.
		denyTokenSecrets bool

		wantCode int
		wantBody string     // substring of the answer
		want     *wantEvent // nil: Handle must not be called
		// wantLookup: the registry was asked for the repository; wantOrgLookup: and for its
		// organization.
		wantLookup    bool
		wantOrgLookup bool
	}{
		{
			name: "push signed as Gitea signs", capture: "push_branch.json", path: "/webhook/gitea",
			sign: bothSigs(repoSecret), entry: entry(repoSecret, ""),
			wantCode: 202, wantBody: "accepted: push of " + fullName + " at " + mainSHA, wantLookup: true,
			want: &wantEvent{kind: forge.KindPush, commit: mainSHA, branch: "main", sender: owner},
		},
		{
			// A captured delivery replayed with a flavor of the attacker's choosing.
			name: "flavor in the URL of a signed endpoint", capture: "push_branch.json", path: "/webhook/gitea?flavor=nix",
			sign: bothSigs(repoSecret), entry: entry(repoSecret, ""),
			wantCode: 400, wantBody: "flavors come from the repository's configuration", wantLookup: true,
		},
		{
			name: "empty flavor in the URL of a signed endpoint", capture: "push_branch.json", path: "/webhook/gitea?flavor=",
			sign: bothSigs(repoSecret), entry: entry(repoSecret, ""), wantCode: 400, wantLookup: true,
		},
		{
			name: "push with X-Gitea-Signature only and no flavor", capture: "push_branch.json", path: "/webhook/gitea",
			sign: giteaSig(repoSecret), entry: entry(repoSecret, ""),
			wantCode: 202, wantBody: "accepted", wantLookup: true,
			want: &wantEvent{kind: forge.KindPush, commit: mainSHA, branch: "main", sender: owner},
		},
		{
			name: "push with X-Hub-Signature-256 only", capture: "push_branch.json", path: "/webhook/gitea?unrelated=1",
			sign: hubSig(repoSecret), entry: entry(repoSecret, ""),
			wantCode: 202, wantBody: "accepted", wantLookup: true,
			want: &wantEvent{kind: forge.KindPush, commit: mainSHA, branch: "main", sender: owner},
		},
		{
			name: "tag", capture: "push_tag.json", path: "/webhook/gitea",
			sign: bothSigs(repoSecret), entry: entry(repoSecret, ""),
			wantCode: 202, wantBody: "accepted: tag", wantLookup: true,
			want: &wantEvent{kind: forge.KindTag, commit: mainSHA, tag: "v1.0.0", sender: owner},
		},
		{
			name: "pull request from a fork", capture: "pr_opened_fork.json", path: "/webhook/gitea",
			sign: bothSigs(repoSecret), entry: entry(repoSecret, ""),
			wantCode: 202, wantBody: "accepted: pull_request", wantLookup: true,
			want: &wantEvent{kind: forge.KindPullRequest, commit: forkSHA, branch: "patch", sender: outsider, pr: 1, fork: true},
		},
		{
			name: "pull request synchronized", capture: "pr_synchronized.json", path: "/webhook/gitea",
			sign: bothSigs(repoSecret), entry: entry(repoSecret, ""),
			wantCode: 202, wantBody: "accepted", wantLookup: true,
			want: &wantEvent{kind: forge.KindPullRequest, commit: syncSHA, branch: "patch", sender: outsider, pr: 1, fork: true},
		},
		{
			name: "pull request from the same repository", capture: "pr_same_repo.json", path: "/webhook/gitea",
			sign: bothSigs(repoSecret), entry: entry(repoSecret, ""),
			wantCode: 202, wantBody: "accepted", wantLookup: true,
			want: &wantEvent{kind: forge.KindPullRequest, commit: featSHA, branch: "feature", sender: owner, pr: 2},
		},

		// Signatures.
		{
			name: "wrong secret", capture: "push_branch.json", path: "/webhook/gitea",
			sign: bothSigs("not-the-secret"), entry: entry(repoSecret, ""),
			wantCode: 403, wantLookup: true,
		},
		{
			name: "one of two signatures wrong", capture: "push_branch.json", path: "/webhook/gitea",
			sign:  func(h http.Header, b []byte) { giteaSig(repoSecret)(h, b); hubSig("not-the-secret")(h, b) },
			entry: entry(repoSecret, ""), wantCode: 403, wantLookup: true,
		},
		{
			name: "signature not hex", capture: "push_branch.json", path: "/webhook/gitea",
			sign:  func(h http.Header, _ []byte) { h.Set("X-Gitea-Signature", "zz") },
			entry: entry(repoSecret, ""), wantCode: 403, wantLookup: true,
		},
		{
			name: "no signature", capture: "push_branch.json", path: "/webhook/gitea",
			sign: unsigned, entry: entry(repoSecret, ""),
			wantCode: 401, wantLookup: true,
		},
		{
			name: "body altered after signing", capture: "push_branch.json", path: "/webhook/gitea",
			sign: bothSigs(repoSecret), entry: entry(repoSecret, ""),
			tamper: func(b []byte) []byte {
				return bytes.Replace(b, []byte("refs/heads/main"), []byte("refs/heads/evil"), 1)
			},
			wantCode: 403, wantLookup: true,
		},
		{
			name: "ignored event with a wrong signature is refused, not ignored", capture: "create_branch.json", path: "/webhook/gitea",
			sign: bothSigs("not-the-secret"), entry: entry(repoSecret, ""),
			wantCode: 403, wantLookup: true,
		},
		{
			// Parsed before it is verified (once), but the parser's verdict waits for the
			// signature: an unverified caller learns nothing of it.
			name: "malformed event with a wrong signature is refused, not judged", body: hostilePush, event: "push", path: "/webhook/gitea",
			sign: bothSigs("not-the-secret"), entry: entry(repoSecret, ""),
			wantCode: 403, wantLookup: true,
		},
		{
			// A field of another type fails the event's decode, not the repository's.
			name: "undecodable event with a wrong signature is refused, not judged", body: mistypedPush, event: "push", path: "/webhook/gitea",
			sign: bothSigs("not-the-secret"), entry: entry(repoSecret, ""),
			wantCode: 403, wantLookup: true,
		},
		{
			name: "undecodable event with the right signature is a 400", body: mistypedPush, event: "push", path: "/webhook/gitea",
			sign: bothSigs(repoSecret), entry: entry(repoSecret, ""),
			wantCode: 400, wantLookup: true,
		},
		{
			name: "malformed event with the right signature is a 400", body: hostilePush, event: "push", path: "/webhook/gitea",
			sign: bothSigs(repoSecret), entry: entry(repoSecret, ""),
			wantCode: 400, wantLookup: true,
		},

		// The organization's secret.
		{
			name: "entry without secret falls back to the organization's", capture: "push_branch.json", path: "/webhook/gitea",
			sign: bothSigs(orgSecret), entry: entry("", hookToken), org: org(orgSecret),
			wantCode: 202, wantBody: "accepted", wantLookup: true, wantOrgLookup: true,
			want: &wantEvent{kind: forge.KindPush, commit: mainSHA, branch: "main", sender: owner},
		},
		{
			name: "the repository's secret wins over the organization's", capture: "push_branch.json", path: "/webhook/gitea",
			sign: bothSigs(orgSecret), entry: entry(repoSecret, ""), org: org(orgSecret),
			wantCode: 403, wantLookup: true,
		},
		{
			name: "neither repository nor organization secret", capture: "push_branch.json", path: "/webhook/gitea",
			sign: bothSigs(""), entry: entry("", hookToken),
			wantCode: 403, wantLookup: true, wantOrgLookup: true,
		},
		{
			name: "organization entry without secret", capture: "push_branch.json", path: "/webhook/gitea",
			sign: bothSigs(""), entry: entry("", ""), org: org(""),
			wantCode: 403, wantLookup: true, wantOrgLookup: true,
		},
		{
			name: "organization lookup fails", capture: "push_branch.json", path: "/webhook/gitea",
			sign: bothSigs(orgSecret), entry: entry("", ""), orgErr: registryDown,
			wantCode: 503, wantLookup: true, wantOrgLookup: true,
		},

		// The registry.
		{
			// Answered as a bad signature is, so that probing does not list the registry.
			name: "unknown repository", capture: "push_branch.json", path: "/webhook/gitea",
			sign: bothSigs(repoSecret), wantCode: 403, wantBody: "bad signature or token", wantLookup: true,
		},
		{
			name: "registry down", capture: "push_branch.json", path: "/webhook/gitea",
			sign: bothSigs(repoSecret), repoErr: registryDown, wantCode: 503, wantBody: "registry unavailable", wantLookup: true,
		},
		{
			name: "entry that is not valid JSON", capture: "push_branch.json", path: "/webhook/gitea",
			sign: bothSigs(repoSecret), repoErr: corrupt, wantCode: 500, wantBody: "internal error", wantLookup: true,
		},

		// Payloads.
		{
			name: "malformed JSON", event: "push", path: "/webhook/gitea",
			body: func(*testing.T) []byte { return []byte(`{"repository":{"clone_url":`) },
			sign: bothSigs(repoSecret), entry: entry(repoSecret, ""), wantCode: 400,
		},
		{
			name: "JSON without a repository", event: "push", path: "/webhook/gitea",
			body: func(*testing.T) []byte { return []byte(`{"ref":"refs/heads/main"}`) },
			sign: bothSigs(repoSecret), entry: entry(repoSecret, ""), wantCode: 400,
		},
		{
			name: "signed push without after", event: "push", path: "/webhook/gitea",
			body: func(t *testing.T) []byte {
				return edit(t, load(t, "push_branch.json").Body, func(m map[string]any) { delete(m, "after") })
			},
			sign: bothSigs(repoSecret), entry: entry(repoSecret, ""), wantCode: 400, wantLookup: true,
		},
		{
			name: "signed delivery without an event header", capture: "push_branch.json", event: "-", path: "/webhook/gitea",
			sign: bothSigs(repoSecret), entry: entry(repoSecret, ""), wantCode: 400, wantLookup: true,
		},

		// Events acknowledged and not acted on.
		{
			name: "branch created", capture: "create_branch.json", path: "/webhook/gitea",
			sign: bothSigs(repoSecret), entry: entry(repoSecret, ""), wantCode: 200, wantBody: "ignored", wantLookup: true,
		},
		{
			name: "branch deleted", capture: "delete_branch.json", path: "/webhook/gitea",
			sign: bothSigs(repoSecret), entry: entry(repoSecret, ""), wantCode: 200, wantBody: "ignored", wantLookup: true,
		},
		{
			// Its builds are stopped: handed on, with no commit.
			name: "pull request closed", capture: "pr_closed.json", path: "/webhook/gitea",
			sign: bothSigs(repoSecret), entry: entry(repoSecret, ""), wantCode: 202, wantBody: "accepted: pull_request_closed of " + fullName + " #1", wantLookup: true,
			want: &wantEvent{kind: forge.KindPullRequestClosed, sender: owner, pr: 1, fork: true},
		},
		{
			name: "push deleting a branch", event: "push", path: "/webhook/gitea",
			body: func(t *testing.T) []byte {
				return edit(t, load(t, "push_branch.json").Body, func(m map[string]any) { m["after"] = strings.Repeat("0", 40) })
			},
			sign: bothSigs(repoSecret), entry: entry(repoSecret, ""), wantCode: 200, wantBody: "ignored", wantLookup: true,
		},
		{
			name: "ping", event: "ping", path: "/webhook/gitea", body: pingBody,
			sign: bothSigs(repoSecret), entry: entry(repoSecret, ""), wantCode: 200, wantBody: "pong", wantLookup: true,
		},
		{
			name: "ping with a wrong signature", event: "ping", path: "/webhook/gitea", body: pingBody,
			sign: bothSigs("not-the-secret"), entry: entry(repoSecret, ""), wantCode: 403, wantLookup: true,
		},

		// The original Albatros's URL token.
		{
			name: "token", capture: "push_branch.json", path: "/hook?token=" + hookToken + "&flavor=nix",
			sign: unsigned, entry: entry("", hookToken),
			wantCode: 202, wantBody: "accepted", wantLookup: true,
			want: &wantEvent{kind: forge.KindPush, commit: mainSHA, branch: "main", sender: owner, flavor: "nix"},
		},
		{
			name: "token without a flavor", capture: "push_branch.json", path: "/hook?token=" + hookToken,
			sign: unsigned, entry: entry("", hookToken),
			wantCode: 202, wantBody: "accepted", wantLookup: true,
			want: &wantEvent{kind: forge.KindPush, commit: mainSHA, branch: "main", sender: owner},
		},
		{
			name: "token, set to refuse secrets to token-only deliveries", capture: "push_branch.json", path: "/hook?token=" + hookToken,
			sign: unsigned, entry: entry("", hookToken), denyTokenSecrets: true,
			wantCode: 202, wantBody: "accepted", wantLookup: true,
			want: &wantEvent{kind: forge.KindPush, commit: mainSHA, branch: "main", sender: owner, noSecrets: true},
		},
		{
			name: "token and signature, set to refuse secrets to token-only deliveries", capture: "push_branch.json", path: "/hook?token=" + hookToken,
			sign: bothSigs(repoSecret), entry: entry(repoSecret, hookToken), denyTokenSecrets: true,
			wantCode: 202, wantBody: "accepted", wantLookup: true,
			want: &wantEvent{kind: forge.KindPush, commit: mainSHA, branch: "main", sender: owner},
		},
		{
			// Who wrote it is the body's word: a forged maintainer's /approve.
			name: "comment authenticated by the token alone", event: "issue_comment", path: "/hook?token=" + hookToken,
			body: func(t *testing.T) []byte {
				return edit(t, load(t, "pr_comment_created.json").Body, func(m map[string]any) {
					r := m["repository"].(map[string]any)
					r["clone_url"], r["full_name"] = cloneURL, fullName
				})
			},
			sign: unsigned, entry: entry("", hookToken), wantCode: 200, wantBody: "ignored: comment in a delivery authenticated by the token alone", wantLookup: true,
		},
		{
			name: "closed pull request authenticated by the token alone", capture: "pr_closed.json", path: "/hook?token=" + hookToken,
			sign: unsigned, entry: entry("", hookToken), wantCode: 200, wantBody: "give the webhook a secret", wantLookup: true,
		},
		{
			name: "closed pull request with token and signature", capture: "pr_closed.json", path: "/hook?token=" + hookToken,
			sign: bothSigs(repoSecret), entry: entry(repoSecret, hookToken), wantCode: 202, wantBody: "accepted", wantLookup: true,
			want: &wantEvent{kind: forge.KindPullRequestClosed, sender: owner, pr: 1, fork: true},
		},
		{
			name: "token of an entry with a secret, unsigned", capture: "push_branch.json", path: "/hook?token=" + hookToken,
			sign: unsigned, entry: entry(repoSecret, hookToken), wantCode: 401, wantLookup: true,
		},
		{
			name: "token of an entry with a secret, wrongly signed", capture: "push_branch.json", path: "/hook?token=" + hookToken,
			sign: bothSigs("not-the-secret"), entry: entry(repoSecret, hookToken), wantCode: 403, wantLookup: true,
		},
		{
			name: "token with a flavor the entry has", capture: "push_branch.json", path: "/hook?token=" + hookToken + "&flavor=slow",
			sign: unsigned, entry: withFlavors(entry("", hookToken), "fast", "slow"),
			wantCode: 202, wantBody: "accepted", wantLookup: true,
			want: &wantEvent{kind: forge.KindPush, commit: mainSHA, branch: "main", sender: owner, flavor: "slow"},
		},
		{
			name: "token with a flavor the entry lacks", capture: "push_branch.json", path: "/hook?token=" + hookToken + "&flavor=nightly",
			sign: unsigned, entry: withFlavors(entry("", hookToken), "fast", "slow"),
			wantCode: 400, wantBody: "not one of the repository's flavors", wantLookup: true,
		},
		{
			name: "token with a flavor that is no flavor name", capture: "push_branch.json", path: "/hook?token=" + hookToken + "&flavor=..%2Fx",
			sign: unsigned, entry: entry("", hookToken), wantCode: 400, wantBody: "is not a flavor name", wantLookup: true,
		},
		{
			name: "token with a flavor holding a newline", capture: "push_branch.json", path: "/hook?token=" + hookToken + "&flavor=a%0Ab",
			sign: unsigned, entry: entry("", hookToken), wantCode: 400, wantLookup: true,
		},
		{
			name: "token with an empty flavor", capture: "push_branch.json", path: "/hook?token=" + hookToken + "&flavor=",
			sign: unsigned, entry: entry("", hookToken), wantCode: 400, wantLookup: true,
		},
		{
			name: "wrong token", capture: "push_branch.json", path: "/hook?token=guess&flavor=nix",
			sign: unsigned, entry: entry("", hookToken), wantCode: 403, wantLookup: true,
		},
		{
			name: "token prefix", capture: "push_branch.json", path: "/hook?token=" + hookToken[:5],
			sign: unsigned, entry: entry("", hookToken), wantCode: 403, wantLookup: true,
		},
		{
			name: "no token", capture: "push_branch.json", path: "/hook?flavor=nix",
			sign: unsigned, entry: entry("", hookToken), wantCode: 401, wantLookup: true,
		},
		{
			name: "a signature is not a token", capture: "push_branch.json", path: "/hook",
			sign: bothSigs(repoSecret), entry: entry(repoSecret, hookToken), wantCode: 401, wantLookup: true,
		},
		{
			name: "entry without hook token", capture: "push_branch.json", path: "/hook?token=" + hookToken,
			sign: unsigned, entry: entry(repoSecret, ""), wantCode: 403, wantLookup: true,
		},
		{
			name: "token of an unknown repository", capture: "push_branch.json", path: "/hook?token=" + hookToken,
			sign: unsigned, wantCode: 403, wantBody: "bad signature or token", wantLookup: true,
		},
		{
			name: "token with the registry down", capture: "push_branch.json", path: "/hook?token=" + hookToken,
			sign: unsigned, repoErr: registryDown, wantCode: 503, wantLookup: true,
		},
		{
			name: "token on an ignored event", capture: "create_branch.json", path: "/hook?token=" + hookToken,
			sign: unsigned, entry: entry("", hookToken), wantCode: 200, wantBody: "ignored", wantLookup: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			repos := &registrytest.Fake{RepoErr: tc.repoErr, OrgErr: tc.orgErr, Repos: map[string]*registry.Repo{}, Orgs: map[string]*registry.Org{}}
			if tc.entry != nil {
				repos.Repos[cloneURL] = tc.entry
			}
			if tc.org != nil {
				repos.Orgs[orgURL] = tc.org
			}
			h := &fakeHandler{}
			in := webhook.New(repos, h, quiet(), webhook.Options{TokenSecrets: !tc.denyTokenSecrets})
			srv := serve(t, in)

			event, delivery := tc.event, "test-delivery"
			var body []byte
			if tc.capture != "" {
				c := load(t, tc.capture)
				body, delivery = c.Body, c.Delivery
				if event == "" {
					event = c.Event
				}
			} else {
				body = tc.body(t)
			}
			if event == "-" {
				event = ""
			}
			resp, got := post(t, srv.URL+tc.path, event, delivery, body, tc.sign, tc.tamper)
			in.Wait()

			if resp.StatusCode != tc.wantCode {
				t.Errorf("status %d (%q), want %d", resp.StatusCode, got, tc.wantCode)
			}
			if !strings.Contains(got, tc.wantBody) {
				t.Errorf("answer %q, want it to contain %q", got, tc.wantBody)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
				t.Errorf("Content-Type %q, want text/plain", ct)
			}
			if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("X-Content-Type-Options %q, want nosniff", resp.Header.Get("X-Content-Type-Options"))
			}

			repoCalls, orgCalls := repos.Calls()
			// Once to authenticate, and once more when a handled delivery's turn comes (a
			// waiting delivery holds no entry).
			if tc.wantLookup && (len(repoCalls) == 0 || len(repoCalls) > 2 || slices.ContainsFunc(repoCalls, func(u string) bool { return u != cloneURL })) {
				t.Errorf("registry asked for repositories %q, want [%s] once or twice", repoCalls, cloneURL)
			}
			if !tc.wantLookup && len(repoCalls) > 0 {
				t.Errorf("registry asked for repositories %q, want no lookup", repoCalls)
			}
			// The organization's secret: to verify, and its digest kept with the delivery
			// and compared once more in its turn (a secret rotated meanwhile drops it).
			if tc.wantOrgLookup && (len(orgCalls) == 0 || len(orgCalls) > 3 || slices.ContainsFunc(orgCalls, func(u string) bool { return u != orgURL })) {
				t.Errorf("registry asked for organizations %q, want [%s] one to three times", orgCalls, orgURL)
			}
			if !tc.wantOrgLookup && len(orgCalls) > 0 {
				t.Errorf("registry asked for organizations %q, want no lookup", orgCalls)
			}

			calls := h.calls()
			if tc.want == nil {
				if len(calls) > 0 {
					t.Errorf("handed on %d events (first %+v), want none", len(calls), calls[0].ev)
				}
				return
			}
			if len(calls) != 1 {
				t.Fatalf("handed on %d events, want exactly 1", len(calls))
			}
			checkHandled(t, calls[0], *tc.want, tc.entry, delivery)
		})
	}
}

func checkHandled(t *testing.T, got handled, want wantEvent, entry *registry.Repo, delivery string) {
	t.Helper()
	ev := got.ev
	if ev.Kind != want.kind || ev.Commit != want.commit || ev.Branch != want.branch || ev.Tag != want.tag || ev.Sender != want.sender {
		t.Errorf("event %s commit %s branch %q tag %q sender %q; want %s commit %s branch %q tag %q sender %q",
			ev.Kind, ev.Commit, ev.Branch, ev.Tag, ev.Sender, want.kind, want.commit, want.branch, want.tag, want.sender)
	}
	if ev.Repo.CloneURL != cloneURL || ev.Repo.FullName != fullName {
		t.Errorf("event repository %+v, want %s (%s)", ev.Repo, fullName, cloneURL)
	}
	if ev.Delivery != delivery {
		t.Errorf("event delivery %q, want %q", ev.Delivery, delivery)
	}
	switch {
	case want.pr == 0 && ev.PullRequest != nil:
		t.Errorf("pull request %+v on a %s", ev.PullRequest, ev.Kind)
	case want.pr != 0 && ev.PullRequest == nil:
		t.Errorf("no pull request on a %s", ev.Kind)
	case want.pr != 0:
		if ev.PullRequest.Number != want.pr || ev.PullRequest.Fork != want.fork {
			t.Errorf("pull request %+v, want number %d fork %v", ev.PullRequest, want.pr, want.fork)
		}
	}
	if got.opts.Flavor != want.flavor {
		t.Errorf("flavor %q, want %q", got.opts.Flavor, want.flavor)
	}
	if got.opts.NoSecrets != want.noSecrets {
		t.Errorf("NoSecrets %v, want %v", got.opts.NoSecrets, want.noSecrets)
	}
	if got.entry != entry {
		t.Errorf("handed on entry %+v, want the registry's %+v", got.entry, entry)
	}
}

// padded is a captured push, signed-ready, padded with trailing whitespace (still valid JSON)
// to exactly n bytes.
func padded(t *testing.T, n int) []byte {
	t.Helper()
	body := load(t, "push_branch.json").Body
	if len(body) > n {
		t.Fatalf("capture is %d bytes, more than %d", len(body), n)
	}
	out := make([]byte, n)
	copy(out, body)
	for i := len(body); i < n; i++ {
		out[i] = ' '
	}
	return out
}

func TestIntakeBodyLimit(t *testing.T) {
	for _, tc := range []struct {
		name     string
		size     int
		wantCode int
		handled  int
	}{
		{"exactly MaxGiteaBody", forges.MaxGiteaBody, http.StatusAccepted, 1},
		{"one byte over MaxGiteaBody", forges.MaxGiteaBody + 1, http.StatusRequestEntityTooLarge, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			repos := &registrytest.Fake{Repos: map[string]*registry.Repo{cloneURL: entry(repoSecret, "")}}
			h := &fakeHandler{}
			in := webhook.New(repos, h, quiet(), webhook.Options{})
			srv := serve(t, in)

			body := padded(t, tc.size)
			resp, got := post(t, srv.URL+"/webhook/gitea", "push", "big", body, bothSigs(repoSecret), nil)
			in.Wait()
			if resp.StatusCode != tc.wantCode {
				t.Errorf("%d-byte body: status %d (%q), want %d", len(body), resp.StatusCode, got, tc.wantCode)
			}
			if n := len(h.calls()); n != tc.handled {
				t.Errorf("handed on %d events, want %d", n, tc.handled)
			}
			if repoCalls, _ := repos.Calls(); tc.handled == 0 && len(repoCalls) > 0 {
				t.Errorf("registry asked for %q before the body was bounded", repoCalls)
			}
		})
	}
}

// The pipeline's work outlives the request: its context is not the request's, but it is
// bounded.
func TestIntakeHandlerContextOutlivesRequest(t *testing.T) {
	repos := &registrytest.Fake{Repos: map[string]*registry.Repo{cloneURL: entry(repoSecret, "")}}
	h := &fakeHandler{entered: make(chan struct{}, 1), release: make(chan struct{})}
	in := webhook.New(repos, h, quiet(), webhook.Options{})
	reqCtx := make(chan context.Context, 1)
	gitea := in.Gitea()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reqCtx <- r.Context()
		gitea.ServeHTTP(w, r)
	}))
	defer srv.Close()

	c := load(t, "push_branch.json")
	start := time.Now()
	resp, got := post(t, srv.URL, c.Event, c.Delivery, c.Body, bothSigs(repoSecret), nil)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("status %d (%q), want 202", resp.StatusCode, got)
	}
	// The request is over once net/http has cancelled its context.
	select {
	case <-(<-reqCtx).Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the request's context was never cancelled")
	}
	<-h.entered
	close(h.release)
	in.Wait()

	calls := h.calls()
	if len(calls) != 1 {
		t.Fatalf("handed on %d events, want 1", len(calls))
	}
	if calls[0].ctxErr != nil {
		t.Errorf("the handler's context ended with the request: %v", calls[0].ctxErr)
	}
	if !calls[0].hasDeadline {
		t.Errorf("the handler's context has no deadline: its work is unbounded")
	} else if d := calls[0].deadline.Sub(start); d <= 0 || d > 10*time.Minute {
		t.Errorf("the handler's deadline is %v after the request, want a bounded, positive time", d)
	}
}

// Nomad unreachable when a delivery arrives: 503, nothing handed on to build, and the
// handler told, to say so in the commit's statuses.
func TestIntakeNomadUnreachable(t *testing.T) {
	repos := &registrytest.Fake{Repos: map[string]*registry.Repo{cloneURL: entry(repoSecret, "")}}
	h := &fakeHandler{}
	down := errors.New("dial tcp 127.0.0.1:4646: connect: connection refused")
	in := webhook.New(repos, h, quiet(), webhook.Options{Nomad: func(context.Context) error { return down }})
	srv := httptest.NewServer(in.Gitea())
	defer srv.Close()
	c := load(t, "push_branch.json")
	resp, got := post(t, srv.URL, c.Event, c.Delivery, c.Body, bothSigs(repoSecret), nil)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(got, "nomad unreachable") {
		t.Fatalf("status %d (%q), want 503 naming Nomad", resp.StatusCode, got)
	}
	in.Wait()
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.handled) != 0 || len(h.unavailable) != 1 || !errors.Is(h.unavailable[0], down) {
		t.Errorf("handled %d, told unavailable %v; want none handled, told once of %v", len(h.handled), h.unavailable, down)
	}
	// A bad signature is still refused as such, before Nomad is asked.
	resp, _ = post(t, srv.URL, c.Event, c.Delivery, c.Body, bothSigs("wrong"), nil)
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("bad signature while Nomad is down: %d, want 403", resp.StatusCode)
	}
}

// During a Nomad outage the deliveries that arrive together share one check, and its
// answer serves the next ones for a second: they do not each wait for a check of their own.
func TestIntakeNomadCheckIsShared(t *testing.T) {
	repos := &registrytest.Fake{Repos: map[string]*registry.Repo{cloneURL: entry(repoSecret, "")}}
	h := &fakeHandler{}
	down := errors.New("dial tcp 127.0.0.1:4646: i/o timeout")
	var checks atomic.Int32
	in := webhook.New(repos, h, quiet(), webhook.Options{Nomad: func(ctx context.Context) error {
		checks.Add(1)
		time.Sleep(300 * time.Millisecond) // a Nomad that is slow to fail
		return down
	}})
	srv := serve(t, in)
	c := load(t, "push_branch.json")
	const n = 40
	codes := make(chan int, n)
	for range n {
		go func() {
			resp, _ := post(t, srv.URL+"/webhook/gitea", c.Event, c.Delivery, c.Body, bothSigs(repoSecret), nil)
			codes <- resp.StatusCode
		}()
	}
	for range n {
		if code := <-codes; code != http.StatusServiceUnavailable {
			t.Errorf("delivery while Nomad is down: %d, want 503", code)
		}
	}
	if got := checks.Load(); got != 1 {
		t.Errorf("%d deliveries together asked Nomad %d times, want once", n, got)
	}
	// The answer is kept for a second, then asked again.
	time.Sleep(1100 * time.Millisecond)
	if resp, _ := post(t, srv.URL+"/webhook/gitea", c.Event, c.Delivery, c.Body, bothSigs(repoSecret), nil); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("delivery a second later: %d, want 503", resp.StatusCode)
	}
	if got := checks.Load(); got != 2 {
		t.Errorf("a delivery a second later: %d checks in all, want 2", got)
	}
	in.Wait()
}

func TestIntakeWaitWaitsForTheHandler(t *testing.T) {
	repos := &registrytest.Fake{Repos: map[string]*registry.Repo{cloneURL: entry(repoSecret, "")}}
	h := &fakeHandler{entered: make(chan struct{}, 1), release: make(chan struct{})}
	in := webhook.New(repos, h, quiet(), webhook.Options{})
	srv := serve(t, in)

	c := load(t, "push_branch.json")
	resp, got := post(t, srv.URL+"/webhook/gitea", c.Event, c.Delivery, c.Body, bothSigs(repoSecret), nil)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("status %d (%q), want 202", resp.StatusCode, got)
	}
	<-h.entered

	waited := make(chan struct{})
	go func() {
		in.Wait()
		close(waited)
	}()
	select {
	case <-waited:
		t.Fatal("Wait returned while the handler was still running")
	case <-time.After(100 * time.Millisecond):
	}
	close(h.release)
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		t.Fatal("Wait did not return after the handler ended")
	}
	if n := len(h.calls()); n != 1 {
		t.Errorf("Wait returned with %d handled events, want 1", n)
	}
}

// Bodies being read before authentication share one memory budget, charged as the bytes
// arrive: past it, a delivery is answered 503, and the budget comes back when a read ends,
// however it ends. A client that announces much and sends little holds little.
func TestIntakeReadBudget(t *testing.T) {
	const budget = 1<<20 + 1<<18 // 1.25 MiB
	repos := &registrytest.Fake{Repos: map[string]*registry.Repo{cloneURL: entry(repoSecret, "")}}
	h := &fakeHandler{}
	in := webhook.New(repos, h, quiet(), webhook.Options{ReadBudget: budget})
	srv := serve(t, in)
	c := load(t, "push_branch.json")
	big := padded(t, 400_000)

	// A client that announces 8 MB and sends a few bytes holds a first buffer only.
	liar, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer liar.Close()
	fmt.Fprintf(liar, "POST /webhook/gitea HTTP/1.1\r\nHost: x\r\nX-Gitea-Event: push\r\nContent-Length: 8000000\r\n\r\n{\"repo")
	time.Sleep(100 * time.Millisecond)
	if resp, got := post(t, srv.URL+"/webhook/gitea", "push", "big", big, bothSigs(repoSecret), nil); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("a 400 kB delivery beside a client that announced 8 MB: %d %q, want 202", resp.StatusCode, got)
	}

	// A client that sent 700 kB of 800 kB holds 1 MiB (its buffer, doubled as it grew).
	slow, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(slow, "POST /webhook/gitea HTTP/1.1\r\nHost: x\r\nX-Gitea-Event: push\r\nContent-Type: application/json\r\nContent-Length: 800000\r\n\r\n")
	if _, err := slow.Write(bytes.Repeat([]byte(" "), 700_000)); err != nil {
		t.Fatal(err)
	}
	// Time for the bot to read them (loopback: milliseconds), before another delivery
	// competes for the budget.
	time.Sleep(300 * time.Millisecond)
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, got := post(t, srv.URL+"/webhook/gitea", "push", "big", big, bothSigs(repoSecret), nil)
		if resp.StatusCode == http.StatusServiceUnavailable && strings.Contains(got, "busy") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a 400 kB delivery beside 700 kB held: %d %q, want 503 busy", resp.StatusCode, got)
		}
		time.Sleep(20 * time.Millisecond) // the slow client's bytes may not be read yet
	}
	// A small delivery still fits.
	if resp, got := post(t, srv.URL+"/webhook/gitea", c.Event, c.Delivery, c.Body, bothSigs(repoSecret), nil); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("a small delivery beside the held read: %d %q, want 202", resp.StatusCode, got)
	}
	// The slow client gives up: its budget comes back.
	slow.Close()
	for {
		resp, got := post(t, srv.URL+"/webhook/gitea", "push", "big", big, bothSigs(repoSecret), nil)
		if resp.StatusCode == http.StatusAccepted {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the slow client left: %d %q, want 202", resp.StatusCode, got)
		}
		time.Sleep(20 * time.Millisecond)
	}
	liar.Close()
	in.Wait()
	if n := len(h.calls()); n != 3 {
		t.Errorf("handed on %d events, want the 3 accepted", n)
	}
	// A body announced larger than the endpoint reads is refused before it is read.
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/webhook/gitea", io.LimitReader(neverEnding{}, forges.MaxGiteaBody+1))
	req.ContentLength = forges.MaxGiteaBody + 1
	req.Header.Set("X-Gitea-Event", "push")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("announced %d bytes: %d, want 413", req.ContentLength, resp.StatusCode)
	}
}

type neverEnding struct{}

func (neverEnding) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	return len(p), nil
}

// A body that breaks off is the client's fault (400), not the registry's (503), and nothing
// is looked up or handed on.
func TestIntakeBodyReadError(t *testing.T) {
	repos := &registrytest.Fake{Repos: map[string]*registry.Repo{cloneURL: entry(repoSecret, "")}}
	h := &fakeHandler{}
	in := webhook.New(repos, h, quiet(), webhook.Options{})
	body := io.MultiReader(strings.NewReader(`{"repository":{"clone_url":"`), iotest.ErrReader(errors.New("connection reset by peer")))
	req := httptest.NewRequest(http.MethodPost, "/webhook/gitea", body)
	req.Header.Set("X-Gitea-Event", "push")
	rec := httptest.NewRecorder()
	in.Gitea().ServeHTTP(rec, req)
	in.Wait()
	if rec.Code != http.StatusBadRequest {
		t.Errorf("broken body: %d %q, want 400", rec.Code, rec.Body.String())
	}
	if repoCalls, _ := repos.Calls(); len(repoCalls) > 0 || len(h.calls()) > 0 {
		t.Errorf("after a broken body: lookups %q, %d events handed on; want none", repoCalls, len(h.calls()))
	}
}

// A panic in the pipeline is logged, and the bot goes on serving.
func TestIntakeRecoversFromPanics(t *testing.T) {
	repos := &registrytest.Fake{Repos: map[string]*registry.Repo{cloneURL: entry(repoSecret, "")}}
	var logged bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(lockedWriter{&mu, &logged}, nil))
	in := webhook.New(repos, panicking{}, log, webhook.Options{})
	srv := serve(t, in)
	c := load(t, "push_branch.json")
	for range 2 {
		if resp, got := post(t, srv.URL+"/webhook/gitea", c.Event, c.Delivery, c.Body, bothSigs(repoSecret), nil); resp.StatusCode != http.StatusAccepted {
			t.Fatalf("%d %q", resp.StatusCode, got)
		}
		in.Wait()
	}
	mu.Lock()
	defer mu.Unlock()
	if n := strings.Count(logged.String(), "panic while handling a delivery"); n != 2 {
		t.Errorf("%d panics logged, want 2:\n%s", n, logged.String())
	}
}

type panicking struct{}

func (panicking) Handle(context.Context, *slog.Logger, forge.Event, *registry.Repo, pipeline.Options) ([]orchestrator.Dispatched, error) {
	panic("nil map in the pipeline")
}

func (panicking) Unavailable(context.Context, *slog.Logger, forge.Event, *registry.Repo, pipeline.Options, error) error {
	panic("nil map in the pipeline")
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// Answered deliveries are handled MaxHandling at a time; the others wait their turn within
// a bound on what they hold (Options.QueueBytes): past it, a delivery is answered 503
// (busy), and nothing of it is handled; once the waiting ones are handled, deliveries are
// accepted again.
func TestIntakeBoundsTheDeliveriesWaiting(t *testing.T) {
	const waiting = 100
	repos := &registrytest.Fake{Repos: map[string]*registry.Repo{cloneURL: entry(repoSecret, "")}}
	h := &fakeHandler{entered: make(chan struct{}, 2*(webhook.MaxHandling+waiting)), release: make(chan struct{})}
	// Room for MaxHandling being handled and about 100 waiting: a push holds a little over
	// 4 KiB while it waits (its event, not its 7 KiB body).
	in := webhook.New(repos, h, quiet(), webhook.Options{QueueBytes: (webhook.MaxHandling + waiting) * 4400})
	srv := serve(t, in)
	c := load(t, "push_branch.json")
	accepted := 0
	for {
		resp, got := post(t, srv.URL+"/webhook/gitea", c.Event, c.Delivery, c.Body, bothSigs(repoSecret), nil)
		if resp.StatusCode == http.StatusServiceUnavailable {
			if !strings.Contains(got, "busy") {
				t.Errorf("refused past the bound: %q, want it to say busy", got)
			}
			break
		}
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("delivery %d: %d %q, want 202", accepted, resp.StatusCode, got)
		}
		accepted++
		if accepted > 10*waiting {
			t.Fatalf("%d deliveries accepted within a bound of about %d", accepted, webhook.MaxHandling+waiting)
		}
	}
	if accepted < webhook.MaxHandling+waiting*9/10 {
		t.Errorf("%d deliveries accepted before the bound, want about %d", accepted, webhook.MaxHandling+waiting)
	}
	for range webhook.MaxHandling {
		<-h.entered
	}
	select {
	case <-h.entered:
		t.Fatalf("more than %d deliveries handled at once", webhook.MaxHandling)
	case <-time.After(100 * time.Millisecond):
	}
	if w, bytes, n := in.Queue(); w != accepted-webhook.MaxHandling || n.Refused != 1 || n.Accepted != int64(accepted) || n.Stopping != 0 || bytes <= 0 {
		t.Errorf("queue: %d waiting, %d bytes, %+v; want %d, some, %d accepted and 1 refused", w, bytes, n, accepted-webhook.MaxHandling, accepted)
	}
	close(h.release)
	in.Wait()
	if n := len(h.calls()); n != accepted {
		t.Errorf("%d deliveries handled, want %d (the busy one not)", n, accepted)
	}
	if resp, got := post(t, srv.URL+"/webhook/gitea", c.Event, c.Delivery, c.Body, bothSigs(repoSecret), nil); resp.StatusCode != http.StatusAccepted {
		t.Errorf("a delivery once the queue is empty: %d %q, want 202", resp.StatusCode, got)
	}
	in.Wait()
}

// A stopping bot handles the answered deliveries while it may, then drops those still
// waiting and cancels those being handled, and says which it dropped; it takes no more
// meanwhile.
func TestIntakeDrain(t *testing.T) {
	repos := &registrytest.Fake{Repos: map[string]*registry.Repo{cloneURL: entry(repoSecret, "")}}
	h := &fakeHandler{entered: make(chan struct{}, 100), release: make(chan struct{})}
	in := webhook.New(repos, h, quiet(), webhook.Options{})
	srv := serve(t, in)
	c := fillQueue(t, srv, h, webhook.MaxHandling+5)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	done := make(chan []webhook.Dropped)
	go func() { done <- in.Drain(ctx) }()
	time.Sleep(50 * time.Millisecond)
	if resp, _ := post(t, srv.URL+"/webhook/gitea", c.Event, c.Delivery, c.Body, bothSigs(repoSecret), nil); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("a delivery while stopping: %d, want 503", resp.StatusCode)
	}
	left := <-done // the handler never released: those being handled are cancelled
	calls := h.calls()
	cancelled := 0
	for _, d := range left {
		if d.Cancelled {
			cancelled++
		}
	}
	if len(left) != 5+webhook.MaxHandling || cancelled != webhook.MaxHandling || len(calls) != webhook.MaxHandling {
		t.Fatalf("dropped %v (%d cancelled), handled %d; want 5 dropped and %d cancelled, %d handled", left, cancelled, len(calls), webhook.MaxHandling, webhook.MaxHandling)
	}
	for _, d := range left {
		if d.Kind != forge.KindPush || d.Repo == "" || d.Delivery != c.Delivery || !strings.HasPrefix(d.What, "at ") {
			t.Errorf("dropped %+v, want the push, its repository, delivery %s and commit", d, c.Delivery)
		}
	}
	for _, call := range calls {
		if !errors.Is(call.ctxErr, context.Canceled) {
			t.Errorf("a delivery being handled when the drain gave up: context %v, want cancelled", call.ctxErr)
		}
	}
	if _, _, n := in.Queue(); n.Accepted != int64(webhook.MaxHandling+5) || n.Stopping != 1 || n.Refused != 0 {
		t.Errorf("counts %+v, want %d accepted, 1 refused while stopping", n, webhook.MaxHandling+5)
	}
}

// A waiting delivery holds no registry entry: its repository's is read again when its turn
// comes, so a repository removed meanwhile is not built.
func TestIntakeReadsTheEntryInTurn(t *testing.T) {
	repos := &registrytest.Fake{Repos: map[string]*registry.Repo{cloneURL: entry(repoSecret, "")}}
	h := &fakeHandler{entered: make(chan struct{}, 100), release: make(chan struct{})}
	in := webhook.New(repos, h, quiet(), webhook.Options{})
	srv := serve(t, in)
	fillQueue(t, srv, h, webhook.MaxHandling+3)
	repos.Remove(cloneURL)
	close(h.release)
	in.Wait()
	if n := len(h.calls()); n != webhook.MaxHandling {
		t.Errorf("%d deliveries handled, want %d: the 3 that waited while the repository was removed are not", n, webhook.MaxHandling)
	}
}

// A long comment waits as what the commands are read from (commands.MaxComment), not whole:
// the queue's bound is not spent on text nobody reads.
func TestIntakeClipsWaitingComments(t *testing.T) {
	c := load(t, "pr_comment_created.json")
	body := edit(t, c.Body, func(m map[string]any) {
		m["comment"].(map[string]any)["body"] = "/rebuild\n" + strings.Repeat("é", 2<<20)
	})
	var repoURL string
	var parsed map[string]any
	if err := json.Unmarshal(c.Body, &parsed); err != nil {
		t.Fatal(err)
	}
	repoURL = parsed["repository"].(map[string]any)["clone_url"].(string)
	repos := &registrytest.Fake{Repos: map[string]*registry.Repo{repoURL: entry(repoSecret, "")}}
	h := &fakeHandler{}
	// Room for one such comment clipped, not for one whole (4 MiB).
	in := webhook.New(repos, h, quiet(), webhook.Options{QueueBytes: 1 << 20})
	srv := serve(t, in)
	resp, got := post(t, srv.URL+"/webhook/gitea", c.Event, c.Delivery, body, bothSigs(repoSecret), nil)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("a 4 MiB comment: %d %q, want 202", resp.StatusCode, got)
	}
	in.Wait()
	calls := h.calls()
	if len(calls) != 1 {
		t.Fatalf("%d calls, want 1", len(calls))
	}
	b := calls[0].ev.Comment.Body
	if len(b) > commands.MaxComment || !utf8.ValidString(b) || !strings.HasPrefix(b, "/rebuild\n") {
		t.Errorf("the comment handed on holds %d bytes (valid UTF-8: %v), want at most %d, starting with its command", len(b), utf8.ValidString(b), commands.MaxComment)
	}
}

// A delivery waiting its turn when the repository's webhook secret is rotated (perhaps
// because it leaked) is not built with the entry as it is then: what the old secret signed
// is dropped.
func TestIntakeDropsWhatARotatedSecretSigned(t *testing.T) {
	repos := &registrytest.Fake{Repos: map[string]*registry.Repo{cloneURL: entry(repoSecret, "")}}
	h := &fakeHandler{entered: make(chan struct{}, 100), release: make(chan struct{})}
	in := webhook.New(repos, h, quiet(), webhook.Options{})
	srv := serve(t, in)
	c := fillQueue(t, srv, h, webhook.MaxHandling+3)
	rotated := entry("a-new-secret", "")
	rotated.Secrets = map[string]string{"DEPLOY_KEY": "fresh"}
	repos.Put(cloneURL, rotated)
	close(h.release)
	in.Wait()
	if n := len(h.calls()); n != webhook.MaxHandling {
		t.Errorf("%d deliveries handled, want %d: the 3 that waited while the secret was rotated are not", n, webhook.MaxHandling)
	}
	// Signed with the new one, a delivery is built as before.
	if resp, got := post(t, srv.URL+"/webhook/gitea", c.Event, c.Delivery, c.Body, bothSigs("a-new-secret"), nil); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("a delivery signed with the new secret: %d %q", resp.StatusCode, got)
	}
	in.Wait()
	if n := len(h.calls()); n != webhook.MaxHandling+1 {
		t.Errorf("%d deliveries handled, want %d", n, webhook.MaxHandling+1)
	}
}

// A readiness check that panics answers "unreachable" for its second, and the next one is
// asked: the deliveries are never left waiting for an answer that will not come.
func TestIntakeNomadCheckThatPanics(t *testing.T) {
	repos := &registrytest.Fake{Repos: map[string]*registry.Repo{cloneURL: entry(repoSecret, "")}}
	h := &fakeHandler{}
	var checks atomic.Int32
	in := webhook.New(repos, h, quiet(), webhook.Options{Nomad: func(context.Context) error {
		if checks.Add(1) == 1 {
			panic("a bug in the check")
		}
		return nil
	}})
	srv := serve(t, in)
	c := load(t, "push_branch.json")
	if resp, _ := post(t, srv.URL+"/webhook/gitea", c.Event, c.Delivery, c.Body, bothSigs(repoSecret), nil); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("delivery whose check panicked: %d, want 503", resp.StatusCode)
	}
	time.Sleep(1100 * time.Millisecond)
	if resp, got := post(t, srv.URL+"/webhook/gitea", c.Event, c.Delivery, c.Body, bothSigs(repoSecret), nil); resp.StatusCode != http.StatusAccepted {
		t.Errorf("delivery a second later: %d %q, want 202", resp.StatusCode, got)
	}
	in.Wait()
}

// fillQueue posts n signed pushes, each answered 202, and returns once MaxHandling of them
// are being handled (h holds them until released); the others wait their turn.
func fillQueue(t *testing.T, srv *httptest.Server, h *fakeHandler, n int) capture {
	t.Helper()
	c := load(t, "push_branch.json")
	for i := range n {
		if resp, got := post(t, srv.URL+"/webhook/gitea", c.Event, c.Delivery, c.Body, bothSigs(repoSecret), nil); resp.StatusCode != http.StatusAccepted {
			t.Fatalf("delivery %d: %d %q", i, resp.StatusCode, got)
		}
	}
	for range webhook.MaxHandling {
		<-h.entered
	}
	return c
}
