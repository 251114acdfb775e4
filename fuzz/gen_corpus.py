#!/usr/bin/env python3
"""Writes the seed inputs of fuzz/corpus/virtq/ (the layout is described in fuzz_virtq.c).

Each seed is a queue header plus a small guest RAM image with rings built by a tiny
driver; run from anywhere: python3 fuzz/gen_corpus.py. Regression inputs that the
fuzzer found are kept beside the seeds under names starting with "regress-".
"""
import os
import struct

NEXT, WRITE, INDIRECT = 1, 2, 4
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "virtq")


class Ring:
    def __init__(self, size_sel, size, desc=0x100, avail=0x40, used=0x200, event_idx=False,
                 indirect=False, last_avail=0, used_idx=0, rounds=16, fill=4, fill_off=0, skip_validate=False):
        self.size = size
        self.size_sel = size_sel
        self.desc, self.avail, self.used = desc, avail, used
        self.flags = (1 if event_idx else 0) | (2 if indirect else 0) | (4 if skip_validate else 0)
        self.last_avail, self.used_idx = last_avail, used_idx
        self.rounds, self.fill, self.fill_off = rounds, fill, fill_off
        self.avail_idx = last_avail
        self.pokes = []
        self.ram = bytearray()

    def put(self, gpa, data):
        end = gpa + len(data)
        if len(self.ram) < end:
            self.ram.extend(b"\0" * (end - len(self.ram)))
        self.ram[gpa:end] = data

    def desc_at(self, table, i, addr, length, flags, nxt=0):
        self.put(table + 16 * i, struct.pack("<QIHH", addr, length, flags, nxt))

    def chain(self, table, first, nr, nw, length, buf=0x300):
        n = nr + nw
        for k in range(n):
            flags = (WRITE if k >= nr else 0) | (NEXT if k + 1 < n else 0)
            self.desc_at(table, first + k, buf + 0x20 * (first + k), length, flags, first + k + 1)
        return first

    def publish(self, head):
        self.put(self.avail + 4 + 2 * (self.avail_idx % self.size), struct.pack("<H", head))
        self.avail_idx = (self.avail_idx + 1) & 0xFFFF
        self.put(self.avail + 2, struct.pack("<H", self.avail_idx))

    def used_event(self, v):
        self.put(self.avail + 4 + 2 * self.size, struct.pack("<H", v))

    def poke(self, gpa, value):
        self.pokes.append(struct.pack("<HH", gpa, value))

    def bytes(self):
        # Keep the rings inside the image so that the seed is self-describing.
        self.put(self.used, b"\0" * (6 + 8 * self.size))
        self.put(self.avail, bytes(self.ram[self.avail:self.avail + 6 + 2 * self.size]).ljust(
            6 + 2 * self.size, b"\0"))
        hdr = struct.pack("<BBHHHHHBBBB", self.size_sel, self.flags, self.desc, self.avail,
                          self.used, self.last_avail, self.used_idx, self.rounds - 1,
                          len(self.pokes), self.fill // 16, self.fill_off)
        return hdr + b"".join(self.pokes) + bytes(self.ram)


def seeds():
    r = Ring(3, 8)
    r.publish(r.chain(r.desc, 0, 1, 0, 16))
    yield "single", r

    r = Ring(3, 8, fill=32, fill_off=5)
    r.publish(r.chain(r.desc, 0, 3, 2, 24))
    r.publish(r.chain(r.desc, 5, 1, 1, 8))
    yield "multi", r

    r = Ring(2, 4, indirect=True, fill=48)
    r.chain(0x800, 0, 2, 3, 16)
    r.desc_at(r.desc, 1, 0x800, 5 * 16, INDIRECT)
    r.publish(1)
    yield "indirect", r

    r = Ring(2, 4, indirect=True)
    r.desc_at(r.desc, 0, 0x300, 8, NEXT, 1)
    r.desc_at(r.desc, 1, 0x803, 32, INDIRECT)  # unaligned table after a direct buffer
    r.chain(0x803, 0, 1, 1, 8, buf=0x400)
    r.publish(0)
    yield "indirect-after-direct", r

    r = Ring(3, 8, event_idx=True, last_avail=0xFFFE, used_idx=0xFFFD)
    for k in range(4):
        r.publish(r.chain(r.desc, 2 * k, 1, 1, 8))
    r.used_event(0xFFFF)
    yield "event-idx-wrap", r

    r = Ring(1, 2, rounds=8)
    r.publish(r.chain(r.desc, 0, 0, 1, 8))
    # The driver adds the chain at descriptor 1 while the device runs.
    r.chain(r.desc, 1, 0, 1, 8)
    r.poke(r.avail + 4 + 2, 1)
    r.poke(r.avail + 2, 2)
    yield "pokes", r

    r = Ring(8, 256, desc=0x1000, avail=0x40, used=0x400, rounds=2)
    r.publish(r.chain(r.desc, 0, 128, 128, 4, buf=0x2000))
    yield "full-chain-256", r

    r = Ring(3, 8)
    r.desc_at(r.desc, 0, 0x300, 8, NEXT, 1)
    r.desc_at(r.desc, 1, 0x320, 8, NEXT, 0)
    r.publish(0)
    yield "bad-loop", r

    # One direct buffer plus a full 256-entry table: one segment too many.
    r = Ring(3, 8, indirect=True)
    r.desc_at(r.desc, 0, 0x300, 8, NEXT, 1)
    r.desc_at(r.desc, 1, 0x800, 16 * 256, INDIRECT)
    r.chain(0x800, 0, 256, 0, 1, buf=0x300)
    r.publish(0)
    yield "bad-too-many-segments", r

    r = Ring(3, 8)
    r.desc_at(r.desc, 0, 0x300, 0, NEXT, 1)
    r.desc_at(r.desc, 1, 0x320, 0, NEXT, 0)
    r.publish(0)
    yield "bad-empty-loop", r

    r = Ring(3, 8, indirect=True)
    r.desc_at(r.desc, 0, 0x800, 32, INDIRECT)
    r.desc_at(0x800, 0, 0x300, 8, NEXT, 1)
    r.desc_at(0x800, 1, 0x900, 16, INDIRECT)
    r.desc_at(0x900, 0, 0x320, 8, 0)
    r.publish(0)
    yield "bad-nested-indirect", r

    r = Ring(3, 8, indirect=True)
    r.desc_at(r.desc, 0, 0x800, 24, INDIRECT)
    r.publish(0)
    yield "bad-indirect-len", r

    r = Ring(3, 8, indirect=True)
    r.desc_at(r.desc, 0, 0x800, 32, INDIRECT)
    r.desc_at(0x800, 0, 0x300, 8, NEXT, 2)  # next past the 2-entry table
    r.desc_at(0x800, 2, 0x320, 8, 0)
    r.publish(0)
    yield "bad-indirect-next", r

    r = Ring(3, 8)  # INDIRECT without the feature
    r.chain(0x800, 0, 1, 0, 8)
    r.desc_at(r.desc, 0, 0x800, 16, INDIRECT)
    r.publish(0)
    yield "bad-indirect-not-negotiated", r

    r = Ring(3, 8)
    r.publish(8)
    yield "bad-head", r

    r = Ring(3, 8)
    r.chain(r.desc, 0, 1, 0, 8)
    r.put(r.avail + 2, struct.pack("<H", 9))
    yield "bad-avail-ahead", r

    r = Ring(3, 8)
    r.desc_at(r.desc, 0, 0x300, 8, WRITE | NEXT, 1)
    r.desc_at(r.desc, 1, 0x320, 8, 0)
    r.publish(0)
    yield "bad-read-after-write", r

    r = Ring(3, 8)
    r.desc_at(r.desc, 0, 0x300, 8, NEXT, 8)
    r.publish(0)
    yield "bad-next", r

    r = Ring(3, 8)
    r.desc_at(r.desc, 0, 0xFFF0, 0x20, 0)
    r.publish(0)
    yield "bad-addr-past-ram", r

    r = Ring(3, 8)
    r.desc_at(r.desc, 0, 0xFFFFFFFFFFFFFFF0, 0x20, WRITE)
    r.publish(0)
    yield "bad-addr-overflow", r

    r = Ring(12, 12, skip_validate=True)  # raw size 12: not a power of two, popped anyway
    r.publish(0)
    yield "bad-size", r

    r = Ring(3, 8, desc=0x108)  # misaligned descriptor table
    r.publish(r.chain(r.desc, 0, 1, 0, 8))
    yield "bad-align", r

    r = Ring(3, 8, used=0x202, skip_validate=True)  # misaligned used ring, popped anyway
    r.publish(r.chain(r.desc, 0, 1, 0, 8))
    yield "bad-align-unvalidated", r


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, ring in seeds():
        with open(os.path.join(OUT, "seed-" + name), "wb") as f:
            f.write(ring.bytes())


if __name__ == "__main__":
    main()
