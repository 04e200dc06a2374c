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
	"syscall"
	"time"

	"github.com/albatros-ci/albatros/config"
	"github.com/albatros-ci/albatros/forge/forges"
	"github.com/albatros-ci/albatros/hcl"
	"github.com/albatros-ci/albatros/orchestrator"
	"github.com/albatros-ci/albatros/pipeline"
	"github.com/albatros-ci/albatros/registry"
	"github.com/albatros-ci/albatros/server"
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
	nomad, err := orchestrator.New()
	if err != nil {
		return err
	}
	repos, err := registry.New(cfg.ConsulPrefix)
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

	pipe := pipeline.New(pipeline.Config{
		Repos:  repos,
		Builds: nomad,
		Forge: forges.New(forges.Config{
			GiteaURL: cfg.GiteaURL, GiteaToken: cfg.GiteaToken,
			GitHubURL: cfg.GitHubURL, GitHubToken: cfg.GitHubToken,
			HTTP: &http.Client{Timeout: 30 * time.Second},
		}).For,
		BaseURL: cfg.URL,
		Builder: orchestrator.Builder{Namespace: cfg.Namespace, Job: hcl.DefaultBuilder},
	})
	intake := webhook.New(repos, pipe, log, webhook.Options{TokenSecrets: cfg.TokenSecrets})
	handler := server.New(server.Config{
		Intake:    intake,
		Builds:    nomad,
		Repos:     repos,
		Namespace: cfg.Namespace,
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
			rctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			if err := pipe.Report(rctx, log, out); err != nil {
				log.Error("report build result", "job", out.JobID, "result", out.Result, "err", err)
			}
		}, func(err error) { log.Warn("event stream", "err", err) })
	}()

	// Log pages stream for as long as a build runs; shutdown ends them through this context.
	base, cancelBase := context.WithCancel(context.Background())
	defer cancelBase()
	srv := server.HTTPServer(cfg.Addr, handler, server.Timeouts{Read: cfg.ReadTimeout}, base)
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("ALBATROS_ADDR: %w", err)
	}
	log.Info("albatros-bot listening", "addr", ln.Addr().String(), "url", cfg.URL, "nomad", nomad.Address(), "builders", cfg.Builders)
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
