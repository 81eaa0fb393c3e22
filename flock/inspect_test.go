//go:build unix

package flock_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nfsflock/nfsflock/flock"
	"github.com/nfsflock/nfsflock/internal/testenv"
)

// TestInspect: one read answers every question, as this Lock's rules
// judge it, and State, Details and Expiration agree with it.
func TestInspect(t *testing.T) {
	const host = "here"
	dead := deadPID(t)
	claimOf := func(path, host string, pid int) string {
		return path + "|" + host + "|" + itoa(pid) + "|1"
	}
	tests := []struct {
		name string
		opts []flock.Option
		// setup makes the lock file; it returns what Status.Claim must be.
		setup func(t *testing.T, path string, l *flock.Lock, clock *testenv.Clock) string
		want  flock.Status // At, Expiry and Claim are checked apart
	}{
		{
			name:  "no lock file",
			setup: func(*testing.T, string, *flock.Lock, *testenv.Clock) string { return "" },
			want:  flock.Status{State: flock.Unlocked},
		},
		{
			name: "ours",
			setup: func(t *testing.T, path string, l *flock.Lock, _ *testenv.Clock) string {
				if err := l.Acquire(context.Background()); err != nil {
					t.Fatalf("Acquire() = %v", err)
				}
				return l.ClaimPath()
			},
			want: flock.Status{State: flock.Ours, Exists: true, Ours: true, Local: true, Alive: true},
		},
		{
			name: "ours, expired long ago",
			setup: func(t *testing.T, path string, l *flock.Lock, clock *testenv.Clock) string {
				if err := l.Acquire(context.Background()); err != nil {
					t.Fatalf("Acquire() = %v", err)
				}
				clock.Advance(time.Hour)
				return l.ClaimPath()
			},
			want: flock.Status{State: flock.OursExpired, Exists: true, Ours: true, Expired: true, Local: true, Alive: true},
		},
		{
			name: "another host's, fresh",
			setup: func(t *testing.T, path string, _ *flock.Lock, _ *testenv.Clock) string {
				writeAged(t, path, claimOf(path, "elsewhere", dead), -5*time.Second)
				return claimOf(path, "elsewhere", dead)
			},
			want: flock.Status{State: flock.Unknown, Exists: true},
		},
		{
			name: "another host's, an hour ahead",
			setup: func(t *testing.T, path string, _ *flock.Lock, _ *testenv.Clock) string {
				writeAged(t, path, claimOf(path, "elsewhere", 42), -time.Hour)
				return claimOf(path, "elsewhere", 42)
			},
			want: flock.Status{State: flock.Unknown, Exists: true, FarAhead: true},
		},
		{
			name: "another host's, expired but within the slop",
			setup: func(t *testing.T, path string, _ *flock.Lock, _ *testenv.Clock) string {
				writeAged(t, path, claimOf(path, "elsewhere", 42), 2*time.Second)
				return claimOf(path, "elsewhere", 42)
			},
			want: flock.Status{State: flock.Unknown, Exists: true, Expired: true},
		},
		{
			name: "another host's, past expiry and slop",
			setup: func(t *testing.T, path string, _ *flock.Lock, _ *testenv.Clock) string {
				writeAged(t, path, claimOf(path, "elsewhere", 42), time.Minute)
				return claimOf(path, "elsewhere", 42)
			},
			want: flock.Status{State: flock.Unknown, Exists: true, Expired: true, Breakable: true},
		},
		{
			name: "a live process of this host, expired",
			setup: func(t *testing.T, path string, _ *flock.Lock, _ *testenv.Clock) string {
				writeAged(t, path, claimOf(path, host, os.Getpid()), 2*time.Second)
				return claimOf(path, host, os.Getpid())
			},
			want: flock.Status{State: flock.TheirsExpired, Exists: true, Expired: true, Local: true, Alive: true},
		},
		{
			name: "a dead process of this host",
			setup: func(t *testing.T, path string, _ *flock.Lock, _ *testenv.Clock) string {
				writeAged(t, path, claimOf(path, host, dead), -5*time.Second)
				return claimOf(path, host, dead)
			},
			want: flock.Status{State: flock.Stale, Exists: true, Local: true},
		},
		{
			name: "a dead process of this host, with WithDeadOwnerBreak",
			opts: []flock.Option{flock.WithDeadOwnerBreak()},
			setup: func(t *testing.T, path string, _ *flock.Lock, _ *testenv.Clock) string {
				writeAged(t, path, claimOf(path, host, dead), -5*time.Second)
				return claimOf(path, host, dead)
			},
			want: flock.Status{State: flock.Stale, Exists: true, Local: true, Breakable: true},
		},
		{
			name: "contents that name no claim",
			setup: func(t *testing.T, path string, _ *flock.Lock, _ *testenv.Clock) string {
				writeAged(t, path, "hello", -5*time.Second)
				return ""
			},
			want: flock.Status{State: flock.Unknown, Exists: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "app.lck")
			clock := testenv.NewClock(time.Now())
			opts := append([]flock.Option{flock.WithHostname(host), flock.WithClock(clock), flock.WithClockSlop(10 * time.Second), flock.WithoutTimeBase()}, tt.opts...)
			l := newLock(t, path, opts...)
			wantClaim := tt.setup(t, path, l, clock)

			st, err := l.Inspect()
			if err != nil {
				t.Fatalf("Inspect() = %+v, %v", st, err)
			}
			if !st.At.Equal(clock.Now()) {
				t.Errorf("Inspect().At = %v; want the Lock's clock, %v", st.At, clock.Now())
			}
			if st.Claim != wantClaim {
				t.Errorf("Inspect().Claim = %q; want %q", st.Claim, wantClaim)
			}
			var fi os.FileInfo
			if st.Exists {
				if fi, err = os.Stat(path); err != nil {
					t.Fatal(err)
				}
				if !st.Expiry.Equal(fi.ModTime()) {
					t.Errorf("Inspect().Expiry = %v; want the lock file's mtime, %v", st.Expiry, fi.ModTime())
				}
			}
			if (st.Holder != nil) != (wantClaim != "") {
				t.Errorf("Inspect().Holder = %+v; want one only if the contents name a claim", st.Holder)
			}
			got := st
			got.At, got.Expiry, got.Claim, got.Holder = time.Time{}, time.Time{}, "", nil
			if got != tt.want {
				t.Errorf("Inspect() = %+v; want %+v", got, tt.want)
			}

			// The single-question calls agree with it.
			if s, err := l.State(); err != nil || s != st.State {
				t.Errorf("State() = %v, %v; want %v, nil", s, err, st.State)
			}
			d, err := l.Details()
			if st.Holder != nil && (err != nil || d != *st.Holder) {
				t.Errorf("Details() = %+v, %v; want %+v, nil", d, err, *st.Holder)
			}
			if exp, err := l.Expiration(); st.Exists && (err != nil || !exp.Equal(st.Expiry)) {
				t.Errorf("Expiration() = %v, %v; want %v, nil", exp, err, st.Expiry)
			}
			if st.Ours {
				if _, err := l.Break(false); !errors.Is(err, flock.ErrAlreadyLocked) {
					t.Errorf("Break(false) of our own lock = %v; want ErrAlreadyLocked", err)
				}
			} else if ok, err := l.Break(false); err != nil || ok != st.Breakable {
				t.Errorf("Break(false) = %v, %v; want %v, nil, as Inspect().Breakable says", ok, err, st.Breakable)
			}
		})
	}
}
