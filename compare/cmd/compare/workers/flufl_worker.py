"""A comparison worker for flufl.lock: the same line commands as the Go
workers (see worker.go), in one long-lived Python process, so that the
interpreter's start-up is not measured.

Usage: python3 flufl_worker.py LOCKPATH LIFETIME_SECONDS
"""
import sys
import time
from datetime import timedelta

from flufl.lock import Lock


def main():
    path = sys.argv[1]
    lifetime = timedelta(seconds=float(sys.argv[2]))
    lock = Lock(path, lifetime=lifetime)
    out = sys.stdout
    for line in sys.stdin:
        f = line.split()
        if not f:
            continue
        try:
            if f[0] == "cycles":
                n, reuse = int(f[1]), f[2] == "reuse"
                start = time.perf_counter_ns()
                for _ in range(n):
                    cur = lock if reuse else Lock(path, lifetime=lifetime)
                    cur.lock()
                    cur.unlock()
                out.write("ok %d\n" % (time.perf_counter_ns() - start))
            elif f[0] == "acquire":
                lock.lock()
                out.write("ok %d %d\n" % (time.monotonic_ns(), time.time_ns()))
            elif f[0] == "release":
                lock.unlock()
                out.write("ok %d\n" % time.monotonic_ns())
            elif f[0] == "take":
                k, hold = int(f[1]), int(f[2])
                times = []
                for _ in range(k):
                    lock.lock()
                    t1 = time.monotonic_ns()
                    if hold:
                        time.sleep(hold / 1e6)
                    lock.unlock()
                    times.append("%d,%d" % (t1, time.monotonic_ns()))
                out.write("ok " + " ".join(times) + "\n")
            elif f[0] == "quit":
                return
            else:
                out.write("err unknown command %r\n" % f[0])
        except Exception as e:  # reported to the driver, which fails the run
            out.write("err %s\n" % str(e).replace("\n", " "))
        out.flush()


main()
