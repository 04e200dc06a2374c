// Package registry reads which repositories Albatros builds, and how, from Consul's KV store,
// in the format of the original Albatros: the key `albatros/<base64 of the clone URL>` holds
//
//	{"hook":{"token":"s3cr3t"},
//	 "gitea":{"url":"https://git.example.com","token":"…"},
//	 "trusted":{"senders":["quentin","lx"]},
//	 "inject":"set +x\nexport SECRET1=xx"}
//
// Every field added since is optional: hook.secret (the HMAC secret of /webhook/gitea and
// /webhook/github), github (the repository is on GitHub: its API URL and token),
// secrets (a map of names to values, exported to trusted builds like inject), flavors (one
// build per flavor) and builder (a job of the user's own instead of the default builder).
// An organization may hold a webhook secret shared by its repositories under
// `albatros/org/<base64 of the organization's URL>`.
//
// The registry plays two roles (roles.go): Configuration, the entries and installations
// and their sealed values, read-mostly and served from memory; and Coordination, the
// claims, lines, ledger, locks, leadership and state the bots agree on under
// albatros-run/. Consumers take the narrowest interface they need of either.
//
// It is the only package that imports Consul's api package. It does not decide anything:
// trust and dispatch are the pipeline's.
package registry

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	consul "github.com/hashicorp/consul/api"

	"github.com/albatros-ci/albatros/seal"
	"github.com/albatros-ci/albatros/secrets"
)

// ErrNotFound is returned for a repository or organization that has no entry.
var ErrNotFound = errors.New("not registered")

// ErrUnavailable is returned when Consul could not be read or written: the answer is not
// known, unlike ErrNotFound.
var ErrUnavailable = errors.New("registry unavailable")

// Repo is a repository's entry.
type Repo struct {
	Hook struct {
		// Token authenticates POST /hook?token=…, the original Albatros's webhook URL.
		Token string `json:"token,omitempty"`
		// Secret is the HMAC-SHA256 secret of POST /webhook/gitea deliveries.
		Secret string `json:"secret,omitempty"`
	} `json:"hook"`
	// Gitea is the Gitea server and a token that may write commit statuses.
	Gitea Access `json:"gitea"`
	// GitHub, when set, makes the repository a GitHub one: URL is the REST API's base
	// (empty for github.com), Token one that may write commit statuses.
	GitHub  *Access `json:"github,omitempty"`
	Trusted struct {
		Senders []string `json:"senders,omitempty"`
		// Teams are teams of the repository's organization whose members are trusted.
		Teams []string `json:"teams,omitempty"`
		// IDs are the numeric ids of trusted users, by login: a user named here is
		// trusted by id (a name can be taken again once its user is deleted); a sender
		// without an id (a hand-written entry's) is trusted by name. TeamIDs are the ids
		// of trusted teams, by name: a team with one is asked about by id.
		IDs     map[string]int64 `json:"ids,omitempty"`
		TeamIDs map[string]int64 `json:"team_ids,omitempty"`
	} `json:"trusted"`
	// Inject is a shell snippet given to trusted builds, usually `export NAME=value` lines.
	Inject string `json:"inject,omitempty"`
	// Secrets are given to trusted builds as exported environment variables.
	Secrets map[string]string `json:"secrets,omitempty"`
	// Flavors are built once each per event; none means one build of flavor "default".
	Flavors []string `json:"flavors,omitempty"`
	// Builder names a parameterized job of the user's own; empty means the default builder.
	Builder *Builder `json:"builder,omitempty"`
	// Supersede, when false, keeps the builds of a branch or pull request running when a
	// newer commit of it is pushed; by default they are stopped. Tags are never superseded.
	Supersede *bool `json:"supersede,omitempty"`
	// Schedules are builds no push starts (see Schedule); Params the parameters that runs
	// asked on the bot's page may set.
	Schedules []Schedule `json:"schedules,omitempty"`
	Params    []Param    `json:"params,omitempty"`

	// Installed is true for an entry made of the organization's installation rather than
	// read from the repository's own key; OrgID is then the installation's organization's
	// id (0 until known), and Quarantine why it is quarantined, if it is.
	Installed  bool   `json:"-"`
	OrgID      int64  `json:"-"`
	Quarantine string `json:"-"`
	// Forge is the installation's forge (gitea, github), AppInstallation the GitHub App's
	// installation the repository is reached through (0 when none).
	Forge           string `json:"-"`
	AppInstallation int64  `json:"-"`
	// sealed holds an installation's secrets, sealed, until they are needed (OpenSecrets).
	sealed *sealedSecrets
}

