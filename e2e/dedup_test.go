package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	consul "github.com/hashicorp/consul/api"
	nomad "github.com/hashicorp/nomad/api"

	"github.com/albatros-ci/albatros/hcl"
	"github.com/albatros-ci/albatros/orchestrator"
	"github.com/albatros-ci/albatros/pipeline"
	"github.com/albatros-ci/albatros/registry"
)

// A build's dispatch on the real Nomad and Consul, as two bots make it: the holder of the
// build key's claim dispatches without Nomad's idempotency token; every other dispatch of
// the key, at once or later, finds its build; a bot that takes over the claim of a bot that
// died after dispatching, before recording the job, finds that build by its key; a build
// made by a bot without Consul stands, and a later one of its key discards itself.
func TestDispatchOncePerKey(t *testing.T) {
	n, c := env.Nomad(t), env.Consul(t)
	t.Setenv("NOMAD_ADDR", n.Addr)
	t.Setenv("CONSUL_HTTP_ADDR", c.Addr)
	ns := n.CreateNamespace(t, "dedup")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	prefix := fmt.Sprintf("dedup-%d/", time.Now().UnixNano())

	// Two bots: an orchestrator and a registry each.
	var pipes []*pipeline.Pipeline
	var orchs []*orchestrator.Orchestrator
	for range 2 {
		reg, err := registry.New(prefix, nil)
		if err != nil {
			t.Fatal(err)
		}
		o, err := orchestrator.New(reg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(o.Close)
		orchs = append(orchs, o)
		pipes = append(pipes, pipeline.New(pipeline.Config{Builds: o, Claims: reg}))
	}
	spec := hcl.Builders["builder"]
	b, err := orchs[0].RegisterBuilder(ctx, spec.Source, spec.VarFile(map[string]string{"namespace": ns, "driver": "raw_exec", "cpu": "100", "memory": "64"}))
	if err != nil {
		t.Fatal(err)
	}
	meta := map[string]string{"REPO_URL": "https://git.example.com/org/app.git", "COMMIT": strings.Repeat("a", 40), "BRANCH": "main", "FLAVOR": "default"}
	children := func() []*nomad.JobListStub {
		t.Helper()
		jobs, _, err := n.Client(t).Jobs().List(&nomad.QueryOptions{Namespace: ns})
		if err != nil {
			t.Fatal(err)
		}
		var out []*nomad.JobListStub
		for _, j := range jobs {
			if j.ParentID == b.Job {
				out = append(out, j)
			}
		}
		return out
	}

	// Eight dispatches of one key, four through each bot, at once: one build.
	const key = "albatros-e2e-once"
	var wg sync.WaitGroup
	got := make([]orchestrator.Dispatched, 8)
	errs := make([]error, 8)
	for i := range 8 {
		wg.Go(func() {
			got[i], errs[i] = pipes[i%2].DispatchOnce(ctx, orchestrator.DispatchRequest{Builder: b, Meta: meta, IdempotencyToken: key})
		})
	}
	wg.Wait()
	made := 0
	for i := range 8 {
		if errs[i] != nil {
			t.Fatalf("dispatch %d: %v", i, errs[i])
		}
		if got[i].JobID != got[0].JobID {
			t.Errorf("dispatch %d made or found %s, dispatch 0 %s", i, got[i].JobID, got[0].JobID)
		}
		if !got[i].Duplicate {
			made++
		}
	}
	if all := children(); len(all) != 1 || made != 1 {
		t.Fatalf("%d builds in Nomad, %d dispatches made one; want 1 and 1", len(all), made)
	}
	job, _, err := n.Client(t).Jobs().Info(got[0].JobID, &nomad.QueryOptions{Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	if job.DispatchIdempotencyToken != nil && *job.DispatchIdempotencyToken != "" {
		t.Errorf("the claim holder's dispatch carried Nomad's token %q: Nomad scans every child for it", *job.DispatchIdempotencyToken)
	}

	// A bot that died between its dispatch and its record: the claim is stale, the build
	// in Nomad. The next dispatch of the key takes the claim over and finds the build.
	const dead = "albatros-e2e-dead"
	stale, _ := json.Marshal(registry.Dedup{At: time.Now().Add(-registry.ClaimStale - time.Second)})
	if _, err := c.Client(t).KV().Put(&consul.KVPair{Key: registry.RunPrefix(prefix) + "dedup/" + dead, Value: stale}, nil); err != nil {
		t.Fatal(err)
	}
	died, err := orchs[0].Dispatch(ctx, orchestrator.DispatchRequest{Builder: b, Meta: meta, Key: dead})
	if err != nil {
		t.Fatal(err)
	}
	found, err := pipes[1].DispatchOnce(ctx, orchestrator.DispatchRequest{Builder: b, Meta: meta, IdempotencyToken: dead})
	if err != nil {
		t.Fatal(err)
	}
	if found.JobID != died.JobID || found.Duplicate {
		t.Errorf("after the take-over: %+v, want the dead bot's build %s, adopted (its status is still to write)", found, died.JobID)
	}
	if all := children(); len(all) != 2 {
		t.Errorf("%d builds in Nomad, want 2 (none doubled)", len(all))
	}
	pair, _, err := c.Client(t).KV().Get(registry.RunPrefix(prefix)+"dedup/"+dead, nil)
	var rec registry.Dedup
	if err != nil || pair == nil || json.Unmarshal(pair.Value, &rec) != nil || rec.JobID != died.JobID {
		t.Errorf("record after the take-over: %v %v, want settled with %s", pair, err, died.JobID)
	}

	// A third bot whose Consul is unreachable dispatches a build first (with Nomad's token,
	// holding no claim); a healthy bot then claims the key, dispatches without the token,
	// finds the earlier build of the key, and discards its own: one build stands.
	t.Setenv("CONSUL_HTTP_ADDR", "127.0.0.1:1")
	cut, err := registry.New(prefix, nil)
	if err != nil {
		t.Fatal(err)
	}
	lone := pipeline.New(pipeline.Config{Builds: orchs[1], Claims: cut})
	const split = "albatros-e2e-split"
	first, err := lone.DispatchOnce(ctx, orchestrator.DispatchRequest{Builder: b, Meta: meta, IdempotencyToken: split})
	if err != nil {
		t.Fatalf("dispatch without Consul: %v", err)
	}
	second, err := pipes[0].DispatchOnce(ctx, orchestrator.DispatchRequest{Builder: b, Meta: meta, IdempotencyToken: split})
	if err != nil {
		t.Fatal(err)
	}
	if second.JobID != first.JobID || !second.Duplicate {
		t.Errorf("the healthy bot's dispatch: %+v, want the earlier build %s", second, first.JobID)
	}
	standing := 0
	for _, j := range children() {
		job, _, err := n.Client(t).Jobs().Info(j.ID, &nomad.QueryOptions{Namespace: ns})
		if err != nil {
			t.Fatal(err)
		}
		if job.Stop == nil || !*job.Stop {
			standing++
		}
	}
	if all := children(); len(all) != 3 || standing != 3 {
		t.Errorf("%d builds in Nomad, %d not stopped; want 3 and 3 (the healthy bot's second build of the key discarded)", len(all), standing)
	}
}
