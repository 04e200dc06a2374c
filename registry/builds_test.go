package registry_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/albatros-ci/albatros/orchestrator"
	"github.com/albatros-ci/albatros/registry"
	"github.com/albatros-ci/albatros/testenv"
)

// The ledger of builds in Consul: a record is found by its digest, many at once (past
// Consul's 64 operations per transaction), and only those that exist; another bot on the
// same prefix reads them too.
func TestBuildRecords(t *testing.T) {
	r, _, prefix := setup(t)
	ctx := testContext(t)
	want := map[string]orchestrator.Record{}
	for i := range 70 {
		d := orchestrator.KeyDigest(fmt.Sprint("key-", i))
		rec := orchestrator.Record{Namespace: "ci", Builder: "builder", Repo: "https://git.example.com/o/r.git", Commit: fmt.Sprintf("%040d", i), Flavor: "default", Secrets: i%2 == 0, At: time.Now().UTC().Truncate(time.Second)}
		if err := r.Record(ctx, d, rec); err != nil {
			t.Fatal(err)
		}
		want[d] = rec
	}
	other, err := registry.New(prefix, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(other.Close)
	var ask []string
	for d := range want {
		ask = append(ask, d)
	}
	ask = append(ask, orchestrator.KeyDigest("never recorded"))
	got, err := other.Records(ctx, ask)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d records, want %d", len(got), len(want))
	}
	for d, rec := range want {
		if g := got[d]; !g.At.Equal(rec.At) || g.Secrets != rec.Secrets || g.Commit != rec.Commit || g.Builder != rec.Builder {
			t.Errorf("record %s = %+v, want %+v", d, g, rec)
		}
	}
}

// While Consul is down, a record is kept in the bot's memory (its own lookups find it),
// and written once Consul is back, for the other bots to read.
func TestBuildRecordsKeptThroughAnOutage(t *testing.T) {
	bin := testenv.NeedBinary(t, "consul")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	c, err := testenv.StartPersistentConsul(ctx, bin)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	t.Setenv("CONSUL_HTTP_ADDR", c.Addr)
	r, err := registry.New("outage/", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	c.StopAgent()
	d := orchestrator.KeyDigest("during the outage")
	rec := orchestrator.Record{Namespace: "ci", Builder: "builder", Repo: "https://git.example.com/o/r.git", Commit: "c", Flavor: "default", Secrets: true}
	rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
	err = r.Record(rctx, d, rec)
	rcancel()
	if err != nil {
		t.Fatalf("Record while Consul is down: %v, want it kept", err)
	}
	if got, err := r.Records(ctx, []string{d}); err != nil || !got[d].Secrets {
		t.Fatalf("the recording bot's lookup: %+v %v, want the record kept", got, err)
	}
	if err := c.StartAgent(ctx); err != nil {
		t.Fatal(err)
	}
	other, err := registry.New("outage/", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(other.Close)
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, err := other.Records(ctx, []string{d})
		if err == nil && got[d].Secrets {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("another bot's lookup 30 s after Consul is back: %+v %v, want the record written", got, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// A trusted commit is found by repository and commit, and by nothing else.
func TestTrustedCommits(t *testing.T) {
	r, _, _ := setup(t)
	ctx := testContext(t)
	const repo = "https://git.example.com/o/r.git"
	if err := r.TrustCommit(ctx, repo, "abc", "push"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		repo, commit string
		want         bool
	}{{repo, "abc", true}, {repo, "abd", false}, {"https://git.example.com/o/other.git", "abc", false}} {
		if got, err := r.CommitTrust(ctx, tc.repo, tc.commit); err != nil || (got == "push") != tc.want {
			t.Errorf("CommitTrust(%s, %s) = %q %v, want trusted %v", tc.repo, tc.commit, got, err, tc.want)
		}
	}
}

// A branch's last push is found by repository and branch; a trusted push of the commit it
// names untrusted leaves it untrusted (distrust wins), a new commit replaces it; and it has
// no age: cleaning old records leaves a quiet branch's head.
func TestBranchHeads(t *testing.T) {
	r, _, _ := setup(t)
	ctx := testContext(t)
	const repo = "https://git.example.com/o/r.git"
	head := func(branch string) registry.Head {
		t.Helper()
		h, err := r.BranchHead(ctx, repo, branch)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	record := func(commit, pusher string, trusted bool, at time.Time) {
		t.Helper()
		if err := r.RecordHead(ctx, registry.Head{Repo: repo, Branch: "main", Commit: commit, Pusher: pusher, Trusted: trusted, At: at}); err != nil {
			t.Fatal(err)
		}
	}
	if h := head("main"); h.Commit != "" {
		t.Fatalf("no push yet: %+v", h)
	}
	long := time.Now().Add(-400 * 24 * time.Hour).UTC()
	record("abc", "quentin", true, long)
	if h := head("main"); h.Commit != "abc" || !h.Trusted || h.Pusher != "quentin" {
		t.Errorf("after a trusted push: %+v", h)
	}
	if h, _ := r.BranchHead(ctx, repo, "other"); h.Commit != "" {
		t.Errorf("another branch: %+v", h)
	}
	if _, err := r.CleanDedup(ctx, time.Hour); err != nil {
		t.Fatal(err)
	}
	if h := head("main"); h.Commit != "abc" || !h.Trusted {
		t.Errorf("a quiet branch's head after cleaning: %+v", h)
	}
	record("abc", "mallory", false, time.Time{})
	record("abc", "quentin", true, time.Time{})
	if h := head("main"); h.Trusted || h.Pusher != "mallory" {
		t.Errorf("a trusted push of the commit recorded untrusted: %+v", h)
	}
	record("def", "quentin", true, time.Time{})
	if h := head("main"); h.Commit != "def" || !h.Trusted {
		t.Errorf("a new commit's trusted push: %+v", h)
	}
}
