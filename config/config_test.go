package config_test

import (
	"bytes"
	"errors"
	"flag"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/albatros-ci/albatros/config"
)

// env is a fake environment for Load's getenv.
type env map[string]string

func (e env) get(k string) string { return e[k] }

// minimal is the smallest environment Load accepts.
func minimal() env { return env{"ALBATROS_URL": "https://ci.example.com"} }

// with returns a copy of e with kv (name, value, name, value…) set.
func (e env) with(kv ...string) env {
	out := maps.Clone(e)
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

// load runs Load with args and e, and returns what it printed too.
func load(e env, args ...string) (*config.Config, string, error) {
	var stderr bytes.Buffer
	c, err := config.Load(args, e.get, &stderr)
	return c, stderr.String(), err
}

func mustLoad(t *testing.T, e env, args ...string) *config.Config {
	t.Helper()
	c, _, err := load(e, args...)
	if err != nil {
		t.Fatalf("Load(%q): %v", args, err)
	}
	return c
}

func TestLoadDefaults(t *testing.T) {
	c := mustLoad(t, minimal())

	if c.URL != "https://ci.example.com" {
		t.Errorf("URL = %q, want https://ci.example.com", c.URL)
	}
	if c.Addr != "127.0.0.1:8080" {
		t.Errorf("Addr = %q, want 127.0.0.1:8080", c.Addr)
	}
	if c.Namespace != "ci" {
		t.Errorf("Namespace = %q, want ci", c.Namespace)
	}
	if !slices.Equal(c.Builders, []string{"builder"}) {
		t.Errorf("Builders = %q, want [builder]", c.Builders)
	}
	wantVars := map[string]string{"driver": "exec", "namespace": "ci"}
	if !maps.Equal(c.BuilderVars, wantVars) {
		t.Errorf("BuilderVars = %v, want %v", c.BuilderVars, wantVars)
	}
	if c.ConsulPrefix != "albatros/" {
		t.Errorf("ConsulPrefix = %q, want albatros/", c.ConsulPrefix)
	}
	if c.LogLevel != slog.LevelInfo {
		t.Errorf("LogLevel = %v, want INFO", c.LogLevel)
	}
	if c.LogFormat != "text" {
		t.Errorf("LogFormat = %q, want text", c.LogFormat)
	}
	if c.GiteaURL != "" || c.GiteaToken != "" {
		t.Errorf("GiteaURL, GiteaToken = %q, %q, want both empty", c.GiteaURL, c.GiteaToken)
	}
	if !c.TokenSecrets {
		t.Error("TokenSecrets = false, want the original's behaviour (allow) by default")
	}
	if c.ReadTimeout != 30*time.Second {
		t.Errorf("ReadTimeout = %v, want 30s", c.ReadTimeout)
	}
	if c.PprofAddr != "" {
		t.Errorf("PprofAddr = %q, want the profiler off by default", c.PprofAddr)
	}
	if c.QueueBytes != 96<<20 || c.ReconcileBranches != 24*time.Hour {
		t.Errorf("QueueBytes = %d, ReconcileBranches = %v; want 96 MiB, 24h", c.QueueBytes, c.ReconcileBranches)
	}
}

func TestLoadQueueBytesAndReconcileBranches(t *testing.T) {
	for v, want := range map[string]int64{"2GiB": 2 << 30, "1048576": 1 << 20, "5120KiB": 5120 << 10} {
		c := mustLoad(t, minimal().with("ALBATROS_QUEUE_BYTES", v, "ALBATROS_RECONCILE_BRANCHES", "168h"))
		if c.QueueBytes != want || c.ReconcileBranches != 168*time.Hour {
			t.Errorf("%s: QueueBytes = %d, ReconcileBranches = %v; want %d, 168h", v, c.QueueBytes, c.ReconcileBranches, want)
		}
	}
}

func TestLoadHookTokenSecretsAndReadTimeout(t *testing.T) {
	c := mustLoad(t, minimal().with("ALBATROS_HOOK_TOKEN_SECRETS", "deny", "ALBATROS_READ_TIMEOUT", "5s"))
	if c.TokenSecrets || c.ReadTimeout != 5*time.Second {
		t.Errorf("TokenSecrets = %v, ReadTimeout = %v; want false, 5s", c.TokenSecrets, c.ReadTimeout)
	}
}

func TestLoadTrimsTrailingSlashOfURLs(t *testing.T) {
	c := mustLoad(t, env{"ALBATROS_URL": "https://ci.example.com/", "ALBATROS_GITEA_URL": "http://gitea:3000/"})
	if c.URL != "https://ci.example.com" {
		t.Errorf("URL = %q, want https://ci.example.com", c.URL)
	}
	if c.GiteaURL != "http://gitea:3000" {
		t.Errorf("GiteaURL = %q, want http://gitea:3000", c.GiteaURL)
	}
}

// Each setting from its default, its variable and its flag: a flag wins over its variable,
// which wins over the default.
func TestLoadPrecedence(t *testing.T) {
	tests := []struct {
		flag, env string
		get       func(*config.Config) string
		// The value given by variable and by flag, and what get returns for the default,
		// the variable and the flag.
		envV, flagV            string
		def, envWant, flagWant string
	}{
		{flag: "addr", env: "ALBATROS_ADDR", get: func(c *config.Config) string { return c.Addr },
			envV: "0.0.0.0:9000", flagV: "[::1]:9100",
			def: "127.0.0.1:8080", envWant: "0.0.0.0:9000", flagWant: "[::1]:9100"},
		{flag: "url", env: "ALBATROS_URL", get: func(c *config.Config) string { return c.URL },
			envV: "https://env.example.com", flagV: "http://flag.example.com:8080",
			def: "https://ci.example.com", envWant: "https://env.example.com", flagWant: "http://flag.example.com:8080"},
		{flag: "namespace", env: "ALBATROS_NAMESPACE", get: func(c *config.Config) string { return c.Namespace },
			envV: "from-env", flagV: "from-flag",
			def: "ci", envWant: "from-env", flagWant: "from-flag"},
		{flag: "builders", env: "ALBATROS_BUILDERS", get: func(c *config.Config) string { return strings.Join(c.Builders, ",") },
			envV: "nixcache", flagV: "none",
			def: "builder", envWant: "nixcache", flagWant: ""},
		{flag: "builder-driver", env: "ALBATROS_BUILDER_DRIVER", get: func(c *config.Config) string { return c.BuilderVars["driver"] },
			envV: "raw_exec", flagV: "docker",
			def: "exec", envWant: "raw_exec", flagWant: "docker"},
		{flag: "builder-vars", env: "ALBATROS_BUILDER_VARS", get: func(c *config.Config) string { return c.BuilderVars["cpu"] },
			envV: "cpu=1", flagV: "cpu=2",
			def: "", envWant: "1", flagWant: "2"},
		{flag: "consul-prefix", env: "ALBATROS_CONSUL_PREFIX", get: func(c *config.Config) string { return c.ConsulPrefix },
			envV: "env/", flagV: "flag/",
			def: "albatros/", envWant: "env/", flagWant: "flag/"},
		{flag: "gitea-url", env: "ALBATROS_GITEA_URL", get: func(c *config.Config) string { return c.GiteaURL },
			envV: "http://env:3000", flagV: "https://flag",
			def: "", envWant: "http://env:3000", flagWant: "https://flag"},
		{flag: "gitea-token", env: "ALBATROS_GITEA_TOKEN", get: func(c *config.Config) string { return c.GiteaToken },
			envV: "env-token", flagV: "flag-token",
			def: "", envWant: "env-token", flagWant: "flag-token"},
		{flag: "github-url", env: "ALBATROS_GITHUB_URL", get: func(c *config.Config) string { return c.GitHubURL },
			envV: "https://ghe.example.com/api/v3/", flagV: "https://api.github.com",
			def: "", envWant: "https://ghe.example.com/api/v3", flagWant: "https://api.github.com"},
		{flag: "github-token", env: "ALBATROS_GITHUB_TOKEN", get: func(c *config.Config) string { return c.GitHubToken },
			envV: "env-gh", flagV: "flag-gh",
			def: "", envWant: "env-gh", flagWant: "flag-gh"},
		{flag: "log-level", env: "ALBATROS_LOG_LEVEL", get: func(c *config.Config) string { return c.LogLevel.String() },
			envV: "warn", flagV: "debug",
			def: "INFO", envWant: "WARN", flagWant: "DEBUG"},
		{flag: "log-format", env: "ALBATROS_LOG_FORMAT", get: func(c *config.Config) string { return c.LogFormat },
			envV: "json", flagV: "text",
			def: "text", envWant: "json", flagWant: "text"},
	}
	for _, tt := range tests {
		t.Run(tt.flag, func(t *testing.T) {
			if got := tt.get(mustLoad(t, minimal())); got != tt.def {
				t.Errorf("default: got %q, want %q", got, tt.def)
			}
			e := minimal().with(tt.env, tt.envV)
			if got := tt.get(mustLoad(t, e)); got != tt.envWant {
				t.Errorf("$%s=%q: got %q, want %q", tt.env, tt.envV, got, tt.envWant)
			}
			if got := tt.get(mustLoad(t, e, "-"+tt.flag, tt.flagV)); got != tt.flagWant {
				t.Errorf("$%s=%q -%s=%q: got %q, want the flag's %q", tt.env, tt.envV, tt.flag, tt.flagV, got, tt.flagWant)
			}
		})
	}
}

func TestLoadNamespaceIsPassedToBuilders(t *testing.T) {
	c := mustLoad(t, minimal().with("ALBATROS_NAMESPACE", "builds"))
	if c.BuilderVars["namespace"] != "builds" {
		t.Errorf("BuilderVars[namespace] = %q, want builds", c.BuilderVars["namespace"])
	}
}

// The namespace and driver the bot is configured with win over the same names in builder-vars.
func TestLoadBuilderVarsCannotOverrideDriverOrNamespace(t *testing.T) {
	c := mustLoad(t, minimal().with("ALBATROS_BUILDER_VARS", "driver=docker,namespace=other"))
	want := map[string]string{"driver": "exec", "namespace": "ci"}
	if !maps.Equal(c.BuilderVars, want) {
		t.Errorf("BuilderVars = %v, want %v", c.BuilderVars, want)
	}
}

// Builds of code not trusted get the shipped builders' variables with their own namespace,
// node pool and network mode; without the setting, none.
func TestLoadUntrustedBuilders(t *testing.T) {
	c := mustLoad(t, minimal().with("ALBATROS_UNTRUSTED_NAMESPACE", "forks", "ALBATROS_UNTRUSTED_NODE_POOL", "sandbox", "ALBATROS_UNTRUSTED_NETWORK", "bridge", "ALBATROS_BUILDER_VARS", "cpu=300"))
	want := map[string]string{"namespace": "forks", "node_pool": "sandbox", "network_mode": "bridge", "driver": "exec", "cpu": "300"}
	if !maps.Equal(c.UntrustedVars, want) || c.BuilderVars["namespace"] != "ci" || c.BuilderVars["node_pool"] != "" {
		t.Errorf("untrusted %v, trusted %v", c.UntrustedVars, c.BuilderVars)
	}
	if c := mustLoad(t, minimal()); c.UntrustedVars != nil {
		t.Errorf("without the setting: %v", c.UntrustedVars)
	}
}

func TestLoadBuilders(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"none", nil},
		{"builder,nixcache", []string{"builder", "nixcache"}},
		{" nixcache , builder ", []string{"nixcache", "builder"}},
		{"builder,,", []string{"builder"}},
	}
	for _, tt := range tests {
		c := mustLoad(t, minimal().with("ALBATROS_BUILDERS", tt.in))
		if !slices.Equal(c.Builders, tt.want) {
			t.Errorf("builders %q: Builders = %q, want %q", tt.in, c.Builders, tt.want)
		}
	}
}

