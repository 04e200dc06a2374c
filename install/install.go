// Package install puts Albatros on a Gitea organization and keeps it there. Installing, with
// the token of one of the organization's owners (used for this and then dropped), makes the
// bot's own account an owner of the organization (Gitea lets only owners manage an
// organization's webhooks and teams, and see who is in its teams), creates the
// organization's webhook with a fresh secret, and records the installation in the
// registry. From then on the bot acts as itself: at start and at every check interval it
// finds each installation's webhook and puts it back as it should be (created again when
// deleted, set back when changed), and uninstalling removes the webhook, the record and the
// bot's ownership.
//
// Two bots never act on one installation at once: each action holds a Consul lock on it.
// The package speaks forge and registry types; the Gitea client and Consul stay in their
// packages.
package install

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/albatros-ci/albatros/forge"
	"github.com/albatros-ci/albatros/registry"
)

// Events are the webhook events the bot asks for: pushes (branches and tags), branch and tag
// creation and deletion, and pull requests with their comments. Gitea lists
// "pull_request" as the whole family it stands for.
var Events = []string{"create", "delete", "pull_request", "pull_request_comment", "pull_request_sync", "push"}

// records is the registry as installing uses it.
type records interface {
	Installation(ctx context.Context, orgURL string) (*registry.Installation, error)
	Installations(ctx context.Context) ([]*registry.Installation, error)
	PutInstallation(ctx context.Context, inst *registry.Installation) error
	DeleteInstallation(ctx context.Context, inst *registry.Installation) error
	SealHookSecret(inst *registry.Installation, secret string) error
	HookSecret(inst *registry.Installation) (string, error)
	BindOrg(inst *registry.Installation, id int64) error
	Adopt(from *registry.Installation, org string) (*registry.Installation, error)
	Shelve(ctx context.Context, inst *registry.Installation) error
	Shelved(ctx context.Context) ([]*registry.Installation, error)
	Unshelve(ctx context.Context, inst *registry.Installation) error
	Lock(ctx context.Context, name string) (unlock func(), ok bool, err error)
}

// Owner is a forge client that can act on an organization as one of its owners.
type Owner interface {
	forge.Account
	forge.OrgOwners
}

// BotClient is the bot's own client: once an owner, it manages the organization's webhook,
// and finds the ids of its users and teams.
type BotClient interface {
	forge.OrgHooks
	forge.OrgOwners
	forge.Users
	forge.TeamMembers
}

// Config is what an Installer is made of.
type Config struct {
	Records records
	// Bot is the bot account's client, BotLogin its login.
	Bot      BotClient
	BotLogin string
	// ForgeURL is the Gitea the bot works with; HookURL where its webhooks post
	// (<ALBATROS_URL>/webhook/gitea).
	ForgeURL, HookURL string
	Log               *slog.Logger
}

// Installer installs, checks and uninstalls.
type Installer struct{ cfg Config }

// New returns an installer.
func New(cfg Config) *Installer {
	cfg.ForgeURL = strings.TrimSuffix(cfg.ForgeURL, "/")
	return &Installer{cfg: cfg}
}

// Errors of installing.
var (
	// ErrNotOwner is returned when the user asking is not an owner of the organization.
	ErrNotOwner = errors.New("not an owner of the organization")
	// ErrBusy is returned when another bot holds the installation's lock.
	ErrBusy = errors.New("another bot is working on this installation; try again")
	// ErrNotInstalled is returned for an organization without an installation.
	ErrNotInstalled = errors.New("albatros is not installed on this organization")
)

// OrgURL is the URL of org on the bot's forge: its installation's key.
func (in *Installer) OrgURL(org string) string { return registry.OrgURLOf(in.cfg.ForgeURL, org) }

// lock holds the installation's lock while f runs.
func (in *Installer) lock(ctx context.Context, org string, f func() error) error {
	unlock, ok, err := in.cfg.Records.Lock(ctx, "install/"+org)
	if err != nil {
		return err
	}
	if !ok {
		return ErrBusy
	}
	defer unlock()
	return f()
}

