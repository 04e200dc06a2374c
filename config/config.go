// Package config reads the bot's settings from flags and the environment (a flag wins over
// its variable), validates them once at start, and says which setting is wrong when one is.
// Nomad and Consul are configured by their own standard variables (NOMAD_ADDR, NOMAD_TOKEN,
// CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN, …), read by their official clients; they are checked
// here too. Secrets may be given in files (…_FILE).
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/albatros-ci/albatros/archive"
	"github.com/albatros-ci/albatros/hcl"
	"github.com/albatros-ci/albatros/orchestrator"
	"github.com/albatros-ci/albatros/registry"
	"github.com/albatros-ci/albatros/seal"
)

// Config is every setting of the bot.
type Config struct {
	// Addr is the address the HTTP server listens on.
	Addr string
	// URL is the bot's public base URL, used in the links it writes on the forge.
	URL string
	// Namespace is the Nomad namespace of the shipped builders.
	Namespace string
	// Builders are the shipped builders to register at start.
	Builders []string
	// BuilderVars are HCL variables for the shipped builders (driver included).
	BuilderVars map[string]string
	// UntrustedVars, when set, are the shipped builders' variables for the builds of code
	// not trusted (forks, strangers): another namespace ("namespace"), and maybe another
	// node pool and network mode. The shipped default builder is registered there too.
	UntrustedVars map[string]string
	// BuilderNamespaces are the Nomad namespaces the owners of an installed organization
	// may choose a builder from (Namespace by default).
	BuilderNamespaces []string
	// ConsulPrefix is the KV prefix of the repository registry.
	ConsulPrefix string
	// GiteaURL and GiteaToken are used for repositories whose entry names no Gitea.
	GiteaURL   string
	GiteaToken string
	// GitHubURL and GitHubToken are used for repositories on GitHub whose entry has none.
	GitHubURL   string
	GitHubToken string
	// GitHubApp says where the bot's GitHub App comes from: "env" (GitHubAppID and the
	// settings after it), "manifest" (made through the manifest flow, kept in Consul),
	// or "" (no App). GitHubWebURL is the GitHub it lives on (https://github.com, or a
	// GitHub Enterprise Server's web URL).
	GitHubApp            string
	GitHubWebURL         string
	GitHubAppID          int64
	GitHubAppKey         []byte
	GitHubWebhookSecrets []string
	GitHubClientID       string
	GitHubClientSecret   string
	// GitHubAccounts, when set, are the only GitHub accounts (logins or ids) whose
	// installations of the App the bot records.
	GitHubAccounts []string
	// GitHubSetupCode is what an operator gives to create the App through the manifest flow.
	GitHubSetupCode string
	// NomadReadToken, when set, is the token of the event stream alone, which Nomad 1.6
	// takes no workload identity for; every other request has NOMAD_TOKEN.
	NomadReadToken string
	// GiteaClientID and GiteaClientSecret are the bot's OAuth2 application on Gitea, through
	// which owners log in to install Albatros and manage it.
	GiteaClientID     string
	GiteaClientSecret string
	// SecretKey seals what the bot stores and its session cookies; PreviousSecretKey, during
	// a key rotation, still opens what the previous key sealed.
	SecretKey         []byte
	PreviousSecretKey []byte
	// HookCheckInterval is how often the installations' webhooks and access are checked.
	HookCheckInterval time.Duration
	// ReconcileInterval is how often the reconciler looks for heads that were never built;
	// 0 runs it at start only.
	ReconcileInterval time.Duration
	// ScheduleInterval is how often the schedules' leader looks for the slots due.
	ScheduleInterval time.Duration
	// ReconcileBranches is how recent a branch's head commit must be for the reconciler to
	// look at it, besides the default branch.
	ReconcileBranches time.Duration
	// TokenSecrets lets /hook?token= deliveries without a verified signature give builds the
	// repository's secrets (the original's behaviour; the token does not prove the sender).
	TokenSecrets bool
	// ReadTimeout bounds the time a client may take to send a whole request.
	ReadTimeout time.Duration
	// QueueBytes bounds what the answered deliveries waiting their turn hold.
	QueueBytes int64
	// LogStreams bounds the build logs followed in Nomad at once for their readers, and
	// LogViewers the readers of logs served at once (past either, a log request is 503).
	LogStreams, LogViewers int
	// Archive is the URL of the archive of finished builds (file:///dir or s3://bucket/prefix),
	// or "none"; ArchiveRetention how long an archived build is kept (0: for ever);
	// ArchiveMaxLog the most bytes of a log archived.
	Archive          string
	ArchiveRetention time.Duration
	ArchiveMaxLog    int64
	// PprofAddr, when set, is an address of its own where Go's profiler (net/http/pprof)
	// answers; off by default.
	PprofAddr string
	// MetricsAddr is where /metrics is served: "" on the main listener, "none" nowhere,
	// else a listener of its own (host:port).
	MetricsAddr string
	LogLevel    slog.Level
	LogFormat   string
}

