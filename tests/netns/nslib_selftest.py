#!/usr/bin/python3
"""Self-test of nslib: two namespaces on a veth, echo and sink servers in one, clients in the
other, byte-exact checks, connection counting, process stopping, and that nothing is left
behind. Needs root (exit 77 otherwise)."""

import os
import signal
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nslib  # noqa: E402

PREFIX = "zt-nsself"


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie child still answers kill(0); reaped processes do not.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_until(pred, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_veth_echo_sink_and_cleanup():
    tmp = tempfile.mkdtemp(prefix="nsself-")
    sink_out = os.path.join(tmp, "sink.jsonl")
    with nslib.Netns(prefix=PREFIX) as a, nslib.Netns(prefix=PREFIX) as b:
        names = (a.name, b.name)
        assert a.exists and b.exists
        assert a.name != b.name and a.name.startswith(PREFIX + f"-{os.getpid()}-")
        assert "UP" in a.run(["ip", "link", "show", "lo"]).stdout

        net = nslib.unique_subnet()
        dev_a, dev_b = nslib.veth_pair(a, b, net.host(1), net.host(2), net.prefix,
                                       ip6_a=net.host6(1), ip6_b=net.host6(2))
        for ns, dev in ((a, dev_a), (b, dev_b)):
            assert ns.sysctl_get("net.ipv4.conf.all.rp_filter") == "0"
            assert ns.sysctl_get(f"net.ipv4.conf.{dev}.rp_filter") == "0"
        assert net.host(2) in b.run(["ip", "-4", "addr", "show", dev_b]).stdout

        echo = nslib.tcp_echo_server(b, "0.0.0.0", 7000)
        echo6 = nslib.tcp_echo_server(b, "::", 7006)
        sink = nslib.tcp_sink(b, "0.0.0.0", 7001, sink_out)
        server_pids = [echo.pid, echo6.pid, sink.pid]

        # Echo: 1 MiB + a bit, byte-exact both ways, IPv4 and IPv6.
        n = (1 << 20) + 12345
        r = nslib.tcp_source(a, net.host(2), 7000, n, seed=7, echo=True)
        assert r["sent"] == n and r["received"] == n, r
        assert r["sha256"] == nslib.pattern_sha256(n, 7) == r["recv_sha256"], r
        r6 = nslib.tcp_source(a, net.host6(2), 7006, 100000, seed=8, echo=True)
        assert r6["received"] == 100000 and r6["recv_sha256"] == nslib.pattern_sha256(100000, 8)

        # Sink: the receiver's hash of what arrived equals the sender's.
        r = nslib.tcp_source(a, net.host(2), 7001, 300001, seed=3)
        rec = nslib.read_sink(sink_out, expect=1)[0]
        assert rec["bytes"] == 300001 and rec["sha256"] == r["sha256"], (rec, r)
        assert rec["peer"].startswith(net.host(1) + ":"), rec

        # A different seed gives different bytes (the check can fail).
        assert nslib.pattern_sha256(1000, 1) != nslib.pattern_sha256(1000, 2)

        # Connection counting: a held connection is seen on the server's port, then goes away.
        assert nslib.count_tcp_connections(b, 7000) == 0
        holder = a.spawn([nslib.PYTHON, nslib.NSTOOL, "source", "--host", net.host(2), "--port",
                          "7000", "--bytes", "10", "--hold", "30"],
                         stdout=__import__("subprocess").DEVNULL)
        wait_until(lambda: nslib.count_tcp_connections(b, 7000) == 1, what="1 connection")
        assert nslib.count_tcp_connections(a, 7000, direction="dport") == 1
        assert nslib.count_tcp_connections(b, 7001) == 0
        a.stop(holder, grace=1.0)
        wait_until(lambda: nslib.count_tcp_connections(b, 7000) == 0, what="0 connections")

        # Stray process not started through spawn(): still killed on close.
        stray = nslib.run(["ip", "netns", "exec", a.name, "/bin/sh", "-c",
                           "sleep 60 >/dev/null 2>&1 & echo $!"]).stdout.strip()
        server_pids.append(int(stray))
        assert alive(int(stray))

        wait_for_ok = nslib.run(["ip", "netns", "exec", a.name, nslib.PYTHON, nslib.NSTOOL,
                                 "wait", "--host", net.host(2), "--port", "7999", "--timeout",
                                 "0.3"], check=False)
        assert wait_for_ok.returncode == 1, "wait on a closed port must fail"
        try:
            nslib.wait_for_port(a, net.host(2), 7999, timeout=0.3)
            raise AssertionError("wait_for_port on a closed port did not raise")
        except nslib.NetnsError:
            pass

    # After the with-block: namespaces gone, every process gone.
    for name in names:
        assert name not in nslib.list_netns(), name
    for pid in server_pids:
        wait_until(lambda: not alive(pid), timeout=5, what=f"pid {pid} to exit")
    os.remove(sink_out)
    os.rmdir(tmp)


def test_stop_escalates_to_sigkill():
    with nslib.Netns(prefix=PREFIX) as a:
        p = a.spawn([nslib.PYTHON, "-c",
                     "import signal, time\n"
                     "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                     "print('ready', flush=True)\n"
                     "time.sleep(60)\n"], stdout=__import__("subprocess").PIPE)
        assert p.stdout.readline().strip() == b"ready"
        t0 = time.monotonic()
        rc = a.stop(p, grace=0.5)
        assert rc == -signal.SIGKILL, rc
        assert time.monotonic() - t0 < 5
        assert a.procs == []
        # A well-behaved process exits on SIGTERM.
        q = a.spawn(["sleep", "60"])
        assert a.stop(q, grace=5) == -signal.SIGTERM
        # Command failures raise with the stderr.
        try:
            a.run(["ip", "link", "show", "no-such-dev"])
            raise AssertionError("expected NetnsError")
        except nslib.NetnsError as e:
            assert "no-such-dev" in str(e), e


def test_cleanup_stale():
    name = f"{PREFIX}-stale-{os.getpid()}"
    nslib.run(["ip", "netns", "add", name])
    pid = int(nslib.run(["ip", "netns", "exec", name, "/bin/sh", "-c",
                         "sleep 60 >/dev/null 2>&1 & echo $!"]).stdout.strip())
    other = f"zt-nsother-{os.getpid()}"
    nslib.run(["ip", "netns", "add", other])
    try:
        removed = nslib.cleanup_stale(PREFIX)
        assert name in removed, removed
        assert name not in nslib.list_netns()
        assert other in nslib.list_netns(), "cleanup_stale removed a namespace without the prefix"
        wait_until(lambda: not alive(pid), timeout=5, what="stale process to die")
    finally:
        nslib.run(["ip", "netns", "del", other], check=False)
        nslib.run(["ip", "netns", "del", name], check=False)


def test_unique_names_and_subnets():
    names = {nslib.unique_name("x") for _ in range(100)}
    assert len(names) == 100
    subnets = [nslib.unique_subnet() for _ in range(100)]
    assert len({s.cidr for s in subnets}) == 100
    s = subnets[0]
    assert s.host(1).startswith("198.1") and s.cidr.endswith(".0/24")
    assert s.host6(1).startswith("2001:db8:")


def main():
    nslib.require_root("the nslib self-test")
    nslib.handle_termination()
    nslib.cleanup_stale(PREFIX)
    before = set(nslib.list_netns())
    tests = [test_unique_names_and_subnets, test_veth_echo_sink_and_cleanup,
             test_stop_escalates_to_sigkill, test_cleanup_stale]
    passed = failed = 0
    for t in tests:
        start = time.monotonic()
        try:
            t()
            passed += 1
            print(f"PASS {t.__name__} ({time.monotonic() - start:.2f}s)", flush=True)
        except Exception:  # noqa: BLE001
            failed += 1
            print(f"FAIL {t.__name__}", flush=True)
            traceback.print_exc()
    leftovers = [n for n in set(nslib.list_netns()) - before if n.startswith(PREFIX)]
    if leftovers:
        failed += 1
        print(f"FAIL leftover namespaces: {leftovers}", flush=True)
    print(f"{passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
