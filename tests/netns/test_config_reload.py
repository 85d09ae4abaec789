#!/usr/bin/python3
"""Scenario 8: A's local config changes while its ztunnel runs (atomic rename of config.yaml).

1. A's config knows only A: B's address is unknown, so A passes the connection through as plain
   TCP (A's outbound record has no dst.hbone_addr); B's capture rules deliver it to B's inbound
   plaintext port (B's record has no src.identity). The echo works.
2. B's workload (protocol HBONE) is added to A's config: the log shows the reload (version 2),
   and a new connection goes through HBONE (A: dst.hbone_addr + B's identity; B: src.identity =
   A) — same process, no restart.
3. B's workload is removed again (version 3): new connections are plain TCP again.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nslib  # noqa: E402
import ztscenario as zs  # noqa: E402
from ztscenario import check  # noqa: E402


def echo_once(z, seed):
    r = nslib.tcp_source(z.a.ns, z.b.ip, zs.APP_PORT, 256 << 10, seed=seed, echo=True, timeout=20)
    check(r["received"] == r["sent"] and r["recv_sha256"] == r["sha256"],
          f"echo {seed} differs: {r}")


def expect_plain(z, nth):
    a, b = z.a, z.b
    target = f"{b.ip}:{zs.APP_PORT}"
    outs = a.wait_access(lambda x: x.get("direction") == "outbound" and x.get("dst.addr") == target,
                         count=nth)
    check(len(outs) >= nth, f"A logged {len(outs)} plain connections to {target}, expected {nth}")
    check("dst.hbone_addr" not in outs[-1] and not outs[-1]["failed"],
          f"A's record is not a plain passthrough: {outs[-1]}")
    ins = b.wait_access(lambda x: x.get("direction") == "inbound" and x.get("dst.addr") == target,
                        count=nth)
    check(len(ins) >= nth, f"B logged {len(ins)} plaintext inbound connections, expected {nth}")
    check("src.identity" not in ins[-1] and "dst.hbone_addr" not in ins[-1],
          f"B's record of the plain connection claims HBONE: {ins[-1]}")


def body(z):
    a, b = z.a, z.b
    z.start(config_a=[a.workload()])
    pid = a.proc.pid
    z.server(b, zs.APP_PORT, "echo")
    a.wait_log("(version 1)")

    echo_once(z, 1)
    expect_plain(z, 1)
    check(not z.outbound_hbone(zs.APP_PORT, timeout=0.5), "HBONE used before B was configured")

    a.write_config([a.workload(), b.workload()])
    a.wait_log("(version 2)", timeout=10)
    echo_once(z, 2)
    out = z.outbound_hbone(zs.APP_PORT)
    check(out and not out[-1]["failed"] and out[-1].get("dst.identity") == b.identity,
          f"after the reload the connection did not use HBONE to {b.identity}: {out}")
    inb = z.inbound_hbone(zs.APP_PORT)
    check(inb and inb[-1].get("src.identity") == a.identity,
          f"B has no HBONE tunnel from {a.identity}: {inb}")

    a.write_config([a.workload()])
    a.wait_log("(version 3)", timeout=10)
    echo_once(z, 3)
    expect_plain(z, 2)
    check(len(z.outbound_hbone(zs.APP_PORT, timeout=0.2)) == 1,
          "HBONE still used after B was removed from the config")

    check(a.proc.pid == pid and a.proc.poll() is None, "A's ztunnel restarted or exited")
    check(a.log_text().count("ztunnel ready") == 1, "A's ztunnel started more than once")


if __name__ == "__main__":
    sys.exit(zs.main("zt-e2e-reload", body))