// setting is one configurable value: a flag and the environment variable behind it.
type setting struct {
	flag, env, def, usage string
	secret                bool // may be read from a file named by env+"_FILE"; never printed
	value                 string
}

func settings() []*setting {
	return []*setting{
		{flag: "addr", env: "ALBATROS_ADDR", def: "127.0.0.1:8080", usage: "address to listen on (host:port)"},
		{flag: "url", env: "ALBATROS_URL", usage: "public base URL of the bot, for the links in commit statuses (required), e.g. https://ci.example.com"},
		{flag: "namespace", env: "ALBATROS_NAMESPACE", def: "ci", usage: "Nomad namespace of the shipped builders (created if missing)"},
		{flag: "builders", env: "ALBATROS_BUILDERS", def: hcl.DefaultBuilder, usage: "shipped builders to register at start, comma-separated: builder, nixcache; or none"},
		{flag: "builder-driver", env: "ALBATROS_BUILDER_DRIVER", def: "exec", usage: "task driver of the default builder: exec, raw_exec or docker"},
		{flag: "untrusted-namespace", env: "ALBATROS_UNTRUSTED_NAMESPACE", usage: "Nomad namespace where the builds of code not trusted (forks, strangers: no secrets) run on the shipped default builder, registered there too; empty: with the others"},
		{flag: "untrusted-node-pool", env: "ALBATROS_UNTRUSTED_NODE_POOL", usage: "Nomad node pool of those builds (with ALBATROS_UNTRUSTED_NAMESPACE)"},
		{flag: "untrusted-network", env: "ALBATROS_UNTRUSTED_NETWORK", usage: "network mode of those builds: host, bridge or cni/<name> (with ALBATROS_UNTRUSTED_NAMESPACE)"},
		{flag: "builder-vars", env: "ALBATROS_BUILDER_VARS", usage: "more HCL variables for the shipped builders, name=value[,name=value…] (cpu, memory, image, datacenters, store)"},
		{flag: "builder-namespaces", env: "ALBATROS_BUILDER_NAMESPACES", usage: "Nomad namespaces, comma-separated, whose jobs the owners of an installed organization may choose as their builder (default: the namespace of the shipped builders)"},
		{flag: "consul-prefix", env: "ALBATROS_CONSUL_PREFIX", def: registry.DefaultPrefix, usage: "Consul KV prefix of the repository registry"},
		{flag: "gitea-url", env: "ALBATROS_GITEA_URL", usage: "Gitea URL for repositories whose registry entry names none"},
		{flag: "gitea-token", env: "ALBATROS_GITEA_TOKEN", secret: true, usage: "Gitea token for repositories whose registry entry has none (or ALBATROS_GITEA_TOKEN_FILE)"},
		{flag: "gitea-client-id", env: "ALBATROS_GITEA_CLIENT_ID", usage: "client id of the bot's OAuth2 application on Gitea (redirect URI <ALBATROS_URL>/login/gitea/callback); with the client secret and the secret key, enables installing Albatros on organizations"},
		{flag: "gitea-client-secret", env: "ALBATROS_GITEA_CLIENT_SECRET", secret: true, usage: "client secret of the bot's OAuth2 application on Gitea (or ALBATROS_GITEA_CLIENT_SECRET_FILE)"},
		{flag: "secret-key", env: "ALBATROS_SECRET_KEY", secret: true, usage: "at least 32 random bytes: seals the secrets the bot keeps in Consul and its session cookies (or ALBATROS_SECRET_KEY_FILE)"},
		{flag: "previous-secret-key", env: "ALBATROS_SECRET_KEY_PREVIOUS", secret: true, usage: "the secret key before a rotation: still opens what it sealed, which the bot seals again with the current key (or ALBATROS_SECRET_KEY_PREVIOUS_FILE)"},
		{flag: "hook-check-interval", env: "ALBATROS_HOOK_CHECK_INTERVAL", def: "10m", usage: "how often the installations' webhooks and the bot's access are checked and repaired"},
		{flag: "schedule-interval", env: "ALBATROS_SCHEDULE_INTERVAL", def: "15s", usage: "how often the leader of the schedules looks for the slots due: a scheduled build starts within this of its slot"},
		{flag: "reconcile-interval", env: "ALBATROS_RECONCILE_INTERVAL", def: "5m", usage: "how often the heads of default branches, recent branches and open pull requests are compared with their statuses, to build those whose delivery never arrived (0: at start only)"},
		{flag: "reconcile-branches", env: "ALBATROS_RECONCILE_BRANCHES", def: "24h", usage: "how recent a branch's head commit must be for the reconciler to look at it, besides the default branch (Gitea lists branches by their head commit's date)"},
		{flag: "github-url", env: "ALBATROS_GITHUB_URL", usage: "GitHub REST API URL for repositories on GitHub whose entry names none (default github.com; GitHub Enterprise: https://host/api/v3/)"},
		{flag: "nomad-read-token", env: "ALBATROS_NOMAD_READ_TOKEN", secret: true, usage: "Nomad token for the event stream alone, which Nomad 1.6 does not take a workload identity for, when NOMAD_TOKEN is one (or ALBATROS_NOMAD_READ_TOKEN_FILE; policy hcl/acl/nomad-read.hcl)"},
		{flag: "github-token", env: "ALBATROS_GITHUB_TOKEN", secret: true, usage: "GitHub token for repositories on GitHub whose entry has none (or ALBATROS_GITHUB_TOKEN_FILE)"},
		{flag: "github-web-url", env: "ALBATROS_GITHUB_WEB_URL", def: "https://github.com", usage: "web URL of the GitHub the bot's GitHub App lives on (a GitHub Enterprise Server: https://host)"},
		{flag: "github-app", env: "ALBATROS_GITHUB_APP", usage: "the bot's GitHub App: manifest (created in one click on the bot's /github/setup page, kept sealed in Consul; needs ALBATROS_SECRET_KEY), or empty: from ALBATROS_GITHUB_APP_ID and its settings when set, else none"},
		{flag: "github-app-id", env: "ALBATROS_GITHUB_APP_ID", usage: "id of the bot's GitHub App, when the operator created it (with ALBATROS_GITHUB_APP_KEY and ALBATROS_GITHUB_WEBHOOK_SECRET)"},
		{flag: "github-app-key", env: "ALBATROS_GITHUB_APP_KEY", secret: true, usage: "the GitHub App's private key, PEM (or ALBATROS_GITHUB_APP_KEY_FILE)"},
		{flag: "github-webhook-secret", env: "ALBATROS_GITHUB_WEBHOOK_SECRET", secret: true, usage: "the GitHub App's webhook secret (or ALBATROS_GITHUB_WEBHOOK_SECRET_FILE)"},
		{flag: "github-webhook-secret-previous", env: "ALBATROS_GITHUB_WEBHOOK_SECRET_PREVIOUS", secret: true, usage: "the App's webhook secret before a rotation, still accepted (or ALBATROS_GITHUB_WEBHOOK_SECRET_PREVIOUS_FILE)"},
		{flag: "github-setup-code", env: "ALBATROS_GITHUB_SETUP_CODE", secret: true, usage: "with ALBATROS_GITHUB_APP=manifest: the code, at least 16 characters, that /github/setup asks before it creates the bot's GitHub App (or ALBATROS_GITHUB_SETUP_CODE_FILE)"},
		{flag: "github-accounts", env: "ALBATROS_GITHUB_ACCOUNTS", usage: "the only GitHub accounts (logins or numeric ids, comma-separated) whose installations of the App the bot builds; empty: every account that installs it (a public App: anyone on GitHub)"},
		{flag: "github-client-id", env: "ALBATROS_GITHUB_CLIENT_ID", usage: "client id of the GitHub App, for signing in with GitHub (callback URL <ALBATROS_URL>/login/github/callback)"},
		{flag: "github-client-secret", env: "ALBATROS_GITHUB_CLIENT_SECRET", secret: true, usage: "client secret of the GitHub App (or ALBATROS_GITHUB_CLIENT_SECRET_FILE)"},
		{flag: "hook-token-secrets", env: "ALBATROS_HOOK_TOKEN_SECRETS", def: "allow", usage: "whether /hook?token= deliveries that are not also signed may give builds the repository's secrets: allow (the original's behaviour) or deny; the token proves only that the caller knows the hook URL, not who sent the event"},
		{flag: "read-timeout", env: "ALBATROS_READ_TIMEOUT", def: "30s", usage: "longest time a client may take to send a whole request, headers and body (slower clients are cut off)"},
		{flag: "queue-bytes", env: "ALBATROS_QUEUE_BYTES", def: "96MiB", usage: "most memory the answered deliveries waiting their turn or being handled may hold, all together (each counted about 4 KiB: its event, not its body nor its entry); past it a delivery is answered 503. A number of bytes, or with KiB, MiB or GiB"},
		{flag: "log-streams", env: "ALBATROS_LOG_STREAMS", def: "24", usage: "most build logs followed in Nomad at once for the log pages and /build (two connections each while the build runs: Nomad refuses a client's 101st, and the bot's dispatches and reports share them); past it a new log is answered 503"},
		{flag: "log-viewers", env: "ALBATROS_LOG_VIEWERS", def: "4096", usage: "most readers of the log pages and /build served at once (about 40 KiB each); past it a reader is answered 503"},
		{flag: "archive", env: "ALBATROS_ARCHIVE", def: "file:///var/lib/albatros", usage: "where finished builds (their record and masked logs) are kept, so that their links outlive Nomad's garbage collection: file:///dir (one bot), s3://bucket/prefix (replicas share it; endpoint, region and credentials from AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or ~/.aws/credentials), or none (the links break once Nomad collects a build)"},
		{flag: "archive-retention", env: "ALBATROS_ARCHIVE_RETENTION", def: "90d", usage: "how long archived builds are kept, by the day they ended: a duration (720h) or days (90d); 0 keeps them all"},
		{flag: "archive-max-log", env: "ALBATROS_ARCHIVE_MAX_LOG", def: "64MiB", usage: "most of a build's log (each of stdout and stderr) archived: a longer one is kept cut, saying so"},
		{flag: "metrics-addr", env: "ALBATROS_METRICS_ADDR", usage: "where the Prometheus metrics are served at /metrics: empty for the main listener, host:port for a listener of their own, none for nowhere"},
		{flag: "pprof-addr", env: "ALBATROS_PPROF_ADDR", usage: "address (host:port) of a listener of its own serving Go's profiler at /debug/pprof/; off when empty. Keep it on loopback: profiles show what the bot holds"},
		{flag: "log-level", env: "ALBATROS_LOG_LEVEL", def: "info", usage: "log level: debug, info, warn or error"},
		{flag: "log-format", env: "ALBATROS_LOG_FORMAT", def: "text", usage: "log format: text or json"},
	}
}

