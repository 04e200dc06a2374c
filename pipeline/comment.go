package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/albatros-ci/albatros/commands"
	"github.com/albatros-ci/albatros/forge"
	"github.com/albatros-ci/albatros/orchestrator"
	"github.com/albatros-ci/albatros/registry"
)

// shaRE is what /approve takes: a full commit id, 40 (SHA-1) or 64 (SHA-256) hex
// characters. A prefix would do for a human, but a short one can be forged: a commit made
// to share the prefix of the one the maintainer read, pushed in its place.
var shaRE = regexp.MustCompile(`^(?:[0-9a-fA-F]{40}|[0-9a-fA-F]{64})$`)

// comment runs the commands of a new comment on a pull request:
//
//   - /rebuild builds every flavor of the pull request's head again, /rebuild <flavor> one
//     flavor: a new build even of the same commit, once per comment. It gets the
//     repository's secrets as any build of that head does (see trustedCode): when the
//     commit is recorded as trusted (a trusted push of it, or an approval), or when the
//     head is a trusted owner's fork's;
//   - /approve <sha> builds the pull request's head with the repository's secrets, once per
//     flavor, when sha is that head's full commit id; of an earlier commit of the pull
//     request, it says which commit is the head now and builds nothing.
//
// /rebuild is for trusted users (of the entry or the installation, users or teams) and
// for users with write access to the repository; /approve, which hands the secrets to
// code, for trusted users only. Anyone else gets a reply saying why, and nothing runs. The
// bot's own comments are not read. An accepted comment gets the reaction eyes, then rocket
// once its builds are dispatched.
func (p *Pipeline) comment(ctx context.Context, log *slog.Logger, ev forge.Event, entry *registry.Repo, f forge.Forge, repo forge.Repo, opts Options) ([]orchestrator.Dispatched, error) {
	cm, number := ev.Comment, ev.PullRequest.Number
	cmds := commands.Parse(cm.Body)
	if len(cmds) == 0 {
		return nil, nil
	}
	me, err := p.me(ctx, f)
	if err != nil {
		return nil, err
	}
	if strings.EqualFold(cm.Author, me) {
		return nil, nil
	}
	log = log.With("pr", number, "comment", cm.ID, "author", cm.Author)
	reply := func(text string) error {
		_, err := f.CreateComment(ctx, repo, number, fmt.Sprintf("@%s %s", cm.Author, text))
		if err != nil {
			return fmt.Errorf("reply to comment %d on %s#%d: %w", cm.ID, repo.FullName, number, err)
		}
		return nil
	}
	if p.strangers.recent(repo.CloneURL, number, cm.Author, time.Now()) {
		// Refused a moment ago: not asked about again (the forge's rate limit), however
		// many they post; a right given meanwhile counts once the while is over.
		log.Info("command dropped: its author was refused on this pull request a moment ago", "every", strangerReplyEvery)
		return nil, nil
	}
	trusted, writer, err := p.rights(ctx, f, repo, entry, cm.Author, cm.AuthorID)
	if err != nil {
		return nil, fmt.Errorf("rights of %s on %s: %w", cm.Author, repo.FullName, err)
	}
	if !trusted && !writer {
		log.Info("command refused: neither trusted nor a writer")
		// Anyone may comment on a public repository's pull requests: one reply per
		// stranger and pull request a while, not one per comment (each costs the forge's
		// rate limit, and GitHub's secondary limits on writing comments).
		if !p.strangers.first(repo.CloneURL, number, cm.Author, time.Now()) {
			return nil, nil
		}
		return nil, reply(fmt.Sprintf("only this repository's maintainers (write access) and its trusted users may `/%s` here: nothing was run.", cmds[0].Name))
	}
	react := func(reaction string) {
		if err := f.React(ctx, repo, cm.ID, reaction); err != nil && !errors.Is(err, forge.ErrUnsupported) {
			log.Warn("react", "reaction", reaction, "err", err)
		}
	}
	react("eyes")
	info, err := f.PullRequestInfo(ctx, repo, number)
	if err != nil {
		return nil, fmt.Errorf("pull request %s#%d: %w", repo.FullName, number, err)
	}
	if !info.Open {
		return nil, reply("this pull request is closed: nothing was run.")
	}
	head := forge.Event{
		Kind: forge.KindPullRequest, Delivery: ev.Delivery, Repo: ev.Repo, Commit: info.Head, Branch: info.HeadBranch,
		Sender: info.Author, SenderID: info.AuthorID, PullRequest: &info.PullRequest,
	}
	if err := head.Validate(); err != nil {
		log.Warn("command refused: the pull request's head cannot be built", "err", err)
		return nil, errors.Join(fmt.Errorf("pull request %s#%d: %w", repo.FullName, number, err),
			reply("this pull request's head cannot be built (its source repository or branch is gone?): nothing was run."))
	}
	var out []orchestrator.Dispatched
	var errs []error
	for _, cmd := range cmds {
		o := Options{NoSecrets: opts.NoSecrets, By: cm.Author}
		switch cmd.Name {
		case commands.Rebuild:
			o.Again = "rebuild:" + strconv.FormatInt(cm.ID, 10)
			if len(cmd.Args) > 0 {
				fl := cmd.Args[0]
				if known := p.flavors(entry); !slices.Contains(known, fl) {
					errs = append(errs, reply(fmt.Sprintf("`%s` is not a flavor of this repository (%s): nothing was rebuilt.", clip(fl), strings.Join(known, ", "))))
					continue
				}
				o.Flavor = fl
			}
			// Trust follows the code, as for any build of the head: the commit recorded as
			// trusted (a trusted push of it, an approval), or a trusted owner's fork.
		case commands.Approve:
			if !trusted {
				log.Info("approval refused: not a trusted user")
				errs = append(errs, reply("only this repository's trusted users may `/approve`: it gives the repository's secrets to the code. Nothing was run."))
				continue
			}
			if len(cmd.Args) == 0 || !shaRE.MatchString(cmd.Args[0]) {
				errs = append(errs, reply("`/approve` takes the full id of the commit to run with the secrets: `/approve "+info.Head+"` for the head."))
				continue
			}
			sha := strings.ToLower(cmd.Args[0])
			if sha != info.Head {
				msg, err := p.notHead(ctx, f, repo, number, sha, info.Head)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				errs = append(errs, reply(msg))
				continue
			}
			// Once per commit and flavor, whoever approves it and however often.
			o.Approved, o.Again = true, "approve:"+info.Head
		}
		log.Info("command accepted", "command", cmd.Name, "args", cmd.Args, "head", info.Head)
		d, err := p.build(ctx, log, head, entry, f, repo, o)
		out = append(out, d...)
		errs = append(errs, err)
	}
	if len(out) > 0 {
		react("rocket")
	}
	errs = append(errs, p.converse(ctx, log, f, repo, entry, number))
	return out, errors.Join(errs...)
}

