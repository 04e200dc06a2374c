package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/albatros-ci/albatros/forge"
	"github.com/albatros-ci/albatros/orchestrator"
	"github.com/albatros-ci/albatros/registry"
	"github.com/albatros-ci/albatros/secrets"
)

// Report writes a build's outcome as the status of its commit. The build's repository,
// commit and flavor are read back from Nomad (the dispatch meta), so a restarted bot reports
// builds it did not start. It logs the status it writes, masked as written.
func (p *Pipeline) Report(ctx context.Context, log *slog.Logger, out orchestrator.Outcome) error {
	return p.report(ctx, log, out, false)
}

// ReportUnarchived is Report without the archive, for a result whose archive failed for
// as long as its reports are retried (ErrArchive): its status is written rather than left
// pending for ever, and its log is served while Nomad keeps it.
func (p *Pipeline) ReportUnarchived(ctx context.Context, log *slog.Logger, out orchestrator.Outcome) error {
	log.Error("build result reported without its archive: the archive failed for as long as the report was retried; its log link breaks once Nomad collects it", "job", out.JobID)
	return p.reportWith(ctx, log, out, false, true)
}

// report is Report; again writes the status even when another report claimed it, once that
// report has written it (or waited for in vain), if this bot's pending status hid it.
func (p *Pipeline) report(ctx context.Context, log *slog.Logger, out orchestrator.Outcome, again bool) error {
	return p.reportWith(ctx, log, out, again, false)
}

// reportWith is report; unarchived leaves the archive out.
func (p *Pipeline) reportWith(ctx context.Context, log *slog.Logger, out orchestrator.Outcome, again, unarchived bool) error {
	b, err := p.cfg.Builds.Build(ctx, out.Namespace, out.JobID)
	if err != nil {
		return fmt.Errorf("report %s: %w", out.JobID, err)
	}
	cloneURL, commit, flavor := b.Meta["REPO_URL"], b.Meta["COMMIT"], b.Meta["FLAVOR"]
	entry, err := p.cfg.Repos.Repo(ctx, cloneURL)
	if err != nil {
		return fmt.Errorf("report %s: %w", out.JobID, err)
	}
	if entry.Installed && (entry.Quarantine != "" || entry.OrgID == 0) {
		// The repository of that name may be another organization's now.
		log.Warn("build result not reported: its installation is quarantined or not yet bound", "job", out.JobID, "repo", cloneURL, "quarantine", entry.Quarantine)
		return nil
	}
	if b.HolderKnown && b.Holder != entry.Holder() {
		// Dispatched for the organization that held the name then: its result, log and
		// record are not shown to the one that holds it now.
		log.Warn("build result not reported: the repository's name is held by another installation than when it was built", "job", out.JobID, "repo", cloneURL, "built for", b.Holder, "held by", entry.Holder())
		return nil
	}
	// Nomad's words about a build that got the secrets (a task's failure message, say) may
	// quote one; a build without them has none to quote, and masking its words with them
	// would tell the build whether a guess of one is right.
	var shown []string
	if b.Secrets {
		mask, err := entry.SecretValues()
		if err != nil {
			return fmt.Errorf("report %s: secrets of %s: %w", out.JobID, cloneURL, err)
		}
		shown = append(secrets.Values(b.Payload), mask...)
	}
	f, repo, err := p.cfg.Forge(entry, cloneURL)
	if err != nil {
		return fmt.Errorf("report %s: forge for %s: %w", out.JobID, cloneURL, err)
	}
	s := forge.Status{
		Repo:        repo,
		Commit:      commit,
		State:       forge.State(out.Result),
		Context:     StartedContext(flavor, b.Cause),
		Description: secrets.MaskString(out.Description, shown),
		TargetURL:   p.LogURL(out.Namespace, out.JobID),
	}
	// Skip a status the commit already has: the event stream is replayed at start, and a
	// second bot sees the same events.
	hidden := false // a newer build of the commit has the status
	// A forge that cannot read statuses back (forge.ErrUnsupported) gets the status again.
	{
		cur, found, err := f.LatestStatus(ctx, repo, commit, s.Context)
		if err == nil && found {
			if cur.State == s.State && cur.TargetURL == s.TargetURL {
				return nil // already reported, by this bot or another, with its comment
			}
			// News of a build still waiting must not hide the final status of this build.
			if !out.Final && cur.TargetURL == s.TargetURL && cur.State != forge.StatePending {
				return nil
			}
			// Nor may an older build's hide a newer one's (a /rebuild, an approval).
			if cur.TargetURL != s.TargetURL && p.newer(ctx, cur.TargetURL, b) {
				log.Info("build result not reported: a newer build of the commit has its status", "job", out.JobID, "result", out.Result, "status", cur.TargetURL)
				hidden = true
			}
		}
	}
	if hidden {
		// Its status is not written, but its log is still linked (from the comment, from
		// statuses written before): it is archived all the same, by one bot.
		if out.Final && s.State != forge.StatePending && p.cfg.Archive != nil && !unarchived {
			done, mine, _ := p.protocol.claimReport(ctx, out.Namespace, out.JobID, s.State)
			if mine {
				if err := p.archiveBuild(ctx, log, b, entry, out, s, shown); err != nil {
					done(false)
					return fmt.Errorf("report %s: %w", out.JobID, err)
				}
				done(true)
			}
		}
		return p.conversePR(ctx, log, f, repo, entry, b, out)
	}
	if p.stoppedByClose(ctx, f, repo, b, out) {
		s.Description = ClosedDescription
	} else if by := p.supersededBy(ctx, b, out); by != "" {
		s.Description = SupersededDescription(by)
	} else if out.Result == orchestrator.Error && b.Stopped && p.replaced(ctx, b) {
		s.Description = ReplacedDescription
	}
	done, mine, waited := p.protocol.claimReport(ctx, out.Namespace, out.JobID, s.State)
	if again && !mine {
		// Another bot wrote it, or is writing it (claimReport waited for it), maybe
		// before this bot's pending status hid it: look again, then write it if needed.
		mine, waited = true, true
	}
	if !mine {
		return nil // another bot writes it, or has
	}
	if waited {
		// Another bot claimed it and did not say it wrote it: it may have died between
		// writing and saying so. Look again before writing.
		if cur, found, err := f.LatestStatus(ctx, repo, commit, s.Context); err == nil && found && cur.State == s.State && cur.TargetURL == s.TargetURL {
			done(true)
			return nil
		}
	}
	// The archive first: a final status links to a log that outlives Nomad's. A build
	// not archived is retried, as a status the forge refused is.
	if unarchived {
		// Not archived: nothing more to do before the status.
	} else if err := p.archiveBuild(ctx, log, b, entry, out, s, shown); err != nil {
		done(false)
		return fmt.Errorf("report %s: %w", out.JobID, err)
	}
	if err := f.SetStatus(ctx, s); err != nil {
		done(false)
		return fmt.Errorf("report %s: %w", out.JobID, err)
	}
	done(true)
	if out.Final && s.State != forge.StatePending {
		p.cfg.Observe.Reported(flavor, string(s.State))
		if err := p.told(ctx, log, f, repo, entry, b, s); err != nil {
			// The status is written: the issue is told of the next result.
			log.Warn("the schedule's issue was not told of the build's result", "job", out.JobID, "schedule", b.Schedule, "err", err)
		}
	}
	log.Info("build result reported", "job", out.JobID, "repo", repo.FullName, "commit", commit, "result", out.Result, "description", s.Description)
	return p.conversePR(ctx, log, f, repo, entry, b, out)
}

