//go:build unix

package flock

import (
	"context"
	"errors"
	"time"

	"github.com/nfsflock/nfsflock/internal/testenv"
	"os"
	"path/filepath"
	"testing"
)

// TestDotDotSystemDirMissingTakesTextDir: a path "link/../b/app.lck",
// where link is a symlink into another directory, names to open(2) (and
// to flufl.lock, and a shell) the file b/app.lck beside link's target.
// absPath (lock.go) now takes the text's reading ("b" beside link)
// whenever stat of the system's directory fails: here because that
// directory does not exist yet. Before, EvalSymlinks failed and New
// reported it. The Lock then locks a file that the path does not name;
// once the system's directory exists, another Lock made from the very
// same text locks the other file, and both hold the lock.
func TestDotDotSystemDirMissingTakesTextDir(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"real/a", "b"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(root, "real", "a"), filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	t.Chdir(root)
	const text = "link/../b/app.lck" // open(2): root/real/b/app.lck
	first, err := New(text)
	if err != nil {
		t.Logf("New(%q) = %v (refused while the directory it names is missing: fine)", text, err)
		return
	}
	t.Cleanup(func() { first.Close() })
	if err := os.Mkdir(filepath.Join(root, "real", "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	second := newLock(t, text)
	ok1, err1 := first.TryAcquire()
	ok2, err2 := second.TryAcquire()
	if ok1 && ok2 {
		t.Errorf("New(%q) twice in one process, before and after the directory the path names was made: Paths %q and %q, and both TryAcquire() = true (%v, %v): two holders", text, first.Path(), second.Path(), err1, err2)
	}
	if first.Path() != filepath.Join(root, "real", "b", "app.lck") {
		t.Logf("first Lock's Path() = %q; open(2) of %q names %q", first.Path(), text, filepath.Join(root, "real", "b", "app.lck"))
	}
}

// TestKeepAliveEarlyLossReleaseRace: as TestKeepAliveEarlyLossStaysLost
// (leaseedge_test.go), but the holder calls Release while the refresh is
// stuck (as a program does once KeepAlive's context tells it the lock was
// lost: it stops its work and lets go). Release waits for the Lock's mutex,
// which the stuck refresh holds; when the refresh returns (the wall clock
// stepped back meanwhile, so it succeeds), Release takes the mutex before
// the keeper does (keepalive.go, run: the l.lose after k.refresh), finds
// the lock ours and in its lease, removes it and returns nil: "held until
// now, and free", while KeepAlive's context and stop() say ErrLockLost.
// 4fccc74 promised that the Lock gives the lock up "so that Release says
// ErrLockLost too".
func TestKeepAliveEarlyLossReleaseRace(t *testing.T) {
	path := filepath.Join(testenv.TempDir(t), "app.lck")
	clk := &stepRunClock{start: time.Now()}
	clk.wall.Store(int64(2 * time.Minute))
	st, fs := stallingFS(t)
	const life = 1500 * time.Millisecond
	h := newLock(t, path, WithClock(clk), withRunClock(clk.runClock), withFS(fs), WithLifetime(life), WithClockSlop(time.Second))
	if err := h.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	kctx, stop := h.KeepAlive(context.Background())
	defer stop()
	st.on.Store(true)
	select {
	case <-st.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("no refresh within 5 s")
	}
	select {
	case <-kctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("KeepAlive's context not cancelled while the refresh stalled past the lease")
	}
	cause := context.Cause(kctx)
	rel := make(chan error, 1)
	go func() { rel <- h.Release() }()
	time.Sleep(100 * time.Millisecond) // Release waits for the mutex
	clk.wall.Store(0)
	st.free()
	rerr := <-rel
	serr := stop()
	if errors.Is(cause, ErrLockLost) && rerr == nil {
		t.Errorf("KeepAlive's context was cancelled with %v and stop() = %v, but the Release called meanwhile = nil", cause, serr)
	}
}
