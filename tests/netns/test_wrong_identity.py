#!/usr/bin/python3
"""Scenario 4 (reliability S3): the destination presents a valid certificate for the wrong
service account, and the outbound side refuses it.

A's config says B's workload runs as service account "b"; B's ztunnel holds a certificate (same
mesh CA, so the chain is valid) for "intruder" and starts with PROXY_WORKLOAD_INFO to match. A
client in A connects to B:8080 and writes some bytes. A's ztunnel must fail the TLS handshake
(SPIFFE identity check), so: B's app accepts nothing (it logs every accept), A's app sees the
connection end with no data (EOF or reset), A's access log records a failure with response
flags and an error naming the identity problem, no tunnel bytes count as sent, and B's ztunnel
never sees a CONNECT. Twice, so a failed dial leaves nothing in the pool.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ztscenario as zs  # noqa: E402
from ztscenario import check  # noqa: E402


def body(z):
    a, b = z.a, z.b
    check(b.service_account == "intruder", "B should run as the intruder")
    expected_b = z.mesh.identity(b.namespace, "b")
    z.start(config_a=[a.workload(), b.workload(serviceAccount="b")],
            config_b=[b.workload(), a.workload()])
    log = z.server(b, zs.APP_PORT, "read")
    for attempt in (1, 2):
        r = z.client(a, ["--host", b.ip, "--port", zs.APP_PORT, "--mode", "probe", "--bytes",
                         4096], timeout=20)
        print(f"attempt {attempt}: A's app: {r}", flush=True)
        # The local ztunnel accepts the connection, then resets it when the TLS check fails;
        # that can be quick enough to reach the app while connect() is still returning.
        check(r.get("outcome") in ("eof", "reset", "connect:reset"),
              f"A's app saw '{r.get('outcome')}', expected the connection to be closed or reset")
        check(r.get("received", 0) == 0, f"A's app received {r.get('received')} bytes from an "
                                         f"unverified peer")
        check(r["seconds"] < 10, f"the failure took {r['seconds']}s to reach the app")
        recs = a.wait_access(lambda x: x.get("dst.hbone_addr") == f"{b.ip}:{zs.APP_PORT}",
                             count=attempt)
        check(len(recs) >= attempt, f"A logged {len(recs)} records for the tunnel, "
                                    f"expected {attempt}")
        rec = recs[-1]
        print(f"A's access record: {rec}", flush=True)
        check(rec["failed"], f"A's record is not a failure: {rec}")
        check(rec.get("response_flags") not in (None, "", "-"), f"no response_flags: {rec}")
        err = rec.get("error", "")
        check("intruder" in err or "identity" in err.lower() or "SAN" in err,
              f"A's error does not name the identity problem: {err!r}")
        check(rec.get("bytes_sent") == "0", f"A counted {rec.get('bytes_sent')} bytes sent")
        check(rec.get("dst.identity") in (None, ""),
              f"A logged a verified peer identity {rec.get('dst.identity')}")
    time.sleep(0.5)
    accepts = [x for x in zs.app_records(log) if x.get("event") == "accept"]
    check(not accepts, f"B's app accepted {len(accepts)} connections: {accepts}")
    inbound = [x for x in b.access_log() if x.get("direction") == "inbound"]
    check(not inbound, f"B's ztunnel handled a CONNECT from an unverified client: {inbound}")
    text = a.log_text()
    check(expected_b in text or "intruder" in text,
          "A's log names neither the expected nor the presented identity")


if __name__ == "__main__":
    sys.exit(zs.main("zt-e2e-wrongid", body, service_accounts=(None, "intruder")))
