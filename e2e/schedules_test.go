package e2e

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"code.gitea.io/sdk/gitea"
	consul "github.com/hashicorp/consul/api"

	"github.com/albatros-ci/albatros/testenv"
)

// scheduleState reads a schedule's state under the registry prefix, as the bots wrote it.
func scheduleState(t *testing.T, prefix, cloneURL, name string) map[string]any {
	t.Helper()
	sum := sha256.Sum256([]byte(cloneURL + "\x00" + name))
	key := strings.TrimSuffix(prefix, "/") + "-run/schedules/" + hex.EncodeToString(sum[:16])
	pair, _, err := env.Consul(t).Client(t).KV().Get(key, nil)
	if err != nil {
		t.Fatal(err)
	}
	st := map[string]any{}
	if pair != nil {
		if err := json.Unmarshal(pair.Value, &st); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

// leads reports whether bot b leads role, by its metrics.
func leads(t *testing.T, b *testenv.Bot, role string) bool {
	t.Helper()
	resp, err := http.Get(b.URL + "/metrics")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return strings.Contains(string(body), `albatros_leader{role="`+role+`"} 1`)
}

// A schedule every minute, two bots on one registry, the one leading the schedules
// stopped half-way, over five minutes: one build per slot, each with one final status on
// its own context (albatros/default/scheduled, beside the push's), with the secrets, as
// the head's push was a trusted user's; a schedule of a branch that does not exist says
// so and builds nothing. Beside it, a schedule failing twice then passing: one issue
// opened, commented on once, then closed with a comment.
func TestSchedulesTwoBotsOneBuildPerSlot(t *testing.T) {
	t.Parallel() // after the tests that stop shared servers; its registry is its own
	prefix := testenv.UniqueName("sched") + "/"
	bots, out, target := fannedBots(t, prefix, "ALBATROS_RECONCILE_INTERVAL=0", "ALBATROS_SCHEDULE_INTERVAL=3s")

	const secret = "schedules-webhook-secret"
	g := env.Gitea(t)
	owner := g.CreateUser(t, testenv.UniqueName("owner"))
	org := testenv.UniqueName("org")
	g.CreateOrg(t, owner, org)
	register := func(repo *testenv.Repo, schedules []map[string]string) {
		raw, _ := json.Marshal(entry{
			"hook": map[string]string{"secret": secret}, "gitea": map[string]string{"url": g.URL, "token": owner.Token},
			"trusted": map[string]any{"senders": []string{owner.Name}}, "secrets": map[string]string{"DEPLOY_TOKEN": "sched-s3cr3t-" + prefix},
			"schedules": schedules,
		})
		key := prefix + base64.StdEncoding.EncodeToString([]byte(repo.CloneURL))
		if _, err := env.Consul(t).Client(t).KV().Put(&consul.KVPair{Key: key, Value: raw}, nil); err != nil {
			t.Fatal(err)
		}
	}
	// Each build fails without the secret: a scheduled build's success says it had it.
	app := g.CreateRepo(t, owner, org, "app")
	g.CreateWebhook(t, owner, app, target.URL, secret, "push")
	register(app, nil)
	head := g.Push(t, owner, app, "main", "", script(`[ -n "$DEPLOY_TOKEN" ] || { echo "no secret"; exit 3; }; echo "built $ALBATROS_COMMIT"`+"\n"), "trusted push")
	g.WaitStatus(t, app, head, "albatros/default", gitea.StatusSuccess, 2*time.Minute)

	flaky := g.CreateRepo(t, owner, org, "flaky")
	g.CreateWebhook(t, owner, flaky, target.URL, secret, "push")
	register(flaky, nil)
	g.Push(t, owner, flaky, "main", "", script("echo broken; exit 1\n"), "broken")

	// The schedules, set once the push's build (and its trust) is in.
	register(app, []map[string]string{
		{"name": "every-minute", "cron": "* * * * *", "branch": "main"},
		{"name": "gone", "cron": "* * * * *", "tz": "Europe/Paris", "branch": "no-such-branch"},
	})
	register(flaky, []map[string]string{{"name": "nightly", "cron": "* * * * *", "branch": "main"}})
	start := time.Now()
	first := start.Truncate(time.Minute)

	// The flaky schedule: two failures, then the fix pushed; the next slot passes.
	admin := g.Client(t, owner.Token)
	issue := func() (*gitea.Issue, []*gitea.Comment) {
		list, _, err := admin.ListRepoIssues(org, "flaky", gitea.ListIssueOption{State: gitea.StateAll, Type: gitea.IssueTypeIssue})
		if err != nil {
			t.Fatal(err)
		}
		if len(list) == 0 {
			return nil, nil
		}
		if len(list) > 1 {
			t.Fatalf("%d issues on flaky, want one: %v", len(list), list)
		}
		comments, _, err := admin.ListIssueComments(org, "flaky", list[0].Index, gitea.ListIssueCommentOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return list[0], comments
	}
	fixed, stopped := false, false
	for time.Since(start) < 5*time.Minute {
		if !stopped && time.Since(start) > 150*time.Second {
			// The leader of the schedules stops (SIGTERM); the other takes over.
			for i, b := range bots {
				if leads(t, b, "schedules") {
					t.Logf("stopping bot %d, the schedules' leader, at %s", i, time.Since(start).Round(time.Second))
					out.mu.Lock()
					out.bots = append(out.bots[:i:i], out.bots[i+1:]...)
					out.mu.Unlock()
					b.Stop()
					stopped = true
					break
				}
			}
		}
		if is, comments := issue(); !fixed && is != nil && len(comments) >= 1 {
			if is.State != gitea.StateOpen || !strings.Contains(is.Title, `"nightly"`) || !strings.Contains(comments[0].Body, "Failed again") {
				t.Fatalf("the failing schedule's issue: %+v %q", is, comments[0].Body)
			}
			g.Push(t, owner, flaky, "main", "main", script("echo fixed\n"), "fixed")
			fixed = true
			t.Logf("flaky fixed at %s", time.Since(start).Round(time.Second))
		}
		time.Sleep(2 * time.Second)
	}
	if !stopped {
		t.Fatal("no bot led the schedules")
	}
	end := time.Now()
	time.Sleep(20 * time.Second) // the last slot's build to be dispatched and end

	// One build per slot, from the first to the last.
	slots := int(end.Truncate(time.Minute).Sub(first)/time.Minute) + 1
	var scheduled []map[string]string
	for _, meta := range env.Nomad(t).Builds(t, app.CloneURL) {
		if meta["COMMIT"] == head {
			scheduled = append(scheduled, meta)
		}
	}
	// The push's build is one of the jobs of the head.
	if len(scheduled) != slots+1 {
		t.Errorf("%d Nomad jobs of the head, want %d slots' and the push's", len(scheduled), slots)
	}
	finals := map[string][]gitea.StatusState{}
	var pushStates []gitea.StatusState
	for _, s := range g.Statuses(t, app, head) {
		switch s.Context {
		case "albatros/default/scheduled":
			finals[s.TargetURL] = append(finals[s.TargetURL], s.State)
		case "albatros/default":
			pushStates = append(pushStates, s.State)
		default:
			t.Errorf("status on context %q", s.Context)
		}
	}
	if len(finals) != slots {
		t.Errorf("%d scheduled builds have statuses, want %d", len(finals), slots)
	}
	for link, states := range finals {
		n := 0
		for _, s := range states {
			if s != gitea.StatusPending {
				n++
				if s != gitea.StatusSuccess {
					t.Errorf("%s: %v, want success (with the secret)", link, states)
				}
			}
		}
		if n != 1 {
			t.Errorf("%s: statuses %v, want one final", link, states)
		}
	}
	if len(pushStates) != 2 {
		t.Errorf("the push's statuses: %v, want its pending and its success only", pushStates)
	}
	if st := scheduleState(t, prefix, app.CloneURL, "gone"); st["gone"] == nil || !strings.Contains(fmt.Sprint(st["problem"]), "branch is gone") {
		t.Errorf("the schedule of a missing branch: state %v", st)
	}

	// The flaky schedule: one issue, told once of the second failure, closed when green.
	is, comments := issue()
	if is == nil || is.State != gitea.StateClosed || len(comments) != 2 ||
		!strings.Contains(comments[0].Body, "Failed again") || !strings.Contains(comments[1].Body, "Green again") ||
		!strings.Contains(is.Body, "/logs/") || comments[0].Poster.UserName != owner.Name {
		var bodies []string
		for _, c := range comments {
			bodies = append(bodies, c.Body)
		}
		t.Errorf("the failing schedule's issue: %+v, comments %q", is, bodies)
	}
	t.Logf("%d slots in %s, %d builds", slots, end.Sub(start).Round(time.Second), len(finals))
}
