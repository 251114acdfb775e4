"""virtio-blk and virtio-rng on virtio-mmio, driven by the minimal polling driver of
guest/tiny/virtio.c: valid I/O round trips (checked from the host side in the image
file too), feature negotiation refusals, then malformed chains and queues that must
leave tern-vmm running and the device NEEDS_RESET, with valid I/O again after a
reset, and resets while requests are still in the disk engine."""
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
import overlay  # noqa: E402
import ternlib  # noqa: E402
import tiny  # noqa: E402

SECTOR = 512
DISK_SECTORS = 64
BIG_SECTORS = 8192  # 4 MiB: mode=hostile and mode=inflight write 256 KiB chunks from 1 MiB
RO_SECTORS = 8
RO_TAG = 0x55  # RO_TAG in guest/tiny/virtio.c
DISK_ID = "tern-vtest-0"

# The cases of mode=hostile, in the guest's order.
HOSTILE = ["loop", "loop-tail", "next-oob", "len-max", "past-ram", "nested-indirect",
           "avail-ahead", "no-status", "head-oob", "indirect-len", "write-then-read",
           "ring-past-ram", "ring-misaligned", "qnum-odd", "qnum-big", "bad-after-good",
           "rng-loop", "rng-past-ram"]


def pattern(sector, tag):
    """What the guest writes to a sector (pattern() in guest/tiny/virtio.c)."""
    return bytes((i * 31 + sector * 7 + tag) & 0xff for i in range(SECTOR))


def make_image(path, sectors, tag=None):
    """A zeroed (sparse) image, or one whose sector s holds pattern(s, tag)."""
    with open(path, "wb") as f:
        if tag is None:
            f.truncate(sectors * SECTOR)
            return
        for s in range(sectors):
            f.write(pattern(s, tag))


def read_sector(path, sector):
    with open(path, "rb") as f:
        f.seek(sector * SECTOR)
        return f.read(SECTOR)


def mmio(*devices):
    args = ["--virtio-transport", "mmio"]
    for d in devices:
        args += ["--rng"] if d == "rng" else ["--disk", d]
    return args


