package hcl_test

import (
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/albatros-ci/albatros/hcl"
)

func TestBuilders(t *testing.T) {
	if got := slices.Sorted(maps.Keys(hcl.Builders)); !slices.Equal(got, []string{"builder", "nixcache"}) {
		t.Errorf("Builders = %q, want builder and nixcache", got)
	}
	for name, spec := range hcl.Builders {
		if spec.Name != name {
			t.Errorf("Builders[%q].Name = %q", name, spec.Name)
		}
		if !strings.Contains(spec.Source, `job "`+name+`" {`) {
			t.Errorf("Builders[%q] does not declare job %q", name, name)
		}
	}
	if _, ok := hcl.Builders[hcl.DefaultBuilder]; !ok {
		t.Errorf("DefaultBuilder %q is not shipped", hcl.DefaultBuilder)
	}
}

func TestVariables(t *testing.T) {
	tests := map[string][]string{
		"builder":  {"namespace", "driver", "image", "datacenters", "cpu", "memory", "node_pool", "network_mode", "params"},
		"nixcache": {"namespace", "image", "store", "datacenters", "cpu", "memory", "node_pool", "network_mode", "params"},
	}
	for name, want := range tests {
		if got := hcl.Builders[name].Variables(); !slices.Equal(got, want) {
			t.Errorf("%s: Variables() = %q, want %q", name, got, want)
		}
	}
}

func TestVariablesIgnoresCommentsAndReferences(t *testing.T) {
	s := hcl.Spec{Name: "x", Source: `
variable "a" {}
variable  "b_2-c" {
  default = 1
}
# variable "commented" {}
job "x" { namespace = var.a }
`}
	if got, want := s.Variables(), []string{"a", "b_2-c"}; !slices.Equal(got, want) {
		t.Errorf("Variables() = %q, want %q", got, want)
	}
	if got := (hcl.Spec{}).Variables(); len(got) != 0 {
		t.Errorf("Variables() of an empty spec = %q", got)
	}
}

func TestVarFile(t *testing.T) {
	values := map[string]string{
		"namespace":   "ci",
		"driver":      "raw_exec",
		"cpu":         "100",
		"memory":      "256.5",
		"datacenters": `["a","b"]`,
		"image":       `my "img"\x`,
		"store":       "/var/cache/albatros", // not a variable of builder
		"unknown":     "x",
	}
	want := strings.Join([]string{
		`cpu = "100"`,
		`datacenters = ["a","b"]`,
		`driver = "raw_exec"`,
		`image = "my \"img\"\\x"`,
		`memory = "256.5"`,
		`namespace = "ci"`,
	}, "\n") + "\n"
	if got := hcl.Builders["builder"].VarFile(values); got != want {
		t.Errorf("builder VarFile:\n%s\nwant:\n%s", got, want)
	}

	wantNix := strings.Join([]string{
		`cpu = "100"`,
		`datacenters = ["a","b"]`,
		`image = "my \"img\"\\x"`,
		`memory = "256.5"`,
		`namespace = "ci"`,
		`store = "/var/cache/albatros"`,
	}, "\n") + "\n"
	if got := hcl.Builders["nixcache"].VarFile(values); got != wantNix {
		t.Errorf("nixcache VarFile:\n%s\nwant:\n%s", got, wantNix)
	}
}

// Every value but a list is a quoted string: Nomad converts "100" to a number variable's
// type itself (the orchestrator's tests register the builder with cpu="100"), and a string
// variable keeps "007" or "1e3" as written.
func TestVarFileLiterals(t *testing.T) {
	s := hcl.Spec{Source: `variable "v" {}`}
	tests := []struct{ in, want string }{
		{"1", `"1"`},
		{"-3", `"-3"`},
		{"007", `"007"`},
		{"1.5", `"1.5"`},
		{"1e3", `"1e3"`},
		{"true", `"true"`},
		{"false", `"false"`},
		{"True", `"True"`},
		{"[]", "[]"},
		{`["*"]`, `["*"]`},
		{"", `""`},
		{"ci", `"ci"`},
		{"a b", `"a b"`},
		{"[unclosed", `"[unclosed"`},
		{`say "hi"`, `"say \"hi\""`},
		{`C:\dir`, `"C:\\dir"`},
		{"two\nlines", `"two\nlines"`},
	}
	for _, tt := range tests {
		want := "v = " + tt.want + "\n"
		if got := s.VarFile(map[string]string{"v": tt.in}); got != want {
			t.Errorf("VarFile(v=%q) = %q, want %q", tt.in, got, want)
		}
	}
}

