package registry_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/albatros-ci/albatros/registry"
	"github.com/albatros-ci/albatros/seal"
)

const orgURL = "http://git.example.com/acme"

func newInstallation(t *testing.T, r *registry.Registry) *registry.Installation {
	t.Helper()
	inst := &registry.Installation{Forge: "gitea", URL: "http://git.example.com/", Org: "acme", InstalledBy: "alice", InstalledAt: time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)}
	inst.Hook.ID = 7
	if err := r.SealHookSecret(inst, "hook-secret-xyz"); err != nil {
		t.Fatal(err)
	}
	return inst
}

// An installation is written with a check-and-set, read back, listed and deleted; its
// secrets are sealed in Consul, never in clear.
func TestInstallationRoundTrip(t *testing.T) {
	r, kv, prefix := setup(t)
	ctx := testContext(t)
	inst := newInstallation(t, r)
	if err := r.SetSecret(inst, "", "DEPLOY", "org-secret-value"); err != nil {
		t.Fatal(err)
	}
	if err := r.SetSecret(inst, "app", "ONLY_APP", "app-secret-value"); err != nil {
		t.Fatal(err)
	}
	if err := r.PutInstallation(ctx, inst); err != nil {
		t.Fatal(err)
	}
	// A second create of the same organization conflicts.
	if err := r.PutInstallation(ctx, newInstallation(t, r)); !errors.Is(err, registry.ErrConflict) {
		t.Fatalf("second create: %v, want ErrConflict", err)
	}
	pair, _, err := kv.Get(prefix+"install/"+base64CLI(t, orgURL), nil)
	if err != nil || pair == nil {
		t.Fatalf("raw key: %v %v", pair, err)
	}
	for _, clear := range []string{"hook-secret-xyz", "org-secret-value", "app-secret-value"} {
		if strings.Contains(string(pair.Value), clear) {
			t.Errorf("Consul holds %q in clear: %s", clear, pair.Value)
		}
	}

	got, err := r.Installation(ctx, orgURL)
	if err != nil {
		t.Fatal(err)
	}
	if got.Org != "acme" || got.Hook.ID != 7 || got.InstalledBy != "alice" || !got.InstalledAt.Equal(inst.InstalledAt) {
		t.Fatalf("read back %+v", got)
	}
	if s, err := r.HookSecret(got); err != nil || s != "hook-secret-xyz" {
		t.Fatalf("HookSecret = %q, %v", s, err)
	}
	// A stale copy cannot overwrite a newer one.
	stale := *got
	got.Settings.Flavors = []string{"nix"}
	if err := r.PutInstallation(ctx, got); err != nil {
		t.Fatal(err)
	}
	stale.Settings.Flavors = []string{"stale"}
	if err := r.PutInstallation(ctx, &stale); !errors.Is(err, registry.ErrConflict) {
		t.Fatalf("stale write: %v, want ErrConflict", err)
	}
	all, err := r.Installations(ctx)
	if err != nil || len(all) != 1 || all[0].Org != "acme" || !slices.Equal(all[0].Settings.Flavors, []string{"nix"}) {
		t.Fatalf("Installations = %+v, %v", all, err)
	}
	if err := r.DeleteInstallation(ctx, &stale); !errors.Is(err, registry.ErrConflict) {
		t.Fatalf("stale delete: %v, want ErrConflict", err)
	}
	if err := r.DeleteInstallation(ctx, all[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Installation(ctx, orgURL); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
}

// Every repository of an installed organization has an entry made of the installation:
// the organization's settings, the repository's over them, secrets opened; a repository's
// own key still wins.
func TestRepoOfAnInstalledOrganization(t *testing.T) {
	r, kv, prefix := setup(t)
	ctx := testContext(t)
	inst := newInstallation(t, r)
	inst.Settings.Trusted = registry.Trusted{Users: []string{"alice"}, Teams: []string{"release"}}
	inst.Settings.Flavors = []string{"default", "nix"}
	inst.Settings.Builder = &registry.Builder{Job: "org-builder"}
	_ = r.SetSecret(inst, "", "SHARED", "shared-value")
	_ = r.SetSecret(inst, "", "OVERRIDDEN", "org-value")
	app := inst.SettingsOf("app")
	app.Trusted.Users = []string{"bob", "alice"}
	app.Flavors = []string{"arm"}
	inst.SetSettings("app", app)
	_ = r.SetSecret(inst, "app", "OVERRIDDEN", "app-value")
	if err := r.PutInstallation(ctx, inst); err != nil {
		t.Fatal(err)
	}

	e, err := r.Repo(ctx, orgURL+"/app.git")
	if err != nil {
		t.Fatal(err)
	}
	if !e.Installed || e.Hook.Secret != "hook-secret-xyz" || !slices.Equal(e.Trusted.Senders, []string{"alice", "bob"}) ||
		!slices.Equal(e.Trusted.Teams, []string{"release"}) || !slices.Equal(e.Flavors, []string{"arm"}) || e.Builder == nil || e.Builder.Job != "org-builder" {
		t.Fatalf("entry of app: %+v", e)
	}
	if sec, err := e.OpenSecrets(); err != nil || sec["SHARED"] != "shared-value" || sec["OVERRIDDEN"] != "app-value" || len(sec) != 2 || !e.HasSecrets() {
		t.Fatalf("secrets of app: %v, %v", sec, err)
	}
	other, err := r.Repo(ctx, orgURL+"/other.git")
	if err != nil || !slices.Equal(other.Flavors, []string{"default", "nix"}) {
		t.Fatalf("entry of other: %+v, %v", other, err)
	}
	if sec, err := other.OpenSecrets(); err != nil || sec["OVERRIDDEN"] != "org-value" {
		t.Fatalf("secrets of other: %v, %v", sec, err)
	}
	// The organization's webhook secret, for entries without one of their own.
	if o, err := r.Org(ctx, orgURL); err != nil || o.Hook.Secret != "hook-secret-xyz" {
		t.Fatalf("Org = %+v, %v", o, err)
	}
	// A repository's own entry wins.
	putRaw(t, kv, prefix+base64CLI(t, orgURL+"/own.git"), `{"hook":{"token":"t"},"flavors":["own"]}`)
	if own, err := r.Repo(ctx, orgURL+"/own.git"); err != nil || own.Installed || !slices.Equal(own.Flavors, []string{"own"}) {
		t.Fatalf("own entry: %+v, %v", own, err)
	}
	// Another organization is not installed.
	if _, err := r.Repo(ctx, "http://git.example.com/elsewhere/app.git"); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("repository of an organization without installation: %v", err)
	}
	// Without the key, installations are not read.
	noKey, err := registry.New(prefix, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := noKey.Repo(ctx, orgURL+"/app.git"); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("a registry without key: %v", err)
	}
	// With another key, they cannot be opened.
	otherKey, _ := seal.New(keyB)
	wrong, _ := registry.New(prefix, otherKey)
	if _, err := wrong.Repo(ctx, orgURL+"/app.git"); !errors.Is(err, seal.ErrOpen) {
		t.Fatalf("a registry with another key: %v, want seal.ErrOpen", err)
	}
}

// After a key rotation (new key, old one as previous), Reseal seals every installation's
// values with the new key, so that the old key can go.
func TestResealAfterKeyRotation(t *testing.T) {
	r, _, prefix := setup(t)
	ctx := testContext(t)
	inst := newInstallation(t, r)
	_ = r.SetSecret(inst, "app", "TOKEN", "rotated-value")
	if err := r.PutInstallation(ctx, inst); err != nil {
		t.Fatal(err)
	}
	newKeys, _ := seal.New(keyB, keyA)
	rotated, _ := registry.New(prefix, newKeys)
	if n, err := rotated.Reseal(ctx); err != nil || n != 1 {
		t.Fatalf("Reseal = %d, %v; want 1", n, err)
	}
	if n, err := rotated.Reseal(ctx); err != nil || n != 0 {
		t.Fatalf("second Reseal = %d, %v; want 0", n, err)
	}
	onlyNew, _ := seal.New(keyB)
	after, _ := registry.New(prefix, onlyNew)
	e, err := after.Repo(ctx, orgURL+"/app.git")
	if err != nil || e.Hook.Secret != "hook-secret-xyz" {
		t.Fatalf("with only the new key: %+v, %v", e, err)
	}
	if sec, err := e.OpenSecrets(); err != nil || sec["TOKEN"] != "rotated-value" {
		t.Fatalf("secrets with only the new key: %v, %v", sec, err)
	}
}

// An installed repository's entry is read, and its delivery authenticated, without opening
// its secrets: they are opened when asked for, once (here one cannot be, and only asking
// says so).
func TestInstalledSecretsOpenedWhenAsked(t *testing.T) {
	r, kv, prefix := setup(t)
	ctx := testContext(t)
	inst := newInstallation(t, r)
	_ = r.SetSecret(inst, "app", "TOKEN", "token-value")
	otherKey, _ := seal.New(keyB)
	foreign, _ := registry.New(prefix, otherKey)
	_ = foreign.SetSecret(inst, "app", "FOREIGN", "sealed-with-another-key")
	raw, err := json.Marshal(inst) // written as is: PutInstallation would refuse to reseal it
	if err != nil {
		t.Fatal(err)
	}
	putRaw(t, kv, r.InstallKey(inst.OrgURL()), string(raw))
	e, err := r.Repo(ctx, orgURL+"/app.git")
	if err != nil || e.Hook.Secret != "hook-secret-xyz" || !e.HasSecrets() {
		t.Fatalf("entry: %+v, %v; want it read with its hook secret", e, err)
	}
	if _, err := e.OpenSecrets(); !errors.Is(err, seal.ErrOpen) {
		t.Fatalf("OpenSecrets: %v, want seal.ErrOpen", err)
	}
	if _, err := e.SecretValues(); !errors.Is(err, seal.ErrOpen) {
		t.Fatalf("SecretValues: %v, want seal.ErrOpen: nothing may be written unmasked", err)
	}
}

// One holder of a lock at a time, across registries (bots).
func TestLock(t *testing.T) {
	r, _, prefix := setup(t)
	ctx := testContext(t)
	other, _ := registry.New(prefix, nil)
	unlock, ok, err := r.Lock(ctx, "install/acme")
	if err != nil || !ok {
		t.Fatalf("first Lock = %v, %v", ok, err)
	}
	if _, ok, err := other.Lock(ctx, "install/acme"); err != nil || ok {
		t.Fatalf("second Lock while held = %v, %v; want not held", ok, err)
	}
	if u2, ok, err := other.Lock(ctx, "install/other"); err != nil || !ok {
		t.Fatalf("another lock = %v, %v", ok, err)
	} else {
		u2()
	}
	unlock()
	// Four at once: never two holders together.
	var wg sync.WaitGroup
	var mu sync.Mutex
	holding, most, got := 0, 0, 0
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if u, ok, err := other.Lock(ctx, "install/acme"); err == nil && ok {
				mu.Lock()
				holding++
				got++
				most = max(most, holding)
				mu.Unlock()
				time.Sleep(200 * time.Millisecond)
				mu.Lock()
				holding--
				mu.Unlock()
				u()
			}
		}()
	}
	wg.Wait()
	if got < 1 || most != 1 {
		t.Fatalf("after unlock: %d of 4 got the lock, %d at most at once; want at least 1, and 1 at once", got, most)
	}
}

