// Package benchkit is what the benchmark tools under bench/ share: running a tool with the
// servers it starts stopped on every way out, starting Consul and Nomad, a builder whose
// builds are never placed, Gitea's captured push, and medians.
package benchkit

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"runtime/pprof"
	"slices"

	nomad "github.com/hashicorp/nomad/api"

	"github.com/albatros-ci/albatros/forge/forgetest"
	"github.com/albatros-ci/albatros/orchestrator"
	"github.com/albatros-ci/albatros/testenv"
)

// cpuprofile is every tool's -cpuprofile flag (registered when the tool imports benchkit).
var cpuprofile = flag.String("cpuprofile", "", "write a CPU profile of the tool's whole run (the bot's code it runs and the load) to this file")

// Main runs a tool, after it has parsed its flags: run gets a program whose cleanups stop
// what it started, on success, failure or interrupt; a failure is printed with the tool's
// name and exits 1. With -cpuprofile, the run is profiled.
func Main(name string, run func(p *testenv.Program) error) {
	fail := func(err error) {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fail(err)
		}
		defer pprof.StopCPUProfile()
	}
	p := &testenv.Program{}
	defer p.Stop()
	if err := p.Run(func() error { return run(p) }); err != nil {
		p.Stop()
		pprof.StopCPUProfile()
		fail(err)
	}
}

// Servers starts the servers asked for (Consul, Nomad; nil when not asked), stopped by
// p's cleanups, and points CONSUL_HTTP_ADDR and NOMAD_ADDR at them for the clients the
// tool makes.
func Servers(ctx context.Context, p *testenv.Program, withConsul, withNomad bool) (*testenv.Consul, *testenv.Nomad, error) {
	var c *testenv.Consul
	var n *testenv.Nomad
	if withConsul {
		bin, err := testenv.Binary("consul")
		if err != nil {
			return nil, nil, err
		}
		if c, err = testenv.StartConsul(ctx, bin); err != nil {
			return nil, nil, err
		}
		p.Cleanup(c.Stop)
		os.Setenv("CONSUL_HTTP_ADDR", c.Addr)
	}
	if withNomad {
		bin, err := testenv.Binary("nomad")
		if err != nil {
			return nil, nil, err
		}
		if n, err = testenv.StartNomad(ctx, bin); err != nil {
			return nil, nil, err
		}
		p.Cleanup(n.Stop)
		os.Setenv("NOMAD_ADDR", n.Addr)
	}
	return c, n, nil
}

// Builder is a builder job in namespace ns: task runs it with the raw_exec driver and the
// config given; unplaced gives its group a count of 0, so that a build costs Nomad its job
// and an evaluation that places nothing (the job is then dead), not a run. (A constraint no
// node meets would leave a blocked evaluation per build, and Nomad walks its statistics of
// blocked evaluations on every new one: the benchmarks would measure that pile.)
func Builder(nc *nomad.Client, ns, job string, config map[string]any, unplaced bool, logs *nomad.LogConfig) error {
	j := nomad.NewBatchJob(job, job, "global", 50)
	j.Namespace = &ns
	j.ParameterizedJob = &nomad.ParameterizedJobConfig{Payload: "optional", MetaRequired: orchestrator.RequiredMeta, MetaOptional: orchestrator.OptionalMeta}
	count := 1
	if unplaced {
		count = 0
	}
	tg := nomad.NewTaskGroup(orchestrator.Group, count)
	zero, fail, no := 0, "fail", false
	tg.RestartPolicy = &nomad.RestartPolicy{Attempts: &zero, Mode: &fail}
	tg.ReschedulePolicy = &nomad.ReschedulePolicy{Attempts: &zero, Unlimited: &no}
	task := nomad.NewTask(orchestrator.Task, "raw_exec")
	task.Config = config
	task.LogConfig = logs
	cpu, mem := 100, 64
	task.Resources = &nomad.Resources{CPU: &cpu, MemoryMB: &mem}
	tg.AddTask(task)
	j.AddTaskGroup(tg)
	_, _, err := nc.Jobs().Register(j, &nomad.WriteOptions{Namespace: ns})
	return err
}

// GiteaPush is the body of the push captured from Gitea (forgetest), as a map to change,
// and its repository's clone URL.
func GiteaPush() (map[string]any, string, error) {
	raw, err := fs.ReadFile(forgetest.Gitea, "push_branch.json")
	if err != nil {
		return nil, "", err
	}
	var c struct {
		Body map[string]any `json:"body"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, "", err
	}
	repo, _ := c.Body["repository"].(map[string]any)
	cloneURL, _ := repo["clone_url"].(string)
	if cloneURL == "" {
		return nil, "", fmt.Errorf("the captured push names no clone URL")
	}
	return c.Body, cloneURL, nil
}

// Median is the middle value of v (the upper one of an even count).
func Median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// Uncompressed is a Nomad client for the agent at addr with the orchestrator's HTTP client
// (uncompressed answers, 64 idle connections): the cheapest client of Nomad, for
// baselines. (Nomad's Go client as it comes asks for gzip, which Nomad then spends a fresh
// gzip writer on for every answer.)
func Uncompressed(addr string) (*nomad.Client, error) {
	cfg := nomad.DefaultConfig()
	cfg.Address = addr
	cfg.HttpClient = orchestrator.HTTPClient()
	return nomad.NewClient(cfg)
}

// TempDir is a directory of the tool's own, removed by p's cleanups.
func TempDir(p *testenv.Program, prefix string) (string, error) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", err
	}
	p.Cleanup(func() { os.RemoveAll(dir) })
	return dir, nil
}
