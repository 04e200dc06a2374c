package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"code.gitea.io/sdk/gitea"

	"github.com/albatros-ci/albatros/testenv"
	"github.com/albatros-ci/albatros/webhook"
)

// A secret quoted in Nomad's own words about a build that got the secrets (here the
// driver's failure to start a command whose path holds it) is masked in the commit status,
// the log page and the bot's log, as the build's output is.
func TestSecretInTaskFailureIsMasked(t *testing.T) {
	const secret = "deploy-s3cr3t-4242"
	name := testenv.UniqueName("leaky")
	registerBuilder(t, `job "`+name+`" {
  namespace = "ci"
  type = "batch"
  parameterized {
    payload       = "optional"
    meta_required = ["REPO_URL", "COMMIT", "BRANCH", "FLAVOR"]
  }
  group "runner" {
    restart {
      attempts = 0
      mode     = "fail"
    }
    reschedule {
      attempts  = 0
      unlimited = false
    }
    task "executor" {
      driver = "raw_exec"
      config { command = "/nonexistent/`+secret+`/run" }
      resources {
        cpu    = 100
        memory = 64
      }
    }
  }
}`)
	// A trusted push: the build gets the secrets, and what the bot writes of it is masked
	// with them. (A build that gets none is not masked with the repository's secrets: it
	// has none to leak, and masking would tell it whether a guess of one is right.)
	p := newProject(t, nil, "/webhook/gitea")
	p.register(withHook(entry{
		"builder": map[string]string{"job": name},
		"secrets": map[string]string{"DEPLOY_KEY": secret},
		"trusted": map[string]any{"senders": []string{p.owner.Name}},
	}, p))
	sha := p.push("main", script("echo hi\n"))
	st := p.waitStatus(sha, "albatros/default", gitea.StatusError)
	if strings.Contains(st.Description, secret) || !strings.Contains(st.Description, "***") {
		t.Fatalf("error status %q: want the secret masked as ***", st.Description)
	}
	_, page := get(t, st.TargetURL)
	if strings.Contains(page, secret) || !strings.Contains(page, `class="error"`) {
		t.Fatalf("log page shows the secret or no error:\n%s", page)
	}
	if log := bot(t).Log(); strings.Contains(log, secret) {
		t.Fatalf("the bot's log shows the secret:\n%s", log)
	}
}

