package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	nomad "github.com/hashicorp/nomad/api"
)

// Nomad is a running Nomad dev agent (server and client in one) with raw_exec enabled, a
// `ci` namespace, and ACLs enabled (bootstrapped with ManagementToken).
type Nomad struct {
	// Addr is the HTTP API address, as NOMAD_ADDR takes it.
	Addr string
	// Dir holds the agent's data and its log (nomad.log).
	Dir  string
	proc *process
	bin  string
	args []string
	// orphans are the executors and tasks of agents stopped alone, killed by Stop.
	orphans []procID

	once      sync.Once
	shared    *nomad.Client
	sharedErr error

	bootstrapped bool
	tokens       tokens // minted by BotToken, ReadToken
}

// DefaultNamespace is the namespace the builders run in, created at start.
const DefaultNamespace = "ci"

const nomadConfig = `
data_dir  = %q
bind_addr = "127.0.0.1"
log_level = "INFO"
disable_update_check = true

ports {
  http = %d
  rpc  = %d
  serf = %d
}

advertise {
  http = "127.0.0.1"
  rpc  = "127.0.0.1"
  serf = "127.0.0.1"
}

client {
  enabled           = true
  network_interface = "lo"
  %s
  options = {
    # No cloud metadata probes (169.254.169.254) on a machine without a network; Nomad 1.10
    # also crashes in env_aws when AWS_CA_BUNDLE is set.
    "fingerprint.denylist" = "env_aws,env_gce,env_azure,env_digitalocean"
  }
}

plugin "raw_exec" {
  config {
    enabled = true
  }
}

acl {
  enabled = true
}
`

// StartNomad starts a Nomad dev agent from bin and waits for its leader and a ready node.
func StartNomad(ctx context.Context, bin string) (*Nomad, error) {
	return startNomad(ctx, bin, false, 0)
}

// StartNomadGC starts a dev agent whose client keeps at most maxAllocs allocations before
// it collects the ended ones (their logs with them), checking every few seconds: a busy
// builder node, where a build's log is gone within minutes.
func StartNomadGC(ctx context.Context, bin string, maxAllocs int) (*Nomad, error) {
	return startNomad(ctx, bin, false, maxAllocs)
}

// StartPersistentNomad starts a Nomad agent, server and client, that keeps its state in its
// data directory (a dev agent keeps it in memory): it can be stopped and started again with
// its jobs, allocations and raft index, as a restarted cluster would be.
func StartPersistentNomad(ctx context.Context, bin string) (*Nomad, error) {
	return startNomad(ctx, bin, true, 0)
}

func startNomad(ctx context.Context, bin string, persistent bool, maxAllocs int) (*Nomad, error) {
	dir, err := tempDir("nomad")
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	cfg := filepath.Join(dir, "agent.hcl")
	// A short data_dir keeps task socket paths under the unix socket length limit.
	gc := ""
	if maxAllocs > 0 {
		gc = fmt.Sprintf("gc_max_allocs = %d\n  gc_interval = \"3s\"", maxAllocs)
	}
	body := fmt.Sprintf(nomadConfig, filepath.Join(dir, "d"), ports[0], ports[1], ports[2], gc)
	args := []string{"agent", "-dev", "-config=" + cfg}
	if persistent {
		body += "\nserver {\n  enabled          = true\n  bootstrap_expect = 1\n}\n"
		args = []string{"agent", "-config=" + cfg}
	}
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		return nil, err
	}
	n := &Nomad{Addr: fmt.Sprintf("http://127.0.0.1:%d", ports[0]), Dir: dir, bin: bin, args: args}
	if err := n.start(ctx); err != nil {
		n.Stop()
		return nil, err
	}
	client, err := n.client()
	if err == nil {
		_, err = client.Namespaces().Register(&nomad.Namespace{Name: DefaultNamespace, Description: "Albatros builds"}, nil)
	}
	if err != nil {
		n.Stop()
		return nil, err
	}
	agents.Store(n.Addr, n)
	return n, nil
}

// start starts the agent and waits for its leader and a ready node with raw_exec.
func (n *Nomad) start(ctx context.Context) error {
	// raw_exec tasks inherit the agent's environment: give it a small, known one.
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + n.Dir,
		"TMPDIR=" + n.Dir,
		"LANG=C.UTF-8",
	}
	p, err := startProcess("nomad", n.bin, n.args, n.Dir, env, filepath.Join(n.Dir, "nomad.log"))
	if err != nil {
		return err
	}
	n.proc = p
	client, err := n.client()
	if err != nil {
		return err
	}
	return waitFor(ctx, p, 90*time.Second, func(ctx context.Context) error {
		q := (&nomad.QueryOptions{}).WithContext(ctx)
		if leader, err := client.Status().Leader(); err != nil || leader == "" {
			return fmt.Errorf("no leader yet: %v", err)
		}
		if !n.bootstrapped {
			// Once per agent: a persistent one started again keeps its tokens.
			if _, _, err := client.ACLTokens().BootstrapOpts(management(), nil); err != nil {
				return fmt.Errorf("ACL bootstrap: %w", err)
			}
			n.bootstrapped = true
		}
		nodes, _, err := client.Nodes().List(q)
		if err != nil {
			return err
		}
		for _, node := range nodes {
			if node.Status == "ready" {
				if d, ok := node.Drivers["raw_exec"]; ok && d.Healthy {
					return nil
				}
			}
		}
		return errors.New("no ready node with raw_exec yet")
	})
}

