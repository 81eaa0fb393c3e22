package main

import (
	"os"
)

// relayedSignals are caught so that ^C ends the wait for the lock. Once the
// command runs, the console delivers ^C to it directly.
var relayedSignals = []os.Signal{os.Interrupt}

// A job is the command. Windows has no process groups to signal: a lost
// lock ends the command at once, without a grace period, and processes it
// started are left running.
type job struct {
	proc *os.Process

	exited chan struct{} // closed once the command has ended
	status int           // its exit code; set before exited closes
	err    error         // an error from waiting, set before exited closes
	stops  jobStops      // never changes: commands do not stop here
}

// startJob starts the command with the environment env.
func startJob(prog string, argv, env []string) (*job, error) {
	p, err := os.StartProcess(prog, argv, &os.ProcAttr{Env: env, Files: []*os.File{os.Stdin, os.Stdout, os.Stderr}})
	if err != nil {
		return nil, startError{err}
	}
	j := &job{proc: p, exited: make(chan struct{})}
	go func() {
		defer close(j.exited)
		ps, err := p.Wait()
		if err != nil {
			j.status, j.err = exitFailed, err
			return
		}
		j.status = ps.ExitCode()
	}()
	return j, nil
}

// signal does nothing: the console has sent ^C to the command already.
func (j *job) signal(os.Signal) {}

// jobControl reports false: Windows has no job control.
func (j *job) jobControl() bool { return false }

// suspend is never called: see jobControl.
func (j *job) suspend() {}

// resume is never called: see jobControl.
func (j *job) resume() {}

func (j *job) terminate() { j.proc.Kill() }

func (j *job) kill() { j.proc.Kill() }

func (j *job) groupAlive() bool { return false }
