package forge

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
)

// refNames are checked against git itself: CheckRefName must agree with
// `git check-ref-format --branch` on every one.
var refNames = []string{
	"main", "feature/x", "release-1.2", "v1.2.3", "ünïcode", "a.b", "a/b/c", "x@y",
	"", "-rf", "--upload-pack=touch", "a..b", "a/.hidden", ".dot", "a.lock", "a/b.lock/c",
	"a b", "a\nb", "a\tb", "a\x7fb", "a~1", "a^", "a:b", "a?", "a*", "a[", `a\b`,
	"/a", "a/", "a//b", "a.", "a@{b", "main\r",
}

func TestCheckRefNameAgreesWithGit(t *testing.T) {
	git, err := exec.LookPath("git")
	if err != nil {
		t.Fatalf("git is required: %v", err)
	}
	for _, name := range refNames {
		gitOK := exec.Command(git, "check-ref-format", "--branch", name).Run() == nil
		err := CheckRefName("branch", name)
		if (err == nil) != gitOK {
			t.Errorf("CheckRefName(%q) = %v, git check-ref-format --branch accepts it: %v", name, err, gitOK)
		}
	}
	// "@" alone is refused as a ref (rule 9); git --branch reads it as HEAD's branch instead.
	if CheckRefName("branch", "@") == nil {
		t.Error(`CheckRefName accepts "@"`)
	}
}

func TestCheckCommit(t *testing.T) {
	for sha, ok := range map[string]bool{
		strings.Repeat("a", 40):            true,
		strings.Repeat("0123456789", 4):    true,
		strings.Repeat("f", 64):            true,
		strings.Repeat("A", 40):            false,
		strings.Repeat("a", 39):            false,
		strings.Repeat("a", 41):            false,
		"--upload-pack=touch /tmp/pwned":   false,
		strings.Repeat("g", 40):            false,
		"":                                 false,
		strings.Repeat("a", 39) + "\n":     false,
		"HEAD":                             false,
		strings.Repeat("a", 32) + "; rm -": false,
	} {
		if err := CheckCommit(sha); (err == nil) != ok {
			t.Errorf("CheckCommit(%q) = %v, want ok=%v", sha, err, ok)
		}
	}
}

func TestEventValidate(t *testing.T) {
	sha := strings.Repeat("c", 40)
	repo := Repo{CloneURL: "https://git.example.com/org/app.git", FullName: "org/app", Owner: "org", Name: "app"}
	good := []Event{
		{Kind: KindPush, Repo: repo, Commit: sha, Branch: "main", Sender: "alice"},
		{Kind: KindTag, Repo: repo, Commit: sha, Tag: "v1.0.0", Sender: "alice"},
		{Kind: KindPullRequest, Repo: repo, Commit: sha, Branch: "feature", Sender: "bob",
			PullRequest: &PullRequest{Number: 3, HeadRepo: repo, HeadBranch: "feature"}},
	}
	for _, ev := range good {
		if err := ev.Validate(); err != nil {
			t.Errorf("%+v: %v", ev, err)
		}
	}
	bad := map[string]func(*Event){
		"option as commit":          func(e *Event) { e.Commit = "--upload-pack=touch /tmp/pwned" },
		"short commit":              func(e *Event) { e.Commit = "cccccc" },
		"newline in branch":         func(e *Event) { e.Branch = "main\nFLAVOR=x" },
		"option as branch":          func(e *Event) { e.Branch = "-b" },
		"ssh clone url":             func(e *Event) { e.Repo.CloneURL = "ext::sh -c touch% /tmp/pwned" },
		"option as clone url":       func(e *Event) { e.Repo.CloneURL = "--upload-pack=x" },
		"control char in sender":    func(e *Event) { e.Sender = "alice\x1b[2J" },
		"control char in full name": func(e *Event) { e.Repo.FullName = "org/app\r" },
		"invalid utf-8 in branch":   func(e *Event) { e.Branch = "main\xff" },
	}
	for name, mutate := range bad {
		ev := good[0]
		mutate(&ev)
		if err := ev.Validate(); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Validate() = %v, want ErrMalformed", name, err)
		}
	}
	badTag := good[1]
	badTag.Tag = "v1..0"
	if err := badTag.Validate(); !errors.Is(err, ErrMalformed) {
		t.Errorf("tag v1..0: %v", err)
	}
	badPR := good[2]
	pr := *badPR.PullRequest
	pr.HeadRepo.CloneURL = "file:///etc"
	badPR.PullRequest = &pr
	if err := badPR.Validate(); !errors.Is(err, ErrMalformed) {
		t.Errorf("pull request from a file:// head: %v", err)
	}
}

// A name or URL longer than any forge's is refused: the event would wait its turn in the
// bot's memory, and in its log lines, with it.
func TestValidateBoundsTextFields(t *testing.T) {
	long := strings.Repeat("x", 4096)
	for name, edit := range map[string]func(*Event){
		"full name": func(e *Event) { e.Repo.FullName = long },
		"owner":     func(e *Event) { e.Repo.Owner = long },
		"name":      func(e *Event) { e.Repo.Name = long },
		"html url":  func(e *Event) { e.Repo.HTMLURL = "https://git.example.com/" + long },
		"sender":    func(e *Event) { e.Sender = long },
		"clone url": func(e *Event) { e.Repo.CloneURL = "https://git.example.com/" + long + ".git" },
	} {
		ev := Event{Kind: KindPush, Repo: Repo{CloneURL: "https://git.example.com/o/r.git", FullName: "o/r", Owner: "o", Name: "r"}, Commit: strings.Repeat("a", 40), Branch: "main", Sender: "quentin"}
		if err := ev.Validate(); err != nil {
			t.Fatalf("the event before the edit: %v", err)
		}
		edit(&ev)
		if err := ev.Validate(); !errors.Is(err, ErrMalformed) {
			t.Errorf("a %d-byte %s: %v, want ErrMalformed", len(long), name, err)
		}
	}
}
