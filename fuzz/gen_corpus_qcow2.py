#!/usr/bin/env python3
"""Writes the seed inputs of fuzz/corpus/qcow2/ (the layout is described in fuzz_qcow2.c).

Each seed is 16 bytes of control and request parameters, then a small qcow2 image built
here from QEMU's docs/interop/qcow2.txt: 512-byte clusters (a few 4 KiB ones), a header,
an L1 table, a refcount table and block, an L2 table, and data clusters of every kind
(normal, zero, zlib- and zstd-compressed, unallocated). Valid images in versions 2 and 3,
with every refcount width, a backing file (which the harness swaps for its own), the dirty
and corrupt bits, and one image per rule the parser enforces. Run from anywhere:
python3 fuzz/gen_corpus_qcow2.py. Inputs that once found a bug are kept beside the seeds
under names starting with "regress-".
"""
import os
import struct
import zlib

from seeds import write_seeds

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "qcow2")

COPIED = 1 << 63
COMPRESSED = 1 << 62


def zstd_rle(byte, size):
    """A zstd frame of one RLE block: size copies of byte (what libzstd decodes)."""
    fhd = 0x60 if size >= 256 else 0x20  # single segment; 2-byte or 1-byte content size
    fcs = struct.pack("<H", size - 256) if size >= 256 else bytes([size])
    block = 1 | (1 << 1) | (size << 3)  # last block, RLE
    return struct.pack("<I", 0xFD2FB528) + bytes([fhd]) + fcs + struct.pack("<I", block)[:3] + \
        bytes([byte])


