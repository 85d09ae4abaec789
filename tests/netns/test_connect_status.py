#!/usr/bin/python3
"""Scenario 5: HBONE CONNECT response codes at B's 15008 (ztunnel-compat §2.4-§2.5).

A raw HBONE client (python3-h2 over ssl, A's certificate, ALPN h2, no SNI) runs in A's namespace
on a socket carrying the packet mark 0x539 (A's capture rules let it through), connects to
B:15008 and sends, on one connection:
  CONNECT <another IP>:8080        -> 400 (target IP is not the IP the connection arrived on)
  CONNECT <B's IP>:8080            -> 200, bytes echo through the app, END_STREAM both ways
  CONNECT unknown.example.com:8080 -> 503 (no service with that hostname)
  CONNECT <B's IP>:8099            -> 503 (nothing listens upstream)
  GET (not CONNECT)                -> 400
The client verified B's certificate (it carries B's SPIFFE identity). B's access log records the
200 tunnel with src.identity = A and the refusals as failures with their status.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ztscenario as zs  # noqa: E402
from ztscenario import check  # noqa: E402


def body(z):
    a, b = z.a, z.b
    z.start()
    log = z.server(b, zs.APP_PORT, "echo")
    other = z.pair.net.host(99)  # on the link, but nobody's workload
    reqs = [
        {"authority": f"{other}:{zs.APP_PORT}"},
        {"authority": f"{b.ip}:{zs.APP_PORT}", "data": "hello through hbone"},
        {"authority": f"unknown.example.com:{zs.APP_PORT}"},
        {"authority": f"{b.ip}:8099"},
        {"authority": f"{b.ip}:{zs.APP_PORT}", "method": "GET"},
    ]
    r = z.h2(a, b.ip, reqs)
    print(f"h2 client: {r}", flush=True)
    check(r["alpn"] == "h2", f"ALPN {r['alpn']}")
    check(b.identity in r["peer_uris"], f"B presented {r['peer_uris']}, expected {b.identity}")
    res = r["results"]
    expect = [400, 200, 503, 503, 400]
    got = [x["status"] for x in res]
    for req, x, want in zip(reqs, res, expect):
        check(x["status"] == want,
              f"{req.get('method', 'CONNECT')} {req['authority']}: status {x['status']}, "
              f"expected {want} (all: {got})")
    ok = res[1]
    check(ok["data"] == reqs[1]["data"] and ok["ended"],
          f"the 200 tunnel did not echo the bytes and end cleanly: {ok}")
    for x in res[:1] + res[2:]:
        check(x["data"] == "", f"a refused CONNECT carried data back: {x}")

    # B's app saw exactly one connection (the 200), from A's address.
    accepts = [x for x in zs.app_records(log) if x.get("event") == "accept"]
    check(len(accepts) == 1 and accepts[0]["peer"] == a.ip,
          f"B's app accepted {accepts}, expected one connection from {a.ip}")
    good = z.inbound_hbone(zs.APP_PORT)
    check(good and any(not g["failed"] and g.get("src.identity") == a.identity for g in good),
          f"B logged no successful tunnel from {a.identity}: {good}")
    mismatch = b.wait_access(lambda x: x.get("dst.hbone_addr") == f"{other}:{zs.APP_PORT}")
    check(mismatch and mismatch[-1]["failed"] and "400" in mismatch[-1].get("error", ""),
          f"B's log has no failed record with 400 for the IP mismatch: {mismatch}")
    unknown = b.wait_access(lambda x: x.get("dst.hbone_addr") == f"unknown.example.com:"
                                                                 f"{zs.APP_PORT}")
    check(unknown and unknown[-1]["failed"] and "503" in unknown[-1].get("error", ""),
          f"B's log has no failed record with 503 for the unknown hostname: {unknown}")
    refused = b.wait_access(lambda x: x.get("dst.hbone_addr") == f"{b.ip}:8099")
    check(refused and refused[-1]["failed"],
          f"B's log has no failed record for the refused upstream: {refused}")


if __name__ == "__main__":
    sys.exit(zs.main("zt-e2e-connect", body))
