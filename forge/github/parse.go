package github

import (
	"encoding/json"
	"fmt"
	"net/http"
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
// tags), pull_request (opened, synchronize, reopened) and ping. It returns an error
// wrapping forge.ErrIgnoreEvent, saying why, for deliveries the bot does not act on (other
// events and actions, ref deletions, pull requests from deleted forks), and one wrapping
// forge.ErrMalformed for a delivery without X-GitHub-Event, a body that is not the event's
// JSON, or fields that fail forge.Event.Validate.
func Parse(h http.Header, body []byte) (forge.Event, error) {
	event := h.Get(gh.EventTypeHeader)
	delivery := h.Get(gh.DeliveryIDHeader)
	switch event {
	case "push", "pull_request", "ping":
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
			Fork:     !strings.EqualFold(head.FullName, base.FullName),
			Author:   pr.GetUser().GetLogin(),
			AuthorID: pr.GetUser().GetID(),
			Action:   action,
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
