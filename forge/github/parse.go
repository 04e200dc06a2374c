package github

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	gh "github.com/google/go-github/v93/github"

	"github.com/albatros-ci/albatros/forge"
)

// Locate reads only the repository a delivery is about. Parse reads it this way for the
// events it does not act on; the fuzz tests hold Parse to it for every event.
func Locate(body []byte) (forge.Repo, error) {
	// A struct of its own rather than go-github's: an unverified body is read for these five
	// strings and nothing more.
	var p struct {
		Repository *struct {
			Name     string `json:"name"`
			FullName string `json:"full_name"`
			Owner    struct {
				Login string `json:"login"`
				ID    int64  `json:"id"`
			} `json:"owner"`
			HTMLURL  string `json:"html_url"`
			CloneURL string `json:"clone_url"`
		} `json:"repository"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return forge.Repo{}, fmt.Errorf("%w: %v", forge.ErrMalformed, err)
	}
	r := p.Repository
	if r == nil || r.CloneURL == "" || r.FullName == "" {
		return forge.Repo{}, fmt.Errorf("%w: no repository.clone_url or full_name", forge.ErrMalformed)
	}
	out := repo(r.CloneURL, r.FullName, r.Owner.Login, r.Name, r.HTMLURL)
	out.OwnerID = r.Owner.ID
	return out, nil
}

// Parse reads a delivery, once, before it is verified: ev.Repo is the repository the body
// names whenever it names one, whatever the error, so that the caller picks the secret
// from it, verifies the raw body, and only then acts on the event or the error. Nothing
// but ev.Repo may be used before the body is verified. It acts on push (branches and
// tags), pull_request (opened, synchronize, reopened; closed, to stop its builds; drafts
// alike, as GitHub runs checks on them), issue_comment (created, on a pull request),
// installation (created, deleted, suspend, unsuspend), installation_repositories (added,
// removed) and ping. It returns an error wrapping forge.ErrIgnoreEvent, saying why, for
// deliveries the bot does not act on (other events and actions, ref deletions, pull
// requests from deleted forks, comments on issues), and one wrapping
// forge.ErrMalformed for a delivery without X-GitHub-Event, a body that is not the event's
// JSON, or fields that fail forge.Event.Validate.
func Parse(h http.Header, body []byte) (forge.Event, error) {
	event := h.Get(gh.EventTypeHeader)
	delivery := h.Get(gh.DeliveryIDHeader)
	switch event {
	case "push", "pull_request", "ping", "issue_comment", "installation", "installation_repositories":
	default:
		// Not parsed as an event: a body the bot ignores need not be one go-github knows.
		r, err := Locate(body)
		switch {
		case err != nil:
		case event == "":
			err = fmt.Errorf("%w: no %s header", forge.ErrMalformed, gh.EventTypeHeader)
		default:
			err = forge.Ignore("event %q is not handled", event)
		}
		return forge.Event{Repo: r, Delivery: delivery}, err
	}
	payload, err := gh.ParseWebHook(event, body)
	if err != nil {
		r, _ := Locate(body) // the repository alone, to verify the delivery first
		return forge.Event{Repo: r, Delivery: delivery}, fmt.Errorf("%w: %s: %v", forge.ErrMalformed, event, err)
	}
	var ev forge.Event
	// A body of JSON null parses without error into a nil payload, matched by no case.
	switch p := payload.(type) {
	case *gh.PushEvent:
		ev, err = parsePush(p)
	case *gh.PullRequestEvent:
		ev, err = parsePullRequest(p)
	case *gh.PingEvent:
		ev = forge.Event{Kind: forge.KindPing, Sender: p.GetSender().GetLogin(), SenderID: p.GetSender().GetID()}
		if p.Repo != nil {
			ev.Repo = convert(p.Repo)
		}
	case *gh.IssueCommentEvent:
		ev, err = parseComment(p)
	case *gh.InstallationEvent:
		ev, err = parseInstallation(p)
		ev.Delivery = delivery
		return ev, err
	case *gh.InstallationRepositoriesEvent:
		ev, err = parseInstallationRepos(p)
		ev.Delivery = delivery
		return ev, err
	default:
		r, _ := Locate(body)
		return forge.Event{Repo: r, Delivery: delivery}, fmt.Errorf("%w: %s: not an object", forge.ErrMalformed, event)
	}
	if ev.Repo.FullName == "" {
		ev.Repo = forge.Repo{} // Locate's rule: a repository needs its clone URL and its full name
	}
	if ev.Repo.CloneURL == "" && err != nil {
		// The event did not decode (a field of another type, say): its repository alone
		// may still, so that the delivery is verified before it is called malformed.
		ev.Repo, _ = Locate(body)
	}
	ev.Delivery = delivery
	ev.Installation = installationOf(body)
	switch {
	case err != nil:
	case ev.Repo.CloneURL == "" && ev.Kind != forge.KindPing: // an organization's ping names none
		err = fmt.Errorf("%w: no repository.clone_url or full_name", forge.ErrMalformed)
	case ev.Kind != forge.KindPing:
		err = ev.Validate()
	}
	return ev, err
}

func parsePush(p *gh.PushEvent) (forge.Event, error) {
	r := p.GetRepo()
	ref, after := p.GetRef(), p.GetAfter()
	ev := forge.Event{
		Repo:     repo(r.GetCloneURL(), r.GetFullName(), r.GetOwner().GetLogin(), r.GetName(), r.GetHTMLURL()),
		Commit:   after,
		Sender:   p.GetSender().GetLogin(),
		SenderID: p.GetSender().GetID(),
	}
	ev.Repo.OwnerID = r.GetOwner().GetID()
	if r.GetCloneURL() == "" || r.GetFullName() == "" || ref == "" || after == "" {
		return ev, fmt.Errorf("%w: push without repository, ref or after", forge.ErrMalformed)
	}
	// GitHub says deleted: true, and pushes the all-zero object name as after (40 or, in
	// SHA-256 repositories, 64 zeros); either one means there is nothing to build.
	if p.GetDeleted() || strings.Trim(after, "0") == "" {
		return ev, forge.Ignore("deletion of %s", ref)
	}
	switch {
	case strings.HasPrefix(ref, "refs/heads/"):
		ev.Kind = forge.KindPush
		ev.Branch = strings.TrimPrefix(ref, "refs/heads/")
	case strings.HasPrefix(ref, "refs/tags/"):
		ev.Kind = forge.KindTag
		ev.Tag = strings.TrimPrefix(ref, "refs/tags/")
	default:
		return ev, forge.Ignore("push to %s, neither a branch nor a tag", ref)
	}
	return ev, nil
}

func parsePullRequest(p *gh.PullRequestEvent) (forge.Event, error) {
	pr := p.GetPullRequest()
	base := convert(p.GetRepo())
	if base.CloneURL == "" || pr == nil || pr.Head == nil || pr.Base == nil || pr.GetHead().GetSHA() == "" {
		return forge.Event{Repo: base}, fmt.Errorf("%w: pull_request without repository, head or base", forge.ErrMalformed)
	}
	number := int64(pr.GetNumber())
	if number == 0 {
		number = int64(p.GetNumber())
	}
	action := p.GetAction()
	switch action {
	case "opened", "synchronize", "reopened":
	case "closed":
		// Merged or not, its builds may stop; nothing is built.
		return forge.Event{
			Kind: forge.KindPullRequestClosed, Repo: base, Sender: p.GetSender().GetLogin(), SenderID: p.GetSender().GetID(),
			PullRequest: &forge.PullRequest{Number: number, HeadBranch: pr.Head.GetRef(), BaseBranch: pr.Base.GetRef(),
				Author: pr.GetUser().GetLogin(), AuthorID: pr.GetUser().GetID(), Action: action},
		}, nil
	default:
		return forge.Event{Repo: base}, forge.Ignore("pull request #%d %s", number, action)
	}
	// The head repository is null once the fork it came from is deleted: its commits are
	// still in the base repository, but there is no branch left to build from.
	if pr.Head.Repo == nil {
		return forge.Event{Repo: base}, forge.Ignore("pull request #%d %s: its head repository was deleted", number, action)
	}
	head := convert(pr.Head.Repo)
	return forge.Event{
		Kind:     forge.KindPullRequest,
		Repo:     base,
		Commit:   pr.Head.GetSHA(),
		Branch:   pr.Head.GetRef(),
		Sender:   p.GetSender().GetLogin(),
		SenderID: p.GetSender().GetID(),
		PullRequest: &forge.PullRequest{
			Number:     number,
			HeadRepo:   head,
			HeadBranch: pr.Head.GetRef(),
			BaseBranch: pr.Base.GetRef(),
			// GitHub's owner and repository names are case-insensitive.
			Fork:            !strings.EqualFold(head.FullName, base.FullName),
			Author:          pr.GetUser().GetLogin(),
			AuthorID:        pr.GetUser().GetID(),
			Action:          action,
			MaintainerEdits: pr.GetMaintainerCanModify(),
		},
	}, nil
}

// convert names a repository of an event payload in the bot's terms.
func convert(r *gh.Repository) forge.Repo {
	out := repo(r.GetCloneURL(), r.GetFullName(), r.GetOwner().GetLogin(), r.GetName(), r.GetHTMLURL())
	out.OwnerID = r.GetOwner().GetID()
	return out
}

// repo builds a forge.Repo, taking owner and name from full_name where the payload leaves
// them out.
func repo(cloneURL, fullName, owner, name, htmlURL string) forge.Repo {
	o, n, _ := strings.Cut(fullName, "/")
	if owner == "" {
		owner = o
	}
	if name == "" {
		name = n
	}
	return forge.Repo{CloneURL: cloneURL, FullName: fullName, Owner: owner, Name: name, HTMLURL: htmlURL}
}

// installationOf reads the id of the App installation a delivery came through: the
// installation object every App delivery carries ({"installation":{"id":…}}); 0 when none.
func installationOf(body []byte) int64 {
	var p struct {
		Installation *struct {
			ID int64 `json:"id"`
		} `json:"installation"`
	}
	if json.Unmarshal(body, &p) != nil || p.Installation == nil {
		return 0
	}
	return p.Installation.ID
}

// parseComment reads a new comment; only those on pull requests are acted on (GitHub's
// pull requests are issues: an issue_comment's issue carries pull_request when it is one).
func parseComment(p *gh.IssueCommentEvent) (forge.Event, error) {
	issue, c := p.GetIssue(), p.GetComment()
	ev := forge.Event{
		Kind: forge.KindComment, Repo: convert(p.GetRepo()),
		Sender: p.GetSender().GetLogin(), SenderID: p.GetSender().GetID(),
		PullRequest: &forge.PullRequest{Number: int64(issue.GetNumber())},
		Comment:     &forge.Comment{ID: c.GetID(), Body: c.GetBody(), Author: c.GetUser().GetLogin(), AuthorID: c.GetUser().GetID()},
	}
	switch {
	case issue == nil || c == nil:
		return ev, fmt.Errorf("%w: issue_comment without issue or comment", forge.ErrMalformed)
	case !issue.IsPullRequest():
		return ev, forge.Ignore("comment on issue #%d, not a pull request", issue.GetNumber())
	case p.GetAction() != "created":
		return ev, forge.Ignore("comment %d %s", c.GetID(), p.GetAction())
	}
	return ev, nil
}

// parseInstallation reads what happened to an installation of the App.
func parseInstallation(p *gh.InstallationEvent) (forge.Event, error) {
	inst := p.GetInstallation()
	ev := forge.Event{Kind: forge.KindInstallation, Sender: p.GetSender().GetLogin(), SenderID: p.GetSender().GetID(), Installation: inst.GetID()}
	if inst.GetID() == 0 || inst.GetAccount().GetID() == 0 || inst.GetAccount().GetLogin() == "" {
		return ev, fmt.Errorf("%w: installation without id or account", forge.ErrMalformed)
	}
	ev.Install = &forge.Install{
		Action: p.GetAction(), ID: inst.GetID(),
		Account: inst.GetAccount().GetLogin(), AccountID: inst.GetAccount().GetID(), AccountType: inst.GetAccount().GetType(),
		Selection: inst.GetRepositorySelection(),
	}
	switch p.GetAction() {
	case "created", "deleted", "suspend", "unsuspend":
	default:
		return ev, forge.Ignore("installation %d %s", inst.GetID(), p.GetAction())
	}
	if p.GetAction() == "created" {
		ev.Install.Added = listed(p.Repositories, inst.GetAccount())
	}
	return ev, checkInstall(ev.Install)
}

// parseInstallationRepos reads the repositories given to, or taken from, an installation.
func parseInstallationRepos(p *gh.InstallationRepositoriesEvent) (forge.Event, error) {
	inst := p.GetInstallation()
	ev := forge.Event{Kind: forge.KindInstallation, Sender: p.GetSender().GetLogin(), SenderID: p.GetSender().GetID(), Installation: inst.GetID()}
	if inst.GetID() == 0 || inst.GetAccount().GetID() == 0 || inst.GetAccount().GetLogin() == "" {
		return ev, fmt.Errorf("%w: installation_repositories without installation id or account", forge.ErrMalformed)
	}
	ev.Install = &forge.Install{
		Action: p.GetAction(), ID: inst.GetID(),
		Account: inst.GetAccount().GetLogin(), AccountID: inst.GetAccount().GetID(), AccountType: inst.GetAccount().GetType(),
		Selection: p.GetRepositorySelection(),
		Added:     listed(p.RepositoriesAdded, inst.GetAccount()),
		Removed:   listed(p.RepositoriesRemoved, inst.GetAccount()),
	}
	switch p.GetAction() {
	case "added", "removed":
	default:
		return ev, forge.Ignore("installation_repositories %d %s", inst.GetID(), p.GetAction())
	}
	return ev, checkInstall(ev.Install)
}

// listed names the repositories an installation event lists: by full name (they carry no
// clone URL), all of the installation's account.
func listed(repos []*gh.Repository, account *gh.User) []forge.Repo {
	var out []forge.Repo
	for _, r := range repos {
		out = append(out, forge.Repo{FullName: r.GetFullName(), Owner: account.GetLogin(), OwnerID: account.GetID(), Name: r.GetName()})
	}
	return out
}

// checkInstall holds an installation event's names to what the registry keys records by.
func checkInstall(in *forge.Install) error {
	if err := checkName("account", in.Account); err != nil {
		return err
	}
	switch in.Selection {
	case "all", "selected", "":
	default:
		return fmt.Errorf("%w: repository_selection %q", forge.ErrMalformed, in.Selection)
	}
	for _, r := range append(slices.Clone(in.Added), in.Removed...) {
		if err := checkName("repository name", r.Name); err != nil {
			return err
		}
		if !strings.EqualFold(r.FullName, in.Account+"/"+r.Name) {
			return fmt.Errorf("%w: repository %q is not one of %s's", forge.ErrMalformed, r.FullName, in.Account)
		}
	}
	return nil
}

// checkName accepts what GitHub allows in a login or a repository's name: letters, digits,
// "-", "_" and "." (not "." nor ".." alone), at most 100 characters.
func checkName(what, s string) error {
	ok := s != "" && len(s) <= 100 && s != "." && s != ".."
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			ok = false
		}
	}
	if !ok {
		return fmt.Errorf("%w: %s %q is not a GitHub name", forge.ErrMalformed, what, s)
	}
	return nil
}