func TestLoadBuilderVars(t *testing.T) {
	c := mustLoad(t, minimal(), "-builder-vars", `cpu=100,memory=256,datacenters=["a","b"]`)
	want := map[string]string{
		"cpu":         "100",
		"memory":      "256",
		"datacenters": `["a","b"]`,
		"driver":      "exec",
		"namespace":   "ci",
	}
	if !maps.Equal(c.BuilderVars, want) {
		t.Errorf("BuilderVars = %v, want %v", c.BuilderVars, want)
	}
}

// Settings that look unusual but are valid, each as a variable and its value.
func TestLoadAcceptsValidSettings(t *testing.T) {
	tests := [][2]string{
		{"ALBATROS_ADDR", ":8080"},
		{"ALBATROS_ADDR", "[::1]:8080"},
		{"ALBATROS_NAMESPACE", "A-z-09"},
		{"ALBATROS_BUILDER_DRIVER", "raw_exec"},
		{"ALBATROS_LOG_LEVEL", "error"},
		{"NOMAD_ADDR", "http://127.0.0.1:4646"},
		{"NOMAD_ADDR", "https://nomad.example.com"},
		{"NOMAD_ADDR", "unix:///alloc/secrets/api.sock"},
		{"CONSUL_HTTP_ADDR", "127.0.0.1:8500"},
		{"CONSUL_HTTP_ADDR", "http://127.0.0.1:8500"},
		{"CONSUL_HTTP_ADDR", "https://consul.example.com:8501"},
		{"CONSUL_HTTP_ADDR", "unix:///var/run/consul.sock"},
	}
	for _, tt := range tests {
		if _, _, err := load(minimal().with(tt[0], tt[1])); err != nil {
			t.Errorf("%s=%q: %v", tt[0], tt[1], err)
		}
	}
}