def run_io(evidx, disk_opts="cache=writeback", loop_device=False, debug=False):
    with tempfile.TemporaryDirectory(prefix="tern-virtio-") as tmp:
        disk = os.path.join(tmp, "disk.img")
        ro = os.path.join(tmp, "ro.img")
        make_image(disk, DISK_SECTORS)
        make_image(ro, RO_SECTORS, RO_TAG)
        ro_before = open(ro, "rb").read()
        s = 5
        cmdline = "mode=io sectors=%d sector=%d diskid=%s" % (DISK_SECTORS, s, DISK_ID)
        if evidx:
            cmdline += " evidx=1"
        if "cache=none" in disk_opts:
            cmdline += " flush=0"
        target = disk
        if loop_device:
            # A host block device: the image behind a loop device.
            p = subprocess.run(["losetup", "--find", "--show", disk], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
            if p.returncode != 0:
                raise ternlib.Missing("no loop device: %s" % p.stderr.decode().strip())
            target = p.stdout.decode().strip()
        try:
            r = tiny.run("virtio", cmdline=cmdline, extra=mmio(
                "path=%s,%s,id=%s" % (target, disk_opts, DISK_ID),
                "path=%s,readonly=on" % ro, "rng") + (["--log-level", "debug"] if debug else []))
        finally:
            if loop_device:
                subprocess.run(["losetup", "-d", target])
        tiny.check_ok("virtio", r)
        assert ("tiny: disk: id '%s'" % DISK_ID) in r.out, r
        # The guest's writes are in the image at the right offsets, and nothing else is.
        assert read_sector(disk, s) == pattern(s, 0xa0), "sector %d not written\n%r" % (s, r)
        for t in (s + 1, s + 2):
            assert read_sector(disk, t) == pattern(t, 0xb0), "sector %d not written\n%r" % (t, r)
        for t in list(range(0, s)) + list(range(s + 3, DISK_SECTORS)):
            assert read_sector(disk, t) == bytes(SECTOR), "sector %d changed\n%r" % (t, r)
        assert os.path.getsize(disk) == DISK_SECTORS * SECTOR, r
        assert open(ro, "rb").read() == ro_before, "the read-only image changed\n%r" % r
        assert "needs reset" not in r.err, r
        # The guest's refused negotiations were noticed (and survived).
        assert "DRIVER_OK without FEATURES_OK" in r.err, r
        # Each queue's kick is a KVM ioeventfd (served by the event loop, no exit to the
        # vCPU thread); tern-vmm says so at debug level for any queue where KVM refused.
        assert not debug or "kicks exit to the vCPU" not in r.err, r
        return r


def test_blk_rng_round_trips():
    run_io(evidx=False, debug=True)


def test_blk_rng_round_trips_event_idx():
    run_io(evidx=True)


def test_blk_on_host_block_device():
    run_io(evidx=False, loop_device=True)


def test_blk_cache_none_direct_io():
    run_io(evidx=False, disk_opts="cache=none")


def test_blk_thread_pool_engine():
    run_io(evidx=True, disk_opts="cache=writeback,aio=threads")


def create_overlay(ovl, base):
    """A tern overlay: tern makes qcow2 now, and still opens the overlays it made before."""
    overlay.create(ovl, base)


def create_qcow2(path, base):
    r = subprocess.run([ternlib.vmm_path(), "--create-overlay", "%s,base=%s" % (path, base)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    assert r.returncode == 0, "--create-overlay %s: %r" % (path, r)


def qemu_img(*args):
    r = subprocess.run(["qemu-img"] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60)
    return r.returncode, r.stdout.decode() + r.stderr.decode()


def run_io_keeping_bases(cache, base, ro_base, disk, ro_disk):
    """mode=io on disk (written at sectors s..s+2) and ro_disk, both in front of the base
    images, which must not change. Returns s and the run."""
    before = open(base, "rb").read(), open(ro_base, "rb").read()
    s = 5
    cmdline = "mode=io sectors=%d sector=%d diskid=%s" % (DISK_SECTORS, s, DISK_ID)
    if cache == "none":
        cmdline += " flush=0"
    r = tiny.run("virtio", cmdline=cmdline, extra=mmio(disk, ro_disk, "rng"))
    tiny.check_ok("virtio", r)
    assert (open(base, "rb").read(), open(ro_base, "rb").read()) == before, \
        "a base image changed\n%r" % r
    return s, r


def run_io_on_qcow2(cache, aio=None):
    """mode=io with the disk a qcow2 overlay tern made in front of a patterned raw base, and
    the read-only disk a qcow2 chain qemu-img made (qcow2 over qcow2 over raw), both opened
    by format=auto: the guest's writes land in the overlay only; qemu-img reads them back,
    every other sector through to the base, and `qemu-img check` finds nothing wrong. aio:
    the engine of both disks (default: io_uring with its thread pool, where the kernel has
    io_uring)."""
    engine = ",aio=%s" % aio if aio else ""
    base_tag = 0x33
    with tempfile.TemporaryDirectory(prefix="tern-virtio-qcow2-") as tmp:
        base, ro_base = os.path.join(tmp, "base.img"), os.path.join(tmp, "ro-base.img")
        top, ro_mid, ro_top = (os.path.join(tmp, n) for n in ("disk.qcow2", "ro-mid.qcow2",
                                                              "ro.qcow2"))
        make_image(base, DISK_SECTORS, base_tag)
        make_image(ro_base, RO_SECTORS, RO_TAG)
        create_qcow2(top, base)
        # Relative backing names, resolved against the image's directory as QEMU does.
        for args in (("-b", "ro-base.img", "-F", "raw", ro_mid),
                     ("-b", "ro-mid.qcow2", "-F", "qcow2", ro_top)):
            rc, out = qemu_img("create", "-q", "-f", "qcow2", *args)
            assert rc == 0, out
        s, r = run_io_keeping_bases(cache, base, ro_base,
                                    "path=%s,cache=%s,id=%s%s" % (top, cache, DISK_ID, engine),
                                    "path=%s,readonly=on%s" % (ro_top, engine))
        rc, out = qemu_img("check", top)
        assert rc == 0, "qemu-img check %s: %s" % (top, out)
        rc, out = qemu_img("info", "--output=json", "--backing-chain", top)
        assert rc == 0 and '"backing-filename": "%s"' % base in out, out
        flat = os.path.join(tmp, "flat.img")
        rc, out = qemu_img("convert", "-O", "raw", top, flat)
        assert rc == 0, out
        want = {s: pattern(s, 0xa0), s + 1: pattern(s + 1, 0xb0), s + 2: pattern(s + 2, 0xb0)}
        for t in range(DISK_SECTORS):
            assert read_sector(flat, t) == want.get(t, pattern(t, base_tag)), \
                "sector %d of the qcow2 overlay as qemu-img reads it\n%r" % (t, r)
        rc, out = qemu_img("compare", ro_top, ro_base)
        assert rc == 0, "the read-only chain was written: %s" % out
        assert "needs reset" not in r.err, r


def test_blk_on_qcow2_chains():
    run_io_on_qcow2("writeback")


def test_blk_on_qcow2_chains_cache_none():
    run_io_on_qcow2("none")


def test_blk_on_qcow2_chains_threads():
    run_io_on_qcow2("writeback", aio="threads")


def test_blk_on_qcow2_chains_io_uring():
    run_io_on_qcow2("writeback", aio="io_uring")


def run_io_on_overlays(cache):
    """mode=io with both disks overlays in front of patterned bases: the guest's writes
    land in the overlay only, every other sector reads through to the base."""
    base_tag = 0x33
    with tempfile.TemporaryDirectory(prefix="tern-virtio-ovl-") as tmp:
        base, ro_base = os.path.join(tmp, "base.img"), os.path.join(tmp, "ro-base.img")
        ovl, ro_ovl = os.path.join(tmp, "disk.ovl"), os.path.join(tmp, "ro.ovl")
        make_image(base, DISK_SECTORS, base_tag)
        make_image(ro_base, RO_SECTORS, RO_TAG)
        create_overlay(ovl, base)
        create_overlay(ro_ovl, ro_base)
        s, r = run_io_keeping_bases(
            cache, base, ro_base, "path=%s,format=overlay,cache=%s,id=%s" % (ovl, cache, DISK_ID),
            "path=%s,format=overlay,readonly=on" % ro_ovl)
        o = overlay.Overlay(ovl)
        assert o.base == os.path.realpath(base) and o.size == DISK_SECTORS * SECTOR, vars(o)
        # 64 sectors are one (short) cluster: the first write copied it up.
        assert o.clusters_here() == [0], o.clusters_here()
        assert overlay.Overlay(ro_ovl).clusters_here() == [], "the read-only overlay was written"
        want = {s: pattern(s, 0xa0), s + 1: pattern(s + 1, 0xb0), s + 2: pattern(s + 2, 0xb0)}
        for t in range(DISK_SECTORS):
            got = o.read(t * SECTOR, SECTOR)
            assert got == want.get(t, pattern(t, base_tag)), "sector %d through the overlay\n%r" % (t, r)
        assert "needs reset" not in r.err, r


def test_blk_on_overlays():
    run_io_on_overlays("writeback")


def test_blk_on_overlays_cache_none():
    run_io_on_overlays("none")


def test_overlay_usage_errors():
    """--create-overlay and format=overlay refusals: exit 2, the reason named, nothing made."""
    with tempfile.TemporaryDirectory(prefix="tern-virtio-ovl-") as tmp:
        base, ovl = os.path.join(tmp, "base.img"), os.path.join(tmp, "disk.ovl")
        make_image(base, DISK_SECTORS, 0x33)

        def usage(args, *words):
            r = subprocess.run([ternlib.vmm_path()] + args, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=30)
            err = r.stderr.decode()
            assert r.returncode == 2, "%r: exit %d, %s" % (args, r.returncode, err)
            for w in words:
                assert w in err, "%r: %r not in %r" % (args, w, err)

        usage(["--create-overlay", ovl], "OVERLAY,base=IMAGE")
        usage(["--create-overlay", "%s,base=%s/none" % (ovl, tmp)], "none", "No such file")
        assert not os.path.exists(ovl)
        create_qcow2(ovl, base)
        usage(["--create-overlay", "%s,base=%s" % (ovl, base)], ovl, "File exists")
        os.unlink(ovl)
        create_overlay(ovl, base)
        # A raw image given as an overlay, an overlay given with io_uring.
        r = tiny.run("virtio", cmdline="mode=io", extra=mmio("path=%s,format=overlay" % base))
        assert r.status == 2 and "not a tern overlay" in r.err, r
        r = tiny.run("virtio", cmdline="mode=io",
                     extra=mmio("path=%s,format=overlay,aio=io_uring" % ovl))
        assert r.status == 2 and "aio=threads" in r.err, r
        # The base changed after the overlay was made: refused, named.
        with open(base, "r+b") as f:
            f.seek(512)
            f.write(b"changed")
        r = tiny.run("virtio", cmdline="mode=io", extra=mmio("path=%s,format=overlay" % ovl))
        assert r.status == 2 and "changed after the overlay was made" in r.err, r
        # qcow2: a raw image given as qcow2, a missing backing file (named with the
        # chain), a bad format name.
        r = tiny.run("virtio", cmdline="mode=io", extra=mmio("path=%s,format=qcow2" % base))
        assert r.status == 2 and base in r.err and "magic" in r.err, r
        q = os.path.join(tmp, "disk.qcow2")
        create_qcow2(q, base)
        os.unlink(base)
        r = tiny.run("virtio", cmdline="mode=io", extra=mmio("path=%s" % q))
        assert r.status == 2 and q in r.err and base in r.err, r
        r = tiny.run("virtio", cmdline="mode=io", extra=mmio("path=%s,format=vmdk" % q))
        assert r.status == 2 and "auto, raw, qcow2 or overlay" in r.err, r


def test_hostile_chains_need_reset_and_recover():
    with tempfile.TemporaryDirectory(prefix="tern-virtio-") as tmp:
        disk = os.path.join(tmp, "disk.img")
        make_image(disk, BIG_SECTORS)
        s = 7
        r = tiny.run("virtio", cmdline="mode=hostile sector=%d" % s,
                     extra=mmio("path=%s" % disk, "rng"))
        for name in HOSTILE:
            assert ("tiny: case %s: needs reset" % name) in r.out, \
                "case %s: no NEEDS_RESET: %s\n%r" % (name, tiny.describe(r), r)
            assert ("tiny: case %s: recovered" % name) in r.out, \
                "case %s: no recovery: %s\n%r" % (name, tiny.describe(r), r)
        # Exit 0 came through the debug port: the VMM lived through every case.
        tiny.check_ok("virtio", r)
        warnings = [line for line in r.err.splitlines() if "device needs reset" in line]
        assert len(warnings) == len(HOSTILE), "expected one warning per case:\n%r" % r
        assert any("malformed" in w for w in warnings), r
        # The last recovery round trip is on disk.
        last = [line for line in r.out.splitlines() if line.startswith("tiny: last tag 0x")]
        assert last, r
        tag = int(last[0].split("0x")[1], 16)
        assert read_sector(disk, s) == pattern(s, tag), "sector %d\n%r" % (s, r)


def run_inflight(disk_opts):
    with tempfile.TemporaryDirectory(prefix="tern-virtio-") as tmp:
        disk = os.path.join(tmp, "disk.img")
        make_image(disk, BIG_SECTORS)
        s = 9
        r = tiny.run("virtio", cmdline="mode=inflight sector=%d rounds=4" % s,
                     extra=mmio("path=%s,%s" % (disk, disk_opts)))
        bugs = tiny.lines(r, "round")
        tiny.check_ok("virtio", r)
        assert not [b for b in bugs if "BUG" in b], r
        assert read_sector(disk, s) == pattern(s, 0x20 + 3), "sector %d\n%r" % (s, r)
        assert "needs reset" not in r.err, r


def test_reset_with_requests_in_flight():
    run_inflight("cache=none")


def test_reset_with_requests_in_flight_threads():
    run_inflight("cache=none,aio=threads")
