package commands_test

import (
	"encoding/json"
	"io/fs"
	"reflect"
	"strings"
	"testing"

	"github.com/albatros-ci/albatros/commands"
	"github.com/albatros-ci/albatros/forge/forgetest"
)

func TestParse(t *testing.T) {
	rebuild := commands.Command{Name: "rebuild", Args: []string{}}
	tests := []struct {
		name, body string
		want       []commands.Command
	}{
		{"alone", "/rebuild", []commands.Command{rebuild}},
		{"with a flavor", "/rebuild nix\n", []commands.Command{{Name: "rebuild", Args: []string{"nix"}}}},
		{"approve a sha", "Reviewed, looks safe.\n\n/approve 3f2a9c1\n", []commands.Command{{Name: "approve", Args: []string{"3f2a9c1"}}}},
		{"upper case", "/Rebuild", []commands.Command{rebuild}},
		{"indented a little", "  /rebuild", []commands.Command{rebuild}},
		{"windows line ends", "hi\r\n/rebuild\r\n", []commands.Command{rebuild}},
		{"twice, once", "/rebuild\n/rebuild\n", []commands.Command{rebuild}},
		{"two commands", "/rebuild nix\n/approve abcdef1\n", []commands.Command{{Name: "rebuild", Args: []string{"nix"}}, {Name: "approve", Args: []string{"abcdef1"}}}},
		{"not first word", "please /rebuild", nil},
		{"unknown word", "/retest\n/lgtm\n", nil},
		{"slash inside a word", "see /rebuilding", nil},
		{"quoted", "> /rebuild\n", nil},
		{"quoted, indented", "  > /rebuild nix", nil},
		{"fenced", "```\n/rebuild\n```\n", nil},
		{"fenced with a language", "```sh\n/rebuild\n```\n/approve abcdef1", []commands.Command{{Name: "approve", Args: []string{"abcdef1"}}}},
		{"tilde fence", "~~~\n/rebuild\n~~~", nil},
		{"fence closed by a longer one", "````\n```\n/rebuild\n````\n/rebuild", []commands.Command{rebuild}},
		{"unclosed fence", "```\n/rebuild", nil},
		{"indented code", "    /rebuild\n\t/rebuild", nil},
		{"indented code, spaces then a tab", "  \t/approve abcdef1\n \t/rebuild", nil},
		{"a tab after three spaces is code too", "   \t/rebuild", nil},
		{"HTML comment", "<!--\n/approve abcdef1\n-->\n", nil},
		{"after an HTML comment", "<!-- note\n/approve abcdef1\n--> done\n/rebuild", []commands.Command{rebuild}},
		{"HTML comment on one line", "<!-- hidden -->\n/rebuild", []commands.Command{rebuild}},
		{"pre block", "<PRE>\n/approve abcdef1\n</pre>\n", nil},
		{"unclosed HTML comment", "<!--\n/rebuild", nil},
		{"after a quote", "> did you /rebuild?\n/rebuild", []commands.Command{rebuild}},
		{"many args kept to four", "/rebuild a b c d e f", []commands.Command{{Name: "rebuild", Args: []string{"a", "b", "c", "d"}}}},
		{"empty", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := commands.Parse(tt.body); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse(%q) = %#v, want %#v", tt.body, got, tt.want)
			}
		})
	}
}

// seeds are real comment bodies: the one captured from the real Gitea, and ones written as
// people write them on pull requests.
func seeds(t testing.TB) []string {
	raw, err := fs.ReadFile(forgetest.Gitea, "pr_comment_created.json")
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Body struct {
			Comment struct {
				Body string `json:"body"`
			} `json:"comment"`
		} `json:"body"`
	}
	if err := json.Unmarshal(raw, &c); err != nil || c.Body.Comment.Body == "" {
		t.Fatalf("captured comment: %v", err)
	}
	return []string{
		c.Body.Comment.Body,
		"LGTM\n\n/approve 3f2a9c1d",
		"The nix build failed on a flaky test.\n/rebuild nix",
		"> /rebuild\n\nNo need, it passed.",
		"```\n$ /rebuild\n```\nthat's how you ask for it",
		"Thanks! A few nits:\n\n- rename `x`\n- /rebuild after that\n\n    /approve deadbeef\n",
		"/rebuild\r\n/rebuild default\r\n",
	}
}

// FuzzParse checks what holds for any comment: known commands only, each once, few
// arguments, each the first word of one of the comment's lines; nothing in a quote.
func FuzzParse(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		got := commands.Parse(body)
		for i, c := range got {
			if c.Name != commands.Rebuild && c.Name != commands.Approve {
				t.Fatalf("unknown command %q from %q", c.Name, body)
			}
			if len(c.Args) > 4 {
				t.Fatalf("%d arguments from %q", len(c.Args), body)
			}
			for _, d := range got[:i] {
				if d.Name == c.Name && reflect.DeepEqual(d.Args, c.Args) {
					t.Fatalf("%+v twice from %q", c, body)
				}
			}
			found := false
			for line := range strings.Lines(body) {
				if w := strings.Fields(line); len(w) > 0 && strings.EqualFold(w[0], "/"+c.Name) {
					found = true
				}
			}
			if !found {
				t.Fatalf("%+v is on no line of %q", c, body)
			}
		}
		var quoted strings.Builder
		for line := range strings.Lines(body) {
			quoted.WriteString("> " + line)
		}
		if q := commands.Parse(quoted.String()); len(q) != 0 {
			t.Fatalf("commands %+v in a quote of %q", q, body)
		}
	})
}
