package install

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	sdk "code.gitea.io/sdk/gitea"
	consulapi "github.com/hashicorp/consul/api"
)

// waitHook waits until the organization has exactly one webhook, to the bot, as the bot
// wants it, and returns it.
func (p *project) waitHook(botURL string, not int64) *sdk.Hook {
	p.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var hooks []*sdk.Hook
	for time.Now().Before(deadline) {
		hooks = p.hooks()
		if len(hooks) == 1 {
			h := hooks[0]
			if h.ID != not && h.Config["url"] == botURL+"/webhook/gitea" && h.Config["content_type"] == "json" && h.Active && contains(h.Events, "push") && contains(h.Events, "pull_request") {
				return h
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	p.t.Fatalf("the webhook was not repaired within 30s (check interval 2s): %+v", hooks)
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// A deleted webhook is created again, with a new secret, and the next push builds.
func TestDeletedHookIsRestored(t *testing.T) {
	p, _ := installed(t)
	repo := p.g.CreateRepo(t, p.owner, p.org, "app")
	before := p.hooks()[0]
	if _, err := p.g.Client(t, p.owner.Token).DeleteOrgHook(p.org, before.ID); err != nil {
		t.Fatal(err)
	}
	after := p.waitHook(public(t), before.ID)
	if !strings.Contains(bot(t).Log(), "was deleted: created webhook") {
		t.Error("the repair is not in the bot's log")
	}
	sha := p.g.Push(t, p.owner, repo, "main", "", script("echo repaired\n"), "after the repair")
	p.waitStatus(repo, sha, sdk.StatusSuccess)
	t.Logf("webhook %d deleted, %d created in its place", before.ID, after.ID)
}

// A webhook whose URL, events or state someone changed is set back, and the next push
// builds.
func TestChangedHookIsSetBack(t *testing.T) {
	p, _ := installed(t)
	repo := p.g.CreateRepo(t, p.owner, p.org, "app")
	h := p.hooks()[0]
	off := false
	if _, err := p.g.Client(t, p.owner.Token).EditOrgHook(p.org, h.ID, sdk.EditHookOption{
		Config: map[string]string{"url": "http://127.0.0.1:9/elsewhere", "content_type": "form"},
		Events: []string{"issues"}, Active: &off,
	}); err != nil {
		t.Fatal(err)
	}
	back := p.waitHook(public(t), 0)
	if back.ID != h.ID {
		t.Errorf("the changed webhook %d was replaced by %d, want it set back", h.ID, back.ID)
	}
	if !strings.Contains(bot(t).Log(), "was changed (url http://127.0.0.1:9/elsewhere") {
		t.Error("the repair is not in the bot's log")
	}
	sha := p.g.Push(t, p.owner, repo, "main", "", script("echo set back\n"), "after the repair")
	p.waitStatus(repo, sha, sdk.StatusSuccess)
}

// Two bots checking at once leave exactly one webhook: each check holds a lock in Consul.
func TestTwoBotsRepairOnce(t *testing.T) {
	p, _ := installed(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// A second replica of the bot, behind the same public URL, checking every second.
	second, err := startBotURL(ctx, t, "1s", public(t))
	if err != nil {
		t.Fatal(err)
	}
	defer second.Stop()
	second.LogOnFailure(t)

	// The owner asks both bots to check at the same moment, right after deleting the hook,
	// on top of their own checks every second or two.
	c1, c2 := newClient(t, bot(t)), newClient(t, second)
	c1.signIn(p.owner)
	c2.signIn(p.owner)
	for round := range 5 {
		hooks := p.hooks()
		if len(hooks) != 1 {
			t.Fatalf("round %d: %d hooks before the delete: %+v", round, len(hooks), hooks)
		}
		if _, err := p.g.Client(t, p.owner.Token).DeleteOrgHook(p.org, hooks[0].ID); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for _, c := range []*client{c1, c2} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := c.http.PostForm(c.bot.URL+"/orgs/"+p.org+"/check", nil)
				if err == nil {
					resp.Body.Close()
				}
			}()
		}
		wg.Wait()
		if hooks := p.hooks(); len(hooks) != 1 {
			t.Fatalf("round %d: two bots checking at once left %d hooks: %+v", round, len(hooks), hooks)
		}
		p.waitHook(public(t), hooks[0].ID)
	}
}

// An installation recorded before records named their bot's URL: a webhook that points
// elsewhere (maybe another deployment's) is left alone; one that points at this bot is
// adopted, its URL recorded.
func TestInstallationWithoutItsBotsURL(t *testing.T) {
	p, _ := installed(t)
	h := p.hooks()[0]
	kv := env.Consul(t).Client(t).KV()
	key := "albatros/install/" + base64.StdEncoding.EncodeToString([]byte(strings.TrimSuffix(p.g.URL, "/")+"/"+p.org))
	var rec map[string]any
	if err := json.Unmarshal(p.record(), &rec); err != nil {
		t.Fatal(err)
	}
	delete(rec["hook"].(map[string]any), "url")
	raw, _ := json.Marshal(rec)
	if _, err := kv.Put(&consulapi.KVPair{Key: key, Value: raw}, nil); err != nil {
		t.Fatal(err)
	}
	elsewhere := "http://127.0.0.1:9/another-deployment/webhook/gitea"
	if _, err := p.g.Client(t, p.owner.Token).EditOrgHook(p.org, h.ID, sdk.EditHookOption{Config: map[string]string{"url": elsewhere, "content_type": "json"}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	leftAlone := func() bool {
		for line := range strings.Lines(bot(t).Log()) {
			if strings.Contains(line, "org="+p.org+" ") && strings.Contains(line, "points elsewhere: left alone") {
				return true
			}
		}
		return false
	}
	for !leftAlone() {
		if time.Now().After(deadline) {
			t.Fatal("the bot did not log that it left the webhook alone within 30s")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if hooks := p.hooks(); len(hooks) != 1 || hooks[0].Config["url"] != elsewhere {
		t.Fatalf("hooks %+v, want the one webhook still pointing elsewhere", hooks)
	}
	// Pointed back at this bot, it is this bot's: recorded.
	if _, err := p.g.Client(t, p.owner.Token).EditOrgHook(p.org, h.ID, sdk.EditHookOption{Config: map[string]string{"url": public(t) + "/webhook/gitea", "content_type": "json"}}); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(30 * time.Second)
	for !strings.Contains(string(p.record()), `"url":"`+public(t)+`/webhook/gitea"`) {
		if time.Now().After(deadline) {
			t.Fatalf("the record never got the bot's URL: %s", p.record())
		}
		time.Sleep(200 * time.Millisecond)
	}
}
