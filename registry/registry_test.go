package registry_test

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	consul "github.com/hashicorp/consul/api"

	"github.com/albatros-ci/albatros/registry"
	"github.com/albatros-ci/albatros/seal"
	"github.com/albatros-ci/albatros/testenv"
)

var env = testenv.New(testenv.Options{Consul: true})

func TestMain(m *testing.M) { os.Exit(env.Run(m)) }

// setup returns a registry under a key prefix of the test's own on the package's Consul
// agent, a raw KV client on the same agent (to write and read entries as `consul kv` does),
// and the prefix.
func setup(t *testing.T) (*registry.Registry, *consul.KV, string) {
	t.Helper()
	c := env.Consul(t)
	prefix := c.Prefix(t)
	r, err := registry.New(prefix, testKeys(t))
	if err != nil {
		t.Fatalf("registry.New(%q): %v", prefix, err)
	}
	t.Cleanup(r.Close)
	return r, c.Client(t).KV(), prefix
}

var (
	keyA = []byte("registry-test-key-a-0123456789abcdef")
	keyB = []byte("registry-test-key-b-0123456789abcdef")
)

func testKeys(t *testing.T, previous ...[]byte) *seal.Keyring {
	t.Helper()
	k, err := seal.New(keyA, previous...)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// putRaw writes value under key as `consul kv put key value` does.
func putRaw(t *testing.T, kv *consul.KV, key, value string) {
	t.Helper()
	if _, err := kv.Put(&consul.KVPair{Key: key, Value: []byte(value)}, nil); err != nil {
		t.Fatalf("consul put %s: %v", key, err)
	}
}

// base64CLI is `printf %s s | base64 -w0`, the command the README tells operators to use.
func base64CLI(t *testing.T, s string) string {
	t.Helper()
	cmd := exec.Command("base64", "-w0")
	cmd.Stdin = strings.NewReader(s)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("base64 -w0: %v", err)
	}
	return string(out)
}

// originalEntry is an entry of the original Albatros, as its operators wrote them.
const originalEntry = `{"hook":{"token":"s3cr3t"},"gitea":{"url":"https://git.example.com","token":"gitea-token-1"},"trusted":{"senders":["quentin","lx"]},"inject":"set +x\nexport SECRET1=xx"}`

