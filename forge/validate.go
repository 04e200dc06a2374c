package forge

import (
	"fmt"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Validate checks the fields of an event that reach git, Nomad and the builder's shell: the
// commit is a full object name (40 or 64 lowercase hex characters), branches and tags are
// names git itself accepts (the rules of git check-ref-format, and no leading "-"), the clone
// URLs are http(s) URLs, and no field holds a control character or invalid UTF-8. Parsers
// call it on every event they return for building; its error wraps ErrMalformed.
func (e Event) Validate() error {
	if err := e.validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return nil
}

func (e Event) validate() error {
	// A comment's payload carries no commit, and a closed pull request's is not built.
	if e.Kind != KindComment && e.Kind != KindPullRequestClosed {
		if err := CheckCommit(e.Commit); err != nil {
			return err
		}
	}
	if err := CheckCloneURL(e.Repo.CloneURL); err != nil {
		return err
	}
	for name, v := range map[string]string{"repository full_name": e.Repo.FullName, "repository owner": e.Repo.Owner, "repository name": e.Repo.Name, "repository url": e.Repo.HTMLURL, "sender": e.Sender} {
		if err := checkText(name, v); err != nil {
			return err
		}
	}
	switch e.Kind {
	case KindTag:
		if err := CheckRefName("tag", e.Tag); err != nil {
			return err
		}
	case KindPush:
		if err := CheckRefName("branch", e.Branch); err != nil {
			return err
		}
	case KindComment, KindPullRequestClosed:
		if e.PullRequest == nil || e.PullRequest.Number <= 0 {
			return fmt.Errorf("pull request without a number")
		}
		if c := e.Comment; e.Kind == KindComment && (c == nil || c.ID <= 0) {
			return fmt.Errorf("comment without an id")
		}
		if c := e.Comment; c != nil {
			if err := checkText("comment author", c.Author); err != nil {
				return err
			}
		}
	case KindPullRequest:
		if e.PullRequest == nil || e.PullRequest.Number <= 0 {
			return fmt.Errorf("pull request without a number")
		}
		if err := CheckRefName("branch", e.Branch); err != nil {
			return err
		}
		if err := CheckCloneURL(e.PullRequest.HeadRepo.CloneURL); err != nil {
			return fmt.Errorf("head repository: %v", err)
		}
		if err := checkText("head repository owner", e.PullRequest.HeadRepo.Owner); err != nil {
			return err
		}
	}
	return nil
}

// CheckCommit accepts a full git object name: 40 (SHA-1) or 64 (SHA-256) lowercase hex
// characters, as forges send them.
func CheckCommit(sha string) error {
	if len(sha) != 40 && len(sha) != 64 {
		return fmt.Errorf("commit %q is not a full object name (40 or 64 hex characters)", clip(sha))
	}
	for i := 0; i < len(sha); i++ {
		if c := sha[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return fmt.Errorf("commit %q is not lowercase hex", clip(sha))
		}
	}
	return nil
}

// maxRefName bounds branch and tag names; git has no limit, forges do (Gitea 255).
const maxRefName = 1024

// CheckRefName accepts a branch or tag name (without refs/heads/ or refs/tags/) that git would
// accept: the rules of git check-ref-format, plus no leading "-" (git check-ref-format
// --branch refuses it, and it would read as an option). what names the field in the error.
func CheckRefName(what, name string) error {
	bad := func(why string) error { return fmt.Errorf("%s %q %s", what, clip(name), why) }
	switch {
	case name == "":
		return bad("is empty")
	case len(name) > maxRefName:
		return bad(fmt.Sprintf("is longer than %d bytes", maxRefName))
	case !utf8.ValidString(name):
		return bad("is not valid UTF-8")
	case name == "@":
		return bad("is \"@\"")
	case strings.HasPrefix(name, "-"):
		return bad("begins with \"-\"")
	case strings.HasPrefix(name, "/") || strings.HasSuffix(name, "/"):
		return bad("begins or ends with \"/\"")
	case strings.HasSuffix(name, "."):
		return bad("ends with \".\"")
	case strings.Contains(name, ".."), strings.Contains(name, "//"), strings.Contains(name, "@{"):
		return bad("contains \"..\", \"//\" or \"@{\"")
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || unicode.IsControl(r) {
			return bad("contains a control character")
		}
		if strings.ContainsRune(" ~^:?*[\\", r) {
			return bad(fmt.Sprintf("contains %q", r))
		}
	}
	for part := range strings.SplitSeq(name, "/") {
		if strings.HasPrefix(part, ".") || strings.HasSuffix(part, ".lock") {
			return bad("has a component that begins with \".\" or ends with \".lock\"")
		}
	}
	return nil
}

// CheckCloneURL accepts an http(s) URL with a host and no control characters.
func CheckCloneURL(s string) error {
	if err := checkText("clone url", s); err != nil {
		return err
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("clone url %q is not an http(s) URL", clip(s))
	}
	return nil
}

// maxText bounds a text field of an event: no forge's names or URLs come near it, and an
// event waits its turn in the bot's memory (and its log lines) with them.
const maxText = 2048

// checkText refuses invalid UTF-8, control characters and more than maxText bytes in a
// field that ends up in meta, a log or a shell.
func checkText(what, s string) error {
	if len(s) > maxText {
		return fmt.Errorf("%s %q is longer than %d bytes", what, clip(s), maxText)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s is not valid UTF-8", what)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return fmt.Errorf("%s %q contains a control character", what, clip(s))
		}
	}
	return nil
}

// clip keeps an error message about hostile input short.
func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
