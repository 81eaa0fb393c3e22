package simfs_test

import (
	"errors"
	"io/fs"
	"math/rand/v2"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/nfsflock/nfsflock/internal/fsys"
	"github.com/nfsflock/nfsflock/internal/fsys/simfs"
)

var t0 = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// world is a server whose true time moves only when the test says.
type world struct {
	s   *simfs.Server
	now time.Time
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{now: t0}
	w.s = simfs.NewServer(rand.New(rand.NewPCG(1, 2)), func() time.Time { return w.now })
	if err := w.s.MkdirAll("/d"); err != nil {
		t.Fatalf("MkdirAll(/d) = %v", err)
	}
	return w
}

func (w *world) proc(cfg simfs.HostConfig) *simfs.Proc {
	return w.s.NewHost(cfg).Namespace(0).Spawn(nil)
}

func mustCreate(t *testing.T, p fsys.FS, name, data string, at time.Time) fsys.File {
	t.Helper()
	f, err := p.Create(name, []byte(data), at)
	if err != nil {
		t.Fatalf("Create(%q) = %v", name, err)
	}
	return f
}

func mustLstat(t *testing.T, p fsys.FS, name string) fsys.Info {
	t.Helper()
	i, err := p.Lstat(name)
	if err != nil {
		t.Fatalf("Lstat(%q) = %v", name, err)
	}
	return i
}

func errno(err error) syscall.Errno {
	var e syscall.Errno
	errors.As(err, &e)
	return e
}

func TestCreateIsExclusiveAndSetsTimes(t *testing.T) {
	w := newWorld(t)
	p := w.proc(simfs.Local())
	at := t0.Add(15*time.Second + 7)
	f := mustCreate(t, p, "/d/a", "hello", at)
	i, err := f.Stat()
	if err != nil || !i.ModTime.Equal(at) || i.Size != 5 || i.Nlink != 1 || !i.Mode.IsRegular() || i.Uid != 1000 {
		t.Errorf("Stat() = %+v, %v; want mtime %v, size 5, nlink 1, uid 1000", i, err, at)
	}
	data, err := f.ReadAll(100)
	if err != nil || string(data) != "hello" {
		t.Errorf("ReadAll = %q, %v; want hello", data, err)
	}
	if err := f.Close(); err != nil {
		t.Errorf("Close() = %v", err)
	}
	_, err = p.Create("/d/a", nil, at)
	var pe *fs.PathError
	if !errors.Is(err, fs.ErrExist) || errno(err) != syscall.EEXIST || !errors.As(err, &pe) {
		t.Errorf("second Create = %v; want a *fs.PathError with EEXIST", err)
	}
	if _, err := p.Create("/nodir/a", nil, at); errno(err) != syscall.ENOENT {
		t.Errorf("Create in a missing directory = %v; want ENOENT", err)
	}
	if err := w.s.Symlink("/d/a", "/d/link"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Create("/d/link", nil, at); errno(err) != syscall.EEXIST {
		t.Errorf("Create over a symlink = %v; want EEXIST", err)
	}
}

func TestLinkCountsAndInodeReuse(t *testing.T) {
	w := newWorld(t)
	p := w.proc(simfs.Local())
	mustCreate(t, p, "/d/a", "x", t0).Close()
	first := mustLstat(t, p, "/d/a")
	if err := p.Link("/d/a", "/d/b"); err != nil {
		t.Fatalf("Link = %v", err)
	}
	if i := mustLstat(t, p, "/d/b"); i.Nlink != 2 || !i.SameFile(first) {
		t.Errorf("Lstat(b) = %+v; want nlink 2 and the same file as a", i)
	}
	var le *fs.PathError
	if err := p.Link("/d/a", "/d/b"); errno(err) != syscall.EEXIST || errors.As(err, &le) {
		t.Errorf("Link onto an existing name = %v; want an *os.LinkError with EEXIST", err)
	}
	if err := p.Remove("/d/a"); err != nil {
		t.Fatal(err)
	}
	if err := p.Remove("/d/a"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("second Remove = %v; want ENOENT", err)
	}
	if i := mustLstat(t, p, "/d/b"); i.Nlink != 1 {
		t.Errorf("nlink after removing one name = %d; want 1", i.Nlink)
	}
	if err := p.Remove("/d/b"); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, p, "/d/c", "y", t0).Close()
	if i := mustLstat(t, p, "/d/c"); i.Ino != first.Ino {
		t.Errorf("new file's inode number = %d; want the freed %d at once", i.Ino, first.Ino)
	}
}