// Holder is the organization that holds the repository's name through its installation,
// by id; 0 for a hand-written entry. The archive names its index by it.
func (r *Repo) Holder() int64 {
	if r.Installed {
		return r.OrgID
	}
	return 0
}

// sealedSecrets are an installation's secrets for one repository, opened once, on first
// use.
type sealedSecrets struct {
	n     int // how many
	open  func() (map[string]string, error)
	once  sync.Once
	plain map[string]string
	err   error
}

// SealSecrets makes r's secrets (n of them) be opened by open, once, when first asked for
// (OpenSecrets), in place of its Secrets: an installation's entry keeps them sealed so.
func (r *Repo) SealSecrets(n int, open func() (map[string]string, error)) {
	r.sealed = &sealedSecrets{n: n, open: open}
}

// OpenSecrets returns the repository's secrets. An installation's are kept sealed in the
// entry until asked for: a delivery's entry is read before its signature is checked, and
// its secrets are opened only once the bot acts on it (a build, a status to mask).
func (r *Repo) OpenSecrets() (map[string]string, error) {
	if r.sealed == nil {
		return r.Secrets, nil
	}
	r.sealed.once.Do(func() { r.sealed.plain, r.sealed.err = r.sealed.open() })
	return r.sealed.plain, r.sealed.err
}

// HasSecrets reports whether the repository has any secret (its inject snippet, its
// secrets), without opening them.
func (r *Repo) HasSecrets() bool {
	return r.Inject != "" || len(r.Secrets) > 0 || (r.sealed != nil && r.sealed.n > 0)
}

// Access is where a forge's API is and the token to use there.
type Access struct {
	URL   string `json:"url,omitempty"`
	Token string `json:"token,omitempty"`
}

// Builder names a Nomad job.
type Builder struct {
	Job       string `json:"job"`
	Namespace string `json:"namespace,omitempty"`
}

// Trusts reports whether the user login, of numeric id (0 when not known), is one of the
// repository's trusted users (its trusted teams are the forge's to check): by id for the
// users the entry records one of, by name for the others (the names of a hand-written
// entry).
func (r *Repo) Trusts(login string, id int64) bool {
	if id != 0 {
		for _, want := range r.Trusted.IDs {
			if want == id {
				return true
			}
		}
	}
	if login == "" || !slices.Contains(r.Trusted.Senders, login) {
		return false
	}
	_, byID := r.Trusted.IDs[login]
	return !byID
}

// Blocked says why nothing of an installed organization's repository may be built for a
// delivery about the repository owned by the organization of id ownerID: the installation
// is quarantined, or not yet bound to its organization, or the repository's owner is no
// longer that organization (deleted, and its name taken again). "" when it may.
func (r *Repo) Blocked(ownerID int64) string {
	switch {
	case !r.Installed:
		return ""
	case r.Quarantine != "":
		return "the installation is quarantined (" + r.Quarantine + "): an owner must install Albatros again"
	case r.OrgID == 0:
		return "the installation is not yet bound to its organization's id (the installations' check does it)"
	case ownerID != r.OrgID:
		return fmt.Sprintf("the repository's owner (id %d) is not the organization Albatros was installed on (id %d)", ownerID, r.OrgID)
	}
	return ""
}

// SecretValues are the values of the repository's secrets (its inject snippet's and its
// secrets map's), for masking whatever the bot relays or writes; an error when they cannot
// be opened, and nothing must then be written that they could be in.
func (r *Repo) SecretValues() ([]string, error) {
	values := secrets.Values([]byte(r.Inject))
	plain, err := r.OpenSecrets()
	if err != nil {
		return nil, err
	}
	for _, v := range plain {
		values = append(values, v)
	}
	return values, nil
}

// Org is an organization's entry.
type Org struct {
	Hook struct {
		Secret string `json:"secret,omitempty"`
	} `json:"hook"`
}

// Registry reads and writes entries under a key prefix.
type Registry struct {
	client *consul.Client
	kv     *consul.KV
	prefix string
	// run is where the bots keep keys of their own (dedup records, locks, leaderships,
	// the event index): beside the prefix, not under it, since they change at every build
	// and the follower of the entries (Follow) would wake at each.
	run    string
	keys   *seal.Keyring // nil: installations cannot be read or written
	mirror *mirror       // set by Follow: entries are read from memory
	// pending are the build records Consul could not take yet (see Record).
	pending pendingRecords

	transport *http.Transport // the Consul client's, for Close
}

