package orchestrator

import (
	"fmt"
	"testing"
)

// The allocations of a few builds are asked for by job ID; of many, or of an ID that cannot
// stand in a filter's string as is, every build's are.
func TestAllocFilter(t *testing.T) {
	all := `JobID contains "/dispatch-albatros-"`
	few := []Summary{{ID: "builder/dispatch-albatros-k1-1-a"}, {ID: "builder/dispatch-albatros-k2-2-b"}}
	if got, want := allocFilter(few), `JobID == "builder/dispatch-albatros-k1-1-a" or JobID == "builder/dispatch-albatros-k2-2-b"`; got != want {
		t.Errorf("allocFilter(two builds) = %s, want %s", got, want)
	}
	var many []Summary
	for i := range 41 {
		many = append(many, Summary{ID: fmt.Sprintf("builder/dispatch-albatros-%d-x", i)})
	}
	for name, builds := range map[string][]Summary{
		"41 builds":   many,
		"a quote":     {{ID: `builder/dispatch-albatros-1-" or true or "`}},
		"a backslash": {{ID: `builder/dispatch-albatros-1-\`}},
		"a newline":   {{ID: "builder/dispatch-albatros-1-\n"}},
	} {
		if got := allocFilter(builds); got != all {
			t.Errorf("allocFilter(%s) = %s, want every build's", name, got)
		}
	}
}
