// Package testenv starts the real servers Albatros talks to (a Nomad dev agent, a Consul dev
// agent and Gitea) on 127.0.0.1, on free ports, in temporary directories, and stops exactly
// the processes it started. It also holds the helpers that tests and the demo use to shape
// those servers: users, organizations, repositories, webhooks and git pushes on Gitea.
//
// A test package starts its servers once, in TestMain, and isolates its tests by Gitea
// organization, repository, Nomad namespace and Consul key prefix:
//
//	var env = testenv.New(testenv.Options{Nomad: true, Consul: true, Gitea: true})
//
//	func TestMain(m *testing.M) { os.Exit(env.Run(m)) }
//
//	func TestPush(t *testing.T) { g := env.Gitea(t); ... }
//
// The server binaries come from bin/ at the repository root (`make tools` builds them), or
// from ALBATROS_BIN_DIR. When one is missing, its tests skip with the reason, except under
// CI=true, where a missing binary fails the whole run.
//
// This package is test infrastructure, not product code: it may use the Nomad, Consul and
// Gitea clients directly, which the product keeps inside orchestrator, registry and forge/gitea.
package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// T is the part of testing.TB the helpers use; the demo supplies its own.
type T interface {
	Helper()
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
	Cleanup(func())
}

// Options says which servers a test package needs.
type Options struct {
	Nomad  bool
	Consul bool
	Gitea  bool
	// S3 starts an S3-compatible server (versitygw) with one bucket, "albatros".
	S3 bool
	// NomadGCMaxAllocs, when set, is the client's gc_max_allocs (see StartNomadGC).
	NomadGCMaxAllocs int
}

// Env is the set of servers shared by the tests of one package.
type Env struct {
	opts Options

	mu      sync.Mutex
	atStop  []func()
	missing map[string]string // server name -> why it is not available
	nomad   *Nomad
	consul  *Consul
	gitea   *Gitea
	s3      *S3
}

// New returns an environment that starts the servers in opts when Run is called.
func New(opts Options) *Env {
	return &Env{opts: opts, missing: map[string]string{}}
}

// InCI reports whether the run is under CI (CI=true), where nothing may skip.
func InCI() bool {
	v := strings.ToLower(os.Getenv("CI"))
	return v == "true" || v == "1"
}

// Run starts the servers, runs the tests and stops the servers; its result is the exit code
// for os.Exit. Under CI=true a server that cannot start fails the run before any test.
func (e *Env) Run(m *testing.M) int {
	code := 1
	func() {
		defer e.Stop()
		if err := e.Start(context.Background()); err != nil {
			fmt.Fprintln(os.Stderr, "testenv:", err)
			return
		}
		code = m.Run()
	}()
	return code
}

// Start starts the servers in the environment's options. A server whose binary is missing is
// recorded as missing (its tests skip), or, under CI=true, is an error. It points the test
// process's standard NOMAD_ADDR and CONSUL_HTTP_ADDR at the servers it started, so that code
// using the official clients' defaults finds them.
func (e *Env) Start(ctx context.Context) error {
	type starter struct {
		want  bool
		name  string
		start func(context.Context, string) error
	}
	starters := []starter{
		{e.opts.Consul, "consul", func(ctx context.Context, bin string) (err error) { e.consul, err = StartConsul(ctx, bin); return }},
		{e.opts.Nomad, "nomad", func(ctx context.Context, bin string) (err error) {
			e.nomad, err = StartNomadGC(ctx, bin, e.opts.NomadGCMaxAllocs)
			return
		}},
		{e.opts.Gitea, "gitea", func(ctx context.Context, bin string) (err error) { e.gitea, err = StartGitea(ctx, bin); return }},
		{e.opts.S3, "versitygw", func(ctx context.Context, bin string) (err error) { e.s3, err = StartS3(ctx, bin, "albatros"); return }},
	}
	for _, s := range starters {
		if !s.want {
			continue
		}
		bin, err := Binary(s.name)
		if err != nil {
			if InCI() {
				return fmt.Errorf("CI=true and %v", err)
			}
			e.missing[s.name] = err.Error()
			continue
		}
		t0 := time.Now()
		if err := s.start(ctx, bin); err != nil {
			return fmt.Errorf("start %s: %w", s.name, err)
		}
		fmt.Fprintf(os.Stderr, "testenv: %s ready in %s\n", s.name, time.Since(t0).Round(10*time.Millisecond))
	}
	if e.nomad != nil {
		os.Setenv("NOMAD_ADDR", e.nomad.Addr)
	}
	if e.consul != nil {
		os.Setenv("CONSUL_HTTP_ADDR", e.consul.Addr)
	}
	return nil
}