// standardEnv documents the variables the official Nomad and Consul clients read.
const standardEnv = `
Nomad and Consul are reached as their own clients reach them:
  NOMAD_ADDR, NOMAD_TOKEN, NOMAD_REGION, NOMAD_NAMESPACE (ignored: builds use -namespace),
  NOMAD_CACERT, NOMAD_CLIENT_CERT, NOMAD_CLIENT_KEY, NOMAD_TLS_SERVER_NAME, NOMAD_SKIP_VERIFY
  CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN (or CONSUL_HTTP_TOKEN_FILE), CONSUL_HTTP_SSL,
  CONSUL_CACERT, CONSUL_CLIENT_CERT, CONSUL_CLIENT_KEY, CONSUL_NAMESPACE, CONSUL_PARTITION
`

// Load reads the settings from args (without the program name) and getenv. It returns
// flag.ErrHelp after printing the usage when asked for help.
func Load(args []string, getenv func(string) string, stderr io.Writer) (*Config, error) {
	all := settings()
	fs := flag.NewFlagSet("albatros-bot", flag.ContinueOnError)
	fs.SetOutput(stderr)
	for _, s := range all {
		def := s.def
		// A secret's value never becomes a flag default: -h prints defaults.
		if v := getenv(s.env); v != "" && !s.secret {
			def = v
		}
		fs.StringVar(&s.value, s.flag, def, fmt.Sprintf("%s [$%s]", s.usage, s.env))
	}
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: albatros-bot [flags]\n\nAlbatros turns forge webhooks into Nomad builds and reports their results on the forge.\nEvery flag can also be set by the environment variable shown after it.\n\nFlags:\n")
		fs.PrintDefaults()
		fmt.Fprint(stderr, standardEnv)
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (settings are flags or environment variables; see -h)", fs.Arg(0))
	}
	get := map[string]*setting{}
	var fileErrs []error
	for _, s := range all {
		get[s.flag] = s
		if s.secret && s.value == "" {
			s.value = getenv(s.env)
		}
		if s.secret && s.value == "" {
			if file := getenv(s.env + "_FILE"); file != "" {
				b, err := os.ReadFile(file)
				if err != nil {
					fileErrs = append(fileErrs, fmt.Errorf("%s_FILE: %w", s.env, err))
					continue
				}
				s.value = strings.TrimSpace(string(b))
			}
		}
	}
	c, err := validate(get, getenv)
	if err != nil || len(fileErrs) > 0 {
		return nil, errors.Join(append(fileErrs, err)...)
	}
	return c, nil
}

