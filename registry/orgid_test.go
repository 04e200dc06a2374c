package registry_test

import (
	"encoding/json"
	"errors"
	"testing"

	consul "github.com/hashicorp/consul/api"

	"github.com/albatros-ci/albatros/registry"
)

// An installation made before organization ids were recorded is bound to its
// organization's id: its sealed values are sealed again for the id and still open; the
// record of another organization of the same name (another id), made of a copy of its
// sealed values, opens none of them.
func TestInstallationBoundToItsOrganizationID(t *testing.T) {
	r, kv, prefix := setup(t)
	ctx := testContext(t)
	inst := newInstallation(t, r) // org id 0: a record from before ids
	if err := r.SetSecret(inst, "app", "TOKEN", "app-secret-value"); err != nil {
		t.Fatal(err)
	}
	if err := r.BindOrg(inst, 42); err != nil {
		t.Fatal(err)
	}
	if err := r.BindOrg(inst, 43); err == nil {
		t.Error("an installation bound to an id was bound again to another")
	}
	if err := r.PutInstallation(ctx, inst); err != nil {
		t.Fatal(err)
	}
	entry, err := r.Repo(ctx, orgURL+"/app.git")
	if err != nil {
		t.Fatal(err)
	}
	plain, err := entry.OpenSecrets()
	if err != nil || plain["TOKEN"] != "app-secret-value" || entry.Hook.Secret != "hook-secret-xyz" || entry.OrgID != 42 {
		t.Fatalf("bound installation's entry: secrets %v (%v), hook %q, org id %d", plain, err, entry.Hook.Secret, entry.OrgID)
	}
	if why := entry.Blocked(42); why != "" {
		t.Errorf("a delivery of its organization is blocked: %s", why)
	}
	if why := entry.Blocked(43); why == "" {
		t.Error("a delivery of another organization of the name is not blocked")
	}

	// Another organization took the name: its record, with the sealed values copied and
	// its own id, opens none of them.
	pair, _, err := kv.Get(prefix+"install/"+base64CLI(t, orgURL), nil)
	if err != nil || pair == nil {
		t.Fatalf("raw key: %v %v", pair, err)
	}
	var raw map[string]any
	if err := json.Unmarshal(pair.Value, &raw); err != nil {
		t.Fatal(err)
	}
	raw["org_id"] = 99
	forged, _ := json.Marshal(raw)
	if _, err := kv.Put(&consul.KVPair{Key: pair.Key, Value: forged}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Repo(ctx, orgURL+"/app.git"); err == nil {
		t.Error("an installation whose id was changed still opens its webhook secret")
	}
}

// A renamed organization's installation, adopted under its new name, keeps its settings
// and opens its sealed values there; the record under the old name is left as it was.
func TestAdoptRenamedOrganization(t *testing.T) {
	r, _, _ := setup(t)
	ctx := testContext(t)
	inst := newInstallation(t, r)
	if err := r.BindOrg(inst, 42); err != nil {
		t.Fatal(err)
	}
	if err := r.SetSecret(inst, "", "DEPLOY", "org-secret-value"); err != nil {
		t.Fatal(err)
	}
	s := inst.SettingsOf("")
	s.Trusted = registry.Trusted{Users: []string{"alice"}, UserIDs: map[string]int64{"alice": 5}}
	inst.SetSettings("", s)
	inst.Quarantine = "the organization acme is gone (deleted, or renamed)"
	moved, err := r.Adopt(inst, "acme-renamed")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.PutInstallation(ctx, moved); err != nil {
		t.Fatal(err)
	}
	entry, err := r.Repo(ctx, "http://git.example.com/acme-renamed/app.git")
	if err != nil {
		t.Fatal(err)
	}
	plain, err := entry.OpenSecrets()
	if err != nil || plain["DEPLOY"] != "org-secret-value" || entry.Hook.Secret != "hook-secret-xyz" || entry.Quarantine != "" || !entry.Trusts("alice", 5) {
		t.Fatalf("adopted entry: secrets %v (%v), hook %q, quarantine %q, trusts alice: %v", plain, err, entry.Hook.Secret, entry.Quarantine, entry.Trusts("alice", 5))
	}
	if inst.Org != "acme" || inst.Quarantine == "" {
		t.Errorf("the old record changed: %+v", inst)
	}
}

// A quarantined installation moved aside leaves its organization's key free, and is found on
// the shelf until it is taken off.
func TestShelve(t *testing.T) {
	r, _, _ := setup(t)
	ctx := testContext(t)
	inst := newInstallation(t, r)
	if err := r.BindOrg(inst, 42); err != nil {
		t.Fatal(err)
	}
	inst.Quarantine = "gone"
	if err := r.PutInstallation(ctx, inst); err != nil {
		t.Fatal(err)
	}
	if err := r.Shelve(ctx, inst); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Installation(ctx, orgURL); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("the organization's key after shelving: %v, want ErrNotFound", err)
	}
	shelf, err := r.Shelved(ctx)
	if err != nil || len(shelf) != 1 || shelf[0].OrgID != 42 || shelf[0].Quarantine != "gone" {
		t.Fatalf("shelf %+v (%v), want the installation", shelf, err)
	}
	if err := r.Unshelve(ctx, shelf[0]); err != nil {
		t.Fatal(err)
	}
	if shelf, err := r.Shelved(ctx); err != nil || len(shelf) != 0 {
		t.Errorf("shelf after unshelving: %+v (%v)", shelf, err)
	}
}
