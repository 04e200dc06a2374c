// Package secrets renders the secrets file a trusted build receives as its Nomad dispatch
// payload, recovers the secret values from such a file, and masks those values in build
// output before the bot relays it anywhere.
//
// It holds no secrets itself and does no I/O beyond the writer it is given.
package secrets

import (
	"bufio"
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

// shellQuote single-quotes s for sh: 'it'\''s'.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// assignRE matches `NAME=value` and `export NAME=value` lines of an inject snippet.
var assignRE = regexp.MustCompile(`^\s*(?:export\s+)?[A-Za-z_][A-Za-z0-9_]*=(.*)$`)

// Values returns the secret values in a payload or inject snippet: the right-hand side of
// every assignment, unquoted. These are what a masker hides.
func Values(payload []byte) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(string(payload)))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	var pending strings.Builder // a single-quoted value that spans lines
	inQuote := false
	for sc.Scan() {
		line := sc.Text()
		if inQuote {
			pending.WriteByte('\n')
			v, closed := scanQuoted(line)
			pending.WriteString(v)
			if closed {
				out = append(out, pending.String())
				pending.Reset()
				inQuote = false
			}
			continue
		}
		m := assignRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		v := strings.TrimSpace(m[1])
		switch {
		case strings.HasPrefix(v, "'"):
			s, closed := scanQuoted(v[1:])
			if closed {
				out = append(out, s)
			} else {
				pending.WriteString(s)
				inQuote = true
			}
		case strings.HasPrefix(v, `"`) && strings.HasSuffix(v, `"`) && len(v) >= 2:
			out = append(out, v[1:len(v)-1])
		default:
			out = append(out, v)
		}
	}
	if inQuote {
		out = append(out, pending.String())
	}
	return out
}

// scanQuoted reads the inside of a single-quoted sh string that began before s, with the
// '\'' escape that shellQuote writes. It reports whether the closing quote was found.
func scanQuoted(s string) (string, bool) {
	var b strings.Builder
	for {
		i := strings.IndexByte(s, '\'')
		if i < 0 {
			b.WriteString(s)
			return b.String(), false
		}
		b.WriteString(s[:i])
		rest := s[i+1:]
		if strings.HasPrefix(rest, `\''`) {
			b.WriteByte('\'')
			s = rest[3:]
			continue
		}
		return b.String(), true
	}
}
