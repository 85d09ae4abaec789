#!/usr/bin/python3
"""Scenario 9: a broken local config is refused, named precisely, and the old state is kept.

A runs with a valid config (A and B, HBONE). Then, one after the other, A's config.yaml is
replaced (atomic rename) by:
  1. a YAML syntax error (an unclosed flow sequence),
  2. an unknown key in B's workload entry (workloads[1].bogusKey on a known line),
  3. an invalid IP in B's workloadIps (workloads[1].workloadIps[0] on a known line).
Each time the log reports the rejection with the file path, the line and (2, 3) the key path; the
process keeps running, no new version is loaded, and a new connection to B still goes through
HBONE (the previous state). Finally a fixed file (with one more workload) is applied as version 2
and HBONE still works.
"""

import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nslib  # noqa: E402
import ztscenario as zs  # noqa: E402
from ztscenario import check  # noqa: E402


def to_yaml(workloads, extra=None, ip_override=None):
    """Block YAML, one key per line, so line numbers are known. `extra` = (index, line) adds a
    raw line to workload `index`; ip_override = (index, text) replaces its workloadIps. Returns
    (text, {marker: line number}) with markers "extra" and "ip"."""
    lines = ["workloads:"]
    marks = {}
    for i, w in enumerate(workloads):
        first = True
        for key, value in w.items():
            prefix = "- " if first else "  "
            first = False
            if key == "workloadIps" and ip_override and ip_override[0] == i:
                lines.append(f"{prefix}workloadIps: [{ip_override[1]}]")
                marks["ip"] = len(lines)
                continue
            lines.append(f"{prefix}{key}: {json.dumps(value)}")
        if extra and extra[0] == i:
            lines.append(f"  {extra[1]}")
            marks["extra"] = len(lines)
    return "\n".join(lines) + "\n", marks


def hbone_still_works(z, nth, seed):
    r = nslib.tcp_source(z.a.ns, z.b.ip, zs.APP_PORT, 128 << 10, seed=seed, echo=True, timeout=20)
    check(r["recv_sha256"] == r["sha256"], f"echo {seed} differs: {r}")
    recs = z.outbound_hbone(zs.APP_PORT, count=nth)
    check(len(recs) >= nth and not recs[-1]["failed"],
          f"connection {nth} to B did not go through HBONE: {recs[-1:] if recs else recs}")


def rejection_line(z, before, what):
    """Waits for a new 'local config rejected' line after `before` rejections; returns it."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines = [l for l in z.a.log_text().splitlines() if "local config rejected" in l]
        if len(lines) > before:
            return lines[before]
        if z.a.proc.poll() is not None:
            raise zs.Failure(f"A's ztunnel exited ({z.a.proc.returncode}) on the {what}")
        time.sleep(0.05)
    raise zs.Failure(f"no rejection logged for the {what}")


def body(z):
    a, b = z.a, z.b
    good = [a.workload(), b.workload()]
    z.start(config_a=good)
    z.server(b, zs.APP_PORT, "echo")
    a.wait_log("(version 1)")
    hbone_still_works(z, 1, 1)
    path = a.config_path

    # 1. YAML syntax error.
    text, _ = to_yaml(good)
    broken = text.replace(f'["{b.ip}"]', f'["{b.ip}"', 1)
    check(broken != text, "could not break the YAML")
    a.write_config(None, raw=broken)
    line = rejection_line(z, 0, "syntax error")
    print(f"syntax error: {line}", flush=True)
    check(re.search(re.escape(path) + r":\d+:\d+:", line),
          f"the rejection does not name {path}:<line>:<column>: {line}")
    check("syntax" in line.lower(), f"the rejection does not say it is a syntax error: {line}")
    hbone_still_works(z, 2, 2)

    # 2. Unknown key in B's entry.
    text, marks = to_yaml(good, extra=(1, "bogusKey: 1"))
    a.write_config(None, raw=text)
    line = rejection_line(z, 1, "unknown key")
    print(f"unknown key (line {marks['extra']}): {line}", flush=True)
    check(f"{path}:{marks['extra']}:" in line,
          f"the rejection does not name {path}:{marks['extra']}: {line}")
    check("workloads[1].bogusKey" in line, f"the rejection does not name the key path: {line}")
    hbone_still_works(z, 3, 3)

    # 3. Bad IP in B's workloadIps.
    text, marks = to_yaml(good, ip_override=(1, '"10.0.0.300"'))
    a.write_config(None, raw=text)
    line = rejection_line(z, 2, "bad IP")
    print(f"bad IP (line {marks['ip']}): {line}", flush=True)
    check(f"{path}:{marks['ip']}:" in line,
          f"the rejection does not name {path}:{marks['ip']}: {line}")
    check("workloads[1].workloadIps[0]" in line and "10.0.0.300" in line,
          f"the rejection does not name the key path and the value: {line}")
    hbone_still_works(z, 4, 4)
    check("(version 2)" not in a.log_text(), "a broken config was loaded as a new version")
    check(a.proc.poll() is None, "A's ztunnel exited")

    # 4. Fixed.
    extra = {"uid": "cluster1//v1/Pod/default/c", "name": "c", "namespace": "default",
             "serviceAccount": "c", "workloadIps": [z.pair.net.host(50)], "protocol": "HBONE"}
    text, _ = to_yaml(good + [extra])
    a.write_config(None, raw=text)
    log = a.wait_log("(version 2)", timeout=10)
    loaded = [l for l in log.splitlines() if "(version 2)" in l][-1]
    print(f"fixed: {loaded}", flush=True)
    check("3 workloads" in loaded, f"the fixed config did not load with 3 workloads: {loaded}")
    hbone_still_works(z, 5, 5)


if __name__ == "__main__":
    sys.exit(zs.main("zt-e2e-badcfg", body))
