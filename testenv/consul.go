package testenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	consul "github.com/hashicorp/consul/api"
)

// Consul is a running Consul agent: a dev agent (in-memory server), or a persistent one.
type Consul struct {
	// Addr is the HTTP API address, as CONSUL_HTTP_ADDR takes it (host:port).
	Addr string
	// Dir holds the agent's config and its log (consul.log).
	Dir  string
	bin  string
	args []string
	proc *process

	once      sync.Once
	shared    *consul.Client
	sharedErr error

	tokens tokens // minted by BotToken
}

const consulConfig = `
bind_addr   = "127.0.0.1"
client_addr = "127.0.0.1"
disable_update_check = true
log_level = "INFO"
ports {
  http     = %d
  server   = %d
  serf_lan = %d
  serf_wan = %d
  dns      = -1
  grpc     = -1
  grpc_tls = -1
}
acl {
  enabled        = true
  default_policy = "deny"
  down_policy    = "extend-cache"
  tokens {
    initial_management = %q
    agent              = %q
  }
}
`

// StartConsul starts a Consul dev agent from bin and waits until its KV store takes writes.
func StartConsul(ctx context.Context, bin string) (*Consul, error) {
	return startConsul(ctx, bin, false)
}

// StartPersistentConsul starts a Consul server of one that keeps its state in its data
// directory (a dev agent keeps it in memory): it can be stopped and started again with its
// keys and sessions, as a restarted cluster would be.
func StartPersistentConsul(ctx context.Context, bin string) (*Consul, error) {
	return startConsul(ctx, bin, true)
}

func startConsul(ctx context.Context, bin string, persistent bool) (*Consul, error) {
	dir, err := tempDir("consul")
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(4)
	if err != nil {
		return nil, err
	}
	cfg := filepath.Join(dir, "agent.hcl")
	body := fmt.Sprintf(consulConfig, ports[0], ports[1], ports[2], ports[3], management(), management())
	args := []string{"agent", "-dev", "-config-file=" + cfg}
	if persistent {
		body += fmt.Sprintf("server = true\nbootstrap_expect = 1\ndata_dir = %q\n", filepath.Join(dir, "data"))
		args = []string{"agent", "-config-file=" + cfg}
	}
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		return nil, err
	}
	c := &Consul{Addr: fmt.Sprintf("127.0.0.1:%d", ports[0]), Dir: dir, bin: bin, args: args}
	if err := c.start(ctx); err != nil {
		c.Stop()
		return nil, err
	}
	agents.Store(c.Addr, c)
	return c, nil
}

// start starts the agent and waits until its KV store takes writes.
func (c *Consul) start(ctx context.Context) error {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + c.Dir}
	p, err := startProcess("consul", c.bin, c.args, c.Dir, env, filepath.Join(c.Dir, "consul.log"))
	if err != nil {
		return err
	}
	c.proc = p
	client, err := c.client()
	if err != nil {
		return err
	}
	return waitFor(ctx, p, 60*time.Second, func(ctx context.Context) error {
		w := (&consul.WriteOptions{}).WithContext(ctx)
		// A write needs a leader; a restarted agent has the key already, so no check-and-set.
		_, err := client.KV().Put(&consul.KVPair{Key: "testenv/ready", Value: []byte("1")}, w)
		return err
	})
}

// StopAgent stops the agent (SIGTERM), as an operator restarting it would; a persistent
// agent started again (StartAgent) has its keys back.
func (c *Consul) StopAgent() {
	c.proc.stopOnly(10 * time.Second)
}

// StartAgent starts an agent stopped by StopAgent again, on the same ports and data.
func (c *Consul) StartAgent(ctx context.Context) error {
	return c.start(ctx)
}

// Stop stops the agent. Consul exits 1 on SIGTERM; that is its normal way out.
func (c *Consul) Stop() {
	if c.proc != nil {
		c.proc.stop(10 * time.Second)
	}
	_ = os.RemoveAll(c.Dir)
}

// Env returns the environment variables that point Consul's clients at this agent.
func (c *Consul) Env() []string {
	return []string{"CONSUL_HTTP_ADDR=" + c.Addr}
}

// Client returns an API client for the agent: one for all callers, so that its pooled
// connections are reused (Consul answers a client's 201st connection with 429).
func (c *Consul) Client(t T) *consul.Client {
	t.Helper()
	c.once.Do(func() { c.shared, c.sharedErr = c.client() })
	if c.sharedErr != nil {
		t.Fatalf("consul client: %v", c.sharedErr)
	}
	return c.shared
}

func (c *Consul) client() (*consul.Client, error) {
	cfg := consul.DefaultConfig()
	cfg.Address = c.Addr
	cfg.Token = management()
	return consul.NewClient(cfg)
}

// Prefix returns a KV key prefix unique to the test, for keys that must not meet another
// test's. The keys under it, and under its registry's run prefix, are deleted when the
// test ends.
func (c *Consul) Prefix(t interface {
	T
	Name() string
}) string {
	t.Helper()
	prefix := "test/" + strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()) + "/"
	client := c.Client(t)
	t.Cleanup(func() {
		_, _ = client.KV().DeleteTree(prefix, nil)
		_, _ = client.KV().DeleteTree(strings.TrimSuffix(prefix, "/")+"-run/", nil) // registry.RunPrefix
	})
	return prefix
}

// PID is the agent's process id.
func (c *Consul) PID() int { return c.proc.cmd.Process.Pid }
