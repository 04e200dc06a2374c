package registry

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	consul "github.com/hashicorp/consul/api"
)

// Installation is Albatros installed on a forge organization by one of its owners: the
// organization's webhook, and the settings its owners manage on the bot's pages. It is kept
// under `albatros/install/<base64 of the organization's URL>`, beside the per-repository
// entries, which win over it.
//
// The webhook secret and the repository secrets are sealed (package seal) with the bot's
// secret key; Installation holds them sealed, and the Repo that Registry.Repo makes of an
// installation holds them open, in memory only.
type Installation struct {
	// Forge is the forge's kind (gitea), URL its base URL, Org the organization's name.
	Forge string `json:"forge"`
	URL   string `json:"url"`
	Org   string `json:"org"`
	Hook  struct {
		// ID is the organization webhook's id on the forge.
		ID int64 `json:"id"`
		// URL is where it posts: the bot deployment (ALBATROS_URL) that owns the
		// installation, and the only one that repairs it.
		URL string `json:"url"`
		// Secret is the webhook's HMAC secret, sealed.
		Secret string `json:"secret"`
	} `json:"hook"`
	// InstalledBy is the login of the owner who installed it, InstalledAt when.
	InstalledBy string    `json:"installed_by"`
	InstalledAt time.Time `json:"installed_at"`
	// Settings apply to every repository of the organization.
	Settings Settings `json:"settings"`
	// Repos holds the settings of single repositories, by name, over the organization's.
	Repos map[string]Settings `json:"repos,omitempty"`

	index uint64 // Consul's ModifyIndex when read: the check-and-set of PutInstallation
}

// Settings are what an organization's owners set for its builds.
type Settings struct {
	Trusted Trusted `json:"trusted"`
	// Secrets are given to trusted builds as exported variables; values sealed.
	Secrets map[string]string `json:"secrets,omitempty"`
	// Flavors, when set, replace the default flavor.
	Flavors []string `json:"flavors,omitempty"`
	// Builder, when set, replaces the default builder.
	Builder *Builder `json:"builder,omitempty"`
}

// Trusted are the senders whose code gets the secrets: users by login, and the members of
// teams of the organization, by team name.
type Trusted struct {
	Users []string `json:"users,omitempty"`
	Teams []string `json:"teams,omitempty"`
}

// OrgURL is the installation's organization URL, its key in the registry.
func (i *Installation) OrgURL() string { return OrgURLOf(i.URL, i.Org) }

// OrgURLOf is the URL of the organization org on the forge at forgeURL.
func OrgURLOf(forgeURL, org string) string { return strings.TrimSuffix(forgeURL, "/") + "/" + org }

// Errors of the installation records.
var (
	// ErrConflict is returned by PutInstallation when the record changed since it was read
	// (or, for a new one, when one exists): read it again and retry.
	ErrConflict = errors.New("changed by someone else")
	// ErrNoKey is returned when an installation is read or written without a secret key.
	ErrNoKey = errors.New("no secret key (ALBATROS_SECRET_KEY) to open or seal installations")
)

// InstallKey is the KV key of an organization's installation.
func (r *Registry) InstallKey(orgURL string) string {
	return r.prefix + "install/" + base64.StdEncoding.EncodeToString([]byte(strings.TrimSuffix(orgURL, "/")))
}

// Installation reads the installation of the organization at orgURL from Consul itself,
// not from the entries the registry follows: what is read here is written back with a
// check-and-set, often under a lock that another bot released a moment ago. ErrNotFound
// when there is none.
func (r *Registry) Installation(ctx context.Context, orgURL string) (*Installation, error) {
	return r.installation(ctx, orgURL, true)
}

// installation reads an installation, from Consul itself when fresh, else as the registry
// reads its entries (from memory when it follows them: the delivery path).
func (r *Registry) installation(ctx context.Context, orgURL string, fresh bool) (*Installation, error) {
	key := r.InstallKey(orgURL)
	var pair *consul.KVPair
	var err error
	if fresh {
		pair, _, err = r.kv.Get(key, (&consul.QueryOptions{}).WithContext(ctx))
		if err != nil {
			err = fmt.Errorf("%w: consul get %s: %w", ErrUnavailable, key, err)
		}
	} else {
		pair, err = r.pair(ctx, key)
	}
	if err != nil {
		return nil, err
	}
	if pair == nil {
		return nil, fmt.Errorf("installation of %s: %w", orgURL, ErrNotFound)
	}
	return decodeInstallation(pair)
}

