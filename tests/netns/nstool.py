#!/usr/bin/python3
"""Small TCP tools run inside a network namespace by nslib (Python 3 stdlib only).

    nstool.py echo   --bind IP --port P              echo every connection back
    nstool.py sink   --bind IP --port P [--out FILE] read each connection to EOF, report it
    nstool.py source --host IP --port P --bytes N [--seed S] [--echo] [--hold SECONDS]
    nstool.py wait   --host IP --port P [--timeout S]  exit 0 once a TCP connect succeeds

Servers print one line "listening IP:PORT" on stdout once bound. The sink writes one JSON object
per finished connection ({"peer", "bytes", "sha256"}, plus "error" if it ended in one) to --out (appended, flushed) or stdout.
source sends N bytes of a deterministic pattern (see pattern_block), half-closes, and with --echo
reads everything back; it prints one JSON object {"sent", "sha256", "received", "recv_sha256",
"seconds"} and exits 0 (1 when --echo and the bytes differ). Servers stop on SIGTERM/SIGINT.
"""

import argparse
import hashlib
import json
import os
import random
import signal
import socket
import sys
import threading
import time

BLOCK = 65536


def pattern_block(seed):
    """The 64 KiB block the pattern repeats; the same seed gives the same bytes everywhere."""
    return random.Random(seed).randbytes(BLOCK)


def pattern_chunks(nbytes, seed):
    block = pattern_block(seed)
    left = nbytes
    while left > 0:
        n = min(left, BLOCK)
        yield block[:n] if n < BLOCK else block
        left -= n


def pattern_sha256(nbytes, seed=0):
    h = hashlib.sha256()
    for chunk in pattern_chunks(nbytes, seed):
        h.update(chunk)
    return h.hexdigest()


def _family(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _listen(bind, port):
    s = socket.socket(_family(bind), socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((bind, port))
    s.listen(128)
    print(f"listening {bind}:{port}", flush=True)
    return s


def _serve(listener, handler):
    stop = threading.Event()

    def on_signal(_signum, _frame):
        stop.set()
        try:
            listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        listener.close()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while not stop.is_set():
        try:
            conn, peer = listener.accept()
        except OSError:
            break
        t = threading.Thread(target=handler, args=(conn, peer), daemon=True)
        t.start()
    return 0


def cmd_echo(args):
    def handle(conn, _peer):
        with conn:
            try:
                while True:
                    data = conn.recv(BLOCK)
                    if not data:
                        break
                    conn.sendall(data)
                conn.shutdown(socket.SHUT_WR)
            except OSError:
                pass  # the client reset or vanished: nothing to echo to

    return _serve(_listen(args.bind, args.port), handle)


def cmd_sink(args):
    lock = threading.Lock()
    out = open(args.out, "a", encoding="utf-8") if args.out else sys.stdout

    def handle(conn, peer):
        h = hashlib.sha256()
        total = 0
        error = None
        with conn:
            try:
                while True:
                    data = conn.recv(BLOCK)
                    if not data:
                        break
                    h.update(data)
                    total += len(data)
            except OSError as e:
                error = str(e)
        record = {"peer": f"{peer[0]}:{peer[1]}", "bytes": total, "sha256": h.hexdigest()}
        if error:
            record["error"] = error
        line = json.dumps(record)
        with lock:
            out.write(line + "\n")
            out.flush()

    return _serve(_listen(args.bind, args.port), handle)


def cmd_source(args):
    start = time.monotonic()
    s = socket.create_connection((args.host, args.port), timeout=args.timeout)
    s.settimeout(args.timeout)
    sent_hash = hashlib.sha256()
    recv_hash = hashlib.sha256()
    received = [0]

    def reader():
        while True:
            data = s.recv(BLOCK)
            if not data:
                return
            recv_hash.update(data)
            received[0] += len(data)

    t = None
    if args.echo:
        # Read concurrently: an echo peer stops reading once its send buffer is full.
        t = threading.Thread(target=reader, daemon=True)
        t.start()
    sent = 0
    for chunk in pattern_chunks(args.bytes, args.seed):
        s.sendall(chunk)
        sent_hash.update(chunk)
        sent += len(chunk)
    if args.hold > 0:
        time.sleep(args.hold)
    s.shutdown(socket.SHUT_WR)
    if t is not None:
        t.join(args.timeout)
    s.close()
    result = {
        "sent": sent,
        "sha256": sent_hash.hexdigest(),
        "received": received[0],
        "recv_sha256": recv_hash.hexdigest(),
        "seconds": round(time.monotonic() - start, 6),
    }
    print(json.dumps(result), flush=True)
    if args.echo and (received[0] != sent or result["recv_sha256"] != result["sha256"]):
        return 1
    return 0


def cmd_wait(args):
    deadline = time.monotonic() + args.timeout
    last = None
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((args.host, args.port), timeout=1.0):
                return 0
        except OSError as e:
            last = e
            time.sleep(0.05)
    print(f"{args.host}:{args.port} not reachable after {args.timeout}s: {last}", file=sys.stderr)
    return 1


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("echo", "sink"):
        sp = sub.add_parser(name)
        sp.add_argument("--bind", default="0.0.0.0")
        sp.add_argument("--port", type=int, required=True)
        if name == "sink":
            sp.add_argument("--out")
    sp = sub.add_parser("source")
    sp.add_argument("--host", required=True)
    sp.add_argument("--port", type=int, required=True)
    sp.add_argument("--bytes", type=int, default=0)
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--echo", action="store_true")
    sp.add_argument("--hold", type=float, default=0.0, help="seconds to keep the connection open")
    sp.add_argument("--timeout", type=float, default=30.0)
    sp = sub.add_parser("wait")
    sp.add_argument("--host", required=True)
    sp.add_argument("--port", type=int, required=True)
    sp.add_argument("--timeout", type=float, default=10.0)
    args = p.parse_args(argv)
    return {"echo": cmd_echo, "sink": cmd_sink, "source": cmd_source, "wait": cmd_wait}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
