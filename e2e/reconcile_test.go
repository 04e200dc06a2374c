package e2e

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"code.gitea.io/sdk/gitea"
	consul "github.com/hashicorp/consul/api"

	"github.com/albatros-ci/albatros/pipeline"
	"github.com/albatros-ci/albatros/testenv"
)

// A push to a side branch whose delivery never arrived is built by the next reconciler
// pass, once, its pending status saying the reconciler found it. Before, the reconciler
// looked at default branches and open pull requests only, and such a push was lost.
func TestReconcilerFindsSideBranchPushes(t *testing.T) {
	t.Parallel() // after the tests that stop shared servers; it shares none of its own
	addr, err := testenv.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	prefix := testenv.UniqueName("sidebranch") + "/"
	b := ownBot(t, addr, prefix, "ALBATROS_RECONCILE_INTERVAL=2s")
	// Registered, with no webhook: no delivery of its pushes ever arrives.
	p := newProject(t, nil, "")
	raw, err := json.Marshal(entry{"gitea": map[string]string{"url": p.g.URL, "token": p.owner.Token}})
	if err != nil {
		t.Fatal(err)
	}
	key := prefix + base64.StdEncoding.EncodeToString([]byte(p.repo.CloneURL))
	if _, err := env.Consul(t).Client(t).KV().Put(&consul.KVPair{Key: key, Value: raw}, nil); err != nil {
		t.Fatal(err)
	}
	p.push("main", script("echo main\n"))
	side := p.g.Push(t, p.owner, p.repo, "side", "main", script("echo side\n"), "on a side branch")
	st := p.waitStatus(side, "albatros/default", gitea.StatusSuccess)
	time.Sleep(5 * time.Second) // two more passes: none builds it again
	builds := 0
	for _, meta := range p.jobs() {
		if meta["COMMIT"] == side {
			builds++
			if meta["BRANCH"] != "side" {
				t.Errorf("built as branch %q, want side", meta["BRANCH"])
			}
		}
	}
	if builds != 1 {
		t.Errorf("the side branch's push was built %d times, want once", builds)
	}
	found := false
	for _, s := range p.g.Statuses(t, p.repo, side) {
		if s.State == gitea.StatusPending && s.Description == pipeline.ReconciledDescription {
			found = true
		}
	}
	if !found {
		t.Errorf("no pending status says the reconciler found it (last: %+v)", st)
	}
	if log := b.Log(); !strings.Contains(log, "reconciler: a head without status or build") {
		t.Error("the bot's log does not say the reconciler found the head")
	}
}
