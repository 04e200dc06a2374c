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

	"github.com/albatros-ci/albatros/commands"
	"github.com/albatros-ci/albatros/forge"
	"github.com/albatros-ci/albatros/orchestrator"
	"github.com/albatros-ci/albatros/registry"
)

// shaPrefixRE is what /approve takes: 7 to 64 hex characters of a commit.
var shaPrefixRE = regexp.MustCompile(`^[0-9a-fA-F]{7,64}$`)

// comment runs the commands of a new comment on a pull request:
//
//   - /rebuild builds every flavor of the pull request's head again, /rebuild <flavor> one
//     flavor: a new build even of the same commit, once per comment, with the secrets the
//     code would get from a push, no more;
//   - /approve <sha> builds the pull request's head with the repository's secrets, once per
//     flavor, when sha is (a prefix of) that head; of an earlier commit of the pull
//     request, it says which commit is the head now and builds nothing.
//
// Only a trusted user (of the entry or the installation, users or teams) or one with write
// access to the repository may; anyone else gets a reply saying why, and nothing runs. The
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
	c, ok1 := f.(forge.Commenter)
	prs, ok2 := f.(forge.PullRequests)
	if !ok1 || !ok2 {
		return nil, errors.New("the forge cannot read pull requests or comment: commands are not read")
	}
	log = log.With("pr", number, "comment", cm.ID, "author", cm.Author)
	reply := func(text string) error {
		_, err := c.CreateComment(ctx, repo, number, fmt.Sprintf("@%s %s", cm.Author, text))
		return err
	}
	may, err := p.mayCommand(ctx, f, repo, entry, cm.Author)
	if err != nil {
		return nil, err
	}
	if !may {
		log.Info("command refused: neither trusted nor a writer")
		return nil, reply(fmt.Sprintf("only this repository's maintainers (write access) and its trusted users may `/%s` here: nothing was run.", cmds[0].Name))
	}
	react := func(reaction string) {
		if r, ok := f.(forge.Reactor); ok {
			if err := r.React(ctx, repo, cm.ID, reaction); err != nil {
				log.Warn("react", "reaction", reaction, "err", err)
			}
		}
	}
	react("eyes")
	info, err := prs.PullRequestInfo(ctx, repo, number)
	if err != nil {
		return nil, err
	}
	if !info.Open {
		return nil, reply("this pull request is closed: nothing was run.")
	}
	head := forge.Event{
		Kind: forge.KindPullRequest, Delivery: ev.Delivery, Repo: ev.Repo, Commit: info.Head, Branch: info.HeadBranch,
		Sender: info.Author, PullRequest: &info.PullRequest,
	}
	if err := head.Validate(); err != nil {
		return nil, fmt.Errorf("pull request %s#%d: %w", repo.FullName, number, err)
	}
	var out []orchestrator.Dispatched
	var errs []error
	for _, cmd := range cmds {
		o := Options{NoSecrets: opts.NoSecrets}
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
		case commands.Approve:
			if len(cmd.Args) == 0 || !shaPrefixRE.MatchString(cmd.Args[0]) {
				errs = append(errs, reply("`/approve` takes the commit to run with the secrets: `/approve "+info.Head[:7]+"` for the head."))
				continue
			}
			sha := strings.ToLower(cmd.Args[0])
			if !strings.HasPrefix(info.Head, sha) {
				msg, err := p.notHead(ctx, prs, repo, number, sha, info.Head)
				if err != nil {
					return out, err
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
		return "", err
	}
	short := head[:7]
	for _, c := range commits {
		if strings.HasPrefix(c, sha) {
			return fmt.Sprintf("`%s` is not the head of this pull request any more: its head is now `%s`. Nothing was run; read that commit and `/approve %s` to run it with the secrets.", sha[:min(len(sha), 12)], short, short), nil
		}
	}
	return fmt.Sprintf("`%s` is no commit of this pull request: its head is `%s`. Nothing was run.", sha[:min(len(sha), 12)], short), nil
}

// mayCommand reports whether user may give the bot commands on the repository: a trusted
// user (by name or team), or one with write access.
func (p *Pipeline) mayCommand(ctx context.Context, f forge.Forge, repo forge.Repo, entry *registry.Repo, user string) (bool, error) {
	trusted, err := TrustedSource(ctx, f, forge.Event{Kind: forge.KindPush, Repo: repo, Sender: user}, entry)
	if err != nil {
		return false, err
	}
	if trusted {
		return true, nil
	}
	w, ok := f.(forge.Writers)
	if !ok {
		return false, nil
	}
	return w.CanWrite(ctx, repo, user)
}

// flavors are the flavors an entry builds.
func (p *Pipeline) flavors(entry *registry.Repo) []string {
	if len(entry.Flavors) > 0 {
		return entry.Flavors
	}
	return []string{DefaultFlavor}
}

// clip keeps what the bot quotes of a comment short.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
