"""The Python half of the Go/Python alternation test.

    alternate.py LOCKFILE DIR ROUNDS

Go and this script take turns: Go takes the lock first, then Python, and
so on, ROUNDS times each. The turn is read from DIR/log, to which the
holder appends one line per turn: "go N" or "py N". Python starts its
lock() as soon as Go's line appears, that is while Go most likely still
holds the lock, so that flufl.lock must wait for the Go holder.

Inside the lock it creates DIR/inside with O_EXCL (which fails if Go is
inside too) and checks that the log says it is Python's turn. It exits 0
when all went well and 1, after a message on stderr, otherwise. Its last
line on stdout is "waited N": in how many turns lock() had to wait for Go
(flufl sleeps at least 10 ms when it finds the lock held).
"""

import os
import random
import sys
import time
from datetime import timedelta

from flufl.lock import Lock


def main():
    lockfile, workdir, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
    log = os.path.join(workdir, 'log')
    marker = os.path.join(workdir, 'inside')
    deadline = time.monotonic() + 300
    lock = Lock(lockfile, lifetime=timedelta(seconds=60))
    failures = 0
    waited = 0
    for n in range(rounds):
        # Go's turn n is line 2n; ours is line 2n+1.
        while entries(log) < 2 * n + 1:
            if time.monotonic() > deadline:
                fail('round %d: Go never took its turn' % n)
                return 1
            time.sleep(0.0002)
        start = time.monotonic()
        lock.lock(timeout=timedelta(seconds=120))
        if time.monotonic() - start >= 0.01:
            waited += 1
        try:
            fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        except FileExistsError:
            fail('round %d: Python holds the lock and Go is inside too' % n)
            failures += 1
            fd = None
        have = entries(log)
        if have != 2 * n + 1:
            fail('round %d: log has %d lines; want %d' % (n, have, 2 * n + 1))
            failures += 1
        with open(log, 'a') as fp:
            fp.write('py %d\n' % n)
        time.sleep(random.random() * 0.003)
        if fd is not None:
            os.close(fd)
            os.unlink(marker)
        lock.unlock()
    print('waited %d' % waited, flush=True)
    return 1 if failures else 0


def entries(log):
    try:
        with open(log) as fp:
            return sum(1 for _ in fp)
    except FileNotFoundError:
        return 0


def fail(message):
    print(message, file=sys.stderr, flush=True)


if __name__ == '__main__':
    sys.exit(main())
