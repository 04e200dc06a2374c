package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/albatros-ci/albatros/orchestrator"
	"github.com/albatros-ci/albatros/pipeline"
	"github.com/albatros-ci/albatros/registry"
	"github.com/albatros-ci/albatros/registry/registrytest"
)

// dedupHarness is a harness whose pipeline claims build keys in dedup.
func dedupHarness(dedup *registrytest.Claims) *harness {
	h := newHarness(entryWith())
	h.p = pipeline.New(pipeline.Config{Repos: h.repos, Builds: h.builds, Forge: h.forges.For, BaseURL: baseURL, Builder: defaultBuilder, Claims: dedup})
	return h
}

// buildKey is the key of the build of pushEvent in the default flavor, as dispatched: its
// idempotency token.
func buildKey(t *testing.T) string { return tokenOf(t, pushEvent(), nil, "") }

// The holder of a fresh claim dispatches without Nomad's token (whose check scans every
// child of the builder), the build key in the job's ID; a redelivery finds the record.
func TestClaimHolderDispatchesWithoutToken(t *testing.T) {
	dedup := &registrytest.Claims{}
	h := dedupHarness(dedup)
	for range 2 {
		if _, err := h.p.Handle(context.Background(), discard, pushEvent(), h.repos.Repos[cloneURL], pipeline.Options{}); err != nil {
			t.Fatalf("Handle: %v", err)
		}
	}
	reqs := h.builds.Dispatches()
	if len(reqs) != 1 {
		t.Fatalf("%d dispatches, want 1 (the redelivery finds the record)", len(reqs))
	}
	if reqs[0].IdempotencyToken != "" || reqs[0].Key == "" {
		t.Errorf("dispatched with token %q and key %q, want no token and a key", reqs[0].IdempotencyToken, reqs[0].Key)
	}
	started := h.builds.Started()
	rec, ok := dedup.Record(reqs[0].Key)
	if len(started) != 1 || !ok || rec.JobID != started[0].JobID {
		t.Errorf("record %+v (found %v), want settled with %+v", rec, ok, started)
	}
	if d, found, err := h.builds.ByKey(context.Background(), defaultBuilder, reqs[0].Key); err != nil || !found || d.JobID != started[0].JobID {
		t.Errorf("ByKey = %+v, %v, %v; want the build", d, found, err)
	}
}

// A bot that takes over a stale claim (its claimant died after dispatching, before
// recording the job) finds the build by its key, records it and adopts it (its pending
// status, which the dead bot never wrote): nothing is doubled.
func TestTakenOverClaimFindsTheBuild(t *testing.T) {
	key := buildKey(t)
	dedup := &registrytest.Claims{}
	h := dedupHarness(dedup)
	died, err := h.builds.Dispatch(context.Background(), orchestrator.DispatchRequest{Builder: defaultBuilder, Key: key, Meta: map[string]string{"FLAVOR": "default"}})
	if err != nil {
		t.Fatal(err)
	}
	dedup.Abandon(key)
	out, err := h.p.Handle(context.Background(), discard, pushEvent(), h.repos.Repos[cloneURL], pipeline.Options{})
	if err != nil {
		t.Fatalf("Handle: %v", err)
	}
	if n := len(h.builds.Started()); n != 1 {
		t.Errorf("%d builds started, want the dead bot's only", n)
	}
	if len(out) != 1 || out[0].JobID != died.JobID || out[0].Duplicate {
		t.Errorf("Handle returned %+v, want the dead bot's build %s, adopted", out, died.JobID)
	}
	if rec, _ := dedup.Record(key); rec.JobID != died.JobID {
		t.Errorf("record %+v, want settled with %s", rec, died.JobID)
	}
	if st := h.forge.Statuses(); len(st) != 1 || st[0].State != "pending" || !strings.HasSuffix(st[0].TargetURL, died.JobID) {
		t.Errorf("statuses %+v, want the adopted build's pending status", st)
	}
}

// When the lookup that alone guards a claim taken over fails, nothing is dispatched, and
// the claim is kept, to go stale again for the next delivery.
func TestTakenOverClaimLookupFails(t *testing.T) {
	key := buildKey(t)
	dedup := &registrytest.Claims{}
	h := dedupHarness(dedup)
	h.builds.ByKeyErr = errors.New("Unexpected response code: 500 (no cluster leader)")
	dedup.Abandon(key)
	if _, err := h.p.Handle(context.Background(), discard, pushEvent(), h.repos.Repos[cloneURL], pipeline.Options{}); err == nil {
		t.Fatal("Handle succeeded, want the lookup's error")
	}
	if n := len(h.builds.Dispatches()); n != 0 {
		t.Errorf("%d dispatches, want none", n)
	}
	if rec, ok := dedup.Record(key); !ok || rec.JobID != "" {
		t.Errorf("record %+v (found %v), want the claim kept, unsettled", rec, ok)
	}
}

