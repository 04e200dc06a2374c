package install

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/albatros-ci/albatros/forge"
	"github.com/albatros-ci/albatros/registry"
)

// On GitHub, installing is GitHub's own: an account's owner installs the bot's GitHub App
// there, and GitHub tells the bot with an installation event, which GitHub signs with the
// App's webhook secret. The bot records the installation as it records a Gitea
// organization's (registry.Installation, Forge github), keyed by the account's URL and
// bound to the account's and the installation's numeric ids; it has no webhook of its own
// to repair, and no ownership to take: the App's installation token is its access.

// appRecords is the registry as the App's installations use it.
type appRecords interface {
	Installation(ctx context.Context, orgURL string) (*registry.Installation, error)
	Installations(ctx context.Context) ([]*registry.Installation, error)
	PutInstallation(ctx context.Context, inst *registry.Installation) error
	DeleteInstallation(ctx context.Context, inst *registry.Installation) error
	Shelve(ctx context.Context, inst *registry.Installation) error
	Shelved(ctx context.Context) ([]*registry.Installation, error)
	Unshelve(ctx context.Context, inst *registry.Installation) error
	Adopt(from *registry.Installation, org string) (*registry.Installation, error)
	Lock(ctx context.Context, name string) (unlock func(), ok bool, err error)
}

// AppConfig is what an Apps is made of.
type AppConfig struct {
	Records appRecords
	// WebURL is the GitHub the App lives on (https://github.com, or a GitHub Enterprise
	// Server's): installations are keyed by <WebURL>/<account>.
	WebURL string
	// Forget, when set, is told of an installation deleted: its client (and token) goes.
	Forget func(id int64)
	// AppID is the id of the App whose installations these are (recorded with each).
	AppID func(ctx context.Context) (int64, error)
	// Accounts, when not empty, are the only accounts whose installations are recorded,
	// by numeric id (an entry of digits only), or by login (any case): a public App may be
	// installed by anyone.
	Accounts []string
	// Gone, when set, confirms that GitHub has no installation id any more before the
	// sync removes its record; without it the sync removes none.
	Gone func(ctx context.Context, id int64) (bool, error)
	Log  *slog.Logger
}

// Apps records the installations of the bot's GitHub App from GitHub's events.
type Apps struct{ cfg AppConfig }

// NewApps returns the recorder of the App's installations.
func NewApps(cfg AppConfig) *Apps {
	cfg.WebURL = strings.TrimSuffix(cfg.WebURL, "/")
	return &Apps{cfg: cfg}
}

// Handle records what a KindInstallation event says: an installation created (a record
// made, or the account's own made again with its settings), deleted (the record removed),
// suspended or unsuspended, or given other repositories. An event about another
// installation of the account than the one recorded (an old one's, redelivered) changes
// nothing. It returns what it did, for the log and the answer.
func (a *Apps) Handle(ctx context.Context, ev forge.Event) (string, error) {
	return a.handle(ctx, ev, false)
}