// The GitHub App's credentials, made through the manifest flow, are recorded once, read
// back opened, and sealed again after a key rotation, so that dropping the previous key
// loses nothing.
func TestGitHubAppRecordAndReseal(t *testing.T) {
	r, kv, prefix := setup(t)
	ctx := testContext(t)
	if _, err := r.GitHubApp(ctx); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("no App yet: %v", err)
	}
	app := registry.GitHubAppOpen{GitHubApp: registry.GitHubApp{ID: 42, Slug: "albatros", WebURL: "https://github.com", ClientID: "Iv1.x"},
		Key: []byte("-----BEGIN RSA PRIVATE KEY-----"), WebhookSecret: "whsec", ClientSecret: "cs"}
	if err := r.PutGitHubApp(ctx, app); err != nil {
		t.Fatal(err)
	}
	if err := r.PutGitHubApp(ctx, app); !errors.Is(err, registry.ErrConflict) {
		t.Fatalf("a second App: %v, want ErrConflict", err)
	}
	raw, _, _ := kv.Get(prefix+"github-app", nil)
	if raw == nil || strings.Contains(string(raw.Value), "whsec") || strings.Contains(string(raw.Value), "BEGIN RSA") || strings.Contains(string(raw.Value), `"cs"`) {
		t.Fatalf("the record holds a secret in clear: %s", raw.Value)
	}
	newKeys, _ := seal.New(keyB, keyA)
	rotated, _ := registry.New(prefix, newKeys)
	if _, err := rotated.Reseal(ctx); err != nil {
		t.Fatal(err)
	}
	onlyNew, _ := seal.New(keyB)
	after, _ := registry.New(prefix, onlyNew)
	got, err := after.GitHubApp(ctx)
	if err != nil || got.ID != 42 || got.WebhookSecret != "whsec" || string(got.Key) != string(app.Key) || got.ClientSecret != "cs" || got.ClientID != "Iv1.x" {
		t.Fatalf("with only the new key: %+v, %v", got, err)
	}
}
