#!/usr/bin/python3
"""ztscenario: the shared fixture and application roles of the two-host end-to-end tests
(tests/netns/test_*.py). Python 3 stdlib only; needs root (exit 77 otherwise).

A test is a function of a Scenario, run by main():

    import ztscenario as zs

    def body(z):
        z.start()                                   # configs, capture rules, both ztunnels
        srv = z.server(z.b, 8080, "echo")           # an app on B (this file, role "server")
        r = nslib.tcp_source(z.a.ns, z.b.ip, 8080, 1 << 20, echo=True)
        zs.check(r["recv_sha256"] == r["sha256"], "echo differs")
        rec = z.outbound_hbone(8080)                # A's access-log record of the tunnel

    if __name__ == "__main__":
        zs.main("zt-e2e-name", body)

main() makes a work directory, a Mesh (root CA, certificates through `ztunnel certs`) and two
hosts A and B (zthosts.TwoHosts: namespaces on one veth link), runs the body, then stops both
ztunnels with SIGTERM (warning, or with require_clean_exit failing, unless each exits 0), and
always cleans up. A failure prints the reason, the
last lines of both ztunnel logs and of every app log, and exits 1; success prints "PASS" and
exits 0.

Application roles run inside a namespace by re-invoking this file (`/usr/bin/python3
ztscenario.py server ...` / `client ...`); see the role functions below. Every loop in them is
bounded by a byte count and a timeout.
"""

import argparse
import errno
import hashlib
import json
import os
import select
import signal
import socket
import struct
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import nslib  # noqa: E402
import zthosts  # noqa: E402
from nstool import pattern_chunks  # noqa: E402

SELF = os.path.abspath(__file__)
APP_PORT = 8080
PACKET_MARK = 0x539  # ztunnel's default PACKET_MARK: sockets carrying it bypass capture

__all__ = ["Failure", "check", "main", "Scenario", "read_line", "app_records", "wait_records",
           "outcome_of", "APP_PORT", "PACKET_MARK"]


class Failure(AssertionError):
    """A scenario check failed; the message says what was expected and what happened."""


def check(condition, message):
    if not condition:
        raise Failure(message)


def read_line(proc, timeout):
    """The next line of a spawned process's stdout (PIPE), or raises Failure after `timeout`
    seconds or at EOF."""
    deadline = time.monotonic() + timeout
    buf = b""
    fd = proc.stdout.fileno()
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise Failure(f"no line from pid {proc.pid} within {timeout}s (got {buf!r})")
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        ch = os.read(fd, 1)
        if not ch:
            raise Failure(f"pid {proc.pid} closed its output (exit {proc.poll()}) after {buf!r}")
        if ch == b"\n":
            return buf.decode()
        buf += ch


def app_records(path):
    """The JSON lines an app role wrote to its log so far."""
    try:
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


def wait_records(path, predicate, count=1, timeout=10.0):
    """Waits until `count` records of the app log match predicate; returns them (maybe fewer on
    timeout: the caller checks)."""
    deadline = time.monotonic() + timeout
    while True:
        found = [r for r in app_records(path) if predicate(r)]
        if len(found) >= count or time.monotonic() >= deadline:
            return found
        time.sleep(0.05)


def outcome_of(exc):
    """Classifies how a socket read ended: "reset" (ECONNRESET), "eof" or "error:<text>"."""
    if exc is None:
        return "eof"
    if isinstance(exc, ConnectionResetError) or getattr(exc, "errno", None) == errno.ECONNRESET:
        return "reset"
    if isinstance(exc, BrokenPipeError):
        return "epipe"
    if isinstance(exc, socket.timeout):
        return "timeout"
    return f"error:{exc}"


# --------------------------------------------------------------------------------------------
# The fixture

