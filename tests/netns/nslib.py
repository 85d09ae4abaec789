"""nslib: network-namespace test harness for ztunnel-cpp (Python 3, Debian stdlib only, root).

Hosts are network namespaces joined by veth pairs. Everything a test makes is deleted when it ends,
pass or fail; names (prefix-pid-counter) and subnets differ per test so tests can run in parallel.

    import nslib
    nslib.require_root()                      # exit 77 (ctest SKIP_RETURN_CODE) when not root
    nslib.cleanup_stale("zt-mytest")          # leftovers of a crashed earlier run
    with nslib.Netns(prefix="zt-mytest") as a, nslib.Netns(prefix="zt-mytest") as b:
        net = nslib.unique_subnet()
        nslib.veth_pair(a, b, net.host(1), net.host(2), net.prefix)
        nslib.tcp_echo_server(b, "0.0.0.0", 7000)           # waits until it listens
        r = nslib.tcp_source(a, net.host(2), 7000, 1 << 20, echo=True)
        assert r["recv_sha256"] == nslib.pattern_sha256(1 << 20)

Processes started with Netns.spawn() are stopped (SIGTERM to their process group, SIGKILL after a
grace period) and reaped when the namespace is closed; any other process still inside it is
killed before `ip netns del`. Servers and clients are tests/netns/nstool.py run with the Debian
interpreter (/usr/bin/python3).
"""

import atexit
import hashlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time

PYTHON = "/usr/bin/python3"
HERE = os.path.dirname(os.path.abspath(__file__))
NSTOOL = os.path.join(HERE, "nstool.py")
SKIP_RETURN_CODE = 77
NETNS_DIR = "/run/netns"

sys.path.insert(0, HERE)
from nstool import pattern_sha256  # noqa: E402  (re-exported: expected hash of a source stream)

__all__ = [
    "Netns", "NetnsError", "Subnet", "require_root", "is_root", "unique_name", "unique_subnet",
    "cleanup_stale", "list_netns", "veth_pair", "wait_for_port", "wait_listening",
    "tcp_echo_server", "tcp_sink", "read_sink", "tcp_source", "pattern_sha256", "sha256_stream", "sha256_file",
    "count_tcp_connections", "run", "handle_termination",
]


class NetnsError(RuntimeError):
    """A command failed; the message has the command, its exit status and its stderr."""


_counter = itertools.count()
_live = []  # Netns objects not closed yet (closed at exit as a last resort)


def is_root():
    return os.geteuid() == 0


def require_root(what="this test"):
    """Exits with 77 (a visible ctest skip) unless running as root."""
    if not is_root():
        print(f"SKIP: {what} needs root (network namespaces, veth, iptables)", flush=True)
        sys.exit(SKIP_RETURN_CODE)


def handle_termination():
    """Turns SIGTERM/SIGHUP into SystemExit so `with` blocks and atexit clean up (ctest sends
    SIGTERM on timeout)."""

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)


def run(cmd, check=True, timeout=60, input=None, env=None):
    """Runs a command on the host (no namespace); returns CompletedProcess (text)."""
    return _run(list(cmd), check=check, timeout=timeout, input=input, env=env)


def _run(argv, check=True, timeout=60, input=None, env=None):
    try:
        p = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout,
                           env=env)
    except subprocess.TimeoutExpired as e:
        raise NetnsError(f"{' '.join(argv)}: timed out after {timeout}s") from e
    if check and p.returncode != 0:
        raise NetnsError(f"{' '.join(argv)}: exit status {p.returncode}: {p.stderr.strip()}")
    return p


def unique_name(prefix="zt"):
    """prefix-<pid>-<n>: unique among concurrently running tests and within this process."""
    return f"{prefix}-{os.getpid()}-{next(_counter)}"


def _ifname(tag):
    # Interface names have at most 15 characters and live inside the namespaces, but are created
    # in one step with `netns`, so keep them unique anyway.
    name = f"zv{os.getpid() % 10000000}{tag}{next(_counter)}"
    if len(name) > 15:
        name = name[:15]
    return name


