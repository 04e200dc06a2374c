package orchestrator_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	nomad "github.com/hashicorp/nomad/api"

	"github.com/albatros-ci/albatros/hcl"
	"github.com/albatros-ci/albatros/orchestrator"
	"github.com/albatros-ci/albatros/testenv"
)

var env = testenv.New(testenv.Options{Nomad: true})

func TestMain(m *testing.M) { os.Exit(env.Run(m)) }

// setup returns an orchestrator on the package's Nomad and a namespace of the test's own.
func setup(t *testing.T, ns string) (*orchestrator.Orchestrator, context.Context) {
	t.Helper()
	n := env.Nomad(t)
	n.CreateNamespace(t, ns)
	o, err := orchestrator.New(orchestrator.NewMemoryLedger())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return o, ctx
}

// registerDefault registers the shipped default builder with raw_exec in ns.
func registerDefault(t *testing.T, ctx context.Context, o *orchestrator.Orchestrator, ns string) orchestrator.Builder {
	t.Helper()
	spec := hcl.Builders["builder"]
	b, err := o.RegisterBuilder(ctx, spec.Source, spec.VarFile(map[string]string{"namespace": ns, "driver": "raw_exec", "cpu": "100", "memory": "128"}))
	if err != nil {
		t.Fatalf("register default builder: %v", err)
	}
	if b.Namespace != ns || b.Job != "builder" {
		t.Fatalf("registered %s, want %s/builder", b, ns)
	}
	return b
}

func TestShippedBuildersParseWithNomad(t *testing.T) {
	o, ctx := setup(t, "parse")
	for name, spec := range hcl.Builders {
		for _, driver := range []string{"raw_exec", "exec", "docker"} {
			job, err := o.ParseJob(ctx, spec.Source, spec.VarFile(map[string]string{"namespace": "parse", "driver": driver}))
			if err != nil {
				t.Fatalf("%s with driver %s: %v", name, driver, err)
			}
			if *job.Namespace != "parse" || *job.ID != name {
				t.Fatalf("%s: parsed job %s in %s", name, *job.ID, *job.Namespace)
			}
			if name == "builder" {
				exec := job.TaskGroups[0].Tasks[0]
				if exec.Driver != driver {
					t.Fatalf("builder with driver %s parsed as %s", driver, exec.Driver)
				}
				_, hasImage := exec.Config["image"]
				if hasImage != (driver == "docker") {
					t.Fatalf("builder with driver %s: config %v", driver, exec.Config)
				}
			}
		}
	}
}

func TestNixBuilderShape(t *testing.T) {
	o, ctx := setup(t, "nix")
	spec := hcl.Builders["nixcache"]
	job, err := o.ParseJob(ctx, spec.Source, spec.VarFile(map[string]string{"namespace": "nix", "store": "/var/cache/albatros"}))
	if err != nil {
		t.Fatalf("parse nixcache: %v", err)
	}
	tasks := map[string]map[string]any{}
	lifecycle := map[string]string{}
	for _, task := range job.TaskGroups[0].Tasks {
		tasks[task.Name] = task.Config
		if task.Lifecycle != nil {
			lifecycle[task.Name] = task.Lifecycle.Hook
			if task.Lifecycle.Sidecar {
				lifecycle[task.Name] += "+sidecar"
			}
		}
	}
	want := map[string]string{"init-store": "prestart", "nix-daemon": "prestart+sidecar", "gc": "poststop"}
	for task, hook := range want {
		if lifecycle[task] != hook {
			t.Errorf("task %s: lifecycle %q, want %q", task, lifecycle[task], hook)
		}
	}
	volumes := func(task string) string {
		var out []string
		for _, v := range tasks[task]["volumes"].([]any) {
			out = append(out, v.(string))
		}
		return strings.Join(out, ",")
	}
	if v := volumes("executor"); v != "/var/cache/albatros:/nix:ro" {
		t.Errorf("executor mounts %q: the build must see the store read-only", v)
	}
	if v := volumes("nix-daemon"); v != "/var/cache/albatros:/nix" {
		t.Errorf("nix-daemon mounts %q: the daemon writes the store", v)
	}
	var gc string
	for _, task := range job.TaskGroups[0].Tasks {
		if task.Name == "gc" {
			if len(task.Templates) == 0 || task.Templates[0].EmbeddedTmpl == nil {
				t.Fatal("gc task has no script")
			}
			gc = *task.Templates[0].EmbeddedTmpl
		}
	}
	for _, want := range []string{"-mtime +7 -delete", "nix-store --gc", "--add-root"} {
		if !strings.Contains(gc, want) {
			t.Errorf("gc script lacks %q", want)
		}
	}
}

