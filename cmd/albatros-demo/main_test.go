package main_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/albatros-ci/albatros/testenv"
)

// TestDemo runs the demo as `make demo` does and checks what it promises: it prints the URL
// of a commit whose status turns green, and Ctrl-C stops everything it started.
func TestDemo(t *testing.T) {
	for _, name := range []string{"nomad", "consul", "gitea"} {
		if _, err := testenv.Binary(name); err != nil {
			if testenv.InCI() {
				t.Fatalf("CI=true: %v", err)
			}
			t.Skipf("%v (run `make tools`)", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir := t.TempDir()
	bot, err := testenv.BuildBot(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	demoBin := dir + "/albatros-demo"
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", demoBin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build the demo: %v\n%s", err, out)
	}

	cmd := exec.CommandContext(ctx, demoBin, "-bot", bot)
	cmd.Dir = "../.." // the repository root, as under make
	stdout, _ := cmd.StdoutPipe()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()

	// Read what the demo prints until it says the build succeeded.
	var printed strings.Builder
	lines := bufio.NewScanner(stdout)
	success := false
	for lines.Scan() {
		printed.WriteString(lines.Text() + "\n")
		if strings.HasPrefix(lines.Text(), "Status: success") {
			success = true
			break
		}
	}
	if !success {
		t.Fatalf("the demo did not report success:\n%s\nstderr:\n%s", printed.String(), stderr.String())
	}
	out := printed.String()
	commitURL := regexp.MustCompile(`Commit \(its status turns green\):\s+(\S+)`).FindStringSubmatch(out)
	logURL := regexp.MustCompile(`Build log \(live\):\s+(\S+)`).FindStringSubmatch(out)
	login := regexp.MustCompile(`Gitea login:\s+user "([^"]+)", password "([^"]+)"`).FindStringSubmatch(out)
	if commitURL == nil || logURL == nil || login == nil {
		t.Fatalf("the demo did not print the commit URL, log URL and login:\n%s", out)
	}

	// The commit's status, read through Gitea's API as a user would see it, is green.
	m := regexp.MustCompile(`^(http://[^/]+/)([^/]+)/([^/]+)/commit/([0-9a-f]{40})$`).FindStringSubmatch(commitURL[1])
	if m == nil {
		t.Fatalf("commit URL %q", commitURL[1])
	}
	var combined struct {
		State    string `json:"state"`
		Statuses []struct {
			Context   string `json:"context"`
			TargetURL string `json:"target_url"`
		} `json:"statuses"`
	}
	getJSON(t, fmt.Sprintf("%sapi/v1/repos/%s/%s/commits/%s/status", m[1], m[2], m[3], m[4]), &combined)
	if combined.State != "success" || len(combined.Statuses) != 1 || combined.Statuses[0].TargetURL != logURL[1] {
		t.Fatalf("combined status %+v, want success linking %s", combined, logURL[1])
	}
	// The commit page itself answers, and the log page shows the build and masks its secret.
	if code, _ := get(t, commitURL[1]); code != http.StatusOK {
		t.Fatalf("commit page answered %d", code)
	}
	code, page := get(t, logURL[1])
	if code != http.StatusOK || !strings.Contains(page, "Albatros demo build") || strings.Contains(page, "hunter2") || !strings.Contains(page, "***") {
		t.Fatalf("log page %d:\n%s", code, page)
	}

	// The bot offers to install on the second organization, which has no webhook yet, while
	// the first has the one the demo's install made.
	install := regexp.MustCompile(`Bot:\s+(http://\S+)\s.*\n\s+log in as demo and click Install Albatros on (\S+)`).FindStringSubmatch(out)
	if install == nil {
		t.Fatalf("the demo does not say where to install Albatros:\n%s", out)
	}
	if code, home := get(t, install[1]+"/"); code != http.StatusOK || !strings.Contains(home, "Install Albatros") || strings.Contains(home, "not available") {
		t.Fatalf("the bot's home page %d:\n%s", code, home)
	}
	hooks := func(org string) int {
		req, _ := http.NewRequest(http.MethodGet, m[1]+"api/v1/orgs/"+org+"/hooks", nil)
		req.SetBasicAuth(login[1], login[2])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var list []any
		if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
			t.Fatalf("hooks of %s: %d %v", org, resp.StatusCode, err)
		}
		return len(list)
	}
	if n := hooks(install[2]); n != 0 {
		t.Errorf("%s, left for the user to install, has %d hooks", install[2], n)
	}
	if n := hooks(m[2]); n != 1 {
		t.Errorf("%s, installed by the demo, has %d hooks, want 1", m[2], n)
	}

	// Ctrl-C stops the demo and everything it started.
	pids := testenv.Descendants(cmd.Process.Pid)
	if len(pids) < 4 {
		t.Fatalf("expected the demo's servers among its children, found %v", pids)
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { io.Copy(io.Discard, stdout); done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("demo exited with %v after Ctrl-C\nstderr:\n%s", err, stderr.String())
		}
	case <-time.After(90 * time.Second):
		t.Fatal("demo still running 90s after Ctrl-C")
	}
	for _, pid := range pids {
		if testenv.Running(pid) {
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			t.Errorf("process %d (%s) still running after the demo stopped", pid, strings.ReplaceAll(string(cmdline), "\x00", " "))
		}
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	code, body := get(t, url)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, code, body)
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}