class Scenario:
    """Two hosts A and B with ztunnels, plus helpers. Attributes: a, b (zthosts.Host), mesh,
    work (a temporary directory), pair (the TwoHosts)."""

    def __init__(self, mesh, pair, a, b, work):
        self.mesh = mesh
        self.pair = pair
        self.a = a
        self.b = b
        self.work = work
        self.app_logs = []
        self.extra_ns = []
        self._n = 0

    # -- set-up --------------------------------------------------------------------------------
    def start(self, config_a=None, config_b=None, env_a=None, env_b=None, redirect=True):
        """Writes the local configs (default: both workloads, HBONE, on both hosts), installs
        the capture rules in both namespaces and starts both ztunnels (waits until ready)."""
        a, b = self.a, self.b
        a.write_config(config_a if config_a is not None else [a.workload(), b.workload()])
        b.write_config(config_b if config_b is not None else [b.workload(), a.workload()])
        for h, env in ((a, env_a), (b, env_b)):
            if redirect:
                h.install_redirect()
            h.start(env=env)

    def path(self, name):
        self._n += 1
        return os.path.join(self.work, f"{self._n:02d}-{name}")

    def server(self, host, port, mode, nbytes=0, delay=0.0, after=0, tag=None):
        """Starts this file's `server` role in `host`'s namespace on 0.0.0.0:port and waits
        until it listens. Returns its JSON-lines log path (events "accept" and "done")."""
        log = self.path(f"app-{tag or mode}-{host.name}-{port}.jsonl")
        self.app_logs.append(log)
        argv = [nslib.PYTHON, SELF, "server", "--port", str(port), "--mode", mode, "--log", log,
                "--bytes", str(nbytes), "--delay", str(delay), "--after", str(after)]
        ns = host.ns if hasattr(host, "ns") else host
        ns.spawn(argv, log=log + ".stderr")
        try:
            nslib.wait_listening(ns, port, timeout=10)
        except nslib.NetnsError:
            raise Failure(f"app server {mode} on port {port} did not start: "
                          f"{open(log + '.stderr', encoding='utf-8').read()[-2000:]}")
        return log

    def probe_server(self, host, port):
        """tcp_probe's epoll echo server (C++, one thread: cheap for many connections)."""
        ns = host.ns if hasattr(host, "ns") else host
        log = self.path(f"probe-{port}.log")
        self.app_logs.append(log)
        ns.spawn([zthosts.tcp_probe_binary(), "serve", "--listen", f"0.0.0.0:{port}"], log=log)
        nslib.wait_listening(ns, port, timeout=10)
        return log

    def client(self, host, args, timeout=60.0):
        """Runs this file's `client` role in `host`'s namespace; returns its JSON result."""
        ns = host.ns if hasattr(host, "ns") else host
        argv = [nslib.PYTHON, SELF, "client", "--timeout", str(timeout)] + [str(x) for x in args]
        p = ns.run(argv, check=False, timeout=timeout + 20)
        if p.returncode != 0 or not p.stdout.strip():
            raise Failure(f"client {' '.join(map(str, args))} exited {p.returncode}: "
                          f"{p.stderr.strip()[-2000:]} {p.stdout.strip()[-500:]}")
        return json.loads(p.stdout.strip().splitlines()[-1])

    def run_role(self, host, script, args, timeout=60.0):
        """Runs `script` (a test file with its own roles) in `host`'s namespace; JSON result."""
        ns = host.ns if hasattr(host, "ns") else host
        argv = [nslib.PYTHON, script] + [str(x) for x in args]
        p = ns.run(argv, check=False, timeout=timeout)
        if p.returncode != 0 or not p.stdout.strip():
            raise Failure(f"{os.path.basename(script)} {' '.join(map(str, args))} exited "
                          f"{p.returncode}: {p.stderr.strip()[-2000:]} {p.stdout.strip()[-500:]}")
        return json.loads(p.stdout.strip().splitlines()[-1])

    def h2(self, host, target, requests, certdir=None, timeout=15.0):
        """Runs the raw HBONE client (role h2) in `host`'s namespace against target:15008 with
        host's certificate (or certdir's); returns its JSON result."""
        argv = [nslib.PYTHON, SELF, "h2", "--host", target, "--certdir", certdir or host.cert_dir,
                "--req", json.dumps(requests), "--timeout", str(timeout)]
        p = host.ns.run(argv, check=False, timeout=timeout + 20)
        if p.returncode != 0 or not p.stdout.strip():
            raise Failure(f"h2 client to {target} exited {p.returncode}: "
                          f"{p.stderr.strip()[-2000:]} {p.stdout.strip()[-500:]}")
        return json.loads(p.stdout.strip().splitlines()[-1])

    def third_host(self, name="c", attach_to=None):
        """A namespace C without ztunnel, joined to `attach_to` (default A) by a second veth on
        its own subnet. Returns (ns, ip_of_c, ip_of_attach_side, c's interface name)."""
        attach_to = attach_to or self.a
        ns = nslib.Netns(prefix=self.pair.prefix).create()
        self.extra_ns.append(ns)
        net = nslib.unique_subnet()
        _, dev_c = nslib.veth_pair(attach_to.ns, ns, net.host(1), net.host(2), net.prefix)
        return ns, net.host(2), net.host(1), dev_c

    def iface(self, host):
        """The shared veth's name inside host's namespace."""
        return self.pair.ifaces[0 if host is self.a else 1]

    def count_link_bytes(self, host, ports, dev=None):
        """Counts TCP bytes arriving at `host` (a Host, or a Netns with `dev`) over the shared
        link (or `dev`) per destination port, with counting-only rules (no target) in the raw
        table's PREROUTING (before any capture rule). Returns a function giving
        {port: (packets, bytes)} so far."""
        dev = dev or self.iface(host)
        ns = host.ns if hasattr(host, "ns") else host
        for port in ports:
            ns.run(["iptables", "-w", "-t", "raw", "-A", "PREROUTING", "-i", dev, "-p",
                         "tcp", "--dport", str(port), "-m", "comment", "--comment",
                         f"ztcount{port}"])

        def read():
            out = ns.run(["iptables", "-w", "-t", "raw", "-L", "PREROUTING", "-v", "-x",
                               "-n"]).stdout
            counts = {}
            for line in out.splitlines():
                for port in ports:
                    if f"ztcount{port} " in line + " ":
                        f = line.split()
                        counts[port] = (int(f[0]), int(f[1]))
            return counts

        return read

    def open_fds(self, host):
        """File descriptors held by host's ztunnel, not counting its established HBONE
        connections (pooled connections may legitimately stay open), for leak checks."""
        fds = len(os.listdir(f"/proc/{host.proc.pid}/fd"))
        hbone = (nslib.count_tcp_connections(host.ns, zthosts.HBONE_PORT, "dport")
                 + nslib.count_tcp_connections(host.ns, zthosts.HBONE_PORT, "sport"))
        return fds - hbone

    def wait_fds(self, host, baseline, timeout=5.0):
        """Waits until open_fds(host) is back to `baseline`; Failure with the numbers if not."""
        deadline = time.monotonic() + timeout
        while True:
            now = self.open_fds(host)
            if now <= baseline:
                return now
            if time.monotonic() >= deadline:
                fd_dir = f"/proc/{host.proc.pid}/fd"
                targets = []
                for fd in os.listdir(fd_dir):
                    try:
                        targets.append(os.readlink(os.path.join(fd_dir, fd)))
                    except OSError:
                        pass
                raise Failure(f"{host.name}'s ztunnel holds {now} file descriptors (besides HBONE "
                              f"connections) {timeout}s after its tunnels ended, baseline "
                              f"{baseline}: {sorted(targets)}")
            time.sleep(0.1)

    def stop_ztunnels(self, require_clean_exit):
        """SIGTERM both ztunnels. Each should drain and exit 0 (ztunnel's contract): a Failure
        if require_clean_exit, else a warning line (test_drain.py is where that is tested)."""
        codes = {}
        for h in (self.a, self.b):
            if h.proc is not None and h.proc.poll() is None:
                codes[h.name] = h.stop()
        bad = {k: v for k, v in codes.items() if v != 0}
        if bad and require_clean_exit:
            raise Failure(f"ztunnel exit status after SIGTERM: {bad} (expected 0)")
        if bad:
            print(f"WARNING: ztunnel exit status after SIGTERM: {bad} (expected 0)", flush=True)

    # -- access logs ---------------------------------------------------------------------------
    def outbound_hbone(self, port, host=None, dst=None, count=1, timeout=10.0):
        """A's (or host's) outbound records of tunnels to dst (default B's IP):port via HBONE."""
        host = host or self.a
        target = f"{dst or self.b.ip}:{port}"
        return host.wait_access(lambda r: r.get("direction") == "outbound"
                                and r.get("dst.hbone_addr") == target, timeout=timeout,
                                count=count)

    def inbound_hbone(self, port, host=None, dst=None, count=1, timeout=10.0):
        """B's (or host's) inbound HBONE records for dst (default B's IP):port."""
        host = host or self.b
        target = f"{dst or host.ip}:{port}"
        return host.wait_access(lambda r: r.get("direction") == "inbound"
                                and r.get("dst.hbone_addr") == target, timeout=timeout,
                                count=count)

    def diagnostics(self):
        out = []
        for h in (self.a, self.b):
            out.append(f"--- last lines of {h.name}'s ztunnel log ({h.log_path}) ---")
            out.extend(h.log_text().splitlines()[-40:])
        for log in self.app_logs:
            for path in (log, log + ".stderr"):
                try:
                    with open(path, encoding="utf-8", errors="replace") as f:
                        lines = f.read().splitlines()[-10:]
                except FileNotFoundError:
                    continue
                if lines:
                    out.append(f"--- last lines of {os.path.basename(path)} ---")
                    out.extend(lines)
        return "\n".join(out)

    def close(self):
        for ns in reversed(self.extra_ns):
            ns.close()