func validate(s map[string]*setting, getenv func(string) string) (*Config, error) {
	var errs []error
	bad := func(name string, format string, args ...any) {
		st := s[name]
		errs = append(errs, fmt.Errorf("%s (-%s): %s", st.env, st.flag, fmt.Sprintf(format, args...)))
	}
	c := &Config{
		Addr:           s["addr"].value,
		URL:            strings.TrimSuffix(s["url"].value, "/"),
		Namespace:      s["namespace"].value,
		ConsulPrefix:   s["consul-prefix"].value,
		GiteaURL:       strings.TrimSuffix(s["gitea-url"].value, "/"),
		GiteaToken:     s["gitea-token"].value,
		GitHubURL:      strings.TrimSuffix(s["github-url"].value, "/"),
		GitHubToken:    s["github-token"].value,
		NomadReadToken: s["nomad-read-token"].value,
		LogFormat:      s["log-format"].value,
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		bad("addr", "%q is not host:port", c.Addr)
	}
	if c.MetricsAddr = s["metrics-addr"].value; c.MetricsAddr != "" && c.MetricsAddr != "none" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			bad("metrics-addr", "%q is not host:port (or none)", c.MetricsAddr)
		}
	}
	if c.PprofAddr = s["pprof-addr"].value; c.PprofAddr != "" {
		if _, _, err := net.SplitHostPort(c.PprofAddr); err != nil {
			bad("pprof-addr", "%q is not host:port", c.PprofAddr)
		}
	}
	if c.URL == "" {
		bad("url", "is required: the public URL at which the forge's users reach the bot")
	} else if err := httpURL(c.URL); err != nil {
		bad("url", "%v", err)
	}
	if !orchestrator.ValidNamespace(c.Namespace) {
		bad("namespace", "%q is not a Nomad namespace name", c.Namespace)
	}
	for b := range strings.SplitSeq(s["builders"].value, ",") {
		b = strings.TrimSpace(b)
		if b == "" || b == "none" {
			continue
		}
		if _, ok := hcl.Builders[b]; !ok {
			bad("builders", "unknown builder %q (shipped: builder, nixcache)", b)
		}
		c.Builders = append(c.Builders, b)
	}
	vars, err := hcl.ParseVars(s["builder-vars"].value)
	if err != nil {
		bad("builder-vars", "%v", err)
	}
	c.BuilderVars = vars
	if c.BuilderVars == nil {
		c.BuilderVars = map[string]string{}
	}
	driver := s["builder-driver"].value
	if !slices.Contains([]string{"exec", "raw_exec", "docker"}, driver) {
		bad("builder-driver", "%q is not exec, raw_exec or docker", driver)
	}
	c.BuilderVars["driver"] = driver
	for ns := range strings.SplitSeq(s["builder-namespaces"].value, ",") {
		if ns = strings.TrimSpace(ns); ns == "" {
			continue
		}
		if !orchestrator.ValidNamespace(ns) {
			bad("builder-namespaces", "%q is not a Nomad namespace name", ns)
		}
		c.BuilderNamespaces = append(c.BuilderNamespaces, ns)
	}
	if !slices.Contains(c.BuilderNamespaces, c.Namespace) {
		c.BuilderNamespaces = append([]string{c.Namespace}, c.BuilderNamespaces...)
	}
	c.BuilderVars["namespace"] = c.Namespace
	if ns := s["untrusted-namespace"].value; ns != "" {
		switch {
		case !orchestrator.ValidNamespace(ns):
			bad("untrusted-namespace", "%q is not a Nomad namespace name", ns)
		case ns == c.Namespace:
			bad("untrusted-namespace", "%q is ALBATROS_NAMESPACE: the builds of code not trusted need a namespace of their own", ns)
		}
		c.UntrustedVars = maps.Clone(c.BuilderVars)
		c.UntrustedVars["namespace"] = ns
		if pool := s["untrusted-node-pool"].value; pool != "" {
			if !orchestrator.ValidNamespace(pool) { // node pools are named as namespaces are
				bad("untrusted-node-pool", "%q is not a Nomad node pool name", pool)
			}
			c.UntrustedVars["node_pool"] = pool
		}
		if mode := s["untrusted-network"].value; mode != "" {
			if mode != "host" && mode != "bridge" && mode != "none" && !(strings.HasPrefix(mode, "cni/") && orchestrator.ValidNamespace(mode[4:])) {
				bad("untrusted-network", "%q is not host, bridge, none or cni/<name>", mode)
			}
			c.UntrustedVars["network_mode"] = mode
		}
	} else if s["untrusted-node-pool"].value != "" || s["untrusted-network"].value != "" {
		bad("untrusted-namespace", "ALBATROS_UNTRUSTED_NODE_POOL and _NETWORK need ALBATROS_UNTRUSTED_NAMESPACE")
	}
	if c.ConsulPrefix == "" || strings.HasPrefix(c.ConsulPrefix, "/") {
		bad("consul-prefix", "%q must be a non-empty relative key prefix", c.ConsulPrefix)
	}
	if c.GiteaURL != "" {
		if err := httpURL(c.GiteaURL); err != nil {
			bad("gitea-url", "%v", err)
		}
	}
	if c.GitHubURL != "" {
		if err := httpURL(c.GitHubURL); err != nil {
			bad("github-url", "%v", err)
		}
	}
	for a := range strings.SplitSeq(s["github-accounts"].value, ",") {
		if a = strings.TrimSpace(a); a == "" {
			continue
		}
		if strings.ContainsAny(a, "/ \t\n") || len(a) > 100 {
			bad("github-accounts", "%q is not a GitHub login or id", a)
		}
		c.GitHubAccounts = append(c.GitHubAccounts, a)
	}
	c.GitHubWebURL = strings.TrimSuffix(s["github-web-url"].value, "/")
	if err := httpURL(c.GitHubWebURL); err != nil {
		bad("github-web-url", "%v", err)
	}
	switch mode, id := s["github-app"].value, s["github-app-id"].value; {
	case mode == "manifest" && id != "":
		bad("github-app", "is manifest, but ALBATROS_GITHUB_APP_ID names an App of the operator's: choose one")
	case mode == "manifest":
		c.GitHubApp = mode
		if s["secret-key"].value == "" {
			bad("secret-key", "is required to keep the GitHub App's credentials sealed in Consul (ALBATROS_GITHUB_APP is manifest)")
		}
		// Whoever creates the App owns it, and the App is the bot's access to every account
		// that installs it: only the operator may, with a code of theirs.
		if c.GitHubSetupCode = s["github-setup-code"].value; len(c.GitHubSetupCode) < 16 {
			bad("github-setup-code", "is required with ALBATROS_GITHUB_APP=manifest, at least 16 characters (e.g. openssl rand -hex 16): /github/setup asks it before it creates the App")
		}
		// A rotation of the recorded App's webhook secret: the new one given here wins,
		// the previous one is still accepted.
		for _, name := range []string{"github-webhook-secret", "github-webhook-secret-previous"} {
			if v := s[name].value; v != "" {
				c.GitHubWebhookSecrets = append(c.GitHubWebhookSecrets, v)
			}
		}
	case mode != "":
		bad("github-app", "%q is not manifest (or empty)", mode)
	case id != "":
		c.GitHubApp = "env"
		n, err := strconv.ParseInt(id, 10, 64)
		if err != nil || n <= 0 {
			bad("github-app-id", "%q is not a GitHub App's id", id)
		}
		c.GitHubAppID = n
		for _, need := range []string{"github-app-key", "github-webhook-secret", "secret-key"} {
			if s[need].value == "" {
				bad(need, "is required with ALBATROS_GITHUB_APP_ID")
			}
		}
		c.GitHubAppKey = []byte(s["github-app-key"].value)
		c.GitHubWebhookSecrets = []string{s["github-webhook-secret"].value}
		if p := s["github-webhook-secret-previous"].value; p != "" {
			c.GitHubWebhookSecrets = append(c.GitHubWebhookSecrets, p)
		}
		c.GitHubClientID, c.GitHubClientSecret = s["github-client-id"].value, s["github-client-secret"].value
		if (c.GitHubClientID == "") != (c.GitHubClientSecret == "") {
			bad("github-client-id", "and ALBATROS_GITHUB_CLIENT_SECRET go together")
		}
	}
	c.GiteaClientID = s["gitea-client-id"].value
	c.GiteaClientSecret = s["gitea-client-secret"].value
	if k := s["secret-key"].value; k != "" {
		if len(k) < seal.MinKeyLength {
			bad("secret-key", "is %d bytes; at least %d random bytes are needed (e.g. openssl rand -hex 32)", len(k), seal.MinKeyLength)
		}
		c.SecretKey = []byte(k)
	}
	if k := s["previous-secret-key"].value; k != "" {
		if len(k) < seal.MinKeyLength {
			bad("previous-secret-key", "is %d bytes; at least %d are needed", len(k), seal.MinKeyLength)
		}
		if c.SecretKey == nil {
			bad("previous-secret-key", "is set without ALBATROS_SECRET_KEY, the key that replaces it")
		}
		c.PreviousSecretKey = []byte(k)
	}
	if c.GiteaClientID != "" || c.GiteaClientSecret != "" {
		// Installing needs all of these; name every one that is missing.
		for _, need := range []string{"gitea-url", "gitea-token", "gitea-client-id", "gitea-client-secret", "secret-key"} {
			if s[need].value == "" {
				bad(need, "is required to install Albatros through Gitea's OAuth2 (ALBATROS_GITEA_CLIENT_ID and _SECRET are set)")
			}
		}
	}
	if d, err := time.ParseDuration(s["hook-check-interval"].value); err != nil || d < time.Second {
		bad("hook-check-interval", "%q is not a duration of at least 1s", s["hook-check-interval"].value)
	} else {
		c.HookCheckInterval = d
	}
	if d, err := time.ParseDuration(s["reconcile-interval"].value); err != nil || (d != 0 && d < time.Second) {
		bad("reconcile-interval", "%q is not 0 or a duration of at least 1s", s["reconcile-interval"].value)
	} else {
		c.ReconcileInterval = d
	}
	if d, err := time.ParseDuration(s["schedule-interval"].value); err != nil || d < time.Second || d > 10*time.Minute {
		bad("schedule-interval", "%q is not a duration from 1s to 10m", s["schedule-interval"].value)
	} else {
		c.ScheduleInterval = d
	}
	if d, err := time.ParseDuration(s["reconcile-branches"].value); err != nil || d < time.Minute {
		bad("reconcile-branches", "%q is not a duration of at least 1m", s["reconcile-branches"].value)
	} else {
		c.ReconcileBranches = d
	}
	switch v := s["hook-token-secrets"].value; v {
	case "allow":
		c.TokenSecrets = true
	case "deny":
	default:
		bad("hook-token-secrets", "%q is not allow or deny", v)
	}
	if d, err := time.ParseDuration(s["read-timeout"].value); err != nil || d < time.Second {
		bad("read-timeout", "%q is not a duration of at least 1s", s["read-timeout"].value)
	} else {
		c.ReadTimeout = d
	}
	c.Archive = s["archive"].value
	if c.Archive != "none" {
		if err := archive.CheckURL(c.Archive); err != nil {
			bad("archive", "%v", err)
		}
	}
	if d, err := days(s["archive-retention"].value); err != nil || (d != 0 && d < 24*time.Hour) {
		bad("archive-retention", "%q is not 0 or a duration of at least a day (90d, 2160h)", s["archive-retention"].value)
	} else {
		c.ArchiveRetention = d
	}
	if n, err := bytesize(s["archive-max-log"].value); err != nil || n < 64<<10 {
		bad("archive-max-log", "%q is not a size of at least 64KiB (e.g. 64MiB)", s["archive-max-log"].value)
	} else {
		c.ArchiveMaxLog = n
	}
	if n, err := bytesize(s["queue-bytes"].value); err != nil || n < 1<<20 {
		bad("queue-bytes", "%q is not a size of at least 1MiB (e.g. 96MiB)", s["queue-bytes"].value)
	} else {
		c.QueueBytes = n
	}
	if n, err := strconv.Atoi(s["log-streams"].value); err != nil || n < 1 || n > 30 {
		bad("log-streams", "%q is not a number from 1 to 30 (two connections each, and Nomad refuses a client's 101st: the bot's own calls need the rest)", s["log-streams"].value)
	} else {
		c.LogStreams = n
	}
	if n, err := strconv.Atoi(s["log-viewers"].value); err != nil || n < 1 {
		bad("log-viewers", "%q is not a number of at least 1", s["log-viewers"].value)
	} else {
		c.LogViewers = n
	}
	if err := c.LogLevel.UnmarshalText([]byte(s["log-level"].value)); err != nil {
		bad("log-level", "%q is not debug, info, warn or error", s["log-level"].value)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		bad("log-format", "%q is not text or json", c.LogFormat)
	}
	if v := getenv("NOMAD_ADDR"); v != "" {
		// Or a unix socket: the task API's, in a Nomad task with a workload identity.
		if path, ok := strings.CutPrefix(v, "unix://"); ok {
			if !strings.HasPrefix(path, "/") {
				errs = append(errs, fmt.Errorf("NOMAD_ADDR: %q: a unix socket's path is absolute (unix:///…)", v))
			}
		} else if err := httpURL(v); err != nil {
			errs = append(errs, fmt.Errorf("NOMAD_ADDR: %v (or unix:///path of a socket)", err))
		}
	}
	if v := getenv("CONSUL_HTTP_ADDR"); v != "" {
		if err := consulAddr(v); err != nil {
			errs = append(errs, fmt.Errorf("CONSUL_HTTP_ADDR: %v", err))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}

func httpURL(v string) error {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an http(s) URL", v)
	}
	return nil
}

