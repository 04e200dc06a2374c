package registry

import (
	"context"
	"time"

	"github.com/albatros-ci/albatros/orchestrator"
)

// The registry plays two roles, which its consumers take apart (each takes the narrowest
// interface it needs): Configuration, what is built and how, read-mostly and held in
// memory; and Coordination, what the bots agree on while they build, written on every
// build. One Registry plays both on one Consul client; they could live apart.

// Configuration is what the operator and the owners set, read on every delivery from the
// memory the registry keeps in sync with Consul (Follow): the repositories' entries under
// albatros/, the organizations' installations and their sealed values (webhook secret,
// repositories' secrets), bound to the organization's id, and the installations shelved.
type Configuration interface {
	Repo(ctx context.Context, cloneURL string) (*Repo, error)
	RepoURLs(ctx context.Context) ([]string, error)
	Org(ctx context.Context, orgURL string) (*Org, error)
	PutRepo(ctx context.Context, cloneURL string, repo *Repo) error
	PutOrg(ctx context.Context, orgURL string, org *Org) error

	Installation(ctx context.Context, orgURL string) (*Installation, error)
	Installations(ctx context.Context) ([]*Installation, error)
	PutInstallation(ctx context.Context, inst *Installation) error
	DeleteInstallation(ctx context.Context, inst *Installation) error
	Shelve(ctx context.Context, inst *Installation) error
	Shelved(ctx context.Context) ([]*Installation, error)
	Unshelve(ctx context.Context, inst *Installation) error
	Adopt(from *Installation, org string) (*Installation, error)
	BindOrg(inst *Installation, id int64) error

	SealHookSecret(inst *Installation, secret string) error
	HookSecret(inst *Installation) (string, error)
	SetSecret(inst *Installation, repo, name, value string) error
	Reseal(ctx context.Context) (int, error)

	Follow(ctx context.Context, onErr func(error))
	Synced(ctx context.Context) error
	Ready(ctx context.Context) error
}

// Coordination is what the bots agree on in Consul under albatros-run/, each write a
// check-and-set or a session's lock, so that two replicas, or a restart, neither lose nor
// double a build:
//
//   - claims of build keys and of reports (Claim, Claimed, Settle, Release, CleanDedup):
//     one bot dispatches a key, or writes a report; see package pipeline for the protocol;
//   - the lines' newest builds (SwapLine), and a claim's settlement with its line's
//     record in one write (SettleLine): part of the interface, not found by type;
//   - the ledger of the bot's builds and the commits judged trusted (Record, Records,
//     TrustCommit, CommitTrust);
//   - locks, leadership and the leader's state (Lock, Lead, State, SetState);
//   - the sessions signed out (Revoke, Revoked, CleanSessions).
type Coordination interface {
	Claim(ctx context.Context, key string) (rec Dedup, claimed bool, err error)
	Claimed(ctx context.Context, keys ...string) (bool, error)
	Settle(ctx context.Context, key, ns, jobID string) error
	Release(ctx context.Context, key string) error
	CleanDedup(ctx context.Context, age time.Duration) (int, error)
	SwapLine(ctx context.Context, line string, next Line) (prev Line, found bool, err error)
	SettleLine(ctx context.Context, key, ns, jobID, line string, next Line) (prev Line, found bool, err error)

	Record(ctx context.Context, digest string, rec orchestrator.Record) error
	Records(ctx context.Context, digests []string) (map[string]orchestrator.Record, error)
	TrustCommit(ctx context.Context, cloneURL, commit, why string) error
	CommitTrust(ctx context.Context, cloneURL, commit string) (string, error)

	Lock(ctx context.Context, name string) (unlock func(), ok bool, err error)
	Lead(ctx context.Context, name string, run func(context.Context), onErr func(error))
	State(ctx context.Context, name string) (string, error)
	SetState(ctx context.Context, name, value string) error

	Revoke(ctx context.Context, id string, until time.Time) error
	Revoked(ctx context.Context, id string) (bool, error)
	CleanSessions(ctx context.Context) (int, error)
}

var (
	_ Configuration = (*Registry)(nil)
	_ Coordination  = (*Registry)(nil)
)