// Every bad setting is reported with both its variable and its flag, so that the operator
// finds it whichever way it was set.
func TestLoadBadSettings(t *testing.T) {
	tests := []struct {
		name string
		env  env // replaces minimal()
		want string
	}{
		{"missing url", env{}, "ALBATROS_URL (-url)"},
		{"url without scheme", env{"ALBATROS_URL": "ci.example.com"}, "ALBATROS_URL (-url)"},
		{"url without host", env{"ALBATROS_URL": "https://"}, "ALBATROS_URL (-url)"},
		{"url not http", env{"ALBATROS_URL": "ftp://ci.example.com"}, "ALBATROS_URL (-url)"},
		{"addr without port", minimal().with("ALBATROS_ADDR", "localhost"), "ALBATROS_ADDR (-addr)"},
		{"addr is a URL", minimal().with("ALBATROS_ADDR", "http://localhost:8080"), "ALBATROS_ADDR (-addr)"},
		{"namespace with a space", minimal().with("ALBATROS_NAMESPACE", "my ns"), "ALBATROS_NAMESPACE (-namespace)"},
		{"namespace with an underscore", minimal().with("ALBATROS_NAMESPACE", "my_ns"), "ALBATROS_NAMESPACE (-namespace)"},
		{"namespace too long", minimal().with("ALBATROS_NAMESPACE", strings.Repeat("a", 129)), "ALBATROS_NAMESPACE (-namespace)"},
		{"unknown builder", minimal().with("ALBATROS_BUILDERS", "builder,kaniko"), "ALBATROS_BUILDERS (-builders)"},
		{"bad driver", minimal().with("ALBATROS_BUILDER_DRIVER", "podman"), "ALBATROS_BUILDER_DRIVER (-builder-driver)"},
		{"builder var without value", minimal().with("ALBATROS_BUILDER_VARS", "cpu=1,memory"), "ALBATROS_BUILDER_VARS (-builder-vars)"},
		{"builder var without name", minimal().with("ALBATROS_BUILDER_VARS", "=1"), "ALBATROS_BUILDER_VARS (-builder-vars)"},
		{"absolute consul prefix", minimal().with("ALBATROS_CONSUL_PREFIX", "/albatros/"), "ALBATROS_CONSUL_PREFIX (-consul-prefix)"},
		{"gitea url without scheme", minimal().with("ALBATROS_GITEA_URL", "gitea:3000"), "ALBATROS_GITEA_URL (-gitea-url)"},
		{"github url without scheme", minimal().with("ALBATROS_GITHUB_URL", "api.github.com"), "ALBATROS_GITHUB_URL (-github-url)"},
		{"bad hook token secrets", minimal().with("ALBATROS_HOOK_TOKEN_SECRETS", "yes"), "ALBATROS_HOOK_TOKEN_SECRETS (-hook-token-secrets)"},
		{"read timeout without unit", minimal().with("ALBATROS_READ_TIMEOUT", "30"), "ALBATROS_READ_TIMEOUT (-read-timeout)"},
		{"read timeout too short", minimal().with("ALBATROS_READ_TIMEOUT", "10ms"), "ALBATROS_READ_TIMEOUT (-read-timeout)"},
		{"queue bytes too few", minimal().with("ALBATROS_QUEUE_BYTES", "512KiB"), "ALBATROS_QUEUE_BYTES (-queue-bytes)"},
		{"queue bytes not a size", minimal().with("ALBATROS_QUEUE_BYTES", "64MB"), "ALBATROS_QUEUE_BYTES (-queue-bytes)"},
		{"queue bytes negative", minimal().with("ALBATROS_QUEUE_BYTES", "-1GiB"), "ALBATROS_QUEUE_BYTES (-queue-bytes)"},
		{"reconcile branches too short", minimal().with("ALBATROS_RECONCILE_BRANCHES", "30s"), "ALBATROS_RECONCILE_BRANCHES (-reconcile-branches)"},
		{"untrusted namespace is the builders'", minimal().with("ALBATROS_UNTRUSTED_NAMESPACE", "ci"), "ALBATROS_UNTRUSTED_NAMESPACE (-untrusted-namespace)"},
		{"untrusted pool without namespace", minimal().with("ALBATROS_UNTRUSTED_NODE_POOL", "forks"), "ALBATROS_UNTRUSTED_NAMESPACE (-untrusted-namespace)"},
		{"untrusted network not a mode", minimal().with("ALBATROS_UNTRUSTED_NAMESPACE", "forks", "ALBATROS_UNTRUSTED_NETWORK", "wide open"), "ALBATROS_UNTRUSTED_NETWORK (-untrusted-network)"},
		{"metrics addr without port", minimal().with("ALBATROS_METRICS_ADDR", "localhost"), "ALBATROS_METRICS_ADDR (-metrics-addr)"},
		{"pprof addr without port", minimal().with("ALBATROS_PPROF_ADDR", "localhost"), "ALBATROS_PPROF_ADDR (-pprof-addr)"},
		{"bad log level", minimal().with("ALBATROS_LOG_LEVEL", "verbose"), "ALBATROS_LOG_LEVEL (-log-level)"},
		{"bad log format", minimal().with("ALBATROS_LOG_FORMAT", "logfmt"), "ALBATROS_LOG_FORMAT (-log-format)"},
		// The Nomad and Consul variables have no flag: only the variable can be named.
		{"nomad addr not a URL", minimal().with("NOMAD_ADDR", "127.0.0.1:4646"), "NOMAD_ADDR"},
		{"nomad addr not http", minimal().with("NOMAD_ADDR", "tcp://127.0.0.1:4646"), "NOMAD_ADDR"},
		{"nomad socket not absolute", minimal().with("NOMAD_ADDR", "unix://secrets/api.sock"), "NOMAD_ADDR"},
		{"consul addr without port", minimal().with("CONSUL_HTTP_ADDR", "localhost"), "CONSUL_HTTP_ADDR"},
		{"consul addr odd scheme", minimal().with("CONSUL_HTTP_ADDR", "tcp://127.0.0.1:8500"), "CONSUL_HTTP_ADDR"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _, err := load(tt.env)
			if err == nil {
				t.Fatalf("Load = %+v, want an error naming %s", c, tt.want)
			}
			if c != nil {
				t.Errorf("Load returned a config with its error: %+v", c)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not name %s", err, tt.want)
			}
			if n := len(strings.Split(err.Error(), "\n")); n != 1 {
				t.Errorf("one bad setting gave %d errors: %q", n, err)
			}
		})
	}
}

