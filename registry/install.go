package registry

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
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
	// Forge is the forge's kind (gitea), URL its base URL, Org the organization's name,
	// OrgID its numeric id on the forge: the organization the installation belongs to, as
	// a name can be taken again once its organization is deleted or renamed. The sealed
	// values are bound to it. 0 in records made before ids were recorded, until the
	// installations' check proves the organization is still the one (its webhook is
	// there) and records it.
	Forge string `json:"forge"`
	URL   string `json:"url"`
	Org   string `json:"org"`
	OrgID int64  `json:"org_id,omitempty"`
	// Quarantine, when set, says why nothing of the installation is built or shown any
	// more: its organization is gone, or the name is another organization's now. Only an
	// owner installing Albatros again lifts it.
	Quarantine string `json:"quarantine,omitempty"`
	Hook       struct {
		// ID is the organization webhook's id on the forge.
		ID int64 `json:"id"`
		// URL is where it posts: the bot deployment (ALBATROS_URL) that owns the
		// installation, and the only one that repairs it.
		URL string `json:"url"`
		// Secret is the webhook's HMAC secret, sealed.
		Secret string `json:"secret"`
	} `json:"hook"`
	// InstallationID is the GitHub App's installation on the account, of which Org is the
	// login and OrgID the id (Forge github); 0 on Gitea. Selection is "selected" when the
	// App was given some of the account's repositories only, named (lower case) in
	// Selected; Suspended is true while the account has suspended the App.
	InstallationID int64 `json:"installation_id,omitempty"`
	// AppID is the GitHub App the installation is of.
	AppID     int64    `json:"app_id,omitempty"`
	Selection string   `json:"selection,omitempty"`
	Selected  []string `json:"selected,omitempty"`
	Suspended bool     `json:"suspended,omitempty"`
	// InstalledBy is the login of the owner who installed it, InstalledAt when.
	InstalledBy string    `json:"installed_by"`
	InstalledAt time.Time `json:"installed_at"`
	// Settings apply to every repository of the organization.
	Settings Settings `json:"settings"`
	// Repos holds the settings of single repositories, by name, over the organization's.
	Repos map[string]Settings `json:"repos,omitempty"`

	index   uint64 // Consul's ModifyIndex when read: the check-and-set of PutInstallation
	shelved string // its key, when read from the shelf (Shelved)
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
	// Schedules and Params are a repository's (see Repo); an organization's are not used.
	Schedules []Schedule `json:"schedules,omitempty"`
	Params    []Param    `json:"params,omitempty"`
}

