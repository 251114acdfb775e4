#!/usr/bin/env python3
"""Writes the seed inputs of fuzz/corpus/http/ (the layout is described in fuzz_http.c).

Each seed is: a flags byte (bit 0: EOF at the end; bits 1-2: how much output is consumed
between the two pieces), the cut position (u16) and the bytes a client sends: valid
GET/PUT/PATCH requests as Firecracker clients send them, chunked bodies, pipelining,
Expect: 100-continue, HTTP/1.0, and one seed per limit and per kind of malformed input.
Run from anywhere: python3 fuzz/gen_corpus_http.py. Inputs that once found a bug are kept
beside the seeds under names starting with "regress-".
"""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "http")

MAX_BODY = 51200
MAX_HEADER_BYTES = 8192
MAX_HEADERS = 32

GET = b"GET /machine-config HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n\r\n"


def with_body(method, path, body, extra=b""):
    return (b"%s %s HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n%s"
            b"Content-Length: %d\r\n\r\n" % (method, path, extra, len(body))) + body


PUT = with_body(b"PUT", b"/machine-config", b"{\"vcpu_count\": 2, \"mem_size_mib\": 256}")
PATCH = with_body(b"PATCH", b"/vm", b"{\"state\": \"Paused\"}")


def chunked(body, size, ext=b"", trailer=b""):
    out = b"PUT /drives/rootfs HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    for i in range(0, len(body), size):
        part = body[i:i + size]
        out += b"%x%s\r\n%s\r\n" % (len(part), ext, part)
    return out + b"0\r\n" + trailer + b"\r\n"


def put_body(n, path=b"/x"):
    return b"PUT %s HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % (path, n) + b"a" * n


def head_of_size(n):
    pre, post = b"GET / HTTP/1.1\r\nX-Pad: ", b"\r\n\r\n"
    return pre + b"p" * (n - len(pre) - len(post)) + post


SEEDS = {
    "get": GET,
    "get-root": b"GET / HTTP/1.1\r\n\r\n",
    "get-query": b"GET /vm/config?x=1&y=%20#frag HTTP/1.1\r\n\r\n",
    "get-absolute": b"GET http://localhost/version HTTP/1.1\r\n\r\n",
    "head": b"HEAD /machine-config HTTP/1.1\r\n\r\n",
    "delete": b"DELETE /drives/x HTTP/1.1\r\n\r\n",
    "put": PUT,
    "patch": PATCH,
    "put-actions": with_body(b"PUT", b"/actions", b"{\"action_type\": \"InstanceStart\"}"),
    "chunked": chunked(b"{\"path_on_host\": \"/tmp/disk.img\", \"is_root_device\": true}", 16),
    "chunked-ext-trailer": chunked(b"{}", 1, ext=b";a=b", trailer=b"X-T: 1\r\n"),
    "pipelined": GET + PUT + PATCH + b"GET /1 HTTP/1.1\r\nConnection: close\r\n\r\nGET /2 HTTP/1.1\r\n\r\n",
    "pipelined-blank-lines": GET + b"\r\n\r\n" + GET,
    "expect-continue": with_body(b"PUT", b"/boot-source", b"{\"kernel_image_path\": \"/boot/vmlinuz-x\"}",
                                 b"Expect: 100-continue\r\n"),
    "http10": b"GET / HTTP/1.0\r\n\r\nGET / HTTP/1.0\r\n\r\n",
    "http10-keep-alive": b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /x HTTP/1.0\r\n\r\n",
    "close": b"GET / HTTP/1.1\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\n\r\n",
    "upgrade": b"GET / HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\nGET / HTTP/1.1\r\n\r\n",
    "body-at-limit": put_body(MAX_BODY),
    "body-over-limit": put_body(MAX_BODY + 1),
    "chunked-over-limit": chunked(b"b" * (MAX_BODY + 1), 4096),
    "chunk-size-huge": b"PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n",
    "headers-at-limit": head_of_size(MAX_HEADER_BYTES),
    "headers-over-limit": head_of_size(MAX_HEADER_BYTES + 1),
    "headers-too-many": (b"GET / HTTP/1.1\r\n" + b"".join(b"H%d: v\r\n" % i for i in range(MAX_HEADERS + 1))
                         + b"\r\n"),
    "url-long": b"GET /" + b"u" * MAX_HEADER_BYTES + b" HTTP/1.1\r\n\r\n",
    "bad-method": b"get / HTTP/1.1\r\n\r\n",
    "bad-version": b"GET / HTTP/2.0\r\n\r\n",
    "bad-version-text": b"GET / HTTP/x.1\r\n\r\n",
    "no-version": b"GET /\r\n\r\n",
    "bad-header-name": b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n",
    "bad-content-length": b"PUT / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n",
    "double-content-length": b"PUT / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    "cl-and-chunked": b"PUT / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "folded-header": b"GET / HTTP/1.1\r\nX-A: a\r\n b\r\n\r\n",
    "bare-lf": b"GET / HTTP/1.1\nHost: x\n\n",
    "connect": b"CONNECT localhost:80 HTTP/1.1\r\n\r\n",
    "options-star": b"OPTIONS * HTTP/1.1\r\n\r\n",
    "cut-short": b"PUT / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc",
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for i, (name, http) in enumerate(sorted(SEEDS.items())):
        # Vary the flags and the cut so every consume mode and EOF are seeded too.
        flags = i & 7
        cut = (len(http) * (i % 5)) // 4
        with open(os.path.join(OUT, "seed-" + name), "wb") as f:
            f.write(struct.pack("<BH", flags, cut & 0xFFFF) + http)


if __name__ == "__main__":
    main()
