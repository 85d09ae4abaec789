#!/usr/bin/env python3
"""The two-host HBONE demo (README's first command runs it through scripts/demo.sh).

Two network namespaces joined by a veth pair are two "hosts". Each runs its own ztunnel in
dedicated mode with its own SPIFFE identity (certificates minted by `ztunnel certs`), capture rules
(`ztunnel redirect install`) and local config. An app listens on host B; a client on host A talks
to B's address as if there were no mesh. The demo prints the verified peer identities, the bytes
carried and their checksums, the source address the app saw, a throughput and latency line, and
what a sniffer on B's link saw (TLS records, never the plaintext marker). Everything is removed at
the end; the exit status is non-zero on any failure.
"""

import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "netns"))

import nslib  # noqa: E402
import zthosts  # noqa: E402

APP_PORT = 8080
PROBE_PORT = 8081
MARKER = b"ZTUNNEL-DEMO-PLAINTEXT-MARKER"
TRANSFER = 64 << 20


def step(n, total, text):
    print(f"[{n}/{total}] {text}", flush=True)


# --- roles run inside the namespaces (this file re-invoked) -----------------------------------

def serve(port, log_path):
    """B's app: an echo server that records each client's address."""
    l = socket.socket()
    l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind(("0.0.0.0", port))
    l.listen(64)
    print("listening", flush=True)
    while True:
        c, peer = l.accept()
        with open(log_path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"peer": peer[0], "port": peer[1]}) + "\n")
        threading.Thread(target=echo, args=(c,), daemon=True).start()


def echo(c):
    with c:
        while True:
            data = c.recv(1 << 18)
            if not data:
                c.shutdown(socket.SHUT_WR)
                return
            c.sendall(data)


def client(host, port, nbytes):
    """A's app: sends nbytes (random blocks, each starting with the marker), reads the echo."""
    block = bytearray(os.urandom(1 << 16))
    block[: len(MARKER)] = MARKER
    block = bytes(block)
    sent_hash = hashlib.sha256()
    recv_hash = hashlib.sha256()
    received = 0
    s = socket.create_connection((host, port), timeout=60)
    start = time.monotonic()

    def reader():
        nonlocal received
        while True:
            data = s.recv(1 << 18)
            if not data:
                return
            recv_hash.update(data)
            received += len(data)

    t = threading.Thread(target=reader)
    t.start()
    sent = 0
    while sent < nbytes:
        chunk = block[: min(len(block), nbytes - sent)]
        s.sendall(chunk)
        sent_hash.update(chunk)
        sent += len(chunk)
    s.shutdown(socket.SHUT_WR)
    t.join(120)
    seconds = time.monotonic() - start
    s.close()
    print(json.dumps({"sent": sent, "received": received, "sent_sha256": sent_hash.hexdigest(),
                      "recv_sha256": recv_hash.hexdigest(), "seconds": seconds}))


# --- the demo ---------------------------------------------------------------------------------

_hosts = []


def fail(message):
    print(f"\ndemo FAILED: {message}", flush=True)
    for h in _hosts:
        print(f"--- last lines of {h.name}'s ztunnel log ---")
        print("\n".join(h.log_text().splitlines()[-15:]))
    return 1


