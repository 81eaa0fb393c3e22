"""Hold flufl.lock's lock() between its link and the touch that follows it.

    linkwindow.py LOCKFILE LIFETIME

Runs the unmodified flufl.lock Lock.lock(); a profile hook (sys.setprofile:
no change to the library) sees the second call of Lock._touch within
lock(), which flufl makes right after its link(2) succeeded, prints
"linked" with what the lock file then holds, and waits for a line on
stdin before letting the touch run. Prints "waiting" just before lock()
and, at the end, "returned" and is_locked.
"""
import json, os, sys
from datetime import timedelta
from flufl.lock import Lock

path, lifetime = sys.argv[1], float(sys.argv[2])
lk = Lock(path, lifetime=timedelta(seconds=lifetime))
touch = Lock._touch.__code__
calls = 0


def look():
    try:
        st = os.stat(path)
        with open(path) as f:
            return {'c': f.read(), 'mtime': st.st_mtime, 'nlink': st.st_nlink}
    except OSError as e:
        return {'err': e.strerror}


def prof(frame, event, arg):
    global calls
    if event == 'call' and frame.f_code is touch:
        calls += 1
        if calls == 2:
            print('linked', json.dumps(look()), flush=True)
            sys.stdin.readline()


print('waiting', json.dumps({'claim': lk._claimfile}), flush=True)
sys.setprofile(prof)
lk.lock()
sys.setprofile(None)
print('returned', json.dumps({'is_locked': lk.is_locked, 'at_L': look()}), flush=True)
sys.stdin.readline()
