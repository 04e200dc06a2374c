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
	shelf []registry.Installation
	gone  map[int64]bool // the installations GitHub says are gone
	// putErr, when set, fails every write.
	putErr error
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
	if m.putErr != nil {
		return m.putErr
	}
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
	m.mu.Lock()
	m.shelf = append(m.shelf, *inst)
	m.mu.Unlock()
	return m.DeleteInstallation(ctx, inst)
}

func (m *memRecords) Shelved(context.Context) ([]*registry.Installation, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*registry.Installation
	for _, inst := range m.shelf {
		inst := inst
		out = append(out, &inst)
	}
	return out, nil
}

func (m *memRecords) Unshelve(_ context.Context, inst *registry.Installation) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, s := range m.shelf {
		if s.OrgID == inst.OrgID && s.Org == inst.Org {
			m.shelf = append(m.shelf[:i], m.shelf[i+1:]...)
			return nil
		}
	}
	return errors.New("not shelved")
}

func (m *memRecords) Adopt(from *registry.Installation, org string) (*registry.Installation, error) {
	moved := *from
	moved.Org = org
	return &moved, nil
}

func (m *memRecords) Lock(context.Context, string) (func(), bool, error) { return func() {}, true, nil }

const web = "https://github.example.com"

func newApps(accounts ...string) (*Apps, *memRecords) {
	m := &memRecords{insts: map[string]registry.Installation{}, gone: map[int64]bool{}}
	return NewApps(AppConfig{Records: m, WebURL: web, Accounts: accounts, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		AppID: func(context.Context) (int64, error) { return 7, nil },
		Gone: func(_ context.Context, id int64) (bool, error) {
			m.mu.Lock()
			defer m.mu.Unlock()
			return m.gone[id], nil
		}}), m
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
	m.gone[20], m.gone[45] = true, true
	// Missed by a listing that shifted: not gone, its record stays.
	m.insts[web+"/acme"] = registry.Installation{}
	delete(m.insts, web+"/acme")
	m.insts[web+"/missed"] = registry.Installation{Forge: "github", URL: web, Org: "missed", OrgID: 12, InstallationID: 120, AppID: 7}
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
	if _, ok := m.insts[web+"/missed"]; !ok {
		t.Error("an installation a listing missed, which GitHub still has, was removed")
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

// An entry of digits names an id, not a login made of digits (GitHub allows those).
func TestAppsAccountsByID(t *testing.T) {
	a, _ := newApps("4711")
	if !a.Allowed("whoever", 4711) || a.Allowed("4711", 99) {
		t.Errorf("4711 allows id 4711: %v; the login 4711 of id 99: %v", a.Allowed("whoever", 4711), a.Allowed("4711", 99))
	}
}

// A renamed account follows its record only to a login the bot serves; a record moved
// aside because another account took the login and installed first is found again by
// the renamed account; a listing that could not read an installation's repositories
// leaves them as recorded.
func TestAppsSyncRenamesAndUnknowns(t *testing.T) {
	a, m := newApps("7", "8", "keep")
	ctx := context.Background()
	m.insts[web+"/old"] = registry.Installation{Forge: "github", URL: web, Org: "old", OrgID: 7, InstallationID: 70, AppID: 7}
	m.insts[web+"/keep"] = registry.Installation{Forge: "github", URL: web, Org: "keep", OrgID: 9, InstallationID: 90, AppID: 7, Selection: "selected", Selected: []string{"app"}}
	m.shelf = append(m.shelf, registry.Installation{Forge: "github", URL: web, Org: "victim", OrgID: 8, InstallationID: 80, AppID: 7,
		Settings: registry.Settings{Flavors: []string{"nix"}}})
	a.cfg.Accounts = []string{"7", "8", "keep"}
	if _, err := a.Sync(ctx, 7, []forge.Install{
		{Action: "created", ID: 70, Account: "old-renamed", AccountID: 7, Selection: "all"},
		{Action: "created", ID: 80, Account: "victim-renamed", AccountID: 8, Selection: "all"},
		{Action: "created", ID: 90, Account: "keep", AccountID: 9, Selection: "selected", ReposUnknown: true},
	}); err != nil {
		t.Fatal(err)
	}
	if _, ok := m.insts[web+"/old-renamed"]; !ok {
		t.Errorf("a renamed account served by id: %+v", m.insts)
	}
	if inst, ok := m.insts[web+"/victim-renamed"]; !ok || len(inst.Settings.Flavors) != 1 || len(m.shelf) != 0 {
		t.Errorf("the moved-aside record of the renamed account: %+v, shelf %+v", inst, m.shelf)
	}
	if inst := m.insts[web+"/keep"]; len(inst.Selected) != 1 || inst.Selected[0] != "app" {
		t.Errorf("repositories not read: %+v", inst)
	}
	// Renamed to a login not served (the list names logins): held, not followed.
	b, n := newApps("named")
	n.insts[web+"/named"] = registry.Installation{Forge: "github", URL: web, Org: "named", OrgID: 5, InstallationID: 50, AppID: 7}
	if _, err := b.Sync(ctx, 7, []forge.Install{{Action: "created", ID: 50, Account: "renamed", AccountID: 5, Selection: "all"}}); err != nil {
		t.Fatal(err)
	}
	if _, ok := n.insts[web+"/renamed"]; ok || n.insts[web+"/named"].Quarantine != notServed {
		t.Errorf("renamed to a login not served: %+v", n.insts)
	}
}

// A record moved aside comes back to its account, whatever its login now (its own login
// back included), only once the moved record is written; uninstalling takes the account's
// records moved aside too.
func TestAppsShelvedRecords(t *testing.T) {
	a, m := newApps()
	ctx := context.Background()
	victim := registry.Installation{Forge: "github", URL: web, Org: "victim", OrgID: 8, InstallationID: 80, AppID: 7, Settings: registry.Settings{Flavors: []string{"nix"}}}
	m.shelf = append(m.shelf, victim)
	m.putErr = errors.New("consul down")
	if _, err := a.Handle(ctx, installed("created", 81, "victim", 8)); err == nil {
		t.Fatal("a failed write said nothing")
	}
	if len(m.shelf) != 1 {
		t.Fatalf("the record moved aside was lost with a failed write: %+v", m.shelf)
	}
	m.putErr = nil
	if _, err := a.Handle(ctx, installed("created", 81, "victim", 8)); err != nil {
		t.Fatal(err)
	}
	if inst := m.insts[web+"/victim"]; len(inst.Settings.Flavors) != 1 || inst.InstallationID != 81 || len(m.shelf) != 0 {
		t.Fatalf("its own login back: %+v, shelf %+v", inst, m.shelf)
	}
	m.shelf = append(m.shelf, victim)
	if _, err := a.Handle(ctx, installed("deleted", 81, "victim", 8)); err != nil {
		t.Fatal(err)
	}
	if len(m.insts) != 0 || len(m.shelf) != 0 {
		t.Fatalf("after the uninstall: %+v, shelf %+v", m.insts, m.shelf)
	}
}
