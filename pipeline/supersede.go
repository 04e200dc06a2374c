package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"

	"github.com/albatros-ci/albatros/forge"
	"github.com/albatros-ci/albatros/orchestrator"
	"github.com/albatros-ci/albatros/registry"
)

// supersedes reports whether a new build of ev makes the older builds of its branch or pull
// request moot: for pushes to a branch and pull requests, unless the entry says otherwise;
// never for tags.
func supersedes(ev forge.Event, entry *registry.Repo) bool {
	if entry.Supersede != nil && !*entry.Supersede {
		return false
	}
	return ev.Kind == forge.KindPush || ev.Kind == forge.KindPullRequest
}

// sameLine reports whether build s is of the same branch or pull request, and flavor, as
// the new build of ev.
func sameLine(s orchestrator.Summary, ev forge.Event, flavor string) bool {
	m := s.Meta
	if s.Cause == CauseSchedule || s.Cause == CauseRun {
		return false // of no line: a push does not stop a scheduled build or a run
	}
	if m["REPO_URL"] != ev.Repo.CloneURL || m["FLAVOR"] != flavor || m["TAG"] != "" {
		return false
	}
	if ev.PullRequest != nil {
		return m["PR"] == strconv.FormatInt(ev.PullRequest.Number, 10)
	}
	return m["PR"] == "" && m["BRANCH"] == ev.Branch
}

// lineOf names the line of builds a build of ev in flavor belongs to (see registry.Line).
func lineOf(ev forge.Event, flavor string) string {
	if ev.PullRequest != nil {
		return ev.Repo.CloneURL + "\x00" + flavor + "\x00pr\x00" + strconv.FormatInt(ev.PullRequest.Number, 10)
	}
	return BranchLine(ev.Repo.CloneURL, flavor, ev.Branch)
}

// BranchLine names the line of the builds of a branch's pushes in one flavor, whose
// newest build registry.Registry.LineOf finds.
func BranchLine(cloneURL, flavor, branch string) string {
	return cloneURL + "\x00" + flavor + "\x00branch\x00" + branch
}

// lineBefore records d as the newest build of its line, unless its dispatch did (swap),
// and returns the build it follows, as the one build it may supersede; ok is false when
// the line's record cannot tell (Consul failing), and the builds must be listed instead. A
// line without a record has nothing to supersede: its first build, or one whose last build
// is older than the records are kept (a day).
func (p *Pipeline) lineBefore(ctx context.Context, log *slog.Logger, ev forge.Event, flavor string, d orchestrator.Dispatched, swap *lineSwap) ([]orchestrator.Summary, bool) {
	if p.cfg.Claims == nil {
		return nil, false
	}
	line := lineOf(ev, flavor)
	if swap == nil {
		swap = &lineSwap{}
		swap.prev, swap.found, swap.err = p.cfg.Claims.SwapLine(ctx, line, registry.Line{Namespace: d.Namespace, JobID: d.JobID, Commit: ev.Commit, Index: d.Index})
	}
	prev, found, err := swap.prev, swap.found, swap.err
	if err != nil {
		log.Warn("line of builds not recorded: listing the builds instead", "err", err)
		return nil, false
	}
	if !found {
		return nil, true
	}
	if prev.JobID == d.JobID && prev.Namespace == d.Namespace {
		return nil, true
	}
	if prev.Index > d.Index && d.Index != 0 {
		// Dispatched after this one (deliveries are handled several at once, and may
		// arrive out of order): it stays the line's newest, and nothing is stopped here.
		if _, _, err := p.cfg.Claims.SwapLine(ctx, line, prev); err != nil {
			log.Warn("line of builds not restored", "err", err)
		}
		return nil, true
	}
	b, err := p.cfg.Builds.Build(ctx, prev.Namespace, prev.JobID)
	if errors.Is(err, orchestrator.ErrNotFound) {
		return nil, true // collected: it ended long ago
	}
	if err != nil {
		log.Warn("the line's previous build could not be read: listing the builds instead", "job", prev.JobID, "err", err)
		return nil, false
	}
	state := "dead"
	switch {
	case b.Stopped:
	case b.Status == "pending":
		state = "queued"
	case b.Status == "running":
		state = "running"
	}
	return []orchestrator.Summary{{Namespace: b.Namespace, ID: b.ID, Meta: b.Meta, State: state, Submitted: b.Submitted, Stopped: b.Stopped}}, true
}

// SupersededDescription is the status of a build stopped for a newer commit.
func SupersededDescription(sha string) string { return "superseded by " + sha[:min(len(sha), 7)] }

// ReplacedDescription is the status of a build stopped for a new build of the same commit
// (a /rebuild, an approval).
const ReplacedDescription = "replaced by a new build of this commit"

// supersede stops the builds of ev's branch or pull request, in flavor, that are still
// queued or running for another commit, and marks their statuses. With sameCommit (the new
// build d is a /rebuild or an approval), the other builds of ev's commit go too: they would
// report to the same status. The status of a build of ev's commit is left to d, whose
// pending status follows.
func (p *Pipeline) supersede(ctx context.Context, log *slog.Logger, f forge.Forge, repo forge.Repo, ev forge.Event, flavor string, recent []orchestrator.Summary, d orchestrator.Dispatched, sameCommit bool) error {
	var errs []error
	for _, s := range recent {
		same := s.Meta["COMMIT"] == ev.Commit
		if !sameLine(s, ev, flavor) || (same && !sameCommit) || (s.ID == d.JobID && s.Namespace == d.Namespace) || (s.State != "queued" && s.State != "running") {
			continue
		}
		if err := p.cfg.Builds.Stop(ctx, s.Namespace, s.ID); err != nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", s.ID, err))
			continue
		}
		if same {
			log.Info("build replaced", "job", s.ID, "by", d.JobID, "flavor", flavor)
			continue
		}
		log.Info("build superseded", "job", s.ID, "commit", s.Meta["COMMIT"], "by", ev.Commit, "flavor", flavor)
		errs = append(errs, f.SetStatus(ctx, forge.Status{
			Repo: repo, Commit: s.Meta["COMMIT"], State: forge.StateError, Context: StatusContext(flavor),
			Description: SupersededDescription(ev.Commit), TargetURL: p.LogURL(s.Namespace, s.ID),
		}))
	}
	return errors.Join(errs...)
}

// supersededBy returns the commit of a newer build of the same branch or pull request and
// flavor as b, if there is one: b was stopped for it. Report keeps that description when
// Nomad reports the stop.
func (p *Pipeline) supersededBy(ctx context.Context, b *orchestrator.Build, out orchestrator.Outcome) string {
	if out.Result != orchestrator.Error || !b.Stopped || b.Meta["TAG"] != "" {
		return ""
	}
	recent, err := p.cfg.Builds.Recent(ctx, b.Meta["REPO_URL"], 200)
	if err != nil {
		return ""
	}
	ev := forge.Event{Repo: forge.Repo{CloneURL: b.Meta["REPO_URL"]}, Branch: b.Meta["BRANCH"]}
	if n, err := strconv.ParseInt(b.Meta["PR"], 10, 64); err == nil {
		ev.PullRequest = &forge.PullRequest{Number: n}
	}
	for _, s := range recent { // newest first
		if s.ID == b.ID && s.Namespace == b.Namespace {
			return ""
		}
		if sameLine(s, ev, b.Meta["FLAVOR"]) && s.Meta["COMMIT"] != b.Meta["COMMIT"] && s.Submitted.After(b.Submitted) {
			return s.Meta["COMMIT"]
		}
	}
	return ""
}