// The same bad settings given by flag are reported the same way.
func TestLoadBadFlag(t *testing.T) {
	_, _, err := load(minimal(), "-addr", "nowhere")
	if err == nil || !strings.Contains(err.Error(), "ALBATROS_ADDR (-addr)") {
		t.Errorf("Load(-addr nowhere) = %v, want an error naming ALBATROS_ADDR (-addr)", err)
	}
}

func TestLoadReportsEveryBadSettingAtOnce(t *testing.T) {
	e := env{
		// ALBATROS_URL missing.
		"ALBATROS_ADDR":           "localhost",
		"ALBATROS_NAMESPACE":      "bad ns",
		"ALBATROS_BUILDERS":       "kaniko",
		"ALBATROS_BUILDER_DRIVER": "podman",
		"ALBATROS_BUILDER_VARS":   "novalue",
		"ALBATROS_LOG_LEVEL":      "loud",
		"ALBATROS_LOG_FORMAT":     "xml",
		"NOMAD_ADDR":              "nomad:4646",
		"CONSUL_HTTP_ADDR":        "consul",
	}
	_, _, err := load(e)
	if err == nil {
		t.Fatal("Load succeeded, want every bad setting reported")
	}
	for _, want := range []string{
		"ALBATROS_URL (-url)",
		"ALBATROS_ADDR (-addr)",
		"ALBATROS_NAMESPACE (-namespace)",
		"ALBATROS_BUILDERS (-builders)",
		"ALBATROS_BUILDER_DRIVER (-builder-driver)",
		"ALBATROS_BUILDER_VARS (-builder-vars)",
		"ALBATROS_LOG_LEVEL (-log-level)",
		"ALBATROS_LOG_FORMAT (-log-format)",
		"NOMAD_ADDR:",
		"CONSUL_HTTP_ADDR:",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s:\n%v", want, err)
		}
	}
	if n := len(strings.Split(err.Error(), "\n")); n != 10 {
		t.Errorf("got %d errors, want 10:\n%v", n, err)
	}
}

