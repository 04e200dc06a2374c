package pipeline

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/albatros-ci/albatros/forge"
	"github.com/albatros-ci/albatros/registry"
)

// trust is the registry's record of trusted commits, as the pipeline uses it
// (registry.Registry.TrustCommit): who pushed a commit is known only to the push's
// delivery, so the pipeline writes down, when it judges the code of a commit trusted, that
// it did.
type trust interface {
	TrustCommit(ctx context.Context, cloneURL, commit, why string) error
	// CommitTrust returns why the commit was recorded as trusted, "" when it was not.
	CommitTrust(ctx context.Context, cloneURL, commit string) (string, error)
	// RecordHead records a branch's last push, and BranchHead reads it back (see
	// registry.Head): a scheduled build's trust.
	RecordHead(ctx context.Context, h registry.Head) error
	BranchHead(ctx context.Context, cloneURL, branch string) (registry.Head, error)
}

// Why a commit's code is trusted, as recorded.
const (
	trustedPush    = "push"    // pushed by a trusted user
	trustedFork    = "fork"    // the head of a pull request from a trusted owner's fork
	trustedApprove = "approve" // approved by a trusted user with /approve <sha>
)

// TrustedUser reports whether the user login, of numeric id (0 when not known), is one of
// the entry's trusted users (by id when the entry records one, see registry.Repo.Trusts),
// or a member of one of its trusted teams of the repository's organization (by the team's
// id when recorded), which f must then be able to tell (forge.TeamMembers).
func TrustedUser(ctx context.Context, f forge.Forge, repo forge.Repo, entry *registry.Repo, user string, id int64) (bool, error) {
	if user == "" {
		return false, nil
	}
	if entry.Trusts(user, id) {
		return true, nil
	}
	if len(entry.Trusted.Teams) == 0 {
		return false, nil
	}
	for _, team := range entry.Trusted.Teams {
		in, err := f.IsTeamMember(ctx, repo.Owner, forge.Team{Name: team, ID: entry.Trusted.TeamIDs[team]}, user)
		if errors.Is(err, forge.ErrUnsupported) {
			return false, nil // a forge that cannot tell team members trusts no team
		}
		if err != nil {
			return false, err
		}
		if in {
			return true, nil
		}
	}
	return false, nil
}

// pushWait bounds how long a same-repository pull request's update waits for the push of
// its head to be judged: the forge sends the push and the pull request's update at once.
const pushWait = 3 * time.Second

