package gitea

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/albatros-ci/albatros/forge"
)

// The parts of Gitea's webhook payloads the bot reads (Gitea's own structs are in
// code.gitea.io/gitea/modules/structs; the SDK does not carry the hook payloads).
type (
	user struct {
		ID    int64  `json:"id"`
		Login string `json:"login"`
	}
	repository struct {
		Name     string `json:"name"`
		FullName string `json:"full_name"`
		Owner    user   `json:"owner"`
		HTMLURL  string `json:"html_url"`
		CloneURL string `json:"clone_url"`
	}
	pushPayload struct {
		Ref        string      `json:"ref"`
		Before     string      `json:"before"`
		After      string      `json:"after"`
		Repository *repository `json:"repository"`
		Sender     user        `json:"sender"`
	}
	prBranch struct {
		Label string      `json:"label"`
		Ref   string      `json:"ref"`
		Sha   string      `json:"sha"`
		Repo  *repository `json:"repo"`
	}
	pullRequestPayload struct {
		Action      string `json:"action"`
		Number      int64  `json:"number"`
		PullRequest *struct {
			Number              int64     `json:"number"`
			User                user      `json:"user"`
			Head                *prBranch `json:"head"`
			Base                *prBranch `json:"base"`
			AllowMaintainerEdit bool      `json:"allow_maintainer_edit"`
		} `json:"pull_request"`
		Repository *repository `json:"repository"`
		Sender     user        `json:"sender"`
	}
)