func TestLoadUnexpectedArgument(t *testing.T) {
	_, _, err := load(minimal(), "serve")
	if err == nil || !strings.Contains(err.Error(), `"serve"`) {
		t.Errorf("Load(serve) = %v, want an error naming the argument", err)
	}
}

func TestLoadUnknownFlag(t *testing.T) {
	_, stderr, err := load(minimal(), "-nomad-addr", "http://x")
	if err == nil {
		t.Fatal("Load(-nomad-addr) succeeded, want an error")
	}
	if !strings.Contains(stderr, "-nomad-addr") {
		t.Errorf("stderr does not name the unknown flag:\n%s", stderr)
	}
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadGiteaTokenFile(t *testing.T) {
	file := writeFile(t, "  file-token\n")

	c := mustLoad(t, minimal().with("ALBATROS_GITEA_TOKEN_FILE", file))
	if c.GiteaToken != "file-token" {
		t.Errorf("token from file = %q, want file-token (trimmed)", c.GiteaToken)
	}

	c = mustLoad(t, minimal().with("ALBATROS_GITEA_TOKEN_FILE", file, "ALBATROS_GITEA_TOKEN", "env-token"))
	if c.GiteaToken != "env-token" {
		t.Errorf("token with variable and file = %q, want the variable's env-token", c.GiteaToken)
	}

	c = mustLoad(t, minimal().with("ALBATROS_GITEA_TOKEN_FILE", file), "-gitea-token", "flag-token")
	if c.GiteaToken != "flag-token" {
		t.Errorf("token with flag and file = %q, want the flag's flag-token", c.GiteaToken)
	}
}

func TestLoadGiteaTokenFileMissing(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-token")
	_, _, err := load(minimal().with("ALBATROS_GITEA_TOKEN_FILE", missing))
	if err == nil {
		t.Fatal("Load with a missing token file succeeded")
	}
	if !strings.Contains(err.Error(), "ALBATROS_GITEA_TOKEN_FILE") {
		t.Errorf("error %q does not name ALBATROS_GITEA_TOKEN_FILE", err)
	}
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("error %q does not wrap os.ErrNotExist", err)
	}

	// The file is not read when the token is given directly.
	if _, _, err := load(minimal().with("ALBATROS_GITEA_TOKEN_FILE", missing, "ALBATROS_GITEA_TOKEN", "t")); err != nil {
		t.Errorf("Load with a token and a missing token file: %v", err)
	}
}