func TestOpenDescriptorPinsInodeOnLocalDisk(t *testing.T) {
	w := newWorld(t)
	p := w.proc(simfs.Local())
	f := mustCreate(t, p, "/d/a", "x", t0)
	ino := mustLstat(t, p, "/d/a").Ino
	if err := p.Remove("/d/a"); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, p, "/d/b", "y", t0).Close()
	if i := mustLstat(t, p, "/d/b"); i.Ino == ino {
		t.Errorf("inode number %d reused while a descriptor holds it open", ino)
	}
	if err := f.SetTimes(t0.Add(time.Hour)); err != nil {
		t.Errorf("SetTimes on a removed, open file = %v; want nil on a local disk", err)
	}
	p.Exit() // closes f
	mustCreate(t, w.proc(simfs.Local()), "/d/c", "z", t0).Close()
	if i := mustLstat(t, p, "/d/c"); i.Ino != ino {
		t.Errorf("inode number after the process exited = %d; want %d", i.Ino, ino)
	}
}

func TestRename(t *testing.T) {
	w := newWorld(t)
	p := w.proc(simfs.Local())
	mustCreate(t, p, "/d/a", "a", t0).Close()
	mustCreate(t, p, "/d/b", "b", t0).Close()
	if err := p.RenameNoReplace("/d/a", "/d/b"); !errors.Is(err, fs.ErrExist) {
		t.Errorf("RenameNoReplace onto b = %v; want EEXIST", err)
	}
	if err := p.Rename("/d/a", "/d/b"); err != nil {
		t.Fatalf("Rename = %v", err)
	}
	if n, _ := w.s.Lookup("/d/b"); string(n.Data) != "a" {
		t.Errorf("b holds %q after the rename; want a", n.Data)
	}
	if err := p.Rename("/d/a", "/d/c"); errno(err) != syscall.ENOENT {
		t.Errorf("Rename of a missing file = %v; want ENOENT", err)
	}
	// Two names of one file: rename does nothing and succeeds.
	if err := p.Link("/d/b", "/d/c"); err != nil {
		t.Fatal(err)
	}
	if err := p.Rename("/d/b", "/d/c"); err != nil {
		t.Errorf("Rename between two links of one file = %v", err)
	}
	if got := w.s.List("/d"); !slices.Equal(got, []string{"b", "c"}) {
		t.Errorf("names = %v; want [b c]", got)
	}
	nfs := w.proc(simfs.NFS())
	if err := nfs.RenameNoReplace("/d/b", "/d/e"); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("RenameNoReplace on NFS = %v; want ErrUnsupported", err)
	}
}

