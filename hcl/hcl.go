// Package hcl holds the builder jobs Albatros ships, as HCL2 job specifications that Nomad
// itself parses: the default builder (builder.hcl) and the Nix builder with a persisted store
// (nixcache.hcl). It renders their variables; it does not talk to Nomad.
package hcl

import (
	_ "embed"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

//go:embed builder.hcl
var builderRaw string

//go:embed nixcache.hcl
var nixcacheRaw string

//go:embed prelude.sh
var prelude string

// BotJob is the bot's own Nomad job (albatros.nomad.hcl): a service job of two
// allocations, its settings from the Variable nomad/jobs/albatros.
//
//go:embed albatros.nomad.hcl
var BotJob string

// The shipped ACL policies (acl/), for the default namespace (ci) and Consul prefix
// (albatros/).
var (
	//go:embed acl/nomad-bot.hcl
	nomadBotPolicy string
	//go:embed acl/nomad-read.hcl
	nomadReadPolicy string
	//go:embed acl/consul-bot.hcl
	consulBotPolicy string
)

// The shipped builders' sources, each with the prelude in its executor's script.
var (
	builderHCL  = withPrelude(builderRaw)
	nixcacheHCL = withPrelude(nixcacheRaw)
)

// preludeRE is the line of a heredoc where the prelude goes, and its indentation.
var preludeRE = regexp.MustCompile(`(?m)^( *)# albatros:prelude\n`)

// withPrelude puts prelude.sh in src at its "# albatros:prelude" line (once, or it
// panics: the shipped builders are tested), indented as the line is and escaped for an
// HCL heredoc (${ and %{ are HCL's own there).
func withPrelude(src string) string {
	m := preludeRE.FindAllStringSubmatchIndex(src, -1)
	if len(m) != 1 {
		panic(fmt.Sprintf("hcl: %d prelude lines in a shipped builder, want 1", len(m)))
	}
	indent := src[m[0][2]:m[0][3]]
	// Nomad renders the heredoc with consul-template: {{ would be its, and a line EOT
	// would end the heredoc.
	if strings.Contains(prelude, "{{") || strings.Contains(prelude, "}}") || regexp.MustCompile(`(?m)^\s*EOT\s*$`).MatchString(prelude) {
		panic("hcl: prelude.sh holds {{, }} or an EOT line, which Nomad would read")
	}
	var b strings.Builder
	for line := range strings.Lines(prelude) {
		if strings.TrimSpace(line) != "" {
			b.WriteString(indent)
		}
		line = strings.ReplaceAll(line, "${", "$${")
		line = strings.ReplaceAll(line, "%{", "%%{")
		b.WriteString(line)
	}
	return src[:m[0][0]] + b.String() + src[m[0][1]:]
}

// Spec is a shipped builder job.
type Spec struct {
	// Name is the job's ID, which is also how the bot's configuration names it.
	Name string
	// Source is the HCL2 job specification.
	Source string
}

// Builders are the shipped builders, by name.
var Builders = map[string]Spec{
	"builder":  {Name: "builder", Source: builderHCL},
	"nixcache": {Name: "nixcache", Source: nixcacheHCL},
}

// DefaultBuilder is the builder a repository without its own builder uses.
const DefaultBuilder = "builder"

var variableRE = regexp.MustCompile(`(?m)^variable\s+"([A-Za-z_][A-Za-z0-9_-]*)"`)

// Variables lists the variables the job declares.
func (s Spec) Variables() []string {
	var out []string
	for _, m := range variableRE.FindAllStringSubmatch(s.Source, -1) {
		out = append(out, m[1])
	}
	return out
}

// VarFile renders values as an HCL variables file for this job, leaving out the ones it
// does not declare (one setting may serve several builders). Values are written as quoted
// strings, which Nomad converts to a variable's number or bool type itself; only lists
// ([…]) are written as they are. Guessing numbers here would turn a namespace named "inf"
// into a reference and "007" into 7.
func (s Spec) VarFile(values map[string]string) string {
	declared := s.Variables()
	keys := make([]string, 0, len(values))
	for k := range values {
		if slices.Contains(declared, k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s = %s\n", k, literal(values[k]))
	}
	return b.String()
}

func literal(v string) string {
	if strings.HasPrefix(v, "[") && strings.HasSuffix(v, "]") {
		return v
	}
	return strconv.Quote(v)
}

// ParseVars reads `name=value` settings separated by commas or newlines, as
// ALBATROS_BUILDER_VARS holds them. Commas inside [ ] belong to a list value.
func ParseVars(s string) (map[string]string, error) {
	out := map[string]string{}
	var fields []string
	depth, start := 0, 0
	for i, r := range s {
		switch {
		case r == '[':
			depth++
		case r == ']':
			depth--
		case r == '\n' || (r == ',' && depth == 0):
			fields = append(fields, s[start:i])
			start = i + 1
		}
	}
	fields = append(fields, s[start:])
	for _, field := range fields {
		field = strings.TrimSpace(field)
		if field == "" {
			continue
		}
		k, v, ok := strings.Cut(field, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("builder variable %q is not name=value", field)
		}
		out[k] = strings.TrimSpace(v)
	}
	return out, nil
}

// namespaceBlockRE is the shipped Nomad policies' one namespace block, for "ci".
var namespaceBlockRE = regexp.MustCompile(`(?s)namespace "ci" \{\n.*?\n\}\n`)

// NomadBotPolicy is the bot's shipped Nomad policy (acl/nomad-bot.hcl) for the builders'
// namespaces: its block for "ci", once for each.
func NomadBotPolicy(namespaces ...string) string { return forNamespaces(nomadBotPolicy, namespaces) }

// NomadReadPolicy is the shipped Nomad policy of the bot's one token when it runs with a
// workload identity (acl/nomad-read.hcl), for the builders' namespaces.
func NomadReadPolicy(namespaces ...string) string {
	return forNamespaces(nomadReadPolicy, namespaces)
}

func forNamespaces(policy string, namespaces []string) string {
	block := namespaceBlockRE.FindString(policy)
	if block == "" {
		panic("hcl: a shipped Nomad policy without its namespace \"ci\" block")
	}
	var b strings.Builder
	for i, ns := range namespaces {
		if i > 0 {
			b.WriteString("\n")
		}
		b.WriteString(strings.Replace(block, `"ci"`, strconv.Quote(ns), 1))
	}
	return strings.Replace(policy, block, b.String(), 1)
}

// ConsulBotPolicy is the bot's shipped Consul policy (acl/consul-bot.hcl) for the registry
// prefix prefix (ALBATROS_CONSUL_PREFIX) and the bot's own keys beside it.
func ConsulBotPolicy(prefix string) string {
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	run := strings.TrimSuffix(prefix, "/") + "-run/" // registry.RunPrefix
	return strings.NewReplacer(`key_prefix "albatros/"`, "key_prefix "+strconv.Quote(prefix), `key_prefix "albatros-run/"`, "key_prefix "+strconv.Quote(run)).Replace(consulBotPolicy)
}
