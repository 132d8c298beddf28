#!/usr/bin/env python3
"""Tiny authoritative DNS server (plain UDP, 127.0.0.1 only) for the MX relay tests.

Usage: dns_mx.py DOMAIN [DOMAIN...]

For every DOMAIN it answers:
  DOMAIN            MX  10 mx1.DOMAIN
  mx1.DOMAIN        A   127.0.0.1
A domain written `a:DOMAIN` has no MX record, only `DOMAIN A 127.0.0.1` (the implicit MX of
RFC 5321); `null:DOMAIN` has the null MX of RFC 7505 (`MX 0 .`).
AAAA and other types for known names get an empty NOERROR answer; unknown names
get NXDOMAIN. Prints `PORT <n>` (flushed) once listening. Every query is logged
to stderr as `QUERY name type`.
"""

import socket
import struct
import sys

TYPE_A, TYPE_MX, TYPE_AAAA, TYPE_OPT = 1, 15, 28, 41


def read_name(msg, off):
    labels = []
    while True:
        n = msg[off]
        if n == 0:
            return ".".join(labels), off + 1
        if n & 0xC0 == 0xC0:
            ptr = struct.unpack("!H", msg[off:off + 2])[0] & 0x3FFF
            name, _ = read_name(msg, ptr)
            labels.append(name)
            return ".".join(labels), off + 2
        labels.append(msg[off + 1:off + 1 + n].decode("ascii", "replace"))
        off += 1 + n


def encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode("ascii")
    return out + b"\x00"


def rr(name, rtype, rdata, ttl=60):
    return encode_name(name) + struct.pack("!HHIH", rtype, 1, ttl, len(rdata)) + rdata


def answer(query, domains):
    qid, flags, qdcount = struct.unpack("!HHH", query[:6])
    if qdcount != 1:
        return None
    qname, off = read_name(query, 12)
    qtype, qclass = struct.unpack("!HH", query[off:off + 4])
    question = query[12:off + 4]
    name = qname.rstrip(".").lower()
    print("QUERY %s %d" % (name, qtype), file=sys.stderr, flush=True)
    answers = []
    additional = []
    known = False
    for d in domains:
        if d.startswith("a:"):
            if name == d[2:]:
                known = True
                if qtype == TYPE_A:
                    answers.append(rr(name, TYPE_A, socket.inet_aton("127.0.0.1")))
            continue
        if d.startswith("null:"):
            if name == d[5:]:
                known = True
                if qtype == TYPE_MX:
                    answers.append(rr(name, TYPE_MX, struct.pack("!H", 0) + b"\x00"))
            continue
        mx_host = "mx1." + d
        if name == d:
            known = True
            if qtype == TYPE_MX:
                answers.append(rr(name, TYPE_MX, struct.pack("!H", 10) + encode_name(mx_host)))
                additional.append(rr(mx_host, TYPE_A, socket.inet_aton("127.0.0.1")))
        elif name == mx_host:
            known = True
            if qtype == TYPE_A:
                answers.append(rr(name, TYPE_A, socket.inet_aton("127.0.0.1")))
    rcode = 0 if known else 3
    rd = flags & 0x0100
    out_flags = 0x8000 | 0x0400 | rd | 0x0080 | rcode  # QR AA RD RA
    header = struct.pack("!HHHHHH", qid, out_flags, 1, len(answers), 0, len(additional))
    return header + question + b"".join(answers) + b"".join(additional)


def main():
    domains = [d.rstrip(".").lower() for d in sys.argv[1:]]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    print("PORT %d" % sock.getsockname()[1], flush=True)
    while True:
        data, peer = sock.recvfrom(4096)
        try:
            resp = answer(data, domains)
        except Exception as e:  # malformed query: ignore it
            print("ERROR %r" % (e,), file=sys.stderr, flush=True)
            continue
        if resp is not None:
            sock.sendto(resp, peer)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