func TestContractViolationsAreExplained(t *testing.T) {
	o, ctx := setup(t, "contract")
	cases := map[string]struct{ hcl, want string }{
		"not parameterized": {`job "x" {
  type = "batch"
  group "runner" {
    task "executor" {
      driver = "raw_exec"
      config { command = "true" }
    }
  }
}`, `job "x" does not meet the builder contract: not parameterized`},
		"service job": {`job "x" {
  type = "service"
  parameterized { meta_required = ["REPO_URL", "COMMIT", "BRANCH", "FLAVOR"] }
  group "runner" {
    task "executor" {
      driver = "raw_exec"
      config { command = "true" }
    }
  }
}`, `type "service", not batch`},
		"missing meta and wrong names": {`job "x" {
  type = "batch"
  parameterized { meta_required = ["REPO_URL", "COMMIT", "DEPLOY_KEY"] }
  group "build" {
    task "main" {
      driver = "raw_exec"
      config { command = "true" }
    }
  }
}`, `meta BRANCH, FLAVOR not accepted; requires meta DEPLOY_KEY; no task "executor" in group "runner"`},
	}
	for name, c := range cases {
		_, err := o.ParseJob(ctx, c.hcl, "")
		if !errors.Is(err, orchestrator.ErrContract) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want ErrContract saying %q", name, err, c.want)
		}
	}
	// A builder that does not exist is reported as such when dispatched to.
	_, err := o.Dispatch(ctx, orchestrator.DispatchRequest{Builder: orchestrator.Builder{Namespace: "contract", Job: "nope"}})
	if !errors.Is(err, orchestrator.ErrNotFound) {
		t.Fatalf("dispatch to a missing builder: %v, want ErrNotFound", err)
	}
}

// outcomes collects what Watch reports, by job.
type outcomes struct {
	mu  sync.Mutex
	got map[string][]orchestrator.Outcome
}

func watch(t *testing.T, ctx context.Context, o *orchestrator.Orchestrator) *outcomes {
	t.Helper()
	out := &outcomes{got: map[string][]orchestrator.Outcome{}}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = o.Watch(ctx, func(_ context.Context, oc orchestrator.Outcome) {
			out.mu.Lock()
			out.got[oc.JobID] = append(out.got[oc.JobID], oc)
			out.mu.Unlock()
		}, func(err error) { t.Logf("event stream: %v", err) }, orchestrator.WatchOptions{})
	}()
	t.Cleanup(func() { cancel(); <-done })
	return out
}

