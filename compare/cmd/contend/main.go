// Scratch: contention throughput (not committed).
package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	nfsflock "github.com/nfsflock/nfsflock/flock"
)

func main() {
	if len(os.Args) > 2 && os.Args[1] == "child" {
		n, _ := strconv.Atoi(os.Args[3])
		l, err := nfsflock.New(os.Args[2])
		if err != nil {
			panic(err)
		}
		var ts []int64
		for range n {
			if err := l.Acquire(context.Background()); err != nil {
				panic(err)
			}
			ts = append(ts, time.Now().UnixNano())
			if err := l.Release(); err != nil {
				panic(err)
			}
			ts = append(ts, time.Now().UnixNano())
		}
		if f := os.Getenv("TRACE"); f != "" {
			fh, _ := os.OpenFile(f, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
			for i := 0; i < len(ts); i += 2 {
				fmt.Fprintf(fh, "%d %d %d\n", ts[i], ts[i+1], os.Getpid())
			}
			fh.Close()
		}
		return
	}
	dir, _ := os.MkdirTemp("", "contend")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "app.lck")
	procs, _ := strconv.Atoi(os.Args[1])
	n := 1000
	run := func(k int) (time.Duration, time.Duration) {
		var cmds []*exec.Cmd
		start := time.Now()
		for range k {
			c := exec.Command(os.Args[0], "child", path, strconv.Itoa(n))
			c.Stderr = os.Stderr
			c.Start()
			cmds = append(cmds, c)
		}
		var cpu time.Duration
		for _, c := range cmds {
			c.Wait()
			ru := c.ProcessState.SysUsage().(*syscall.Rusage)
			cpu += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
		return time.Since(start), cpu
	}
	w1, c1 := run(1)
	wk, ck := run(procs)
	r1 := float64(n) / w1.Seconds()
	rk := float64(procs*n) / wk.Seconds()
	fmt.Printf("one: %.0f/s cpu/acq %v; %d: %.0f/s cpu/acq %v; ratio %.2f\n", r1, c1/time.Duration(n), procs, rk, ck/time.Duration(procs*n), rk/r1)
}
