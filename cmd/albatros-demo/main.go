// Command albatros-demo runs Albatros on loopback with everything it needs: it starts Consul,
// Nomad, Gitea and the bot (from bin/, which `make demo` fills), creates a demo user,
// organization and repository with an .albatros script, registers the repository, installs
// its webhook and pushes a commit. It prints where to watch the build, then runs until
// Ctrl-C, when it stops everything it started.
package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	consul "github.com/hashicorp/consul/api"

	"github.com/albatros-ci/albatros/testenv"
)

const albatrosScript = `#!/bin/sh
# The demo repository's build: .albatros is any executable; Albatros runs it in Nomad.
set -e
printf '\033[1;34m==> Albatros demo build\033[0m\n'
echo "commit $COMMIT on branch $BRANCH, flavor $FLAVOR"
printf '\033[33m==> a secret, as the build sees it and as the log shows it:\033[0m %s\n' "$DEMO_TOKEN"
for step in compile test package; do
  printf '\033[32m[ok]\033[0m %s\n' "$step"
  sleep 1
done
printf '\033[1;32m==> done\033[0m\n'
`

func main() {
	wait := flag.Bool("wait", true, "after the build, run until Ctrl-C (false: stop once the status is final)")
	botBin := flag.String("bot", "", "the albatros-bot binary (default: bin/albatros-bot, which `make demo` builds)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d := &demo{}
	err := d.run(ctx, *wait, *botBin)
	d.Stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "albatros-demo:", err)
		os.Exit(1)
	}
}

// demo is the running demo; as a testenv.Program, the test environment's helpers serve it.
type demo struct {
	testenv.Program
}

func (d *demo) run(ctx context.Context, wait bool, botBin string) error {
	return d.Run(func() error { return d.start(ctx, wait, botBin) })
}

func (d *demo) start(ctx context.Context, wait bool, botBin string) error {
	step := func(msg string) { fmt.Printf("• %s\n", msg) }
	if botBin == "" {
		dir, err := testenv.BinDir()
		if err != nil {
			return err
		}
		botBin = filepath.Join(dir, "albatros-bot")
	}
	if _, err := os.Stat(botBin); err != nil {
		return fmt.Errorf("%s not found: run `make build` (make demo does)", botBin)
	}
	step("starting Consul, Nomad, Gitea and albatros-bot on 127.0.0.1")
	stack, err := testenv.StartStack(ctx, d, botBin,
		"ALBATROS_BUILDER_DRIVER=raw_exec", // the demo's Nomad runs builds as plain processes
		"ALBATROS_BUILDER_VARS=cpu=200,memory=256",
	)
	if err != nil {
		return err
	}
	c, n, g, b := stack.Consul, stack.Nomad, stack.Gitea, stack.Bot

	step("creating the demo user, organization and repository on Gitea")
	user := g.CreateUser(d, "demo")
	g.CreateOrg(d, user, "albatros-demo")
	repo := g.CreateRepo(d, user, "albatros-demo", "hello")
	secret := "demo-webhook-secret"
	entry := map[string]any{
		"hook":    map[string]string{"secret": secret},
		"gitea":   map[string]string{"url": g.URL, "token": user.Token},
		"trusted": map[string][]string{"senders": {user.Name}},
		"secrets": map[string]string{"DEMO_TOKEN": "hunter2-demo-token"},
	}
	raw, _ := json.Marshal(entry)
	key := "albatros/" + base64.StdEncoding.EncodeToString([]byte(repo.CloneURL))
	if _, err := c.Client(d).KV().Put(&consul.KVPair{Key: key, Value: raw}, nil); err != nil {
		return fmt.Errorf("register the demo repository: %w", err)
	}
	g.CreateWebhook(d, user, repo, b.URL+"/webhook/gitea", secret)

	step("pushing a commit with an .albatros script")
	sha := g.Push(d, user, repo, "main", "", map[string]testenv.File{
		".albatros": {Content: albatrosScript, Executable: true},
		"README.md": {Content: "# hello\n\nA repository built by Albatros.\n"},
	}, "Add an Albatros build")

	logURL, err := waitStatus(ctx, g.URL, repo, sha, "pending")
	if err != nil {
		return err
	}
	fmt.Printf(`
Albatros is running.

  Commit (its status turns green):  %scommit/%s
  Build log (live):                 %s
  Gitea login:                      user %q, password %q
  Bot:                              %s   (log: %s)
  Registry entry in Consul:         %s
  Nomad and Consul from a shell:    export NOMAD_ADDR=%s CONSUL_HTTP_ADDR=%s
                                    bin/nomad job status -namespace=ci
                                    bin/consul kv get %s

`, repo.HTMLURL+"/", sha, logURL, user.Name, user.Password, b.URL, b.LogPath, key, n.Addr, c.Addr, key)
	if _, err := waitStatus(ctx, g.URL, repo, sha, "success"); err != nil {
		return err
	}
	fmt.Println("Status: success. Push more commits to the repository to build them; Ctrl-C stops everything.")
	if wait {
		<-ctx.Done()
		fmt.Println("\nstopping everything the demo started")
	}
	return nil
}

// waitStatus polls the commit's combined statuses through Gitea's public API until the
// albatros/default status has state, and returns its link.
func waitStatus(ctx context.Context, giteaURL string, repo *testenv.Repo, sha, state string) (string, error) {
	url := fmt.Sprintf("%sapi/v1/repos/%s/statuses/%s", giteaURL, repo.FullName(), sha)
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		var list []struct {
			State     string `json:"status"`
			Context   string `json:"context"`
			TargetURL string `json:"target_url"`
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			_ = json.NewDecoder(resp.Body).Decode(&list)
			resp.Body.Close()
		}
		for _, s := range list {
			if s.Context != "albatros/default" {
				continue
			}
			if s.State == state {
				return s.TargetURL, nil
			}
			if state == "success" && (s.State == "failure" || s.State == "error") {
				return "", fmt.Errorf("the demo build ended %s (see %s)", s.State, s.TargetURL)
			}
			break
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return "", fmt.Errorf("the demo commit's status never became %s", state)
}
