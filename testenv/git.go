package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// git runs git in dir with a fixed identity and no user or system configuration.
func git(t T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "user.name=Albatros Test", "-c", "user.email=test@example.com",
		"-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "GIT_CONFIG_NOSYSTEM=1", "HOME="+dir, "LC_ALL=C")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// LocalRepo makes a bare git repository in a temporary directory holding one commit of
// files on branch main, for tests that need a repository but not a forge. It returns the
// repository's file:// URL and the commit's SHA.
func LocalRepo(t interface {
	T
	TempDir() string
}, files map[string]File) (url, sha string) {
	t.Helper()
	root := t.TempDir()
	bare, work := filepath.Join(root, "repo.git"), filepath.Join(root, "work")
	for _, d := range []string{bare, work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatalf("%v", err)
		}
	}
	git(t, bare, "init", "-q", "--bare", "-b", "main")
	git(t, work, "init", "-q", "-b", "main")
	writeFiles(t, work, files)
	git(t, work, "add", "-A")
	git(t, work, "commit", "-q", "--allow-empty", "-m", "test commit")
	git(t, work, "push", "-q", bare, "HEAD:refs/heads/main")
	return "file://" + bare, strings.TrimSpace(git(t, work, "rev-parse", "HEAD"))
}

// writeFiles writes files under dir with their modes.
func writeFiles(t T, dir string, files map[string]File) {
	t.Helper()
	for path, f := range files {
		full := filepath.Join(dir, path)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatalf("%v", err)
		}
		mode := os.FileMode(0o644)
		if f.Executable {
			mode = 0o755
		}
		if err := os.WriteFile(full, []byte(f.Content), mode); err != nil {
			t.Fatalf("%v", err)
		}
		if err := os.Chmod(full, mode); err != nil {
			t.Fatalf("%v", err)
		}
	}
}