// Go's strconv.ParseFloat accepts more than HCL's number syntax. Written unquoted, these are
// not numbers to HCL: "inf" and "NaN" are variable references ("Variables not allowed" when
// Nomad reads the file), "+1", ".5", "1." and "0x1p4" do not parse. Each must be quoted, so
// that ALBATROS_NAMESPACE=inf, say, reaches the builder as the string "inf". (A regression
// test: VarFile once wrote whatever ParseFloat accepted unquoted.)
func TestVarFileQuotesWhatHCLDoesNotReadAsANumber(t *testing.T) {
	s := hcl.Spec{Source: `variable "v" {}`}
	for _, in := range []string{"inf", "Inf", "NaN", "nan", "infinity", "+Inf", "+1", ".5", "1.", "0x1p4"} {
		want := "v = " + strconv.Quote(in) + "\n"
		if got := s.VarFile(map[string]string{"v": in}); got != want {
			t.Errorf("VarFile(v=%q) = %q, want %q", in, got, want)
		}
	}
}

func TestVarFileEmpty(t *testing.T) {
	if got := hcl.Builders["builder"].VarFile(nil); got != "" {
		t.Errorf("VarFile(nil) = %q, want empty", got)
	}
	if got := hcl.Builders["builder"].VarFile(map[string]string{"store": "/x"}); got != "" {
		t.Errorf("VarFile(undeclared only) = %q, want empty", got)
	}
}