// Locate reads only the repository a delivery is about. Parse reads it this way for the
// events it does not act on; the fuzz tests hold Parse to it for every event.
func Locate(body []byte) (forge.Repo, error) {
	var p struct {
		Repository *repository `json:"repository"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return forge.Repo{}, fmt.Errorf("%w: %v", forge.ErrMalformed, err)
	}
	if p.Repository == nil || p.Repository.CloneURL == "" {
		return forge.Repo{}, fmt.Errorf("%w: no repository.clone_url", forge.ErrMalformed)
	}
	return p.Repository.convert(), nil
}

// Parse reads a delivery, once, before it is verified: ev.Repo is the repository the body
// names whenever it names one, whatever the error, so that the caller picks the secret
// from it, verifies the raw body, and only then acts on the event or the error. Nothing
// but ev.Repo may be used before the body is verified. It returns an error wrapping
// forge.ErrIgnoreEvent for deliveries the bot does not act on, and one wrapping
// forge.ErrMalformed for bodies that are not the event's JSON or whose fields fail
// forge.Event.Validate (a commit that is not an object name, a ref git would refuse, …).
func Parse(h http.Header, body []byte) (forge.Event, error) {
	event := h.Get("X-Gitea-Event")
	if event == "" {
		event = h.Get("X-Gogs-Event")
	}
	delivery := h.Get("X-Gitea-Delivery")
	var (
		ev  forge.Event
		err error
	)
	switch event {
	case "push":
		ev, err = parsePush(body)
	case "pull_request":
		ev, err = parsePullRequest(body)
	case "issue_comment":
		ev, err = parseComment(h, body)
	default:
		// Events the bot does not act on: the repository alone, to verify the delivery
		// before saying it is ignored.
		ev.Repo, err = Locate(body)
		switch {
		case err != nil:
		case event == "ping":
			ev.Kind = forge.KindPing
		case event == "":
			err = fmt.Errorf("%w: no X-Gitea-Event header", forge.ErrMalformed)
		default:
			err = forge.Ignore("event %q is not handled", event)
		}
	}
	if ev.Repo.CloneURL == "" && err != nil {
		// The event did not decode (a field of another type, say): its repository alone
		// may still, so that the delivery is verified before it is called malformed.
		ev.Repo, _ = Locate(body)
	}
	ev.Delivery = delivery
	if err == nil && ev.Kind != forge.KindPing {
		err = ev.Validate()
	}
	return ev, err
}

func parsePush(body []byte) (forge.Event, error) {
	var p pushPayload
	if err := json.Unmarshal(body, &p); err != nil {
		return forge.Event{}, fmt.Errorf("%w: push: %v", forge.ErrMalformed, err)
	}
	ev := forge.Event{Repo: p.Repository.convert(), Commit: p.After, Sender: p.Sender.Login, SenderID: p.Sender.ID}
	if ev.Repo.CloneURL == "" || p.Ref == "" || p.After == "" {
		return ev, fmt.Errorf("%w: push without repository, ref or after", forge.ErrMalformed)
	}
	// A deleted ref is pushed as the all-zero object name (40 or, in SHA-256 repos, 64).
	if strings.Trim(p.After, "0") == "" {
		return ev, forge.Ignore("deletion of %s", p.Ref)
	}
	switch {
	case strings.HasPrefix(p.Ref, "refs/heads/"):
		ev.Kind = forge.KindPush
		ev.Branch = strings.TrimPrefix(p.Ref, "refs/heads/")
	case strings.HasPrefix(p.Ref, "refs/tags/"):
		ev.Kind = forge.KindTag
		ev.Tag = strings.TrimPrefix(p.Ref, "refs/tags/")
	default:
		return ev, forge.Ignore("push to %s, neither a branch nor a tag", p.Ref)
	}
	return ev, nil
}

func parsePullRequest(body []byte) (forge.Event, error) {
	var p pullRequestPayload
	if err := json.Unmarshal(body, &p); err != nil {
		return forge.Event{}, fmt.Errorf("%w: pull_request: %v", forge.ErrMalformed, err)
	}
	pr := p.PullRequest
	if pr == nil || pr.Head == nil || pr.Base == nil || pr.Head.Sha == "" || pr.Head.Repo == nil || p.Repository.convert().CloneURL == "" {
		return forge.Event{Repo: p.Repository.convert()}, fmt.Errorf("%w: pull_request without repository, head or base", forge.ErrMalformed)
	}
	number := pr.Number
	if number == 0 {
		number = p.Number
	}
	base := p.Repository.convert()
	head := pr.Head.Repo.convert()
	ag := agit(pr.Head.Label, pr.Head.Ref)
	ev := forge.Event{
		Kind:     forge.KindPullRequest,
		Repo:     base,
		Commit:   pr.Head.Sha,
		Branch:   pr.Head.Ref,
		Sender:   p.Sender.Login,
		SenderID: p.Sender.ID,
		PullRequest: &forge.PullRequest{
			Number:     number,
			HeadRepo:   head,
			HeadBranch: pr.Head.Ref,
			BaseBranch: pr.Base.Ref,
			Fork:       head.CloneURL != base.CloneURL || ag,
			AGit:       ag,
			Author:     pr.User.Login,
			AuthorID:   pr.User.ID,
			Action:     p.Action,
			// For a fork's (AGit's head is its author's alone).
			MaintainerEdits: pr.AllowMaintainerEdit && head.CloneURL != base.CloneURL,
		},
	}
	switch p.Action {
	case "opened", "synchronized", "reopened":
		return ev, nil
	case "closed":
		ev.Kind, ev.Commit, ev.Branch = forge.KindPullRequestClosed, "", ""
		return ev, nil
	default:
		return ev, forge.Ignore("pull request #%d %s", number, p.Action)
	}
}

// agit reports whether a pull request's head, as Gitea shows it (its label and ref), is an
// AGit one: pushed to refs/for/<branch>, it is no branch of the repository, and Gitea names
// it by its pull request's ref (refs/pull/<n>/head) with an empty label. (A branch deleted
// since keeps its name as the label.)
func agit(label, ref string) bool {
	return label == "" && strings.HasPrefix(ref, "refs/pull/")
}

// commentPayload is the part of an issue_comment delivery the bot reads.
type commentPayload struct {
	Action string `json:"action"`
	Issue  *struct {
		Number int64 `json:"number"`
	} `json:"issue"`
	Comment *struct {
		ID   int64  `json:"id"`
		Body string `json:"body"`
		User user   `json:"user"`
	} `json:"comment"`
	IsPull     bool        `json:"is_pull"`
	Repository *repository `json:"repository"`
	Sender     user        `json:"sender"`
}

// parseComment reads a new comment on a pull request. Gitea sends comments on issues and on
// pull requests as issue_comment; X-Gitea-Event-Type (pull_request_comment) and is_pull tell
// them apart. Edits and deletions are ignored: a command counts when it is written.
func parseComment(h http.Header, body []byte) (forge.Event, error) {
	var p commentPayload
	if err := json.Unmarshal(body, &p); err != nil {
		return forge.Event{}, fmt.Errorf("%w: issue_comment: %v", forge.ErrMalformed, err)
	}
	if p.Issue == nil || p.Comment == nil || p.Repository.convert().CloneURL == "" {
		return forge.Event{Repo: p.Repository.convert()}, fmt.Errorf("%w: issue_comment without repository, issue or comment", forge.ErrMalformed)
	}
	ev := forge.Event{
		Kind:        forge.KindComment,
		Repo:        p.Repository.convert(),
		Sender:      p.Sender.Login,
		SenderID:    p.Sender.ID,
		PullRequest: &forge.PullRequest{Number: p.Issue.Number},
		Comment:     &forge.Comment{ID: p.Comment.ID, Body: p.Comment.Body, Author: p.Comment.User.Login, AuthorID: p.Comment.User.ID},
	}
	if t := h.Get("X-Gitea-Event-Type"); !p.IsPull || (t != "" && t != "pull_request_comment") {
		return ev, forge.Ignore("comment on issue #%d, not a pull request", p.Issue.Number)
	}
	if p.Action != "created" {
		return ev, forge.Ignore("comment %d %s", p.Comment.ID, p.Action)
	}
	return ev, nil
}

// convert names a repository of a payload in the bot's terms; a payload without one (nil)
// names none.
func (r *repository) convert() forge.Repo {
	if r == nil {
		return forge.Repo{}
	}
	owner := r.Owner.Login
	if owner == "" {
		owner, _, _ = strings.Cut(r.FullName, "/")
	}
	return forge.Repo{CloneURL: r.CloneURL, FullName: r.FullName, Owner: owner, OwnerID: r.Owner.ID, Name: r.Name, HTMLURL: r.HTMLURL}
}
