"""Debian's stock bzImage booted with its payload decompressed by tern-vmm in the host
(the default) and through the kernel's own decompressor in the guest
(--no-host-decompress): both reach /init with the same /proc/cmdline. The host path
keeps KASLR: the kernel runs where tern-vmm's debug log says it placed it (_text in
/proc/kallsyms at the virtual offset, "Kernel code" in /proc/iomem at the physical
address), and with "nokaslr" at the link-time addresses. The boot times of both paths
are printed (no timed assertion: the lab's speed varies). The same kernel repacked as
gzip (a format slow enough for the decompressed-kernel cache) boots twice: a cache miss
that writes the cache, then a hit.
"""
import gzip
import os
import re
import shutil
import struct
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import debian  # noqa: E402
import initramfs  # noqa: E402
import ternlib  # noqa: E402

TEXT_LINKED = 0xffffffff81000000  # __START_KERNEL_map + LOAD_PHYSICAL_ADDR (16 MiB)
PHYS_LINKED = 0x1000000

INIT = initramfs.PROLOGUE + r"""
echo "CMDLINE $(cat /proc/cmdline)"
echo "TEXT $(grep ' _text$' /proc/kallsyms | cut -d' ' -f1)"
echo "CODE $(grep 'Kernel code' /proc/iomem | tr -d ' ' | cut -d- -f1)"
echo "UPTIME $(cut -d' ' -f1 /proc/uptime)"
echo "%s cpus=$(grep -c ^processor /proc/cpuinfo)"
poweroff -f
""" % initramfs.MARKER


def boot(extra, cmdline=debian.CMDLINE, log="", kernel=None, env=None):
    ternlib.need_kvm()
    args = ["--kernel", kernel or debian.kernel(), "--initrd", initramfs.build(INIT), "--cpus", "1",
            "--memory", "256", "--cmdline", cmdline, "--log-level", "debug"] + list(extra)
    t = time.monotonic()
    r = ternlib.run_vmm(args, timeout=300, env=env)
    r.wall = time.monotonic() - t
    with open(os.path.join(ternlib.OUT, "linux-hostdec-%s.log" % log), "w") as f:
        f.write(r.out + "\n--- stderr\n" + r.err)
    assert not r.timed_out, "boot timed out: %r" % r
    assert initramfs.MARKER in r.out and r.status == 0, "did not reach /init: %r" % r
    r.fields = dict(re.findall(r"^(CMDLINE|TEXT|CODE|UPTIME) ?(.*?)\r?$", r.out, re.M))
    return r


def report(name, r):
    up = float(r.fields.get("UPTIME") or 0)
    print("  %s: %.2f s from start to power-off, guest uptime at /init %.2f s, "
          "before the kernel's clock %.2f s" % (name, r.wall, up, r.wall - up), flush=True)


def placed(r):
    """The physical address and virtual offset tern-vmm's debug log says it chose."""
    m = re.search(r"physical 0x([0-9a-f]+), virtual offset 0x([0-9a-f]+), KASLR (\w+)", r.err)
    assert m, "no placement in the log: %r" % r
    return int(m.group(1), 16), int(m.group(2), 16), m.group(3)


def test_debian_host_decompress_same_kernel_and_cmdline():
    new = boot([], log="host")
    old = boot(["--no-host-decompress"], log="guest")
    assert "kernel decompressed in the host" in new.err, "host path not taken: %r" % new
    assert "kernel decompressed in the host" not in old.err, "old path not kept: %r" % old
    assert new.fields["CMDLINE"] == old.fields["CMDLINE"], \
        "cmdline differs: %r vs %r" % (new.fields["CMDLINE"], old.fields["CMDLINE"])
    phys, virt, kaslr = placed(new)
    assert kaslr == "on", "KASLR not kept: %r" % new
    assert int(new.fields["TEXT"], 16) == TEXT_LINKED + virt, \
        "_text %s, expected %#x: %r" % (new.fields["TEXT"], TEXT_LINKED + virt, new)
    assert int(new.fields["CODE"], 16) == phys, \
        "kernel code at %s, expected %#x: %r" % (new.fields["CODE"], phys, new)
    m = re.search(r"host decompression: .*", new.err)
    print("  " + (m.group(0) if m else "(no cost line)"), flush=True)
    report("host-decompressed", new)
    report("guest-decompressed (--no-host-decompress)", old)


def test_debian_host_decompress_nokaslr():
    r = boot([], cmdline=debian.CMDLINE + " nokaslr", log="nokaslr")
    phys, virt, kaslr = placed(r)
    assert (phys, virt, kaslr) == (PHYS_LINKED, 0, "off"), "placement %r: %r" % ((phys, virt), r)
    assert int(r.fields["TEXT"], 16) == TEXT_LINKED, "_text %s: %r" % (r.fields["TEXT"], r)
    assert int(r.fields["CODE"], 16) == PHYS_LINKED, "code at %s: %r" % (r.fields["CODE"], r)


def gzip_repacked():
    """Debian's bzImage with its payload recompressed with gzip (level 1: quick in the lab).
    Its own decompressor is still the LZ4 one, so only the host path can boot it."""
    out = os.path.join(ternlib.OUT, "vmlinuz-gzip-" + debian.version())
    if os.path.exists(out):
        return out
    with open(debian.elf(), "rb") as f:
        raw = f.read()
    with open(debian.kernel(), "rb") as f:
        img = bytearray(f.read())
    koff = ((img[0x1f1] or 4) + 1) * 512
    payload = gzip.compress(raw, 1, mtime=0)  # gzip's own trailer holds the size
    struct.pack_into("<II", img, 0x248, len(img) - koff, len(payload))
    with open(out + ".tmp", "wb") as f:
        f.write(bytes(img) + payload)
    os.rename(out + ".tmp", out)
    return out


def test_debian_gzip_repacked_boots_through_the_cache():
    k = gzip_repacked()
    cache = tempfile.mkdtemp(prefix="tern-kcache-")
    env = dict(os.environ, XDG_CACHE_HOME=cache)
    try:
        miss = boot([], kernel=k, env=env, log="gzip-miss")
        hit = boot([], kernel=k, env=env, log="gzip-hit")
        files = os.listdir(os.path.join(cache, "tern", "kernels"))
    finally:
        shutil.rmtree(cache)
    assert "(gzip) in" in miss.err and "cache miss" in miss.err, "no cache miss: %r" % miss
    assert "(gzip, cached) in" in hit.err and "cache hit" in hit.err, "no cache hit: %r" % hit
    assert len(files) == 1 and files[0].endswith(".vmlinux"), files
    assert miss.fields["CMDLINE"] == hit.fields["CMDLINE"] == debian.CMDLINE
    for name, r in (("gzip, cache miss", miss), ("gzip, cache hit", hit)):
        m = re.search(r"host decompression: hash.*", r.err)
        print("  %s: %s" % (name, m.group(0) if m else "(no cost line)"), flush=True)
        report(name, r)
