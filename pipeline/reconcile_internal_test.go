package pipeline

import (
	"slices"
	"testing"

	"github.com/albatros-ci/albatros/forge"
)

// A pass starts where the last ran out of builds, then comes round to the others: a
// repository with many heads to build does not starve those after it.
func TestReconcileCursorRotates(t *testing.T) {
	repos := []forge.Repo{{CloneURL: "a"}, {CloneURL: "b"}, {CloneURL: "c"}}
	urls := func(rs []forge.Repo) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r.CloneURL)
		}
		return out
	}
	var c reconcileCursor
	if got := urls(c.rotate(repos)); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("first pass %v, want a b c", got)
	}
	c.set("b")
	if got := urls(c.rotate(repos)); !slices.Equal(got, []string{"b", "c", "a"}) {
		t.Errorf("after running out at b: %v, want b c a", got)
	}
	if got := urls(c.rotate(repos)); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("after a pass that did not run out: %v, want a b c", got)
	}
	c.set("bb") // removed since: the next one on
	if got := urls(c.rotate(repos)); !slices.Equal(got, []string{"c", "a", "b"}) {
		t.Errorf("after running out at a repository removed since: %v, want c a b", got)
	}
	if got := urls(repos); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("the list given was changed: %v", got)
	}
}
