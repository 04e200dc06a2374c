package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	consul "github.com/hashicorp/consul/api"
)

// Consul is a running Consul dev agent (in-memory server).
type Consul struct {
	// Addr is the HTTP API address, as CONSUL_HTTP_ADDR takes it (host:port).
	Addr string
	// Dir holds the agent's config and its log (consul.log).
	Dir  string
	proc *process
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
`

// StartConsul starts a Consul dev agent from bin and waits until its KV store takes writes.
func StartConsul(ctx context.Context, bin string) (*Consul, error) {
	dir, err := tempDir("consul")
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(4)
	if err != nil {
		return nil, err
	}
	cfg := filepath.Join(dir, "agent.hcl")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(consulConfig, ports[0], ports[1], ports[2], ports[3])), 0o644); err != nil {
		return nil, err
	}
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	p, err := startProcess("consul", bin, []string{"agent", "-dev", "-config-file=" + cfg}, dir, env, filepath.Join(dir, "consul.log"))
	if err != nil {
		return nil, err
	}
	c := &Consul{Addr: fmt.Sprintf("127.0.0.1:%d", ports[0]), Dir: dir, proc: p}
	client, err := c.client()
	if err != nil {
		c.Stop()
		return nil, err
	}
	err = waitFor(ctx, p, 60*time.Second, func(ctx context.Context) error {
		w := (&consul.WriteOptions{}).WithContext(ctx)
		ok, _, err := client.KV().CAS(&consul.KVPair{Key: "testenv/ready", Value: []byte("1")}, w)
		if err != nil {
			return err
		}
		if !ok {
			return errors.New("kv write not accepted yet")
		}
		return nil
	})
	if err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// Stop stops the agent. Consul exits 1 on SIGTERM; that is its normal way out.
func (c *Consul) Stop() {
	c.proc.stop(10 * time.Second)
	_ = os.RemoveAll(c.Dir)
}

// Env returns the environment variables that point Consul's clients at this agent.
func (c *Consul) Env() []string {
	return []string{"CONSUL_HTTP_ADDR=" + c.Addr}
}

// Client returns an API client for the agent.
func (c *Consul) Client(t T) *consul.Client {
	t.Helper()
	cl, err := c.client()
	if err != nil {
		t.Fatalf("consul client: %v", err)
	}
	return cl
}

func (c *Consul) client() (*consul.Client, error) {
	cfg := consul.DefaultConfig()
	cfg.Address = c.Addr
	return consul.NewClient(cfg)
}

// Prefix returns a KV key prefix unique to the test, for keys that must not meet another
// test's. The keys under it are deleted when the test ends.
func (c *Consul) Prefix(t interface {
	T
	Name() string
}) string {
	t.Helper()
	prefix := "test/" + strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()) + "/"
	client := c.Client(t)
	t.Cleanup(func() { _, _ = client.KV().DeleteTree(prefix, nil) })
	return prefix
}