func decodeInstallation(pair *consul.KVPair) (*Installation, error) {
	var inst Installation
	if err := json.Unmarshal(pair.Value, &inst); err != nil {
		return nil, fmt.Errorf("consul key %s is not a valid installation: %w", pair.Key, err)
	}
	inst.index = pair.ModifyIndex
	return &inst, nil
}

// Installations lists every installation, in key order, from Consul itself (see
// Installation).
func (r *Registry) Installations(ctx context.Context) ([]*Installation, error) {
	pairs, _, err := r.kv.List(r.prefix+"install/", (&consul.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("%w: consul list %sinstall/: %w", ErrUnavailable, r.prefix, err)
	}
	var out []*Installation
	for _, p := range pairs {
		inst, err := decodeInstallation(p)
		if err != nil {
			return nil, err
		}
		out = append(out, inst)
	}
	return out, nil
}

// PutInstallation writes an installation with a check-and-set: a new one only if the
// organization has none, a read one only if it has not changed since. It returns
// ErrConflict otherwise. Values sealed by a previous key are sealed again with the current
// one. On success inst carries the new index, so that it can be written again.
func (r *Registry) PutInstallation(ctx context.Context, inst *Installation) error {
	if r.keys == nil {
		return ErrNoKey
	}
	if err := r.reseal(inst); err != nil {
		return err
	}
	b, err := json.Marshal(inst)
	if err != nil {
		return err
	}
	key := r.InstallKey(inst.OrgURL())
	// A transaction, so that the index it answers is the one of this write: the record may
	// be written again from inst, and only if nobody wrote it since.
	ok, resp, _, err := r.client.Txn().Txn(consul.TxnOps{{KV: &consul.KVTxnOp{Verb: consul.KVCAS, Key: key, Value: b, Index: inst.index}}},
		(&consul.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return fmt.Errorf("%w: consul cas %s: %w", ErrUnavailable, key, err)
	}
	if !ok || resp == nil || len(resp.Results) != 1 || resp.Results[0].KV == nil {
		return fmt.Errorf("installation of %s: %w", inst.OrgURL(), ErrConflict)
	}
	inst.index = resp.Results[0].KV.ModifyIndex
	r.wrote(key, b, inst.index)
	return nil
}

// DeleteInstallation removes an organization's installation, if it has not changed since
// it was read (ErrConflict otherwise).
func (r *Registry) DeleteInstallation(ctx context.Context, inst *Installation) error {
	key := r.InstallKey(inst.OrgURL())
	ok, _, err := r.kv.DeleteCAS(&consul.KVPair{Key: key, ModifyIndex: inst.index}, (&consul.WriteOptions{}).WithContext(ctx))
	if err != nil {
		return fmt.Errorf("%w: consul delete %s: %w", ErrUnavailable, key, err)
	}
	if !ok {
		return fmt.Errorf("installation of %s: %w", inst.OrgURL(), ErrConflict)
	}
	if r.mirror != nil {
		r.mirror.deleted(key)
	}
	return nil
}

// Purposes of the sealed values: a value sealed for one field cannot be opened in another.
func hookPurpose(orgURL string) string { return "hook-secret:" + orgURL }
func secretPurpose(orgURL, repo, name string) string {
	return "secret:" + orgURL + ":" + repo + ":" + name
}

// SealHookSecret seals an installation's webhook secret.
func (r *Registry) SealHookSecret(inst *Installation, secret string) error {
	if r.keys == nil {
		return ErrNoKey
	}
	inst.Hook.Secret = r.keys.Seal([]byte(secret), hookPurpose(inst.OrgURL()))
	return nil
}

// HookSecret opens an installation's webhook secret.
func (r *Registry) HookSecret(inst *Installation) (string, error) {
	if r.keys == nil {
		return "", ErrNoKey
	}
	b, err := r.keys.Open(inst.Hook.Secret, hookPurpose(inst.OrgURL()))
	if err != nil {
		return "", fmt.Errorf("webhook secret of %s: %w", inst.OrgURL(), err)
	}
	return string(b), nil
}

// SetSecret seals value as the secret name of the organization (repo "") or of one of its
// repositories.
func (r *Registry) SetSecret(inst *Installation, repo, name, value string) error {
	if r.keys == nil {
		return ErrNoKey
	}
	s := inst.settings(repo)
	if s.Secrets == nil {
		s.Secrets = map[string]string{}
	}
	s.Secrets[name] = r.keys.Seal([]byte(value), secretPurpose(inst.OrgURL(), repo, name))
	inst.setSettings(repo, s)
	return nil
}

// SettingsOf returns the settings of the organization (repo "") or of one of its
// repositories, as stored: secrets sealed.
func (i *Installation) SettingsOf(repo string) Settings { return i.settings(repo) }

// SetSettings replaces the settings of the organization (repo "") or of a repository.
func (i *Installation) SetSettings(repo string, s Settings) { i.setSettings(repo, s) }

func (i *Installation) settings(repo string) Settings {
	if repo == "" {
		return i.Settings
	}
	return i.Repos[repo]
}

func (i *Installation) setSettings(repo string, s Settings) {
	if repo == "" {
		i.Settings = s
		return
	}
	if i.Repos == nil {
		i.Repos = map[string]Settings{}
	}
	i.Repos[repo] = s
}

// reseal seals again, with the current key, every value a previous key sealed.
func (r *Registry) reseal(inst *Installation) error {
	org := inst.OrgURL()
	again := func(sealed, purpose string) (string, error) {
		if sealed == "" || r.keys.Current(sealed) {
			return sealed, nil
		}
		plain, err := r.keys.Open(sealed, purpose)
		if err != nil {
			return "", err
		}
		return r.keys.Seal(plain, purpose), nil
	}
	var err error
	if inst.Hook.Secret, err = again(inst.Hook.Secret, hookPurpose(org)); err != nil {
		return fmt.Errorf("webhook secret of %s: %w", org, err)
	}
	for _, repo := range append([]string{""}, slices.Sorted(maps.Keys(inst.Repos))...) {
		s := inst.settings(repo)
		for name, v := range s.Secrets {
			if s.Secrets[name], err = again(v, secretPurpose(org, repo, name)); err != nil {
				return fmt.Errorf("secret %s of %s %s: %w", name, org, repo, err)
			}
		}
	}
	return nil
}

// Reseal writes back every installation holding a value sealed by a previous key, sealed
// with the current one; it returns how many it rewrote. Run at start after a key rotation,
// it lets the previous key be dropped at the next restart.
func (r *Registry) Reseal(ctx context.Context) (int, error) {
	if r.keys == nil {
		return 0, nil
	}
	all, err := r.Installations(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, inst := range all {
		before, _ := json.Marshal(inst)
		if err := r.reseal(inst); err != nil {
			return n, err
		}
		after, _ := json.Marshal(inst)
		if string(before) == string(after) {
			continue
		}
		switch err := r.PutInstallation(ctx, inst); {
		case errors.Is(err, ErrConflict):
			continue // changed meanwhile: its writer sealed with the current key
		case err != nil:
			return n, err
		}
		n++
	}
	return n, nil
}

// fromInstallation is the entry of a repository of an installed organization: the
// organization's settings, with the repository's own over them (its flavors and builder
// replace the organization's, its trusted users and teams and its secrets add to them),
// secrets opened, and the installation's webhook secret.
func (r *Registry) fromInstallation(inst *Installation, repoName string) (*Repo, error) {
	if r.keys == nil {
		return nil, fmt.Errorf("installation of %s: %w", inst.OrgURL(), ErrNoKey)
	}
	secret, err := r.HookSecret(inst)
	if err != nil {
		return nil, err
	}
	e := &Repo{Installed: true}
	e.Hook.Secret = secret
	org, own := inst.Settings, inst.Repos[repoName]
	e.Trusted.Senders = union(org.Trusted.Users, own.Trusted.Users)
	e.Trusted.Teams = union(org.Trusted.Teams, own.Trusted.Teams)
	e.Flavors = org.Flavors
	if len(own.Flavors) > 0 {
		e.Flavors = own.Flavors
	}
	e.Builder = org.Builder
	if own.Builder != nil && own.Builder.Job != "" {
		e.Builder = own.Builder
	}
	layers := []struct {
		repo string
		s    Settings
	}{{"", org}, {repoName, own}}
	names := map[string]bool{}
	for _, layer := range layers {
		for name := range layer.s.Secrets {
			names[name] = true
		}
	}
	// Opened when first asked for (Repo.OpenSecrets), not to authenticate a delivery.
	orgURL := inst.OrgURL()
	e.SealSecrets(len(names), func() (map[string]string, error) {
		var plain map[string]string
		for _, layer := range layers {
			for name, sealed := range layer.s.Secrets {
				v, err := r.keys.Open(sealed, secretPurpose(orgURL, layer.repo, name))
				if err != nil {
					return nil, fmt.Errorf("secret %s of %s: %w", name, orgURL, err)
				}
				if plain == nil {
					plain = map[string]string{}
				}
				plain[name] = string(v)
			}
		}
		return plain, nil
	})
	return e, nil
}

func union(a, b []string) []string {
	out := slices.Clone(a)
	for _, s := range b {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}