// slowBot is a second bot on the package's servers, with a short read timeout, for the tests
// that hold its connections.
func slowBot(t *testing.T) *testenv.Bot {
	t.Helper()
	bot(t) // builds the binary
	n, c := env.Nomad(t), env.Consul(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b, err := testenv.StartBot(ctx, botBin, append(append(n.Env(), c.Env()...),
		// A registry of its own: it must not lead the package bot's event stream.
		"ALBATROS_BUILDERS=none", "ALBATROS_READ_TIMEOUT=4s", "ALBATROS_CONSUL_PREFIX=slow-bot/"))
	if err != nil {
		t.Fatalf("start a second bot: %v", err)
	}
	t.Cleanup(b.Stop)
	b.LogOnFailure(t)
	return b
}

// heldBody opens a connection that announces a body of size bytes to path and sends all of
// it but the last byte, then waits. It returns the connection, and the bot's answer if the
// bot answered before the body was complete.
func heldBody(t *testing.T, addr, path string, size int) (net.Conn, chan string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	answer := make(chan string, 1)
	go func() {
		line, err := bufio.NewReader(conn).ReadString('\n')
		if err != nil {
			line = "closed: " + err.Error()
		}
		answer <- strings.TrimSpace(line)
	}()
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: bot\r\nX-GitHub-Event: push\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", path, size)
	chunk := make([]byte, 1<<20)
	for i := range chunk {
		chunk[i] = ' '
	}
	for left := size - 1; left > 0; {
		n := min(left, len(chunk))
		_ = conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
		if _, err := conn.Write(chunk[:n]); err != nil {
			break // the bot stopped reading: it answered, or will
		}
		left -= n
	}
	return conn, answer
}

// Many huge bodies that never end take no more than the read budget of the bot's memory,
// the bot stays healthy, and a client that takes longer than the read timeout is cut off.
func TestSlowAndHugeBodiesCannotHoldTheBot(t *testing.T) {
	b := slowBot(t)
	addr := strings.TrimPrefix(b.URL, "http://")
	if code, _ := get(t, b.URL+"/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz %d", code)
	}
	before, err := b.RSS()
	if err != nil {
		t.Fatal(err)
	}

	// 30 clients each send 24 MiB of a 24 MiB body, less one byte, and wait.
	const clients, size = 30, 24 << 20
	var wg sync.WaitGroup
	answers := make([]chan string, clients)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, answers[i] = heldBody(t, addr, "/webhook/github", size)
		}()
	}
	wg.Wait()
	peak := before
	for range 10 {
		if rss, err := b.RSS(); err == nil && rss > peak {
			peak = rss
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("bot RSS %d MiB before, %d MiB at the peak of %d held %d MiB bodies (read budget %d MiB)",
		before>>20, peak>>20, clients, size>>20, webhook.DefaultReadBudget>>20)
	if grown := peak - before; grown > webhook.DefaultReadBudget+16<<20 {
		t.Errorf("the bot grew by %d MiB, more than its read budget of %d MiB and 16 MiB to spare", grown>>20, webhook.DefaultReadBudget>>20)
	}
	// Those past the budget were answered at once.
	busy := 0
	for _, a := range answers {
		select {
		case line := <-a:
			if strings.Contains(line, "503") {
				busy++
			}
			a <- line
		case <-time.After(100 * time.Millisecond):
		}
	}
	// The budget is charged as bodies arrive, by buffers that double: a few bodies fill it,
	// and the others are refused as soon as their buffers cannot grow.
	if want := clients - 2*webhook.DefaultReadBudget/size; busy < want {
		t.Errorf("%d of %d clients were answered 503 at once, want at least %d", busy, clients, want)
	}
	t.Logf("%d of %d clients answered 503 at once", busy, clients)
	// The bot still serves.
	if code, body := get(t, b.URL+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz while the bodies are held: %d %q", code, body)
	}

	// The read timeout (4s) ends every held body: each connection gets an answer or is
	// closed, none stays open.
	deadline := time.After(20 * time.Second)
	for i, a := range answers {
		select {
		case line := <-a:
			if strings.Contains(line, "202") {
				t.Errorf("client %d: %q, a body that never ended was accepted", i, line)
			}
		case <-deadline:
			t.Fatalf("client %d still held after the read timeout", i)
		}
	}
	// A trickling client is cut off too.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /webhook/gitea HTTP/1.1\r\nHost: bot\r\nX-Gitea-Event: push\r\nContent-Length: 100000\r\n\r\n")
	start := time.Now()
	cut := make(chan struct{})
	go func() {
		defer close(cut)
		_, _ = io.Copy(io.Discard, conn)
	}()
trickle:
	for {
		select {
		case <-cut:
			break trickle
		case <-time.After(500 * time.Millisecond):
			if _, err := conn.Write([]byte(" ")); err != nil {
				break trickle
			}
			if time.Since(start) > 30*time.Second {
				t.Fatal("a client trickling its body is still connected after 30s (read timeout 4s)")
			}
		}
	}
	t.Logf("trickling client cut off after %s", time.Since(start).Round(100*time.Millisecond))
	// And the budget is whole again: a huge body is read, not refused as busy.
	_, a := heldBody(t, addr, "/webhook/github", size)
	select {
	case line := <-a:
		if strings.Contains(line, "503") {
			t.Errorf("after the held bodies ended: %q, want the budget back", line)
		}
	case <-time.After(500 * time.Millisecond): // being read: the budget took it
	}
}