// StopAgent stops the agent alone (SIGTERM), as an operator restarting it would: the tasks
// it runs go on, and a persistent agent started again (StartAgent) finds them.
func (n *Nomad) StopAgent() {
	n.orphans = append(n.orphans, descendants(n.proc.cmd.Process.Pid)...)
	n.proc.stopOnly(30 * time.Second)
}

// StartAgent starts an agent stopped by StopAgent again, on the same ports and data.
func (n *Nomad) StartAgent(ctx context.Context) error {
	return n.start(ctx)
}

// Stop stops the agent and every process it spawned (executors and tasks).
func (n *Nomad) Stop() {
	if n.proc != nil {
		n.proc.stop(15 * time.Second)
	}
	for _, k := range n.orphans {
		if alive(k.pid) && startTime(k.pid) == k.start {
			_ = syscall.Kill(k.pid, syscall.SIGKILL)
		}
	}
	_ = os.RemoveAll(n.Dir)
}

// Env returns the environment variables that point Nomad's clients at this agent (with no
// token: StartBot adds the bot's, BotEnv, and the test process has ManagementToken).
func (n *Nomad) Env() []string {
	return []string{"NOMAD_ADDR=" + n.Addr}
}

// Client returns an API client for the agent: one for all callers, so that its pooled
// connections are reused (Nomad answers a client's 101st connection with 429).
func (n *Nomad) Client(t T) *nomad.Client {
	t.Helper()
	n.once.Do(func() { n.shared, n.sharedErr = n.client() })
	if n.sharedErr != nil {
		t.Fatalf("nomad client: %v", n.sharedErr)
	}
	return n.shared
}

func (n *Nomad) client() (*nomad.Client, error) {
	cfg := nomad.DefaultConfig()
	cfg.Address = n.Addr
	cfg.SecretID = management()
	return nomad.NewClient(cfg)
}

// CreateNamespace creates a Nomad namespace for one test, so that its jobs are apart.
func (n *Nomad) CreateNamespace(t T, name string) string {
	t.Helper()
	if _, err := n.Client(t).Namespaces().Register(&nomad.Namespace{Name: name}, nil); err != nil {
		t.Fatalf("create nomad namespace %s: %v", name, err)
	}
	return name
}

// BuildLog reads the stdout of a build's executor task straight from Nomad, bypassing the
// bot: what the build really printed, secrets unmasked.
func (n *Nomad) BuildLog(t T, ns, job string) string {
	t.Helper()
	c := n.Client(t)
	q := &nomad.QueryOptions{Namespace: ns}
	stubs, _, err := c.Jobs().Allocations(job, true, q)
	if err != nil || len(stubs) == 0 {
		t.Fatalf("allocations of %s: %v %v", job, stubs, err)
	}
	a, _, err := c.Allocations().Info(stubs[0].ID, q)
	if err != nil {
		t.Fatalf("allocation of %s: %v", job, err)
	}
	cancel := make(chan struct{})
	defer close(cancel)
	frames, _ := c.AllocFS().Logs(a, false, "executor", "stdout", "start", 0, cancel, q)
	var out strings.Builder
	for f := range frames {
		out.Write(f.Data)
	}
	return out.String()
}

// PID is the agent's process id.
func (n *Nomad) PID() int { return n.proc.cmd.Process.Pid }

// Builds lists the dispatched jobs (the builds) of the repository at repoURL that Nomad
// holds in any namespace, by job ID, with their meta.
func (n *Nomad) Builds(t T, repoURL string) map[string]map[string]string {
	t.Helper()
	stubs, _, err := n.Client(t).Jobs().ListOptions(&nomad.JobListOptions{Fields: &nomad.JobListFields{Meta: true}}, &nomad.QueryOptions{Namespace: "*"})
	if err != nil {
		t.Fatalf("list nomad jobs: %v", err)
	}
	out := map[string]map[string]string{}
	for _, s := range stubs {
		if s.ParentID != "" && s.Meta["REPO_URL"] == repoURL {
			out[s.ID] = s.Meta
		}
	}
	return out
}