// consulAddr accepts what the Consul client accepts: host:port, a URL, or unix://path.
func consulAddr(v string) error {
	if strings.HasPrefix(v, "unix://") {
		return nil
	}
	if strings.Contains(v, "://") {
		return httpURL(v)
	}
	if _, _, err := net.SplitHostPort(v); err != nil {
		return fmt.Errorf("%q is neither host:port nor a URL", v)
	}
	return nil
}

// InstallEnabled reports whether owners can install Albatros through Gitea's OAuth2, and
// when they cannot, why (for the home page).
func (c *Config) InstallEnabled() (bool, string) {
	if c.GiteaClientID == "" {
		return false, "installing through Gitea is not set up on this bot: it needs its OAuth2 application (ALBATROS_GITEA_CLIENT_ID, ALBATROS_GITEA_CLIENT_SECRET), its Gitea account (ALBATROS_GITEA_URL, ALBATROS_GITEA_TOKEN) and a secret key (ALBATROS_SECRET_KEY)"
	}
	return true, ""
}

// Logger returns the logger the settings ask for, writing to w.
func (c *Config) Logger(w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.LogLevel}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// bytesize reads a size: a number of bytes, or one with the suffix KiB, MiB or GiB.
func bytesize(v string) (int64, error) {
	mult := int64(1)
	for suffix, m := range map[string]int64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30} {
		if n, ok := strings.CutSuffix(v, suffix); ok {
			v, mult = n, m
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a size", v)
	}
	return n * mult, nil
}

// days parses a duration, or a number of days ("90d").
func days(v string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(v, "d"); ok {
		d, err := strconv.Atoi(n)
		if err != nil || d < 0 {
			return 0, fmt.Errorf("%q is not a number of days", v)
		}
		return time.Duration(d) * 24 * time.Hour, nil
	}
	return time.ParseDuration(v)
}