// DefaultPrefix is the original Albatros's key prefix.
const DefaultPrefix = "albatros/"

// New returns a registry on the Consul agent that the standard CONSUL_* environment
// variables (CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN, CONSUL_CACERT, …) point at. keys seal and
// open the secrets of installations; without them (nil), installations are not read.
func New(prefix string, keys *seal.Keyring, opts ...Option) (*Registry, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	cfg := consul.DefaultConfig()
	if o.wrap != nil && !strings.HasPrefix(cfg.Address, "unix://") {
		hc, err := consul.NewHttpClient(cfg.Transport, cfg.TLSConfig)
		if err != nil {
			return nil, fmt.Errorf("consul client: %w", err)
		}
		hc.Transport = o.wrap(hc.Transport)
		cfg.HttpClient = hc
	}
	c, err := consul.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("consul client: %w", err)
	}
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return &Registry{client: c, kv: c.KV(), prefix: prefix, run: RunPrefix(prefix), keys: keys, transport: cfg.Transport}, nil
}

// Option changes how New makes a registry.
type Option func(*options)

type options struct {
	wrap func(http.RoundTripper) http.RoundTripper
}

// WithTransport has every request to Consul (but through a unix socket) go through wrap's
// round tripper, which calls the one it is given (the metrics count them so).
func WithTransport(wrap func(http.RoundTripper) http.RoundTripper) Option {
	return func(o *options) { o.wrap = wrap }
}

// Close closes the registry's idle connections to Consul (a follower stops with its
// context).
func (r *Registry) Close() {
	if r.transport != nil {
		r.transport.CloseIdleConnections()
	}
}

// RunPrefix is where the bots of the registry at prefix keep their own keys: the prefix
// with "-run" added (albatros/ gives albatros-run/).
func RunPrefix(prefix string) string {
	return strings.TrimSuffix(prefix, "/") + "-run/"
}

// RepoKey is the KV key of a repository: the prefix and the standard base64 of its clone URL.
func (r *Registry) RepoKey(cloneURL string) string {
	return r.prefix + base64.StdEncoding.EncodeToString([]byte(cloneURL))
}

// OrgKey is the KV key of an organization, by its URL (http://host/org).
func (r *Registry) OrgKey(orgURL string) string {
	return r.prefix + "org/" + base64.StdEncoding.EncodeToString([]byte(strings.TrimSuffix(orgURL, "/")))
}

// Repo reads a repository's entry: its own key's, else the one its organization's
// installation makes (Repo.Installed); ErrNotFound when it has neither.
func (r *Registry) Repo(ctx context.Context, cloneURL string) (*Repo, error) {
	var repo Repo
	err := r.get(ctx, r.RepoKey(cloneURL), &repo)
	if err == nil {
		return &repo, nil
	}
	if !errors.Is(err, ErrNotFound) || r.keys == nil {
		return nil, fmt.Errorf("repository %s: %w", cloneURL, err)
	}
	orgURL, oerr := OrgURL(cloneURL)
	name, nerr := RepoName(cloneURL)
	if oerr != nil || nerr != nil {
		return nil, fmt.Errorf("repository %s: %w", cloneURL, err)
	}
	inst, err := r.installation(ctx, orgURL, false)
	if err != nil {
		return nil, fmt.Errorf("repository %s: %w", cloneURL, err)
	}
	return r.fromInstallation(inst, name)
}

// RepoURLs returns the clone URLs of the repositories that have an entry of their own
// (not those of installed organizations).
func (r *Registry) RepoURLs(ctx context.Context) ([]string, error) {
	pairs, err := r.list(ctx, r.prefix)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, p := range pairs {
		name := strings.TrimPrefix(p.Key, r.prefix)
		if name == "" || strings.Contains(name, "/") {
			continue // in a folder: org/, install/, …
		}
		u, err := base64.StdEncoding.DecodeString(name)
		if err != nil || !strings.Contains(string(u), "://") {
			continue
		}
		out = append(out, string(u))
	}
	return out, nil
}