def image(version=3, cbits=9, size=64 * 1024, refcount_order=4, incompat=0, compat=0,
          autoclear=0, compression=0, backing=None, backing_fmt=None, features=None,
          extra_ext=b"", patch=None, header_len=112):
    cs = 1 << cbits
    l2_entries = cs // 8
    l1_size = max(1, -(-size // (cs * l2_entries)))
    # clusters: 0 header, 1 L1, 2 refcount table, 3 refcount block, 4 L2, 5.. data
    data = {}
    l2 = [0] * l2_entries
    nxt = 5
    pattern = bytes((i * 13 + 1) & 0xFF for i in range(cs))
    l2[0] = COPIED | (nxt * cs)
    data[nxt] = pattern
    nxt += 1
    if version >= 3:
        l2[1] = 1  # zero cluster
    # a compressed cluster (zlib, or zstd when the header says so)
    if compression == 1:
        comp = zstd_rle(0x42, cs)
    else:
        c = zlib.compressobj(6, zlib.DEFLATED, -12)
        comp = c.compress(bytes([0x42]) * cs) + c.flush()
    x = 62 - (cbits - 8)
    nsec = -(-len(comp) // 512)
    l2[2] = COMPRESSED | ((nsec - 1) << x) | (nxt * cs)
    data[nxt] = comp.ljust(cs, b"\0")
    nxt += 1
    l2[4] = COPIED | (nxt * cs)
    data[nxt] = bytes([0x77]) * cs
    nxt += 1
    total = nxt
    bits = 1 << refcount_order
    rb = bytearray(cs)
    for i in range(total):
        if bits >= 8:
            rb[i * bits // 8:(i + 1) * bits // 8] = (1).to_bytes(bits // 8, "big")
        else:
            rb[i * bits // 8] |= 1 << ((i * bits) % 8)

    hdr = bytearray(cs)
    if version >= 3:
        exts = b""
        if backing_fmt:
            f = backing_fmt.encode()
            exts += struct.pack(">II", 0xE2792ACA, len(f)) + f.ljust(-(-len(f) // 8) * 8, b"\0")
        if features:
            t = b"".join(bytes([ty, bit]) + name.encode().ljust(46, b"\0")
                         for ty, bit, name in features)
            exts += struct.pack(">II", 0x6803F857, len(t)) + t
        exts += extra_ext + struct.pack(">II", 0, 0)
        tail_off = header_len
    else:
        exts = b""
        tail_off = 72
    hdr[tail_off:tail_off + len(exts)] = exts
    boff, blen = 0, 0
    if backing:
        boff = tail_off + len(exts)
        blen = len(backing)
        hdr[boff:boff + blen] = backing
    struct.pack_into(">4sIQIIQIIQQIIQ", hdr, 0, b"QFI\xfb", version, boff, blen, cbits, size,
                     0, l1_size, 1 * cs, 2 * cs, 1, 0, 0)
    if version >= 3:
        struct.pack_into(">QQQII", hdr, 72, incompat, compat, autoclear, refcount_order,
                         header_len)
        hdr[104] = compression
    l1 = struct.pack(">Q", COPIED | (4 * cs)).ljust(cs, b"\0")
    rt = struct.pack(">Q", 3 * cs).ljust(cs, b"\0")
    l2b = b"".join(struct.pack(">Q", e) for e in l2)
    out = bytearray(bytes(hdr) + l1 + rt + bytes(rb) + l2b)
    for i in range(5, total):
        out += data[i]
    if patch:
        patch(out)
    return bytes(out)


def seed(img, ctrl=0, ops=b"\x00\x10\x02\x30\x03\x50\x04\x00\x05\x00\x01\x20\x02\xf0\x00"):
    return bytes([ctrl]) + ops[:15].ljust(15, b"\0") + img


def put(off, fmt, *vals):
    return lambda b: struct.pack_into(fmt, b, off, *vals)


RO, SMALL_CACHE, ERR_1, ERR_NULL, ERR_9 = 1, 2, 4, 8, 12
FEATURES = [(0, 0, "dirty bit"), (0, 1, "corrupt bit"), (0, 5, "foo"), (1, 0, "lazy refcounts")]

SEEDS = {
    "seed-v3": seed(image()),
    "seed-v3-ro": seed(image(), RO),
    "seed-v3-small-cache": seed(image(size=1 << 20), SMALL_CACHE),
    "seed-v2": seed(image(version=2)),
    "seed-v3-4k": seed(image(cbits=12, size=1 << 20)),
    "seed-zstd": seed(image(compression=1, incompat=1 << 3)),
    "seed-zstd-ro": seed(image(compression=1, incompat=1 << 3), RO),
    "seed-backing-raw": seed(image(backing=b"base.raw", backing_fmt="raw")),
    "seed-backing-probe": seed(image(backing=b"/some/where/base.img")),
    "seed-backing-qcow2-fmt": seed(image(backing=b"base.qcow2", backing_fmt="qcow2")),
    "seed-backing-vmdk": seed(image(backing=b"b.vmdk", backing_fmt="vmdk")),
    "seed-lazy-dirty": seed(image(compat=1, incompat=1)),
    "seed-lazy-clean": seed(image(compat=1)),
    "seed-corrupt": seed(image(incompat=2)),
    "seed-corrupt-ro": seed(image(incompat=2), RO),
    "seed-autoclear": seed(image(autoclear=3)),
    "seed-features-named": seed(image(features=FEATURES, incompat=1 << 5)),
    "seed-features-table": seed(image(features=FEATURES)),
    "seed-unknown-ext": seed(image(extra_ext=struct.pack(">II", 0x12345678, 5) + b"abcde\0\0\0")),
    "seed-err-1": seed(image(version=4), ERR_1),
    "seed-err-null": seed(image(version=4), ERR_NULL),
    "seed-err-9": seed(image(version=4), ERR_9),
    "seed-bad-short": seed(image()[:60]),
    "seed-bad-magic": seed(image(patch=put(0, ">4s", b"QFI\0"))),
    "seed-bad-cluster-8": seed(image(patch=put(20, ">I", 8))),
    "seed-bad-cluster-22": seed(image(patch=put(20, ">I", 22))),
    "seed-bad-l1-past-eof": seed(image(patch=put(40, ">Q", 1 << 30))),
    "seed-bad-l1-size": seed(image(patch=put(36, ">I", 0))),
    "seed-bad-rt-header": seed(image(patch=put(48, ">Q", 0))),
    "seed-bad-rt-clusters": seed(image(patch=put(56, ">I", 1 << 24))),
    "seed-bad-extl2": seed(image(incompat=1 << 4)),
    "seed-bad-datafile": seed(image(incompat=1 << 2)),
    "seed-bad-ext-len": seed(image(extra_ext=struct.pack(">II", 0x1, 0xFFFFFFF0))),
    "seed-bad-l2-past-eof": seed(image(patch=put(512, ">Q", COPIED | (1 << 40)))),
    "seed-bad-data-unaligned": seed(image(patch=put(4 * 512, ">Q", COPIED | (5 * 512 + 8 * 512 + 3 * 512 - 512 + 1536 + 512)))),
    "seed-bad-comp-offset": seed(image(patch=put(4 * 512 + 16, ">Q", COMPRESSED | (1 << 40)))),
    "seed-bad-rb-past-eof": seed(image(patch=put(2 * 512, ">Q", 1 << 30))),
    "seed-bad-rb-on-rt": seed(image(patch=put(2 * 512, ">Q", 2 * 512))),
    "seed-bad-size-huge": seed(image(patch=put(24, ">Q", 1 << 62))),
    "seed-bad-backing-len": seed(image(backing=b"x", patch=put(16, ">I", 5000))),
}
for order in range(7):
    SEEDS["seed-refcount-order-%d" % order] = seed(image(refcount_order=order))


def main():
    write_seeds(OUT, SEEDS)


if __name__ == "__main__":
    main()
