package install

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	sdk "code.gitea.io/sdk/gitea"
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