// Org reads an organization's entry: its own key's, else its installation's webhook
// secret; ErrNotFound when it has neither.
func (r *Registry) Org(ctx context.Context, orgURL string) (*Org, error) {
	var org Org
	err := r.get(ctx, r.OrgKey(orgURL), &org)
	if err == nil {
		return &org, nil
	}
	if !errors.Is(err, ErrNotFound) || r.keys == nil {
		return nil, fmt.Errorf("organization %s: %w", orgURL, err)
	}
	inst, err := r.installation(ctx, orgURL, false)
	if err != nil {
		return nil, fmt.Errorf("organization %s: %w", orgURL, err)
	}
	if inst.InstallationID != 0 {
		// A GitHub App's installation: its deliveries are signed with the App's secret,
		// not one of the organization's.
		return nil, fmt.Errorf("organization %s has a GitHub App's installation: %w", orgURL, ErrNotFound)
	}
	if org.Hook.Secret, err = r.HookSecret(inst); err != nil {
		return nil, err
	}
	return &org, nil
}

// Lock takes the lock name (a key under the run prefix's locks/), trying for a second: ok is
// false when another holder has it. Call unlock when done. Two bots that take the same
// lock before acting do not act at once. The lock lasts as long as the Consul session the
// client renews (TTL 15 s): a holder that loses it (Consul down for longer) is not told, so
// what runs under a lock also writes with a check-and-set.
func (r *Registry) Lock(ctx context.Context, name string) (unlock func(), ok bool, err error) {
	l, err := r.client.LockOpts(&consul.LockOptions{
		Key:          r.run + "locks/" + name,
		SessionName:  "albatros " + name,
		SessionTTL:   "15s",
		LockTryOnce:  true,
		LockWaitTime: time.Second,
	})
	if err != nil {
		return nil, false, fmt.Errorf("%w: lock %s: %w", ErrUnavailable, name, err)
	}
	// Acquiring stops when ctx ends; once Lock returns, nothing watches ctx any more.
	stop := make(chan struct{})
	cancelStop := context.AfterFunc(ctx, func() { close(stop) })
	held, err := l.Lock(stop)
	cancelStop()
	if err != nil {
		return nil, false, fmt.Errorf("%w: lock %s: %w", ErrUnavailable, name, err)
	}
	if held == nil {
		return nil, false, nil
	}
	return func() { _ = l.Unlock() }, true, nil
}

// PutRepo writes a repository's entry.
func (r *Registry) PutRepo(ctx context.Context, cloneURL string, repo *Repo) error {
	return r.put(ctx, r.RepoKey(cloneURL), repo)
}

// PutOrg writes an organization's entry.
func (r *Registry) PutOrg(ctx context.Context, orgURL string, org *Org) error {
	return r.put(ctx, r.OrgKey(orgURL), org)
}

func (r *Registry) get(ctx context.Context, key string, v any) error {
	pair, err := r.pair(ctx, key)
	if err != nil {
		return err
	}
	if pair == nil {
		return ErrNotFound
	}
	if err := json.Unmarshal(pair.Value, v); err != nil {
		return fmt.Errorf("consul key %s is not a valid entry: %w", key, err)
	}
	return nil
}

