package schedule

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/albatros-ci/albatros/registry"
)

// The types of a run's parameters.
const (
	TypeString  = "string"
	TypeChoice  = "choice"
	TypeBoolean = "boolean"
)

// MaxParams is how many parameters a repository may declare; MaxValue the longest value.
const (
	MaxParams = 20
	MaxValue  = 256
)

var paramRE = regexp.MustCompile(`^[A-Z][A-Z0-9_]{0,63}$`)

// Reserved are the meta keys that are not a run's to set: the builder contract's, and
// those the bot sets itself.
var Reserved = []string{"REPO_URL", "COMMIT", "BRANCH", "FLAVOR", "TAG", "PR", "IMAGE", "SIZE"}

// CheckParams checks a repository's declared parameters: names (upper-case meta keys, not
// Reserved, each once), types, choices and defaults.
func CheckParams(ps []registry.Param) error {
	if len(ps) > MaxParams {
		return fmt.Errorf("%d parameters: a repository declares at most %d", len(ps), MaxParams)
	}
	for i, p := range ps {
		switch {
		case !paramRE.MatchString(p.Name):
			return fmt.Errorf("parameter %q: a parameter's name is a meta key: upper-case letters, digits and '_', starting with a letter", p.Name)
		case slices.Contains(Reserved, p.Name):
			return fmt.Errorf("parameter %s: the bot sets %s itself", p.Name, p.Name)
		case slices.ContainsFunc(ps[:i], func(o registry.Param) bool { return o.Name == p.Name }):
			return fmt.Errorf("parameter %s is declared twice", p.Name)
		}
		switch p.Type {
		case TypeString, TypeBoolean:
			if len(p.Choices) > 0 {
				return fmt.Errorf("parameter %s: only a choice has choices", p.Name)
			}
		case TypeChoice:
			if len(p.Choices) == 0 || len(p.Choices) > 50 {
				return fmt.Errorf("parameter %s: a choice has 1 to 50 choices", p.Name)
			}
			for _, c := range p.Choices {
				if err := checkText(c); err != nil || c == "" || strings.ContainsAny(c, ", ") {
					return fmt.Errorf("parameter %s: choice %q: a choice is a word without ',' or spaces", p.Name, c)
				}
			}
		default:
			return fmt.Errorf("parameter %s: type %q is not string, choice or boolean", p.Name, p.Type)
		}
		if p.Default != "" {
			if err := CheckValue(p, p.Default); err != nil {
				return fmt.Errorf("parameter %s: its default: %w", p.Name, err)
			}
		}
	}
	return nil
}

// CheckValue checks a value of parameter p: a string of up to MaxValue bytes of printable
// text (it reaches the builder's environment), one of a choice's choices, or "true" or
// "false".
func CheckValue(p registry.Param, v string) error {
	switch p.Type {
	case TypeBoolean:
		if v != "true" && v != "false" {
			return fmt.Errorf("%w: %s is true or false", ErrParam, p.Name)
		}
	case TypeChoice:
		if !slices.Contains(p.Choices, v) {
			return fmt.Errorf("%w: %s is one of %s", ErrParam, p.Name, strings.Join(p.Choices, ", "))
		}
	default:
		if err := checkText(v); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrParam, p.Name, err)
		}
	}
	return nil
}

func checkText(v string) error {
	if len(v) > MaxValue {
		return fmt.Errorf("longer than %d bytes", MaxValue)
	}
	if !utf8.ValidString(v) {
		return fmt.Errorf("not UTF-8")
	}
	for _, r := range v {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return fmt.Errorf("holds a control character")
		}
	}
	return nil
}

// Values returns the meta of a run: each declared parameter's value, given or its
// default (a boolean's is false, a choice's its first); a given name the settings do not
// declare, or a value they do not allow, is refused (ErrParam).
func Values(ps []registry.Param, given map[string]string) (map[string]string, error) {
	for name := range given {
		if !slices.ContainsFunc(ps, func(p registry.Param) bool { return p.Name == name }) {
			return nil, fmt.Errorf("%w: %q is not a parameter the repository's settings declare", ErrParam, name)
		}
	}
	out := map[string]string{}
	for _, p := range ps {
		v, set := given[p.Name]
		if !set {
			v = Default(p)
		}
		if err := CheckValue(p, v); err != nil {
			return nil, err
		}
		if v != "" {
			out[p.Name] = v
		}
	}
	return out, nil
}

// Default is p's value when a run does not set it.
func Default(p registry.Param) string {
	switch {
	case p.Default != "":
		return p.Default
	case p.Type == TypeBoolean:
		return "false"
	case p.Type == TypeChoice && len(p.Choices) > 0:
		return p.Choices[0]
	}
	return ""
}

// FormatParam writes a parameter in the settings page's one-line form:
//
//	<NAME> string [<default>]
//	<NAME> boolean [true|false]
//	<NAME> choice <a>,<b>,… [<default>]
func FormatParam(p registry.Param) string {
	f := []string{p.Name, p.Type}
	if p.Type == TypeChoice {
		f = append(f, strings.Join(p.Choices, ","))
	}
	if p.Default != "" {
		f = append(f, p.Default)
	}
	return strings.Join(f, " ")
}

// ParseParams reads parameters in FormatParam's form, one per line (a string's default is
// the rest of its line), and checks them.
func ParseParams(text string) ([]registry.Param, error) {
	var out []registry.Param
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			return nil, fmt.Errorf("line %d: a parameter is: a name, a type (string, choice or boolean), then its choices and its default", i+1)
		}
		p := registry.Param{Name: f[0], Type: f[1]}
		rest := f[2:]
		if p.Type == TypeChoice {
			if len(rest) == 0 {
				return nil, fmt.Errorf("line %d: a choice lists its choices: a,b,c", i+1)
			}
			p.Choices = strings.Split(rest[0], ",")
			rest = rest[1:]
		}
		if p.Type == TypeString {
			// The rest of the line, spaces inside kept.
			p.Default = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(strings.TrimPrefix(line, f[0])), f[1]))
		} else if len(rest) > 1 {
			return nil, fmt.Errorf("line %d: %s has one default", i+1, p.Name)
		} else if len(rest) == 1 {
			p.Default = rest[0]
		}
		if err := CheckParams(append(slices.Clone(out), p)); err != nil {
			return nil, fmt.Errorf("line %d: %w", i+1, err)
		}
		out = append(out, p)
	}
	return out, nil
}
