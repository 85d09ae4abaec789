#!/usr/bin/env python3
"""End-to-end benchmark: direct TCP vs ztunnel (HBONE) vs an stunnel mTLS pair, in one run.

Two network namespaces joined by a veth pair (client host A, server host B). For each mode the
same measurements are taken, so the modes compare like for like on this (shared, noisy) machine:

  throughput   iperf3, one TCP stream, A -> B, --time seconds        (Gbit/s)
  rtt          tcp_probe rr: 64-byte echo round trips on one established connection (p50/p99 us)
  connect      tcp_probe connect: new connection + 1-byte echo, sequential (p50 us) and with
               --concurrency in parallel (connections/s)
  cpu          proxy CPU seconds (user+sys of the proxy processes) per GB of the throughput run
  rss          proxy resident memory after the runs (KiB, summed over both hosts)

Modes:
  direct   the client connects straight to B's server.
  ztunnel  capture rules + a ztunnel per host (dedicated mode): the client dials B's address and
           is redirected into HBONE (mTLS 1.3 + HTTP/2 CONNECT), pooled per destination.
  stunnel  stunnel4 client on A (127.0.0.1) -> TLS 1.3 with client certificates (same ECDSA
           certificates, AES-256-GCM) -> stunnel4 server on B -> the server; one TLS connection
           per client connection (stunnel has no multiplexing).

    sudo bench/harness/run.py [--modes direct,ztunnel,stunnel] [--time 10] [--json out.json]

Binaries come from $ZT_BUILD_DIR (default build/release; build with CMAKE_BUILD_TYPE=Release).
Every load is bounded in time and count; namespaces and processes are removed at the end.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "netns"))
os.environ.setdefault("ZT_BUILD_DIR", os.path.join(ROOT, "build", "release"))

import nslib  # noqa: E402
import zthosts  # noqa: E402

IPERF_PORT = 5201
PROBE_PORT = 8081
STUNNEL_IPERF = 15201  # stunnel client listen ports on A's loopback
STUNNEL_PROBE = 18081
STUNNEL_SERVER_IPERF = 4443
STUNNEL_SERVER_PROBE = 4444


def proc_cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


def machine_busy():
    """(busy, total) jiffies of all CPUs, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def proc_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Mode:
    """A way to get from A's client to B's servers: gives the addresses to dial, and the proxy
    processes to account CPU and memory to."""

    name = "?"

    def setup(self, a, b, work):
        pass

    def targets(self, a, b):
        raise NotImplementedError

    def pids(self):
        return []

    def teardown(self, a, b):
        pass


class Direct(Mode):
    name = "direct"

    def targets(self, a, b):
        return (b.ip, IPERF_PORT), (b.ip, PROBE_PORT)


class Ztunnel(Mode):
    name = "ztunnel"

    def __init__(self, env=None):
        self.env = env or {}

    def setup(self, a, b, work):
        a.write_config([a.workload(), b.workload()])
        b.write_config([b.workload(), a.workload()])
        for h in (a, b):
            h.install_redirect()
            # Access logs at info, as ztunnel's default; to a file, not a terminal.
            h.start(env=self.env)

    def targets(self, a, b):
        return (b.ip, IPERF_PORT), (b.ip, PROBE_PORT)

    def pids(self):
        return [h.proc.pid for h in self.hosts]

    def teardown(self, a, b):
        for h in (a, b):
            h.stop()
            h.remove_redirect()