class Subnet:
    """An IPv4 /24 in 198.18.0.0/15 (RFC 2544 benchmarking) and an IPv6 /64 in 2001:db8::/32."""

    def __init__(self, index):
        self.index = index % 512
        self.prefix = 24
        self.prefix6 = 64
        self.cidr = f"198.{18 + self.index // 256}.{self.index % 256}.0/24"

    def host(self, i):
        if not 1 <= i <= 254:
            raise ValueError("host index must be 1..254")
        return f"198.{18 + self.index // 256}.{self.index % 256}.{i}"

    def host6(self, i):
        return f"2001:db8:{self.index:x}::{i:x}"

    def __repr__(self):
        return f"Subnet({self.cidr})"


def unique_subnet():
    """A subnet distinct from the others this process allocated (and, with high probability, from
    other processes'; namespaces are isolated, so an overlap between tests is harmless anyway)."""
    return Subnet(os.getpid() * 61 + next(_counter))


def list_netns():
    """Names of the named network namespaces (`ip netns add`)."""
    try:
        return sorted(os.listdir(NETNS_DIR))
    except FileNotFoundError:
        return []


def _netns_pids(name):
    p = _run(["ip", "netns", "pids", name], check=False)
    return [int(x) for x in p.stdout.split()] if p.returncode == 0 else []


def _kill_pids(pids):
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 5
    for pid in pids:
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            try:  # our own child: reap it
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    break
            except ChildProcessError:
                pass
            time.sleep(0.01)


def cleanup_stale(prefix):
    """Deletes namespaces named `prefix` or `prefix-*` (left by a crashed run), killing the
    processes inside them first. Returns the names removed."""
    removed = []
    for name in list_netns():
        if name == prefix or name.startswith(prefix + "-"):
            _kill_pids(_netns_pids(name))
            _run(["ip", "netns", "del", name], check=False)
            removed.append(name)
    return removed


class Netns:
    """A named network namespace with lo up. Use as a context manager (or call close())."""

    def __init__(self, name=None, prefix="zt"):
        self.name = name or unique_name(prefix)
        self.procs = []
        self._created = False

    # -- lifetime -------------------------------------------------------------------------------
    def create(self):
        _run(["ip", "netns", "add", self.name])
        self._created = True
        _live.append(self)
        self.run(["ip", "link", "set", "lo", "up"])
        return self

    def __enter__(self):
        return self.create()

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self):
        """Stops spawned processes, kills anything else inside, deletes the namespace.
        Idempotent."""
        if not self._created:
            return
        for proc in list(self.procs):
            self.stop(proc)
        _kill_pids(_netns_pids(self.name))
        _run(["ip", "netns", "del", self.name], check=False)
        self._created = False
        if self in _live:
            _live.remove(self)

    @property
    def exists(self):
        return os.path.exists(os.path.join(NETNS_DIR, self.name))

    # -- commands -------------------------------------------------------------------------------
    def argv(self, cmd):
        """`ip netns exec <ns>` + cmd (a list, or a string run by /bin/sh -c)."""
        if isinstance(cmd, str):
            cmd = ["/bin/sh", "-c", cmd]
        return ["ip", "netns", "exec", self.name] + list(cmd)

    def run(self, cmd, check=True, timeout=60, input=None, env=None):
        """Runs cmd inside the namespace to completion; CompletedProcess with text stdout/stderr.
        Raises NetnsError when check and the exit status is not 0."""
        return _run(self.argv(cmd), check=check, timeout=timeout, input=input, env=env)

    def spawn(self, cmd, env=None, log=None, stdin=subprocess.DEVNULL, stdout=None):
        """Starts cmd inside the namespace in its own process group and tracks it. Output goes to
        `log` (a path, appended; stdout and stderr) when given, else to `stdout` (e.g.
        subprocess.PIPE) and inherited stderr, else is inherited."""
        out = err = None
        logf = None
        if log is not None:
            logf = open(log, "ab")
            out = err = logf
        elif stdout is not None:
            out = stdout
        full_env = None
        if env is not None:
            full_env = dict(os.environ)
            full_env.update(env)
        try:
            proc = subprocess.Popen(self.argv(cmd), env=full_env, stdin=stdin, stdout=out,
                                    stderr=err, start_new_session=True)
        finally:
            if logf is not None:
                logf.close()  # the child has its own copy
        self.procs.append(proc)
        return proc

    def stop(self, proc, grace=3.0):
        """SIGTERM to the process group, SIGKILL after `grace` seconds; reaps it. Returns the exit
        status (negative: killed by that signal)."""
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(10)
        # Anything the process left in its group.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
        if proc in self.procs:
            self.procs.remove(proc)
        return proc.returncode

    def pids(self):
        return _netns_pids(self.name)

    # -- configuration helpers -------------------------------------------------------------------
    def sysctl(self, key, value):
        self.run(["sysctl", "-q", "-w", f"{key}={value}"])

    def sysctl_get(self, key):
        return self.run(["sysctl", "-n", key]).stdout.strip()

    def addr_add(self, dev, address, prefix):
        args = ["ip", "addr", "add", f"{address}/{prefix}", "dev", dev]
        if ":" in address:
            args.append("nodad")  # usable at once, no duplicate address detection delay
        self.run(args)

    def link_up(self, dev):
        self.run(["ip", "link", "set", dev, "up"])

    def __repr__(self):
        return f"Netns({self.name})"


