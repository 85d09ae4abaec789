#!/usr/bin/python3
"""Scenario 2: 1,000 concurrent tunnels, each echoing 64 KiB, over a few pooled HBONE connections.

A client process in A (asyncio, one thread) opens 1,000 connections to B's echo app (tcp_probe
serve) through capture, each sends 64 KiB of its own pattern and reads the echo back byte-exact,
and all stay open. While they are open the driver counts the established connections to B:15008
in A (and from A in B): ztunnel's pool carries at most 100 streams per HBONE connection, one pool
per worker, so with ZTUNNEL_WORKER_THREADS=2 at least 10 and at most a handful more connections
carry the 1,000 tunnels, nowhere near 1,000. Then the client closes all tunnels (FIN, echo EOF)
and reports; the access logs must show 1,000 completed HBONE tunnels on each side, and both
ztunnels must be back to the file descriptors they held before (apart from pooled connections).
"""

import asyncio
import json
import os
import resource
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nslib  # noqa: E402
import zthosts  # noqa: E402
import ztscenario as zs  # noqa: E402
from nstool import pattern_block  # noqa: E402
from ztscenario import check  # noqa: E402

TUNNELS = 1000
SIZE = 64 << 10
MAX_STREAMS = 100
WORKERS = 2


# --- the client role (in A's namespace) -------------------------------------------------------

async def one(i, host, port, size, opened, connect_gate, results):
    data = pattern_block(i)[:size]
    async with connect_gate:
        reader, writer = await asyncio.open_connection(host, port)
    opened.append(writer)
    writer.write(data)
    await writer.drain()
    got = await reader.readexactly(size)
    results[i] = {"ok": got == data, "reader": reader, "writer": writer}


async def run_client(host, port, count, size, timeout):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    results = {}
    opened = []
    gate = asyncio.Semaphore(100)  # connects in flight (the listen backlog is not the test)
    start = time.monotonic()
    tasks = [asyncio.create_task(one(i, host, port, size, opened, gate, results))
             for i in range(count)]
    done, pending = await asyncio.wait(tasks, timeout=timeout)
    errors = [repr(t.exception()) for t in done if t.exception() is not None]
    for t in pending:
        t.cancel()
    ok = sum(1 for r in results.values() if r["ok"])
    print(json.dumps({"phase": "open", "ok": ok, "mismatch": len(results) - ok,
                      "errors": len(errors), "pending": len(pending),
                      "first_errors": errors[:5],
                      "seconds": round(time.monotonic() - start, 3)}), flush=True)
    # Hold every tunnel open until the driver has counted the HBONE connections.
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    closed_ok = 0
    close_errors = []

    async def close(r):
        nonlocal closed_ok
        try:
            r["writer"].write_eof()
            rest = await asyncio.wait_for(r["reader"].read(), timeout=timeout)
            if rest == b"":
                closed_ok += 1
            else:
                close_errors.append(f"{len(rest)} extra bytes")
        except Exception as e:  # noqa: BLE001 - reported
            close_errors.append(repr(e))
        finally:
            r["writer"].close()

    await asyncio.gather(*(close(r) for r in results.values()))
    for w in opened:
        w.close()
    print(json.dumps({"phase": "closed", "closed_ok": closed_ok,
                      "close_errors": len(close_errors), "first_close_errors": close_errors[:5]}),
          flush=True)


# --- the driver -------------------------------------------------------------------------------

def body(z):
    a, b = z.a, z.b
    env = {"ZTUNNEL_WORKER_THREADS": str(WORKERS)}
    z.start(env_a=env, env_b=env)
    z.probe_server(b, zs.APP_PORT)
    fds = {h.name: z.open_fds(h) for h in (a, b)}
    client = a.ns.spawn([nslib.PYTHON, os.path.abspath(__file__), "--client", b.ip,
                         str(zs.APP_PORT), str(TUNNELS), str(SIZE), "50"],
                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    opened = json.loads(zs.read_line(client, timeout=70))
    print(f"open phase: {opened}", flush=True)
    # Count while every tunnel is open.
    conns_a = nslib.count_tcp_connections(a.ns, zthosts.HBONE_PORT, "dport")
    conns_b = nslib.count_tcp_connections(b.ns, zthosts.HBONE_PORT, "sport")
    app_conns = nslib.count_tcp_connections(b.ns, zs.APP_PORT, "sport")
    print(f"while {TUNNELS} tunnels are open: {conns_a} HBONE connections from A, {conns_b} at B; "
          f"{app_conns} app connections at B", flush=True)
    client.stdin.write(b"close\n")
    client.stdin.flush()
    closed = json.loads(zs.read_line(client, timeout=60))
    print(f"close phase: {closed}", flush=True)

    check(opened["ok"] == TUNNELS and opened["errors"] == 0 and opened["pending"] == 0,
          f"not every tunnel echoed its 64 KiB: {opened}")
    check(app_conns == TUNNELS, f"{app_conns} app connections open at B, expected {TUNNELS}")
    lower = -(-TUNNELS // MAX_STREAMS)  # 100 streams per connection at most
    # One pool per worker: each worker needs ceil(its share / 100) connections, and a connection
    # dialled while others filled up may be left partly used; allow a few, never hundreds.
    upper = lower + 2 * WORKERS + 2
    check(lower <= conns_a <= upper,
          f"{conns_a} HBONE connections carry {TUNNELS} tunnels; expected {lower}..{upper}")
    check(conns_b == conns_a, f"A has {conns_a} HBONE connections, B {conns_b}")
    check(closed["closed_ok"] == TUNNELS and closed["close_errors"] == 0,
          f"not every tunnel closed cleanly: {closed}")
    out = z.outbound_hbone(zs.APP_PORT, count=TUNNELS, timeout=20)
    failed = [r for r in out if r["failed"]]
    check(len(out) >= TUNNELS and not failed,
          f"A logged {len(out)} HBONE tunnels ({len(failed)} failed), expected {TUNNELS}")
    inb = z.inbound_hbone(zs.APP_PORT, count=TUNNELS, timeout=20)
    check(len(inb) >= TUNNELS and all(r.get("src.identity") == a.identity for r in inb),
          f"B logged {len(inb)} inbound tunnels from {a.identity}, expected {TUNNELS}")
    client.wait(10)
    # Every tunnel's sockets are gone again (pooled HBONE connections may stay).
    for h in (a, b):
        z.wait_fds(h, fds[h.name])


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        host, port, count, size, timeout = sys.argv[2:7]
        asyncio.run(run_client(host, int(port), int(count), int(size), float(timeout)))
        sys.exit(0)
    sys.exit(zs.main("zt-e2e-pool", body))
