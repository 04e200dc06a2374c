// Package secrets renders the secrets file a trusted build receives as its Nomad dispatch
// payload, recovers the secret values from such a file, and masks those values in build
// output before the bot relays it anywhere.
//
// It holds no secrets itself and does no I/O beyond the writer it is given.
package secrets

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// FileEnv is the environment variable, set by the shipped builders, that names the file
// holding the secrets of the build (empty file for untrusted builds). The builders also
// source it before running .albatros, so its exports are in the script's environment.
const FileEnv = "ALBATROS_SECRETS_FILE"

// header starts every payload; the untrusted one is only this.
const header = "# Albatros build secrets (sourced before .albatros runs)\n"

var nameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Payload renders the secrets file: the repository's inject snippet as it is, then one
// `export NAME='value'` line per secret, sorted by name.
func Payload(inject string, vars map[string]string) ([]byte, error) {
	var b strings.Builder
	b.WriteString(header)
	if inject != "" {
		b.WriteString(inject)
		if !strings.HasSuffix(inject, "\n") {
			b.WriteByte('\n')
		}
	}
	names := make([]string, 0, len(vars))
	for name := range vars {
		if !nameRE.MatchString(name) {
			return nil, fmt.Errorf("secret name %q is not a valid environment variable name", name)
		}
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		fmt.Fprintf(&b, "export %s=%s\n", name, shellQuote(vars[name]))
	}
	return []byte(b.String()), nil
}

// Empty is the payload of a build that gets no secrets.
func Empty() []byte { return []byte(header) }

// shellQuote single-quotes s for sh: 'it'\”s'.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// assignRE finds `NAME=` and `export NAME=` at the start of a line; the value that follows
// is read as sh reads an assignment's word.
var assignRE = regexp.MustCompile(`(?m)^[ \t]*(?:export[ \t]+)?[A-Za-z_][A-Za-z0-9_]*=`)

// Values returns the secret values in a payload or inject snippet: the value of every
// assignment at the start of a line, as sh would assign it (quotes removed, backslash escapes
// applied, a trailing comment left out, quoted values running over several lines kept whole,
// carriage returns included). Parameter expansions ($X) are kept as written: their values
// are not known here. These are what a masker hides.
func Values(payload []byte) []string {
	text := string(payload)
	var out []string
	pos := 0
	for pos < len(text) {
		loc := assignRE.FindStringIndex(text[pos:])
		if loc == nil {
			break
		}
		v, end := shellWord(text, pos+loc[1])
		out = append(out, v)
		// Continue after the line on which the value ended.
		if nl := strings.IndexByte(text[end:], '\n'); nl >= 0 {
			pos = end + nl + 1
		} else {
			pos = len(text)
		}
	}
	return out
}

// shellWord reads one sh word of text starting at i, as the value of an assignment, and
// returns it unquoted with the index where it ended.
func shellWord(text string, i int) (string, int) {
	var b strings.Builder
	for i < len(text) {
		c := text[i]
		switch c {
		case ' ', '\t', '\n', ';', '&', '|', '<', '>', '(', ')':
			return b.String(), i
		case '\r':
			// sh keeps a CR at the end of a line in the value; a snippet saved with CRLF line
			// ends still means the value without it, and masking that also masks the other.
			if i+1 == len(text) || text[i+1] == '\n' {
				return b.String(), i
			}
			b.WriteByte(c)
			i++
		case '\\':
			// Outside quotes a backslash quotes the next character; before a newline it
			// continues the line.
			if i+1 < len(text) {
				if text[i+1] != '\n' {
					b.WriteByte(text[i+1])
				}
				i += 2
				continue
			}
			i++
		case '\'':
			end := strings.IndexByte(text[i+1:], '\'')
			if end < 0 {
				b.WriteString(text[i+1:])
				return b.String(), len(text)
			}
			b.WriteString(text[i+1 : i+1+end])
			i += end + 2
		case '"':
			i++
			for i < len(text) && text[i] != '"' {
				// Inside double quotes a backslash escapes only $ ` " \ and newline.
				if text[i] == '\\' && i+1 < len(text) && strings.IndexByte("$`\"\\\n", text[i+1]) >= 0 {
					if text[i+1] != '\n' {
						b.WriteByte(text[i+1])
					}
					i += 2
					continue
				}
				b.WriteByte(text[i])
				i++
			}
			i = min(i+1, len(text)) // the closing quote, if any
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String(), i
}