func TestExchange(t *testing.T) {
	w := newWorld(t)
	p := w.proc(simfs.Local())
	mustCreate(t, p, "/d/a", "a", t0).Close()
	mustCreate(t, p, "/d/b", "b", t0).Close()
	if err := w.s.MkdirAll("/d/e"); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, p, "/d/e/f", "f", t0).Close()
	if err := p.Exchange("/d/a", "/d/b"); err != nil {
		t.Fatalf("Exchange = %v", err)
	}
	na, _ := w.s.Lookup("/d/a")
	nb, _ := w.s.Lookup("/d/b")
	if string(na.Data) != "b" || string(nb.Data) != "a" {
		t.Errorf("after the exchange a holds %q and b %q; want b and a", na.Data, nb.Data)
	}
	// A directory's children go with it.
	if err := p.Exchange("/d/e", "/d/a"); err != nil {
		t.Fatalf("Exchange of a directory = %v", err)
	}
	if n, ok := w.s.Lookup("/d/a/f"); !ok || string(n.Data) != "f" {
		t.Errorf("the directory's file did not move with it: %v %q", ok, n.Data)
	}
	if n, _ := w.s.Lookup("/d/e"); string(n.Data) != "b" {
		t.Errorf("e holds %q; want b", n.Data)
	}
	if err := p.Exchange("/d/b", "/d/missing"); errno(err) != syscall.ENOENT {
		t.Errorf("Exchange with a missing name = %v; want ENOENT", err)
	}
	for _, cfg := range []simfs.HostConfig{simfs.NFS(), simfs.SSHFS()} {
		if err := w.proc(cfg).Exchange("/d/b", "/d/e"); !errors.Is(err, errors.ErrUnsupported) {
			t.Errorf("Exchange on a network mount = %v; want ErrUnsupported", err)
		}
	}
}

func TestOpenRefusesWhatIsNotARegularFile(t *testing.T) {
	w := newWorld(t)
	p := w.proc(simfs.Local())
	if err := w.s.Symlink("/etc/passwd", "/d/s"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"/d/s", "/d"} {
		_, err := p.Open(name)
		var nr *fsys.NotRegularError
		if !errors.As(err, &nr) || !errors.Is(err, fsys.ErrNotRegular) {
			t.Errorf("Open(%q) = %v; want a *fsys.NotRegularError", name, err)
		}
	}
	if i := mustLstat(t, p, "/d/s"); i.Mode.Type() != fs.ModeSymlink {
		t.Errorf("Lstat of a symlink: mode %v", i.Mode)
	}
	if _, err := p.Open("/d/none"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open of a missing file = %v; want ENOENT", err)
	}
}

func TestTimeResolution(t *testing.T) {
	w := newWorld(t)
	p := w.proc(simfs.SSHFS())
	at := t0.Add(1500 * time.Millisecond)
	f := mustCreate(t, p, "/d/a", "x", at)
	if i, _ := f.Stat(); !i.ModTime.Equal(t0.Add(time.Second)) {
		t.Errorf("mtime through sshfs = %v; want it truncated to the second", i.ModTime)
	}
	if n, _ := w.s.Lookup("/d/a"); !n.ModTime.Equal(t0.Add(time.Second)) {
		t.Errorf("mtime stored = %v; want it truncated to the second", n.ModTime)
	}
}

