"""Debian's stock cloud kernel (linux-image-cloud-amd64), the kernel the real-kernel
tests boot: as the bzImage Debian ships, or as the ELF vmlinux inside it (for the PVH
and 64-bit-entry boots), with a busybox initramfs that loads the modules a test needs
(virtio_pci, virtio_blk, virtio_net, vsock ... are modules in this kernel)."""
import glob
import os
import struct
import subprocess

import initramfs
import kmod
import ternlib

# A stock boot. nowatchdog: in the lab a guest vCPU can wait seconds for the lab's
# one CPU, which the soft-lockup detector would report (with backtraces) as a hang.
CMDLINE = "console=ttyS0 panic=-1 quiet nowatchdog"


def kernel():
    k = sorted(glob.glob("/boot/vmlinuz-*-cloud-amd64"))
    if not k:
        raise ternlib.Missing("linux-image-cloud-amd64 is not installed (scripts/setup installs it)")
    return k[-1]


def version(k=None):
    return os.path.basename(k or kernel())[len("vmlinuz-"):]


def elf():
    """The ELF vmlinux inside the bzImage (its payload, LZ4 here), extracted once per
    kernel into tests/out/: it carries the PVH note (XEN_ELFNOTE_PHYS32_ENTRY)."""
    k = kernel()
    out = os.path.join(ternlib.OUT, "vmlinux-" + version(k))
    if os.path.exists(out):
        return out
    with open(k, "rb") as f:
        img = f.read()
    setup_sects = img[0x1f1] or 4
    offset, length = struct.unpack_from("<II", img, 0x248)  # payload_offset, payload_length
    payload = img[(setup_sects + 1) * 512 + offset:][:length]
    assert payload[:4] == b"\x02\x21\x4c\x18", "%s: payload is not LZ4 (legacy frame)" % k
    want = struct.unpack("<I", payload[-4:])[0]  # the kernel build appends the inflated size
    # lz4 reads the trailing size as a next frame it cannot parse: exit 1 with every
    # byte written, so the length is what says it worked.
    p = subprocess.run(["lz4", "-d", "-c"], input=payload, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    assert len(p.stdout) == want and p.stdout[:4] == b"\x7fELF", \
        "lz4 gave %d bytes (want %d): %s" % (len(p.stdout), want, p.stderr.decode(errors="replace"))
    with open(out + ".tmp", "wb") as f:
        f.write(p.stdout)
    os.rename(out + ".tmp", out)
    return out


def initrd(body, modules=(), files=None):
    """A busybox initramfs whose /init loads MODULES (and what they need) from the
    kernel's tree, printing "MODFAIL name" for one that fails, then runs BODY."""
    try:
        mods = kmod.module_order(version(), modules)
    except kmod.NoModule as e:
        raise ternlib.Missing(str(e))
    all_files = {"/modules/%s.ko" % n: p for n, p in mods}
    all_files.update(files or {})
    load = "for m in %s; do insmod /modules/$m.ko || echo \"MODFAIL $m\"; done\n" % \
        " ".join(n for n, _ in mods) if mods else ""
    return initramfs.build(initramfs.PROLOGUE + load + body, all_files)