// Install installs Albatros on org, acting with user, a client of one of org's owners: it
// makes the bot an owner, creates the webhook and records the installation. Installing an
// installed organization checks and repairs it instead.
func (in *Installer) Install(ctx context.Context, user Owner, org string) (*registry.Installation, error) {
	login, err := user.Me(ctx)
	if err != nil {
		return nil, err
	}
	// One installation per organization, however its name is spelled in the request.
	if org, err = user.OrgName(ctx, org); err != nil {
		return nil, err
	}
	owner, err := user.IsOwner(ctx, org, login)
	if err != nil {
		return nil, err
	}
	if !owner {
		return nil, fmt.Errorf("%s: %w %s", login, ErrNotOwner, org)
	}
	orgID, err := user.OrgID(ctx, org)
	if err != nil {
		return nil, err
	}
	var inst *registry.Installation
	err = in.lock(ctx, org, func() error {
		existing, err := in.cfg.Records.Installation(ctx, in.OrgURL(org))
		switch {
		case err == nil && existing.Quarantine == "" && (existing.OrgID == orgID || existing.OrgID == 0):
			inst = existing
			// The owner asks again: make sure the bot can act, then repair as a check does.
			if err := user.AddOwner(ctx, org, in.cfg.BotLogin); err != nil {
				return err
			}
			_, err := in.repair(ctx, inst)
			return err
		case err == nil:
			// Quarantined, or another organization's: this organization starts afresh;
			// nothing of the one that had its name passes to it. The old record is moved
			// aside, not deleted: its organization, renamed, may install again.
			if err := in.cfg.Records.Shelve(ctx, existing); err != nil {
				return err
			}
			in.cfg.Log.Warn("installation of another organization moved aside: installing afresh", "org", org, "id", orgID, "was", existing.OrgID, "quarantine", existing.Quarantine)
		case !errors.Is(err, registry.ErrNotFound):
			return err
		}
		if err := user.AddOwner(ctx, org, in.cfg.BotLogin); err != nil {
			return fmt.Errorf("make the bot account %s an owner of %s: %w", in.cfg.BotLogin, org, err)
		}
		// The organization renamed: its installation under the old name, quarantined
		// since, is its own, with its settings and secrets.
		if old := in.renamed(ctx, org, orgID); old != nil {
			moved, err := in.cfg.Records.Adopt(old, org)
			if err != nil {
				return err
			}
			if err := in.cfg.Records.PutInstallation(ctx, moved); err != nil {
				return err
			}
			if err := in.drop(ctx, old); err != nil {
				in.cfg.Log.Warn("installation under the old name not deleted", "org", old.Org, "err", err)
			}
			inst = moved
			in.cfg.Log.Info("albatros installed again on a renamed organization: its installation follows it", "org", org, "was", old.Org, "id", orgID, "by", login)
			_, err = in.repair(ctx, inst)
			return err
		}
		inst = &registry.Installation{Forge: "gitea", URL: in.cfg.ForgeURL, Org: org, OrgID: orgID, InstalledBy: login, InstalledAt: time.Now().UTC().Truncate(time.Second)}
		// Not installed after all: leave nothing behind, the bot's ownership included.
		undo := func() {
			ctx := context.WithoutCancel(ctx)
			if inst.Hook.ID != 0 {
				_ = in.cfg.Bot.DeleteOrgHook(ctx, org, inst.Hook.ID)
			}
			_ = user.RemoveOwner(ctx, org, in.cfg.BotLogin)
		}
		if err := in.createHook(ctx, inst); err != nil {
			undo()
			return err
		}
		if err := in.cfg.Records.PutInstallation(ctx, inst); err != nil {
			undo()
			return err
		}
		in.cfg.Log.Info("albatros installed", "org", org, "by", login, "hook", inst.Hook.ID)
		return nil
	})
	return inst, err
}

// renamed returns the installation, under another name, of the organization of id orgID:
// quarantined since the organization was renamed (under its old name, or moved aside since).
func (in *Installer) renamed(ctx context.Context, org string, orgID int64) *registry.Installation {
	all, err := in.cfg.Records.Installations(ctx)
	if err != nil {
		in.cfg.Log.Warn("installations not listed: a renamed organization's is not looked for", "err", err)
		return nil
	}
	shelved, err := in.cfg.Records.Shelved(ctx)
	if err != nil {
		in.cfg.Log.Warn("installations moved aside not listed: a renamed organization's is not looked for there", "err", err)
	}
	for _, inst := range append(all, shelved...) {
		if inst.OrgID == orgID && !strings.EqualFold(inst.Org, org) && strings.TrimSuffix(inst.URL, "/") == in.cfg.ForgeURL {
			return inst
		}
	}
	return nil
}