// notHead says why /approve of sha runs nothing: it is an earlier commit of the pull
// request (and which is the head now), or none of its commits.
func (p *Pipeline) notHead(ctx context.Context, prs forge.PullRequests, repo forge.Repo, number int64, sha, head string) (string, error) {
	commits, err := prs.PullRequestCommits(ctx, repo, number)
	if err != nil {
		return "", fmt.Errorf("commits of %s#%d: %w", repo.FullName, number, err)
	}
	if slices.Contains(commits, sha) {
		return fmt.Sprintf("`%s` is not the head of this pull request any more: its head is now `%s`. Nothing was run; read that commit and `/approve %s` to run it with the secrets.", sha[:12], head[:12], head), nil
	}
	return fmt.Sprintf("`%s` is no commit of this pull request: its head is `%s`. Nothing was run.", sha[:12], head[:12]), nil
}

// rights reports whether user is trusted on the repository (by name or team), and, when
// not, whether they have write access to it.
func (p *Pipeline) rights(ctx context.Context, f forge.Forge, repo forge.Repo, entry *registry.Repo, user string, id int64) (trusted, writer bool, err error) {
	trusted, err = TrustedUser(ctx, f, repo, entry, user, id)
	if err != nil || trusted {
		return trusted, false, err
	}
	// A forge that cannot tell writers has none: only trusted users' commands run.
	writer, err = f.CanWrite(ctx, repo, user)
	if errors.Is(err, forge.ErrUnsupported) {
		return false, false, nil
	}
	return false, writer, err
}

// flavors are the flavors an entry builds.
func (p *Pipeline) flavors(entry *registry.Repo) []string { return Flavors(entry) }

// Flavors are the flavors an entry builds: its own, else DefaultFlavor.
func Flavors(entry *registry.Repo) []string {
	if len(entry.Flavors) > 0 {
		return entry.Flavors
	}
	return []string{DefaultFlavor}
}

// clip keeps what the bot quotes of a comment short, and inside its backticks.
func clip(s string) string {
	s = strings.ReplaceAll(s, "`", "")
	if len(s) > 40 {
		return strings.ToValidUTF8(s[:40], "") + "…"
	}
	return s
}

// strangerReplyEvery is how often a stranger's refused commands on one pull request get a
// reply.
const strangerReplyEvery = 10 * time.Minute

// strangers remembers when each stranger's refused command on a pull request was last
// replied to (by this bot; another replica may reply once more).
type strangers struct {
	mu   sync.Mutex
	last map[string]time.Time
}

// recent reports whether user's command on pull request number of cloneURL was refused,
// and replied to, in the last strangerReplyEvery.
func (s *strangers) recent(cloneURL string, number int64, user string, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	at, ok := s.last[fmt.Sprintf("%s#%d\x00%s", cloneURL, number, strings.ToLower(user))]
	return ok && now.Sub(at) < strangerReplyEvery
}

// first reports whether a refused command of user on pull request number of cloneURL gets
// a reply at now: not when one did in the last strangerReplyEvery.
func (s *strangers) first(cloneURL string, number int64, user string, now time.Time) bool {
	key := fmt.Sprintf("%s#%d\x00%s", cloneURL, number, strings.ToLower(user))
	s.mu.Lock()
	defer s.mu.Unlock()
	if at, ok := s.last[key]; ok && now.Sub(at) < strangerReplyEvery {
		return false
	}
	if s.last == nil || len(s.last) >= 10000 {
		kept := map[string]time.Time{}
		for k, at := range s.last {
			if now.Sub(at) < strangerReplyEvery {
				kept[k] = at
			}
		}
		s.last = kept
	}
	s.last[key] = now
	return true
}
