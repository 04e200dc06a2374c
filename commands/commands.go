// Package commands reads the commands people write to the bot in pull request comments:
// `/rebuild`, `/rebuild <flavor>` and `/approve <sha>`. A command counts only as the first
// word of a line of the comment's own text: not inside a quote (`> `), a fenced code block
// (``` or ~~~), an indented code block (four columns of indentation, tabs counting to the
// next multiple of four), an HTML comment (`<!-- -->`, invisible once rendered) or a `<pre>`
// block. Several commands in one comment each count once; unknown `/words` are not commands.
//
// It only reads text; who may run a command, and what it does, is the pipeline's.
package commands

import (
	"slices"
	"strings"
)

// The commands the bot knows.
const (
	Rebuild = "rebuild"
	Approve = "approve"
)

// Command is one command of a comment.
type Command struct {
	// Name is the command without its slash, lower case.
	Name string
	// Args are the words after it on its line (at most maxArgs).
	Args []string
}

// maxArgs bounds what a command keeps of its line.
const maxArgs = 4

// MaxComment bounds the text read: a comment longer than this is read up to it.
const MaxComment = 64 << 10

// Parse returns the commands of a comment, in order, each once.
func Parse(body string) []Command {
	if len(body) > MaxComment {
		body = body[:MaxComment]
	}
	var out []Command
	fence := ""  // the open code fence, if any
	hidden := "" // the end of the open HTML comment or <pre> block, if any
	for line := range strings.Lines(body) {
		line = strings.TrimRight(line, "\r\n")
		if fence != "" {
			if closes(line, fence) {
				fence = ""
			}
			continue
		}
		if hidden != "" {
			if strings.Contains(strings.ToLower(line), hidden) {
				hidden = ""
			}
			continue
		}
		if indent(line) >= 4 {
			continue // indented code
		}
		text := strings.TrimLeft(line, " \t")
		if end := opensHidden(text); end != "" {
			hidden = end
			continue
		}
		if f := opens(text); f != "" {
			fence = f
			continue
		}
		if strings.HasPrefix(text, ">") {
			continue // a quote
		}
		words := strings.Fields(text)
		if len(words) == 0 || !strings.HasPrefix(words[0], "/") {
			continue
		}
		name := strings.ToLower(words[0][1:])
		if name != Rebuild && name != Approve {
			continue
		}
		args := words[1:]
		if len(args) > maxArgs {
			args = args[:maxArgs]
		}
		c := Command{Name: name, Args: slices.Clone(args)}
		if !slices.ContainsFunc(out, func(o Command) bool { return o.Name == c.Name && slices.Equal(o.Args, c.Args) }) {
			out = append(out, c)
		}
	}
	return out
}

// indent is a line's indentation in columns, a tab moving to the next multiple of four.
func indent(line string) int {
	col := 0
	for _, r := range line {
		switch r {
		case ' ':
			col++
		case '\t':
			col += 4 - col%4
		default:
			return col
		}
	}
	return col
}

// opensHidden returns what ends the HTML comment or <pre> block a line opens and does not
// close, or "" when it opens none that outlives it.
func opensHidden(text string) string {
	lower := strings.ToLower(text)
	for _, b := range [][2]string{{"<!--", "-->"}, {"<pre", "</pre>"}} {
		if i := strings.Index(lower, b[0]); i >= 0 && !strings.Contains(lower[i+len(b[0]):], b[1]) {
			return b[1]
		}
	}
	return ""
}

// opens returns the fence a line opens (three or more backticks or tildes), or "".
func opens(text string) string {
	for _, ch := range []string{"`", "~"} {
		n := len(text) - len(strings.TrimLeft(text, ch))
		if n >= 3 {
			return strings.Repeat(ch, n)
		}
	}
	return ""
}

// closes reports whether line closes the code block that fence opened: the same character,
// at least as many times, and nothing after it but spaces.
func closes(line, fence string) bool {
	text := strings.TrimLeft(line, " ")
	if len(line)-len(text) > 3 {
		return false
	}
	n := len(text) - len(strings.TrimLeft(text, fence[:1]))
	return n >= len(fence) && strings.TrimSpace(text[n:]) == ""
}
