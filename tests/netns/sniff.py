"""sniff: watch one interface (run inside its network namespace) and report what crossed it.

    /usr/bin/python3 sniff.py --iface veth0 --out report.json --marker SECRET [--port 15008]

Captures every IPv4 TCP segment on the interface (AF_PACKET, no tcpdump needed) until SIGTERM,
then writes a JSON report: packets the kernel dropped before we read them, segments and payload bytes per destination/source port, how often
the marker appears in any payload (per segment and across each flow's concatenated payload, so
a marker split between segments is still found), and how many TLS record headers
(type 0x14-0x17, version 0x0303) start segments on --port. Stdlib only.
"""

import argparse
import json
import signal
import socket
import struct
import sys

ETH_P_ALL = 0x0003
SO_RCVBUFFORCE = 33
SOL_PACKET = 263
PACKET_STATISTICS = 6


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--iface", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--marker", required=True)
    p.add_argument("--port", type=int, default=15008)
    args = p.parse_args()
    marker = args.marker.encode()

    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    # A large buffer so a line-rate transfer is not dropped while Python catches up (root may
    # exceed rmem_max with SO_RCVBUFFORCE); drops are counted and reported anyway.
    s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 512 << 20)
    s.bind((args.iface, 0))
    s.settimeout(0.2)
    stop = False

    def on_term(_sig, _frame):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    ports = {}
    flows = {}  # (src, sport, dst, dport) -> payload tail kept for cross-segment marker search
    marker_hits = 0
    tls_records = 0
    payload_bytes_on_port = 0
    print("ready", flush=True)
    while not stop:
        try:
            frame = s.recv(70000)
        except socket.timeout:
            continue
        if len(frame) < 14 + 20 or struct.unpack("!H", frame[12:14])[0] != 0x0800:
            continue
        ip = frame[14:]
        ihl = (ip[0] & 0x0F) * 4
        if ip[9] != 6:
            continue
        total = struct.unpack("!H", ip[2:4])[0]
        tcp = ip[ihl:total]
        if len(tcp) < 20:
            continue
        sport, dport = struct.unpack("!HH", tcp[0:4])
        doff = (tcp[12] >> 4) * 4
        payload = tcp[doff:]
        key = (ip[12:16], sport, ip[16:20], dport)
        for port in (sport, dport):
            st = ports.setdefault(str(port), {"segments": 0, "payload_bytes": 0})
            st["segments"] += 1
            st["payload_bytes"] += len(payload)
        if not payload:
            continue
        if marker in payload:
            marker_hits += 1
        tail = flows.get(key, b"") + payload
        if marker in tail and marker not in payload:
            marker_hits += 1
        flows[key] = tail[-(len(marker) - 1):] if len(marker) > 1 else b""
        if args.port in (sport, dport):
            payload_bytes_on_port += len(payload)
            if len(payload) >= 5 and 0x14 <= payload[0] <= 0x17 and payload[1:3] == b"\x03\x03":
                tls_records += 1
    packets, drops = struct.unpack("II", s.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
    report = {
        "kernel_drops": drops,
        "marker_hits": marker_hits,
        "tls_record_starts_on_port": tls_records,
        "payload_bytes_on_port": payload_bytes_on_port,
        "ports": ports,
    }
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(report, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