func TestNFSCachesAttributesUntilOpen(t *testing.T) {
	w := newWorld(t)
	cfg := simfs.NFS()
	cfg.AttrMin, cfg.AttrMax = 30*time.Second, 30*time.Second
	a, b := w.proc(cfg), w.proc(cfg)
	f := mustCreate(t, a, "/d/lock", "a", t0)
	before := mustLstat(t, b, "/d/lock")
	if err := f.SetTimes(t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	w.now = w.now.Add(10 * time.Second)
	if i := mustLstat(t, b, "/d/lock"); !i.ModTime.Equal(before.ModTime) {
		t.Errorf("Lstat on another host within acregmax = %v; want the cached %v", i.ModTime, before.ModTime)
	}
	g, err := b.Open("/d/lock")
	if err != nil {
		t.Fatal(err)
	}
	if i, _ := g.Stat(); !i.ModTime.Equal(t0.Add(time.Minute)) {
		t.Errorf("Stat after Open = %v; want the revalidated %v", i.ModTime, t0.Add(time.Minute))
	}
	// Removed by another host: the descriptor goes stale.
	if err := a.Remove("/d/lock"); err != nil {
		t.Fatal(err)
	}
	if _, err := g.ReadAll(10); errno(err) != syscall.ESTALE {
		t.Errorf("ReadAll of a removed file on NFS = %v; want ESTALE", err)
	}
	if err := g.SetTimes(t0); errno(err) != syscall.ESTALE {
		t.Errorf("SetTimes of a removed file on NFS = %v; want ESTALE", err)
	}
}

func TestSSHFSCachesAttributesPerPathEvenAcrossOpen(t *testing.T) {
	w := newWorld(t)
	cfg := simfs.SSHFS()
	cfg.AttrMin, cfg.AttrMax, cfg.LinkRaceEPERM = 20*time.Second, 20*time.Second, 0
	a, b := w.proc(cfg), w.proc(cfg)
	mustCreate(t, a, "/d/lock", "old holder", t0).Close()
	old := mustLstat(t, b, "/d/lock")
	// a replaces the lock file with a shorter, newer one.
	if err := a.Remove("/d/lock"); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, a, "/d/lock", "new", t0.Add(time.Hour)).Close()
	w.now = w.now.Add(5 * time.Second)
	f, err := b.Open("/d/lock")
	if err != nil {
		t.Fatal(err)
	}
	i, _ := f.Stat()
	if !i.ModTime.Equal(old.ModTime) || i.Size != old.Size {
		t.Errorf("Stat after Open on sshfs = %+v; want the cached attributes %+v", i, old)
	}
	if i.Nlink != 1 {
		t.Errorf("nlink on sshfs = %d; want 1", i.Nlink)
	}
	// A new name has nothing cached.
	if err := b.Link("/d/lock", "/d/probe"); err != nil {
		t.Fatal(err)
	}
	p := mustLstat(t, b, "/d/probe")
	if !p.ModTime.Equal(t0.Add(time.Hour)) || p.Ino == i.Ino || p.Nlink != 1 {
		t.Errorf("Lstat(probe) = %+v; want fresh times, another inode number, nlink 1", p)
	}
	// A rename keeps the path's number.
	if err := b.Rename("/d/lock", "/d/aside"); err != nil {
		t.Fatal(err)
	}
	if got := mustLstat(t, b, "/d/aside"); got.Ino != i.Ino {
		t.Errorf("inode number after rename = %d; want %d", got.Ino, i.Ino)
	}
	w.now = w.now.Add(20 * time.Second)
	f2, err := a.Open("/d/aside")
	if err != nil {
		t.Fatal(err)
	}
	if data, _ := f2.ReadAll(100); string(data) != "new" {
		t.Errorf("ReadAll = %q; want new", data)
	}
}

func TestSSHFSReadStopsAtCachedSize(t *testing.T) {
	w := newWorld(t)
	cfg := simfs.SSHFS()
	cfg.AttrMin, cfg.AttrMax = 20*time.Second, 20*time.Second
	a, b := w.proc(cfg), w.proc(cfg)
	mustCreate(t, a, "/d/lock", "ab", t0).Close()
	mustLstat(t, b, "/d/lock")
	if err := a.Remove("/d/lock"); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, a, "/d/lock", "longer contents", t0).Close()
	f, err := b.Open("/d/lock")
	if err != nil {
		t.Fatal(err)
	}
	if data, _ := f.ReadAll(100); string(data) != "lo" {
		t.Errorf("ReadAll with a stale cached size = %q; want the first 2 bytes", data)
	}
}

func TestLostReplies(t *testing.T) {
	w := newWorld(t)
	cfg := simfs.Local()
	cfg.LostReplies = 1
	p := w.proc(cfg)
	if _, err := p.Create("/d/a", []byte("x"), t0); errno(err) != syscall.EEXIST {
		t.Errorf("Create with a lost reply = %v; want EEXIST", err)
	}
	if _, ok := w.s.Lookup("/d/a"); !ok {
		t.Fatal("Create with a lost reply did not create")
	}
	if err := p.Link("/d/a", "/d/b"); errno(err) != syscall.EEXIST {
		t.Errorf("Link with a lost reply = %v; want EEXIST", err)
	}
	if n, _ := w.s.Lookup("/d/b"); n.Nlink != 2 {
		t.Errorf("after a lost link reply, nlink = %d; want 2", n.Nlink)
	}
	if err := p.Rename("/d/b", "/d/c"); errno(err) != syscall.ENOENT {
		t.Errorf("Rename with a lost reply = %v; want ENOENT", err)
	}
	if err := p.Remove("/d/c"); errno(err) != syscall.ENOENT {
		t.Errorf("Remove with a lost reply = %v; want ENOENT", err)
	}
	if got := w.s.List("/d"); !slices.Equal(got, []string{"a"}) {
		t.Errorf("names = %v; want [a]", got)
	}
}

