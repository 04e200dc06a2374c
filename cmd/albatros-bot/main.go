// Command albatros-bot is the Albatros CI bot: it receives forge webhooks, dispatches Nomad
// builds, follows them through Nomad's event stream and writes their results back to the
// forge. Run it with -h for its settings.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"golang.org/x/oauth2"

	"github.com/albatros-ci/albatros/config"
	"github.com/albatros-ci/albatros/forge/forges"
	"github.com/albatros-ci/albatros/forge/gitea"
	"github.com/albatros-ci/albatros/hcl"
	"github.com/albatros-ci/albatros/install"
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
	nomad, err := orchestrator.New()
	if err != nil {
		return err
	}
	repos, err := registry.New(cfg.ConsulPrefix, keys)
	if err != nil {
		return err
	}
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

	fs := forges.New(forges.Config{
		GiteaURL: cfg.GiteaURL, GiteaToken: cfg.GiteaToken,
		GitHubURL: cfg.GitHubURL, GitHubToken: cfg.GitHubToken,
		HTTP: &http.Client{Timeout: 30 * time.Second},
	})
	defaultBuilder := orchestrator.Builder{Namespace: cfg.Namespace, Job: hcl.DefaultBuilder}
	pipe := pipeline.New(pipeline.Config{
		Repos:   repos,
		Builds:  nomad,
		Forge:   fs.For,
		BaseURL: cfg.URL,
		Builder: defaultBuilder,

		BuilderNamespaces: cfg.BuilderNamespaces,
		Locks:             repos,
	})
	intake := webhook.New(repos, pipe, log, webhook.Options{TokenSecrets: cfg.TokenSecrets})

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
		Records: repos, Builds: nomad, Forge: fs.For,
		DefaultBuilder: defaultBuilder, BuilderNamespaces: cfg.BuilderNamespaces, Log: log,
		UserClient: func(token string) install.Owner { return gitea.New(cfg.GiteaURL, token, nil) },
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
			RedirectURL: cfg.URL + web.RedirectPath,
			Scopes:      web.Scopes,
		}
	} else {
		webCfg.DisabledReason = why
	}
	pages := web.New(webCfg)
	handler := server.New(server.Config{
		Intake:    intake,
		Builds:    nomad,
		Repos:     repos,
		Namespace: cfg.Namespace,
		Pages:     pages,
		Logs:      pages,
		Log:       log,
		Checks:    []server.Check{{Name: "nomad", Check: nomad.Ready}, {Name: "consul", Check: repos.Ready}},
	})

	// Results come back through Nomad's event stream.
	watchCtx, stopWatch := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWatch()
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		_ = nomad.Watch(watchCtx, func(ctx context.Context, out orchestrator.Outcome) {
			defer func() {
				if p := recover(); p != nil {
					log.Error("panic while reporting a build result", "job", out.JobID, "panic", p, "stack", string(debug.Stack()))
				}
			}()
			rctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			if err := pipe.Report(rctx, log, out); err != nil {
				log.Error("report build result", "job", out.JobID, "result", out.Result, "err", err)
			}
		}, func(err error) { log.Warn("event stream", "err", err) }, orchestrator.WatchOptions{})
	}()
	// Installations are checked and repaired at start and every interval.
	checked := make(chan struct{})
	go func() {
		defer close(checked)
		if installer != nil {
			installer.Run(watchCtx, cfg.HookCheckInterval)
		}
	}()

	// Log pages stream for as long as a build runs; shutdown ends them through this context.
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

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	cancelBase()
	shutCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = srv.Shutdown(shutCtx)
	intake.Wait() // dispatches and pending statuses of answered deliveries
	stopWatch()
	<-watched
	<-checked
	return err
}

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