// drop deletes an installation adopted by its renamed organization, from its organization's
// old key or from the shelf.
func (in *Installer) drop(ctx context.Context, inst *registry.Installation) error {
	if err := in.cfg.Records.Unshelve(ctx, inst); err == nil {
		return nil
	}
	return in.cfg.Records.DeleteInstallation(ctx, inst)
}

// createHook creates the organization's webhook with a fresh secret, recorded (sealed) in
// inst.
func (in *Installer) createHook(ctx context.Context, inst *registry.Installation) error {
	secret, err := newSecret()
	if err != nil {
		return err
	}
	h, err := in.cfg.Bot.CreateOrgHook(ctx, inst.Org, in.hook(secret))
	if err != nil {
		return err
	}
	inst.Hook.ID, inst.Hook.URL = h.ID, in.cfg.HookURL
	return in.cfg.Records.SealHookSecret(inst, secret)
}

// hook is the webhook as the bot wants it.
func (in *Installer) hook(secret string) forge.Hook {
	return forge.Hook{URL: in.cfg.HookURL, ContentType: "json", Events: Events, Active: true, Secret: secret}
}

func newSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// Uninstall removes the webhook, the installation's record and the bot's ownership of org.
// The caller has checked that the user asking owns org.
func (in *Installer) Uninstall(ctx context.Context, org string) error {
	name, err := in.cfg.Bot.OrgName(ctx, org)
	switch {
	case errors.Is(err, forge.ErrNotFound):
		// Gone: its installation, quarantined, is uninstalled by the name it had.
	case err != nil:
		return err
	default:
		org = name
	}
	return in.lock(ctx, org, func() error {
		inst, err := in.cfg.Records.Installation(ctx, in.OrgURL(org))
		if errors.Is(err, registry.ErrNotFound) {
			return fmt.Errorf("%s: %w", org, ErrNotInstalled)
		}
		if err != nil {
			return err
		}
		if inst.Quarantine == "" {
			// Only the organization the installation is its own may uninstall it.
			if err := in.identify(ctx, inst); err != nil && !errors.Is(err, ErrQuarantined) {
				return err
			}
		}
		if inst.Quarantine != "" {
			// Its organization is gone or another one: nothing of the bot is there to
			// remove, and the bot has no business there. The record is moved aside, for
			// its organization, renamed, to install again.
			if err := in.cfg.Records.Shelve(ctx, inst); err != nil {
				return err
			}
			in.cfg.Log.Info("quarantined installation moved aside", "org", org)
			return nil
		}
		hooks, err := in.cfg.Bot.ListOrgHooks(ctx, org)
		if err != nil {
			return err
		}
		for _, h := range hooks {
			if h.ID == inst.Hook.ID || h.URL == in.cfg.HookURL {
				if err := in.cfg.Bot.DeleteOrgHook(ctx, org, h.ID); err != nil {
					return err
				}
			}
		}
		if err := in.cfg.Records.DeleteInstallation(ctx, inst); err != nil {
			return err
		}
		// Last: once no longer an owner, the bot can do nothing more in org.
		if err := in.cfg.Bot.RemoveOwner(ctx, org, in.cfg.BotLogin); err != nil {
			return err
		}
		in.cfg.Log.Info("albatros uninstalled", "org", org)
		return nil
	})
}

// Check finds org's webhook and the bot's ownership as they are, and repairs the webhook:
// created again when deleted (with a new secret, recorded), set back when its URL, content
// type, events or state changed. It returns what it repaired; a busy lock is not an error
// (the other bot checks).
func (in *Installer) Check(ctx context.Context, org string) (repaired []string, err error) {
	err = in.lock(ctx, org, func() error {
		inst, err := in.cfg.Records.Installation(ctx, in.OrgURL(org))
		if err != nil {
			return err
		}
		repaired, err = in.repair(ctx, inst)
		return err
	})
	if errors.Is(err, ErrBusy) {
		return nil, nil
	}
	return repaired, err
}

