package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/albatros-ci/albatros/archive"
	"github.com/albatros-ci/albatros/forge"
	"github.com/albatros-ci/albatros/orchestrator"
	"github.com/albatros-ci/albatros/registry"
)

// Marker starts the bot's comment on a pull request, hidden in the rendered comment: the bot
// finds its comment again by it (and by its author), and edits it in place.
const Marker = "<!-- albatros: builds of this pull request -->"

// converse writes the state of a pull request's builds in the bot's one comment on it,
// creating the comment the first time and editing it after. The state is read afresh from
// Nomad (the builds whose meta name the pull request) and the forge (the head), so that
// any bot writes the same comment; bots serialize on a lock per pull request and read the
// comments again once they hold it, so that two never create two comments. A forge that
// cannot comment has no conversation.
func (p *Pipeline) converse(ctx context.Context, log *slog.Logger, f forge.Forge, repo forge.Repo, entry *registry.Repo, number int64) error {
	// A forge that cannot read pull requests has no conversation, and takes no lock for it.
	if _, err := f.PullRequestInfo(ctx, repo, number); errors.Is(err, forge.ErrUnsupported) {
		return nil
	}
	unlock, err := p.lockPR(ctx, repo.CloneURL, number)
	if err != nil {
		return fmt.Errorf("conversation of %s#%d: %w", repo.FullName, number, err)
	}
	defer unlock()
	wrap := func(err error) error { return fmt.Errorf("conversation of %s#%d: %w", repo.FullName, number, err) }
	info, err := f.PullRequestInfo(ctx, repo, number)
	if errors.Is(err, forge.ErrUnsupported) {
		return nil // no conversation on a forge that cannot read pull requests
	}
	if err != nil {
		return wrap(err)
	}
	body, err := p.render(ctx, log, f, repo, entry, info)
	if err != nil {
		return wrap(err)
	}
	me, err := p.me(ctx, f)
	if err != nil {
		return wrap(err)
	}
	comments, err := f.Comments(ctx, repo, number)
	if errors.Is(err, forge.ErrUnsupported) {
		return nil // nor on one that cannot comment
	}
	if err != nil {
		return wrap(err)
	}
	for _, cm := range comments {
		if strings.EqualFold(cm.Author, me) && strings.HasPrefix(cm.Body, Marker) {
			if cm.Body == body {
				return nil
			}
			if err := f.EditComment(ctx, repo, cm.ID, body); err != nil {
				return wrap(err)
			}
			return nil
		}
	}
	created, err := f.CreateComment(ctx, repo, number, body)
	if err != nil {
		return wrap(err)
	}
	log.Info("conversation started", "pr", number, "comment", created.ID)
	return nil
}