def main(prefix, body, service_accounts=(None, None), require_clean_exit=False):
    """Runs body(Scenario) with two fresh hosts, then stops both ztunnels (SIGTERM; a non-zero
    exit fails the test only with require_clean_exit). Returns the exit status for sys.exit:
    0 (pass), 1 (fail) or 77 (not root)."""
    nslib.require_root(prefix)
    nslib.handle_termination()
    start = time.monotonic()
    z = None
    try:
        ztunnel = zthosts.ztunnel_binary()
        with tempfile.TemporaryDirectory(prefix=prefix + "-") as work:
            mesh = zthosts.Mesh(work, ztunnel)
            pair = zthosts.TwoHosts(mesh, prefix=prefix, service_accounts=service_accounts)
            with pair as (a, b):
                z = Scenario(mesh, pair, a, b, work)
                print(f"[{time.monotonic() - start:5.1f}s] hosts ready: A {a.ns.name} {a.ip}, "
                      f"B {b.ns.name} {b.ip}", flush=True)
                try:
                    body(z)
                    z.stop_ztunnels(require_clean_exit)
                    print(f"[{time.monotonic() - start:5.1f}s] checks passed, cleaning up",
                          flush=True)
                except BaseException as e:
                    if isinstance(e, SystemExit) and e.code in (0, None):
                        raise
                    print(f"\nFAIL ({prefix}): {type(e).__name__}: {e}", flush=True)
                    if not isinstance(e, Failure):
                        traceback.print_exc()
                    print(z.diagnostics(), flush=True)
                    return 1
                finally:
                    z.close()
    except Failure as e:
        print(f"\nFAIL ({prefix}) during set-up: {e}", flush=True)
        return 1
    print(f"PASS ({prefix}) in {time.monotonic() - start:.1f}s", flush=True)
    return 0


