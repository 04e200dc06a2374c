package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// process is one server this package started, and the file its output goes to.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when the process has exited and been reaped
}

// startProcess starts bin with args in dir, its stdout and stderr appended to logPath.
// The child gets SIGTERM if the test binary dies without stopping it (Pdeathsig), so a
// crashed test does not leave servers behind. It runs in its own process group, so that a
// Ctrl-C at the terminal reaches only the program that started it, which then stops its
// servers in order (and collects what they spawned).
func startProcess(name, bin string, args []string, dir string, env []string, logPath string) (*process, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM, Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has already ended.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop ends the process it started and every process it spawned (Nomad's task executors and
// the tasks themselves outlive the agent by design): SIGTERM first, SIGKILL after grace.
// Descendants are collected before the signal, while they are still children of the server.
func (p *process) stop(grace time.Duration) {
	if p.exited() {
		return
	}
	pid := p.cmd.Process.Pid
	kids := descendants(pid)
	p.stopOnly(grace)
	// Anything the server spawned and left running (re-parented by now) is killed by PID.
	for _, k := range append(kids, descendants(pid)...) {
		if alive(k.pid) && startTime(k.pid) == k.start {
			_ = syscall.Kill(k.pid, syscall.SIGKILL)
		}
	}
}

// stopOnly ends the process itself (SIGTERM, SIGKILL after grace), leaving what it spawned.
func (p *process) stopOnly(grace time.Duration) {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// tail returns the last n bytes of the process's log, for failure messages.
func (p *process) tail(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return ""
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// procID names a process by PID and start time, so that a recycled PID is never killed.
type procID struct {
	pid   int
	start string
}

// descendants lists every process below pid in the process tree, read from /proc.
func descendants(pid int) []procID {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]int{}
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, ok := parentPID(child); ok {
			children[ppid] = append(children[ppid], child)
		}
	}
	var out []procID
	queue := []int{pid}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		for _, c := range children[cur] {
			out = append(out, procID{pid: c, start: startTime(c)})
			queue = append(queue, c)
		}
	}
	return out
}

// statFields returns the fields of /proc/<pid>/stat after the command name.
func statFields(pid int) []string {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return nil
	}
	s := string(b)
	// The command name is in parentheses and may itself hold spaces or parentheses.
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(s[i+1:])
}

func parentPID(pid int) (int, bool) {
	f := statFields(pid)
	if len(f) < 2 {
		return 0, false
	}
	ppid, err := strconv.Atoi(f[1])
	return ppid, err == nil
}

// startTime is field 22 of /proc/<pid>/stat (clock ticks since boot).
func startTime(pid int) string {
	f := statFields(pid)
	if len(f) < 20 {
		return ""
	}
	return f[19]
}

func alive(pid int) bool {
	f := statFields(pid)
	return len(f) > 0 && f[0] != "Z"
}

// Descendants lists the PIDs of every process below pid, for tests that check a program
// stopped everything it started.
func Descendants(pid int) []int {
	var out []int
	for _, p := range descendants(pid) {
		out = append(out, p.pid)
	}
	return out
}

// Running reports whether pid is a live process (not gone, not a zombie).
func Running(pid int) bool { return alive(pid) }

// freePorts reserves n distinct free TCP ports on 127.0.0.1. The listeners are held until
// all n are chosen so that no port is handed out twice.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// waitFor polls ready until it returns nil, the process exits, or the timeout passes.
func waitFor(ctx context.Context, p *process, timeout time.Duration, ready func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		if p.exited() {
			return fmt.Errorf("%s exited during start-up; its log ends with:\n%s", p.name, p.tail(4000))
		}
		rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
		last = ready(rctx)
		rcancel()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %s: %w; its log ends with:\n%s", p.name, timeout, last, p.tail(4000))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// httpOK is a readiness probe: GET url answers 200.
func httpOK(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	return nil
}

// CPUTime is the CPU time (user and system) process pid has used so far, from
// /proc/<pid>/stat, for benchmarks that say where the time goes.
func CPUTime(pid int) time.Duration {
	f := statFields(pid)
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ: 100 on Linux
}