// A build of the key made elsewhere first (by a bot whose Consul failed, so that it held no
// claim): the later dispatch, once made, finds it, stops its own build and stands aside.
func TestLaterBuildOfAKeyStandsAside(t *testing.T) {
	key := buildKey(t)
	dedup := &registrytest.Claims{}
	h := dedupHarness(dedup)
	earlier, err := h.builds.Dispatch(context.Background(), orchestrator.DispatchRequest{Builder: defaultBuilder, Key: key, IdempotencyToken: key, Meta: map[string]string{"FLAVOR": "default"}})
	if err != nil {
		t.Fatal(err)
	}
	out, err := h.p.Handle(context.Background(), discard, pushEvent(), h.repos.Repos[cloneURL], pipeline.Options{})
	if err != nil {
		t.Fatalf("Handle: %v", err)
	}
	if started := h.builds.Started(); len(started) != 1 || started[0].JobID != earlier.JobID {
		t.Errorf("builds %+v, want the earlier one only", started)
	}
	reqs := h.builds.Dispatches()
	if discarded := h.builds.Discarded(); len(reqs) != 2 || len(discarded) != 1 || discarded[0].ID == earlier.JobID {
		t.Errorf("%d dispatches, discarded %+v; want this bot's build, made then discarded", len(reqs), discarded)
	}
	if st := h.forge.Statuses(); len(st) != 0 {
		t.Errorf("statuses %+v, want none: the earlier build's bot writes its own", st)
	}
	if len(out) != 1 || out[0].JobID != earlier.JobID || !out[0].Duplicate {
		t.Errorf("Handle returned %+v, want the earlier build %s", out, earlier.JobID)
	}
	if rec, _ := dedup.Record(key); rec.JobID != earlier.JobID {
		t.Errorf("record %+v, want settled with the earlier build %s", rec, earlier.JobID)
	}
}

// A dispatch that waits for another bot's claim gives up with its delivery's context.
func TestWaitingForAClaimEndsWithTheContext(t *testing.T) {
	key := buildKey(t)
	dedup := &registrytest.Claims{}
	h := dedupHarness(dedup)
	if _, claimed, _ := dedup.Claim(context.Background(), key); !claimed {
		t.Fatal("the other bot's claim failed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := h.p.Handle(ctx, discard, pushEvent(), h.repos.Repos[cloneURL], pipeline.Options{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Handle: %v, want the context's deadline", err)
	}
	if n := len(h.builds.Dispatches()); n != 0 {
		t.Errorf("%d dispatches while another bot held the claim, want none", n)
	}
}

// A stale claim whose claimant made no build: the taker dispatches, with Nomad's token as
// well (its own lookup and the token guard this rarer path).
func TestTakenOverClaimWithoutBuild(t *testing.T) {
	key := buildKey(t)
	dedup := &registrytest.Claims{}
	h := dedupHarness(dedup)
	dedup.Abandon(key)
	if _, err := h.p.Handle(context.Background(), discard, pushEvent(), h.repos.Repos[cloneURL], pipeline.Options{}); err != nil {
		t.Fatalf("Handle: %v", err)
	}
	reqs := h.builds.Dispatches()
	if len(reqs) != 1 || reqs[0].IdempotencyToken != key || reqs[0].Key != key {
		t.Fatalf("dispatches %+v, want one with token and key %s", reqs, key)
	}
	if rec, _ := dedup.Record(key); rec.JobID == "" {
		t.Errorf("record %+v, want settled", rec)
	}
}

// A dispatch that may have been made (no answer) keeps its claim, to go stale and be taken
// over by a bot that looks for the build first; one that Nomad refused releases it.
func TestFailedDispatchClaims(t *testing.T) {
	for name, tc := range map[string]struct {
		err  error
		kept bool
	}{
		"no answer": {fmt.Errorf("dispatch: %w: context deadline exceeded", orchestrator.ErrMaybeDispatched), true},
		"refused":   {errors.New("Unexpected response code: 400 (missing meta)"), false},
	} {
		t.Run(name, func(t *testing.T) {
			key := buildKey(t)
			dedup := &registrytest.Claims{}
			h := dedupHarness(dedup)
			h.builds.DispatchErr = map[string]error{"default": tc.err}
			if _, err := h.p.Handle(context.Background(), discard, pushEvent(), h.repos.Repos[cloneURL], pipeline.Options{}); err == nil {
				t.Fatal("Handle succeeded, want the dispatch's error")
			}
			if _, kept := dedup.Record(key); kept != tc.kept {
				t.Errorf("claim kept: %v, want %v", kept, tc.kept)
			}
		})
	}
}

