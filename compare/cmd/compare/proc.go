package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is a running worker process.
type proc struct {
	name string
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Reader
}

// peerNames are the peers in the order of the table's columns.
var peerNames = []string{"nfsflock", "raw", "flufl", "gofrs", "proper"}

var peerTitles = map[string]string{
	"nfsflock": "nfsflock",
	"raw":      "raw syscalls",
	"flufl":    "flufl.lock",
	"gofrs":    "gofrs/flock",
	"proper":   "proper-lockfile",
}

// start starts a worker of peer for the lock at path. lifetime is the
// lock's lifetime (flufl.lock, nfsflock) or staleness (proper-lockfile).
func (h *harness) start(peer, path string, lifetime, slop time.Duration, deadOwner bool) (*proc, error) {
	var cmd *exec.Cmd
	switch peer {
	case "flufl":
		cmd = exec.Command(h.o.python, filepath.Join(h.scripts, "flufl_worker.py"), path, strconv.FormatFloat(lifetime.Seconds(), 'f', -1, 64))
	case "proper":
		cmd = exec.Command("node", filepath.Join(h.scripts, "proper_worker.js"), path, strconv.FormatInt(lifetime.Milliseconds(), 10))
		cmd.Env = append(os.Environ(), "NODE_PATH="+h.npm)
	default:
		args := []string{"-worker", "-peer", peer, "-lock", path, "-lifetime", lifetime.String(), "-slop", slop.String()}
		if deadOwner {
			args = append(args, "-deadowner")
		}
		cmd = exec.Command(h.self, args...)
	}
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the %s worker: %w", peer, err)
	}
	return &proc{name: peer, cmd: cmd, in: in, out: bufio.NewReaderSize(out, 1<<20)}, nil
}

// send writes a command without waiting for its answer.
func (p *proc) send(format string, args ...any) error {
	_, err := fmt.Fprintf(p.in, format+"\n", args...)
	return err
}

// recv reads an answer and returns its fields after "ok".
func (p *proc) recv() ([]string, error) {
	line, err := p.out.ReadString('\n')
	if err != nil {
		return nil, fmt.Errorf("%s worker (pid %d): %w", p.name, p.cmd.Process.Pid, err)
	}
	f := strings.Fields(line)
	if len(f) == 0 || f[0] != "ok" {
		return nil, fmt.Errorf("%s worker: %s", p.name, strings.TrimSpace(line))
	}
	return f[1:], nil
}

// call sends a command and returns its answer.
func (p *proc) call(format string, args ...any) ([]string, error) {
	if err := p.send(format, args...); err != nil {
		return nil, err
	}
	return p.recv()
}

// int64s parses an answer's numbers.
func int64s(f []string) []int64 {
	v := make([]int64, len(f))
	for i, s := range f {
		v[i], _ = strconv.ParseInt(s, 10, 64)
	}
	return v
}

// stop ends the worker: politely, then by force.
func (p *proc) stop() {
	p.send("quit")
	p.in.Close()
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}

// kill ends the worker with SIGKILL and reaps it.
func (p *proc) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.in.Close()
	p.cmd.Wait()
}

// stopAll stops workers in parallel.
func stopAll(ps []*proc) {
	done := make(chan struct{}, len(ps))
	for _, p := range ps {
		go func() { p.stop(); done <- struct{}{} }()
	}
	for range ps {
		<-done
	}
}

// cpuTime returns the CPU time a process's threads have used, from
// /proc/PID/task/*/schedstat (nanoseconds; /proc/PID/stat counts ticks of
// 10 ms, too coarse here).
func cpuTime(pid int) (time.Duration, error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(tasks) == 0 {
		return 0, fmt.Errorf("no schedstat for pid %d", pid)
	}
	var sum time.Duration
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue // a thread that ended
		}
		f := strings.Fields(string(b))
		if len(f) > 0 {
			ns, _ := strconv.ParseInt(f[0], 10, 64)
			sum += time.Duration(ns)
		}
	}
	return sum, nil
}