// wait returns the outcomes of job once a final one has arrived.
func (o *outcomes) wait(t *testing.T, job string) []orchestrator.Outcome {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		o.mu.Lock()
		got := append([]orchestrator.Outcome(nil), o.got[job]...)
		o.mu.Unlock()
		for _, oc := range got {
			if oc.Final {
				return got
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no final outcome for %s within 90s", job)
	return nil
}

const script = `#!/bin/sh
echo "commit=$COMMIT branch=$BRANCH flavor=$FLAVOR tag=${TAG-unset} pr=${PR-unset}"
echo "secret=$DEPLOY_TOKEN"
echo "file=$ALBATROS_SECRETS_FILE"
echo "to stderr" >&2
exit ${EXIT_WITH:-0}
`

func TestDispatchFollowAndOutcome(t *testing.T) {
	o, ctx := setup(t, "dispatch")
	b := registerDefault(t, ctx, o, "dispatch")
	seen := watch(t, ctx, o)
	url, sha := testenv.LocalRepo(t, map[string]testenv.File{".albatros": {Content: script, Executable: true}})

	d, err := o.Dispatch(ctx, orchestrator.DispatchRequest{
		Builder:          b,
		Meta:             map[string]string{"REPO_URL": url, "COMMIT": sha, "BRANCH": "main", "FLAVOR": "default", "TAG": "v1.0"},
		Payload:          []byte("export DEPLOY_TOKEN='tok-123'\n"),
		HasSecrets:       true,
		IdempotencyToken: "t-" + sha,
	})
	if err != nil {
		t.Fatalf("dispatch: %v", err)
	}
	if d.Duplicate || !orchestrator.IsBuildID(d.JobID) || !strings.HasPrefix(d.JobID, "builder/dispatch-") {
		t.Fatalf("dispatched %+v", d)
	}

	var log bytes.Buffer
	out, err := o.Follow(ctx, "dispatch", d.JobID, orchestrator.Stdout, &log)
	if err != nil {
		t.Fatalf("follow: %v", err)
	}
	if out.Result != orchestrator.Success {
		t.Fatalf("outcome %+v; log:\n%s", out, log.String())
	}
	for _, want := range []string{
		"albatros: building " + url + " at " + sha,
		"commit=" + sha + " branch=main flavor=default tag=v1.0 pr=unset",
		"secret=tok-123",
		"to stderr", // the default builder merges stderr into the log
	} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, log.String())
		}
	}
	if !strings.Contains(log.String(), "/albatros-secrets") {
		t.Errorf("ALBATROS_SECRETS_FILE not in the secrets dir:\n%s", log.String())
	}

	got := seen.wait(t, d.JobID)
	if last := got[len(got)-1]; last.Result != orchestrator.Success || last.Namespace != "dispatch" {
		t.Fatalf("watched outcome %+v", last)
	}

	build, err := o.Build(ctx, "dispatch", d.JobID)
	if err != nil {
		t.Fatal(err)
	}
	if build.Meta["COMMIT"] != sha || build.Meta["REPO_URL"] != url || string(build.Payload) != "export DEPLOY_TOKEN='tok-123'\n" || build.Builder != "builder" {
		t.Fatalf("build read back: %+v", build)
	}

	// The same token again starts nothing.
	again, err := o.Dispatch(ctx, orchestrator.DispatchRequest{
		Builder: b, Meta: map[string]string{"REPO_URL": url, "COMMIT": sha, "BRANCH": "main", "FLAVOR": "default"},
		IdempotencyToken: "t-" + sha,
	})
	if err != nil || !again.Duplicate || again.JobID != d.JobID {
		t.Fatalf("repeated dispatch: %+v %v, want duplicate of %s", again, err, d.JobID)
	}
}

func TestFailingBuild(t *testing.T) {
	o, ctx := setup(t, "failing")
	b := registerDefault(t, ctx, o, "failing")
	seen := watch(t, ctx, o)
	url, sha := testenv.LocalRepo(t, map[string]testenv.File{".albatros": {Content: "#!/bin/sh\necho about to fail\nexit 3\n", Executable: true}})
	d, err := o.Dispatch(ctx, orchestrator.DispatchRequest{Builder: b, Meta: map[string]string{"REPO_URL": url, "COMMIT": sha, "BRANCH": "main", "FLAVOR": "default"}})
	if err != nil {
		t.Fatal(err)
	}
	got := seen.wait(t, d.JobID)
	last := got[len(got)-1]
	if last.Result != orchestrator.Failure || !strings.Contains(last.Description, "exit code 3") {
		t.Fatalf("outcome %+v, want failure with exit code 3", last)
	}
	// Following a build that has ended gives its whole log and the same outcome.
	var log bytes.Buffer
	out, err := o.Follow(ctx, "failing", d.JobID, orchestrator.Stdout, &log)
	if err != nil || out.Result != orchestrator.Failure || !strings.Contains(log.String(), "about to fail") {
		t.Fatalf("follow after the end: %+v %v\n%s", out, err, log.String())
	}

	// A repository without an executable .albatros fails with a message saying so.
	url2, sha2 := testenv.LocalRepo(t, map[string]testenv.File{".albatros": {Content: "#!/bin/sh\necho hi\n"}})
	d2, err := o.Dispatch(ctx, orchestrator.DispatchRequest{Builder: b, Meta: map[string]string{"REPO_URL": url2, "COMMIT": sha2, "BRANCH": "main", "FLAVOR": "default"}})
	if err != nil {
		t.Fatal(err)
	}
	log.Reset()
	out, err = o.Follow(ctx, "failing", d2.JobID, orchestrator.Stdout, &log)
	if err != nil || out.Result != orchestrator.Failure || !strings.Contains(log.String(), ".albatros is not executable") {
		t.Fatalf("non-executable .albatros: %+v %v\n%s", out, err, log.String())
	}
}