// AtStop registers f to run when the environment stops, before its servers stop: for
// processes a test package starts on top of them, such as the bot.
func (e *Env) AtStop(f func()) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.atStop = append(e.atStop, f)
}

// Stop stops every server the environment started, and only those.
func (e *Env) Stop() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := len(e.atStop) - 1; i >= 0; i-- {
		e.atStop[i]()
	}
	e.atStop = nil
	if e.gitea != nil {
		e.gitea.Stop()
	}
	if e.s3 != nil {
		e.s3.Stop()
	}
	if e.nomad != nil {
		e.nomad.Stop()
	}
	if e.consul != nil {
		e.consul.Stop()
	}
}

// Nomad returns the package's Nomad agent, or skips the test when its binary is missing.
func (e *Env) Nomad(t testing.TB) *Nomad {
	t.Helper()
	e.need(t, "nomad", e.opts.Nomad)
	return e.nomad
}

// Consul returns the package's Consul agent, or skips the test when its binary is missing.
func (e *Env) Consul(t testing.TB) *Consul {
	t.Helper()
	e.need(t, "consul", e.opts.Consul)
	return e.consul
}

// Gitea returns the package's Gitea server, or skips the test when its binary is missing.
func (e *Env) Gitea(t testing.TB) *Gitea {
	t.Helper()
	e.need(t, "gitea", e.opts.Gitea)
	return e.gitea
}

// S3 returns the package's S3 server, or skips the test when its binary is missing.
func (e *Env) S3(t testing.TB) *S3 {
	t.Helper()
	e.need(t, "versitygw", e.opts.S3)
	return e.s3
}

func (e *Env) need(t testing.TB, name string, wanted bool) {
	t.Helper()
	if !wanted {
		t.Fatalf("testenv: %s was not requested in this package's testenv.Options", name)
	}
	if why, ok := e.missing[name]; ok {
		// Start already failed the run under CI; outside CI a developer without the
		// binaries still gets the unit tests, and the reason for each skip.
		t.Skipf("%s (run `make tools`)", why)
	}
}

// NeedBinary is Binary for a test that starts a server of its own: a missing binary fails
// the test under CI=true, and skips it otherwise (with the reason).
func NeedBinary(t testing.TB, name string) string {
	t.Helper()
	p, err := Binary(name)
	if err != nil {
		if InCI() {
			t.Fatalf("CI=true and %v", err)
		}
		t.Skipf("%v", err)
	}
	return p
}

// Binary finds a server binary: $ALBATROS_BIN_DIR/<name>, else bin/<name> at the root of the
// repository (the directory holding go.mod above the working directory).
func Binary(name string) (string, error) {
	dir, err := BinDir()
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, name)
	if st, err := os.Stat(p); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		return "", fmt.Errorf("%s binary not found at %s (build it with `make tools`)", name, p)
	}
	return p, nil
}

// BinDir is where `make tools` links the server binaries.
func BinDir() (string, error) {
	if d := os.Getenv("ALBATROS_BIN_DIR"); d != "" {
		return filepath.Abs(d)
	}
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "bin"), nil
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/albatros-ci/albatros\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("testenv: not inside the albatros repository (no go.mod found above the working directory); set ALBATROS_BIN_DIR")
		}
		dir = parent
	}
}

// tempDir makes a short-named temporary directory: Nomad's task API socket path must stay
// under the 108-byte unix socket limit, which a test's own t.TempDir path can exceed.
func tempDir(prefix string) (string, error) {
	return os.MkdirTemp("/tmp", "alb-"+prefix+"-")
}