// With Consul failing, the build is looked for by its key, then dispatched with Nomad's
// token.
func TestDispatchWhileConsulFails(t *testing.T) {
	key := buildKey(t)
	dedup := &registrytest.Claims{Dedup: registrytest.Dedup{Err: fmt.Errorf("%w: connection refused", registry.ErrUnavailable)}}
	h := dedupHarness(dedup)
	if _, err := h.p.Handle(context.Background(), discard, pushEvent(), h.repos.Repos[cloneURL], pipeline.Options{}); err != nil {
		t.Fatalf("Handle: %v", err)
	}
	reqs := h.builds.Dispatches()
	if len(reqs) != 1 || reqs[0].IdempotencyToken != key {
		t.Fatalf("dispatches %+v, want one with Nomad's token", reqs)
	}
	// Delivered again: found by its key (the fake's token would find it too; the key
	// also finds builds that a claim holder dispatched without the token).
	if _, err := h.p.Handle(context.Background(), discard, pushEvent(), h.repos.Repos[cloneURL], pipeline.Options{}); err != nil {
		t.Fatalf("Handle again: %v", err)
	}
	if n := len(h.builds.Dispatches()); n != 1 {
		t.Errorf("%d dispatches after a redelivery, want 1 (found by key)", n)
	}
	if !strings.Contains(h.builds.Started()[0].JobID, "/dispatch-albatros-k") {
		t.Errorf("job ID %s holds no build key", h.builds.Started()[0].JobID)
	}
}

// When the repository's secrets cannot be opened (the bot's key does not open them), the
// event is not built, and its commit says so, without a word of them.
func TestSecretsUnreadable(t *testing.T) {
	h := newHarness(entryWith("default", "nix"))
	entry := h.repos.Repos[cloneURL]
	entry.SealSecrets(1, func() (map[string]string, error) {
		return nil, errors.New("cannot open sealed value: sealed by key 1234abcd")
	})
	if _, err := h.p.Handle(context.Background(), discard, pushEvent(), entry, pipeline.Options{}); err == nil {
		t.Fatal("Handle succeeded, want the secrets' error")
	}
	if n := len(h.builds.Dispatches()); n != 0 {
		t.Errorf("%d dispatches, want none", n)
	}
	st := h.forge.Statuses()
	if len(st) != 2 {
		t.Fatalf("statuses %+v, want an error per flavor", st)
	}
	for _, s := range st {
		if s.State != "error" || s.Description != pipeline.SecretsUnreadableDescription {
			t.Errorf("status %+v, want error %q", s, pipeline.SecretsUnreadableDescription)
		}
	}
}

// cancelOnClaim is a Dedup whose claims succeed just as the delivery's context ends.
type cancelOnClaim struct {
	*registrytest.Claims
	cancel context.CancelFunc
}

func (c cancelOnClaim) Claim(ctx context.Context, key string) (registry.Dedup, bool, error) {
	rec, claimed, err := c.Dedup.Claim(ctx, key)
	c.cancel()
	return rec, claimed, err
}

// A claim made as the delivery's context ends is released, not left to go stale: the next
// delivery claims it at once.
func TestClaimReleasedWhenTheDeliveryGivesUp(t *testing.T) {
	key := buildKey(t)
	dedup := &registrytest.Claims{}
	ctx, cancel := context.WithCancel(context.Background())
	h := newHarness(entryWith())
	h.p = pipeline.New(pipeline.Config{Repos: h.repos, Builds: h.builds, Forge: h.forges.For, BaseURL: baseURL, Builder: defaultBuilder, Claims: cancelOnClaim{dedup, cancel}})
	if _, err := h.p.Handle(ctx, discard, pushEvent(), h.repos.Repos[cloneURL], pipeline.Options{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Handle: %v, want the context's end", err)
	}
	if n := len(h.builds.Dispatches()); n != 0 {
		t.Errorf("%d dispatches, want none", n)
	}
	if rec, ok := dedup.Record(key); ok {
		t.Errorf("record %+v left behind, want the claim released", rec)
	}
}

// failingSettle is Consul refusing settlements and releases.
type failingSettle struct{ *registrytest.Claims }

func (failingSettle) Settle(context.Context, string, string, string) error {
	return errors.New("consul: 500")
}
func (failingSettle) SettleLine(context.Context, string, string, string, string, registry.Line) (registry.Line, bool, error) {
	return registry.Line{}, false, errors.New("consul: 500")
}
func (failingSettle) Release(context.Context, string) error { return errors.New("consul: 500") }

// A settlement or a release that fails is tolerated (the claim goes stale, and is taken
// over) but never silently: each is logged.
func TestClaimFailuresAreLogged(t *testing.T) {
	var out strings.Builder
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return out.Write(p)
	}), nil))
	h := newHarness(entryWith())
	h.p = pipeline.New(pipeline.Config{Repos: h.repos, Builds: h.builds, Forge: h.forges.For, BaseURL: baseURL, Builder: defaultBuilder, Claims: failingSettle{&registrytest.Claims{}}, Log: log})
	if _, err := h.p.Handle(context.Background(), discard, pushEvent(), h.repos.Repos[cloneURL], pipeline.Options{}); err != nil {
		t.Fatal(err)
	}
	h.builds.DispatchErr = map[string]error{"default": errors.New("Unexpected response code: 400 (missing meta)")}
	ev := pushEvent()
	ev.Commit = sha2
	_, _ = h.p.Handle(context.Background(), discard, ev, h.repos.Repos[cloneURL], pipeline.Options{})
	mu.Lock()
	defer mu.Unlock()
	for _, want := range []string{"claim not settled", "claim not released"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, out.String())
		}
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
