#!/usr/bin/python3
"""Scenario 11: graceful drain on SIGTERM (ztunnel-compat §1.7, reliability §2.17 / F10).

Part 1, the destination's ztunnel drains: 5 tunnels A -> B each pump 8 MiB through B's echo app
(paced, so they are mid-transfer); after every pump has sent 1 MiB, B's ztunnel gets SIGTERM.
Then: a new connection A -> B fails within a second (B's listeners are closed, the GOAWAY makes A
dial afresh), the 5 pumps finish with every byte echoed (sha256) and a clean EOF after their
half-close (B's app too sees all bytes and EOF), and B's ztunnel exits 0 well before its drain
deadline (CONNECTION_TERMINATION_DEADLINE=20s here: it stops once its tunnels are done).
Part 2, the source's ztunnel drains (B restarted): the same with SIGTERM to A's ztunnel; a new
connection from A's app is refused (A's capture listener is closed).
"""

import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nslib  # noqa: E402
import ztscenario as zs  # noqa: E402
from nstool import pattern_chunks  # noqa: E402
from ztscenario import check  # noqa: E402

PUMPS = 5
SIZE = 8 << 20
CHUNK = 64 << 10
PACE_S = 0.01  # per 64 KiB chunk: an 8 MiB pump takes >= 1.3 s
# Drain deadline given to both ztunnels: long, so a busy machine cannot push the pumps past it;
# a drain must end once its tunnels are done, far earlier.
DEADLINE_S = 20.0
STOPS_BY_S = 12.0


def pump(host, port, seed, timeout):
    """Role (in A): echo pump. Prints "progress" after 1 MiB was sent, then a JSON result."""
    s = socket.create_connection((host, port), timeout=timeout)
    s.settimeout(timeout)
    recv_hash = hashlib.sha256()
    got = [0, None]

    def reader():
        try:
            while True:
                data = s.recv(1 << 18)
                if not data:
                    got[1] = "eof"
                    return
                recv_hash.update(data)
                got[0] += len(data)
        except OSError as e:
            got[1] = zs.outcome_of(e)

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    sent_hash = hashlib.sha256()
    sent = 0
    error = None
    try:
        for chunk in pattern_chunks(SIZE, seed):
            s.sendall(chunk)
            sent_hash.update(chunk)
            sent += len(chunk)
            if sent == 1 << 20:
                print("progress", flush=True)
            time.sleep(PACE_S)
        s.shutdown(socket.SHUT_WR)
    except OSError as e:
        error = zs.outcome_of(e)
    t.join(timeout)
    s.close()
    print(json.dumps({"sent": sent, "received": got[0], "outcome": got[1], "send_error": error,
                      "sha256": sent_hash.hexdigest(), "recv_sha256": recv_hash.hexdigest()}),
          flush=True)


def drain_case(z, victim, label, app_log):
    """SIGTERM to victim's ztunnel mid-transfer; returns the list of problems found."""
    a, b = z.a, z.b
    done_before = len([x for x in zs.app_records(app_log) if x.get("event") == "done"])
    me = os.path.abspath(__file__)
    pumps = [a.ns.spawn([nslib.PYTHON, me, "--pump", b.ip, str(zs.APP_PORT), str(i), "30"],
                        stdout=subprocess.PIPE) for i in range(PUMPS)]
    for p in pumps:
        line = zs.read_line(p, timeout=20)
        check(line == "progress", f"{label}: a pump did not get going: {line}")
    problems = []  # collected rather than raised at once, so both parts run and report
    t0 = time.monotonic()
    victim.proc.send_signal(15)
    deadline = time.monotonic() + 5
    while "draining" not in victim.log_text() and victim.proc.poll() is None:
        check(time.monotonic() < deadline, f"{label}: no 'draining' in the log after SIGTERM")
        time.sleep(0.02)
    if victim.proc.poll() is not None:
        problems.append(f"{label}: {victim.name}'s ztunnel died of SIGTERM (exit status "
                        f"{victim.proc.returncode}) instead of draining")
    else:
        time.sleep(0.3)
        r = z.client(a, ["--host", b.ip, "--port", zs.APP_PORT, "--mode", "probe", "--bytes",
                         100], timeout=10)
        print(f"{label}: new connection during the drain: {r}", flush=True)
        if r.get("received", 0) != 0 or r.get("outcome") not in (
                "eof", "reset", "connect:reset", "connect:error:[Errno 111] Connection refused"):
            problems.append(f"{label}: a new connection was served during the drain: {r}")
    results = [json.loads(zs.read_line(p, timeout=40)) for p in pumps]
    for p in pumps:
        p.wait(10)
    code = victim.proc.wait(DEADLINE_S + 10)
    took = time.monotonic() - t0
    for i, res in enumerate(results):
        print(f"{label}: pump {i}: {res}", flush=True)
    print(f"{label}: {victim.name}'s ztunnel exited {code} {took:.1f}s after SIGTERM", flush=True)
    if victim.proc.returncode not in (0, None) and problems:
        intact = sum(1 for res in results if res["received"] == SIZE and res["outcome"] == "eof")
        problems.append(f"{label}: {intact} of {PUMPS} pumps came through intact")
        return problems
    for i, res in enumerate(results):
        if res["send_error"] is not None or res["sent"] != SIZE:
            problems.append(f"{label}: pump {i} could not send all its bytes during the drain: "
                            f"{res}")
        if res["received"] != SIZE or res["recv_sha256"] != res["sha256"]:
            same = res["recv_sha256"] == res["sha256"]
            problems.append(f"{label}: pump {i} got {res['received']} of {SIZE} bytes back "
                            f"(echo {'matches' if same else 'differs'})")
        if res["outcome"] != "eof":
            problems.append(f"{label}: pump {i}'s tunnel ended with '{res['outcome']}' instead of "
                            f"a clean EOF after all {res['received']} bytes came back")
    done = zs.wait_records(app_log, lambda x: x.get("event") == "done", count=done_before + PUMPS,
                           timeout=5)[done_before:]
    bad = [x for x in done if x.get("outcome") != "eof" or x.get("received") != SIZE]
    if len(done) != PUMPS or bad:
        problems.append(f"{label}: B's app did not see {PUMPS} complete 8 MiB tunnels ending in "
                        f"EOF: {len(done)} done, not clean: {bad}")
    if code != 0:
        problems.append(f"{label}: {victim.name}'s ztunnel exited {code} after SIGTERM")
    if took >= STOPS_BY_S:
        problems.append(f"{label}: the drain took {took:.1f}s (deadline {DEADLINE_S:.0f}s): it "
                        f"did not stop when its tunnels had finished")
    return problems


def body(z):
    a, b = z.a, z.b
    env = {"CONNECTION_TERMINATION_DEADLINE": f"{DEADLINE_S:.0f}s"}
    z.start(env_a=env, env_b=env)
    app_log = z.server(b, zs.APP_PORT, "echo")
    problems = drain_case(z, b, "B drains", app_log)
    b.start(env=env, wait=False)
    nslib.wait_listening(b.ns, 15008, timeout=15)
    b.wait_log("ztunnel ready", count=2, timeout=15)
    e = nslib.tcp_source(a.ns, b.ip, zs.APP_PORT, 1 << 20, echo=True, timeout=20)
    check(e["recv_sha256"] == e["sha256"], "no tunnel after B's restart")
    problems += drain_case(z, a, "A drains", app_log)
    check(not problems, "\n  ".join([f"{len(problems)} problems:"] + problems))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--pump":
        pump(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))
        sys.exit(0)
    sys.exit(zs.main("zt-e2e-drain", body, require_clean_exit=True))
