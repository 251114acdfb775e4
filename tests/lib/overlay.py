"""Reads and makes tern's copy-on-write overlay files (docs/overlay.md) from the tests.

This is a second, independent reading of the documented format: the tests use it to
check what a guest wrote through an overlay from the host side, and to flatten an
overlay into a raw image for e2fsck. tern makes qcow2 overlays now and only reads (and
writes) the overlays that exist: create() makes one for the tests of that.
"""
import os
import struct
import zlib

MAGIC = b"TERNOVL1"
HEADER_SIZE = 4096


class Overlay:
    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            h = f.read(HEADER_SIZE)
        assert len(h) == HEADER_SIZE and h[:8] == MAGIC, "%s is not an overlay" % path
        (self.version, hsize, self.cluster_bits, flags, self.size, self.bitmap_offset,
         self.bitmap_bytes, self.data_offset, self.base_size, self.base_ino,
         self.base_mtime_sec, self.base_mtime_nsec, plen) = struct.unpack_from(
            "<IIIIQQQQQQqII", h, 8)
        assert struct.unpack_from("<I", h, HEADER_SIZE - 4)[0] == zlib.crc32(h[:HEADER_SIZE - 4])
        assert self.version == 1 and hsize == HEADER_SIZE and flags == 0
        self.base = h[88:88 + plen].decode()
        self.cluster = 1 << self.cluster_bits
        with open(path, "rb") as f:
            f.seek(self.bitmap_offset)
            self.bitmap = f.read(self.bitmap_bytes)

    def here(self, cluster):
        """Is the cluster's data in the overlay file (not the base)?"""
        return bool(self.bitmap[cluster >> 3] & (1 << (cluster & 7)))

    def clusters_here(self):
        n = (self.size + self.cluster - 1) // self.cluster
        return [c for c in range(n) if self.here(c)]

    def read(self, off, length):
        """What the guest sees at [off, off+length)."""
        out = bytearray()
        with open(self.path, "rb") as ovl, open(self.base, "rb") as base:
            while length > 0:
                c = off // self.cluster
                n = min(length, (c + 1) * self.cluster - off)
                if self.here(c):
                    ovl.seek(self.data_offset + off)
                    piece = ovl.read(n)
                else:
                    base.seek(off)
                    piece = base.read(n)
                out += piece + bytes(n - len(piece))
                off += n
                length -= n
        return bytes(out)

    def flatten(self, dest):
        """Writes the guest's view as a sparse raw image at dest."""
        with open(dest, "wb") as out:
            out.truncate(self.size)
            step = self.cluster * 16
            for off in range(0, self.size, step):
                data = self.read(off, min(step, self.size - off))
                if data.count(0) != len(data):
                    out.seek(off)
                    out.write(data)


def create(path, base, cluster_bits=16):
    """Makes an overlay at path (which must not exist) in front of base, as tern did."""
    st = os.stat(base)
    size = st.st_size & ~511
    cluster = 1 << cluster_bits
    clusters = (size + cluster - 1) // cluster
    bitmap_bytes = ((clusters + 7) // 8 + 4095) & ~4095
    data_offset = (4096 + bitmap_bytes + cluster - 1) & ~(cluster - 1)
    bpath = os.path.abspath(base).encode()
    h = bytearray(HEADER_SIZE)
    h[:8] = MAGIC
    struct.pack_into("<IIIIQQQQQQqII", h, 8, 1, HEADER_SIZE, cluster_bits, 0, size, 4096,
                     bitmap_bytes, data_offset, st.st_size, st.st_ino,
                     st.st_mtime_ns // 10**9, st.st_mtime_ns % 10**9, len(bpath))
    h[88:88 + len(bpath)] = bpath
    struct.pack_into("<I", h, HEADER_SIZE - 4, zlib.crc32(bytes(h[:HEADER_SIZE - 4])))
    with open(path, "xb") as f:
        f.write(h)
        f.truncate(data_offset + size)


def is_overlay(path):
    with open(path, "rb") as f:
        return f.read(8) == MAGIC


def allocated(path):
    return os.stat(path).st_blocks * 512