func TestHardLinksRefused(t *testing.T) {
	w := newWorld(t)
	cfg := simfs.SSHFS()
	cfg.NoHardLinks = true
	p := w.proc(cfg)
	mustCreate(t, p, "/d/a", "x", t0).Close()
	if err := p.Link("/d/a", "/d/b"); errno(err) != syscall.EPERM {
		t.Errorf("Link with hard links disabled = %v; want EPERM", err)
	}
	if err := p.Link("/d/none", "/d/b"); errno(err) != syscall.ENOENT {
		t.Errorf("Link of a missing file = %v; want ENOENT", err)
	}
}

func TestStaleDirectoryListing(t *testing.T) {
	w := newWorld(t)
	cfg := simfs.NFS()
	a, b := w.proc(cfg), w.proc(cfg)
	if names, err := b.ReadDir("/d"); err != nil || len(names) != 0 {
		t.Fatalf("ReadDir = %v, %v", names, err)
	}
	mustCreate(t, a, "/d/x", "", t0).Close()
	if names, _ := b.ReadDir("/d"); len(names) != 0 {
		t.Errorf("ReadDir on another host right away = %v; want the cached, empty listing", names)
	}
	if names, _ := a.ReadDir("/d"); !slices.Equal(names, []string{"x"}) {
		t.Errorf("ReadDir on the host that created x = %v; want [x]", names)
	}
	w.now = w.now.Add(cfg.DirMax + time.Second)
	if names, _ := b.ReadDir("/d"); !slices.Equal(names, []string{"x"}) {
		t.Errorf("ReadDir after the cache expired = %v; want [x]", names)
	}
}

func TestProcessesAndNamespaces(t *testing.T) {
	w := newWorld(t)
	cfg := simfs.Local()
	cfg.ReusePIDs = true
	h := w.s.NewHost(cfg)
	p1, p2 := h.Namespace(0).Spawn(nil), h.Namespace(0).Spawn(nil)
	c := h.Namespace(1).Spawn(nil)
	if !p1.ProcessAlive(p2.PID()) || c.ProcessAlive(p2.PID()) && c.PID() != p2.PID() {
		t.Errorf("ProcessAlive: p2 seen from p1 %v, from another namespace %v", p1.ProcessAlive(p2.PID()), c.ProcessAlive(p2.PID()))
	}
	if p1.Namespace() == c.Namespace() || p1.Namespace() == 0 {
		t.Errorf("Namespace() = %d and %d; want two distinct nonzero tags", p1.Namespace(), c.Namespace())
	}
	p2.Exit()
	if p1.ProcessAlive(p2.PID()) {
		t.Errorf("ProcessAlive(%d) after Exit = true", p2.PID())
	}
	if p3 := h.Namespace(0).Spawn(nil); p3.PID() != p2.PID() {
		t.Errorf("pid after reuse = %d; want %d", p3.PID(), p2.PID())
	}
}

func TestStepperDecidesWhenCallsHappen(t *testing.T) {
	w := newWorld(t)
	var calls []*simfs.Call
	crashed := false
	step := func(c *simfs.Call, apply func()) {
		if !crashed {
			apply()
		}
		calls = append(calls, c)
	}
	p := w.s.NewHost(simfs.Local()).Namespace(0).Spawn(step)
	mustCreate(t, p, "/d/a", "x", t0).Close()
	crashed = true
	if err := p.Remove("/d/a"); errno(err) != syscall.EIO {
		t.Errorf("Remove that never happened = %v; want EIO", err)
	}
	if _, ok := w.s.Lookup("/d/a"); !ok {
		t.Error("a call that never happened removed the file")
	}
	if len(calls) != 3 || calls[0].Op != "create" || len(calls[0].Effects) != 1 || calls[0].Effects[0].Kind != simfs.Created {
		t.Errorf("calls = %v", calls)
	}
}