def run_demo():
    nslib.require_root("the demo")
    nslib.handle_termination()
    ztunnel = zthosts.ztunnel_binary()
    probe = zthosts.tcp_probe_binary()
    total = 7
    with tempfile.TemporaryDirectory(prefix="zt-demo-") as work:
        step(1, total, "minting a mesh root and two workload identities with `ztunnel certs`")
        mesh = zthosts.Mesh(work, ztunnel)
        with zthosts.TwoHosts(mesh, prefix="zt-demo", names=("client", "server")) as (a, b):
            _hosts.extend((a, b))
            print(f"      host A {a.ns.name}: {a.ip}  identity {a.identity}")
            print(f"      host B {b.ns.name}: {b.ip}  identity {b.identity}")

            step(2, total, "local config on each host (both workloads speak HBONE), capture rules, "
                           "ztunnel in dedicated mode")
            a.write_config([a.workload(), b.workload()])
            b.write_config([b.workload(), a.workload()])
            for h in (a, b):
                h.install_redirect()
                h.start()
            print(f"      both ztunnels ready (logs: {a.log_path}, {b.log_path})")

            step(3, total, f"app on B: echo server on {b.ip}:{APP_PORT}; sniffer on B's link")
            peers_log = os.path.join(work, "app-peers.jsonl")
            b.ns.spawn([nslib.PYTHON, __file__, "--serve", str(APP_PORT), peers_log],
                       log=os.path.join(work, "app.log"))
            nslib.wait_listening(b.ns, APP_PORT)
            b.ns.spawn([probe, "serve", "--listen", f"0.0.0.0:{PROBE_PORT}"],
                       log=os.path.join(work, "probe.log"))
            nslib.wait_listening(b.ns, PROBE_PORT)
            sniff_out = os.path.join(work, "sniff.json")
            sniffer = b.ns.spawn([nslib.PYTHON, os.path.join(os.path.dirname(zthosts.__file__),
                                                             "sniff.py"),
                                  "--iface", veth_in(b), "--out",
                                  sniff_out, "--marker", MARKER.decode()],
                                 stdout=subprocess.PIPE)
            sniffer.stdout.readline()  # "ready"

            step(4, total, f"client on A connects to {b.ip}:{APP_PORT} as if there were no mesh, "
                           f"sends {TRANSFER >> 20} MiB and reads the echo")
            p = a.ns.run([nslib.PYTHON, __file__, "--client", b.ip, str(APP_PORT), str(TRANSFER)],
                         timeout=180)
            result = json.loads(p.stdout.strip().splitlines()[-1])
            ok = (result["sent"] == result["received"] == TRANSFER
                  and result["sent_sha256"] == result["recv_sha256"])
            mbps = 2 * TRANSFER * 8 / result["seconds"] / 1e6
            print(f"      sent {result['sent']} bytes, received {result['received']} back; "
                  f"sha256 {result['sent_sha256'][:16]}... {'matches' if ok else 'DIFFERS'}")
            print(f"      {mbps:.0f} Mbit/s through the tunnel (both directions, Python client)")
            if not ok:
                return fail("the echo does not match what was sent")
            peers = [json.loads(line) for line in open(peers_log, encoding="utf-8")]
            print(f"      the app on B saw the connection from {peers[-1]['peer']} "
                  f"(host A is {a.ip}: source address preserved)")
            if peers[-1]["peer"] != a.ip:
                return fail("the app did not see the client's address")

            step(5, total, "identities each ztunnel verified (from their access logs)")
            target = f"{b.ip}:{APP_PORT}"
            out_rec = a.wait_access(lambda r: r.get("direction") == "outbound"
                                    and r.get("dst.hbone_addr") == target)
            in_rec = b.wait_access(lambda r: r.get("direction") == "inbound"
                                   and r.get("dst.hbone_addr") == target)
            if not out_rec or not in_rec:
                return fail("no access-log record of the tunnel on both sides")
            o, i = out_rec[-1], in_rec[-1]
            print(f"      A (outbound): peer at {o['dst.addr']} proved {o.get('dst.identity')}; "
                  f"bytes sent {o['bytes_sent']}, received {o['bytes_recv']}")
            print(f"      B (inbound):  client from {i['src.addr']} proved {i.get('src.identity')}; "
                  f"delivered to {i['dst.hbone_addr']}")
            if o.get("dst.identity") != b.identity or i.get("src.identity") != a.identity:
                return fail("the verified identities are not the expected ones")

            step(6, total, "latency and new-tunnel rate through the tunnel (tcp_probe)")
            rr = json.loads(a.ns.run([probe, "rr", "--connect", f"{b.ip}:{PROBE_PORT}",
                                      "--count", "5000", "--size", "64"]).stdout)
            conn = json.loads(a.ns.run([probe, "connect", "--connect", f"{b.ip}:{PROBE_PORT}",
                                        "--count", "2000", "--concurrency", "4"]).stdout)
            print(f"      RTT on an established tunnel: p50 {rr['p50_us']:.0f} us, "
                  f"p99 {rr['p99_us']:.0f} us (64-byte echo)")
            print(f"      new tunnel + first byte: p50 {conn['p50_us']:.0f} us, "
                  f"{conn['rate_per_s']:.0f} tunnels/s over the pooled HBONE connection")
            if conn["errors"] != 0:
                return fail(f"{conn['errors']} new tunnels failed")

            step(7, total, "what crossed B's link")
            b.ns.stop(sniffer, grace=5)
            report = json.load(open(sniff_out, encoding="utf-8"))
            on_hbone = report["ports"].get(str(zthosts.HBONE_PORT), {})
            on_app = report["ports"].get(str(APP_PORT), {})
            print(f"      port {zthosts.HBONE_PORT}: {on_hbone.get('segments', 0)} segments, "
                  f"{on_hbone.get('payload_bytes', 0)} payload bytes, "
                  f"{report['tls_record_starts_on_port']} starting with a TLS record header")
            print(f"      port {APP_PORT} on the wire: {on_app.get('segments', 0)} segments; "
                  f"plaintext marker seen: {report['marker_hits']} times")
            print(f"      (the sniffer missed {report['kernel_drops']} packets)")
            if report["marker_hits"] != 0 or on_app.get("segments", 0) != 0:
                return fail("plaintext crossed the link")
            if report["kernel_drops"] != 0:
                return fail("the sniffer dropped packets, so the wire check is incomplete")
            if on_hbone.get("payload_bytes", 0) < 2 * TRANSFER:
                return fail("the transfer did not cross the link on the HBONE port")

            codes = [h.stop() for h in (a, b)]
            if codes != [0, 0]:
                return fail(f"ztunnel exit codes {codes} after SIGTERM")
            print("      both ztunnels drained and exited 0")
    print("\ndemo passed: encrypted, identity-checked tunnel between two hosts; "
          "everything cleaned up", flush=True)
    return 0


def veth_in(host):
    """The veth end inside `host`'s namespace."""
    out = host.ns.run(["ip", "-o", "link", "show", "type", "veth"]).stdout
    return out.split(":")[1].strip().split("@")[0]


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]), sys.argv[3])
    elif len(sys.argv) >= 2 and sys.argv[1] == "--client":
        client(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        sys.exit(run_demo())
