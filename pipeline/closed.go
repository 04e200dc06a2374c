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

// ClosedDescription is the status of a build stopped because its pull request closed.
const ClosedDescription = "stopped: pull request closed"

// closed stops the builds of a pull request that are still queued or running (its code
// is no longer to be merged), marks their statuses, and says so in the conversation.
func (p *Pipeline) closed(ctx context.Context, log *slog.Logger, ev forge.Event, entry *registry.Repo, f forge.Forge, repo forge.Repo) error {
	number := ev.PullRequest.Number
	// The event's word is not enough to stop builds: the forge must say so too, and a
	// forge that cannot say stops nothing.
	info, err := f.PullRequestInfo(ctx, repo, number)
	if errors.Is(err, forge.ErrUnsupported) {
		log.Warn("the forge cannot confirm the pull request closed: nothing stopped", "pr", number)
		return nil
	}
	if err != nil {
		return fmt.Errorf("pull request %s#%d: %w", repo.FullName, number, err)
	}
	if info.Open {
		log.Warn("closed pull request is open: nothing stopped", "pr", number)
		return nil
	}
	all, err := p.cfg.Builds.Recent(ctx, ev.Repo.CloneURL, 500)
	if err != nil {
		return fmt.Errorf("builds of %s#%d: %w", repo.FullName, number, err)
	}
	var errs []error
	for _, s := range all {
		if s.Meta["REPO_URL"] != ev.Repo.CloneURL || s.Meta["PR"] != strconv.FormatInt(number, 10) || (s.State != "queued" && s.State != "running") {
			continue
		}
		if err := p.cfg.Builds.Stop(ctx, s.Namespace, s.ID); err != nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", s.ID, err))
			continue
		}
		log.Info("build stopped: pull request closed", "pr", number, "job", s.ID)
		errs = append(errs, f.SetStatus(ctx, forge.Status{
			Repo: repo, Commit: s.Meta["COMMIT"], State: forge.StateError, Context: StatusContext(s.Meta["FLAVOR"]),
			Description: ClosedDescription, TargetURL: p.LogURL(s.Namespace, s.ID),
		}))
	}
	errs = append(errs, p.converse(ctx, log, f, repo, entry, number))
	return errors.Join(errs...)
}

// stoppedByClose reports whether an outcome is a pull request's build stopped because the
// pull request closed: it was stopped, and the pull request is closed; its status says so,
// and not just "stopped".
func (p *Pipeline) stoppedByClose(ctx context.Context, f forge.Forge, repo forge.Repo, b *orchestrator.Build, out orchestrator.Outcome) bool {
	if out.Result != orchestrator.Error || !b.Stopped || b.Meta["PR"] == "" {
		return false
	}
	number, err := strconv.ParseInt(b.Meta["PR"], 10, 64)
	if err != nil {
		return false
	}
	info, err := f.PullRequestInfo(ctx, repo, number)
	return err == nil && !info.Open
}
