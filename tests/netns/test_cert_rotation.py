#!/usr/bin/python3
"""Scenario 10: certificate rotation without dropping tunnels.

A long-lived tunnel A -> B:8080 runs a slow echo loop (1 KiB every 50 ms, each echo checked).
Meanwhile new certificates are issued into both cert dirs (`ztunnel certs issue`, files replaced
by rename). Checks: both logs say "certificate reloaded" with a new serial; the open tunnel keeps
echoing after the reload (no error, rounds counted after the reload); a new tunnel works; a new
TLS handshake with B's 15008 gets B's new certificate (serial from the log); finally the long
tunnel closes cleanly and A's access log records it as complete. A runs with
POOL_MAX_STREAMS_PER_CONNECTION=1, so the new tunnel cannot share the long-lived tunnel's HBONE
connection: it dials a new one, a handshake made with the rotated certificates on both sides.
"""

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nslib  # noqa: E402
import ztscenario as zs  # noqa: E402
from zthosts import HBONE_PORT  # noqa: E402
from ztscenario import check  # noqa: E402

SERIAL_RE = re.compile(r"serial ([0-9A-Fa-f]+)")


def slow_client(host, port, interval, timeout):
    """Role (in A): echo 1 KiB rounds on one connection until "stop" on stdin; "mark" on stdin
    records the round count. Prints "started" after the first round, then a JSON summary."""
    s = socket.create_connection((host, port), timeout=10)
    s.settimeout(10)
    state = {"stop": False, "mark": None}
    rounds = 0

    def commands():
        for line in sys.stdin:
            if line.strip() == "mark":
                state["mark"] = rounds
            elif line.strip() == "stop":
                state["stop"] = True
                return

    threading.Thread(target=commands, daemon=True).start()
    deadline = time.monotonic() + timeout
    error = None
    while not state["stop"] and time.monotonic() < deadline:
        payload = (f"{rounds:08d}" * 128).encode()
        try:
            s.sendall(payload)
            got = b""
            while len(got) < len(payload):
                chunk = s.recv(len(payload) - len(got))
                if not chunk:
                    raise ConnectionError("EOF in the middle of an echo")
                got += chunk
        except OSError as e:
            error = f"round {rounds}: {e}"
            break
        if got != payload:
            error = f"round {rounds}: echo differs"
            break
        rounds += 1
        if rounds == 1:
            print("started", flush=True)
        time.sleep(interval)
    outcome = None
    if error is None:
        s.shutdown(socket.SHUT_WR)
        try:
            rest = s.recv(65536)
            outcome = "eof" if rest == b"" else f"{len(rest)} extra bytes"
        except OSError as e:
            outcome = zs.outcome_of(e)
    s.close()
    after = rounds - state["mark"] if state["mark"] is not None else None
    print(json.dumps({"rounds": rounds, "after_mark": after, "error": error,
                      "outcome": outcome, "stopped": state["stop"]}), flush=True)


def serials(host, needle):
    return [m.group(1).lower().lstrip("0") for line in host.log_text().splitlines()
            if needle in line for m in [SERIAL_RE.search(line)] if m]


def body(z):
    a, b = z.a, z.b
    # One stream per HBONE connection on A: while the long-lived tunnel is open, every new
    # tunnel needs a fresh connection, i.e. a TLS handshake with the rotated certificates.
    z.start(env_a={"POOL_MAX_STREAMS_PER_CONNECTION": "1"})
    z.server(b, zs.APP_PORT, "echo")
    old_a = serials(a, "workload identity")
    old_b = serials(b, "workload identity")
    check(old_a and old_b, "no initial serial in the logs")
    before = z.h2(a, b.ip, [{"authority": f"{b.ip}:{zs.APP_PORT}", "data": "x"}])
    check(before["peer_serial"] == old_b[0],
          f"B presented serial {before['peer_serial']}, its log says {old_b[0]}")

    client = a.ns.spawn([nslib.PYTHON, os.path.abspath(__file__), "--client", b.ip,
                         str(zs.APP_PORT), "0.05", "60"],
                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    check(zs.read_line(client, timeout=15) == "started", "the slow echo did not start")
    time.sleep(1.0)

    for h in (a, b):
        z.mesh.issue(h.namespace, h.service_account, h.cert_dir, validity="48h")
    for h in (a, b):
        h.wait_log("certificate reloaded", timeout=15)
    new_a = serials(a, "certificate reloaded")[-1]
    new_b = serials(b, "certificate reloaded")[-1]
    print(f"A: serial {old_a[0]} -> {new_a}; B: serial {old_b[0]} -> {new_b}", flush=True)
    check(new_a != old_a[0] and new_b != old_b[0], "the reload kept the old serials")

    client.stdin.write(b"mark\n")
    client.stdin.flush()
    time.sleep(2.0)
    # New tunnels work, and new handshakes get the new certificate.
    check(nslib.count_tcp_connections(a.ns, HBONE_PORT, "dport") == 1,
          "A should have one HBONE connection (the long-lived tunnel's) before the new tunnel")
    r = nslib.tcp_source(a.ns, b.ip, zs.APP_PORT, 512 << 10, seed=9, echo=True, timeout=20)
    check(r["recv_sha256"] == r["sha256"], f"a new tunnel after the rotation failed: {r}")
    conns = nslib.count_tcp_connections(a.ns, HBONE_PORT, "dport")
    check(conns == 2, f"A has {conns} HBONE connections; the new tunnel should have dialled a "
                      f"second one (handshake with the new certificates)")
    after = z.h2(a, b.ip, [{"authority": f"{b.ip}:{zs.APP_PORT}", "data": "y"}])
    check(after["peer_serial"] == new_b,
          f"a new handshake with B got serial {after['peer_serial']}, expected the new {new_b}")
    check(after["results"][0]["status"] == 200 and after["results"][0]["data"] == "y",
          f"the raw tunnel after the rotation failed: {after['results']}")

    client.stdin.write(b"stop\n")
    client.stdin.flush()
    res = json.loads(zs.read_line(client, timeout=20))
    print(f"long-lived tunnel: {res}", flush=True)
    check(res["error"] is None, f"the long-lived tunnel broke: {res['error']}")
    check(res["stopped"] and res["outcome"] == "eof", f"the long-lived tunnel did not end "
                                                      f"cleanly: {res}")
    check(res["after_mark"] is not None and res["after_mark"] >= 10,
          f"the long-lived tunnel echoed only {res['after_mark']} rounds after the reload")
    # A carried two tunnels (the long one and the new one; the raw h2 client bypassed it).
    recs = z.outbound_hbone(zs.APP_PORT, count=2)
    check(len(recs) == 2 and not any(x["failed"] for x in recs),
          f"A's access log should show 2 completed tunnels: {recs}")
    long_rec = [x for x in recs if x.get("bytes_sent") == str(res["rounds"] * 1024)]
    check(long_rec, f"no record of the long-lived tunnel ({res['rounds']} KiB each way): {recs}")
    client.wait(10)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        slow_client(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]))
        sys.exit(0)
    sys.exit(zs.main("zt-e2e-certrot", body))