// ErrLostOwnership is returned by Check when the bot is no longer an owner of the
// organization: it cannot repair anything there until an owner installs Albatros again.
var ErrLostOwnership = errors.New("the bot account is no longer an owner of the organization: install Albatros there again")

func (in *Installer) repair(ctx context.Context, inst *registry.Installation) ([]string, error) {
	if inst.Quarantine != "" {
		return nil, fmt.Errorf("%s: %w: %s", inst.Org, ErrQuarantined, inst.Quarantine)
	}
	if err := in.identify(ctx, inst); err != nil {
		return nil, err
	}
	org := inst.Org // renamed, maybe
	owner, err := in.cfg.Bot.IsOwner(ctx, org, in.cfg.BotLogin)
	if err != nil {
		return nil, err
	}
	if !owner {
		return nil, fmt.Errorf("%s: %w", org, ErrLostOwnership)
	}
	hooks, err := in.cfg.Bot.ListOrgHooks(ctx, org)
	if err != nil {
		return nil, err
	}
	var repaired []string
	i := slices.IndexFunc(hooks, func(h forge.Hook) bool { return h.ID == inst.Hook.ID })
	if i < 0 {
		old := inst.Hook.ID
		if err := in.createHook(ctx, inst); err != nil {
			return nil, err
		}
		if err := in.cfg.Records.PutInstallation(ctx, inst); err != nil {
			_ = in.cfg.Bot.DeleteOrgHook(context.WithoutCancel(ctx), org, inst.Hook.ID)
			return nil, err
		}
		repaired = append(repaired, fmt.Sprintf("webhook %d was deleted: created webhook %d with a new secret", old, inst.Hook.ID))
	} else if inst.Hook.URL == "" && hooks[i].URL != in.cfg.HookURL {
		// Recorded before installations named their bot's URL: the hook may be another
		// deployment's, which this one must not turn to itself.
		in.cfg.Log.Warn("webhook of an installation without its bot's URL points elsewhere: left alone", "org", org, "hook", inst.Hook.ID, "url", hooks[i].URL)
		return nil, nil
	} else if wrong := in.wrong(hooks[i]); len(wrong) > 0 {
		secret, err := in.cfg.Records.HookSecret(inst)
		if err != nil {
			return nil, err
		}
		h := in.hook(secret)
		h.ID = inst.Hook.ID
		if err := in.cfg.Bot.EditOrgHook(ctx, org, h); err != nil {
			return nil, err
		}
		repaired = append(repaired, fmt.Sprintf("webhook %d was changed (%s): set back", inst.Hook.ID, strings.Join(wrong, "; ")))
	}
	if inst.Hook.URL == "" {
		inst.Hook.URL = in.cfg.HookURL
		if err := in.cfg.Records.PutInstallation(ctx, inst); err != nil {
			return repaired, err
		}
	}
	// Other webhooks to the bot's URL are left over from a failed install or repair: they
	// would deliver twice, with a secret the bot does not know.
	for _, h := range hooks {
		if h.ID != inst.Hook.ID && h.URL == in.cfg.HookURL {
			if err := in.cfg.Bot.DeleteOrgHook(ctx, org, h.ID); err != nil {
				return repaired, err
			}
			repaired = append(repaired, fmt.Sprintf("deleted webhook %d, a second one to the bot", h.ID))
		}
	}
	for _, r := range repaired {
		in.cfg.Log.Warn("installation repaired", "org", org, "repair", r)
	}
	return repaired, nil
}

// ErrQuarantined is returned for an installation whose organization is gone, or is
// another organization now: nothing of it is built or repaired until an owner installs
// Albatros again.
var ErrQuarantined = errors.New("the installation is quarantined")

