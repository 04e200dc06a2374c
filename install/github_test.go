package install

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/albatros-ci/albatros/forge"
	"github.com/albatros-ci/albatros/registry"
)

// memRecords are installations in memory, as the App's installations use the registry.
type memRecords struct {
	mu    sync.Mutex
	insts map[string]registry.Installation
}

func (m *memRecords) Installation(_ context.Context, orgURL string) (*registry.Installation, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	inst, ok := m.insts[orgURL]
	if !ok {
		return nil, registry.ErrNotFound
	}
	return &inst, nil
}

func (m *memRecords) Installations(context.Context) ([]*registry.Installation, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*registry.Installation
	for _, inst := range m.insts {
		inst := inst
		out = append(out, &inst)
	}
	return out, nil
}

func (m *memRecords) PutInstallation(_ context.Context, inst *registry.Installation) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.insts[inst.OrgURL()] = *inst
	return nil
}

func (m *memRecords) DeleteInstallation(_ context.Context, inst *registry.Installation) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.insts, inst.OrgURL())
	return nil
}

func (m *memRecords) Shelve(ctx context.Context, inst *registry.Installation) error {
	return m.DeleteInstallation(ctx, inst)
}

func (m *memRecords) Adopt(from *registry.Installation, org string) (*registry.Installation, error) {
	moved := *from
	moved.Org = org
	return &moved, nil
}

func (m *memRecords) Lock(context.Context, string) (func(), bool, error) { return func() {}, true, nil }

const web = "https://github.example.com"

func newApps(accounts ...string) (*Apps, *memRecords) {
	m := &memRecords{insts: map[string]registry.Installation{}}
	return NewApps(AppConfig{Records: m, WebURL: web, Accounts: accounts, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		AppID: func(context.Context) (int64, error) { return 7, nil }}), m
}

func installed(action string, id int64, account string, accountID int64) forge.Event {
	return forge.Event{Kind: forge.KindInstallation, Sender: "someone", Install: &forge.Install{Action: action, ID: id, Account: account, AccountID: accountID, Selection: "all"}}
}

// Only the accounts the bot serves have their installations recorded: a public App may
// be installed by anyone.
func TestAppsRecordOnlyTheAccountsServed(t *testing.T) {
	a, m := newApps("acme", "4711")
	ctx := context.Background()
	for _, ev := range []forge.Event{installed("created", 10, "acme", 1), installed("created", 11, "byid", 4711)} {
		if _, err := a.Handle(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	_, err := a.Handle(ctx, installed("created", 12, "stranger", 99))
	if !errors.Is(err, forge.ErrIgnoreEvent) || !strings.Contains(err.Error(), "ALBATROS_GITHUB_ACCOUNTS") {
		t.Fatalf("a stranger's installation: %v", err)
	}
	if _, err := a.Handle(ctx, installed("unsuspend", 12, "stranger", 99)); !errors.Is(err, forge.ErrIgnoreEvent) {
		t.Fatalf("a stranger's unsuspend: %v", err)
	}
	if len(m.insts) != 2 || m.insts[web+"/acme"].InstallationID != 10 || m.insts[web+"/acme"].AppID != 7 || m.insts[web+"/byid"].OrgID != 4711 {
		t.Fatalf("records %+v", m.insts)
	}
}

// Sync makes up for the events the bot missed, within the accounts it serves, and removes
// only the current App's records.
func TestAppsSync(t *testing.T) {
	a, m := newApps("acme", "gone", "held", "other-app", "newer")
	ctx := context.Background()
	m.insts[web+"/gone"] = registry.Installation{Forge: "github", URL: web, Org: "gone", OrgID: 2, InstallationID: 20, AppID: 7}
	m.insts[web+"/other-app"] = registry.Installation{Forge: "github", URL: web, Org: "other-app", OrgID: 3, InstallationID: 30, AppID: 6}
	m.insts[web+"/newer"] = registry.Installation{Forge: "github", URL: web, Org: "newer", OrgID: 4, InstallationID: 45, AppID: 7}
	a.cfg.Accounts = append(a.cfg.Accounts, "notanymore")
	m.insts[web+"/notanymore"] = registry.Installation{Forge: "github", URL: web, Org: "notanymore", OrgID: 5, InstallationID: 50, AppID: 7}
	a.cfg.Accounts = a.cfg.Accounts[:len(a.cfg.Accounts)-1]
	listed := []forge.Install{
		{Action: "created", ID: 10, Account: "acme", AccountID: 1, Selection: "selected", Added: []forge.Repo{{Name: "App"}}},
		{Action: "suspend", ID: 60, Account: "held", AccountID: 6, Selection: "all"},
		{Action: "created", ID: 50, Account: "notanymore", AccountID: 5, Selection: "all"},
		{Action: "created", ID: 70, Account: "stranger", AccountID: 9, Selection: "all"},
	}
	if _, err := a.Sync(ctx, 7, listed); err != nil {
		t.Fatal(err)
	}
	if inst, ok := m.insts[web+"/acme"]; !ok || inst.InstallationID != 10 || inst.Selection != "selected" || len(inst.Selected) != 1 || inst.Selected[0] != "app" {
		t.Errorf("an installation whose event was lost: %+v", inst)
	}
	if inst := m.insts[web+"/held"]; !inst.Suspended {
		t.Errorf("a suspended installation: %+v", inst)
	}
	if _, ok := m.insts[web+"/gone"]; ok {
		t.Error("an installation GitHub no longer has is still recorded")
	}
	if _, ok := m.insts[web+"/other-app"]; !ok {
		t.Error("another App's installation was removed")
	}
	if _, ok := m.insts[web+"/newer"]; ok {
		t.Error("newer: not listed, still recorded")
	}
	if inst := m.insts[web+"/notanymore"]; inst.Quarantine != notServed {
		t.Errorf("an account no longer served: %+v", inst)
	}
	if _, ok := m.insts[web+"/stranger"]; ok {
		t.Error("a stranger's installation recorded by the sync")
	}
	// An account renamed on GitHub: its record follows it.
	m.insts[web+"/oldname"] = registry.Installation{Forge: "github", URL: web, Org: "oldname", OrgID: 8, InstallationID: 80, AppID: 7,
		Settings: registry.Settings{Flavors: []string{"nix"}}}
	a.cfg.Accounts = append(a.cfg.Accounts, "newname")
	if _, err := a.Sync(ctx, 7, append(listed, forge.Install{Action: "created", ID: 80, Account: "newname", AccountID: 8, Selection: "all"})); err != nil {
		t.Fatal(err)
	}
	if inst, ok := m.insts[web+"/newname"]; !ok || inst.OrgID != 8 || len(inst.Settings.Flavors) != 1 {
		t.Errorf("the renamed account's record: %+v", m.insts)
	}
	if _, ok := m.insts[web+"/oldname"]; ok {
		t.Error("the record under the former name stays")
	}
	// An older installation's event, redelivered, changes nothing.
	m.insts[web+"/acme"] = registry.Installation{Forge: "github", URL: web, Org: "acme", OrgID: 1, InstallationID: 15, AppID: 7}
	if what, err := a.Handle(ctx, installed("created", 10, "acme", 1)); err != nil || !strings.Contains(what, "older") || m.insts[web+"/acme"].InstallationID != 15 {
		t.Errorf("an older installation's created: %q, %v, %+v", what, err, m.insts[web+"/acme"])
	}
}