# --------------------------------------------------------------------------------------------
# Roles (run inside a namespace)

def _linger_reset(sock):
    """Closes with RST: SO_LINGER {on, 0 s}."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _read_all(sock, limit, deadline, h=None):
    """Reads until EOF, an error, `limit` bytes or the deadline. Returns (bytes, outcome)."""
    total = 0
    while total < limit:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = sock.recv(min(65536, limit - total))
        except OSError as e:
            return total, outcome_of(e)
        if not data:
            return total, "eof"
        if h is not None:
            h.update(data)
        total += len(data)
    return total, "limit"


def _send_pattern(sock, nbytes, seed):
    h = hashlib.sha256()
    for chunk in pattern_chunks(nbytes, seed):
        sock.sendall(chunk)
        h.update(chunk)
    return h.hexdigest()


def role_server(args):
    """An app server. Logs {"event": "accept", "peer", "port"} per connection, then one
    {"event": "done", "peer", "received", "sha256", "outcome", ...} when it ends. Modes:
      echo   echo to EOF, then FIN
      reply  read to EOF, wait --delay s, send --bytes (seed 1), close   (client closes first)
      first  send --bytes (seed 1), FIN, then read to EOF                 (server closes first)
      reset  read --after bytes, send --bytes (seed 1), then reset (SO_LINGER 0)
      read   read to EOF or error and report which (a reset by the client shows as "reset")
    """
    lock = threading.Lock()
    logf = open(args.log, "a", encoding="utf-8")

    def log(record):
        with lock:
            logf.write(json.dumps(record) + "\n")
            logf.flush()

    def handle(conn, peer):
        log({"event": "accept", "peer": peer[0], "port": peer[1]})
        rec = {"event": "done", "peer": peer[0], "port": peer[1]}
        h = hashlib.sha256()
        deadline = time.monotonic() + 120
        try:
            if args.mode == "echo":
                total = 0
                outcome = "eof"
                while True:
                    conn.settimeout(120)
                    try:
                        data = conn.recv(65536)
                    except OSError as e:
                        outcome = outcome_of(e)
                        break
                    if not data:
                        conn.shutdown(socket.SHUT_WR)
                        break
                    h.update(data)
                    total += len(data)
                    conn.sendall(data)
                rec.update(received=total, outcome=outcome)
            elif args.mode == "reply":
                total, outcome = _read_all(conn, 1 << 40, deadline, h)
                rec.update(received=total, outcome=outcome)
                if outcome == "eof":
                    rec["eof_at"] = time.time()
                    time.sleep(args.delay)
                    rec["sent_sha256"] = _send_pattern(conn, args.bytes, 1)
                    rec["sent"] = args.bytes
                    conn.shutdown(socket.SHUT_WR)
            elif args.mode == "first":
                rec["sent_sha256"] = _send_pattern(conn, args.bytes, 1)
                rec["sent"] = args.bytes
                conn.shutdown(socket.SHUT_WR)
                rec["fin_at"] = time.time()
                total, outcome = _read_all(conn, 1 << 40, deadline, h)
                rec.update(received=total, outcome=outcome)
            elif args.mode == "reset":
                total, outcome = _read_all(conn, args.after, deadline, h)
                rec.update(received=total, outcome=outcome)
                if args.bytes:
                    rec["sent_sha256"] = _send_pattern(conn, args.bytes, 1)
                    rec["sent"] = args.bytes
                time.sleep(args.delay)
                _linger_reset(conn)
                rec["reset_at"] = time.time()
            elif args.mode == "read":
                total, outcome = _read_all(conn, 1 << 40, deadline, h)
                rec.update(received=total, outcome=outcome)
            else:
                rec["outcome"] = f"error:unknown mode {args.mode}"
        except OSError as e:
            rec["outcome"] = rec.get("outcome") or outcome_of(e)
            rec["exception"] = str(e)
        rec["sha256"] = h.hexdigest()
        log(rec)
        try:
            conn.close()
        except OSError:
            pass

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", args.port))
    listener.listen(1024)

    def on_signal(_s, _f):
        try:
            listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        listener.close()

    signal.signal(signal.SIGTERM, on_signal)
    while True:
        try:
            conn, peer = listener.accept()
        except OSError:
            return 0
        threading.Thread(target=handle, args=(conn, peer), daemon=True).start()


def role_client(args):
    """An app client. Prints one JSON object. Modes:
      halfclose  send --bytes (seed 0), SHUT_WR, read to EOF  -> received, recv_sha256, outcome,
                 wait_s (seconds from SHUT_WR to the first reply byte)
      answer     read to EOF (the server closes first), wait --delay s, send --bytes, close
      resetpeer  send --bytes, then read until EOF or error (expects the server to reset)
      reset      send --bytes, wait --delay s, reset (SO_LINGER 0)
      probe      send --bytes, SHUT_WR, read to EOF or error; connect errors are reported,
                 not raised
    """
    out = {"mode": args.mode}
    start = time.monotonic()
    deadline = start + args.timeout
    try:
        s = socket.create_connection((args.host, args.port), timeout=args.timeout)
    except OSError as e:
        out.update(connected=False, outcome=f"connect:{outcome_of(e)}",
                   seconds=round(time.monotonic() - start, 3))
        print(json.dumps(out), flush=True)
        return 0
    out["connected"] = True
    h = hashlib.sha256()
    try:
        if args.mode == "halfclose":
            out["sha256"] = _send_pattern(s, args.bytes, 0)
            s.shutdown(socket.SHUT_WR)
            fin = time.monotonic()
            s.settimeout(args.timeout)
            first = s.recv(65536)
            out["wait_s"] = round(time.monotonic() - fin, 3)
            h.update(first)
            total, outcome = _read_all(s, 1 << 40, deadline, h)
            out.update(received=total + len(first), outcome=outcome if first else "eof")
        elif args.mode == "answer":
            total, outcome = _read_all(s, 1 << 40, deadline, h)
            out.update(received=total, outcome=outcome)
            if outcome == "eof":
                time.sleep(args.delay)
                out["sha256"] = _send_pattern(s, args.bytes, 0)
                s.shutdown(socket.SHUT_WR)
        elif args.mode == "resetpeer":
            out["sha256"] = _send_pattern(s, args.bytes, 0)
            total, outcome = _read_all(s, 1 << 40, deadline, h)
            out.update(received=total, outcome=outcome)
            out["elapsed_s"] = round(time.monotonic() - start, 3)
        elif args.mode == "reset":
            out["sha256"] = _send_pattern(s, args.bytes, 0)
            time.sleep(args.delay)
            _linger_reset(s)
            out["outcome"] = "reset-sent"
        elif args.mode == "probe":
            try:
                s.sendall(b"x" * args.bytes)
                s.shutdown(socket.SHUT_WR)
            except OSError as e:
                out["send_error"] = outcome_of(e)
            total, outcome = _read_all(s, 1 << 40, deadline, h)
            out.update(received=total, outcome=outcome)
        else:
            raise SystemExit(f"unknown client mode {args.mode}")
    except OSError as e:
        out["outcome"] = f"exception:{outcome_of(e)}"
    out["recv_sha256"] = h.hexdigest()
    out["seconds"] = round(time.monotonic() - start, 3)
    try:
        s.close()
    except OSError:
        pass
    print(json.dumps(out), flush=True)
    return 0


def _peer_cert_info(der):
    """serial (lowercase hex, no leading zeros) and URI SANs of a DER certificate (stdlib only:
    the ssl module's own decoder reads a PEM file)."""
    import ssl
    with tempfile.NamedTemporaryFile("w", suffix=".pem", delete=False) as f:
        f.write(ssl.DER_cert_to_PEM_cert(der))
        path = f.name
    try:
        info = ssl._ssl._test_decode_cert(path)  # noqa: SLF001 - stdlib, no other decoder
    finally:
        os.unlink(path)
    sans = [v for k, v in info.get("subjectAltName", ()) if k == "URI"]
    return info.get("serialNumber", "").lower().lstrip("0"), sans


def role_h2(args):
    """A raw HBONE client (python3-h2 over ssl): mTLS with the cert dir's chain and key, ALPN h2,
    no SNI, from a socket carrying the packet mark (so A's capture rules leave it alone), then
    one request per --req JSON object {"authority", "method" (CONNECT), "data" (optional: sent
    after a 200, then END_STREAM; the echo is read until the peer ends the stream)}, one after
    the other on the same connection. Prints {"peer_serial", "peer_uris", "alpn", "results":
    [{"status", "data", "ended", "reset"}]}."""
    import ssl

    import h2.config
    import h2.connection
    import h2.events

    reqs = json.loads(args.req)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if args.mark:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, args.mark)
    s.settimeout(args.timeout)
    s.connect((args.host, args.port))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False  # the SPIFFE certificate has no DNS name
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(os.path.join(args.certdir, "root-cert.pem"))
    ctx.load_cert_chain(os.path.join(args.certdir, "cert-chain.pem"),
                        os.path.join(args.certdir, "key.pem"))
    ctx.set_alpn_protocols(["h2"])
    t = ctx.wrap_socket(s, server_hostname=None)
    alpn = t.selected_alpn_protocol()
    serial, uris = _peer_cert_info(t.getpeercert(binary_form=True))
    conn = h2.connection.H2Connection(h2.config.H2Configuration(
        client_side=True, validate_outbound_headers=False, header_encoding="utf-8"))
    conn.initiate_connection()
    t.sendall(conn.data_to_send())
    deadline = time.monotonic() + args.timeout
    results = []
    for req in reqs:
        sid = conn.get_next_available_stream_id()
        method = req.get("method", "CONNECT")
        headers = [(":method", method), (":authority", req["authority"])]
        if method != "CONNECT":
            headers += [(":scheme", "https"), (":path", "/")]
        conn.send_headers(sid, headers, end_stream=(method != "CONNECT"))
        t.sendall(conn.data_to_send())
        res = {"authority": req["authority"], "method": method, "status": None, "data": "",
               "ended": False, "reset": None}
        results.append(res)
        sent_data = False
        while not (res["ended"] or res["reset"] is not None):
            if res["status"] == 200 and req.get("data") and not sent_data:
                conn.send_data(sid, req["data"].encode(), end_stream=True)
                t.sendall(conn.data_to_send())
                sent_data = True
            elif res["status"] == 200 and not req.get("data") and not sent_data:
                conn.end_stream(sid)
                t.sendall(conn.data_to_send())
                sent_data = True
            t.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = t.recv(65536)
            except socket.timeout:
                res["error"] = "timeout"
                break
            if not chunk:
                res["error"] = "connection closed"
                break
            for ev in conn.receive_data(chunk):
                if getattr(ev, "stream_id", sid) != sid:
                    continue
                if isinstance(ev, h2.events.ResponseReceived):
                    res["status"] = int(dict(ev.headers)[":status"])
                elif isinstance(ev, h2.events.DataReceived):
                    res["data"] += ev.data.decode(errors="replace")
                    conn.acknowledge_received_data(ev.flow_controlled_length, sid)
                elif isinstance(ev, h2.events.StreamEnded):
                    res["ended"] = True
                elif isinstance(ev, h2.events.StreamReset):
                    res["reset"] = int(ev.error_code)
            t.sendall(conn.data_to_send())
    conn.close_connection()
    try:
        t.sendall(conn.data_to_send())
        t.close()
    except OSError:
        pass
    print(json.dumps({"peer_serial": serial, "peer_uris": uris,
                      "alpn": alpn,
                      "results": results}), flush=True)
    return 0