// lockPR holds the pull request's lock, waiting for it a while: another bot writing the
// same comment holds it for a few requests at most.
func (p *Pipeline) lockPR(ctx context.Context, cloneURL string, number int64) (func(), error) {
	if p.cfg.Locks == nil {
		return func() {}, nil
	}
	sum := sha256.Sum256([]byte(cloneURL))
	name := "pr/" + hex.EncodeToString(sum[:8]) + "/" + strconv.FormatInt(number, 10)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		unlock, ok, err := p.cfg.Locks.Lock(ctx, name) // waits a second for it
		if err != nil {
			return nil, err
		}
		if ok {
			return unlock, nil
		}
		if time.Now().After(deadline) {
			return nil, errors.New("another bot holds the pull request's lock")
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// me is the login the forge client acts as: its own comments are the bot's.
func (p *Pipeline) me(ctx context.Context, f forge.Forge) (string, error) {
	p.logins.mu.Lock()
	login, found := p.logins.m[f]
	p.logins.mu.Unlock()
	if found {
		return login, nil
	}
	login, err := f.Me(ctx)
	if err != nil {
		return "", err
	}
	p.logins.mu.Lock()
	if p.logins.m == nil {
		p.logins.m = map[forge.Forge]string{}
	}
	p.logins.m[f] = login
	p.logins.mu.Unlock()
	return login, nil
}

// logins are the forge clients' logins, asked once.
type logins struct {
	mu sync.Mutex
	m  map[forge.Forge]string
}

// render writes the comment: the head commit's builds, one row per flavor (its newest
// build), the note on secrets, and one collapsed line per earlier head.
func (p *Pipeline) render(ctx context.Context, log *slog.Logger, f forge.Forge, repo forge.Repo, entry *registry.Repo, info forge.PullRequestInfo) (string, error) {
	live, err := p.cfg.Builds.Recent(ctx, repo.CloneURL, 500)
	if err != nil {
		return "", err
	}
	// The builds of an earlier holder of the repository's name are not this pull
	// request's, whatever their number.
	var all []orchestrator.Summary
	for _, s := range live {
		if !s.HolderKnown || s.Holder == entry.Holder() {
			all = append(all, s)
		}
	}
	if p.cfg.Archive != nil {
		// The builds Nomad has collected keep their rows (and their links) from the archive.
		page, err := p.cfg.Archive.List(ctx, archive.Query{Repo: repo.CloneURL, OrgID: entry.Holder(), PR: info.Number, Limit: 200})
		if err != nil {
			log.Warn("the archive's builds of the pull request not read: the comment shows those Nomad holds", "pr", info.Number, "err", err)
		}
		all = archive.Merge(all, page.Builds, len(all)+len(page.Builds))
	}
	pr := strconv.FormatInt(info.Number, 10)
	type head struct {
		sha    string
		builds []orchestrator.Summary // newest first
	}
	var heads []*head // newest first
	for _, s := range all {
		if s.Meta["REPO_URL"] != repo.CloneURL || s.Meta["PR"] != pr {
			continue
		}
		i := slices.IndexFunc(heads, func(h *head) bool { return h.sha == s.Meta["COMMIT"] })
		if i < 0 {
			heads = append(heads, &head{sha: s.Meta["COMMIT"]})
			i = len(heads) - 1
		}
		heads[i].builds = append(heads[i].builds, s)
	}
	// The pull request's head first, built or not.
	i := slices.IndexFunc(heads, func(h *head) bool { return h.sha == info.Head })
	if i < 0 {
		heads = slices.Insert(heads, 0, &head{sha: info.Head})
	} else {
		h := heads[i]
		heads = slices.Insert(slices.Delete(heads, i, i+1), 0, h)
	}
	now := time.Now()
	var b strings.Builder
	b.WriteString(Marker + "\n")
	fmt.Fprintf(&b, "### Albatros · %s\n\n", p.commitLink(repo, info.Head))
	cur := heads[0]
	if len(cur.builds) == 0 {
		b.WriteString("No build of this commit yet.\n")
	} else {
		b.WriteString("| flavor | state | took | log |\n|---|---|---|---|\n")
		for _, s := range newestPerFlavor(cur.builds) {
			// Only a finished build's: a running one's would change the comment at every
			// refresh.
			took := ""
			if !s.Started.IsZero() && !s.Finished.IsZero() {
				took = s.Took(now).Round(time.Second).String()
			}
			fmt.Fprintf(&b, "| %s | %s %s | %s | [log](%s) |\n", s.Meta["FLAVOR"], stateEmoji[s.State], s.State, took, p.LogURL(s.Namespace, s.ID))
		}
	}
	if note, err := p.secretsNote(ctx, log, f, repo, entry, info, cur.builds); err != nil {
		return "", err
	} else if note != "" {
		b.WriteString("\n" + note + "\n")
	}
	if !info.Open {
		b.WriteString("\nThis pull request is closed: its builds that were still running were stopped.\n")
	}
	if p.cfg.History != nil {
		if u := p.cfg.History(repo.CloneURL, info.Number); u != "" {
			fmt.Fprintf(&b, "\n[Every build of this pull request](%s)\n", u)
		}
	}
	if len(heads) > 1 {
		b.WriteString("\n<details><summary>Earlier commits</summary>\n\n")
		for _, h := range heads[1:] {
			var parts []string
			for _, s := range newestPerFlavor(h.builds) {
				parts = append(parts, fmt.Sprintf("%s [%s](%s)", stateEmoji[s.State], s.Meta["FLAVOR"], p.LogURL(s.Namespace, s.ID)))
			}
			fmt.Fprintf(&b, "- %s: %s\n", p.commitLink(repo, h.sha), strings.Join(parts, ", "))
		}
		b.WriteString("\n</details>\n")
	}
	return b.String(), nil
}

var stateEmoji = map[string]string{"success": "✅", "failure": "❌", "error": "⚠️", "running": "🔄", "queued": "⏳"}

// newestPerFlavor keeps the newest build of each flavor (a rebuild replaces the row), in
// flavor order.
func newestPerFlavor(builds []orchestrator.Summary) []orchestrator.Summary {
	var out []orchestrator.Summary
	for _, s := range builds { // newest first
		if !slices.ContainsFunc(out, func(o orchestrator.Summary) bool { return o.Meta["FLAVOR"] == s.Meta["FLAVOR"] }) {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b orchestrator.Summary) int { return strings.Compare(a.Meta["FLAVOR"], b.Meta["FLAVOR"]) })
	return out
}

func (p *Pipeline) commitLink(repo forge.Repo, sha string) string {
	short := sha
	if len(short) > 7 {
		short = short[:7]
	}
	if repo.HTMLURL == "" {
		return "`" + short + "`"
	}
	return fmt.Sprintf("[`%s`](%s/commit/%s)", short, strings.TrimSuffix(repo.HTMLURL, "/"), sha)
}

// secretsNote says, when the head's builds ran without the repository's secrets because its
// code is not trusted, why, and how a trusted user gives them to this commit.
func (p *Pipeline) secretsNote(ctx context.Context, log *slog.Logger, f forge.Forge, repo forge.Repo, entry *registry.Repo, info forge.PullRequestInfo, builds []orchestrator.Summary) (string, error) {
	if !entry.HasSecrets() || len(builds) == 0 {
		return "", nil
	}
	ev := forge.Event{Kind: forge.KindPullRequest, Repo: repo, Commit: info.Head}
	if slices.ContainsFunc(builds, func(s orchestrator.Summary) bool { return s.Secrets }) {
		if p.commitTrust(ctx, log, ev, false) == trustedApprove {
			return "Approved: this commit's builds run with the repository's secrets.", nil
		}
		return "", nil
	}
	ev = forge.Event{Kind: forge.KindPullRequest, Repo: repo, Commit: info.Head, Sender: info.Author, SenderID: info.AuthorID, PullRequest: &info.PullRequest}
	trusted, _, err := p.trustedCode(ctx, log, f, ev, entry)
	if err != nil || trusted {
		return "", nil // trusted since (a build that could not be trusted says so in the bot's log)
	}
	var why string
	switch {
	case info.AGit:
		why = "it was pushed for review by `" + info.Author + "`, who is not trusted here"
	case info.Fork:
		why = "it comes from the fork `" + info.HeadRepo.FullName + "`, whose owner is not trusted here"
		if ok, err := TrustedUser(ctx, f, repo, entry, info.HeadRepo.Owner, info.HeadRepo.OwnerID); err == nil && ok {
			why = "it comes from the fork `" + info.HeadRepo.FullName + "`, whose branch others may push to: who pushed this commit is not known"
		}
	default:
		why = "no trusted user pushed it (the code of a pull request between branches is trusted by who pushed it, not by who opened the pull request)"
	}
	return fmt.Sprintf("> [!NOTE]\n> The builds of %s ran **without the repository's secrets**: %s.\n"+
		"> A trusted user who has read this exact commit can run it with them by commenting `/approve %s`; a later push needs a new approval.",
		p.commitLink(repo, info.Head), why, info.Head), nil
}
