"""zthosts: hosts running real ztunnel processes in network namespaces (on top of nslib).

A Mesh mints a root CA and workload certificates with `ztunnel certs` (the product's own tool), a
Host is a network namespace with an address on a shared veth link, its own identity, a local
config file (LOCAL_XDS_PATH), optional capture rules (`ztunnel redirect install`) and a ztunnel
process in dedicated mode.

    mesh = zthosts.Mesh(workdir, ztunnel_binary)
    with zthosts.TwoHosts(mesh, prefix="zt-demo") as (a, b):
        a.write_config([a.workload(), b.workload()]); b.write_config([b.workload()])
        for h in (a, b): h.install_redirect(); h.start()
        ... nslib.tcp_source(a.ns, b.ip, 8080, ...) ...
        print(a.access_log())

The local config is written as JSON, which is valid YAML (the spec §12 shape), so no YAML library
is needed here.
"""

import json
import os
import re
import signal
import subprocess
import time

import nslib

HBONE_PORT = 15008


def find_binary(name, relative):
    """Locates a build product: $ZT_BUILD_DIR/<relative>, else build/*/<relative>."""
    roots = []
    if os.environ.get("ZT_BUILD_DIR"):
        roots.append(os.environ["ZT_BUILD_DIR"])
    src = os.environ.get("ZT_SOURCE_DIR", os.path.dirname(os.path.dirname(nslib.HERE)))
    for sub in ("build/ci", "build/release", "build"):
        roots.append(os.path.join(src, sub))
    for root in roots:
        path = os.path.join(root, relative)
        if os.access(path, os.X_OK):
            return path
    raise FileNotFoundError(f"{name} not found under {roots}; build it first")


def ztunnel_binary():
    return find_binary("ztunnel", "ztunnel/app/ztunnel")


def tcp_probe_binary():
    return find_binary("tcp_probe", "bench/tcp_probe")


class Mesh:
    """A trust domain: one root CA (created now) and workload certificates issued on demand."""

    def __init__(self, workdir, ztunnel, trust_domain="cluster.local"):
        self.workdir = workdir
        self.ztunnel = ztunnel
        self.trust_domain = trust_domain
        self.ca_dir = os.path.join(workdir, "ca-" + trust_domain)
        os.makedirs(workdir, exist_ok=True)
        self._certs(["create-root", "--trust-domain", trust_domain, "--out", self.ca_dir])

    def _certs(self, args):
        p = subprocess.run([self.ztunnel, "certs"] + args, capture_output=True, text=True,
                           timeout=30)
        if p.returncode != 0:
            raise RuntimeError(f"ztunnel certs {' '.join(args)}: {p.stderr.strip()}")
        return p.stdout

    def issue(self, namespace, service_account, out_dir, validity="24h"):
        self._certs(["issue", "--ca", self.ca_dir, "--namespace", namespace, "--service-account",
                     service_account, "--trust-domain", self.trust_domain, "--out", out_dir,
                     "--validity", validity])
        return out_dir

    def identity(self, namespace, service_account):
        return f"spiffe://{self.trust_domain}/ns/{namespace}/sa/{service_account}"


_ACCESS_RE = re.compile(r'(\S+?)=("(?:[^"\\]|\\.)*"|\S+)')


def parse_access_line(line):
    """A `connection complete|failed k=v ...` access-log line as a dict (quotes removed)."""
    fields = {}
    for key, value in _ACCESS_RE.findall(line):
        if value.startswith('"'):
            value = value[1:-1]
        fields[key] = value
    fields["failed"] = "connection failed" in line
    return fields


