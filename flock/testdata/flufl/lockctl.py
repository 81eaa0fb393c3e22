"""Drive one flufl.lock Lock by commands, for the Go interop tests.

    lockctl.py LOCKFILE [--lifetime SECONDS] [--clock-slop SECONDS]
               [--separator SEP]

Reads one command per line on stdin and answers each with one line of
JSON on stdout: {"ok": VALUE} or {"error": "ExceptionName", "message": ...}.
The first line it writes, before any command, is {"ok": INFO} with the
Lock's claimfile, hostname, pid and lockfile.

Commands:
    lock [TIMEOUT]       Lock.lock(timeout), TIMEOUT in seconds
    unlock               Lock.unlock()
    refresh [LIFETIME]   Lock.refresh(lifetime)
    is_locked            Lock.is_locked (which also refreshes)
    state                Lock.state, by name ("ours", "unknown", ...)
    details              Lock.details as [hostname, pid, lockfile]
    expiration           mtime of the lock file, seconds since the epoch
    exit                 end without unlocking

The library is used unmodified, except that --clock-slop lowers its
module-level CLOCK_SLOP (10 s) so that breaks in tests take seconds.
"""

import argparse
import json
import os
import sys
from datetime import timedelta

from flufl.lock import Lock, _lockfile


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('lockfile')
    parser.add_argument('--lifetime', type=float, default=15)
    parser.add_argument('--clock-slop', type=float)
    parser.add_argument('--separator', default=_lockfile.SEP)
    args = parser.parse_args()
    if args.clock_slop is not None:
        _lockfile.CLOCK_SLOP = timedelta(seconds=args.clock_slop)
    lock = Lock(args.lockfile, lifetime=timedelta(seconds=args.lifetime),
                separator=args.separator)

    def seconds(words, default=None):
        return timedelta(seconds=float(words[0])) if words else default

    def expiration():
        return os.stat(lock.lockfile).st_mtime

    commands = {
        'lock': lambda w: lock.lock(timeout=seconds(w)),
        'unlock': lambda w: lock.unlock(),
        'refresh': lambda w: lock.refresh(seconds(w)),
        'is_locked': lambda w: lock.is_locked,
        'state': lambda w: lock.state.name,
        'details': lambda w: list(lock.details),
        'expiration': lambda w: expiration(),
    }
    reply({'ok': {
        'claimfile': lock._claimfile,
        'hostname': lock.hostname,
        'pid': os.getpid(),
        'lockfile': lock.lockfile,
    }})
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == 'exit':
            break
        command = commands.get(words[0])
        if command is None:
            reply({'error': 'UnknownCommand', 'message': words[0]})
            continue
        try:
            reply({'ok': command(words[1:])})
        except Exception as error:
            reply({'error': type(error).__name__, 'message': str(error)})


def reply(value):
    sys.stdout.write(json.dumps(value) + '\n')
    sys.stdout.flush()


if __name__ == '__main__':
    main()
