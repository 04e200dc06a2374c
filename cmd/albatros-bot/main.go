// Command albatros-bot is the Albatros CI bot: it receives forge webhooks, dispatches Nomad
// builds, follows them through Nomad's event stream and writes their results back to the
// forge. Run it with -h for its settings.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/oauth2"

	"github.com/albatros-ci/albatros/archive"
	"github.com/albatros-ci/albatros/config"
	"github.com/albatros-ci/albatros/forge"
	"github.com/albatros-ci/albatros/forge/forges"
	"github.com/albatros-ci/albatros/hcl"
	"github.com/albatros-ci/albatros/install"
	"github.com/albatros-ci/albatros/logfan"
	"github.com/albatros-ci/albatros/metrics"
	"github.com/albatros-ci/albatros/orchestrator"
	"github.com/albatros-ci/albatros/pipeline"
	"github.com/albatros-ci/albatros/registry"
	"github.com/albatros-ci/albatros/seal"
	"github.com/albatros-ci/albatros/server"
	"github.com/albatros-ci/albatros/web"
	"github.com/albatros-ci/albatros/webhook"
)

func main() {
	cfg, err := config.Load(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "albatros-bot: bad configuration:\n%v\n", err)
		os.Exit(2)
	}
	log := cfg.Logger(os.Stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, log); err != nil {
		log.Error("albatros-bot stopped", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	var keys *seal.Keyring
	if cfg.SecretKey != nil {
		var previous [][]byte
		if cfg.PreviousSecretKey != nil {
			previous = append(previous, cfg.PreviousSecretKey)
		}
		var err error
		if keys, err = seal.New(cfg.SecretKey, previous...); err != nil {
			return fmt.Errorf("ALBATROS_SECRET_KEY: %w", err)
		}
	}
	m := metrics.New()
	counted := func(service string) func(http.RoundTripper) http.RoundTripper {
		return func(next http.RoundTripper) http.RoundTripper { return m.Transport(service, next) }
	}
	repos, err := registry.New(cfg.ConsulPrefix, keys, registry.WithTransport(counted("consul")))
	if err != nil {
		return err
	}
	// The registry is the ledger of the bot's builds: only the jobs it records are builds.
	nomad, err := orchestrator.New(repos, orchestrator.WithTransport(counted("nomad")), orchestrator.WithNamespace(cfg.Namespace), orchestrator.WithReadToken(cfg.NomadReadToken))
	if err != nil {
		return err
	}
	defer nomad.Close()
	// The entries live in memory, kept fresh by a blocking query on Consul: a delivery
	// costs no round trip, and a Consul outage serves the entries last read.
	repos.Follow(ctx, func(err error) { log.Warn("registry: reading the entries failed, retrying", "err", err) })
	// Deliveries before the first read are answered 503 (and forges do not redeliver by
	// themselves): give Consul a moment before serving.
	syncCtx, cancelSync := context.WithTimeout(ctx, 10*time.Second)
	if err := repos.Synced(syncCtx); err != nil {
		log.Warn("registry: entries not read yet; deliveries are answered 503 until they are", "err", err)
	}
	cancelSync()
	if err := waitReady(ctx, log, "nomad", nomad.Ready); err != nil {
		return err
	}
	for _, name := range cfg.Builders {
		spec := hcl.Builders[name]
		vars := maps.Clone(cfg.BuilderVars)
		b, err := nomad.RegisterBuilder(ctx, spec.Source, spec.VarFile(vars))
		if err != nil {
			return fmt.Errorf("register builder %s: %w", name, err)
		}
		log.Info("builder registered", "job", b.Job, "namespace", b.Namespace)
		if cfg.UntrustedVars != nil && name == hcl.DefaultBuilder {
			vars := maps.Clone(cfg.UntrustedVars)
			u, err := nomad.RegisterBuilder(ctx, spec.Source, spec.VarFile(vars))
			if err != nil {
				return fmt.Errorf("register builder %s for code not trusted: %w", name, err)
			}
			log.Info("builder registered for code not trusted", "job", u.Job, "namespace", u.Namespace, "node pool", vars["node_pool"], "network", vars["network_mode"])
		}
	}
	if keys != nil {
		if err := waitReady(ctx, log, "consul", repos.Ready); err != nil {
			return err
		}
		n, err := repos.Reseal(ctx)
		if err != nil {
			return fmt.Errorf("seal the installations with the current key: %w", err)
		}
		if n > 0 {
			log.Info("installations sealed again with the current key", "count", n)
		}
	}

	var arch *archive.Archive
	if cfg.Archive != "none" {
		if arch, err = archive.Open(cfg.Archive, archive.Options{MaxLog: cfg.ArchiveMaxLog}); err != nil {
			return fmt.Errorf("ALBATROS_ARCHIVE: %w", err)
		}
		go func() { // not on the start's path: builds that end meanwhile wait for it
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if err := arch.Check(cctx); err != nil {
				log.Warn("archive not reachable: final statuses wait for it (their reports are retried)", "archive", arch.String(), "err", err)
			}
		}()
		log.Info("archive of finished builds", "archive", arch.String(), "retention", cfg.ArchiveRetention)
	} else {
		log.Warn("no archive (ALBATROS_ARCHIVE=none): a build's links break once Nomad collects it")
	}

	forgeHTTP := forges.HTTPClient()
	forgeHTTP.Transport = m.Transport("forge", forgeHTTP.Transport)
	// The bot's GitHub App: the operator's (its settings), or the one made through the
	// manifest flow (kept in Consul, read anew when it changes).
	var ghApp *forges.GitHubApp
	switch cfg.GitHubApp {
	case "env":
		ghApp = forges.NewGitHubApp(forges.FixedApp(forges.AppSettings{
			ID: cfg.GitHubAppID, Key: cfg.GitHubAppKey, WebhookSecrets: cfg.GitHubWebhookSecrets,
			ClientID: cfg.GitHubClientID, ClientSecret: cfg.GitHubClientSecret, WebURL: cfg.GitHubWebURL, APIURL: cfg.GitHubURL,
		}), forgeHTTP)
	case "manifest":
		ghApp = forges.NewGitHubApp(forges.RecordedApp(repos, cfg.GitHubURL, cfg.GitHubWebhookSecrets...), forgeHTTP)
	}
	fs := forges.New(forges.Config{
		Access: map[string]registry.Access{
			forges.Gitea.Name:  {URL: cfg.GiteaURL, Token: cfg.GiteaToken},
			forges.GitHub.Name: {URL: cfg.GitHubURL, Token: cfg.GitHubToken},
		},
		HTTP: forgeHTTP,
		App:  ghApp,
	})
	defaultBuilder := orchestrator.Builder{Namespace: cfg.Namespace, Job: hcl.DefaultBuilder}
	pipeCfg := pipeline.Config{
		Repos:   repos,
		Builds:  nomad,
		Forge:   fs.For,
		BaseURL: cfg.URL,
		Builder: defaultBuilder,

		BuilderNamespaces: cfg.BuilderNamespaces,
		Locks:             repos,
		Claims:            repos,
		Trust:             repos,
		Schedules:         repos,
		Log:               log,
		Observe:           m,
	}
	if cfg.UntrustedVars != nil {
		pipeCfg.Untrusted = &orchestrator.Builder{Namespace: cfg.UntrustedVars["namespace"], Job: hcl.DefaultBuilder}
	}
	if arch != nil {
		pipeCfg.Archive = arch
		pipeCfg.History = func(cloneURL string, pr int64) string {
			path := ""
			if owner, repo, ok := web.GiteaRepo(cfg.GiteaURL, cloneURL); ok {
				path = web.HistoryPath(owner, repo)
			} else if owner, repo, ok := web.GitHubRepo(cfg.GitHubWebURL, cloneURL); ok && ghApp != nil {
				path = web.GitHubHistoryPath(owner, repo)
			}
			if path == "" {
				return ""
			}
			return cfg.URL + path + "?pr=" + strconv.FormatInt(pr, 10)
		}
	}
	pipe := pipeline.New(pipeCfg)
	intakeOpts := webhook.Options{TokenSecrets: cfg.TokenSecrets, Nomad: nomad.Ready, QueueBytes: cfg.QueueBytes, Observe: m.Delivery}
	var apps *install.Apps
	if ghApp != nil {
		apps = install.NewApps(install.AppConfig{Records: repos, WebURL: cfg.GitHubWebURL, Forget: ghApp.Forget, AppID: ghApp.ID, Accounts: cfg.GitHubAccounts, Gone: ghApp.Gone, Log: log})
		intakeOpts.App = appHooks{ghApp, apps}
		if _, s, err := ghApp.Current(ctx); err == nil {
			log.Info("github app", "id", s.ID, "web", cfg.GitHubWebURL, "api", cmp.Or(cfg.GitHubURL, "https://api.github.com"), "from", cfg.GitHubApp)
		} else {
			log.Warn("github app not ready", "err", err)
		}
	}
	intake := webhook.New(repos, pipe, log, intakeOpts)
	m.Gauge("albatros_queue_deliveries", "Answered deliveries waiting their turn to be handled.", func() float64 {
		n, _, _ := intake.Queue()
		return float64(n)
	})
	m.Gauge("albatros_queue_bytes", "What the answered deliveries waiting their turn hold, in bytes (as ALBATROS_QUEUE_BYTES counts them).", func() float64 {
		_, b, _ := intake.Queue()
		return float64(b)
	})

	// The bot's own Gitea account: it installs, repairs and checks rights.
	bot := fs.GiteaBot()
	var botLogin string
	if bot != nil {
		err := waitReady(ctx, log, "gitea", func(ctx context.Context) error {
			var err error
			botLogin, err = bot.Me(ctx)
			return err
		})
		if err != nil {
			return fmt.Errorf("ALBATROS_GITEA_TOKEN: %w", err)
		}
		log.Info("acting on gitea as", "user", botLogin, "url", cfg.GiteaURL)
	}
	var installer *install.Installer
	if bot != nil && keys != nil {
		installer = install.New(install.Config{
			Records: repos, Bot: bot, BotLogin: botLogin,
			ForgeURL: cfg.GiteaURL, HookURL: cfg.URL + "/webhook/gitea", Log: log,
		})
	}
	webCfg := web.Config{
		BaseURL: cfg.URL, GiteaURL: cfg.GiteaURL, Keys: keys, BotLogin: botLogin,
		Records: repos, Sessions: repos, Schedules: repos, Runs: pipe, Builds: nomad, Forge: fs.For,
		DefaultBuilder: defaultBuilder, BuilderNamespaces: cfg.BuilderNamespaces, Log: log,
		UserClient: func(token string) install.Owner {
			c, _ := forges.Gitea.New(cfg.GiteaURL, token, nil) // Gitea's never fails
			return c
		},
	}
	if bot != nil {
		webCfg.Bot = bot
	}
	if installer != nil {
		webCfg.Installer = installer
	}
	if ok, why := cfg.InstallEnabled(); ok && installer != nil {
		webCfg.OAuth = &oauth2.Config{
			ClientID: cfg.GiteaClientID, ClientSecret: cfg.GiteaClientSecret,
			Endpoint: oauth2.Endpoint{
				AuthURL:   cfg.GiteaURL + "/login/oauth/authorize",
				TokenURL:  cfg.GiteaURL + "/login/oauth/access_token",
				AuthStyle: oauth2.AuthStyleInParams,
			},
			RedirectURL: cfg.URL + web.RedirectPath, // each sign-in asks its own scopes
		}
	} else {
		webCfg.DisabledReason = why
	}
	if arch != nil {
		webCfg.Archive, webCfg.Lines = arch, repos
	}
	if ghApp != nil && keys != nil {
		webCfg.GitHub = &web.GitHubConfig{
			WebURL: cfg.GitHubWebURL, OAuth: ghApp.OAuth, Slug: ghApp.Slug,
			Installation: func(ctx context.Context, inst *registry.Installation) (forge.Forge, error) {
				return ghApp.Installation(ctx, inst.InstallationID)
			},
			User: func(token string) web.GitHubUser {
				c, _ := forges.GitHubUser(cfg.GitHubURL, token, forgeHTTP) // a token given never fails
				return c
			},
		}
		if cfg.GitHubApp == "manifest" {
			webCfg.GitHub.Setup = &web.GitHubSetup{
				Code: cfg.GitHubSetupCode,
				Owner: func(ctx context.Context) string {
					if app, err := repos.GitHubApp(ctx); err == nil {
						return app.Owner
					}
					return ""
				},
				Convert: func(ctx context.Context, c string) (registry.GitHubAppOpen, error) {
					return forges.ConvertManifest(ctx, cfg.GitHubWebURL, cfg.GitHubURL, c, forgeHTTP)
				},
				Record: repos.PutGitHubApp,
			}
			if _, err := ghApp.Slug(ctx); errors.Is(err, forges.ErrNoApp) {
				log.Warn("github app: none yet: create it on " + cfg.URL + "/github/setup, with ALBATROS_GITHUB_SETUP_CODE")
			}
		}
	}
	pages := web.New(webCfg)
	serverCfg := server.Config{
		Intake:    intake,
		Builds:    nomad,
		Repos:     repos,
		Namespace: cfg.Namespace,
		Pages:     pages,
		Logs:      pages,
		Log:       log,
		Checks:    []server.Check{{Name: "nomad", Check: nomad.Ready}, {Name: "consul", Check: repos.Ready}},
		LogBounds: logfan.Options{MaxUpstreams: cfg.LogStreams, MaxViewers: cfg.LogViewers},
	}
	if arch != nil {
		serverCfg.Archive = arch
	}
	if cfg.MetricsAddr == "" {
		serverCfg.Metrics = m.Handler()
	}
	onLeadErr := func(err error) { log.Warn("leadership", "err", err) }
	handler := server.New(serverCfg)
	m.Gauge("albatros_log_viewers", "Readers of live build logs served now.", func() float64 { return float64(handler.Logs().Viewers()) })
	m.Gauge("albatros_log_tapes", "Live build logs held for their readers now.", func() float64 { return float64(handler.Logs().Watching()) })
	m.Gauge("albatros_log_upstreams", "Live build logs followed in Nomad now.", func() float64 { return float64(handler.Logs().Following()) })
	// lead runs run while this bot leads role, albatros_leader{role} 1 meanwhile.
	lead := func(ctx context.Context, role string, run func(context.Context)) {
		repos.Lead(ctx, role, func(ctx context.Context) { m.Lead(role, func() { run(ctx) }) }, onLeadErr)
	}

	// Results come back through Nomad's event stream, followed by one bot at a time (the
	// leader of "events"); installations are checked and repaired by the leader of
	// "installations". Every bot serves webhooks and pages.
	watchCtx, stopWatch := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWatch()
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		lead(watchCtx, "events", func(ctx context.Context) {
			pipe.Follow(ctx, log, nomad, repos, pipeline.FollowOptions{})
		})
	}()
	reconciled := make(chan struct{})
	reconciler := pipeline.Reconciler{
		Registry: repos, Forge: forges.Gitea.Name, ForgeURL: cfg.GiteaURL, Every: cfg.ReconcileInterval,
		Options:   pipeline.ReconcileOptions{BranchWindow: cfg.ReconcileBranches, Settled: intake.Settled},
		AfterPass: func(ctx context.Context) { housekeeping(ctx, log, repos) },
	}
	if bot != nil {
		reconciler.Bot = bot
	}
	if ghApp != nil {
		reconciler.AppURL = cfg.GitHubWebURL
		reconciler.App = func(ctx context.Context, id int64) (forge.OrgRepos, error) { return ghApp.Installation(ctx, id) }
	}
	go func() {
		defer close(reconciled)
		lead(watchCtx, "reconciler", func(ctx context.Context) {
			pipe.RunReconciler(ctx, log, reconciler)
		})
	}()
	synced := make(chan struct{})
	go func() {
		defer close(synced)
		if ghApp != nil && keys != nil {
			// GitHub does not redeliver by itself: the installations' events the bot
			// missed are made up for from GitHub's list of the App's installations.
			lead(watchCtx, "github-installations", func(ctx context.Context) {
				syncInstallations(ctx, log, ghApp, apps, cfg.HookCheckInterval)
			})
		}
	}()
	scheduled := make(chan struct{})
	go func() {
		defer close(scheduled)
		served := []string{cfg.GiteaURL}
		if ghApp != nil {
			served = append(served, cfg.GitHubWebURL)
		}
		lead(watchCtx, "schedules", func(ctx context.Context) {
			pipe.RunSchedules(ctx, log, pipeline.Schedules{Registry: repos, Served: served, Every: cfg.ScheduleInterval})
		})
	}()
	checked := make(chan struct{})
	go func() {
		defer close(checked)
		if installer != nil {
			lead(watchCtx, "installations", func(ctx context.Context) {
				log.Info("leading: checking installations", "every", cfg.HookCheckInterval)
				installer.Run(ctx, cfg.HookCheckInterval)
			})
		}
	}()

	// Log pages stream for as long as a build runs; shutdown ends them through this context.
	expired := make(chan struct{})
	go func() {
		defer close(expired)
		if arch != nil && cfg.ArchiveRetention > 0 {
			lead(watchCtx, "archive-retention", func(ctx context.Context) {
				expire(ctx, log, arch, cfg.ArchiveRetention)
			})
		}
	}()

	base, cancelBase := context.WithCancel(context.Background())
	defer cancelBase()
	srv := server.HTTPServer(cfg.Addr, handler, server.Timeouts{Read: cfg.ReadTimeout}, base)
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("ALBATROS_ADDR: %w", err)
	}
	log.Info("albatros-bot listening", "addr", ln.Addr().String(), "url", cfg.URL, "nomad", nomad.Address(), "builders", cfg.Builders, "install", webCfg.OAuth != nil)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	if cfg.MetricsAddr != "" && cfg.MetricsAddr != "none" {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", m.Handler())
		stopMetrics, err := listen(cfg.MetricsAddr, mux)
		if err != nil {
			return fmt.Errorf("ALBATROS_METRICS_ADDR: %w", err)
		}
		defer stopMetrics()
		log.Info("metrics listening", "addr", cfg.MetricsAddr)
	}
	if cfg.PprofAddr != "" {
		stopProfiler, err := profiler(cfg.PprofAddr, log)
		if err != nil {
			return fmt.Errorf("ALBATROS_PPROF_ADDR: %w", err)
		}
		defer stopProfiler()
	}

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	// Stopping: the service check fails (Nomad takes this bot out of its service), the
	// leaderships go at once to another bot, the live logs end (their readers reconnect,
	// to another bot), and deliveries are answered 503 (the forge shows them failed; the
	// reconciler finds the heads among them) while the answered ones are handled, within
	// drainTime; then the listener closes, within shutdownTime. Both fit in the job's
	// kill_timeout (hcl/albatros.nomad.hcl).
	log.Info("stopping: deliveries answered 503, leaderships released, finishing the deliveries answered", "within", drainTime+shutdownTime)
	handler.Stop()
	stopWatch()
	cancelBase()
	// The answered deliveries are handled while drainTime allows; those still waiting
	// then are left to the reconciler, which finds the heads of branches and pull
	// requests (not tags).
	drainCtx, cancelDrain := context.WithTimeout(context.Background(), drainTime)
	left := intake.Drain(drainCtx)
	cancelDrain()
	shutCtx, cancel := context.WithTimeout(context.Background(), shutdownTime)
	defer cancel()
	err = srv.Shutdown(shutCtx)
	if len(left) > 0 {
		// Branch and pull-request heads are found by the reconciler; tags, comments and
		// closed pull requests only if redelivered from the forge: each is named.
		byKind := map[forge.Kind]int{}
		for i, d := range left {
			byKind[d.Kind]++
			if i < maxDroppedLogged {
				log.Warn("answered delivery not handled before stopping", "kind", d.Kind, "repo", d.Repo, "what", d.What, "delivery", d.Delivery, "cancelled while being handled", d.Cancelled)
			}
		}
		log.Warn("answered deliveries not handled before stopping: the reconciler builds the heads of branches and pull requests among them; redeliver the others from the forge", "count", len(left), "by kind", byKind, "named above", min(len(left), maxDroppedLogged))
	}
	_, _, counts := intake.Queue()
	log.Info("deliveries since start", "accepted", counts.Accepted, "refused for the queue's bound", counts.Refused, "refused while stopping", counts.Stopping)
	<-watched
	<-reconciled
	<-checked
	<-synced
	<-scheduled
	<-expired
	return err
}

