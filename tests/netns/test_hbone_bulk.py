#!/usr/bin/python3
"""Scenario 1: captured A -> B traffic goes through HBONE, 1 GiB byte-exact, source IP preserved.

A client in A connects to B's IP:8080 with no proxy settings (capture rules send it to A's
ztunnel). It sends 1 GiB of a deterministic pattern; the sink app on B hashes what it receives.
Checks: the sink got exactly the bytes sent (sha256), it saw A's address as the peer, A's
ztunnel logged an outbound record with dst.hbone_addr = B:8080 and B's identity, B's ztunnel an
inbound record with src.identity = A's identity, an HBONE connection to B:15008 is established
in A, and nothing reached B's app port in plaintext over the link (only :15008 carries bytes).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nslib  # noqa: E402
import zthosts  # noqa: E402
import ztscenario as zs  # noqa: E402
from ztscenario import check  # noqa: E402

TRANSFER = 1 << 30


def body(z):
    a, b = z.a, z.b
    z.start()
    sink_out = z.path("sink.jsonl")
    nslib.tcp_sink(b.ns, "0.0.0.0", zs.APP_PORT, sink_out)
    # Byte counters on B's end of the link: what arrives for the app port vs. the HBONE port.
    link = z.count_link_bytes(b, [zs.APP_PORT, zthosts.HBONE_PORT])
    r = nslib.tcp_source(a.ns, b.ip, zs.APP_PORT, TRANSFER, seed=7, timeout=75)
    check(r["sent"] == TRANSFER, f"source sent {r['sent']} bytes, expected {TRANSFER}")
    rec = nslib.read_sink(sink_out, expect=1, timeout=20)[-1]
    print(f"1 GiB through the tunnel in {r['seconds']:.1f}s "
          f"({TRANSFER * 8 / r['seconds'] / 1e9:.2f} Gbit/s)", flush=True)
    check(rec["bytes"] == TRANSFER, f"the sink received {rec['bytes']} bytes of {TRANSFER}")
    check(rec["sha256"] == r["sha256"],
          f"sha256 at the sink {rec['sha256']} != sent {r['sha256']}")
    check(rec.get("error") is None, f"the sink's connection ended with {rec.get('error')}")
    peer_ip = rec["peer"].rsplit(":", 1)[0]
    check(peer_ip == a.ip, f"the app on B saw the peer {peer_ip}, expected A's address {a.ip}")

    # HBONE on the wire: the pooled connection A -> B:15008 is (still) established.
    hbone_conns = nslib.count_tcp_connections(a.ns, zthosts.HBONE_PORT, "dport")
    check(hbone_conns >= 1, f"{hbone_conns} established connections to :15008 in A")
    out = z.outbound_hbone(zs.APP_PORT)
    check(out, f"no outbound record with dst.hbone_addr={b.ip}:{zs.APP_PORT} in A's log")
    o = out[-1]
    check(not o["failed"], f"A's record is a failure: {o}")
    check(o.get("dst.identity") == b.identity,
          f"A verified {o.get('dst.identity')}, expected {b.identity}")
    check(o.get("dst.addr") == f"{b.ip}:15008", f"A dialled {o.get('dst.addr')}, not B:15008")
    check(o.get("bytes_sent") == str(TRANSFER),
          f"A's record says bytes_sent={o.get('bytes_sent')}, expected {TRANSFER}")
    inb = z.inbound_hbone(zs.APP_PORT)
    check(inb, f"no inbound record for {b.ip}:{zs.APP_PORT} in B's log")
    i = inb[-1]
    check(not i["failed"], f"B's record is a failure: {i}")
    check(i.get("src.identity") == a.identity,
          f"B saw src.identity {i.get('src.identity')}, expected {a.identity}")
    check(i.get("src.addr", "").rsplit(":", 1)[0] == a.ip,
          f"B's record has src.addr {i.get('src.addr')}, expected A's address")
    check(str(TRANSFER) in (i.get("bytes_sent"), i.get("bytes_recv")),
          f"B's record does not count {TRANSFER} bytes: {i}")

    # Only the HBONE port carried the bytes: no segment for the app port crossed the link.
    counts = link()
    print(f"segments/bytes arriving at B over the link: {counts}", flush=True)
    check(counts.get(zs.APP_PORT, (0, 0))[0] == 0,
          f"{counts.get(zs.APP_PORT)} packets/bytes for port {zs.APP_PORT} crossed the link "
          f"(plaintext)")
    check(counts.get(zthosts.HBONE_PORT, (0, 0))[1] >= TRANSFER,
          f"only {counts.get(zthosts.HBONE_PORT)} packets/bytes arrived on :15008")


if __name__ == "__main__":
    sys.exit(zs.main("zt-e2e-bulk", body))
