// Command albatros-demo runs Albatros on loopback with everything it needs: it starts Consul,
// Nomad, Gitea and the bot (from bin/, which `make demo` fills), with the bot's own Gitea
// account and its OAuth2 application, as an operator sets them up. It creates a demo user
// with two organizations, installs Albatros on the first (as its Install button does, with
// the demo user's token), pushes a commit with an .albatros script to a repository there,
// and leaves the second organization for the user to install through the bot's pages. It
// prints where to watch the build and how to sign in, then runs until Ctrl-C, when it stops
// everything it started.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/albatros-ci/albatros/forge/gitea"
	"github.com/albatros-ci/albatros/install"
	"github.com/albatros-ci/albatros/registry"
	"github.com/albatros-ci/albatros/seal"
	"github.com/albatros-ci/albatros/testenv"
	"github.com/albatros-ci/albatros/web"
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
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	secretKey := hex.EncodeToString(key)
	var account, user *testenv.User
	stack, err := testenv.StartStackWith(ctx, d, botBin, func(s *testenv.Stack, botURL string) ([]string, error) {
		step("creating the bot's Gitea account and its OAuth2 application, and the demo user")
		g := s.Gitea
		account = g.CreateUser(d, "albatros")
		user = g.CreateUser(d, "demo")
		id, secret := g.CreateOAuth2App(d, account, "Albatros", botURL+web.RedirectPath)
		return []string{
			"ALBATROS_GITEA_URL=" + strings.TrimSuffix(g.URL, "/"),
			"ALBATROS_GITEA_TOKEN=" + account.Token,
			"ALBATROS_GITEA_CLIENT_ID=" + id,
			"ALBATROS_GITEA_CLIENT_SECRET=" + secret,
			"ALBATROS_SECRET_KEY=" + secretKey,
			"ALBATROS_BUILDER_DRIVER=raw_exec", // the demo's Nomad runs builds as plain processes
			"ALBATROS_BUILDER_VARS=cpu=200,memory=256",
		}, nil
	})
	if err != nil {
		return err
	}
	c, n, g, b := stack.Consul, stack.Nomad, stack.Gitea, stack.Bot

	step("creating two organizations; installing Albatros on albatros-demo")
	const installedOrg, otherOrg = "albatros-demo", "second-org"
	g.CreateOrg(d, user, installedOrg)
	g.CreateOrg(d, user, otherOrg)
	g.CreateRepo(d, user, otherOrg, "tools")
	inst, err := preinstall(ctx, c, g, b, account, user, installedOrg, secretKey)
	if err != nil {
		return fmt.Errorf("install albatros on %s: %w", installedOrg, err)
	}
	repo := g.CreateRepo(d, user, installedOrg, "hello")

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
                                    log in as demo and click Install Albatros on %s
  Installation in Consul:           %s
  Nomad and Consul from a shell:    export NOMAD_ADDR=%s CONSUL_HTTP_ADDR=%s
  (ACLs on; the bot has the shipped  export NOMAD_TOKEN=%s CONSUL_HTTP_TOKEN=$NOMAD_TOKEN
   policies, this is management)    bin/nomad job status -namespace=ci
                                    bin/consul kv get %s

`, repo.HTMLURL+"/", sha, logURL, user.Name, user.Password, b.URL, b.LogPath, otherOrg, inst, n.Addr, c.Addr, testenv.ManagementToken(), inst)
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

// preinstall installs Albatros on org as the bot's Install button does (with the owner's
// token, which makes the bot account an owner and creates the webhook), then trusts the
// owner and gives the organization a secret, as its settings page does. It returns the
// installation's Consul key.
func preinstall(ctx context.Context, c *testenv.Consul, g *testenv.Gitea, b *testenv.Bot, account, owner *testenv.User, org, secretKey string) (string, error) {
	keys, err := seal.New([]byte(secretKey))
	if err != nil {
		return "", err
	}
	os.Setenv("CONSUL_HTTP_ADDR", c.Addr)
	reg, err := registry.New(registry.DefaultPrefix, keys)
	if err != nil {
		return "", err
	}
	giteaURL := strings.TrimSuffix(g.URL, "/")
	in := install.New(install.Config{
		Records: reg, Bot: gitea.New(giteaURL, account.Token, nil), BotLogin: account.Name,
		ForgeURL: giteaURL, HookURL: b.URL + "/webhook/gitea", Log: slog.New(slog.DiscardHandler),
	})
	inst, err := in.Install(ctx, gitea.New(giteaURL, owner.Token, nil), org)
	if err != nil {
		return "", err
	}
	inst.Settings.Trusted.Users = []string{owner.Name}
	if err := reg.SetSecret(inst, "", "DEMO_TOKEN", "hunter2-demo-token"); err != nil {
		return "", err
	}
	if err := reg.PutInstallation(ctx, inst); err != nil {
		return "", err
	}
	return reg.InstallKey(inst.OrgURL()), nil
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