// identify makes sure that inst belongs to the organization that has its name now, by id.
// An installation made before ids were recorded is bound to the organization's id when the
// organization still holds its webhook (a webhook does not outlive its organization), and
// its trusted users and teams get their ids. An organization that is gone, or that is
// another one than the installation's, quarantines it (written, and ErrQuarantined).
func (in *Installer) identify(ctx context.Context, inst *registry.Installation) error {
	org := inst.Org
	id, err := in.cfg.Bot.OrgID(ctx, org)
	switch {
	case errors.Is(err, forge.ErrNotFound):
		return in.quarantine(ctx, inst, "the organization "+org+" is gone (deleted, or renamed)")
	case err != nil:
		return err
	case inst.OrgID != 0 && id != inst.OrgID:
		return in.quarantine(ctx, inst, fmt.Sprintf("the organization named %s now is another one (id %d, not %d)", org, id, inst.OrgID))
	case inst.OrgID != 0:
		return in.followRename(ctx, inst)
	}
	// Made before ids were recorded: the organization of this name is its own if it still
	// holds its webhook, which only an owner (the bot, since installing) can see.
	owner, err := in.cfg.Bot.IsOwner(ctx, org, in.cfg.BotLogin)
	if err != nil {
		return err
	}
	if !owner {
		return in.quarantine(ctx, inst, "the bot is not an owner of the organization named "+org+": it cannot prove that it is the one Albatros was installed on")
	}
	hooks, err := in.cfg.Bot.ListOrgHooks(ctx, org)
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(hooks, func(h forge.Hook) bool { return h.ID == inst.Hook.ID }) {
		return in.quarantine(ctx, inst, "its webhook is not on the organization named "+org+" any more: it may be another organization now")
	}
	if err := in.cfg.Records.BindOrg(inst, id); err != nil {
		return err
	}
	for _, repo := range append([]string{""}, slices.Sorted(maps.Keys(inst.Repos))...) {
		s := inst.SettingsOf(repo)
		// A user registered after the installation may be one an owner named later, or
		// someone who took a trusted name since: not knowing which, the bot drops them (the
		// log says so; an owner adds them again on the settings page, which records ids).
		if err := in.identifyTrusted(ctx, org, &s.Trusted, inst.InstalledAt); err != nil {
			in.cfg.Log.Warn("trusted users or teams without an id: left out", "org", org, "repo", repo, "err", err)
		}
		inst.SetSettings(repo, s)
	}
	if err := in.cfg.Records.PutInstallation(ctx, inst); err != nil {
		return err
	}
	in.cfg.Log.Info("installation bound to its organization's id", "org", org, "id", id)
	return nil
}

// followRename moves the installation of an organization that was renamed (Gitea answers
// for the old name with the organization under its new one, of the same id) to the new
// name: its deliveries name the repositories by the new name. When the new name has an
// installation already, the old one is quarantined instead.
func (in *Installer) followRename(ctx context.Context, inst *registry.Installation) error {
	name, err := in.cfg.Bot.OrgName(ctx, inst.Org)
	if err != nil || strings.EqualFold(name, inst.Org) {
		return err
	}
	moved, err := in.cfg.Records.Adopt(inst, name)
	if err != nil {
		return err
	}
	switch err := in.cfg.Records.PutInstallation(ctx, moved); {
	case errors.Is(err, registry.ErrConflict):
		return in.quarantine(ctx, inst, "the organization was renamed "+name+", which has an installation of its own")
	case err != nil:
		return err
	}
	if err := in.cfg.Records.DeleteInstallation(ctx, inst); err != nil {
		in.cfg.Log.Warn("installation under the old name not deleted", "org", inst.Org, "err", err)
	}
	in.cfg.Log.Warn("installation follows its renamed organization", "org", name, "was", inst.Org, "id", inst.OrgID)
	*inst = *moved
	return nil
}

// IdentifyTrusted records the ids of trusted users and teams of org that have none: by id,
// they are matched whatever name is given to someone else later. A user or team the forge
// does not know is dropped from the list, and said so in the error.
func (in *Installer) IdentifyTrusted(ctx context.Context, org string, t *registry.Trusted) error {
	return in.identifyTrusted(ctx, org, t, time.Time{})
}

// Identities is a forge client that tells the ids of users and teams.
type Identities interface {
	forge.Users
	forge.TeamMembers
}

// IdentifyWith is IdentifyTrusted, asking client: a GitHub App's installation's, say.
func IdentifyWith(ctx context.Context, client Identities, org string, t *registry.Trusted) error {
	return identify(ctx, client, org, t, time.Time{})
}

// identifyTrusted is IdentifyTrusted; a user who registered after named (when not zero),
// when the list was made, is someone else than the one it named, and is dropped too.
func (in *Installer) identifyTrusted(ctx context.Context, org string, t *registry.Trusted, named time.Time) error {
	return identify(ctx, in.cfg.Bot, org, t, named)
}