// pair reads the entry at key: from memory when the registry follows its entries, else
// from Consul; nil when there is none.
func (r *Registry) pair(ctx context.Context, key string) (*consul.KVPair, error) {
	if r.mirror != nil {
		return r.mirror.get(key)
	}
	pair, _, err := r.kv.Get(key, (&consul.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("%w: consul get %s: %w", ErrUnavailable, key, err)
	}
	return pair, nil
}

// list reads the entries under prefix, in key order: from memory when the registry
// follows its entries, else from Consul.
func (r *Registry) list(ctx context.Context, prefix string) (consul.KVPairs, error) {
	if r.mirror != nil {
		return r.mirror.list(prefix)
	}
	pairs, _, err := r.kv.List(prefix, (&consul.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("%w: consul list %s: %w", ErrUnavailable, prefix, err)
	}
	return pairs, nil
}

func (r *Registry) put(ctx context.Context, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	// A transaction, so that the index it answers is the one of this write.
	ok, resp, _, err := r.client.Txn().Txn(consul.TxnOps{{KV: &consul.KVTxnOp{Verb: consul.KVSet, Key: key, Value: b}}},
		(&consul.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return fmt.Errorf("%w: consul put %s: %w", ErrUnavailable, key, err)
	}
	if !ok || resp == nil || len(resp.Results) != 1 || resp.Results[0].KV == nil {
		return fmt.Errorf("%w: consul put %s: not applied", ErrUnavailable, key)
	}
	r.wrote(key, b, resp.Results[0].KV.ModifyIndex)
	return nil
}

// wrote tells the follower of a write this bot made.
func (r *Registry) wrote(key string, value []byte, index uint64) {
	if r.mirror != nil {
		r.mirror.wrote(&consul.KVPair{Key: key, Value: value, ModifyIndex: index, CreateIndex: index})
	}
}

func sortPairs(pairs consul.KVPairs) {
	slices.SortFunc(pairs, func(a, b *consul.KVPair) int { return strings.Compare(a.Key, b.Key) })
}

// OrgURL is the URL of the owner of the repository at cloneURL (http://host/org/repo.git
// gives http://host/org).
func OrgURL(cloneURL string) (string, error) {
	org, _, err := splitCloneURL(cloneURL)
	return org, err
}

// RepoName is the name of the repository at cloneURL (http://host/org/app.git gives app).
func RepoName(cloneURL string) (string, error) {
	_, name, err := splitCloneURL(cloneURL)
	return name, err
}

// splitCloneURL cuts a clone URL into its owner's URL (without user info, query or
// fragment) and the repository's name.
func splitCloneURL(cloneURL string) (ownerURL, name string, err error) {
	u, err := url.Parse(cloneURL)
	if err != nil {
		return "", "", err
	}
	p := strings.TrimSuffix(strings.TrimSuffix(u.Path, "/"), ".git")
	i := strings.LastIndexByte(p, '/')
	if i <= 0 || i == len(p)-1 {
		return "", "", fmt.Errorf("clone url %q does not name owner/repository", cloneURL)
	}
	u.Path = p[:i]
	u.User = nil
	u.RawQuery, u.Fragment = "", ""
	return u.String(), p[i+1:], nil
}

// Lead runs run whenever this bot holds the leadership name (a Consul lock with a session,
// under the run prefix's leaders/), until ctx ends: one bot at a time runs it, and when the
// holder stops or dies (its session expires after 15 s), another takes over. run's context
// ends when the leadership is lost. A holder that cannot reach Consul keeps it for a minute
// (no other bot can take it while Consul is down, and the duties it runs are idempotent, in
// case another can); the builds that end meanwhile are reported. Errors reaching Consul go
// to onErr, and are retried.
func (r *Registry) Lead(ctx context.Context, name string, run func(context.Context), onErr func(error)) {
	for ctx.Err() == nil {
		l, err := r.client.LockOpts(&consul.LockOptions{
			Key:              r.run + "leaders/" + name,
			SessionName:      "albatros leader " + name,
			SessionTTL:       "15s",
			LockDelay:        time.Second,
			MonitorRetries:   60,
			MonitorRetryTime: time.Second,
		})
		if err == nil {
			stop := make(chan struct{})
			cancelStop := context.AfterFunc(ctx, func() { close(stop) })
			var lost <-chan struct{}
			lost, err = l.Lock(stop)
			cancelStop()
			if err == nil && lost != nil {
				runCtx, cancel := context.WithCancel(ctx)
				go func() {
					select {
					case <-lost:
						cancel()
					case <-runCtx.Done():
					}
				}()
				run(runCtx)
				cancel()
				_ = l.Unlock()
				continue
			}
		}
		if err != nil {
			onErr(fmt.Errorf("%w: leadership %s: %w", ErrUnavailable, name, err))
		}
		select {
		case <-ctx.Done():
		case <-time.After(2 * time.Second):
		}
	}
}

// State reads a value the bots keep for themselves under the run prefix's state/ (the last
// event index handled, say); "" when there is none.
func (r *Registry) State(ctx context.Context, name string) (string, error) {
	pair, _, err := r.kv.Get(r.run+"state/"+name, (&consul.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return "", fmt.Errorf("%w: consul get state/%s: %w", ErrUnavailable, name, err)
	}
	if pair == nil {
		return "", nil
	}
	return string(pair.Value), nil
}

// SetState writes a value State reads.
func (r *Registry) SetState(ctx context.Context, name, value string) error {
	if _, err := r.kv.Put(&consul.KVPair{Key: r.run + "state/" + name, Value: []byte(value)}, (&consul.WriteOptions{}).WithContext(ctx)); err != nil {
		return fmt.Errorf("%w: consul put state/%s: %w", ErrUnavailable, name, err)
	}
	return nil
}