def _ns_name(ns):
    return ns.name if isinstance(ns, Netns) else str(ns)


def _as_netns(ns):
    if isinstance(ns, Netns):
        return ns
    n = Netns(name=str(ns))
    return n  # not created by us: never closed through this handle


def veth_pair(ns_a, ns_b, ip_a, ip_b, prefix=24, ip6_a=None, ip6_b=None, prefix6=64):
    """Joins two namespaces with a veth pair, addresses and brings both ends up, and turns
    rp_filter off on both ends and for `all` (foreign-source packets from transparent sockets
    must not be dropped). Addresses may be None. Returns (ifname_in_a, ifname_in_b)."""
    a, b = _as_netns(ns_a), _as_netns(ns_b)
    dev_a, dev_b = _ifname("a"), _ifname("b")
    _run(["ip", "link", "add", dev_a, "netns", a.name, "type", "veth", "peer", "name", dev_b,
          "netns", b.name])
    for ns, dev, addr, addr6 in ((a, dev_a, ip_a, ip6_a), (b, dev_b, ip_b, ip6_b)):
        ns.sysctl("net.ipv4.conf.all.rp_filter", 0)
        ns.sysctl("net.ipv4.conf.default.rp_filter", 0)
        ns.sysctl(f"net.ipv4.conf.{dev}.rp_filter", 0)
        if addr:
            ns.addr_add(dev, addr, prefix)
        if addr6:
            ns.addr_add(dev, addr6, prefix6)
        ns.link_up(dev)
    return dev_a, dev_b


def wait_for_port(ns, ip, port, timeout=10.0):
    """Waits until a TCP connect to ip:port from inside `ns` (None = host) succeeds; raises
    NetnsError on timeout."""
    cmd = [PYTHON, NSTOOL, "wait", "--host", ip, "--port", str(port), "--timeout", str(timeout)]
    if ns is None:
        p = _run(cmd, check=False, timeout=timeout + 10)
    else:
        p = _as_netns(ns).run(cmd, check=False, timeout=timeout + 10)
    if p.returncode != 0:
        raise NetnsError(f"port {ip}:{port} in {_ns_name(ns) if ns else 'host'}: "
                         f"{p.stderr.strip()}")


def wait_listening(ns, port, timeout=10.0):
    """Waits until a TCP socket in `ns` listens on `port` (any address), without connecting (so
    servers that record connections see no probe). Raises NetnsError on timeout."""
    ns = _as_netns(ns)
    deadline = time.monotonic() + timeout
    while True:
        p = ns.run(["ss", "-Hltn", f"( sport = :{port} )"], check=False)
        if p.returncode == 0 and p.stdout.strip():
            return
        if time.monotonic() >= deadline:
            raise NetnsError(f"nothing listens on port {port} in {ns.name} after {timeout}s")
        time.sleep(0.05)


