#!/usr/bin/env python3
"""Writes the seed inputs of fuzz/corpus/vmstate/ (the layout is described in fuzz_vmstate.c).

Each seed is a control byte, an 8-byte cursor pattern, then a state file built here from the
layout in src/vmstate/vmstate.h: valid files (empty, a small snapshot, every known tag, many
sections, the largest section that fits a seed) and one file per rule the parser enforces.
The rejections that sit behind a CRC set control bit 0, so the harness fixes the CRCs and the
parser reaches the rule. Run from anywhere: python3 fuzz/gen_corpus_vmstate.py. Inputs that
once found a bug are kept beside the seeds under names starting with "regress-".
"""
import os
import struct
import zlib

from seeds import write_seeds

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "vmstate")

END, MACHINE, MEMORY, VCPU, IRQCHIP, PIT, CLOCK = 0, 1, 2, 3, 4, 5, 6
SERIAL, I8042, RTC, PCI = 16, 17, 18, 19
VIRTIO, VIRTIO_BLK, VIRTIO_NET, VIRTIO_VSOCK, VIRTIO_RNG = 32, 33, 34, 35, 36
FIX_CRCS = 1


def header(version=1, arch=1, flags=0, magic=b"TERNSTAT"):
    h = magic + struct.pack("<IIQ", version, arch, flags)
    return h + struct.pack("<I", zlib.crc32(h))


def section(tag, instance=0, version=1, payload=b"", reserved=0, length=None):
    h = struct.pack("<IIIIQ", tag, instance, version, reserved,
                    len(payload) if length is None else length)
    return h + payload + struct.pack("<I", zlib.crc32(h + payload))


def end():
    return section(END, 0, 0)


def state(*sections):
    return header() + b"".join(sections) + end()


def seed(f, ctrl=0, pattern=0x0123456789ABCDEF):
    return struct.pack("<BQ", ctrl, pattern) + f


SAMPLE = [
    section(MACHINE, 0, 1, struct.pack("<IQ", 2, 256 << 20)),
    section(VCPU, 0, 2, struct.pack("<QB", 0xFFF0, 0)),
    section(VCPU, 1, 2, struct.pack("<QB", 0xFFF1, 1)),
    section(SERIAL, 0, 1),
]

ALL_TAGS = [
    section(tag, i % 3, 1 + i % 2, bytes((i * 37 + j) & 0xFF for j in range(i * 5)))
    for i, tag in enumerate([MACHINE, MEMORY, VCPU, IRQCHIP, PIT, CLOCK, SERIAL, I8042, RTC,
                             PCI, VIRTIO, VIRTIO_BLK, VIRTIO_NET, VIRTIO_VSOCK, VIRTIO_RNG])
]

# Booleans (0/1 and one 2), u16/u32/u64 boundaries: what the cursor walk decodes.
TYPES = section(RTC, 0, 1, bytes([0, 1, 2, 0xFF]) + struct.pack("<HIQ", 0xFFFF, 0xFFFFFFFF,
                                                                  0xFFFFFFFFFFFFFFFF))

SEEDS = {
    # Valid files.
    "seed-empty": seed(state()),
    "seed-sample": seed(state(*SAMPLE)),
    "seed-sample-bools": seed(state(*SAMPLE), pattern=0x4444444444444444),
    "seed-sample-u64-then-done": seed(state(*SAMPLE), pattern=0x7373737373737373),
    "seed-all-tags": seed(state(*ALL_TAGS)),
    "seed-all-tags-rest": seed(state(*ALL_TAGS), pattern=0x6666666666666666),
    "seed-types": seed(state(TYPES), pattern=0x0321044440000000),
    "seed-unknown-tag": seed(state(section(1000, 7, 9, b"\x2a\0\0\0"))),
    "seed-many-sections": seed(state(*[section(VIRTIO, i, 1, bytes([i])) for i in range(120)])),
    "seed-big-section": seed(state(section(VIRTIO_NET, 0, 1, bytes(range(256)) * 12))),
    "seed-small-err": seed(state(*SAMPLE)[:-1], ctrl=2),
    "seed-no-err": seed(state(*SAMPLE)[:-1], ctrl=4),
    "seed-err-13": seed(state(*SAMPLE)[:-1], ctrl=6),
    # Rejections in the header.
    "seed-bad-short": seed(header()[:20]),
    "seed-bad-magic": seed(header(magic=b"TERNSTAX") + end()),
    "seed-bad-version": seed(header(version=2) + end()),
    "seed-bad-arch": seed(header(arch=2) + end()),
    "seed-bad-flags": seed(header(flags=1) + end()),
    "seed-bad-header-crc": seed(header()[:24] + b"\0\0\0\0" + end()),
    # Rejections in the sections.
    "seed-bad-no-end": seed(header() + b"".join(SAMPLE)),
    "seed-bad-short-section-header": seed(header() + SAMPLE[0][:10]),
    "seed-bad-truncated-payload": seed(header() + SAMPLE[0][:30]),
    "seed-bad-section-crc": seed(header() + SAMPLE[0][:-1] + b"\0" + end()),
    "seed-bad-reserved": seed(state(section(PIT, reserved=1)), FIX_CRCS),
    "seed-bad-oversized": seed(state(section(PIT, payload=b"x" * 8, length=(64 << 20) + 1)),
                               FIX_CRCS),
    "seed-bad-length-wraps": seed(state(section(PIT, payload=b"x" * 8, length=2**64 - 3)),
                                  FIX_CRCS),
    "seed-bad-length-past-end": seed(state(section(PIT, payload=b"x" * 8, length=1000)),
                                     FIX_CRCS),
    "seed-bad-duplicate": seed(state(*SAMPLE, SAMPLE[1]), FIX_CRCS),
    "seed-bad-duplicate-unknown": seed(state(section(99, 5), section(98, 5), section(99, 5))),
    "seed-bad-end-payload": seed(header() + section(END, 0, 0, b"\0")),
    "seed-bad-end-instance": seed(header() + section(END, 1, 0)),
    "seed-bad-end-version": seed(header() + section(END, 0, 1)),
    "seed-bad-trailing": seed(state(*SAMPLE) + b"\0"),
    "seed-bad-two-ends": seed(state(*SAMPLE) + end()),
    "seed-bad-end-in-middle": seed(header() + SAMPLE[0] + end() + SAMPLE[1] + end()),
}


def main():
    write_seeds(OUT, SEEDS)


if __name__ == "__main__":
    main()