// A build that prints slowly is followed live: its first line arrives before it ends.
func TestFollowIsLive(t *testing.T) {
	o, ctx := setup(t, "live")
	b := registerDefault(t, ctx, o, "live")
	url, sha := testenv.LocalRepo(t, map[string]testenv.File{".albatros": {Content: "#!/bin/sh\necho first\nsleep 4\necho second\n", Executable: true}})
	d, err := o.Dispatch(ctx, orchestrator.DispatchRequest{Builder: b, Meta: map[string]string{"REPO_URL": url, "COMMIT": sha, "BRANCH": "main", "FLAVOR": "default"}})
	if err != nil {
		t.Fatal(err)
	}
	w := &signalWriter{want: "first", seen: make(chan struct{})}
	result := make(chan orchestrator.Outcome, 1)
	go func() {
		out, err := o.Follow(ctx, "live", d.JobID, orchestrator.Stdout, w)
		if err != nil {
			t.Errorf("follow: %v", err)
		}
		result <- out
	}()
	select {
	case <-w.seen:
	case <-result:
		t.Fatalf("follow ended before the first line was seen; log: %q", w.String())
	case <-time.After(60 * time.Second):
		t.Fatal("first line never arrived")
	}
	select {
	case out := <-result:
		t.Fatalf("follow ended with %+v while the build was still sleeping", out)
	default:
	}
	// Every line once, in order: what following delivered and what the final read after
	// the task's end added, neither lost nor repeated.
	out := <-result
	if log := w.String(); out.Result != orchestrator.Success || !strings.HasSuffix(log, "\nfirst\nsecond\n") || strings.Count(log, "first") != 1 || strings.Count(log, "albatros: building") != 1 {
		t.Fatalf("outcome %+v, log %q", out, log)
	}
}

// signalWriter closes seen once want has been written.
type signalWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	seen chan struct{}
	once sync.Once
}

func (s *signalWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf.Write(p)
	if strings.Contains(s.buf.String(), s.want) {
		s.once.Do(func() { close(s.seen) })
	}
	return len(p), nil
}