// conversePR brings the comment of b's pull request up to date with b's final state (a
// state some bot reported already is in it).
func (p *Pipeline) conversePR(ctx context.Context, log *slog.Logger, f forge.Forge, repo forge.Repo, entry *registry.Repo, b *orchestrator.Build, out orchestrator.Outcome) error {
	number, err := strconv.ParseInt(b.Meta["PR"], 10, 64)
	if err != nil || !out.Final {
		return nil
	}
	if err := p.converse(ctx, log, f, repo, entry, number); err != nil {
		return fmt.Errorf("report %s: %w", out.JobID, err)
	}
	return nil
}

// newer reports whether the build a status links to (by its log page) was submitted after
// b.
func (p *Pipeline) newer(ctx context.Context, targetURL string, b *orchestrator.Build) bool {
	path, ok := strings.CutPrefix(targetURL, p.cfg.BaseURL)
	if !ok {
		return false
	}
	ns, id, ok := orchestrator.ParseLogPath(path)
	if !ok {
		return false
	}
	other, err := p.cfg.Builds.Build(ctx, ns, id)
	return err == nil && other.Submitted.After(b.Submitted)
}

// replaced reports whether a newer build of b's commit and flavor, of the same pull request
// or branch, exists: b was stopped for it.
func (p *Pipeline) replaced(ctx context.Context, b *orchestrator.Build) bool {
	recent, err := p.cfg.Builds.Recent(ctx, b.Meta["REPO_URL"], 200)
	if err != nil {
		return false
	}
	for _, s := range recent {
		if s.ID != b.ID && s.Cause == b.Cause && s.Meta["COMMIT"] == b.Meta["COMMIT"] && s.Meta["FLAVOR"] == b.Meta["FLAVOR"] &&
			s.Meta["PR"] == b.Meta["PR"] && s.Meta["BRANCH"] == b.Meta["BRANCH"] && s.Submitted.After(b.Submitted) {
			return true
		}
	}
	return false
}