def _wait_server(ns, proc, port, timeout):
    try:
        wait_listening(ns, port, timeout)
    except NetnsError:
        status = proc.poll()
        ns.stop(proc)
        if status is not None:
            raise NetnsError(f"server for port {port} in {ns.name} exited with {status}") from None
        raise


def tcp_echo_server(ns, bind, port, log=None, timeout=10.0):
    """Starts an echo server in `ns` (a Netns) and waits until it listens. Returns the Popen."""
    proc = ns.spawn([PYTHON, NSTOOL, "echo", "--bind", bind, "--port", str(port)], log=log,
                    stdout=subprocess.DEVNULL if log is None else None)
    _wait_server(ns, proc, port, timeout)
    return proc


def tcp_sink(ns, bind, port, out, log=None, timeout=10.0):
    """Starts a sink in `ns` that appends one JSON line per finished connection to the file
    `out` ({"peer", "bytes", "sha256"}); waits until it listens. Returns the Popen."""
    proc = ns.spawn([PYTHON, NSTOOL, "sink", "--bind", bind, "--port", str(port), "--out", out],
                    log=log, stdout=subprocess.DEVNULL if log is None else None)
    _wait_server(ns, proc, port, timeout)
    return proc


def read_sink(out, expect=1, timeout=10.0):
    """Waits until the sink's file has `expect` records and returns them (list of dicts)."""
    deadline = time.monotonic() + timeout
    records = []
    while time.monotonic() < deadline:
        try:
            with open(out, encoding="utf-8") as f:
                records = [json.loads(line) for line in f if line.strip()]
        except FileNotFoundError:
            records = []
        if len(records) >= expect:
            return records
        time.sleep(0.05)
    raise NetnsError(f"sink {out}: {len(records)} of {expect} connections after {timeout}s")


def tcp_source(ns, host, port, nbytes, seed=0, echo=False, hold=0.0, timeout=60.0):
    """Connects from `ns` to host:port, sends `nbytes` of the seed's pattern, half-closes, and
    (echo=True) reads everything back. Returns {"sent", "sha256", "received", "recv_sha256",
    "seconds"}; raises NetnsError if the connection fails or the echo differs."""
    cmd = [PYTHON, NSTOOL, "source", "--host", host, "--port", str(port), "--bytes", str(nbytes),
           "--seed", str(seed), "--timeout", str(timeout)]
    if echo:
        cmd.append("--echo")
    if hold:
        cmd += ["--hold", str(hold)]
    p = _as_netns(ns).run(cmd, check=False, timeout=timeout + hold + 10)
    if p.returncode != 0:
        raise NetnsError(f"tcp_source {host}:{port} from {_ns_name(ns)}: exit {p.returncode}: "
                         f"{p.stderr.strip()} {p.stdout.strip()}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def sha256_stream(stream, chunk=65536):
    """sha256 hex digest of everything readable from a binary file object."""
    h = hashlib.sha256()
    while True:
        data = stream.read(chunk)
        if not data:
            return h.hexdigest()
        h.update(data)


def sha256_file(path):
    with open(path, "rb") as f:
        return sha256_stream(f)


def count_tcp_connections(ns, port, direction="sport"):
    """Established TCP connections in `ns` whose local (sport) or remote (dport) port is `port`,
    per `ss -Htn state established '( sport = :PORT )'`."""
    if direction not in ("sport", "dport"):
        raise ValueError("direction must be sport or dport")
    p = _as_netns(ns).run(["ss", "-Htn", "state", "established", f"( {direction} = :{port} )"])
    return len([line for line in p.stdout.splitlines() if line.strip()])


@atexit.register
def _close_all():
    for ns in list(_live):
        try:
            ns.close()
        except Exception as e:  # noqa: BLE001 - best effort at exit
            print(f"nslib: cleanup of {ns.name} failed: {e}", file=sys.stderr)