func (s *signalWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// A builder of the user's own: optional meta it does not declare is left out, and a builder
// that forbids payloads cannot be given secrets.
func TestOwnBuilderMetaAndPayload(t *testing.T) {
	o, ctx := setup(t, "byo")
	const own = `job "mine" {
  namespace = "byo"
  type = "batch"
  parameterized {
    payload       = "forbidden"
    meta_required = ["REPO_URL", "COMMIT", "BRANCH", "FLAVOR"]
  }
  group "runner" {
    task "executor" {
      driver = "raw_exec"
      config {
        command = "/bin/sh"
        args    = ["-c", "echo own builder for $NOMAD_META_COMMIT"]
      }
      resources {
        cpu    = 50
        memory = 32
      }
    }
  }
}`
	b, err := o.RegisterBuilder(ctx, own, "")
	if err != nil {
		t.Fatal(err)
	}
	meta := map[string]string{"REPO_URL": "file:///nowhere", "COMMIT": "abc", "BRANCH": "", "FLAVOR": "default", "TAG": "v1", "PR": "7"}
	if _, err := o.Dispatch(ctx, orchestrator.DispatchRequest{Builder: b, Meta: meta, Payload: []byte("x"), HasSecrets: true}); !errors.Is(err, orchestrator.ErrContract) {
		t.Fatalf("secrets to a payload-forbidding builder: %v, want ErrContract", err)
	}
	d, err := o.Dispatch(ctx, orchestrator.DispatchRequest{Builder: b, Meta: meta, Payload: []byte("# no secrets\n")})
	if err != nil {
		t.Fatalf("dispatch without secrets: %v", err)
	}
	var log bytes.Buffer
	out, err := o.Follow(ctx, "byo", d.JobID, orchestrator.Stdout, &log)
	if err != nil || out.Result != orchestrator.Success || log.String() != "own builder for abc\n" {
		t.Fatalf("own builder: %+v %v %q", out, err, log.String())
	}
	build, err := o.Build(ctx, "byo", d.JobID)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := build.Meta["TAG"]; ok {
		t.Fatalf("TAG reached a builder that does not accept it: %v", build.Meta)
	}
}

// A build no node can ever run is reported as an error with Nomad's reason, and stopped.
func TestUnplaceableBuild(t *testing.T) {
	o, ctx := setup(t, "unplaceable")
	seen := watch(t, ctx, o)
	const impossible = `job "windows-only" {
  namespace = "unplaceable"
  type = "batch"
  parameterized {
    meta_required = ["REPO_URL", "COMMIT", "BRANCH", "FLAVOR"]
  }
  constraint {
    attribute = "${attr.kernel.name}"
    value     = "windows"
  }
  group "runner" {
    task "executor" {
      driver = "raw_exec"
      config { command = "true" }
    }
  }
}`
	b, err := o.RegisterBuilder(ctx, impossible, "")
	if err != nil {
		t.Fatal(err)
	}
	d, err := o.Dispatch(ctx, orchestrator.DispatchRequest{Builder: b, Meta: map[string]string{"REPO_URL": "x", "COMMIT": "y", "BRANCH": "z", "FLAVOR": "default"}})
	if err != nil {
		t.Fatal(err)
	}
	got := seen.wait(t, d.JobID)
	last := got[len(got)-1]
	if last.Result != orchestrator.Error || !strings.Contains(last.Description, "no node can run this build") || !strings.Contains(last.Description, "kernel.name") {
		t.Fatalf("outcome %+v", last)
	}
	// The log page's view of it: no log, the same reason.
	var log bytes.Buffer
	out, err := o.Follow(ctx, "unplaceable", d.JobID, orchestrator.Stdout, &log)
	if err != nil || out.Result != orchestrator.Error || !strings.Contains(out.Description, "no node can run this build") || log.Len() != 0 {
		t.Fatalf("follow of an unplaced build: %+v %v %q", out, err, log.String())
	}
	build, err := o.Build(ctx, "unplaceable", d.JobID)
	if err != nil || build.Status != "dead" {
		t.Fatalf("unplaceable build not stopped: %+v %v", build, err)
	}
}

// Registering a builder creates its namespace when Nomad does not have it yet.
func TestRegisterBuilderCreatesNamespace(t *testing.T) {
	o, ctx := setup(t, "unrelated")
	ns := "fresh-" + strings.ToLower(t.Name()[len(t.Name())-6:])
	spec := hcl.Builders["builder"]
	b, err := o.RegisterBuilder(ctx, spec.Source, spec.VarFile(map[string]string{"namespace": ns, "driver": "raw_exec"}))
	if err != nil {
		t.Fatalf("register into a missing namespace: %v", err)
	}
	if _, _, err := env.Nomad(t).Client(t).Namespaces().Info(ns, nil); err != nil || b.Namespace != ns {
		t.Fatalf("namespace %s not created: %v (%+v)", ns, err, b)
	}
	// Registering again (the bot's next start) is harmless.
	if _, err := o.RegisterBuilder(ctx, spec.Source, spec.VarFile(map[string]string{"namespace": ns, "driver": "raw_exec"})); err != nil {
		t.Fatalf("register again: %v", err)
	}
}

// Another tenant of the cluster imitates a build: in a namespace of its own, a job with
// the builder contract, dispatched with the digest of one of the bot's real builds in its
// ID and meta naming the same repository and commit; and one with the bot's marker and a
// digest of its own. Neither is a build: Build refuses them, Recent leaves them out, and
// Watch reports no outcome of theirs, while the bot's own build is reported.
func TestBuildRefusesForeignDispatches(t *testing.T) {
	o, ctx := setup(t, "ours")
	b := registerDefault(t, ctx, o, "ours")
	seen := watch(t, ctx, o)
	c := env.Nomad(t).Client(t)
	env.Nomad(t).CreateNamespace(t, "evil")
	const url = "https://git.example.com/org/app.git"
	sha := strings.Repeat("c", 40)
	meta := map[string]string{"REPO_URL": url, "COMMIT": sha, "BRANCH": "main", "FLAVOR": "default"}
	d, err := o.Dispatch(ctx, orchestrator.DispatchRequest{Builder: b, Meta: meta, Key: "the bot's own", Holder: 42})
	if err != nil {
		t.Fatal(err)
	}
	job, err := c.Jobs().ParseHCL(`job "builder" {
  namespace = "evil"
  type = "batch"
  parameterized { meta_required = ["REPO_URL", "COMMIT", "BRANCH", "FLAVOR"] }
  group "runner" {
    task "executor" {
      driver = "raw_exec"
      config { command = "true" }
    }
  }
}`, true)
	if err != nil {
		t.Fatal(err)
	}
	w := &nomad.WriteOptions{Namespace: "evil"}
	if _, _, err := c.Jobs().Register(job, w); err != nil {
		t.Fatal(err)
	}
	var foreign []string
	for _, prefix := range []string{"albatros-" + orchestrator.KeyDigest("the bot's own"), "albatros-" + orchestrator.KeyDigest("another")} {
		resp, _, err := c.Jobs().DispatchOpts(&nomad.DispatchOptions{JobID: "builder", Meta: meta, IdPrefixTemplate: prefix}, w)
		if err != nil {
			t.Fatal(err)
		}
		if !orchestrator.IsBuildID(resp.DispatchedJobID) {
			t.Fatalf("%s should look like a build for this test to mean anything", resp.DispatchedJobID)
		}
		foreign = append(foreign, resp.DispatchedJobID)
	}
	for _, id := range foreign {
		if _, err := o.Build(ctx, "evil", id); !errors.Is(err, orchestrator.ErrNotOurs) {
			t.Errorf("Build of the foreign %s: %v, want ErrNotOurs", id, err)
		}
	}
	// A tenant who may dispatch the bot's own builder, in its namespace, with the digest
	// of the bot's build: another branch's meta, or the very same meta, is not the build.
	forged := map[string]string{"REPO_URL": url, "COMMIT": sha, "BRANCH": "release", "FLAVOR": "default"}
	for _, m := range []map[string]string{forged, meta} {
		resp, _, err := c.Jobs().DispatchOpts(&nomad.DispatchOptions{JobID: b.Job, Meta: m, IdPrefixTemplate: "albatros-" + orchestrator.KeyDigest("the bot's own")}, &nomad.WriteOptions{Namespace: b.Namespace})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := o.Build(ctx, b.Namespace, resp.DispatchedJobID); !errors.Is(err, orchestrator.ErrNotOurs) {
			t.Errorf("Build of a look-alike of the bot's build in its namespace (BRANCH %s): %v, want ErrNotOurs", m["BRANCH"], err)
		}
	}
	if got, err := o.Build(ctx, d.Namespace, d.JobID); err != nil || got.Secrets || !got.HolderKnown || got.Holder != 42 {
		t.Errorf("Build of the bot's own: %+v, %v; want it, without secrets, dispatched for organization 42", got, err)
	}
	recent, err := o.Recent(ctx, url, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(recent) != 1 || recent[0].ID != d.JobID {
		t.Errorf("Recent = %+v, want the bot's build alone", recent)
	}
	seen.wait(t, d.JobID)
	time.Sleep(2 * time.Second) // the foreign jobs, which do nothing, have ended too
	seen.mu.Lock()
	defer seen.mu.Unlock()
	for _, id := range foreign {
		if got := seen.got[id]; len(got) > 0 {
			t.Errorf("Watch reported the foreign %s: %+v", id, got)
		}
	}
}

// Nomad resolves the namespace wildcard of an event stream when it subscribes: a build in a
// namespace created after the bot started watching must still be reported.
func TestWatchSeesNamespacesCreatedLater(t *testing.T) {
	o, ctx := setup(t, "before")
	seen := watch(t, ctx, o)
	time.Sleep(500 * time.Millisecond) // the stream is subscribed

	spec := hcl.Builders["builder"]
	b, err := o.RegisterBuilder(ctx, spec.Source, spec.VarFile(map[string]string{"namespace": "created-later", "driver": "raw_exec", "cpu": "100", "memory": "64"}))
	if err != nil {
		t.Fatal(err)
	}
	url, sha := testenv.LocalRepo(t, map[string]testenv.File{".albatros": {Content: "#!/bin/sh\necho late\n", Executable: true}})
	d, err := o.Dispatch(ctx, orchestrator.DispatchRequest{Builder: b, Meta: map[string]string{"REPO_URL": url, "COMMIT": sha, "BRANCH": "main", "FLAVOR": "default"}})
	if err != nil {
		t.Fatal(err)
	}
	got := seen.wait(t, d.JobID)
	if last := got[len(got)-1]; last.Result != orchestrator.Success || last.Namespace != "created-later" {
		t.Fatalf("outcome %+v", last)
	}
}

// Recent lists a repository's builds from Nomad's job list (with meta) and allocation list,
// newest first, with their states and run times.
func TestRecent(t *testing.T) {
	o, ctx := setup(t, "recent")
	b := registerDefault(t, ctx, o, "recent")
	seen := watch(t, ctx, o)
	pass, passSHA := testenv.LocalRepo(t, map[string]testenv.File{".albatros": {Content: "#!/bin/sh\necho ok\n", Executable: true}})
	fail, failSHA := testenv.LocalRepo(t, map[string]testenv.File{".albatros": {Content: "#!/bin/sh\nexit 4\n", Executable: true}})
	dispatch := func(url, sha, branch string) string {
		d, err := o.Dispatch(ctx, orchestrator.DispatchRequest{Builder: b, Meta: map[string]string{"REPO_URL": url, "COMMIT": sha, "BRANCH": branch, "FLAVOR": "default"}})
		if err != nil {
			t.Fatal(err)
		}
		seen.wait(t, d.JobID)
		return d.JobID
	}
	first := dispatch(pass, passSHA, "main")
	time.Sleep(1100 * time.Millisecond) // submit times a second apart: a stable order
	second := dispatch(fail, failSHA, "topic")

	all, err := o.Recent(ctx, "file://", 10)
	if err != nil {
		t.Fatal(err)
	}
	var mine []orchestrator.Summary
	for _, s := range all {
		if s.ID == first || s.ID == second {
			mine = append(mine, s)
		}
	}
	if len(mine) != 2 || mine[0].ID != second || mine[1].ID != first {
		t.Fatalf("Recent = %+v, want the failing build, then the passing one", all)
	}
	if mine[0].State != "failure" || mine[1].State != "success" {
		t.Errorf("states %s, %s; want failure, success", mine[0].State, mine[1].State)
	}
	for _, s := range mine {
		if s.Namespace != "recent" || s.Started.IsZero() || s.Finished.Before(s.Started) || s.Meta["COMMIT"] == "" || s.Submitted.IsZero() {
			t.Errorf("summary %+v", s)
		}
	}
	// Only the repositories asked for.
	only, err := o.Recent(ctx, pass, 10)
	if err != nil || len(only) != 1 || only[0].ID != first || only[0].Meta["BRANCH"] != "main" {
		t.Errorf("Recent(%s) = %+v, %v", pass, only, err)
	}
	if none, err := o.Recent(ctx, "https://nowhere.example.com/", 10); err != nil || len(none) != 0 {
		t.Errorf("Recent(nowhere) = %+v, %v", none, err)
	}
}

// A build dispatched with a key, without a token, is found by that key (Nomad's prefix
// lookup of job IDs), and by no other; a dispatch without an answer says it may have been
// made, one that Nomad refused does not.
func TestByKey(t *testing.T) {
	o, ctx := setup(t, "bykey")
	b := registerDefault(t, ctx, o, "bykey")
	meta := map[string]string{"REPO_URL": "https://git.example.com/org/app.git", "COMMIT": strings.Repeat("a", 40), "BRANCH": "main", "FLAVOR": "default"}
	var made []orchestrator.Dispatched
	for _, key := range []string{"albatros-key-one", "albatros-key-two"} {
		d, err := o.Dispatch(ctx, orchestrator.DispatchRequest{Builder: b, Meta: meta, Key: key})
		if err != nil {
			t.Fatalf("dispatch %s: %v", key, err)
		}
		if !orchestrator.IsBuildID(d.JobID) || d.Duplicate {
			t.Fatalf("dispatched %+v", d)
		}
		made = append(made, d)
	}
	for i, key := range []string{"albatros-key-one", "albatros-key-two"} {
		got, found, err := o.ByKey(ctx, b, key)
		if err != nil || !found || got.JobID != made[i].JobID || got.Index != made[i].Index || !got.Duplicate {
			t.Errorf("ByKey(%s) = %+v, %v, %v; want %+v", key, got, found, err, made[i])
		}
	}
	if got, found, err := o.ByKey(ctx, b, "albatros-key-three"); err != nil || found {
		t.Errorf("ByKey of a key never dispatched = %+v, %v, %v; want none", got, found, err)
	}
	if _, found, err := o.ByKey(ctx, orchestrator.Builder{Namespace: "bykey", Job: "other"}, "albatros-key-one"); err != nil || found {
		t.Errorf("ByKey in another builder found %v (%v), want none", found, err)
	}

	// Refused before anything was sent (an unknown builder): nothing was made.
	_, err := o.Dispatch(ctx, orchestrator.DispatchRequest{Builder: orchestrator.Builder{Namespace: "bykey", Job: "no-such-builder"}, Meta: meta, Key: "k"})
	if err == nil || errors.Is(err, orchestrator.ErrMaybeDispatched) {
		t.Errorf("dispatch of an unknown builder: %v, want an error that does not say it may have been made", err)
	}
	// Refused by Nomad (required meta keys missing): Nomad 1.6 answers 500, as it does for a
	// failure after the write, so the bot cannot tell, and counts it as maybe made.
	_, err = o.Dispatch(ctx, orchestrator.DispatchRequest{Builder: b, Meta: map[string]string{"REPO_URL": meta["REPO_URL"]}, Key: "k"})
	if !errors.Is(err, orchestrator.ErrMaybeDispatched) || !strings.Contains(err.Error(), "500") {
		t.Errorf("dispatch Nomad refused: %v, want Nomad's 500, counted as maybe made", err)
	}
	if _, found, _ := o.ByKey(ctx, b, "k"); found {
		t.Error("Nomad made a build it refused")
	}
	cut, cancel := context.WithCancel(ctx)
	cancel()
	_, err = o.Dispatch(cut, orchestrator.DispatchRequest{Builder: b, Meta: meta, Key: "k"})
	if !errors.Is(err, orchestrator.ErrMaybeDispatched) {
		t.Errorf("dispatch cut off: %v, want ErrMaybeDispatched", err)
	}
}

// A job ID holding "404" (one in fifty or so do) is not "not found" when Nomad cannot be
// reached: the transport error's message carries the URL, and with it the ID. Stop and
// Discard then fail, rather than say the build is gone while it runs on; on a Nomad that
// answers, a job that is gone is still not an error.
func TestNotFoundIsNomadsAnswerOnly(t *testing.T) {
	o, ctx := setup(t, "gone404")
	const id = "builder/dispatch-1764404404-a404b404"
	if err := o.Stop(ctx, "gone404", id); err != nil {
		t.Errorf("Stop of a job Nomad does not have: %v, want nil", err)
	}
	if err := o.Discard(ctx, "gone404", id); err != nil {
		t.Errorf("Discard of a job Nomad does not have: %v, want nil", err)
	}

	// A Nomad that is down: a loopback port that nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	t.Setenv("NOMAD_ADDR", "http://"+addr)
	down, err := orchestrator.New(orchestrator.NewMemoryLedger())
	if err != nil {
		t.Fatal(err)
	}
	defer down.Close()
	for name, call := range map[string]func() error{
		"Stop":            func() error { return down.Stop(ctx, "gone404", id) },
		"Discard":         func() error { return down.Discard(ctx, "gone404", id) },
		"EnsureNamespace": func() error { return down.EnsureNamespace(ctx, "ns404") },
	} {
		if err := call(); err == nil {
			t.Errorf("%s with Nomad down: nil, want an error", name)
		}
	}
}
