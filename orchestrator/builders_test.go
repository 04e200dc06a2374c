package orchestrator_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	nomad "github.com/hashicorp/nomad/api"

	"github.com/albatros-ci/albatros/orchestrator"
)

// nomadCounter is a proxy in front of the package's Nomad that counts the reads of one
// job that are not blocking queries.
type nomadCounter struct {
	mu    sync.Mutex
	reads map[string]int
}

func (c *nomadCounter) count(job string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reads[job]
}

// countingOrchestrator returns an orchestrator that reaches the package's Nomad through a
// counting proxy.
func countingOrchestrator(t *testing.T) (*orchestrator.Orchestrator, *nomadCounter) {
	t.Helper()
	target, err := url.Parse(env.Nomad(t).Addr)
	if err != nil {
		t.Fatal(err)
	}
	c := &nomadCounter{reads: map[string]int{}}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.FlushInterval = -1
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if job, ok := strings.CutPrefix(r.URL.Path, "/v1/job/"); ok && r.Method == http.MethodGet && r.URL.Query().Get("index") == "" {
			c.mu.Lock()
			c.reads[job]++
			c.mu.Unlock()
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	t.Setenv("NOMAD_ADDR", srv.URL)
	o, err := orchestrator.New(orchestrator.NewMemoryLedger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(o.Close) // before the proxy closes: it waits for the builders' blocking queries
	return o, c
}

// Dispatches read the builder job once: its contract's verdict is kept, and kept fresh by a
// blocking query, so that a builder changed to break the contract, or removed, is refused
// as soon as Nomad says so.
func TestBuilderIsReadOnceAndKeptFresh(t *testing.T) {
	_, ctx := setup(t, "cached")
	o, reads := countingOrchestrator(t)
	b := registerDefault(t, ctx, o, "cached")
	dispatch := func(i int) error {
		_, err := o.Dispatch(ctx, orchestrator.DispatchRequest{Builder: b, Meta: map[string]string{
			"REPO_URL": "https://git.example.com/o/r.git", "COMMIT": fmt.Sprintf("%040x", i), "BRANCH": "main", "FLAVOR": "default",
		}})
		return err
	}
	for i := range 5 {
		if err := dispatch(i); err != nil {
			t.Fatal(err)
		}
	}
	if n := reads.count("builder"); n != 1 {
		t.Errorf("the builder was read %d times for 5 dispatches, want once", n)
	}

	// The builder changes and breaks the contract: refused once Nomad tells the watcher.
	job, _, err := env.Nomad(t).Client(t).Jobs().Info("builder", &nomad.QueryOptions{Namespace: "cached"})
	if err != nil {
		t.Fatal(err)
	}
	job.ParameterizedJob.MetaOptional = nil
	job.ParameterizedJob.MetaRequired = []string{"REPO_URL", "COMMIT"}
	if _, _, err := env.Nomad(t).Client(t).Jobs().Register(job, &nomad.WriteOptions{Namespace: "cached"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a builder changed to break the contract is refused", func() error {
		if err := dispatch(100); !errors.Is(err, orchestrator.ErrContract) {
			return fmt.Errorf("dispatch: %v", err)
		}
		return nil
	})

	// The builder is removed: refused as not found.
	if _, _, err := env.Nomad(t).Client(t).Jobs().Deregister("builder", true, &nomad.WriteOptions{Namespace: "cached"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a removed builder is refused", func() error {
		if err := dispatch(101); !errors.Is(err, orchestrator.ErrNotFound) {
			return fmt.Errorf("dispatch: %v", err)
		}
		return nil
	})
	// Registered again as it should be: dispatches work again.
	registerDefault(t, ctx, o, "cached")
	eventually(t, "a builder registered again works", func() error { return dispatch(102) })
}

func eventually(t *testing.T, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still %v after 10 s", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
