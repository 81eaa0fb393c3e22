package flock_test

import (
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// noStatxEnv, set to 1, makes this test binary's statx(2) fail with
// ENOSYS in every thread from the start, as on Linux before 4.11 or under
// a seccomp profile that does not allow it. Go's os package stats with
// fstatat, so only the waiter's look notices.
const noStatxEnv = "NFSFLOCK_TEST_NO_STATX"

func init() {
	if os.Getenv(noStatxEnv) != "1" {
		return
	}
	const (
		auditArchX86_64 = 0xc000003e
		retAllow        = 0x7fff0000
		retErrno        = 0x00050000
	)
	prog := []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 4}, // seccomp_data.arch
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 0, Jf: 3, K: auditArchX86_64},
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 0}, // seccomp_data.nr
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 0, Jf: 1, K: unix.SYS_STATX},
		{Code: unix.BPF_RET | unix.BPF_K, K: retErrno | uint32(unix.ENOSYS)},
		{Code: unix.BPF_RET | unix.BPF_K, K: retAllow},
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		panic(err)
	}
	const setModeFilter, filterFlagTsync = 1, 1
	if _, _, e := unix.RawSyscall(unix.SYS_SECCOMP, setModeFilter, filterFlagTsync, uintptr(unsafe.Pointer(&fprog))); e != 0 {
		panic("seccomp: " + e.Error())
	}
	var st unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, "/", 0, unix.STATX_BASIC_STATS, &st); err != unix.ENOSYS {
		panic("statx still answers under the seccomp filter")
	}
}

// TestWaiterWokenWithoutStatx runs TestWaiterWokenAfterUnlinkAndRelink in
// a child of this test binary whose statx(2) fails: a look's stat must
// still read the watched file's link count, by fstatat, and settle an
// unlink that may be under way. Keyed on statx alone, a look without it
// never settled, and hint's lstat, made after the proof, read the next
// holder's file (fifth adversarial review: 6 of 6 runs failed).
func TestWaiterWokenWithoutStatx(t *testing.T) {
	if os.Getenv(noStatxEnv) == "1" {
		t.Skip("the child's own run of this test")
	}
	if testing.Short() {
		t.Skip("runs TestWaiterWokenAfterUnlinkAndRelink, skipped with -short")
	}
	if runtime.GOARCH != "amd64" {
		t.Skip("the seccomp filter that takes statx away is written for amd64")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	const inner = "TestWaiterWokenAfterUnlinkAndRelink"
	cmd := exec.Command(exe, "-test.run=^"+inner+"$", "-test.count=1", "-test.v", "-test.timeout=5m")
	cmd.Env = append(os.Environ(), noStatxEnv+"=1")
	out, err := cmd.CombinedOutput()
	if strings.Contains(string(out), "--- SKIP") {
		t.Skipf("the child skipped: %s", out)
	}
	if err != nil {
		var lines []string
		for _, line := range strings.Split(string(out), "\n") {
			if strings.Contains(line, "did not wake") || strings.Contains(line, "--- ") || strings.Contains(line, "panic") {
				lines = append(lines, strings.TrimSpace(line))
			}
		}
		t.Errorf("without statx: %v\n%s", err, strings.Join(lines, "\n"))
	} else if !strings.Contains(string(out), "--- PASS: "+inner) {
		t.Errorf("the child did not run %s:\n%s", inner, out)
	}
}
