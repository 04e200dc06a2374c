// Command startup measures the bot's start (from exec to /healthz answering 200) and its
// idle memory (RSS two seconds after ready), against a bare Go program that only listens
// and answers 200, in the same run.
//
// On a Consul and a Nomad dev agent of its own (loopback), it starts each -n times,
// alternating: the bot registers its default builder in Nomad and reads its entries from
// Consul before it is ready; the bare program does nothing but listen.
//
// It prints a Markdown report.
//
//	go run ./bench/startup -n 10
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"syscall"
	"time"

	"github.com/albatros-ci/albatros/bench/benchkit"
	"github.com/albatros-ci/albatros/testenv"
)

func main() {
	n := flag.Int("n", 10, "starts of each program, alternating")
	flag.Parse()
	benchkit.Main("startup", func(p *testenv.Program) error { return run(p, *n) })
}

// bare is the baseline program: it listens on ALBATROS_ADDR and answers 200.
const bare = `package main

import (
	"net/http"
	"os"
)

func main() {
	http.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	http.ListenAndServe(os.Getenv("ALBATROS_ADDR"), nil)
}
`

var kinds = []string{"bare", "bot"}

func run(p *testenv.Program, n int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	c, nm, err := benchkit.Servers(ctx, p, true, true)
	if err != nil {
		return err
	}
	dir, err := benchkit.TempDir(p, "alb-startup-")
	if err != nil {
		return err
	}
	botBin, err := testenv.BuildBot(ctx, dir)
	if err != nil {
		return err
	}
	bareDir := filepath.Join(dir, "bare")
	if err := os.MkdirAll(bareDir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(bareDir, "main.go"), []byte(bare), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(bareDir, "go.mod"), []byte("module bare\n\ngo 1.24\n"), 0o644); err != nil {
		return err
	}
	bareBin := filepath.Join(dir, "bare-server")
	build := exec.CommandContext(ctx, "go", "build", "-o", bareBin, ".")
	build.Dir = bareDir
	build.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build the bare program: %w\n%s", err, out)
	}

	bins := map[string]string{"bare": bareBin, "bot": botBin}
	ready := map[string][]float64{}
	rss := map[string][]float64{}
	for i := range n {
		for _, k := range kinds {
			addr, err := testenv.FreeAddr()
			if err != nil {
				return err
			}
			env := append(os.Environ()[:0:0], "PATH="+os.Getenv("PATH"), "HOME="+dir, "ALBATROS_ADDR="+addr, "ALBATROS_URL=http://"+addr,
				"NOMAD_ADDR="+nm.Addr, "CONSUL_HTTP_ADDR="+c.Addr, "ALBATROS_BUILDER_DRIVER=raw_exec", "ALBATROS_CONSUL_PREFIX="+fmt.Sprintf("startup-%d/", i), "ALBATROS_ARCHIVE=file://"+filepath.Join(dir, "archive"))
			if env, err = testenv.BotEnv(env); err != nil { // the shipped policies' tokens
				return err
			}
			took, mem, err := start(ctx, bins[k], env, "http://"+addr+"/healthz")
			if err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
			ready[k] = append(ready[k], float64(took.Microseconds())/1000)
			rss[k] = append(rss[k], float64(mem)/(1<<20))
			fmt.Fprintf(os.Stderr, "startup: %d %-4s ready in %6.1f ms, idle RSS %5.1f MiB\n", i+1, k, ready[k][i], rss[k][i])
		}
	}
	report(os.Stdout, ready, rss, n)
	return nil
}

// start runs bin until /healthz answers 200 (polled every 2 ms), reads its RSS two seconds
// later, and stops it.
func start(ctx context.Context, bin string, env []string, health string) (time.Duration, int64, error) {
	cmd := exec.CommandContext(ctx, bin)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, 0, err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	client := &http.Client{Timeout: time.Second}
	deadline := t0.Add(30 * time.Second)
	for {
		resp, err := client.Get(health)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			return 0, 0, fmt.Errorf("not ready within 30 s: %v", err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	took := time.Since(t0)
	client.CloseIdleConnections()
	time.Sleep(2 * time.Second)
	mem, err := testenv.RSS(cmd.Process.Pid)
	return took, mem, err
}

func report(w io.Writer, ready, rss map[string][]float64, n int) {
	fmt.Fprintf(w, "Result, %s, %s/%s, %d CPUs, %s; %d starts of each, alternating:\n\n",
		time.Now().UTC().Format("2006-01-02"), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version(), n)
	fmt.Fprintln(w, "| program | start to ready (median) | max | idle RSS (median) | max |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	for _, k := range kinds {
		fmt.Fprintf(w, "| %s | %.1f ms | %.1f ms | %.1f MiB | %.1f MiB |\n", k, benchkit.Median(ready[k]), slices.Max(ready[k]), benchkit.Median(rss[k]), slices.Max(rss[k]))
	}
	fmt.Fprintf(w, "\nRatios (median): start to ready %.1f× the bare program's, idle RSS %.1f×.\n",
		benchkit.Median(ready["bot"])/benchkit.Median(ready["bare"]), benchkit.Median(rss["bot"])/benchkit.Median(rss["bare"]))
}