// handle is Handle; with record, ev (of an installation GitHub lists, suspended or not) is
// recorded as created.
func (a *Apps) handle(ctx context.Context, ev forge.Event, record bool) (string, error) {
	in := ev.Install
	if ev.Kind != forge.KindInstallation || in == nil {
		return "", fmt.Errorf("%w: not an installation event", forge.ErrMalformed)
	}
	orgURL := registry.OrgURLOf(a.cfg.WebURL, in.Account)
	unlock, ok, err := a.cfg.Records.Lock(ctx, "install-github/"+strings.ToLower(in.Account))
	if err != nil {
		return "", err
	}
	if !ok {
		return "", ErrBusy
	}
	defer unlock()
	inst, err := a.cfg.Records.Installation(ctx, orgURL)
	switch {
	case errors.Is(err, registry.ErrNotFound):
		inst = nil
	case err != nil:
		return "", err
	}
	ours := inst != nil && inst.Forge == "github" && inst.OrgID == in.AccountID && inst.InstallationID == in.ID
	if record {
		return a.created(ctx, ev, inst)
	}
	switch in.Action {
	case "created":
		return a.created(ctx, ev, inst)
	case "deleted":
		if !ours {
			return "nothing recorded of this installation: nothing to remove", nil
		}
		if err := a.cfg.Records.DeleteInstallation(ctx, inst); err != nil {
			return "", err
		}
		// Its records moved aside go too: a later installation starts afresh, without
		// their secrets.
		if shelved, err := a.cfg.Records.Shelved(ctx); err == nil {
			for _, s := range shelved {
				if s.Forge == "github" && s.OrgID == in.AccountID {
					_ = a.cfg.Records.Unshelve(ctx, s)
				}
			}
		}
		if a.cfg.Forget != nil {
			a.cfg.Forget(in.ID)
		}
		a.cfg.Log.Info("github app uninstalled", "account", in.Account, "installation", in.ID, "by", ev.Sender)
		return "uninstalled from " + in.Account, nil
	case "suspend", "unsuspend":
		if !ours {
			if in.Action == "unsuspend" {
				return a.created(ctx, ev, inst) // its creation never reached the bot
			}
			return "nothing recorded of this installation: nothing to suspend", nil
		}
		inst.Suspended = in.Action == "suspend"
		if err := a.cfg.Records.PutInstallation(ctx, inst); err != nil {
			return "", err
		}
		a.cfg.Log.Info("github app "+in.Action+"ed", "account", in.Account, "installation", in.ID, "by", ev.Sender)
		return in.Action + "ed on " + in.Account, nil
	case "added", "removed":
		if !ours {
			if in.Action == "added" && in.Selection == "all" {
				return a.created(ctx, ev, inst)
			}
			return "nothing recorded of this installation: its repositories are not followed", nil
		}
		select_(inst, in)
		if err := a.cfg.Records.PutInstallation(ctx, inst); err != nil {
			return "", err
		}
		a.cfg.Log.Info("github app's repositories changed", "account", in.Account, "installation", in.ID, in.Action, names(in), "selection", inst.Selection)
		return fmt.Sprintf("%d repositories %s", len(in.Added)+len(in.Removed), in.Action), nil
	}
	return "", forge.Ignore("installation %s", in.Action)
}

// allowed reports whether the account may have the App's installation recorded.
func (a *Apps) allowed(login string, id int64) bool {
	if len(a.cfg.Accounts) == 0 {
		return true
	}
	return slices.ContainsFunc(a.cfg.Accounts, func(s string) bool {
		if strings.Trim(s, "0123456789") == "" {
			return s == strconv.FormatInt(id, 10) // GitHub allows logins of digits only
		}
		return strings.EqualFold(s, login)
	})
}

// Allowed reports whether the account may have the App's installation recorded.
func (a *Apps) Allowed(login string, id int64) bool { return a.allowed(login, id) }

// notServed is why an account not among AppConfig.Accounts has nothing recorded.
const notServed = "the account is not one this bot serves (ALBATROS_GITHUB_ACCOUNTS)"