func TestLoadHelp(t *testing.T) {
	const secret = "s3cr3t-gitea-token-value"
	const ghSecret = "ghp_s3cr3t-github-token-value"
	e := minimal().with(
		"ALBATROS_GITEA_TOKEN", secret,
		"ALBATROS_GITHUB_TOKEN", ghSecret,
		"ALBATROS_NAMESPACE", "from-env-namespace",
	)
	c, stderr, err := load(e, "-h")
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("Load(-h) = %v, %v; want flag.ErrHelp", c, err)
	}
	for _, want := range []string{
		"ALBATROS_ADDR",
		"ALBATROS_URL",
		"ALBATROS_NAMESPACE",
		"ALBATROS_BUILDERS",
		"ALBATROS_BUILDER_DRIVER",
		"ALBATROS_BUILDER_VARS",
		"ALBATROS_CONSUL_PREFIX",
		"ALBATROS_GITEA_URL",
		"ALBATROS_GITEA_TOKEN",
		"ALBATROS_GITEA_TOKEN_FILE",
		"ALBATROS_GITHUB_URL",
		"ALBATROS_GITHUB_TOKEN",
		"ALBATROS_GITHUB_TOKEN_FILE",
		"ALBATROS_LOG_LEVEL",
		"ALBATROS_LOG_FORMAT",
		"NOMAD_ADDR",
		"CONSUL_HTTP_ADDR",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("usage does not mention %s", want)
		}
	}
	if strings.Contains(stderr, secret) || strings.Contains(stderr, ghSecret) {
		t.Errorf("usage prints the value of a token:\n%s", stderr)
	}
	// Non-secret values from the environment are shown as defaults.
	if !strings.Contains(stderr, "from-env-namespace") {
		t.Errorf("usage does not show ALBATROS_NAMESPACE's value as the default:\n%s", stderr)
	}
}

