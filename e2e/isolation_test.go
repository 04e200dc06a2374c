package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"code.gitea.io/sdk/gitea"
	consul "github.com/hashicorp/consul/api"
	nomad "github.com/hashicorp/nomad/api"

	"github.com/albatros-ci/albatros/testenv"
)

// With ALBATROS_UNTRUSTED_NAMESPACE, _NODE_POOL and _NETWORK, the code of a sender the
// repository does not trust runs in that namespace, on that node pool, with that network
// mode, read back from Nomad's job; a trusted sender's in the builders' namespace, on the
// default pool; the bot (with the shipped policy for both namespaces) registers the
// shipped builder in both. Its metrics are on a listener of their own
// (ALBATROS_METRICS_ADDR), not on the main one.
func TestUntrustedCodeRunsApart(t *testing.T) {
	bot(t) // the shared binary
	n, c, g := env.Nomad(t), env.Consul(t), env.Gitea(t)
	forks := n.CreateNamespace(t, testenv.UniqueName("forks"))
	prefix := testenv.UniqueName("iso") + "/"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	metricsAddr, err := testenv.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	b, err := testenv.StartBot(ctx, botBin, append(append(n.Env(), c.Env()...), "ALBATROS_METRICS_ADDR="+metricsAddr,
		"ALBATROS_BUILDER_DRIVER=raw_exec", "ALBATROS_BUILDER_VARS=cpu=100,memory=128",
		"ALBATROS_RECONCILE_INTERVAL=0", "ALBATROS_CONSUL_PREFIX="+prefix,
		"ALBATROS_UNTRUSTED_NAMESPACE="+forks, "ALBATROS_UNTRUSTED_NODE_POOL=all", "ALBATROS_UNTRUSTED_NETWORK=host",
	))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)
	b.LogOnFailure(t)

	owner, stranger := g.CreateUser(t, testenv.UniqueName("owner")), g.CreateUser(t, testenv.UniqueName("stranger"))
	org := testenv.UniqueName("org")
	g.CreateOrg(t, owner, org)
	repo := g.CreateRepo(t, owner, org, "app")
	g.AddCollaborator(t, owner, repo, stranger.Name)
	secret := "whsec-" + testenv.UniqueName("s")
	raw, _ := json.Marshal(map[string]any{
		"hook":    map[string]string{"secret": secret},
		"gitea":   map[string]string{"url": g.URL, "token": owner.Token},
		"trusted": map[string]any{"senders": []string{owner.Name}},
	})
	if _, err := c.Client(t).KV().Put(&consul.KVPair{Key: prefix + base64.StdEncoding.EncodeToString([]byte(repo.CloneURL)), Value: raw}, nil); err != nil {
		t.Fatal(err)
	}
	g.CreateWebhook(t, owner, repo, b.URL+"/webhook/gitea", secret)

	files := script("echo apart\n")
	trusted := g.Push(t, owner, repo, "main", "", files, "the owner's")
	g.WaitStatus(t, repo, trusted, "albatros/default", gitea.StatusSuccess, 2*time.Minute)
	untrusted := g.Push(t, stranger, repo, "side", "", files, "a stranger's")
	g.WaitStatus(t, repo, untrusted, "albatros/default", gitea.StatusSuccess, 2*time.Minute)

	if code, _ := get(t, b.URL+"/metrics"); code != http.StatusNotFound {
		t.Errorf("/metrics on the main listener: %d, want 404 with ALBATROS_METRICS_ADDR", code)
	}
	// The counter is raised once the final status is written: the test may see the status first.
	waitFor(t, "/metrics on its own listener counting the 2 builds", func() bool {
		code, body := get(t, "http://"+metricsAddr+"/metrics")
		return code == http.StatusOK && strings.Contains(body, `albatros_builds_total{flavor="default",state="success"} 2`)
	})
	for _, c := range []struct {
		sha, ns, pool string
	}{
		{trusted, testenv.DefaultNamespace, "default"},
		{untrusted, forks, "all"},
	} {
		var link string
		for _, st := range g.Statuses(t, repo, c.sha) {
			link = st.TargetURL
		}
		ns, id := jobFromLink(t, link)
		job, _, err := n.Client(t).Jobs().Info(id, &nomad.QueryOptions{Namespace: ns})
		if err != nil {
			t.Fatalf("%s: %v", c.sha[:8], err)
		}
		mode := ""
		if tg := job.TaskGroups; len(tg) == 1 && len(tg[0].Networks) == 1 {
			mode = tg[0].Networks[0].Mode
		}
		if ns != c.ns || job.NodePool == nil || *job.NodePool != c.pool || mode != "host" {
			t.Errorf("%s ran in %s, pool %v, network %q; want %s, %s, host", c.sha[:8], ns, deref(job.NodePool), mode, c.ns, c.pool)
		}
	}
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}
