#!/usr/bin/python3
"""Scenario 7: SOCKS5 on A (UNSTABLE_ENABLE_SOCKS5=true, 127.0.0.1:15080).

A client in A speaks SOCKS5 (no auth) to 127.0.0.1:15080:
  CONNECT <B's IP>:8080   -> reply 0 (succeeded), then 256 KiB echo byte-exact through HBONE
                             (B's access log: inbound tunnel from A's identity; A's: outbound
                             with dst.hbone_addr)
  CONNECT 10.255.255.1:80 -> no route from A: a failure reply (not 0), then the connection ends
  CONNECT <B's IP>:8099   -> B's ztunnel answers the CONNECT with 503 (nothing listens): failure
  CONNECT <unused IP on the link>:8080 -> nobody answers ARP: failure reply
"""

import json
import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ztscenario as zs  # noqa: E402
from nstool import pattern_chunks  # noqa: E402
from ztscenario import check  # noqa: E402

SOCKS = ("127.0.0.1", 15080)


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            break
        buf += chunk
    return buf


def socks_client(host, port, nbytes, timeout):
    """Role (in A): one SOCKS5 CONNECT; prints {"reply", "received", "echo_ok", ...}."""
    out = {"target": f"{host}:{port}"}
    start = time.monotonic()
    s = socket.create_connection(SOCKS, timeout=timeout)
    s.sendall(b"\x05\x01\x00")
    out["method_reply"] = recv_exact(s, 2).hex()
    s.sendall(b"\x05\x01\x00\x01" + socket.inet_aton(host) + struct.pack("!H", port))
    head = recv_exact(s, 4)
    if len(head) < 4:
        out.update(reply=None, note=f"connection ended after {head.hex()!r}")
    else:
        out["reply"] = head[1]
        atyp = head[3]
        rest = {1: 6, 4: 18}.get(atyp)
        if rest is None and atyp == 3:
            rest = recv_exact(s, 1)[0] + 2
        out["bound"] = recv_exact(s, rest or 0).hex()
    out["reply_s"] = round(time.monotonic() - start, 3)
    if out.get("reply") == 0 and nbytes:
        sent = b"".join(pattern_chunks(nbytes, 5))
        s.sendall(sent)
        s.shutdown(socket.SHUT_WR)
        got = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        out["received"] = len(got)
        out["echo_ok"] = got == sent
    else:
        # After a failure reply the proxy closes: reading must end (EOF or reset), never data.
        try:
            out["after_reply"] = len(s.recv(65536))
        except OSError as e:
            out["after_reply"] = zs.outcome_of(e)
    s.close()
    print(json.dumps(out), flush=True)


def body(z):
    a, b = z.a, z.b
    z.start(env_a={"UNSTABLE_ENABLE_SOCKS5": "true"})
    z.server(b, zs.APP_PORT, "echo")
    me = os.path.abspath(__file__)

    def run(host, port, nbytes=0):
        r = z.run_role(a, me, ["--client", host, port, nbytes, 20], timeout=40)
        print(f"SOCKS5 CONNECT {host}:{port}: {r}", flush=True)
        check(r["method_reply"] == "0500", f"method selection reply {r['method_reply']}")
        return r

    ok = run(b.ip, zs.APP_PORT, 256 << 10)
    check(ok["reply"] == 0, f"SOCKS5 CONNECT to B failed with reply {ok['reply']}")
    check(ok.get("echo_ok") and ok.get("received") == 256 << 10,
          f"the echo through SOCKS5 differs: {ok}")
    out = z.outbound_hbone(zs.APP_PORT)
    check(out and not out[-1]["failed"], f"A has no HBONE record for the SOCKS5 tunnel: {out}")
    inb = z.inbound_hbone(zs.APP_PORT)
    check(inb and inb[-1].get("src.identity") == a.identity,
          f"B has no inbound tunnel from {a.identity}: {inb}")

    for host, port in (("10.255.255.1", 80), (b.ip, 8099), (z.pair.net.host(77), zs.APP_PORT)):
        r = run(host, port)
        check(r.get("reply") not in (None, 0),
              f"SOCKS5 CONNECT to unreachable {host}:{port} got reply {r.get('reply')}, "
              f"expected a failure code (1-8)")
        check(r.get("after_reply") in (0, "reset", "eof"),
              f"after the failure reply the connection carried data: {r}")
        target = f"{host}:{port}"
        recs = a.wait_access(lambda x: target in (x.get("dst.addr"), x.get("dst.hbone_addr")))
        check(recs and recs[-1]["failed"], f"A logged no failure for {host}:{port}: {recs}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        socks_client(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))
        sys.exit(0)
    sys.exit(zs.main("zt-e2e-socks5", body))