// TestServerStamps: the server stamps a file written without explicit
// times, and every change of an inode's times or names, with its own clock
// (cut to its coarse tick), whatever the host's clock; sshfs reports the
// modification time as the change time; a mount with client stamps uses
// the host's clock.
func TestServerStamps(t *testing.T) {
	w := newWorld(t)
	w.now = t0.Add(1500*time.Millisecond + 123456)
	local := w.proc(simfs.HostConfig{Skew: time.Minute, Dev: 1})
	f := mustCreate(t, local, "/d/a", "a", time.Time{})
	want := t0.Add(1500 * time.Millisecond)
	if i, err := f.Stat(); err != nil || !i.ModTime.Equal(want) || !i.ChangeTime.Equal(want) {
		t.Errorf("Stat() after a create without times = mtime %v, ctime %v, %v; want both %v, the server's", i.ModTime, i.ChangeTime, err, want)
	}
	w.now = w.now.Add(time.Second)
	expiry := t0.Add(time.Hour)
	if err := f.SetTimes(expiry); err != nil {
		t.Fatal(err)
	}
	if i := mustLstat(t, local, "/d/a"); !i.ModTime.Equal(expiry) || !i.ChangeTime.Equal(want.Add(time.Second)) {
		t.Errorf("after SetTimes: mtime %v, ctime %v; want %v, %v", i.ModTime, i.ChangeTime, expiry, want.Add(time.Second))
	}
	sshfs := w.proc(simfs.SSHFS())
	if i := mustLstat(t, sshfs, "/d/a"); !i.ChangeTime.Equal(i.ModTime) {
		t.Errorf("sshfs: ctime %v, mtime %v; want a copy of the mtime", i.ChangeTime, i.ModTime)
	}
	client := w.proc(simfs.HostConfig{Skew: -time.Minute, ClientStamps: true, Dev: 2})
	g := mustCreate(t, client, "/d/b", "b", time.Time{})
	if i, err := g.Stat(); err != nil || !i.ModTime.Equal(w.now.Add(-time.Minute)) {
		t.Errorf("client stamps: mtime %v, %v; want the host's clock %v", i.ModTime, err, w.now.Add(-time.Minute))
	}
}

// TestSSHFSStaleAfterSet: with StaleAfterSet, a descriptor's Stat right
// after a create with times, or a time change, shows the times from
// before it (a listing's cache); setting the times again shows them.
func TestSSHFSStaleAfterSet(t *testing.T) {
	w := newWorld(t)
	cfg := simfs.SSHFS()
	cfg.StaleAfterSet = 1
	p := w.proc(cfg)
	w.now = w.now.Add(1500 * time.Millisecond)
	expiry := t0.Add(time.Minute)
	f := mustCreate(t, p, "/d/claim", "c", expiry)
	i, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if want := t0.Add(time.Second); !i.ModTime.Equal(want) {
		t.Errorf("Stat after a create with times = %v; want the time it was written, cut to the second, %v", i.ModTime, want)
	}
	later := expiry.Add(time.Minute)
	if err := f.SetTimes(later); err != nil {
		t.Fatal(err)
	}
	if i, _ := f.Stat(); !i.ModTime.Equal(expiry) {
		t.Errorf("Stat after a time change = %v; want the time before it, %v", i.ModTime, expiry)
	}
	if err := f.SetTimes(later); err != nil {
		t.Fatal(err)
	}
	if i, _ := f.Stat(); !i.ModTime.Equal(later) {
		t.Errorf("Stat after setting the same time again = %v; want %v", i.ModTime, later)
	}
	if n, ok := w.s.Lookup("/d/claim"); !ok || !n.ModTime.Equal(later) {
		t.Errorf("the server holds %+v; want the time %v", n, later)
	}
}