def _role_main(argv):
    p = argparse.ArgumentParser(description="ztscenario application roles")
    sub = p.add_subparsers(dest="role", required=True)
    sp = sub.add_parser("server")
    sp.add_argument("--port", type=int, required=True)
    sp.add_argument("--mode", required=True)
    sp.add_argument("--log", required=True)
    sp.add_argument("--bytes", type=int, default=0)
    sp.add_argument("--delay", type=float, default=0.0)
    sp.add_argument("--after", type=int, default=0)
    cp = sub.add_parser("client")
    cp.add_argument("--host", required=True)
    cp.add_argument("--port", type=int, required=True)
    cp.add_argument("--mode", required=True)
    cp.add_argument("--bytes", type=int, default=0)
    cp.add_argument("--delay", type=float, default=0.0)
    cp.add_argument("--timeout", type=float, default=60.0)
    hp = sub.add_parser("h2")
    hp.add_argument("--host", required=True)
    hp.add_argument("--port", type=int, default=zthosts.HBONE_PORT)
    hp.add_argument("--certdir", required=True)
    hp.add_argument("--mark", type=lambda v: int(v, 0), default=PACKET_MARK)
    hp.add_argument("--req", required=True, help="JSON list of requests")
    hp.add_argument("--timeout", type=float, default=15.0)
    args = p.parse_args(argv)
    return {"server": role_server, "client": role_client, "h2": role_h2}[args.role](args)


if __name__ == "__main__":
    sys.exit(_role_main(sys.argv[1:]))