class Stunnel(Mode):
    name = "stunnel"

    def setup(self, a, b, work):
        self.procs = []
        common = ("sslVersionMin = TLSv1.3\nciphersuites = TLS_AES_256_GCM_SHA384\n"
                  "verifyChain = yes\n")
        client_conf = os.path.join(work, "stunnel-client.conf")
        server_conf = os.path.join(work, "stunnel-server.conf")
        with open(client_conf, "w") as f:
            f.write(f"foreground = yes\npid =\n[iperf]\nclient = yes\n"
                    f"accept = 127.0.0.1:{STUNNEL_IPERF}\nconnect = {b.ip}:{STUNNEL_SERVER_IPERF}\n"
                    f"cert = {a.cert_dir}/cert-chain.pem\nkey = {a.cert_dir}/key.pem\n"
                    f"CAfile = {a.cert_dir}/root-cert.pem\n{common}"
                    f"[probe]\nclient = yes\naccept = 127.0.0.1:{STUNNEL_PROBE}\n"
                    f"connect = {b.ip}:{STUNNEL_SERVER_PROBE}\n"
                    f"cert = {a.cert_dir}/cert-chain.pem\nkey = {a.cert_dir}/key.pem\n"
                    f"CAfile = {a.cert_dir}/root-cert.pem\n{common}")
        with open(server_conf, "w") as f:
            f.write(f"foreground = yes\npid =\n[iperf]\naccept = 0.0.0.0:{STUNNEL_SERVER_IPERF}\n"
                    f"connect = 127.0.0.1:{IPERF_PORT}\n"
                    f"cert = {b.cert_dir}/cert-chain.pem\nkey = {b.cert_dir}/key.pem\n"
                    f"CAfile = {b.cert_dir}/root-cert.pem\n{common}"
                    f"[probe]\naccept = 0.0.0.0:{STUNNEL_SERVER_PROBE}\n"
                    f"connect = 127.0.0.1:{PROBE_PORT}\n"
                    f"cert = {b.cert_dir}/cert-chain.pem\nkey = {b.cert_dir}/key.pem\n"
                    f"CAfile = {b.cert_dir}/root-cert.pem\n{common}")
        self.procs.append((b.ns, b.ns.spawn(["stunnel4", server_conf],
                                            log=os.path.join(work, "stunnel-server.log"))))
        self.procs.append((a.ns, a.ns.spawn(["stunnel4", client_conf],
                                            log=os.path.join(work, "stunnel-client.log"))))
        nslib.wait_listening(b.ns, STUNNEL_SERVER_PROBE)
        nslib.wait_listening(a.ns, STUNNEL_PROBE)

    def targets(self, a, b):
        return ("127.0.0.1", STUNNEL_IPERF), ("127.0.0.1", STUNNEL_PROBE)

    def pids(self):
        return [p.pid for _, p in self.procs]

    def teardown(self, a, b):
        for ns, p in self.procs:
            ns.stop(p)


