#!/usr/bin/env python3
"""Writes the seed inputs of fuzz/corpus/overlay/ (the layout is described in fuzz_overlay.c).

Each seed is a 4 KiB overlay header built here from the format in
src/backend/disk_overlay.h and disk_overlay.c, then a control byte and a few bitmap bytes:
valid headers (every cluster size from 2^12 to 2^21, small, odd and huge sizes, short and
the longest base paths), one header per rule the parser enforces, and headers that take
overlay_check through each of its verdicts. Rejections that sit behind the CRC keep a
right CRC (the harness recomputes it unless control bit 0 is set). Run from anywhere:
python3 fuzz/gen_corpus_overlay.py. Inputs that once found a bug are kept beside the seeds
under names starting with "regress-".
"""
import os
import struct
import zlib

from seeds import write_seeds

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "overlay")

HDR = 4096
PATH_OFF = 88
PATH_MAX = HDR - 4 - PATH_OFF
KEEP_CRC, CHECK, EXTEND, BASE_MATCH, LOCK, CUT = 1, 8, 16, 32, 64, 128
ERR_1, ERR_NULL, ERR_13 = 2, 4, 6


def layout(cbits, size):
    """(bitmap_offset, bitmap_bytes, data_offset), as overlay_layout computes them."""
    csize = 1 << cbits
    clusters = (size + csize - 1) // csize
    bm = ((clusters + 7) // 8 + 4095) // 4096 * 4096
    return HDR, bm, (HDR + bm + csize - 1) // csize * csize


def header(cbits=16, size=1 << 20, path=b"/var/lib/tern/base.img", base_size=None,
           ino=1234, mtime=(1700000000, 5), version=1, hsize=HDR, flags=0, magic=b"TERNOVL1",
           offsets=None, plen=None, crc=True):
    bo, bb, do = offsets or layout(cbits, size)
    h = magic + struct.pack("<IIIIQQQQQQqII", version, hsize, cbits, flags, size, bo, bb, do,
                            size if base_size is None else base_size, ino, mtime[0], mtime[1],
                            len(path) if plen is None else plen)
    assert len(h) == PATH_OFF
    h = (h + path).ljust(HDR - 4, b"\0")[:HDR - 4]
    return h + struct.pack("<I", zlib.crc32(h) if crc else 0)


def seed(h, ctrl=0, tail=b"\0\0\xff\x01"):
    return h + bytes([ctrl]) + tail


def cut(h, length, ctrl=CHECK | CUT):
    return h + bytes([ctrl]) + struct.pack("<H", length)


# The parser ignores what follows the path (the CRC covers it): 100 bytes of 0xff there.
JUNK_AFTER_PATH = header()[:PATH_OFF + 22] + b"\xff" * 100 + header()[PATH_OFF + 122:]

SEEDS = {}

# Valid headers: every cluster size, with a size that is not a multiple of it.
for cb in range(12, 22):
    SEEDS["seed-cluster-%d" % cb] = seed(header(cbits=cb, size=(3 << 20) + 512 * cb))
SEEDS.update({
    "seed-default": seed(header()),
    "seed-one-sector": seed(header(size=512, base_size=1023)),
    "seed-one-cluster": seed(header(cbits=21, size=2 << 20, base_size=(2 << 20) + 511)),
    "seed-bitmap-two-chunks": seed(header(cbits=12, size=(4096 * 8 + 1) * 4096)),
    "seed-bitmap-max": seed(header(cbits=16, size=32 << 40)),
    "seed-size-largest": seed(header(cbits=21, size=1 << 50)),
    "seed-path-1": seed(header(path=b"b")),
    "seed-path-max": seed(header(path=b"/" + b"p" * (PATH_MAX - 1))),
    "seed-path-junk-after": seed(JUNK_AFTER_PATH, tail=b""),
    "seed-mtime-negative": seed(header(mtime=(-1, 999999999))),
    "seed-exact-4096": header(),
    "seed-err-1": seed(header(version=9), ERR_1),
    "seed-err-null": seed(header(version=9), ERR_NULL),
    "seed-err-13": seed(header(version=9), ERR_13),
    # Rejections, in the parser's order.
    "seed-bad-empty": b"",
    "seed-bad-short": header()[:HDR - 1],
    "seed-bad-layout-only": header(cbits=13, size=5 << 30)[:32],
    "seed-bad-magic": seed(header(magic=b"TERNOVL2")),
    "seed-bad-version": seed(header(version=2)),
    "seed-bad-crc": seed(header(crc=False), KEEP_CRC),
    "seed-bad-crc-flipped": seed(header()[:100] + b"\x01" + header()[101:], KEEP_CRC),
    "seed-bad-header-size": seed(header(hsize=512)),
    "seed-bad-flags": seed(header(flags=1)),
    "seed-bad-cluster-11": seed(header(cbits=11, offsets=layout(12, 1 << 20))),
    "seed-bad-cluster-22": seed(header(cbits=22, offsets=layout(21, 1 << 20))),
    "seed-bad-cluster-huge": seed(header(cbits=0xFFFFFFFF, offsets=(HDR, 4096, 1 << 16))),
    "seed-bad-size-0": seed(header(size=0, offsets=(HDR, 4096, 1 << 16))),
    "seed-bad-size-unaligned": seed(header(size=(1 << 20) + 1, offsets=layout(16, 1 << 20))),
    "seed-bad-size-over-2-62": seed(header(cbits=21, size=(1 << 62) + 512,
                                           offsets=layout(21, 1 << 62))),
    "seed-bad-size-max": seed(header(size=2**64 - 512, offsets=layout(16, 1 << 20))),
    "seed-bad-bitmap-2-62": seed(header(cbits=21, size=1 << 62)),
    "seed-bad-bitmap-too-big": seed(header(cbits=12, size=1 << 42, offsets=(HDR, 64 << 20, 0))),
    "seed-bad-bitmap-offset": seed(header(offsets=(0, 4096, 1 << 16))),
    "seed-bad-bitmap-bytes": seed(header(offsets=(HDR, 8192, 1 << 16))),
    "seed-bad-data-offset": seed(header(offsets=(HDR, 4096, 8192))),
    "seed-bad-data-offset-overlap": seed(header(cbits=12, offsets=(HDR, 4096, 4096))),
    "seed-bad-base-smaller": seed(header(base_size=(1 << 20) - 1)),
    "seed-bad-base-larger": seed(header(base_size=(1 << 20) + 512)),
    "seed-bad-nsec": seed(header(mtime=(0, 1000000000))),
    "seed-bad-path-empty": seed(header(path=b"")),
    "seed-bad-path-too-long": seed(header(path=b"/" + b"p" * (PATH_MAX - 1), plen=PATH_MAX + 1)),
    "seed-bad-path-len-huge": seed(header(plen=0xFFFFFFFF)),
    "seed-bad-path-nul": seed(header(path=b"/var/lib\0/base.img")),
    "seed-bad-path-len-past": seed(header(path=b"/x", plen=10)),
    # overlay_check: a bad header, a short file, the wrong file size, a base in use, a
    # base that changed, and one that is fine.
    "seed-check-bad-header": seed(header(version=3), CHECK),
    "seed-check-short": cut(header(), 100),
    "seed-check-empty-file": cut(header(), 0),
    "seed-check-not-extended": seed(header(), CHECK | BASE_MATCH),
    "seed-check-stale": seed(header(), CHECK | EXTEND),
    "seed-check-busy": seed(header(), CHECK | EXTEND | BASE_MATCH | LOCK),
    "seed-check-ok": seed(header(), CHECK | EXTEND | BASE_MATCH),
    "seed-check-ok-small-err": seed(header(cbits=12, size=512 * 3, base_size=512 * 3 + 17),
                                    CHECK | EXTEND | BASE_MATCH | ERR_13),
    "seed-check-ok-huge": seed(header(cbits=21, size=1 << 50), CHECK | EXTEND | BASE_MATCH),
    "seed-check-stale-null-err": seed(header(cbits=20), CHECK | EXTEND | ERR_NULL),
})


def main():
    write_seeds(OUT, SEEDS)


if __name__ == "__main__":
    main()