class Host:
    """One host: a namespace, an IP on the shared link, an identity and a ztunnel."""

    def __init__(self, mesh, ns, ip, name, namespace="default", service_account=None):
        self.mesh = mesh
        self.ns = ns
        self.ip = ip
        self.name = name
        self.namespace = namespace
        self.service_account = service_account or name
        self.dir = os.path.join(mesh.workdir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.cert_dir = os.path.join(self.dir, "certs")
        self.config_path = os.path.join(self.dir, "config.yaml")
        self.log_path = os.path.join(self.dir, "ztunnel.log")
        self.proc = None
        self.redirected = False
        mesh.issue(self.namespace, self.service_account, self.cert_dir)

    @property
    def identity(self):
        return self.mesh.identity(self.namespace, self.service_account)

    def workload(self, protocol="HBONE", **extra):
        """This host's workload as a local-config entry (spec §12 keys)."""
        w = {
            "uid": f"cluster1//v1/Pod/{self.namespace}/{self.name}",
            "name": self.name,
            "namespace": self.namespace,
            "serviceAccount": self.service_account,
            "trustDomain": self.mesh.trust_domain,
            "workloadIps": [self.ip],
            "protocol": protocol,
        }
        w.update(extra)
        return w

    def write_config(self, workloads, services=(), policies=(), path=None, raw=None):
        """Writes the local config atomically (rename), as a running ztunnel must see it."""
        path = path or self.config_path
        text = raw if raw is not None else json.dumps(
            {"workloads": list(workloads), "services": list(services),
             "policies": list(policies)}, indent=2)
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.rename(tmp, path)

    def install_redirect(self):
        self.ns.run([self.mesh.ztunnel, "redirect", "install"])
        self.redirected = True

    def remove_redirect(self):
        if self.redirected:
            self.ns.run([self.mesh.ztunnel, "redirect", "remove"], check=False)
            self.redirected = False

    def start(self, env=None, args=(), wait=True, timeout=15.0):
        full_env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "PROXY_MODE": "dedicated",
            "PROXY_WORKLOAD_INFO": f"{self.namespace}/{self.name}/{self.service_account}",
            "TRUST_DOMAIN": self.mesh.trust_domain,
            "WORKLOAD_CERT_DIR": self.cert_dir,
            "LOCAL_XDS_PATH": self.config_path,
            "RUST_LOG": "info",
            "ZTUNNEL_WORKER_THREADS": "2",
        }
        full_env.update(env or {})
        self.log_offset = 0
        self.proc = self.ns.spawn([self.mesh.ztunnel] + list(args), env=full_env,
                                  log=self.log_path)
        if wait:
            self.wait_log("ztunnel ready", timeout=timeout)
            nslib.wait_listening(self.ns, HBONE_PORT, timeout=timeout)
        return self.proc

    def log_text(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def wait_log(self, needle, timeout=10.0, count=1):
        """Waits until `needle` appears `count` times in the ztunnel log; returns the log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_text()
            if text.count(needle) >= count:
                return text
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"ztunnel on {self.name} exited with {self.proc.returncode}:\n"
                                   + text[-3000:])
            time.sleep(0.05)
        raise TimeoutError(f"'{needle}' x{count} not in {self.name}'s log after {timeout}s:\n"
                           + self.log_text()[-3000:])

    def access_log(self):
        """Every access-log record so far, parsed."""
        return [parse_access_line(line) for line in self.log_text().splitlines()
                if "connection complete" in line or "connection failed" in line]

    def wait_access(self, predicate, timeout=10.0, count=1):
        """Waits for `count` access-log records matching predicate(record); returns them. A
        record is written when its connection has finished on this host, slightly after the
        application saw its last byte."""
        deadline = time.monotonic() + timeout
        while True:
            found = [r for r in self.access_log() if predicate(r)]
            if len(found) >= count or time.monotonic() >= deadline:
                return found
            time.sleep(0.05)

    def stop(self, timeout=10.0):
        """SIGTERM, then wait: returns the exit code (ztunnel drains and exits 0)."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.ns.stop(self.proc, grace=0.5)
            raise RuntimeError(f"ztunnel on {self.name} did not exit within {timeout}s of SIGTERM")

    def close(self):
        try:
            self.stop()
        except RuntimeError:
            pass
        self.remove_redirect()


class TwoHosts:
    """Two hosts (names `a` and `b` unless given) on one veth link, each with its namespace."""

    def __init__(self, mesh, prefix, names=("a", "b"), service_accounts=(None, None)):
        self.mesh = mesh
        self.prefix = prefix
        self.names = names
        self.service_accounts = service_accounts
        self.hosts = []
        self._ns = []

    def __enter__(self):
        nslib.cleanup_stale(self.prefix)
        try:
            na = nslib.Netns(prefix=self.prefix).create()
            self._ns.append(na)
            nb = nslib.Netns(prefix=self.prefix).create()
            self._ns.append(nb)
            self.net = nslib.unique_subnet()
            self.ifaces = nslib.veth_pair(na, nb, self.net.host(1), self.net.host(2),
                                          self.net.prefix)
            self.hosts = [
                Host(self.mesh, na, self.net.host(1), self.names[0],
                     service_account=self.service_accounts[0]),
                Host(self.mesh, nb, self.net.host(2), self.names[1],
                     service_account=self.service_accounts[1]),
            ]
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return tuple(self.hosts)

    def __exit__(self, *exc):
        for h in self.hosts:
            h.close()
        for ns in reversed(self._ns):
            ns.close()
        return False