// trustedCode reports whether the code an event builds comes from a trusted source, and
// may run with the repository's secrets; why is what it records of the commit when so.
// Trust follows the code:
//
//   - a push or a tag: its sender (who pushed) must be trusted. A commit recorded as
//     trusted does not make a push of it trusted: a push chooses the branch or tag, which
//     trusted code may act on (a release, a deploy), and an untrusted writer may push a
//     trusted commit anywhere;
//   - a pull request whose head commit is recorded as trusted (a trusted user pushed it,
//     or approved it, or it came from a trusted owner's fork): yes;
//   - a pull request from a fork: the fork's owner must be trusted, and the head vouched
//     for: opened by the fork's owner, or an update pushed by the owner or by a trusted
//     user (writers may push to a fork's branch: maintainers' edits); a reopening, a
//     rebuild or the reconciler goes by the commit's record; an AGit pull request (pushed
//     for review to refs/for/…, which reading the repository allows) counts as a fork of
//     its author;
//   - a pull request between branches of the repository: only a recorded commit. Who
//     opened or updated it says nothing of who pushed its commits, and the bot learns who
//     pushed a commit only from the push's own delivery.
func (p *Pipeline) trustedCode(ctx context.Context, log *slog.Logger, f forge.Forge, ev forge.Event, entry *registry.Repo) (trusted bool, why string, err error) {
	pr := ev.PullRequest
	if pr == nil {
		ok, err := TrustedUser(ctx, f, ev.Repo, entry, ev.Sender, ev.SenderID)
		return ok, trustedPush, err
	}
	synchronized := pr.Action == "synchronized" || pr.Action == "synchronize"
	// The update of a pull request between branches comes with the push of its head,
	// whose delivery may be judged a moment later: wait for it a little, when the update's
	// sender (who pushed) is trusted; an untrusted pusher's push is not recorded anyway.
	wait := false
	if !pr.Fork && synchronized {
		if ok, err := TrustedUser(ctx, f, ev.Repo, entry, ev.Sender, ev.SenderID); err == nil && ok {
			wait = true
		}
	}
	if p.commitTrust(ctx, log, ev, wait) != "" {
		return true, "", nil
	}
	switch {
	case pr.AGit:
		// Its author pushed it, and only they update it on Gitea 1.26; should anyone
		// else push to it, that push is not the author's code.
		if synchronized && ev.SenderID != pr.AuthorID {
			return false, "", nil
		}
		ok, err := TrustedUser(ctx, f, ev.Repo, entry, pr.Author, pr.AuthorID)
		return ok, trustedFork, err
	case pr.Fork:
		byOwner := (ev.SenderID != 0 && ev.SenderID == pr.HeadRepo.OwnerID) ||
			(ev.SenderID == 0 && pr.HeadRepo.OwnerID == 0 && ev.Sender != "" && strings.EqualFold(ev.Sender, pr.HeadRepo.Owner))
		if synchronized && !byOwner {
			// Someone else pushed to the fork's branch (the base repository's writers may,
			// with GitHub's and Gitea's "allow edits by maintainers", on by default): the
			// code is theirs too, and they must be trusted as well.
			if ok, err := TrustedUser(ctx, f, ev.Repo, entry, ev.Sender, ev.SenderID); err != nil || !ok {
				return false, "", err
			}
		}
		if !synchronized && !(pr.Action == "opened" && byOwner) {
			// The head may be a writer's push (maintainers' edits are on by default, and a
			// branch allowing them to one pull request lets them push for all): whoever
			// reopens or rebuilds it, or finds it (the reconciler), cannot say who pushed
			// it. Only an update says (its pusher), or the fork's owner opening it (before,
			// no writer could push there); the commit is recorded as trusted then
			// (commitTrust, above).
			return false, "", nil
		}
		ok, err := TrustedUser(ctx, f, ev.Repo, entry, pr.HeadRepo.Owner, pr.HeadRepo.OwnerID)
		return ok, trustedFork, err
	}
	return false, "", nil
}

// commitTrust returns why ev's commit is recorded as trusted, "" when it is not; with
// wait, it looks again for up to pushWait. When the records cannot be read, it is not.
func (p *Pipeline) commitTrust(ctx context.Context, log *slog.Logger, ev forge.Event, wait bool) string {
	if p.cfg.Trust == nil {
		return ""
	}
	deadline := time.Now().Add(pushWait)
	for {
		why, err := p.cfg.Trust.CommitTrust(ctx, ev.Repo.CloneURL, ev.Commit)
		if err != nil {
			log.Warn("trusted commits could not be read: building without secrets", "err", err)
			return ""
		}
		if why != "" || !wait || time.Now().After(deadline) {
			return why
		}
		select {
		case <-ctx.Done():
			return ""
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// recordHead records ev, a push of a branch, as the branch's last push, trusted or not:
// a scheduled build of the branch gets the secrets only while its head is a trusted push's
// (see registry.Head). When it cannot be written, the record may name the commit of a
// push before, trusted: the branch's head then differs from it, unless the push put back
// the very commit it names.
func (p *Pipeline) recordHead(ctx context.Context, log *slog.Logger, ev forge.Event, trusted bool) {
	if p.cfg.Trust == nil || ev.Branch == "" {
		return
	}
	h := registry.Head{Repo: ev.Repo.CloneURL, Branch: ev.Branch, Commit: ev.Commit, Pusher: ev.Sender, PusherID: ev.SenderID, Trusted: trusted}
	if err := p.cfg.Trust.RecordHead(ctx, h); err != nil {
		log.Error("the branch's last push not recorded: its schedules may go by the push before", "branch", ev.Branch, "err", err)
	}
}

// recordTrust records that ev's commit is trusted, why; without a record, a pull request
// of the commit runs without the secrets, which is safe.
func (p *Pipeline) recordTrust(ctx context.Context, log *slog.Logger, ev forge.Event, why string) {
	if p.cfg.Trust == nil || why == "" {
		return
	}
	if err := p.cfg.Trust.TrustCommit(ctx, ev.Repo.CloneURL, ev.Commit, why); err != nil {
		log.Warn("trusted commit not recorded: its pull requests build without secrets", "err", err)
	}
}