// created records a new installation of the App on ev's account. The account's record,
// when it has one already (the App installed again), keeps its settings; one of another
// account that had the name is moved aside; one of this account under its former name
// (renamed since) follows it.
func (a *Apps) created(ctx context.Context, ev forge.Event, inst *registry.Installation) (string, error) {
	in := ev.Install
	var old *registry.Installation // the account's record under its former login, adopted
	if !a.allowed(in.Account, in.AccountID) {
		a.cfg.Log.Warn("github app installed on an account the bot does not serve: nothing recorded", "account", in.Account, "id", in.AccountID, "installation", in.ID, "by", ev.Sender)
		return "", forge.Ignore("%s: %s", in.Account, notServed)
	}
	switch {
	case inst != nil && inst.Forge == "github" && inst.OrgID == in.AccountID && inst.InstallationID > in.ID:
		// GitHub numbers installations in order: an older one's event, redelivered.
		return "an older installation's event: nothing changed", nil
	case inst != nil && inst.Forge == "github" && inst.OrgID == in.AccountID:
		// The same account: the installation made again keeps its settings.
	case inst != nil:
		if err := a.cfg.Records.Shelve(ctx, inst); err != nil {
			return "", err
		}
		a.cfg.Log.Warn("installation of another account moved aside: installing afresh", "account", in.Account, "id", in.AccountID, "was", inst.OrgID, "forge", inst.Forge)
		inst = nil
	}
	if inst == nil {
		if old = a.renamed(ctx, in); old != nil {
			moved, err := a.cfg.Records.Adopt(old, in.Account)
			if err != nil {
				return "", err
			}
			inst = moved
		}
	}
	if inst == nil {
		inst = &registry.Installation{Forge: "github", URL: a.cfg.WebURL, Org: in.Account, OrgID: in.AccountID,
			InstalledBy: ev.Sender, InstalledAt: time.Now().UTC().Truncate(time.Second)}
	}
	inst.Org, inst.InstallationID, inst.Quarantine, inst.Suspended = in.Account, in.ID, "", in.Action == "suspend"
	if a.cfg.AppID != nil {
		if id, err := a.cfg.AppID(ctx); err == nil {
			inst.AppID = id
		}
	}
	inst.Selection, inst.Selected = "", nil
	select_(inst, in)
	if err := a.cfg.Records.PutInstallation(ctx, inst); err != nil {
		return "", err
	}
	if old != nil {
		// Once the moved record is written: a failed write loses nothing.
		if err := a.cfg.Records.Unshelve(ctx, old); err != nil {
			if err := a.cfg.Records.DeleteInstallation(ctx, old); err != nil {
				a.cfg.Log.Warn("installation under the former name not deleted", "account", old.Org, "err", err)
			}
		}
	}
	a.cfg.Log.Info("github app installed", "account", in.Account, "id", in.AccountID, "installation", in.ID, "by", ev.Sender, "selection", inst.Selection, "repositories", names(in))
	return "installed on " + in.Account, nil
}

// follow moves the record of an account renamed on GitHub to its new login.
func (a *Apps) follow(ctx context.Context, inst *registry.Installation, login string) (string, error) {
	unlock, ok, err := a.cfg.Records.Lock(ctx, "install-github/"+strings.ToLower(inst.Org))
	if err != nil {
		return "", err
	}
	if !ok {
		return "", ErrBusy
	}
	defer unlock()
	moved, err := a.cfg.Records.Adopt(inst, login)
	if err != nil {
		return "", err
	}
	if err := a.cfg.Records.PutInstallation(ctx, moved); err != nil {
		return "", err
	}
	if err := a.cfg.Records.DeleteInstallation(ctx, inst); err != nil {
		a.cfg.Log.Warn("installation under the former name not deleted", "account", inst.Org, "err", err)
	}
	return inst.Org + " renamed " + login + " on GitHub: its installation follows it", nil
}

// renamed is the installation of in's account recorded under another name, if any: under
// its former login, or moved aside since (another account took the login and installed).
func (a *Apps) renamed(ctx context.Context, in *forge.Install) *registry.Installation {
	all, err := a.cfg.Records.Installations(ctx)
	if err != nil {
		a.cfg.Log.Warn("installations not listed: a renamed account's is not looked for", "err", err)
		return nil
	}
	shelved, err := a.cfg.Records.Shelved(ctx)
	if err != nil {
		a.cfg.Log.Warn("installations moved aside not listed: a renamed account's is not looked for there", "err", err)
	}
	for i, inst := range append(all, shelved...) {
		// A record moved aside is the account's under any login, its own again included.
		if inst.Forge == "github" && inst.OrgID == in.AccountID && (i >= len(all) || !strings.EqualFold(inst.Org, in.Account)) && strings.TrimSuffix(inst.URL, "/") == a.cfg.WebURL {
			return inst
		}
	}
	return nil
}

// select_ applies what an event says of the repositories the App was given.
func select_(inst *registry.Installation, in *forge.Install) {
	if in.Selection != "" {
		inst.Selection = in.Selection
	}
	if inst.Selection != "selected" {
		inst.Selected = nil
		return
	}
	for _, r := range in.Added {
		if n := strings.ToLower(r.Name); !slices.Contains(inst.Selected, n) {
			inst.Selected = append(inst.Selected, n)
		}
	}
	for _, r := range in.Removed {
		inst.Selected = slices.DeleteFunc(inst.Selected, func(n string) bool { return n == strings.ToLower(r.Name) })
	}
	slices.Sort(inst.Selected)
}

func names(in *forge.Install) []string {
	var out []string
	for _, r := range append(slices.Clone(in.Added), in.Removed...) {
		out = append(out, r.FullName)
	}
	return out
}

