//go:build unix

package flock

import (
	"os"
	"sync"
	"testing"
	"time"

	"github.com/nfsflock/nfsflock/internal/fsys"
	"github.com/nfsflock/nfsflock/internal/fsys/fsystest"
	"github.com/nfsflock/nfsflock/internal/testenv"
)

// fineOwnCutStoreFS returns the system's filesystem as a holder's FUSE
// mount with the kernel's writeback cache over SFTP shows it (sshfs -o
// writeback_cache; rclone mount --write-back-cache of an SFTP remote):
// the times it sets reach the server cut to the second (SFTP's SETSTAT
// carries whole seconds), but the kernel keeps, for the inodes it set
// them on, the times as it set them (fuse_do_setattr's trust_local_cmtime;
// with the writeback cache fuse_change_attributes never takes a regular
// file's mtime from the server again). The holder reads its own expiries
// as written; the server, and every mount that shows what it stores (its
// local disk, NFS), has them a second cut, beside a change time that the
// server stamped, with its fraction.
func fineOwnCutStoreFS() *fsystest.Faulty {
	var mu sync.Mutex
	set := map[uint64]time.Time{} // by inode: the mtime the kernel keeps
	keep := func(info fsys.Info, t time.Time) {
		mu.Lock()
		set[info.Ino] = t
		mu.Unlock()
	}
	view := func(info fsys.Info) fsys.Info {
		mu.Lock()
		defer mu.Unlock()
		if t, ok := set[info.Ino]; ok && info.Ino != 0 {
			info.ModTime = t
		}
		return info
	}
	wrap := func(f fsys.File) fsys.File { return &fineOwnFile{File: f, keep: keep, view: view} }
	return &fsystest.Faulty{
		FS: fsys.OS,
		OnCreate: func(next func(string, []byte, time.Time) (fsys.File, error), p string, d []byte, tm time.Time) (fsys.File, error) {
			f, err := next(p, d, tm.Truncate(time.Second))
			if err != nil {
				return f, err
			}
			if !tm.IsZero() {
				if info, err := f.Stat(); err == nil {
					keep(info, tm)
				}
			}
			return wrap(f), nil
		},
		OnOpen: func(next func(string) (fsys.File, error), p string) (fsys.File, error) {
			f, err := next(p)
			if err != nil {
				return f, err
			}
			return wrap(f), nil
		},
		OnLstat: func(next func(string) (fsys.Info, error), p string) (fsys.Info, error) {
			info, err := next(p)
			return view(info), err
		},
	}
}

type fineOwnFile struct {
	fsys.File
	keep func(fsys.Info, time.Time)
	view func(fsys.Info) fsys.Info
}

func (f *fineOwnFile) Stat() (fsys.Info, error) {
	info, err := f.File.Stat()
	return f.view(info), err
}

func (f *fineOwnFile) SetTimes(t time.Time) error {
	if err := f.File.SetTimes(t.Truncate(time.Second)); err != nil {
		return err
	}
	if info, err := f.File.Stat(); err == nil {
		f.keep(info, t)
	}
	return nil
}

// TestReviewFineHolderCutStoreBrokenByFineBreaker: the mirror of
// TestReviewBreakerFineOwnViewWaitsOutCut. The holder's mount (a FUSE
// writeback cache over SFTP) shows its own lock file's expiry as it set
// it, 0.9 s past a second, and never learns that the server kept it cut
// to the second; a breaker on the server's own disk, or on NFS, reads the
// whole second beside the change time the server stamped when the times
// were set, which has a fraction. At 612855c cutBy allowed nothing for
// the cut where the change time had a fraction (it held that a holder
// judges its own lease by what its mount stores; this holder's mount does
// not show it what it stores), and the breaker broke the lock 0.3 s
// before the holder's lease ended, with a clock slop of 0.2 s as in
// TestBreakerWaitsOutItsMountsCut.
func TestReviewFineHolderCutStoreBrokenByFineBreaker(t *testing.T) {
	s := stageCut(t, testenv.TempDir(t), fineOwnCutStoreFS(), fsys.OS)
	stored, err := os.Lstat(s.path)
	if err != nil {
		t.Fatal(err)
	}
	if !stored.ModTime().Equal(s.expiry.Truncate(time.Second)) {
		t.Fatalf("the server stores %v, not the holder's expiry %v cut", stored.ModTime(), s.expiry)
	}
	if held, err := s.holder.IsLocked(); err != nil || !held {
		t.Fatalf("holder.IsLocked() within its lease = %v, %v; want true", held, err)
	}
	s.leaseKept(t)
}