// Trusted are the senders whose code gets the secrets: users by login, and the members of
// teams of the organization, by team name; with their numeric ids on the forge, by which
// they are matched (UserIDs by login, TeamIDs by team name).
type Trusted struct {
	Users   []string         `json:"users,omitempty"`
	Teams   []string         `json:"teams,omitempty"`
	UserIDs map[string]int64 `json:"user_ids,omitempty"`
	TeamIDs map[string]int64 `json:"team_ids,omitempty"`
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

// Shelve moves a quarantined installation aside, off its organization's key, for the
// organization's name to be installed afresh: under install-shelved/, where a renamed
// organization installing again under its new name finds it (Shelved), and where an
// operator can read it. Nothing of it is built or shown meanwhile. It returns ErrConflict
// when the record changed since it was read.
func (r *Registry) Shelve(ctx context.Context, inst *Installation) error {
	b, err := json.Marshal(inst)
	if err != nil {
		return err
	}
	key := r.InstallKey(inst.OrgURL())
	shelf := fmt.Sprintf("%sinstall-shelved/%d-%s-%d", r.prefix, inst.OrgID, base64.RawURLEncoding.EncodeToString([]byte(inst.OrgURL())), time.Now().UnixNano())
	ok, _, _, err := r.client.Txn().Txn(consul.TxnOps{
		{KV: &consul.KVTxnOp{Verb: consul.KVDeleteCAS, Key: key, Index: inst.index}},
		{KV: &consul.KVTxnOp{Verb: consul.KVSet, Key: shelf, Value: b}},
	}, (&consul.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return fmt.Errorf("%w: shelve %s: %w", ErrUnavailable, key, err)
	}
	if !ok {
		return fmt.Errorf("installation of %s: %w", inst.OrgURL(), ErrConflict)
	}
	if r.mirror != nil {
		r.mirror.deleted(key)
	}
	return nil
}

// Shelved lists the installations Shelve moved aside, from Consul itself.
func (r *Registry) Shelved(ctx context.Context) ([]*Installation, error) {
	pairs, _, err := r.kv.List(r.prefix+"install-shelved/", (&consul.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("%w: consul list %sinstall-shelved/: %w", ErrUnavailable, r.prefix, err)
	}
	var out []*Installation
	for _, p := range pairs {
		inst, err := decodeInstallation(p)
		if err != nil {
			return nil, err
		}
		inst.shelved = p.Key
		out = append(out, inst)
	}
	return out, nil
}

// Unshelve deletes a shelved installation (Shelved) once adopted.
func (r *Registry) Unshelve(ctx context.Context, inst *Installation) error {
	if inst.shelved == "" {
		return fmt.Errorf("installation of %s is not a shelved one", inst.OrgURL())
	}
	if _, err := r.kv.Delete(inst.shelved, (&consul.WriteOptions{}).WithContext(ctx)); err != nil {
		return fmt.Errorf("%w: consul delete %s: %w", ErrUnavailable, inst.shelved, err)
	}
	return nil
}

// Purposes of the sealed values: a value sealed for one field cannot be opened in another,
// nor in the record of another organization (by URL, and by id once recorded).
func hookPurpose(orgURL string, orgID int64) string { return "hook-secret:" + orgURL + idPart(orgID) }
func secretPurpose(orgURL string, orgID int64, repo, name string) string {
	return "secret:" + orgURL + idPart(orgID) + ":" + repo + ":" + name
}

// idPart is what an organization's id adds to a purpose: nothing for records made before
// ids were recorded.
func idPart(orgID int64) string {
	if orgID == 0 {
		return ""
	}
	return "#" + strconv.FormatInt(orgID, 10)
}

// SealHookSecret seals an installation's webhook secret.
func (r *Registry) SealHookSecret(inst *Installation, secret string) error {
	if r.keys == nil {
		return ErrNoKey
	}
	inst.Hook.Secret = r.keys.Seal([]byte(secret), hookPurpose(inst.OrgURL(), inst.OrgID))
	return nil
}

// HookSecret opens an installation's webhook secret; "" for a GitHub App's installation,
// whose deliveries are signed with the App's secret.
func (r *Registry) HookSecret(inst *Installation) (string, error) {
	if r.keys == nil {
		return "", ErrNoKey
	}
	if inst.Hook.Secret == "" && inst.InstallationID != 0 {
		return "", nil
	}
	b, err := r.keys.Open(inst.Hook.Secret, hookPurpose(inst.OrgURL(), inst.OrgID))
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
	s.Secrets[name] = r.keys.Seal([]byte(value), secretPurpose(inst.OrgURL(), inst.OrgID, repo, name))
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
	return r.resealFor(inst, inst.OrgURL(), inst.OrgID, false)
}

// resealFor opens every sealed value of inst as sealed for the organization at orgURL of
// id orgID, and seals it for inst's own URL and id: with the current key, and when always
// is false only the values a previous key sealed.
func (r *Registry) resealFor(inst *Installation, orgURL string, orgID int64, always bool) error {
	again := func(sealed, from, to string) (string, error) {
		if sealed == "" || (!always && r.keys.Current(sealed)) {
			return sealed, nil
		}
		plain, err := r.keys.Open(sealed, from)
		if err != nil {
			return "", err
		}
		return r.keys.Seal(plain, to), nil
	}
	org := inst.OrgURL()
	var err error
	if inst.Hook.Secret, err = again(inst.Hook.Secret, hookPurpose(orgURL, orgID), hookPurpose(org, inst.OrgID)); err != nil {
		return fmt.Errorf("webhook secret of %s: %w", org, err)
	}
	for _, repo := range append([]string{""}, slices.Sorted(maps.Keys(inst.Repos))...) {
		s := inst.settings(repo)
		for name, v := range s.Secrets {
			if s.Secrets[name], err = again(v, secretPurpose(orgURL, orgID, repo, name), secretPurpose(org, inst.OrgID, repo, name)); err != nil {
				return fmt.Errorf("secret %s of %s %s: %w", name, org, repo, err)
			}
		}
	}
	return nil
}

// BindOrg records the id of inst's organization, made before ids were recorded: its
// sealed values are sealed again, bound to the id. The caller writes inst.
func (r *Registry) BindOrg(inst *Installation, id int64) error {
	if r.keys == nil {
		return ErrNoKey
	}
	if inst.OrgID != 0 {
		return fmt.Errorf("installation of %s is bound to organization %d already", inst.OrgURL(), inst.OrgID)
	}
	from := inst.OrgURL()
	inst.OrgID = id
	if err := r.resealFor(inst, from, 0, true); err != nil {
		inst.OrgID = 0
		return err
	}
	return nil
}

// Adopt makes of from, the installation of an organization since renamed (the same id),
// the installation of its new name org: settings, webhook and sealed values, sealed again
// for the new name. The caller writes it and deletes from.
func (r *Registry) Adopt(from *Installation, org string) (*Installation, error) {
	if r.keys == nil {
		return nil, ErrNoKey
	}
	moved := *from
	moved.Org, moved.Quarantine, moved.index, moved.shelved = org, "", 0, ""
	moved.Settings = cloneSettings(from.Settings)
	moved.Repos = map[string]Settings{}
	for name, s := range from.Repos {
		moved.Repos[name] = cloneSettings(s)
	}
	if err := r.resealFor(&moved, from.OrgURL(), from.OrgID, true); err != nil {
		return nil, err
	}
	return &moved, nil
}

func cloneSettings(s Settings) Settings {
	s.Secrets = maps.Clone(s.Secrets)
	s.Trusted.Users, s.Trusted.Teams = slices.Clone(s.Trusted.Users), slices.Clone(s.Trusted.Teams)
	s.Trusted.UserIDs, s.Trusted.TeamIDs = maps.Clone(s.Trusted.UserIDs), maps.Clone(s.Trusted.TeamIDs)
	s.Flavors = slices.Clone(s.Flavors)
	s.Schedules, s.Params = slices.Clone(s.Schedules), slices.Clone(s.Params)
	return s
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
	// The GitHub App's credentials too: opened by the previous key only, they would be
	// lost with it.
	switch wrote, err := r.resealApp(ctx); {
	case err != nil:
		return 0, err
	case wrote:
		n++
	}
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
	e := &Repo{Installed: true, OrgID: inst.OrgID, Quarantine: inst.Quarantine, Forge: inst.Forge, AppInstallation: inst.InstallationID}
	if inst.InstallationID != 0 {
		if inst.Selection == "selected" && !slices.Contains(inst.Selected, strings.ToLower(repoName)) {
			return nil, fmt.Errorf("repository %s of %s is not one the App was given: %w", repoName, inst.OrgURL(), ErrNotFound)
		}
		if inst.Suspended && e.Quarantine == "" {
			e.Quarantine = "the GitHub App is suspended on " + inst.Org
		}
	}
	e.Hook.Secret = secret
	org, own := inst.Settings, inst.Repos[repoName]
	e.Trusted.Senders = union(org.Trusted.Users, own.Trusted.Users)
	e.Trusted.Teams = union(org.Trusted.Teams, own.Trusted.Teams)
	e.Trusted.IDs = merged(org.Trusted.UserIDs, own.Trusted.UserIDs)
	e.Trusted.TeamIDs = merged(org.Trusted.TeamIDs, own.Trusted.TeamIDs)
	e.Flavors = org.Flavors
	if len(own.Flavors) > 0 {
		e.Flavors = own.Flavors
	}
	e.Schedules, e.Params = own.Schedules, own.Params
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
				v, err := r.keys.Open(sealed, secretPurpose(orgURL, inst.OrgID, layer.repo, name))
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

func merged(a, b map[string]int64) map[string]int64 {
	if len(a)+len(b) == 0 {
		return nil
	}
	out := maps.Clone(a)
	if out == nil {
		out = map[string]int64{}
	}
	maps.Copy(out, b)
	return out
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
