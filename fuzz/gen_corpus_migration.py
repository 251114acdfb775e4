#!/usr/bin/env python3
"""Writes the seed inputs of fuzz/corpus/migration_stream/ (the layout is described in
fuzz_migration_stream.c).

Each seed is a control byte, then the sections a destination receives after the stream's
header, built here from the layouts in src/vmstate/vmstate.h and migration.h: a whole
stream (RAM with data and zero runs, the device state, COMPLETE, REPORT, the end marker), on
plain and memfd-backed RAM; hellos, error messages, reports and COMPLETE sections, good and
bad; one RAM section per rule mig_ram_apply enforces; and streams the reader refuses (bad
CRC, reserved field, oversized, cut short). Run from anywhere:
python3 fuzz/gen_corpus_migration.py. Inputs that once found a bug are kept beside the
seeds under names starting with "regress-".
"""
import os
import struct
import zlib

from seeds import write_seeds

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "migration_stream")

END, MACHINE = 0, 1
HELLO, RAM, DEVICES, COMPLETE, READY, ERROR, PREPARED, RESUMED, REPORT = range(64, 73)
PAGE = 4096
DATA, ZERO = 0, 1

# Control byte (fuzz_migration_stream.c)
MEMFD = 1
FIX_CRCS = 2
MAX_4096 = 1 << 2
PAGES_1 = 3 << 4
PAGES_17 = 2 << 4


def section(tag, payload=b"", instance=0, version=1, reserved=0, length=None):
    h = struct.pack("<IIIIQ", tag, instance, version, reserved,
                    len(payload) if length is None else length)
    return h + payload + struct.pack("<I", zlib.crc32(h + payload))


def end():
    return section(END, version=0)


def run(first, count, kind, data=None):
    r = struct.pack("<QIB", first, count, kind)
    if kind == DATA:
        r += data if data is not None else page_bytes(first, count)
    return r