func TestLoggerFormat(t *testing.T) {
	for _, tt := range []struct {
		format, want string
	}{
		{"json", `"msg":"hello"`},
		{"text", "msg=hello"},
	} {
		c := mustLoad(t, minimal().with("ALBATROS_LOG_FORMAT", tt.format, "ALBATROS_LOG_LEVEL", "warn"))
		var buf bytes.Buffer
		log := c.Logger(&buf)
		log.Info("hidden")
		log.Warn("hello")
		if got := buf.String(); !strings.Contains(got, tt.want) || strings.Contains(got, "hidden") {
			t.Errorf("%s logger at warn wrote %q, want %s and no info line", tt.format, got, tt.want)
		}
	}
}

// Installing through Gitea needs the OAuth2 application, the bot's Gitea account and a
// secret key: with the client id or secret given, every missing one is named; without
// them, a token-only setup keeps working and the home page says why installing is off.
func TestLoadInstallSettings(t *testing.T) {
	key := strings.Repeat("k", 32)
	full := minimal().with("ALBATROS_GITEA_URL", "https://git.example.com", "ALBATROS_GITEA_TOKEN", "bot-token",
		"ALBATROS_GITEA_CLIENT_ID", "client", "ALBATROS_GITEA_CLIENT_SECRET", "client-secret", "ALBATROS_SECRET_KEY", key)
	c := mustLoad(t, full)
	if ok, why := c.InstallEnabled(); !ok || why != "" || string(c.SecretKey) != key || c.GiteaClientSecret != "client-secret" || c.HookCheckInterval != 10*time.Minute {
		t.Errorf("full install settings: enabled %v (%q), %+v", ok, why, c)
	}
	c = mustLoad(t, minimal())
	if ok, why := c.InstallEnabled(); ok || !strings.Contains(why, "ALBATROS_GITEA_CLIENT_ID") {
		t.Errorf("token-only setup: enabled %v, reason %q", ok, why)
	}
	_, _, err := load(minimal().with("ALBATROS_GITEA_CLIENT_ID", "client"))
	for _, want := range []string{"ALBATROS_GITEA_URL (-gitea-url)", "ALBATROS_GITEA_TOKEN (-gitea-token)", "ALBATROS_GITEA_CLIENT_SECRET (-gitea-client-secret)", "ALBATROS_SECRET_KEY (-secret-key)"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("client id alone: %v, want it to name %s", err, want)
		}
	}
	for name, e := range map[string]env{
		"short key":              full.with("ALBATROS_SECRET_KEY", "short"),
		"short previous key":     full.with("ALBATROS_SECRET_KEY_PREVIOUS", "short"),
		"previous without a key": minimal().with("ALBATROS_SECRET_KEY_PREVIOUS", key),
		"interval without unit":  full.with("ALBATROS_HOOK_CHECK_INTERVAL", "10"),
	} {
		if _, _, err := load(e); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// Secrets come from files too, and are never printed.
	dir := t.TempDir()
	keyFile, secretFile := filepath.Join(dir, "key"), filepath.Join(dir, "secret")
	_ = os.WriteFile(keyFile, []byte(key+"\n"), 0o600)
	_ = os.WriteFile(secretFile, []byte("from-a-file\n"), 0o600)
	fromFiles := minimal().with("ALBATROS_GITEA_URL", "https://git.example.com", "ALBATROS_GITEA_TOKEN", "bot-token",
		"ALBATROS_GITEA_CLIENT_ID", "client", "ALBATROS_GITEA_CLIENT_SECRET_FILE", secretFile, "ALBATROS_SECRET_KEY_FILE", keyFile)
	c, out, err := load(fromFiles, "-h")
	if !errors.Is(err, flag.ErrHelp) || strings.Contains(out, key) || strings.Contains(out, "from-a-file") {
		t.Errorf("-h prints a secret or fails: %v\n%s", err, out)
	}
	c = mustLoad(t, fromFiles)
	if string(c.SecretKey) != key || c.GiteaClientSecret != "from-a-file" {
		t.Errorf("from files: key %q, client secret %q", c.SecretKey, c.GiteaClientSecret)
	}
}