def probe_json(ns, argv, timeout):
    """Runs tcp_probe; its JSON line is the result even when some operations failed (exit 1)."""
    p = ns.run(argv, check=False, timeout=timeout)
    if not p.stdout.strip():
        raise RuntimeError(f"{' '.join(argv)}: exit {p.returncode}: {p.stderr.strip()}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def measure(mode, a, b, args, work):
    mode.hosts = (a, b)
    mode.setup(a, b, work)
    try:
        (iperf_host, iperf_port), (probe_host, probe_port) = mode.targets(a, b)
        pids = mode.pids()
        cpu0 = sum(proc_cpu_seconds(p) for p in pids)
        busy0, total0 = machine_busy()
        ip = a.ns.run(["iperf3", "-c", iperf_host, "-p", str(iperf_port), "-t", str(args.time),
                       "-J"], timeout=args.time + 30)
        cpu1 = sum(proc_cpu_seconds(p) for p in pids)
        busy1, total1 = machine_busy()
        result = json.loads(ip.stdout)
        end = result["end"]
        bits = end["sum_received"]["bits_per_second"]
        gbytes = end["sum_received"]["bytes"] / 1e9
        target = f"{probe_host}:{probe_port}"
        rr = probe_json(a.ns, [args.probe, "rr", "--connect", target, "--count",
                               str(args.rr_count), "--size", "64", "--warmup", "200"], 120)
        seq = probe_json(a.ns, [args.probe, "connect", "--connect", target, "--count",
                                str(args.connect_count), "--concurrency", "1"], 120)
        par = probe_json(a.ns, [args.probe, "connect", "--connect", target, "--count",
                                str(args.connect_count * 4), "--concurrency",
                                str(args.concurrency)], 180)
        rss = sum(proc_rss_kib(p) for p in pids)
        return {
            "mode": mode.name,
            "throughput_gbps": bits / 1e9,
            "cpu_s_per_gb": (cpu1 - cpu0) / gbytes if pids and gbytes else 0.0,
            "machine_busy_pct": 100.0 * (busy1 - busy0) / max(1, total1 - total0),
            "rtt_p50_us": rr["p50_us"],
            "rtt_p99_us": rr["p99_us"],
            "connect_p50_us": seq["p50_us"],
            "connect_p99_us": seq["p99_us"],
            "connects_per_s": par["rate_per_s"],
            "connect_errors": seq["errors"] + par["errors"],
            "rss_kib": rss,
        }
    finally:
        mode.teardown(a, b)


def print_table(rows):
    cols = [("mode", "{}"), ("throughput_gbps", "{:.2f}"), ("cpu_s_per_gb", "{:.2f}"), ("machine_busy_pct", "{:.0f}"),
            ("rtt_p50_us", "{:.0f}"), ("rtt_p99_us", "{:.0f}"), ("connect_p50_us", "{:.0f}"),
            ("connects_per_s", "{:.0f}"), ("connect_errors", "{}"), ("rss_kib", "{}")]
    print("  ".join(f"{c:>16}" for c, _ in cols))
    for r in rows:
        print("  ".join(f"{fmt.format(r[c]):>16}" for c, fmt in cols))
    by = {r["mode"]: r for r in rows}
    z, s, d = by.get("ztunnel"), by.get("stunnel"), by.get("direct")
    if z and s:
        print(f"\nztunnel vs stunnel: throughput x{z['throughput_gbps'] / s['throughput_gbps']:.2f}, "
              f"connection rate x{z['connects_per_s'] / s['connects_per_s']:.2f}, "
              f"new tunnel p50 x{s['connect_p50_us'] / z['connect_p50_us']:.2f} faster")
        if d:
            za = z["rtt_p50_us"] - d["rtt_p50_us"]
            sa = s["rtt_p50_us"] - d["rtt_p50_us"]
            print(f"added RTT p50 over direct: ztunnel {za:.0f} us, stunnel {sa:.0f} us "
                  f"(ratio {za / sa if sa else float('nan'):.2f})")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--modes", default="direct,ztunnel,stunnel")
    p.add_argument("--time", type=int, default=10, help="iperf3 seconds per mode")
    p.add_argument("--rr-count", type=int, default=20000)
    p.add_argument("--connect-count", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--json", help="write the results here")
    p.add_argument("--ztunnel-env", action="append", default=[], metavar="VAR=VALUE",
                   help="extra environment for both ztunnels (e.g. ZTUNNEL_WORKER_THREADS=1)")
    args = p.parse_args()
    nslib.require_root("the benchmark harness")
    nslib.handle_termination()
    args.probe = zthosts.tcp_probe_binary()
    zenv = dict(kv.split("=", 1) for kv in args.ztunnel_env)
    modes = {"direct": Direct, "ztunnel": lambda: Ztunnel(zenv), "stunnel": Stunnel}
    rows = []
    with tempfile.TemporaryDirectory(prefix="zt-bench-") as work:
        mesh = zthosts.Mesh(work, zthosts.ztunnel_binary())
        with zthosts.TwoHosts(mesh, prefix="zt-bench", names=("client", "server")) as (a, b):
            b.ns.spawn(["iperf3", "-s", "-p", str(IPERF_PORT)], log=os.path.join(work, "iperf.log"))
            b.ns.spawn([args.probe, "serve", "--listen", f"0.0.0.0:{PROBE_PORT}"],
                       log=os.path.join(work, "probe.log"))
            nslib.wait_listening(b.ns, IPERF_PORT)
            nslib.wait_listening(b.ns, PROBE_PORT)
            for name in args.modes.split(","):
                print(f"bench: {name} ...", flush=True)
                rows.append(measure(modes[name](), a, b, args, work))
                time.sleep(1)
    print()
    print_table(rows)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