func identify(ctx context.Context, client Identities, org string, t *registry.Trusted, named time.Time) error {
	var gone []string
	users := t.Users[:0:0]
	for _, u := range t.Users {
		if _, ok := t.UserIDs[u]; ok {
			users = append(users, u)
			continue
		}
		id, registered, err := client.UserID(ctx, u)
		if errors.Is(err, forge.ErrNotFound) {
			gone = append(gone, "user "+u)
			continue
		}
		if err != nil {
			return err
		}
		if !named.IsZero() && registered.After(named) {
			gone = append(gone, "user "+u+" as named then (the name is someone's who registered since)")
			continue
		}
		if t.UserIDs == nil {
			t.UserIDs = map[string]int64{}
		}
		t.UserIDs[u] = id
		users = append(users, u)
	}
	teams := t.Teams[:0:0]
	for _, name := range t.Teams {
		if _, ok := t.TeamIDs[name]; ok {
			teams = append(teams, name)
			continue
		}
		id, err := client.TeamID(ctx, org, name)
		if errors.Is(err, forge.ErrNotFound) {
			gone = append(gone, "team "+name)
			continue
		}
		if err != nil {
			return err
		}
		if t.TeamIDs == nil {
			t.TeamIDs = map[string]int64{}
		}
		t.TeamIDs[name] = id
		teams = append(teams, name)
	}
	t.Users, t.Teams = users, teams
	for u := range t.UserIDs {
		if !slices.Contains(t.Users, u) {
			delete(t.UserIDs, u)
		}
	}
	for name := range t.TeamIDs {
		if !slices.Contains(t.Teams, name) {
			delete(t.TeamIDs, name)
		}
	}
	if len(gone) > 0 {
		return fmt.Errorf("%w: %s", forge.ErrNotFound, strings.Join(gone, ", "))
	}
	return nil
}

// quarantine records why inst is quarantined, logs it, and returns ErrQuarantined.
func (in *Installer) quarantine(ctx context.Context, inst *registry.Installation, why string) error {
	inst.Quarantine = why
	if err := in.cfg.Records.PutInstallation(ctx, inst); err != nil {
		return err
	}
	in.cfg.Log.Error("installation quarantined: nothing of it is built until an owner installs Albatros again", "org", inst.Org, "id", inst.OrgID, "why", why)
	return fmt.Errorf("%s: %w: %s", inst.Org, ErrQuarantined, why)
}

// wrong says how a webhook differs from the bot's.
func (in *Installer) wrong(h forge.Hook) []string {
	var out []string
	if h.URL != in.cfg.HookURL {
		out = append(out, fmt.Sprintf("url %s, not %s", h.URL, in.cfg.HookURL))
	}
	if h.ContentType != "json" {
		out = append(out, fmt.Sprintf("content type %q, not json", h.ContentType))
	}
	if !h.Active {
		out = append(out, "inactive")
	}
	var missing []string
	for _, e := range Events {
		if !slices.Contains(h.Events, e) {
			missing = append(missing, e)
		}
	}
	if len(missing) > 0 {
		out = append(out, "events "+strings.Join(missing, ", ")+" missing")
	}
	return out
}

// CheckAll checks every installation on the bot's forge, and logs what it could not check.
func (in *Installer) CheckAll(ctx context.Context) {
	all, err := in.cfg.Records.Installations(ctx)
	if err != nil {
		in.cfg.Log.Error("check installations", "err", err)
		return
	}
	for _, inst := range all {
		if strings.TrimSuffix(inst.URL, "/") != in.cfg.ForgeURL || (inst.Hook.URL != "" && inst.Hook.URL != in.cfg.HookURL) {
			continue // another deployment's: another forge, or another bot URL on it
		}
		if inst.Quarantine != "" {
			continue // said once, when quarantined; it waits for an owner to install again
		}
		if _, err := in.Check(ctx, inst.Org); err != nil {
			in.cfg.Log.Error("check installation", "org", inst.Org, "err", err)
		}
	}
}

// Run checks every installation at once and then every interval, until ctx ends.
func (in *Installer) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		in.CheckAll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
