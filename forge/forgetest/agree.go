package forgetest

import "github.com/albatros-ci/albatros/forge"

// Fataler is the part of testing.T that Agree uses.
type Fataler interface {
	Helper()
	Fatalf(format string, args ...any)
}

// Agree checks, for a parser's fuzz test, that the repository its Parse named for body
// (ev.Repo, whatever Parse's error) is exactly the one the repository-only read locate
// finds, and none when it finds none: the secret picked before the signature is checked is
// the secret of the repository that is built, and a body whose repository reads is
// verified before anything else is said of it.
func Agree(t Fataler, ev forge.Event, body []byte, locate func([]byte) (forge.Repo, error)) {
	t.Helper()
	repo, err := locate(body)
	if err != nil {
		if ev.Repo.CloneURL != "" {
			t.Fatalf("Parse names %s in a body Locate refuses (%v): %q", ev.Repo.CloneURL, err, body)
		}
		return
	}
	if repo != ev.Repo {
		t.Fatalf("Locate names %+v, Parse %+v: %q", repo, ev.Repo, body)
	}
}
