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
	Lock(ctx context.Context, name string) (unlock func(), ok bool, err error)
}

// Owner is a forge client that can act on an organization as one of its owners.
type Owner interface {
	forge.Account
	forge.OrgOwners
}

// BotClient is the bot's own client: once an owner, it manages the organization's webhook.
type BotClient interface {
	forge.OrgHooks
	forge.OrgOwners
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
	var inst *registry.Installation
	err = in.lock(ctx, org, func() error {
		existing, err := in.cfg.Records.Installation(ctx, in.OrgURL(org))
		switch {
		case err == nil:
			inst = existing
			// The owner asks again: make sure the bot can act, then repair as a check does.
			if err := user.AddOwner(ctx, org, in.cfg.BotLogin); err != nil {
				return err
			}
			_, err := in.repair(ctx, inst)
			return err
		case !errors.Is(err, registry.ErrNotFound):
			return err
		}
		if err := user.AddOwner(ctx, org, in.cfg.BotLogin); err != nil {
			return fmt.Errorf("make the bot account %s an owner of %s: %w", in.cfg.BotLogin, org, err)
		}
		inst = &registry.Installation{Forge: "gitea", URL: in.cfg.ForgeURL, Org: org, InstalledBy: login, InstalledAt: time.Now().UTC().Truncate(time.Second)}
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
	org, err := in.cfg.Bot.OrgName(ctx, org)
	if err != nil {
		return err
	}
	return in.lock(ctx, org, func() error {
		inst, err := in.cfg.Records.Installation(ctx, in.OrgURL(org))
		if errors.Is(err, registry.ErrNotFound) {
			return fmt.Errorf("%s: %w", org, ErrNotInstalled)
		}
		if err != nil {
			return err
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
	org := inst.Org
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
