#!/usr/bin/env python3
"""Writes the seed inputs of fuzz/corpus/blk_req/ (the layout is described in fuzz_blk_req.c).

Each seed is a chain description (segment count, readable count, capacity, lengths) plus
the bytes of the readable segments: one seed per request type and one per rejection rule
of blk_parse. Run from anywhere: python3 fuzz/gen_corpus_blk.py. Inputs that once found
a bug are kept beside the seeds under names starting with "regress-".
"""
import os
import struct

from seeds import write_seeds

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "blk_req")

T_IN, T_OUT, T_FLUSH, T_GET_ID, T_DISCARD, T_WRITE_ZEROES = 0, 1, 4, 8, 11, 13
MIB = 1 << 20


def header(typ, sector=0, ioprio=0):
    return struct.pack("<IIQ", typ, ioprio, sector)


def rng(sector, sectors, flags=0):
    return struct.pack("<QII", sector, sectors, flags)


def seed(readable, writable, content=b"", capacity=MIB, mode=0):
    """readable/writable: lists of segment lengths; content: bytes in chain order."""
    n = len(readable) + len(writable)
    assert n <= 255 and all(0 <= x <= 0x3FFF for x in readable + writable)
    out = struct.pack("<BBQB", n, len(readable), capacity, mode)
    out += b"".join(struct.pack("<H", x) for x in readable + writable)
    return out + content


SEEDS = {
    # Happy paths.
    "seed-in": seed([16], [1024, 1], header(T_IN, 2)),
    "seed-in-status-in-data-segment": seed([16], [513], header(T_IN, 0)),
    "seed-in-status-split": seed([16], [600, 300, 125], header(T_IN, 5)),
    "seed-in-trailing-empty": seed([16], [512, 1, 0, 0], header(T_IN)),
    "seed-in-zero-length": seed([16], [1], header(T_IN, MIB // 512)),
    "seed-out": seed([16, 2048], [1], header(T_OUT, 7)),
    "seed-out-shared-segment": seed([16 + 512], [1], header(T_OUT, 1)),
    "seed-out-header-split": seed([5, 11 + 100, 412], [1], header(T_OUT, 3)),
    "seed-flush": seed([16], [1], header(T_FLUSH, 2**64 - 1)),
    "seed-get-id": seed([16], [20, 1], header(T_GET_ID)),
    "seed-get-id-one-segment": seed([16], [21], header(T_GET_ID)),
    "seed-discard": seed([16, 16], [1], header(T_DISCARD) + rng(8, 16)),
    "seed-discard-split": seed([20, 12], [1], header(T_DISCARD) + rng(100, 7)),
    "seed-discard-last": seed([32], [1], header(T_DISCARD) + rng(MIB // 512 - 16, 16)),
    "seed-write-zeroes": seed([16, 16], [1], header(T_WRITE_ZEROES) + rng(1, 1)),
    "seed-write-zeroes-unmap": seed([16, 16], [1], header(T_WRITE_ZEROES) + rng(2, 3, 1)),
    "seed-huge-disk": seed([16], [1024, 1], header(T_IN, 2**64 // 512 - 3), 2**64 - 1, 1),
    "seed-seg-max": seed([16], [512] * 126 + [1], header(T_IN), 64 * MIB),
    "seed-small-capacity-mode": seed([16], [512, 1], header(T_IN, 1), 2**40 + 1024, 2),
    # Rejections.
    "seed-bad-short-header": seed([15], [1], header(T_FLUSH)[:15]),
    "seed-bad-short-header-split": seed([7, 8], [1], header(T_FLUSH)[:15]),
    "seed-bad-no-writable": seed([16, 512], [], header(T_OUT)),
    "seed-bad-empty-writable": seed([16], [0, 0, 0], header(T_IN)),
    "seed-bad-no-segments": seed([], []),
    "seed-bad-header-writable": seed([], [17], header(T_IN)),
    "seed-bad-unaligned-out": seed([16, 513], [1], header(T_OUT)),
    "seed-bad-unaligned-in": seed([16], [1000, 1], header(T_IN)),
    "seed-bad-past-end": seed([16], [1024, 1], header(T_IN, MIB // 512 - 1)),
    "seed-bad-sector-overflow": seed([16], [512, 1], header(T_IN, 1 << 55), 2**64 - 1, 1),
    "seed-bad-sector-plus-len-overflow": seed([16], [1024, 1], header(T_IN, (2**64 - 1) // 512),
                                              2**64 - 1, 1),
    "seed-bad-too-many-segments": seed([16], [512] * 127 + [1], header(T_IN), 64 * MIB),
    "seed-bad-too-many-out-segments": seed([16] + [512] * 127, [1], header(T_OUT), 64 * MIB),
    "seed-bad-discard-size": seed([16, 17], [1], header(T_DISCARD) + rng(0, 1) + b"\0"),
    "seed-bad-discard-short": seed([16, 15], [1], header(T_DISCARD) + rng(0, 1)[:15]),
    "seed-bad-discard-zero": seed([16, 16], [1], header(T_DISCARD) + rng(0, 0)),
    "seed-bad-discard-range": seed([16, 16], [1], header(T_DISCARD) + rng(MIB // 512 - 1, 2)),
    "seed-bad-discard-overflow": seed([16, 16], [1], header(T_DISCARD) + rng(2**64 // 512 - 1,
                                                                             2**32 - 1),
                                      2**64 - 1, 1),
    "seed-bad-discard-flags": seed([16, 16], [1], header(T_DISCARD) + rng(0, 1, 1)),
    "seed-bad-write-zeroes-flags": seed([16, 16], [1], header(T_WRITE_ZEROES) + rng(0, 1, 2)),
    "seed-bad-unknown-type": seed([16, 512], [1], header(7)),
    "seed-bad-unknown-type-high": seed([16], [1], header(0xFFFFFFFF)),
}


def main():
    write_seeds(OUT, SEEDS)


if __name__ == "__main__":
    main()
