#!/usr/bin/python3
"""Scenario 6: a destination that is in no workload of A's config goes out as plain TCP.

A third namespace C (no ztunnel, no capture rules) is joined to A by a second veth on its own
subnet and runs a sink app. A client in A connects to C:8080 through A's capture rules. A's
ztunnel finds no workload or service for C's address and passes the connection through as plain
TCP (spec §1.8 step 3): the sink receives exactly the bytes sent (it has no TLS, so they crossed
the link in plaintext), sees A's address on that link as the peer, C's link counters show the
bytes arriving for port 8080 and nothing for 15008, and A's access log records an outbound
connection to C:8080 without dst.hbone_addr or a peer identity. A tunnel to B (a known HBONE
workload) still goes through HBONE at the same time.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nslib  # noqa: E402
import zthosts  # noqa: E402
import ztscenario as zs  # noqa: E402
from ztscenario import check  # noqa: E402

SIZE = 4 << 20


def body(z):
    a, b = z.a, z.b
    z.start()
    c, c_ip, a_ip_c, dev_c = z.third_host()
    sink_out = z.path("sink-c.jsonl")
    z.app_logs.append(sink_out)
    nslib.tcp_sink(c, "0.0.0.0", zs.APP_PORT, sink_out)
    link = z.count_link_bytes(c, [zs.APP_PORT, zthosts.HBONE_PORT], dev=dev_c)

    r = nslib.tcp_source(a.ns, c_ip, zs.APP_PORT, SIZE, seed=3, timeout=30)
    rec = nslib.read_sink(sink_out, expect=1, timeout=10)[-1]
    print(f"client: {r}\nsink on C: {rec}", flush=True)
    check(rec["bytes"] == SIZE and rec["sha256"] == r["sha256"],
          f"C's sink got {rec['bytes']} bytes (sha256 {rec['sha256']}), expected {SIZE} "
          f"({r['sha256']}) in plaintext")
    peer = rec["peer"].rsplit(":", 1)[0]
    check(peer == a_ip_c, f"C's sink saw {peer}, expected A's address on that link {a_ip_c}")
    counts = link()
    print(f"arriving at C: {counts}", flush=True)
    check(counts.get(zs.APP_PORT, (0, 0))[1] >= SIZE,
          f"only {counts.get(zs.APP_PORT)} packets/bytes for port {zs.APP_PORT} arrived at C")
    check(counts.get(zthosts.HBONE_PORT, (0, 0))[0] == 0,
          f"HBONE packets arrived at C: {counts.get(zthosts.HBONE_PORT)}")

    target = f"{c_ip}:{zs.APP_PORT}"
    recs = a.wait_access(lambda x: x.get("direction") == "outbound"
                         and x.get("dst.addr") == target)
    check(recs, f"A's access log has no outbound record to {target}")
    o = recs[-1]
    print(f"A's record: {o}", flush=True)
    check(not o["failed"], f"the passthrough connection failed: {o}")
    check("dst.hbone_addr" not in o and "dst.identity" not in o,
          f"the passthrough record claims HBONE: {o}")
    check(o.get("bytes_sent") == str(SIZE), f"A counted bytes_sent={o.get('bytes_sent')}")

    # The known workload B still gets HBONE.
    nslib.tcp_echo_server(b.ns, "0.0.0.0", zs.APP_PORT)
    e = nslib.tcp_source(a.ns, b.ip, zs.APP_PORT, 1 << 20, echo=True, timeout=30)
    check(e["recv_sha256"] == e["sha256"], "echo through HBONE differs")
    check(z.outbound_hbone(zs.APP_PORT), "the connection to B did not use HBONE")


if __name__ == "__main__":
    sys.exit(zs.main("zt-e2e-passthru", body))
