#!/usr/bin/env python3
"""Writes the seed inputs of fuzz/corpus/vsock/ (the layout is described in fuzz_vsock.c).

Mode 0 seeds are tx chains (header + payload) for every op and every rejection rule of
vsock_pkt_parse; mode 1 seeds are rx buffers of several shapes; mode 2 seeds are host
handshake lines. Run from anywhere: python3 fuzz/gen_corpus_vsock.py. Inputs that once
found a bug are kept beside the seeds under names starting with "regress-".
"""
import os
import struct

from seeds import write_seeds

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "vsock")

CID = 3
HOST = 2
STREAM = 1
REQUEST, RESPONSE, RST, SHUTDOWN, RW, CREDIT_UPDATE, CREDIT_REQUEST = range(1, 8)
MAX_PAYLOAD = 64 * 1024


def hdr(op, length=0, src_cid=CID, dst_cid=HOST, typ=STREAM, flags=0, sport=1024, dport=52,
        buf_alloc=65536, fwd_cnt=0):
    return struct.pack("<QQIIIHHIII", src_cid, dst_cid, sport, dport, length, typ, op, flags,
                       buf_alloc, fwd_cnt)


def chain(mode, word, readable, writable, content=b""):
    """mode 0/1; word: CID (mode 0) or payload max (mode 1); lists of segment lengths."""
    n = len(readable) + len(writable)
    assert n <= 255 and all(0 <= x <= 0xFFFF for x in readable + writable)
    out = struct.pack("<BQBB", mode, word, n, len(readable))
    out += b"".join(struct.pack("<H", x) for x in readable + writable)
    return out + content


def tx(readable, content, cid=CID):
    return chain(0, cid, readable, [], content)


def rx(writable, maximum):
    return chain(1, maximum, [], writable)


def line(text):
    return b"\x02" + text


def payload(n):
    return bytes((i * 7) & 0xFF for i in range(n))


SEEDS = {
    # tx: every op, well formed.
    "seed-tx-request": tx([44], hdr(REQUEST)),
    "seed-tx-response": tx([44], hdr(RESPONSE)),
    "seed-tx-rst": tx([44], hdr(RST)),
    "seed-tx-shutdown": tx([44], hdr(SHUTDOWN, flags=3)),
    "seed-tx-credit-update": tx([44], hdr(CREDIT_UPDATE, fwd_cnt=4096)),
    "seed-tx-credit-request": tx([44], hdr(CREDIT_REQUEST)),
    "seed-tx-rw": tx([44, 100], hdr(RW, 100) + payload(100)),
    "seed-tx-rw-one-buffer": tx([44 + 300], hdr(RW, 300) + payload(300)),
    "seed-tx-rw-split-header": tx([10, 30, 4, 50, 50], hdr(RW, 100) + payload(100)),
    "seed-tx-rw-short-len": tx([44, 100], hdr(RW, 10) + payload(100)),
    "seed-tx-rw-max": tx([44, MAX_PAYLOAD // 2, MAX_PAYLOAD // 2], hdr(RW, MAX_PAYLOAD) + payload(MAX_PAYLOAD)),
    "seed-tx-rw-many-segments": tx([44] + [4] * 200, hdr(RW, 800) + payload(800)),
    "seed-tx-rw-empty-segments": tx([44, 0, 16, 0, 16], hdr(RW, 32) + payload(32)),
    "seed-tx-high-cid": tx([44], hdr(REQUEST, src_cid=0xFFFFFFFE), cid=0xFFFFFFFE),
    # tx: rejections.
    "seed-bad-tx-short": tx([43], hdr(REQUEST)[:43]),
    "seed-bad-tx-short-split": tx([20, 23], hdr(REQUEST)[:43]),
    "seed-bad-tx-none": tx([], b""),
    "seed-bad-tx-header-writable": chain(0, CID, [], [44], hdr(REQUEST)),
    "seed-bad-tx-type-seqpacket": tx([44], hdr(REQUEST, typ=2)),
    "seed-bad-tx-type-zero": tx([44], hdr(REQUEST, typ=0)),
    "seed-bad-tx-op-invalid": tx([44], hdr(0)),
    "seed-bad-tx-op-high": tx([44], hdr(8)),
    "seed-bad-tx-len-beyond": tx([44, 100], hdr(RW, 101) + payload(100)),
    "seed-bad-tx-len-huge": tx([44, 100], hdr(RW, 0xFFFFFFFF) + payload(100)),
    "seed-bad-tx-len-over-max": tx([44, MAX_PAYLOAD // 2, MAX_PAYLOAD // 2 + 1],
                                   hdr(RW, MAX_PAYLOAD + 1) + payload(MAX_PAYLOAD + 1)),
    "seed-bad-tx-control-payload": tx([44, 4], hdr(REQUEST, 4) + b"abcd"),
    "seed-bad-tx-src-cid": tx([44], hdr(REQUEST, src_cid=CID + 1)),
    "seed-bad-tx-src-cid-upper": tx([44], hdr(REQUEST, src_cid=CID | 1 << 32)),
    "seed-bad-tx-dst-cid": tx([44], hdr(REQUEST, dst_cid=CID)),
    "seed-bad-tx-dst-cid-any": tx([44], hdr(REQUEST, dst_cid=0xFFFFFFFF)),
    # rx buffers.
    "seed-rx-linux": rx([44 + 4096], 0xFFFFFFFF),
    "seed-rx-split": rx([44, 4096], 1000),
    "seed-rx-header-split": rx([8, 30, 16, 4096], 70000),
    "seed-rx-exact": rx([44], 100),
    "seed-rx-no-credit": rx([44 + 4096], 0),
    "seed-rx-big": rx([44, 0xFFFF, 200], MAX_PAYLOAD + 100),
    "seed-rx-readable-ignored": chain(1, 4096, [100], [44, 200]),
    "seed-rx-many": rx([1] * 44 + [2] * 100, 150),
    "seed-bad-rx-short": rx([43], 100),
    "seed-bad-rx-none": rx([], 100),
    "seed-bad-rx-readable-only": chain(1, 100, [200], []),
    # host handshake lines.
    "seed-line-ok": line(b"CONNECT 52\n"),
    "seed-line-max-port": line(b"CONNECT 4294967295\n"),
    "seed-line-pipelined": line(b"CONNECT 1024\nGET / HTTP/1.0\r\n\r\n"),
    "seed-line-partial": line(b"CONNECT 12"),
    "seed-bad-line-port-overflow": line(b"CONNECT 4294967296\n"),
    "seed-bad-line-lowercase": line(b"connect 52\n"),
    "seed-bad-line-no-port": line(b"CONNECT \n"),
    "seed-bad-line-crlf": line(b"CONNECT 52\r\n"),
    "seed-bad-line-too-long": line(b"CONNECT " + b"0" * 40),
    "seed-bad-line-empty": line(b"\n"),
}


def main():
    write_seeds(OUT, SEEDS)


if __name__ == "__main__":
    main()