func TestRepoReadsOriginalFormat(t *testing.T) {
	tests := []struct {
		name  string
		value string
	}{
		{"original", originalEntry},
		{"unknown fields tolerated", `{"hook":{"token":"s3cr3t","legacy":1},"gitea":{"url":"https://git.example.com","token":"gitea-token-1","insecure":true},` +
			`"trusted":{"senders":["quentin","lx"],"teams":["ops"]},"inject":"set +x\nexport SECRET1=xx","notify":{"irc":"#ci"},"version":3}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, kv, prefix := setup(t)
			ctx := testContext(t)
			const cloneURL = "https://git.example.com/quentin/albatros.git"
			putRaw(t, kv, prefix+base64CLI(t, cloneURL), tt.value)

			got, err := r.Repo(ctx, cloneURL)
			if err != nil {
				t.Fatalf("Repo: %v", err)
			}
			if got.Hook.Token != "s3cr3t" {
				t.Errorf("hook.token = %q, want s3cr3t", got.Hook.Token)
			}
			if got.Hook.Secret != "" {
				t.Errorf("hook.secret = %q, want empty", got.Hook.Secret)
			}
			if got.Gitea.URL != "https://git.example.com" || got.Gitea.Token != "gitea-token-1" {
				t.Errorf("gitea = %+v, want url https://git.example.com, token gitea-token-1", got.Gitea)
			}
			if want := []string{"quentin", "lx"}; !reflect.DeepEqual(got.Trusted.Senders, want) {
				t.Errorf("trusted.senders = %q, want %q", got.Trusted.Senders, want)
			}
			if want := "set +x\nexport SECRET1=xx"; got.Inject != want {
				t.Errorf("inject = %q, want %q", got.Inject, want)
			}
			if got.Secrets != nil || got.Flavors != nil || got.Builder != nil {
				t.Errorf("optional fields set from an original entry: secrets %v, flavors %v, builder %v", got.Secrets, got.Flavors, got.Builder)
			}
		})
	}
}

func TestKeysMatchBase64CLI(t *testing.T) {
	r, _, prefix := setup(t)
	repoURLs := []string{
		"https://git.example.com/org/app.git",
		"http://127.0.0.1:3000/demo/hello.git",
		"https://git.example.com/o/a",  // length 30: base64 with "==" padding
		"https://git.example.com/o/ab", // "=" padding
		// Longer than 57 bytes: plain `base64` would wrap its output at 76 characters.
		"https://git.example.com/a-rather-long-organization-name/a-rather-long-repository-name.git",
		"https://user@git.example.com/org/ünïcode-répo.git",
		// "+" in its base64: the standard alphabet, not the URL-safe one.
		"https://gitea.example.com/~quentin/dotfiles.git",
	}
	for _, u := range repoURLs {
		if got, want := r.RepoKey(u), prefix+base64CLI(t, u); got != want {
			t.Errorf("RepoKey(%q) = %q, want %q", u, got, want)
		}
	}
	orgURLs := []string{"https://git.example.com/org", "http://127.0.0.1:3000/demo"}
	for _, u := range orgURLs {
		want := prefix + "org/" + base64CLI(t, u)
		if got := r.OrgKey(u); got != want {
			t.Errorf("OrgKey(%q) = %q, want %q", u, got, want)
		}
		if got := r.OrgKey(u + "/"); got != want {
			t.Errorf("OrgKey(%q) = %q, want the key of %q, %q", u+"/", got, u, want)
		}
	}
}

func TestRepoNotFound(t *testing.T) {
	r, kv, prefix := setup(t)
	ctx := testContext(t)
	const cloneURL = "https://git.example.com/org/missing.git"
	// An entry for another repository, and one for this repository under a longer prefix,
	// do not count.
	putRaw(t, kv, r.RepoKey("https://git.example.com/org/other.git"), originalEntry)
	putRaw(t, kv, prefix+"other/"+base64CLI(t, cloneURL), originalEntry)

	got, err := r.Repo(ctx, cloneURL)
	if !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("Repo of an unregistered repository: entry %+v, error %v; want an error wrapping ErrNotFound", got, err)
	}
	if !strings.Contains(err.Error(), cloneURL) {
		t.Errorf("error %q does not name the repository %s", err, cloneURL)
	}

	_, err = r.Org(ctx, "https://git.example.com/org")
	if !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("Org of an unregistered organization: %v, want an error wrapping ErrNotFound", err)
	}
	if !strings.Contains(err.Error(), "https://git.example.com/org") {
		t.Errorf("error %q does not name the organization", err)
	}
}

func TestRepoInvalidEntry(t *testing.T) {
	values := map[string]string{
		"not json":          `hook: {token: s3cr3t}`,
		"truncated":         `{"hook":{"token":"s3cr3t"}`,
		"wrong field type":  `{"hook":{"token":"s3cr3t"},"trusted":{"senders":"quentin"}}`,
		"flavors not array": `{"flavors":"nix"}`,
		"empty value":       ``,
	}
	for name, value := range values {
		t.Run(name, func(t *testing.T) {
			r, kv, _ := setup(t)
			ctx := testContext(t)
			const cloneURL = "https://git.example.com/org/broken.git"
			key := r.RepoKey(cloneURL)
			putRaw(t, kv, key, value)

			got, err := r.Repo(ctx, cloneURL)
			if err == nil {
				t.Fatalf("Repo of an invalid entry %q = %+v, want an error", value, got)
			}
			if errors.Is(err, registry.ErrNotFound) {
				t.Errorf("error %q wraps ErrNotFound: an entry that exists but is broken must not read as unregistered", err)
			}
			if !strings.Contains(err.Error(), key) {
				t.Errorf("error %q does not name the key %s", err, key)
			}
		})
	}
}

func TestPutRepoRoundTrip(t *testing.T) {
	r, kv, _ := setup(t)
	ctx := testContext(t)
	const cloneURL = "http://127.0.0.1:3000/team/app.git"

	want := &registry.Repo{
		Inject:  "set +x\nexport DEPLOY_KEY='a b'\n",
		Secrets: map[string]string{"REGISTRY_TOKEN": "tok-123", "NPM_TOKEN": "it's \"quoted\""},
		Flavors: []string{"default", "nix"},
		Builder: &registry.Builder{Job: "my-builder", Namespace: "team-ci"},
	}
	want.Hook.Token = "url-token"
	want.Hook.Secret = "hmac-secret"
	want.Gitea.URL = "http://127.0.0.1:3000"
	want.Gitea.Token = "gitea-token"
	want.Trusted.Senders = []string{"alice", "bob"}

	if err := r.PutRepo(ctx, cloneURL, want); err != nil {
		t.Fatalf("PutRepo: %v", err)
	}
	got, err := r.Repo(ctx, cloneURL)
	if err != nil {
		t.Fatalf("Repo after PutRepo: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, want)
	}

	// The entry is where an operator's `consul kv get` finds it.
	pair, _, err := kv.Get(r.RepoKey(cloneURL), nil)
	if err != nil || pair == nil {
		t.Fatalf("raw get of %s: pair %v, err %v", r.RepoKey(cloneURL), pair, err)
	}
	for _, field := range []string{`"hook":{"token":"url-token","secret":"hmac-secret"}`, `"flavors":["default","nix"]`, `"builder":{"job":"my-builder","namespace":"team-ci"}`} {
		if !strings.Contains(string(pair.Value), field) {
			t.Errorf("stored entry %s lacks %s", pair.Value, field)
		}
	}

	// A builder without a namespace round-trips as one, and an entry with only the original
	// fields stays without the optional ones.
	minimal := &registry.Repo{Builder: &registry.Builder{Job: "other"}}
	minimal.Hook.Token = "t"
	if err := r.PutRepo(ctx, cloneURL, minimal); err != nil {
		t.Fatalf("PutRepo (overwrite): %v", err)
	}
	got, err = r.Repo(ctx, cloneURL)
	if err != nil {
		t.Fatalf("Repo after overwrite: %v", err)
	}
	if !reflect.DeepEqual(got, minimal) {
		t.Errorf("after overwrite:\n got %+v\nwant %+v", got, minimal)
	}
}

func TestOrgRoundTrip(t *testing.T) {
	r, kv, prefix := setup(t)
	ctx := testContext(t)
	const orgURL = "http://127.0.0.1:3000/team"

	// Written by an operator, as docs/CONSUL.md shows.
	putRaw(t, kv, prefix+"org/"+base64CLI(t, orgURL), `{"hook":{"secret":"shared-secret"},"comment":"for all of team"}`)
	got, err := r.Org(ctx, orgURL)
	if err != nil {
		t.Fatalf("Org: %v", err)
	}
	if got.Hook.Secret != "shared-secret" {
		t.Errorf("org hook.secret = %q, want shared-secret", got.Hook.Secret)
	}
	// The URL with a trailing slash names the same organization.
	if got, err := r.Org(ctx, orgURL+"/"); err != nil || got.Hook.Secret != "shared-secret" {
		t.Errorf("Org(%q) = %+v, %v; want the entry of %s", orgURL+"/", got, err, orgURL)
	}

	var org registry.Org
	org.Hook.Secret = "rotated"
	if err := r.PutOrg(ctx, orgURL, &org); err != nil {
		t.Fatalf("PutOrg: %v", err)
	}
	got, err = r.Org(ctx, orgURL)
	if err != nil {
		t.Fatalf("Org after PutOrg: %v", err)
	}
	if got.Hook.Secret != "rotated" {
		t.Errorf("org hook.secret after PutOrg = %q, want rotated", got.Hook.Secret)
	}
	// An organization's entry is not a repository's.
	if _, err := r.Repo(ctx, orgURL); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("Repo(%q) = %v, want ErrNotFound", orgURL, err)
	}
}

func TestOrgURL(t *testing.T) {
	tests := []struct {
		cloneURL string
		want     string
		wantErr  bool
	}{
		{cloneURL: "http://h:3000/org/repo.git", want: "http://h:3000/org"},
		{cloneURL: "https://git.example.com/org/repo", want: "https://git.example.com/org"},
		{cloneURL: "https://git.example.com/org/repo.git/", want: "https://git.example.com/org"},
		{cloneURL: "https://user:pass@git.example.com/org/repo.git", want: "https://git.example.com/org"},
		{cloneURL: "https://token@git.example.com/org/repo.git", want: "https://git.example.com/org"},
		{cloneURL: "https://git.example.com/gitea/org/repo.git", want: "https://git.example.com/gitea/org"}, // Gitea under a sub-path
		{cloneURL: "https://git.example.com/org/repo.git?x=1#frag", want: "https://git.example.com/org"},
		{cloneURL: "https://git.example.com/repo.git", wantErr: true},
		{cloneURL: "https://git.example.com/", wantErr: true},
		{cloneURL: "https://git.example.com", wantErr: true},
		{cloneURL: "://not a url", wantErr: true},
	}
	for _, tt := range tests {
		got, err := registry.OrgURL(tt.cloneURL)
		if tt.wantErr {
			if err == nil {
				t.Errorf("OrgURL(%q) = %q, want an error", tt.cloneURL, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("OrgURL(%q) = %q, %v; want %q", tt.cloneURL, got, err, tt.want)
		}
		if name, err := registry.RepoName(tt.cloneURL); err != nil || name != "repo" {
			t.Errorf("RepoName(%q) = %q, %v; want repo", tt.cloneURL, name, err)
		}
	}
}

func TestTrusts(t *testing.T) {
	var r registry.Repo
	r.Trusted.Senders = []string{"quentin", "lx", ""}
	tests := []struct {
		sender string
		want   bool
	}{
		{"quentin", true},
		{"lx", true},
		{"", false}, // an event without a sender is never trusted, even with "" in the list
		{"Quentin", false},
		{"mallory", false},
		{"lx ", false},
	}
	for _, tt := range tests {
		if got := r.Trusts(tt.sender, 7); got != tt.want {
			t.Errorf("Trusts(%q) with senders %q = %v, want %v", tt.sender, r.Trusted.Senders, got, tt.want)
		}
	}
	var none registry.Repo
	for _, s := range []string{"", "quentin"} {
		if none.Trusts(s, 7) {
			t.Errorf("an entry without trusted senders trusts %q", s)
		}
	}
	// Recorded with their ids (the settings pages do), users are trusted by id: a user
	// deleted and registered again under the name is not trusted, one renamed still is.
	var byID registry.Repo
	byID.Trusted.Senders = []string{"alice", "bob"}
	byID.Trusted.IDs = map[string]int64{"alice": 41}
	for _, tc := range []struct {
		login string
		id    int64
		want  bool
	}{{"alice", 41, true}, {"alice", 99, false}, {"alice", 0, false}, {"alice-renamed", 41, true}, {"bob", 5, true}, {"bob", 0, true}, {"mallory", 0, false}} {
		if got := byID.Trusts(tc.login, tc.id); got != tc.want {
			t.Errorf("Trusts(%s, %d) = %v, want %v", tc.login, tc.id, got, tc.want)
		}
	}
}

func TestReady(t *testing.T) {
	r, _, _ := setup(t)
	if err := r.Ready(testContext(t)); err != nil {
		t.Fatalf("Ready against the live agent: %v", err)
	}
}

func TestReadyUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	t.Setenv("CONSUL_HTTP_ADDR", addr)

	r, err := registry.New("albatros/", nil)
	if err != nil {
		t.Fatalf("registry.New: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = r.Ready(ctx)
	if err == nil {
		t.Fatalf("Ready against closed port %s = nil, want an error", addr)
	}
	if ctx.Err() != nil {
		t.Errorf("Ready against a closed port waited for the context's deadline instead of failing: %v", err)
	}
	if !strings.Contains(err.Error(), "consul") {
		t.Errorf("error %q does not say that Consul is what failed", err)
	}
	if _, err := r.Repo(ctx, "https://git.example.com/org/app.git"); err == nil || errors.Is(err, registry.ErrNotFound) {
		t.Errorf("Repo with Consul down = %v, want an error that is not ErrNotFound", err)
	}
}

func TestPrefix(t *testing.T) {
	c := env.Consul(t)
	base := c.Prefix(t) // "test/<name>/", cleaned up at the end
	kv := c.Client(t).KV()
	ctx := testContext(t)
	const cloneURL = "https://git.example.com/org/app.git"
	b64 := base64CLI(t, cloneURL)

	tests := []struct {
		prefix string
		want   string // the key the entry must land under
	}{
		{base + "noslash", base + "noslash/" + b64},
		{base + "slash/", base + "slash/" + b64},
	}
	for _, tt := range tests {
		r, err := registry.New(tt.prefix, nil)
		if err != nil {
			t.Fatalf("registry.New(%q): %v", tt.prefix, err)
		}
		if got := r.RepoKey(cloneURL); got != tt.want {
			t.Errorf("New(%q).RepoKey = %q, want %q", tt.prefix, got, tt.want)
		}
		if got, want := r.OrgKey("https://git.example.com/org"), strings.TrimSuffix(tt.want, b64)+"org/"+base64CLI(t, "https://git.example.com/org"); got != want {
			t.Errorf("New(%q).OrgKey = %q, want %q", tt.prefix, got, want)
		}
		var e registry.Repo
		e.Hook.Token = tt.prefix
		if err := r.PutRepo(ctx, cloneURL, &e); err != nil {
			t.Fatalf("PutRepo: %v", err)
		}
		pair, _, err := kv.Get(tt.want, nil)
		if err != nil || pair == nil {
			t.Fatalf("entry put through New(%q) not found at %s: %v", tt.prefix, tt.want, err)
		}
	}

	// No prefix is the original's.
	r, err := registry.New("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := r.RepoKey(cloneURL), registry.DefaultPrefix+b64; got != want {
		t.Errorf("New(\"\").RepoKey = %q, want %q", got, want)
	}
	if registry.DefaultPrefix != "albatros/" {
		t.Errorf("DefaultPrefix = %q, want the original's albatros/", registry.DefaultPrefix)
	}
}