def page_bytes(first, count):
    return bytes(((first + i // PAGE) * 31 + i * 7) & 0xFF for i in range(count * PAGE))


def hello(protocol=1, page_size=PAGE, ram_size=1 << 20, cut=None, flags=None):
    """Without flags, the hello of the first protocol; with them, copy_storage's (u32 flags
    after the RAM size)."""
    p = struct.pack("<IIQ", protocol, page_size, ram_size)
    if flags is not None:
        p += struct.pack("<I", flags)
    return section(HELLO, p if cut is None else p[:cut])


def message(text, length=None):
    return section(ERROR, struct.pack("<I", len(text) if length is None else length) + text)


def report(downtime_us=12345, total_ms=6789, sent=1 << 30, rounds=5):
    return section(REPORT, struct.pack("<QQQI", downtime_us, total_ms, sent, rounds))


def state_file():
    """A small valid state file, as DEVICES carries (the header and CRCs of vmstate.h)."""
    h = b"TERNSTAT" + struct.pack("<IIQ", 1, 1, 0)
    h += struct.pack("<I", zlib.crc32(h))
    return h + section(MACHINE, struct.pack("<IQ", 1, 1 << 20)) + end()


def seed(ctrl, *sections):
    return bytes([ctrl]) + b"".join(sections)


WHOLE = [
    section(RAM, run(0, 2, DATA) + run(3, 8, ZERO) + run(255, 1, DATA)),
    section(RAM, run(11, 245, ZERO)),
    section(RAM, run(1, 1, DATA, b"\x00" * PAGE) + run(0, 1, ZERO)),
    section(DEVICES, state_file()),
    section(COMPLETE, b"\x01"),
    report(),
    end(),
]

SEEDS = {
    "seed-stream": seed(0, *WHOLE),
    "seed-stream-memfd": seed(MEMFD, *WHOLE),
    "seed-stream-fix-crcs": seed(MEMFD | FIX_CRCS, *WHOLE),
    # The most data that fits an input: 14 pages in one run.
    "seed-ram-big": seed(MEMFD, section(RAM, run(100, 14, DATA)), end()),
    "seed-hellos": seed(FIX_CRCS | MAX_4096,
                        hello(), hello(flags=0), hello(flags=1), hello(flags=2),
                        hello(flags=0x80000001), hello(ram_size=PAGE), hello(protocol=2),
                        hello(protocol=2, cut=4), hello(page_size=8192), hello(ram_size=0),
                        hello(ram_size=(1 << 20) + 1), hello(cut=15), hello(cut=0),
                        section(HELLO, struct.pack("<IIQ", 1, PAGE, 1 << 20), version=2),
                        section(HELLO, struct.pack("<IIQB", 1, PAGE, 1 << 20, 0))),
    "seed-messages": seed(FIX_CRCS,
                          message(b"disk 'root' cannot be opened here"),
                          message(b"a\tb\nc\x1b[31md\x7f\x01\r\xc3\xa9"),
                          message(b"x" * 1024), message(b"x" * 1025),
                          message(b"hello", length=10), message(b"hello", length=4),
                          message(b"ab\x00cd"), message(b""), section(ERROR, b"ab")),
    "seed-reports": seed(FIX_CRCS, report(), report(0, 0, 0, 0),
                         section(REPORT, report()[24:24 + 27]),
                         section(REPORT, struct.pack("<QQQI", 1, 2, 3, 4), version=2)),
    "seed-complete": seed(FIX_CRCS, section(COMPLETE, b"\x00"), section(COMPLETE, b"\x01"),
                          section(COMPLETE, b"\x02"), section(COMPLETE),
                          section(COMPLETE, b"\x01\x00"), section(READY), section(PREPARED),
                          section(RESUMED)),
    # One section per rule of mig_ram_apply, each refused whole, between valid ones.
    "seed-ram-refusals": seed(
        FIX_CRCS,
        section(RAM, run(254, 3, ZERO)),
        section(RAM, run(256, 1, DATA)),
        section(RAM, run(2**64 - 2, 5, ZERO)),
        section(RAM, run(2**64 - 2, 5, DATA)),
        section(RAM, run(1 << 52, 1, ZERO)),
        section(RAM, run(3, 0, ZERO)),
        section(RAM, run(3, 0, DATA)),
        section(RAM, run(0, 1, 7, b"") + b"\x00" * PAGE),
        section(RAM, run(0, 2, DATA, b"\x11" * (2 * PAGE - 1))),
        section(RAM, run(0, 257, DATA, b"\x11" * PAGE)),
        section(RAM, run(0, 1, ZERO)[:12]),
        section(RAM, run(0, 1, DATA) + struct.pack("<Q", 0)),
        section(RAM, run(0, 1, DATA) + run(4, 2, ZERO) + run(255, 2, ZERO)),
        section(RAM, run(0, 1, DATA), version=2),
        section(RAM, run(7, 1, DATA)),
        end()),
    "seed-ram-small-vm": seed(PAGES_1 | FIX_CRCS,
                              section(RAM, run(0, 1, DATA)), section(RAM, run(0, 2, ZERO)),
                              section(RAM, run(1, 1, ZERO)), end()),
    "seed-ram-17-pages": seed(PAGES_17 | MEMFD | FIX_CRCS,
                              section(RAM, run(16, 1, DATA) + run(0, 16, ZERO)),
                              section(RAM, run(10, 8, ZERO)), end()),
    # What the reader refuses: a flipped payload byte (CRCs left alone), a reserved field,
    # a section over max_payload, a stream cut mid-payload.
    "seed-bad-crc": seed(0, section(RAM, run(0, 1, ZERO)),
                         section(RAM, run(1, 1, ZERO))[:30] + b"\xff" +
                         section(RAM, run(1, 1, ZERO))[31:]),
    "seed-reserved": seed(FIX_CRCS, report(), section(RAM, run(0, 1, ZERO), reserved=1)),
    "seed-oversized": seed(MAX_4096, report(), section(RAM, run(0, 2, DATA))),
    "seed-oversized-huge": seed(0, section(RAM, length=(64 << 20) + 1)),
    "seed-cut": seed(0, report(), section(RAM, run(0, 1, DATA))[:1000]),
}

if __name__ == "__main__":
    for name, data in SEEDS.items():
        assert len(data) <= 1 + 60 * 1024, name
    write_seeds(OUT, SEEDS)