// appHooks is the bot's GitHub App as the intake takes it: its webhook secrets, and its
// installations' events recorded.
type appHooks struct {
	app  *forges.GitHubApp
	apps *install.Apps
}

func (a appHooks) WebhookSecrets(ctx context.Context) ([]string, error) {
	return a.app.WebhookSecrets(ctx)
}
func (a appHooks) Installation(ctx context.Context, ev forge.Event) (string, error) {
	return a.apps.Handle(ctx, ev)
}

// syncInstallations makes the records of the App's installations agree with GitHub's list
// of them, at once and then every interval, while ctx (the leadership) lasts.
func syncInstallations(ctx context.Context, log *slog.Logger, app *forges.GitHubApp, apps *install.Apps, interval time.Duration) {
	for {
		listed, err := app.Installations(ctx, apps.Allowed)
		id, idErr := app.ID(ctx)
		switch {
		case errors.Is(err, forges.ErrNoApp):
		case err != nil && ctx.Err() == nil:
			log.Warn("github app's installations not listed: tried again later", "err", err)
		case err == nil && idErr == nil:
			if _, err := apps.Sync(ctx, id, listed); err != nil && ctx.Err() == nil {
				log.Warn("github app's installations not all synced", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}

// expire deletes the archived builds older than retention, at once and then every six
// hours, while ctx (the leadership) lasts.
func expire(ctx context.Context, log *slog.Logger, arch *archive.Archive, retention time.Duration) {
	for {
		n, err := arch.Expire(ctx, time.Now().Add(-retention))
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("archive retention: expiry stopped part-way, tried again later", "deleted", n, "err", err)
		case n > 0:
			log.Info("archive retention: old builds deleted", "deleted", n, "older than", retention)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(6 * time.Hour):
		}
	}
}

// drainTime bounds the handling of the answered deliveries once the bot stops, and
// shutdownTime the requests still being served after it: together they stay below the
// kill_timeout of the bot's job (30 s in hcl/albatros.nomad.hcl, a Nomad client's default
// max_kill_timeout).
const (
	drainTime    = 15 * time.Second
	shutdownTime = 10 * time.Second
)

// maxDroppedLogged bounds the deliveries a stopping bot names in its log, one line each.
const maxDroppedLogged = 200

// waitReady retries check for a while: the bot may start before Nomad or Consul does.
func waitReady(ctx context.Context, log *slog.Logger, name string, check func(context.Context) error) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := check(cctx)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s not reachable: %w", name, err)
		}
		log.Warn("waiting for "+name, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}

// dedupAge is how long a build key's dedup record is kept: Nomad collects dispatched jobs
// after 4 h by default, and a delivery later than that builds again there too.
const dedupAge = 24 * time.Hour

// housekeeping deletes what the registry keeps no longer than a while: dedup records past
// dedupAge, and the sign-outs of sessions that have expired. The reconciler's leader runs
// it after each pass.
func housekeeping(ctx context.Context, log *slog.Logger, repos *registry.Registry) {
	if gone, err := repos.CleanDedup(ctx, dedupAge); err != nil {
		log.Warn("dedup records not cleaned", "err", err)
	} else if gone > 0 {
		log.Info("dedup records cleaned", "deleted", gone, "older than", dedupAge)
	}
	if gone, err := repos.CleanSessions(ctx); err != nil {
		log.Warn("sign-outs not cleaned", "err", err)
	} else if gone > 0 {
		log.Info("sign-outs of expired sessions cleaned", "deleted", gone)
	}
}

// profiler serves Go's profiler (net/http/pprof) on a listener of its own, apart from the
// bot's routes; stop closes it.
func profiler(addr string, log *slog.Logger) (stop func(), err error) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	stop, err = listen(addr, mux)
	if err == nil {
		log.Info("profiler listening", "addr", addr)
	}
	return stop, err
}

// listen serves h on a listener of its own at addr; stop closes it.
func listen(addr string, h http.Handler) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return func() { _ = srv.Close() }, nil
}
