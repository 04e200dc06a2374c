package pipeline

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/albatros-ci/albatros/forge"
	"github.com/albatros-ci/albatros/registry"
)

// Installed is the registry as the reconciler lists it: the repositories with an entry,
// and the installed organizations.
type Installed interface {
	RepoURLs(ctx context.Context) ([]string, error)
	Installations(ctx context.Context) ([]*registry.Installation, error)
}

// Reconciler is the reconciler's duty while a bot leads it (Run).
type Reconciler struct {
	// Registry lists what is registered and installed.
	Registry Installed
	// Bot is the bot's own account on the forge named Forge at ForgeURL, which lists an
	// installed organization's repositories; without it, installations are not reconciled.
	Bot      forge.OrgRepos
	Forge    string
	ForgeURL string
	// App, when set, lists the repositories of the GitHub App's installation id, of the
	// installations recorded for AppURL (the App's GitHub).
	App    func(ctx context.Context, id int64) (forge.OrgRepos, error)
	AppURL string
	// Every is the time between passes; 0 runs one pass, at once.
	Every time.Duration
	// Options bound each pass.
	Options ReconcileOptions
	// AfterPass, when set, runs after each pass (the registry's housekeeping).
	AfterPass func(ctx context.Context)
}

// Run runs the reconciler at once, then every r.Every (never again when 0), until ctx ends.
func (p *Pipeline) RunReconciler(ctx context.Context, log *slog.Logger, r Reconciler) {
	log.Info("leading: reconciling", "every", r.Every)
	for {
		st, err := p.Reconcile(ctx, log, r.Targets(ctx, log), r.Options)
		if err != nil {
			log.Warn("reconciler", "err", err)
		}
		log.Info("reconciler pass", "repositories", st.Repositories, "heads", st.Heads, "found and built", st.Found, "left to the next pass", st.Deferred, "branches truncated", len(st.Truncated), "cut short by rate limits", len(st.Limited))
		if r.AfterPass != nil {
			r.AfterPass(ctx)
		}
		next := r.Every
		if st.Deferred > 0 {
			// Heads left for their deliveries: looked at again once their grace is over,
			// even when the reconciler runs only at start.
			grace := r.Options.Grace
			if grace <= 0 {
				grace = 10 * time.Second
			}
			if retry := grace + time.Second; next == 0 || retry < next {
				next = retry
			}
		}
		if next == 0 {
			<-ctx.Done()
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(next):
		}
	}
}

// Targets are the repositories a pass looks at, by clone URL, each once: those with an
// entry, and those of the organizations installed on the bot's forge, each carrying the id
// of its owner as the forge lists it (Reconcile builds none of another organization that
// took the name). An installation of another forge, quarantined, or not yet bound to its
// organization's id is left out; so is one whose record names another forge (Forge). A listing that fails is logged, and the rest is listed.
func (r Reconciler) Targets(ctx context.Context, log *slog.Logger) []forge.Repo {
	urls, err := r.Registry.RepoURLs(ctx)
	if err != nil {
		log.Warn("reconciler: registered repositories not listed", "err", err)
	}
	var targets []forge.Repo
	for _, u := range urls {
		targets = append(targets, forge.Repo{CloneURL: u})
	}
	if r.Bot != nil || r.App != nil {
		insts, err := r.Registry.Installations(ctx)
		if err != nil {
			log.Warn("reconciler: installations not listed", "err", err)
		}
		for _, inst := range insts {
			if inst.Quarantine != "" || inst.Suspended || inst.OrgID == 0 {
				continue
			}
			lister := r.Bot
			switch {
			case inst.InstallationID != 0:
				if r.App == nil || strings.TrimSuffix(inst.URL, "/") != strings.TrimSuffix(r.AppURL, "/") {
					continue
				}
				if lister, err = r.App(ctx, inst.InstallationID); err != nil {
					log.Warn("reconciler: the GitHub App's installation", "account", inst.Org, "installation", inst.InstallationID, "err", err)
					continue
				}
			case r.Bot == nil || (inst.Forge != "" && r.Forge != "" && inst.Forge != r.Forge) || strings.TrimSuffix(inst.URL, "/") != strings.TrimSuffix(r.ForgeURL, "/"):
				continue
			}
			list, err := lister.OrgRepos(ctx, inst.Org)
			if err != nil {
				log.Warn("reconciler: repositories not listed", "org", inst.Org, "err", err)
				continue
			}
			targets = append(targets, list...)
		}
	}
	// An installed repository's listing (with its owner's id) wins over its entry's URL.
	slices.SortStableFunc(targets, func(a, b forge.Repo) int {
		if c := strings.Compare(a.CloneURL, b.CloneURL); c != 0 {
			return c
		}
		return -cmpBool(a.OwnerID != 0, b.OwnerID != 0)
	})
	return slices.CompactFunc(targets, func(a, b forge.Repo) bool { return a.CloneURL == b.CloneURL })
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}
