package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Bot is a running albatros-bot process.
type Bot struct {
	// URL is the bot's base URL (its ALBATROS_URL), without a trailing slash.
	URL string
	// LogPath is the file the bot's log goes to.
	LogPath string
	Dir     string
	proc    *process
}

// BuildBot compiles ./cmd/albatros-bot of the repository into dir and returns the binary.
func BuildBot(ctx context.Context, dir string) (string, error) {
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "albatros-bot")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/albatros-bot")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/albatros-bot: %w\n%s", err, out)
	}
	return bin, nil
}

// StartBot starts the bot binary on a free loopback port with the given extra environment
// (NOMAD_ADDR, CONSUL_HTTP_ADDR, ALBATROS_* settings), ALBATROS_ADDR and ALBATROS_URL set to
// that port, and waits until /healthz answers 200.
func StartBot(ctx context.Context, bin string, extraEnv []string) (*Bot, error) {
	addr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	return StartBotOn(ctx, bin, addr, extraEnv)
}

// FreeAddr returns a free loopback address (127.0.0.1:port), for a bot whose URL must be
// known before it starts (an OAuth2 application's redirect URI names it).
func FreeAddr() (string, error) {
	ports, err := freePorts(1)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("127.0.0.1:%d", ports[0]), nil
}

// StartBotOn starts the bot as StartBot does, on addr.
func StartBotOn(ctx context.Context, bin, addr string, extraEnv []string) (*Bot, error) {
	dir, err := tempDir("bot")
	if err != nil {
		return nil, err
	}
	b := &Bot{URL: "http://" + addr, LogPath: filepath.Join(dir, "bot.log"), Dir: dir}
	env := append([]string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + dir,
		"ALBATROS_ADDR=" + addr,
		"ALBATROS_URL=" + b.URL,
		// The archive in the bot's directory unless the test names one (the default,
		// /var/lib/albatros, is no test's).
		"ALBATROS_ARCHIVE=file://" + filepath.Join(dir, "archive"),
	}, extraEnv...)
	if env, err = BotEnv(env); err != nil {
		return nil, err
	}
	p, err := startProcess("albatros-bot", bin, nil, dir, env, b.LogPath)
	if err != nil {
		return nil, err
	}
	b.proc = p
	if err := waitFor(ctx, p, 90*time.Second, func(ctx context.Context) error { return httpOK(ctx, b.URL+"/healthz") }); err != nil {
		b.Stop()
		return nil, err
	}
	return b, nil
}

// Stop stops the bot (SIGTERM: it finishes the deliveries it has answered) and removes its
// directory.
func (b *Bot) Stop() {
	b.proc.stop(30 * time.Second)
	_ = os.RemoveAll(b.Dir)
}

// Kill kills the bot with SIGKILL, as a crash would: it finishes nothing. Its directory and
// log stay until Stop.
func (b *Bot) Kill() {
	if b.proc.exited() {
		return
	}
	_ = b.proc.cmd.Process.Kill()
	<-b.proc.done
}

// Log returns the bot's log so far.
func (b *Bot) Log() string {
	out, _ := os.ReadFile(b.LogPath)
	return string(out)
}

// Exited reports whether the bot process has ended.
func (b *Bot) Exited() bool { return b.proc.exited() }

// PID is the bot's process id.
func (b *Bot) PID() int { return b.proc.cmd.Process.Pid }

// RSS reads the bot's resident memory from /proc, in bytes.
func (b *Bot) RSS() (int64, error) { return RSS(b.PID()) }

// RSS reads a process's resident memory from /proc, in bytes.
func RSS(pid int) (int64, error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kib, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("VmRSS %q: %w", v, err)
			}
			return kib << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// LogOnFailure shows the end of the bot's log in t's output when t fails.
func (b *Bot) LogOnFailure(t interface {
	Cleanup(func())
	Failed() bool
	Logf(format string, args ...any)
}) {
	t.Cleanup(func() {
		if t.Failed() {
			log := b.Log()
			if len(log) > 20000 {
				log = log[len(log)-20000:]
			}
			t.Logf("albatros-bot log (end):\n%s", log)
		}
	})
}
