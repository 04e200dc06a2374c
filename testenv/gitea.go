package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"code.gitea.io/sdk/gitea"
)

// Gitea is a running Gitea server with SQLite and an admin user.
type Gitea struct {
	// URL is the server's root URL, with a trailing slash (http://127.0.0.1:PORT/).
	URL string
	// AdminUser, AdminPassword and AdminToken are the site administrator's credentials; the
	// token has every scope.
	AdminUser     string
	AdminPassword string
	AdminToken    string
	// Dir holds the server's config, database, repositories and log (gitea.log).
	Dir string

	bin  string
	cfg  string
	proc *process
}

const giteaConfig = `APP_NAME = albatros-test
RUN_USER = %[1]s
RUN_MODE = prod
WORK_PATH = %[2]s
I_AM_BEING_UNSAFE_RUNNING_AS_ROOT = true

[server]
PROTOCOL = http
HTTP_ADDR = 127.0.0.1
HTTP_PORT = %[3]d
DOMAIN = 127.0.0.1
ROOT_URL = http://127.0.0.1:%[3]d/
STATIC_ROOT_PATH = %[4]s
APP_DATA_PATH = %[2]s/data
OFFLINE_MODE = true
DISABLE_SSH = true
START_SSH_SERVER = false
LFS_START_SERVER = false

[database]
DB_TYPE = sqlite3
PATH = %[2]s/data/gitea.db
SQLITE_JOURNAL_MODE = WAL

[repository]
ROOT = %[2]s/repos
DEFAULT_BRANCH = main

[security]
INSTALL_LOCK = true
SECRET_KEY = %[5]s
INTERNAL_TOKEN = %[6]s
PASSWORD_COMPLEXITY = off
MIN_PASSWORD_LENGTH = 6
ALLOWED_HOST_LIST = loopback

[oauth2]
ENABLED = true
JWT_SECRET = %[7]s

[service]
DISABLE_REGISTRATION = true
REQUIRE_SIGNIN_VIEW = false
ENABLE_NOTIFY_MAIL = false

[webhook]
ALLOWED_HOST_LIST = loopback
DELIVER_TIMEOUT = 5
SKIP_TLS_VERIFY = true

[mailer]
ENABLED = false

[cache]
ADAPTER = memory

[session]
PROVIDER = memory

[indexer]
REPO_INDEXER_ENABLED = false

[cron.update_checker]
ENABLED = false

[log]
MODE = console
LEVEL = warn
ROOT_PATH = %[2]s/log
`

// StartGitea prepares a work directory, migrates the database, creates the admin user and
// its token, and starts `gitea web` from bin. Gitea's templates and locales are read from
// <bin>-static, which `make tools` links beside the binary.
func StartGitea(ctx context.Context, bin string) (*Gitea, error) {
	static, err := filepath.EvalSymlinks(bin + "-static")
	if err != nil {
		return nil, fmt.Errorf("gitea templates and locales not found beside %s (run `make tools`): %w", bin, err)
	}
	dir, err := tempDir("gitea")
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(1)
	if err != nil {
		return nil, err
	}
	g := &Gitea{
		URL:           fmt.Sprintf("http://127.0.0.1:%d/", ports[0]),
		AdminUser:     "albatros-admin",
		AdminPassword: randomHex(12),
		Dir:           dir,
		bin:           bin,
		cfg:           filepath.Join(dir, "custom", "conf", "app.ini"),
	}
	for _, d := range []string{"custom/conf", "data", "log", "repos"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	user := os.Getenv("USER")
	if user == "" {
		user = "root"
	}
	ini := fmt.Sprintf(giteaConfig, user, dir, ports[0], static, randomHex(32), randomHex(32), randomHex(32))
	if err := os.WriteFile(g.cfg, []byte(ini), 0o600); err != nil {
		return nil, err
	}
	if _, err := g.run(ctx, "migrate"); err != nil {
		return nil, err
	}
	if _, err := g.run(ctx, "admin", "user", "create", "--username", g.AdminUser, "--password", g.AdminPassword,
		"--email", g.AdminUser+"@example.com", "--admin", "--must-change-password=false"); err != nil {
		return nil, err
	}
	p, err := startProcess("gitea", bin, []string{"web", "--config", g.cfg}, dir, g.env(), filepath.Join(dir, "gitea.log"))
	if err != nil {
		return nil, err
	}
	g.proc = p
	err = waitFor(ctx, p, 60*time.Second, func(ctx context.Context) error {
		return httpOK(ctx, g.URL+"api/v1/version")
	})
	if err == nil {
		g.AdminToken, err = g.createToken(g.AdminUser, g.AdminPassword)
	}
	if err != nil {
		g.Stop()
		return nil, err
	}
	return g, nil
}

// PID is the server's process id (for its CPU time).
func (g *Gitea) PID() int { return g.proc.cmd.Process.Pid }

// StopServer stops `gitea web` alone, keeping its data: the forge is down until
// StartServer.
func (g *Gitea) StopServer() {
	g.proc.stop(10 * time.Second)
}

// StartServer starts `gitea web` again after StopServer, on the same port and data.
func (g *Gitea) StartServer(ctx context.Context) error {
	p, err := startProcess("gitea", g.bin, []string{"web", "--config", g.cfg}, g.Dir, g.env(), filepath.Join(g.Dir, "gitea.log"))
	if err != nil {
		return err
	}
	g.proc = p
	return waitFor(ctx, p, 60*time.Second, func(ctx context.Context) error {
		return httpOK(ctx, g.URL+"api/v1/version")
	})
}

// Stop stops the server and removes its directory.
func (g *Gitea) Stop() {
	if g.proc != nil {
		g.proc.stop(10 * time.Second)
	}
	_ = os.RemoveAll(g.Dir)
}

// env is the environment for every gitea command: its own HOME, so that the git it runs
// does not read the developer's ~/.gitconfig.
func (g *Gitea) env() []string {
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + filepath.Join(g.Dir, "data", "home"),
		"GITEA_WORK_DIR=" + g.Dir,
		"USER=" + os.Getenv("USER"),
	}
}

func (g *Gitea) run(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, g.bin, append(args, "--config", g.cfg)...)
	cmd.Dir = g.Dir
	cmd.Env = g.env()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("gitea %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// createToken makes an access token with every scope for a user, through the API with the
// user's password.
func (g *Gitea) createToken(user, password string) (string, error) {
	c, err := gitea.NewClient(g.URL, gitea.SetBasicAuth(user, password))
	if err != nil {
		return "", err
	}
	tok, _, err := c.CreateAccessToken(gitea.CreateAccessTokenOption{
		Name:   "albatros-" + randomHex(4),
		Scopes: []gitea.AccessTokenScope{gitea.AccessTokenScopeAll},
	})
	if err != nil {
		return "", fmt.Errorf("create access token for %s: %w", user, err)
	}
	return tok.Token, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
