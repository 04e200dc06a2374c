package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"

	"github.com/albatros-ci/albatros/forge"
	"github.com/albatros-ci/albatros/orchestrator"
	"github.com/albatros-ci/albatros/secrets"
)

// Report writes a build's outcome as the status of its commit. The build's repository,
// commit and flavor are read back from Nomad (the dispatch meta), so a restarted bot reports
// builds it did not start. It logs the status it writes, masked as written.
func (p *Pipeline) Report(ctx context.Context, log *slog.Logger, out orchestrator.Outcome) error {
	b, err := p.cfg.Builds.Build(ctx, out.Namespace, out.JobID)
	if err != nil {
		return fmt.Errorf("report %s: %w", out.JobID, err)
	}
	cloneURL, commit, flavor := b.Meta["REPO_URL"], b.Meta["COMMIT"], b.Meta["FLAVOR"]
	entry, err := p.cfg.Repos.Repo(ctx, cloneURL)
	if err != nil {
		return fmt.Errorf("report %s: %w", out.JobID, err)
	}
	f, repo, err := p.cfg.Forge(entry, cloneURL)
	if err != nil {
		return fmt.Errorf("report %s: forge for %s: %w", out.JobID, cloneURL, err)
	}
	s := forge.Status{
		Repo:    repo,
		Commit:  commit,
		State:   forge.State(out.Result),
		Context: StatusContext(flavor),
		// Nomad's words about the build (a task's failure message, say) may quote a secret.
		Description: secrets.MaskString(out.Description, append(secrets.Values(b.Payload), entry.SecretValues()...)),
		TargetURL:   p.LogURL(out.Namespace, out.JobID),
	}
	// Skip a status the commit already has: the event stream is replayed at start, and a
	// second bot sees the same events.
	already := false
	if r, ok := f.(forge.StatusReader); ok {
		cur, found, err := r.LatestStatus(ctx, repo, commit, s.Context)
		// The same build in the same state: already reported (its pull request's comment
		// is brought up to date all the same: whoever wrote the status, a closing pull
		// request for one, may have written the comment before the build ended).
		already = err == nil && found && cur.State == s.State && cur.TargetURL == s.TargetURL
		// News of a build still waiting must not hide the final status of this build.
		if err == nil && found && !out.Final && cur.TargetURL == s.TargetURL && cur.State != forge.StatePending {
			return nil
		}
	}
	if !already {
		if p.stoppedByClose(ctx, f, repo, b, out) {
			s.Description = ClosedDescription
		} else if by := p.supersededBy(ctx, b, out); by != "" {
			s.Description = SupersededDescription(by)
		}
		if err := f.SetStatus(ctx, s); err != nil {
			return err
		}
		log.Info("build result reported", "job", out.JobID, "repo", repo.FullName, "commit", commit, "result", out.Result, "description", s.Description)
	}
	if number, err := strconv.ParseInt(b.Meta["PR"], 10, 64); err == nil && out.Final {
		return p.converse(ctx, log, f, repo, entry, number)
	}
	return nil
}
