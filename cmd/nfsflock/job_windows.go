package main

import (
	"fmt"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/windows"
)

// relayedSignals are caught so that ^C ends the wait for the lock. Once the
// command runs, the console delivers ^C to it directly.
var relayedSignals = []os.Signal{os.Interrupt}

// stopSignals: Windows has none; tstpSignal is never sent.
var (
	stopSignals []os.Signal
	tstpSignal  os.Signal = os.Interrupt
)

// shellAbove reports false: Windows has no job control.
func shellAbove() bool { return false }

// stopSelf is never called: see shellAbove.
func stopSelf() {}

// A job is the command, run in a Windows job object of its own: the
// command and every process it starts belong to the job, and ending the
// job ends them all. Windows has no SIGTERM to ask them to stop first: a
// lost lock ends the job at once, without a grace period. The job is made
// with JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE and nfsflock holds its only
// handle, so whatever of it still runs when nfsflock exits, or dies, ends
// too: nothing goes on without the lock, which nobody refreshes then.
type job struct {
	ownStop func() // never called: Windows has no job control
	proc    *os.Process
	obj     windows.Handle // the job object

	exited chan struct{} // closed once the command has ended
	status int           // its exit code; set before exited closes
	err    error         // an error from waiting, set before exited closes
	stops  jobStops      // never changes: commands do not stop here
}

// startJob starts the command with the environment env, suspended, puts
// it in a new job object and only then lets it run, so that nothing it
// starts can escape the job.
func startJob(prog string, argv, env []string) (*job, error) {
	obj, err := newJobObject()
	if err != nil {
		return nil, startError{err}
	}
	p, err := os.StartProcess(prog, argv, &os.ProcAttr{
		Env:   env,
		Files: []*os.File{os.Stdin, os.Stdout, os.Stderr},
		Sys:   &syscall.SysProcAttr{CreationFlags: windows.CREATE_SUSPENDED},
	})
	if err != nil {
		windows.CloseHandle(obj)
		return nil, startError{err}
	}
	if err := adopt(obj, p.Pid); err != nil {
		p.Kill()
		p.Wait()
		windows.CloseHandle(obj)
		return nil, startError{err}
	}
	j := &job{proc: p, obj: obj, exited: make(chan struct{})}
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

// dismiss does nothing: the job object ends what is left of the command
// when nfsflock exits or dies.
func (j *job) dismiss() {}

// waitWatchdog does nothing: there is no watchdog here.
func (j *job) waitWatchdog() {}

// newJobObject makes a job object whose processes are ended when its last
// handle is closed.
func newJobObject() (windows.Handle, error) {
	obj, err := windows.CreateJobObject(nil, nil)
	if err != nil {
		return 0, fmt.Errorf("CreateJobObject: %w", err)
	}
	var limits windows.JOBOBJECT_EXTENDED_LIMIT_INFORMATION
	limits.BasicLimitInformation.LimitFlags = windows.JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE
	if _, err := windows.SetInformationJobObject(obj, windows.JobObjectExtendedLimitInformation,
		uintptr(unsafe.Pointer(&limits)), uint32(unsafe.Sizeof(limits))); err != nil {
		windows.CloseHandle(obj)
		return 0, fmt.Errorf("SetInformationJobObject: %w", err)
	}
	return obj, nil
}

// ntResumeProcess resumes every thread of a process. os.StartProcess
// closes the handle of the suspended main thread, so ResumeThread cannot
// be had; ntdll's NtResumeProcess needs only the process.
var ntResumeProcess = windows.NewLazySystemDLL("ntdll.dll").NewProc("NtResumeProcess")

// adopt puts the suspended process pid in the job object and resumes it.
func adopt(obj windows.Handle, pid int) error {
	h, err := windows.OpenProcess(windows.PROCESS_SET_QUOTA|windows.PROCESS_TERMINATE|windows.PROCESS_SUSPEND_RESUME, false, uint32(pid))
	if err != nil {
		return fmt.Errorf("OpenProcess: %w", err)
	}
	defer windows.CloseHandle(h)
	if err := windows.AssignProcessToJobObject(obj, h); err != nil {
		return fmt.Errorf("AssignProcessToJobObject: %w", err)
	}
	if err := ntResumeProcess.Find(); err != nil {
		return err
	}
	if status, _, _ := ntResumeProcess.Call(uintptr(h)); status != 0 {
		return fmt.Errorf("NtResumeProcess: NTSTATUS %#x", status)
	}
	return nil
}

// signal does nothing: the console has sent ^C to the command already.
func (j *job) signal(os.Signal) {}

// stopKind is never called: commands do not stop here, and Windows has
// no job control.
func (j *job) stopKind(syscall.Signal) stopKind { return stopLimited }

// jobSignal is never called: no job-control signals are caught here.
func (j *job) jobSignal(os.Signal) {}

// handTerminal is never called: no terminal is handed here.
func (j *job) handTerminal() {}

// ignoreStop is never called: see stopKind.
func (j *job) ignoreStop() {}

// suspend is never called: see stopKind.
func (j *job) suspend() {}

// resume is never called: see stopKind.
func (j *job) resume() {}

// terminateExitCode is the exit code of the processes that a lost lock
// ends.
const terminateExitCode = 1

// terminate ends every process of the job at once: see job.
func (j *job) terminate() { windows.TerminateJobObject(j.obj, terminateExitCode) }

// kill ends whatever of the job is left.
func (j *job) kill() { windows.TerminateJobObject(j.obj, terminateExitCode) }

// groupAlive reports whether any process of the job is left.
func (j *job) groupAlive() bool {
	// JOBOBJECT_BASIC_ACCOUNTING_INFORMATION, which x/sys does not declare.
	var info struct {
		TotalUserTime, TotalKernelTime, ThisPeriodTotalUserTime, ThisPeriodTotalKernelTime int64
		TotalPageFaultCount, TotalProcesses, ActiveProcesses, TotalTerminatedProcesses     uint32
	}
	err := windows.QueryInformationJobObject(j.obj, windows.JobObjectBasicAccountingInformation,
		uintptr(unsafe.Pointer(&info)), uint32(unsafe.Sizeof(info)), nil)
	return err != nil || info.ActiveProcesses > 0
}