func TestParseVars(t *testing.T) {
	tests := []struct {
		in   string
		want map[string]string
	}{
		{"", map[string]string{}},
		{" , \n", map[string]string{}},
		{"cpu=100", map[string]string{"cpu": "100"}},
		{"cpu=100,memory=256", map[string]string{"cpu": "100", "memory": "256"}},
		{" cpu = 100 , memory= 256 ", map[string]string{"cpu": "100", "memory": "256"}},
		{"cpu=100\nmemory=256\n", map[string]string{"cpu": "100", "memory": "256"}},
		{"cpu=100\r\nmemory=256", map[string]string{"cpu": "100", "memory": "256"}},
		{`cpu=100,memory=256,datacenters=["a","b"]`, map[string]string{"cpu": "100", "memory": "256", "datacenters": `["a","b"]`}},
		{`datacenters=["a", "b", "c"],cpu=1`, map[string]string{"datacenters": `["a", "b", "c"]`, "cpu": "1"}},
		{"image=a=b", map[string]string{"image": "a=b"}},
		{"image=", map[string]string{"image": ""}},
		{"cpu=1,cpu=2", map[string]string{"cpu": "2"}},
	}
	for _, tt := range tests {
		got, err := hcl.ParseVars(tt.in)
		if err != nil {
			t.Errorf("ParseVars(%q): %v", tt.in, err)
			continue
		}
		if !maps.Equal(got, tt.want) {
			t.Errorf("ParseVars(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParseVarsErrors(t *testing.T) {
	for _, in := range []string{"novalue", "=x", " = x", "cpu=1,novalue", "cpu=1\n=2"} {
		got, err := hcl.ParseVars(in)
		if err == nil {
			t.Errorf("ParseVars(%q) = %q, want an error", in, got)
			continue
		}
		if !strings.Contains(err.Error(), "name=value") {
			t.Errorf("ParseVars(%q) error %q does not say name=value", in, err)
		}
	}
}

// A round trip: what the operator writes in ALBATROS_BUILDER_VARS reaches the builder.
func TestParseVarsThenVarFile(t *testing.T) {
	vars, err := hcl.ParseVars(`cpu=100,memory=256,datacenters=["a","b"],image=alpine/git:2`)
	if err != nil {
		t.Fatal(err)
	}
	want := "cpu = \"100\"\ndatacenters = [\"a\",\"b\"]\nimage = \"alpine/git:2\"\nmemory = \"256\"\n"
	if got := hcl.Builders["builder"].VarFile(vars); got != want {
		t.Errorf("VarFile:\n%s\nwant:\n%s", got, want)
	}
}

// The builder contract, as the bot and repositories rely on it. Nomad's own parser checks the
// specs elsewhere; these are the text-level facts.
func TestBuilderContract(t *testing.T) {
	contract := []*regexp.Regexp{
		regexp.MustCompile(`(?s)parameterized\s*\{[^}]*meta_required\s*=\s*\["REPO_URL",\s*"COMMIT",\s*"BRANCH",\s*"FLAVOR"\]`),
		regexp.MustCompile(`(?s)parameterized\s*\{[^}]*meta_optional\s*=\s*concat\(\["TAG",\s*"PR"\],\s*var\.params\)`),
		regexp.MustCompile(`(?m)^\s*group\s+"runner"\s*\{`),
		regexp.MustCompile(`(?m)^\s*task\s+"executor"\s*\{`),
		regexp.MustCompile(`type\s*=\s*"batch"`),
		regexp.MustCompile(`namespace\s*=\s*var\.namespace`),
		regexp.MustCompile(`ALBATROS_SECRETS_FILE\s*=`),
		regexp.MustCompile(`dispatch_payload\s*\{`),
	}
	for name, spec := range hcl.Builders {
		for _, re := range contract {
			if !re.MatchString(spec.Source) {
				t.Errorf("%s does not match %s", name, re)
			}
		}
		if n := strings.Count(spec.Source, "parameterized {"); n != 1 {
			t.Errorf("%s has %d parameterized blocks, want 1", name, n)
		}
		if n := len(regexp.MustCompile(`(?m)^\s*group\s+"`).FindAllString(spec.Source, -1)); n != 1 {
			t.Errorf("%s has %d groups, want only runner", name, n)
		}
	}
}

func TestBuilderScript(t *testing.T) {
	src := hcl.Builders["builder"].Source
	for _, want := range []string{
		`. "$ALBATROS_SECRETS_FILE"`,
		`exec ./.albatros`,
		`git -c advice.detachedHead=false checkout -q --detach "$COMMIT" --`,
		`git fetch -q --depth 1 -- origin "$COMMIT"`,
		`git remote add -- origin "$REPO_URL"`,
		`exec 2>&1`,
	} {
		if !strings.Contains(src, want) {
			t.Errorf("builder.hcl's script lacks %s", want)
		}
	}
	// The secrets are sourced before the build runs.
	if strings.Index(src, `. "$ALBATROS_SECRETS_FILE"`) > strings.Index(src, `exec ./.albatros`) {
		t.Error("builder.hcl runs .albatros before sourcing ALBATROS_SECRETS_FILE")
	}
	// exec, raw_exec and docker are the drivers config accepts.
	if !strings.Contains(src, `driver = var.driver`) {
		t.Error("builder.hcl's executor does not take its driver from var.driver")
	}

	nix := hcl.Builders["nixcache"].Source
	for _, want := range []string{`. "$ALBATROS_SECRETS_FILE"`, `./.albatros`, `NIX_REMOTE`} {
		if !strings.Contains(nix, want) {
			t.Errorf("nixcache.hcl's script lacks %s", want)
		}
	}
}

// buildScript is the executor's script of a shipped builder, as Nomad renders it: the
// heredoc of the template whose destination is local/albatros-build.sh, dedented, with HCL's
// $${ escapes undone.
func buildScript(t *testing.T, name string) string {
	t.Helper()
	src := hcl.Builders[name].Source
	m := regexp.MustCompile(`(?s)destination = "local/albatros-build.sh".*?data\s*=\s*<<-EOT\n(.*?)\n\s*EOT\n`).FindStringSubmatch(src)
	if m == nil {
		t.Fatalf("%s: no albatros-build.sh template", name)
	}
	lines := strings.Split(m[1], "\n")
	indent := -1
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		if n := len(l) - len(strings.TrimLeft(l, " ")); indent < 0 || n < indent {
			indent = n
		}
	}
	for i, l := range lines {
		if len(l) >= indent {
			lines[i] = l[indent:]
		}
	}
	return strings.ReplaceAll(strings.Join(lines, "\n"), "$${", "${") + "\n"
}

// The shipped builders refuse a COMMIT or REPO_URL that git could read as an option or a
// transport before running git at all: a build dispatched by hand, or by another tool, gets
// the same checks as the bot's.
func TestBuilderScriptsRefuseHostileMeta(t *testing.T) {
	sha := strings.Repeat("a", 40)
	cases := []struct{ name, commit, repoURL, want string }{
		{"option as commit", "--upload-pack=touch PWNED", "https://git.example.com/o/r.git", "COMMIT is not a full commit id"},
		{"short commit", "abc1234", "https://git.example.com/o/r.git", "COMMIT is not a full commit id"},
		{"uppercase commit", strings.Repeat("A", 40), "https://git.example.com/o/r.git", "COMMIT is not a full commit id"},
		{"empty commit", "", "https://git.example.com/o/r.git", "COMMIT is not a full commit id"},
		{"ext transport", sha, "ext::sh -c touch% PWNED", "REPO_URL is not an http(s) or file:/// URL"},
		{"option as url", sha, "--upload-pack=touch PWNED", "REPO_URL is not an http(s) or file:/// URL"},
		{"relative path", sha, "../other-repo", "REPO_URL is not an http(s) or file:/// URL"},
	}
	for _, name := range []string{"builder", "nixcache"} {
		script := buildScript(t, name)
		for _, c := range cases {
			t.Run(name+"/"+c.name, func(t *testing.T) {
				dir := t.TempDir()
				// A git that records being run: none of these may reach it.
				bin := filepath.Join(dir, "bin")
				if err := os.MkdirAll(bin, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(bin, "git"), []byte("#!/bin/sh\ntouch \"$(dirname \"$0\")/../git-ran\"\n"), 0o755); err != nil {
					t.Fatal(err)
				}
				cmd := exec.Command("/bin/sh", "-c", strings.ReplaceAll(script, "PWNED", filepath.Join(dir, "pwned")))
				cmd.Dir = dir
				cmd.Env = []string{
					"PATH=" + bin + ":/usr/bin:/bin",
					"COMMIT=" + strings.ReplaceAll(c.commit, "PWNED", filepath.Join(dir, "pwned")),
					"REPO_URL=" + strings.ReplaceAll(c.repoURL, "PWNED", filepath.Join(dir, "pwned")),
					"BRANCH=main", "FLAVOR=default",
					"NOMAD_TASK_DIR=" + dir, "NOMAD_ALLOC_DIR=" + dir,
					"ALBATROS_SECRETS_FILE=" + filepath.Join(dir, "secrets"),
				}
				out, err := cmd.CombinedOutput()
				if err == nil || !strings.Contains(string(out), c.want) {
					t.Errorf("script: %v\n%s\nwant a failure saying %q", err, out, c.want)
				}
				for _, f := range []string{"git-ran", "pwned"} {
					if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
						t.Errorf("%s exists: the hostile value reached git or a shell", f)
					}
				}
			})
		}
	}
}

// Every shipped builder's script starts the same way: prelude.sh, whole, as Nomad renders
// it (the checks, the payload's move, the fetch are written once).
func TestBuildersShareThePrelude(t *testing.T) {
	prelude, err := os.ReadFile("prelude.sh")
	if err != nil {
		t.Fatal(err)
	}
	for name := range hcl.Builders {
		script := buildScript(t, name)
		if !strings.Contains(script, string(prelude)) {
			t.Errorf("%s's script does not hold prelude.sh whole:\n%s", name, script)
		}
		if strings.Contains(script, "albatros:prelude") {
			t.Errorf("%s's script still holds the prelude's marker", name)
		}
		if i, j := strings.Index(script, "COMMIT is not a full commit id"), strings.Index(script, "./.albatros"); i < 0 || j < i {
			t.Errorf("%s runs .albatros before the prelude's checks", name)
		}
	}
}

// The shipped policies render for other namespaces and prefixes: each namespace gets the
// shipped block's capabilities, each prefix its run prefix; the defaults give the files.
func TestPoliciesRender(t *testing.T) {
	file := func(name string) string {
		b, err := os.ReadFile("acl/" + name)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	nomadBotPolicy, consulBotPolicy := file("nomad-bot.hcl"), file("consul-bot.hcl")
	if got := hcl.NomadBotPolicy("ci"); got != nomadBotPolicy {
		t.Errorf("hcl.NomadBotPolicy(ci) is not the shipped file:\n%s", got)
	}
	two := hcl.NomadBotPolicy("ci", "builds-untrusted")
	if strings.Count(two, `capabilities = ["list-jobs", "read-job", "parse-job", "submit-job", "dispatch-job", "read-logs"]`) != 2 || !strings.Contains(two, `namespace "builds-untrusted" {`) {
		t.Errorf("two namespaces:\n%s", two)
	}
	if ev := hcl.NomadReadPolicy("x"); !strings.Contains(ev, "namespace \"x\" {\n  capabilities = [\"read-job\"]\n}") || strings.Contains(ev, `"ci"`) {
		t.Errorf("read policy for x:\n%s", ev)
	}
	if got := hcl.ConsulBotPolicy("albatros/"); got != consulBotPolicy {
		t.Errorf("hcl.ConsulBotPolicy(albatros/) is not the shipped file:\n%s", got)
	}
	c := hcl.ConsulBotPolicy("test/T1/")
	if !strings.Contains(c, `key_prefix "test/T1/" {`) || !strings.Contains(c, `key_prefix "test/T1-run/" {`) || strings.Contains(c, `"albatros/"`) {
		t.Errorf("consul policy for test/T1/:\n%s", c)
	}
}

// The bot's job puts each secret in a file of its own, owned by the bot's user, never in
// its environment: the env template's two expressions let the settings through and keep
// every secret, and what the job sets itself, out; each …_FILE the job names is written by a
// template; its own namespace is not Nomad's default one (whose tenants could run a job of
// its name and read its Variable).
func TestBotJobKeepsSecretsInFiles(t *testing.T) {
	job := hcl.BotJob
	exprs := regexp.MustCompile(`regexMatch "([^"]+)"`).FindAllStringSubmatch(job, -1)
	if len(exprs) != 2 {
		t.Fatalf("the env template's expressions: %q", exprs)
	}
	settings, secret := regexp.MustCompile(exprs[0][1]), regexp.MustCompile(exprs[1][1])
	inEnv := func(name string) bool { return settings.MatchString(name) && !secret.MatchString(name) }
	for _, name := range []string{"ALBATROS_URL", "ALBATROS_GITEA_URL", "ALBATROS_GITEA_CLIENT_ID", "ALBATROS_ARCHIVE", "ALBATROS_CONSUL_PREFIX", "CONSUL_HTTP_ADDR", "AWS_REGION", "AWS_ENDPOINT_URL",
		"ALBATROS_GITHUB_APP", "ALBATROS_GITHUB_APP_ID", "ALBATROS_GITHUB_CLIENT_ID", "ALBATROS_GITHUB_WEB_URL", "ALBATROS_GITHUB_URL"} {
		if !inEnv(name) {
			t.Errorf("the setting %s is not in the environment", name)
		}
	}
	for _, name := range []string{
		"ALBATROS_GITEA_TOKEN", "ALBATROS_GITEA_CLIENT_SECRET", "ALBATROS_GITHUB_TOKEN", "ALBATROS_SECRET_KEY",
		"ALBATROS_GITHUB_APP_KEY", "ALBATROS_GITHUB_WEBHOOK_SECRET", "ALBATROS_GITHUB_WEBHOOK_SECRET_PREVIOUS", "ALBATROS_GITHUB_CLIENT_SECRET", "ALBATROS_GITHUB_SETUP_CODE",
		"ALBATROS_SECRET_KEY_PREVIOUS", "ALBATROS_NOMAD_READ_TOKEN", "CONSUL_HTTP_TOKEN", "CONSUL_HTTP_AUTH",
		"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
		"ALBATROS_ADDR", "ALBATROS_METRICS_ADDR", "ALBATROS_BUILDERS", "ALBATROS_GITEA_TOKEN_FILE", "NOMAD_ADDR", "NOMAD_TOKEN", "PATH", "LD_PRELOAD",
	} {
		if inEnv(name) {
			t.Errorf("%s goes from the Variable to the environment", name)
		}
	}
	files := regexp.MustCompile(`(?m)^\s+[A-Z_]+_FILE\s+= "\$\{NOMAD_SECRETS_DIR\}/([a-z-]+)"`).FindAllStringSubmatch(job, -1)
	if len(files) != 13 {
		t.Errorf("%d …_FILE settings in the job, want the 13 secrets'", len(files))
	}
	for _, m := range files {
		block := regexp.MustCompile(`destination = "secrets/` + m[1] + `"\s+perms\s+= "0400"\s+uid\s+= var.uid\s+gid\s+= var.uid`)
		if !block.MatchString(job) {
			t.Errorf("secrets/%s: no template writing it 0400, owned by var.uid", m[1])
		}
	}
	if !regexp.MustCompile(`variable "uid" \{\n  type        = number\n  default     = 65532`).MatchString(job) {
		t.Error("var.uid's default is not the image's user, 65532")
	}
	if !regexp.MustCompile(`variable "namespace" \{\n  type        = string\n  default     = "albatros"`).MatchString(job) {
		t.Error("the job's namespace is not its own by default")
	}
}
