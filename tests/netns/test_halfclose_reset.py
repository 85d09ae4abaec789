#!/usr/bin/python3
"""Scenario 3: half-close and reset propagation through an HBONE tunnel (reliability §2.13/§2.14).

All cases: a client app in A talks to an app on B through capture and both ztunnels.
  client-first half-close  A writes 1 MiB and SHUT_WR; B reads to EOF, answers 1 MiB 2 s later
                           and closes; A receives all of it (and B all of A's bytes).
  server-first half-close  B writes 1 MiB and SHUT_WR first; A reads to EOF, answers 1 MiB 2 s
                           later and closes; B receives all of it.
  B resets (reading side)  B reads 256 KiB, sends 64 KiB, then resets (SO_LINGER {1,0} + close):
                           A's app sees ECONNRESET, not a clean EOF.
  B resets (sending side)  A keeps sending 16 MiB; B resets after 256 KiB: A's send fails with
                           ECONNRESET.
  A resets                 A sends 64 KiB and resets: B's app sees ECONNRESET, not EOF.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nslib  # noqa: E402
import ztscenario as zs  # noqa: E402
from ztscenario import check  # noqa: E402

MIB = 1 << 20


def server_done(z, log, timeout=15):
    recs = zs.wait_records(log, lambda r: r.get("event") == "done", timeout=timeout)
    check(recs, f"the app on B did not finish its connection within {timeout}s "
                f"({zs.app_records(log)})")
    return recs[-1]


def body(z):
    a, b = z.a, z.b
    z.start()

    # --- client-first half-close ---
    log = z.server(b, 8081, "reply", nbytes=MIB, delay=2.0)
    r = z.client(a, ["--host", b.ip, "--port", 8081, "--mode", "halfclose", "--bytes", MIB],
                 timeout=30)
    s = server_done(z, log)
    print(f"client-first: client {r}\n  server {s}", flush=True)
    a.wait_access(lambda x: x.get("dst.hbone_addr") == f"{b.ip}:8081")
    b.wait_access(lambda x: x.get("dst.hbone_addr") == f"{b.ip}:8081")
    fds = {h.name: z.open_fds(h) for h in (a, b)}
    check(s["outcome"] == "eof" and s["received"] == MIB
          and s["sha256"] == nslib.pattern_sha256(MIB, 0),
          f"B's app did not read A's 1 MiB to a clean EOF: {s}")
    check(r.get("outcome") == "eof" and r.get("received") == MIB
          and r.get("recv_sha256") == nslib.pattern_sha256(MIB, 1),
          f"A did not receive B's late 1 MiB answer in full, then EOF: {r}")
    check(r.get("wait_s", 0) >= 1.5, f"the answer came {r.get('wait_s')}s after A's FIN, "
                                     f"expected ~2 s (the server waits)")
    check(s["peer"] == a.ip, f"B's app saw {s['peer']}, expected {a.ip}")

    # --- server-first half-close ---
    log = z.server(b, 8082, "first", nbytes=MIB)
    r = z.client(a, ["--host", b.ip, "--port", 8082, "--mode", "answer", "--bytes", MIB,
                     "--delay", 2.0], timeout=30)
    s = server_done(z, log)
    print(f"server-first: client {r}\n  server {s}", flush=True)
    check(r.get("received") == MIB and r.get("recv_sha256") == nslib.pattern_sha256(MIB, 1)
          and r.get("outcome") == "eof",
          f"A did not read B's 1 MiB to a clean EOF: {r}")
    check(s["outcome"] == "eof" and s["received"] == MIB
          and s["sha256"] == nslib.pattern_sha256(MIB, 0),
          f"B's app did not receive A's late 1 MiB answer in full after its own FIN: {s}")

    # --- B resets while A reads ---
    log = z.server(b, 8083, "reset", nbytes=64 << 10, after=256 << 10, delay=0.2)
    r = z.client(a, ["--host", b.ip, "--port", 8083, "--mode", "resetpeer", "--bytes",
                     256 << 10], timeout=30)
    s = server_done(z, log)
    print(f"B resets (A reading): client {r}\n  server {s}", flush=True)
    check(s["received"] == 256 << 10, f"B's app got {s['received']} bytes before resetting")
    check(r.get("outcome") == "reset",
          f"A's app saw '{r.get('outcome')}' after B's app reset the connection, expected "
          f"ECONNRESET ('reset'), not a clean EOF: {r}")
    check(r.get("received", 0) <= 64 << 10, f"A received {r.get('received')} bytes")
    check(r["seconds"] < 10, f"A noticed the reset only after {r['seconds']}s")
    fails = a.wait_access(lambda x: x.get("dst.hbone_addr") == f"{b.ip}:8083")
    check(fails and fails[-1]["failed"],
          f"A's access log does not record the reset tunnel as failed: {fails}")

    # --- B resets while A sends ---
    log = z.server(b, 8084, "reset", after=256 << 10)
    r = z.client(a, ["--host", b.ip, "--port", 8084, "--mode", "resetpeer", "--bytes",
                     16 * MIB], timeout=30)
    s = server_done(z, log)
    print(f"B resets (A sending): client {r}\n  server {s}", flush=True)
    check(r.get("outcome") in ("exception:reset", "reset"),
          f"A's app saw '{r.get('outcome')}' while sending into a reset connection, expected "
          f"ECONNRESET: {r}")

    # --- A resets ---
    log = z.server(b, 8085, "read")
    r = z.client(a, ["--host", b.ip, "--port", 8085, "--mode", "reset", "--bytes", 64 << 10,
                     "--delay", 0.5], timeout=30)
    s = server_done(z, log)
    print(f"A resets: client {r}\n  server {s}", flush=True)
    check(s["outcome"] == "reset",
          f"B's app saw '{s['outcome']}' after A's app reset the connection, expected "
          f"ECONNRESET ('reset'), not a clean EOF: {s}")
    check(s["received"] == 64 << 10, f"B's app received {s['received']} of A's 64 KiB before "
                                     f"the reset (they were sent 0.5 s before it)")

    # Nothing is left behind: every tunnel finished on both sides, and neither ztunnel holds
    # more sockets than after the first (clean) tunnel (reliability F6, F8).
    for port in (8081, 8082, 8083, 8084, 8085):
        n = nslib.count_tcp_connections(b.ns, port, "sport")
        check(n == 0, f"{n} app connections to port {port} still established at B")
    for h in (a, b):
        z.wait_fds(h, fds[h.name])


if __name__ == "__main__":
    sys.exit(zs.main("zt-e2e-halfclose", body))
