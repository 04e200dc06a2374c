package registry_test

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/albatros-ci/albatros/registry"
)

// One claim per key: of many claimants at once exactly one dispatches, and the others get
// its job once it is settled.
func TestClaimOnce(t *testing.T) {
	r, _, _ := setup(t)
	ctx := testContext(t)
	const claimants = 8
	var wg sync.WaitGroup
	var mu sync.Mutex
	won, jobs := 0, map[string]int{}
	for range claimants {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec, claimed, err := r.Claim(ctx, "albatros-key-1")
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if claimed {
				won++
				time.Sleep(100 * time.Millisecond) // the dispatch
				if err := r.Settle(ctx, "albatros-key-1", "ci", "builder/dispatch-albatros-1-a"); err != nil {
					t.Error(err)
				}
				return
			}
			jobs[rec.Namespace+"/"+rec.JobID]++
		}()
	}
	wg.Wait()
	if won != 1 || jobs["ci/builder/dispatch-albatros-1-a"] != claimants-1 {
		t.Fatalf("%d claims won, others got %v; want 1 and the settled job", won, jobs)
	}
}

// A released claim (the dispatch failed) can be claimed again; a claim left unsettled
// longer than ClaimStale (its bot died) is taken over.
func TestClaimReleaseAndStale(t *testing.T) {
	r, kv, prefix := setup(t)
	ctx := testContext(t)
	if _, claimed, err := r.Claim(ctx, "k2"); err != nil || !claimed {
		t.Fatalf("first claim: %v %v", claimed, err)
	}
	if err := r.Release(ctx, "k2"); err != nil {
		t.Fatal(err)
	}
	if rec, claimed, err := r.Claim(ctx, "k2"); err != nil || !claimed || rec.TookOver {
		t.Fatalf("claim after release: %+v %v %v, want a fresh claim", rec, claimed, err)
	}
	old, _ := json.Marshal(registry.Dedup{At: time.Now().Add(-registry.ClaimStale - time.Second)})
	putRaw(t, kv, registry.RunPrefix(prefix)+"dedup/k3", string(old))
	if rec, claimed, err := r.Claim(ctx, "k3"); err != nil || !claimed || !rec.TookOver {
		t.Fatalf("claim of a stale claim: %+v %v %v, want it taken over", rec, claimed, err)
	}
}

// CleanDedup deletes the records older than the age it is given, and only those.
func TestCleanDedup(t *testing.T) {
	r, kv, prefix := setup(t)
	ctx := testContext(t)
	old, _ := json.Marshal(registry.Dedup{Namespace: "ci", JobID: "j-old", At: time.Now().Add(-48 * time.Hour)})
	putRaw(t, kv, registry.RunPrefix(prefix)+"dedup/old", string(old))
	if err := r.Settle(ctx, "new", "ci", "j-new"); err != nil {
		t.Fatal(err)
	}
	if n, err := r.CleanDedup(ctx, 24*time.Hour); err != nil || n != 1 {
		t.Fatalf("CleanDedup = %d, %v; want 1", n, err)
	}
	if p, _, _ := kv.Get(registry.RunPrefix(prefix)+"dedup/old", nil); p != nil {
		t.Error("the old record is still there")
	}
	if rec, claimed, err := r.Claim(ctx, "new"); err != nil || claimed || rec.JobID != "j-new" {
		t.Errorf("the recent record: %+v %v %v, want j-new kept", rec, claimed, err)
	}
}

// Each swap of a line returns the build it replaces; concurrent swaps form one chain, each
// build replaced once.
func TestSwapLine(t *testing.T) {
	r, _, _ := setup(t)
	ctx := testContext(t)
	if _, found, err := r.SwapLine(ctx, "line-a", registry.Line{Namespace: "ci", JobID: "j0"}); err != nil || found {
		t.Fatalf("first swap: found %v, %v", found, err)
	}
	prev, found, err := r.SwapLine(ctx, "line-a", registry.Line{Namespace: "ci", JobID: "j1", Commit: "c1"})
	if err != nil || !found || prev.JobID != "j0" {
		t.Fatalf("second swap: %+v %v %v, want j0", prev, found, err)
	}
	if _, found, _ := r.SwapLine(ctx, "line-b", registry.Line{JobID: "other"}); found {
		t.Error("another line found line-a's build")
	}
	var mu sync.Mutex
	replaced := map[string]int{}
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			prev, found, err := r.SwapLine(ctx, "line-a", registry.Line{Namespace: "ci", JobID: fmt.Sprintf("c%d", i)})
			if err != nil || !found {
				t.Errorf("concurrent swap: %v %v", found, err)
				return
			}
			mu.Lock()
			replaced[prev.JobID]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	for job, n := range replaced {
		if n != 1 {
			t.Errorf("%s replaced %d times", job, n)
		}
	}
	if len(replaced) != 10 || replaced["j1"] != 1 {
		t.Errorf("replaced %v, want j1 and nine of the concurrent ones, once each", replaced)
	}
}

// SettleLine settles a claim and swaps a line in one transaction: both records written,
// the line's previous build returned, as Settle and SwapLine would.
func TestSettleLine(t *testing.T) {
	r, _, _ := setup(t)
	ctx := testContext(t)
	if _, claimed, err := r.Claim(ctx, "k-line"); err != nil || !claimed {
		t.Fatalf("claim: %v %v", claimed, err)
	}
	if _, _, err := r.SwapLine(ctx, "line-s", registry.Line{Namespace: "ci", JobID: "j0"}); err != nil {
		t.Fatal(err)
	}
	prev, found, err := r.SettleLine(ctx, "k-line", "ci", "j1", "line-s", registry.Line{Namespace: "ci", JobID: "j1", Commit: "c1", Index: 7})
	if err != nil || !found || prev.JobID != "j0" {
		t.Fatalf("SettleLine: %+v %v %v, want the line's j0", prev, found, err)
	}
	if rec, claimed, err := r.Claim(ctx, "k-line"); err != nil || claimed || rec.JobID != "j1" || rec.Namespace != "ci" {
		t.Errorf("claim after SettleLine: %+v %v %v, want settled with j1", rec, claimed, err)
	}
	if prev, found, err := r.SwapLine(ctx, "line-s", registry.Line{JobID: "j2"}); err != nil || !found || prev.JobID != "j1" || prev.Index != 7 {
		t.Errorf("line after SettleLine: %+v %v %v, want j1 at index 7", prev, found, err)
	}
}

// Claimed tells a key claimed, or settled, from one never claimed or released.
func TestClaimed(t *testing.T) {
	r, _, _ := setup(t)
	ctx := testContext(t)
	if got, err := r.Claimed(ctx, "k1", "k2"); err != nil || got {
		t.Fatalf("nothing claimed: %v %v", got, err)
	}
	if _, claimed, err := r.Claim(ctx, "k2"); err != nil || !claimed {
		t.Fatal(err)
	}
	if got, err := r.Claimed(ctx, "k1", "k2"); err != nil || !got {
		t.Errorf("k2 claimed: %v %v", got, err)
	}
	if err := r.Settle(ctx, "k2", "ci", "j"); err != nil {
		t.Fatal(err)
	}
	if got, _ := r.Claimed(ctx, "k2"); !got {
		t.Error("k2 settled: not claimed")
	}
	if err := r.Release(ctx, "k2"); err != nil {
		t.Fatal(err)
	}
	if got, _ := r.Claimed(ctx, "k1", "k2", "k3"); got {
		t.Error("k2 released: still claimed")
	}
}
