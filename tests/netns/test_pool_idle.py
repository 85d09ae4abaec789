#!/usr/bin/python3
"""Pool reuse and idle release: sequential tunnels to one destination share one pooled HBONE
connection, and the connection is closed once unused for POOL_UNUSED_RELEASE_TIMEOUT.

A's ztunnel runs with one worker (one pool) and POOL_UNUSED_RELEASE_TIMEOUT=2s. Five tunnels to
B's echo app, one after the other: B sees exactly one HBONE connection on :15008 throughout. With
the last tunnel closed, the connection is released within the timeout (+ slack) and B's count
drops to 0; a new tunnel then dials a fresh connection and works.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nslib  # noqa: E402
import ztscenario as zs  # noqa: E402
from ztscenario import check  # noqa: E402

IDLE = 2.0


def hbone_conns(z):
    return nslib.count_tcp_connections(z.b.ns, 15008, "sport")


def wait_conns(z, want, timeout):
    deadline = time.monotonic() + timeout
    while True:
        n = hbone_conns(z)
        if n == want or time.monotonic() > deadline:
            return n
        time.sleep(0.1)


def body(z):
    z.start(env_a={"ZTUNNEL_WORKER_THREADS": "1", "POOL_UNUSED_RELEASE_TIMEOUT": f"{IDLE}s"})
    z.server(z.b, zs.APP_PORT, "echo")
    for i in range(5):
        r = nslib.tcp_source(z.a.ns, z.b.ip, zs.APP_PORT, 32 << 10, seed=i, echo=True)
        check(r["recv_sha256"] == r["sha256"], f"tunnel {i}: echo differs")
        n = hbone_conns(z)
        check(n == 1, f"after tunnel {i}: {n} HBONE connections at B, expected the pooled one")
    check(len(z.a.wait_access(lambda r: r.get("dst.hbone_addr") == f"{z.b.ip}:{zs.APP_PORT}",
                               count=5)) == 5, "A logged fewer than 5 HBONE tunnels")
    released = wait_conns(z, 0, IDLE + 3.0)
    check(released == 0, f"the idle pooled connection was not released ({released} left)")
    r = nslib.tcp_source(z.a.ns, z.b.ip, zs.APP_PORT, 32 << 10, seed=9, echo=True)
    check(r["recv_sha256"] == r["sha256"], "tunnel after release: echo differs")
    check(wait_conns(z, 1, 2.0) == 1, "no fresh HBONE connection after the release")


if __name__ == "__main__":
    sys.exit(zs.main("zt-e2e-poolidle", body))