// Sync makes the records agree with the installations of the App appID as GitHub lists
// them now (listed: all of them; see github.App.Installations): an installation whose
// event never reached the bot (GitHub does not redeliver by itself) is recorded; a
// suspension, or a change of repositories, it missed is applied; the record of an
// installation of that App that GitHub no longer has is removed (another App's, when the
// bot's App was replaced, is left alone). It returns what it changed.
func (a *Apps) Sync(ctx context.Context, appID int64, listed []forge.Install) ([]string, error) {
	byAccount := map[int64]forge.Install{}
	for _, in := range listed {
		byAccount[in.AccountID] = in
	}
	all, err := a.cfg.Records.Installations(ctx)
	if err != nil {
		return nil, err
	}
	var changed []string
	var errs []error
	recorded := map[int64]bool{}
	for _, inst := range all {
		if inst.Forge != "github" || inst.InstallationID == 0 || strings.TrimSuffix(inst.URL, "/") != a.cfg.WebURL {
			continue
		}
		in, ok := byAccount[inst.OrgID]
		if !ok && inst.AppID != appID {
			continue // another App's, or recorded before apps were: not this App's to remove
		}
		if !ok {
			// Not listed: gone, or missed by a listing that shifted while it was read.
			// GitHub must say the installation is gone.
			if a.cfg.Gone == nil {
				continue
			}
			gone, err := a.cfg.Gone(ctx, inst.InstallationID)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if !gone {
				continue
			}
			what, err := a.Handle(ctx, forge.Event{Kind: forge.KindInstallation, Install: &forge.Install{Action: "deleted", ID: inst.InstallationID, Account: inst.Org, AccountID: inst.OrgID}})
			if err != nil {
				errs = append(errs, err)
			} else {
				changed = append(changed, inst.Org+": GitHub has no installation of the App there any more: "+what)
			}
			continue
		}
		if in.ID != inst.InstallationID {
			continue // installed anew since: recorded below
		}
		recorded[in.ID] = true
		if !strings.EqualFold(in.Account, inst.Org) && a.allowed(in.Account, in.AccountID) {
			// The account renamed (same id, same installation): its record follows it.
			if what, err := a.follow(ctx, inst, in.Account); err != nil {
				errs = append(errs, err)
			} else {
				changed = append(changed, what)
			}
			continue
		}
		if !a.allowed(in.Account, in.AccountID) {
			if inst.Quarantine != notServed {
				inst.Quarantine = notServed
				if err := a.cfg.Records.PutInstallation(ctx, inst); err != nil {
					errs = append(errs, err)
				} else {
					changed = append(changed, inst.Org+": "+notServed+": held")
				}
			}
			continue
		}
		suspended := in.Action == "suspend"
		var names []string
		for _, r := range in.Added {
			names = append(names, strings.ToLower(r.Name))
		}
		slices.Sort(names)
		sameRepos := in.ReposUnknown || (in.Selection == inst.Selection && (in.Selection != "selected" || suspended || slices.Equal(names, inst.Selected)))
		if inst.Suspended == suspended && sameRepos {
			continue
		}
		unlock, ok, err := a.cfg.Records.Lock(ctx, "install-github/"+strings.ToLower(inst.Org))
		if err != nil || !ok {
			errs = append(errs, errors.Join(err, ErrBusy))
			continue
		}
		inst.Suspended = suspended
		if !sameRepos {
			inst.Selection, inst.Selected = in.Selection, nil
			if in.Selection == "selected" {
				inst.Selected = names
			}
		}
		err = a.cfg.Records.PutInstallation(ctx, inst)
		unlock()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		changed = append(changed, fmt.Sprintf("%s: suspended %v, repositories %s %v, as GitHub has them", inst.Org, suspended, inst.Selection, inst.Selected))
	}
	for _, in := range listed {
		if recorded[in.ID] || !a.allowed(in.Account, in.AccountID) {
			continue
		}
		in := in
		what, err := a.handle(ctx, forge.Event{Kind: forge.KindInstallation, Install: &in}, true)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		changed = append(changed, in.Account+": an installation whose event never arrived: "+what)
	}
	for _, c := range changed {
		a.cfg.Log.Warn("github app's installations synced", "change", c)
	}
	return changed, errors.Join(errs...)
}