// The GitHub App: the operator's (its id, key and webhook secret, with the secret key),
// or made through the manifest flow (with the secret key); none by default.
func TestLoadGitHubApp(t *testing.T) {
	key := strings.Repeat("k", 32)
	if c := mustLoad(t, minimal()); c.GitHubApp != "" || c.GitHubWebURL != "https://github.com" {
		t.Errorf("default: app %q, web %q", c.GitHubApp, c.GitHubWebURL)
	}
	dir := t.TempDir()
	pem := filepath.Join(dir, "app.pem")
	if err := os.WriteFile(pem, []byte("-----BEGIN RSA PRIVATE KEY-----\nabc\n-----END RSA PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := mustLoad(t, minimal().with("ALBATROS_GITHUB_APP_ID", "4242", "ALBATROS_GITHUB_APP_KEY_FILE", pem, "ALBATROS_GITHUB_WEBHOOK_SECRET", "new",
		"ALBATROS_GITHUB_WEBHOOK_SECRET_PREVIOUS", "old", "ALBATROS_SECRET_KEY", key, "ALBATROS_GITHUB_CLIENT_ID", "Iv1.x", "ALBATROS_GITHUB_CLIENT_SECRET", "cs",
		"ALBATROS_GITHUB_WEB_URL", "https://ghe.example.com/", "ALBATROS_GITHUB_URL", "https://ghe.example.com/api/v3/"))
	if c.GitHubApp != "env" || c.GitHubAppID != 4242 || !strings.HasSuffix(string(c.GitHubAppKey), "-----END RSA PRIVATE KEY-----") ||
		!slices.Equal(c.GitHubWebhookSecrets, []string{"new", "old"}) || c.GitHubClientID != "Iv1.x" || c.GitHubClientSecret != "cs" || c.GitHubWebURL != "https://ghe.example.com" {
		t.Errorf("the operator's App: %+v", c)
	}
	if c := mustLoad(t, minimal().with("ALBATROS_GITHUB_APP", "manifest", "ALBATROS_SECRET_KEY", key, "ALBATROS_GITHUB_SETUP_CODE", "0123456789abcdef")); c.GitHubApp != "manifest" || c.GitHubSetupCode != "0123456789abcdef" {
		t.Errorf("manifest: %q", c.GitHubApp)
	}
	for name, e := range map[string]env{
		"ALBATROS_GITHUB_APP_KEY":        minimal().with("ALBATROS_GITHUB_APP_ID", "4242", "ALBATROS_GITHUB_WEBHOOK_SECRET", "s", "ALBATROS_SECRET_KEY", key),
		"ALBATROS_GITHUB_WEBHOOK_SECRET": minimal().with("ALBATROS_GITHUB_APP_ID", "4242", "ALBATROS_GITHUB_APP_KEY", "pem", "ALBATROS_SECRET_KEY", key),
		"ALBATROS_SECRET_KEY":            minimal().with("ALBATROS_GITHUB_APP", "manifest", "ALBATROS_GITHUB_SETUP_CODE", "0123456789abcdef"),
		"ALBATROS_GITHUB_SETUP_CODE":     minimal().with("ALBATROS_GITHUB_APP", "manifest", "ALBATROS_SECRET_KEY", key, "ALBATROS_GITHUB_SETUP_CODE", "short"),
		"ALBATROS_GITHUB_APP_ID":         minimal().with("ALBATROS_GITHUB_APP_ID", "-1", "ALBATROS_GITHUB_APP_KEY", "pem", "ALBATROS_GITHUB_WEBHOOK_SECRET", "s", "ALBATROS_SECRET_KEY", key),
		"ALBATROS_GITHUB_APP":            minimal().with("ALBATROS_GITHUB_APP", "yes"),
		"ALBATROS_GITHUB_CLIENT_ID":      minimal().with("ALBATROS_GITHUB_APP_ID", "1", "ALBATROS_GITHUB_APP_KEY", "pem", "ALBATROS_GITHUB_WEBHOOK_SECRET", "s", "ALBATROS_SECRET_KEY", key, "ALBATROS_GITHUB_CLIENT_ID", "x"),
		"ALBATROS_GITHUB_WEB_URL":        minimal().with("ALBATROS_GITHUB_WEB_URL", "ftp://x"),
	} {
		if _, _, err := load(e); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: Load = %v, want an error naming it", name, err)
		}
	}
	// The secrets are never printed by -h.
	_, out, _ := load(minimal().with("ALBATROS_GITHUB_APP_KEY", "pem-secret-value", "ALBATROS_GITHUB_WEBHOOK_SECRET", "whsec-value"), "-h")
	if strings.Contains(out, "pem-secret-value") || strings.Contains(out, "whsec-value") {
		t.Error("-h prints a GitHub secret")
	}
}
