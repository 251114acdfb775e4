"""tern img info|create|commit|convert|resize (docs/disks.md), checked against qemu-img and qemu-io,
QEMU's own reader and writer of qcow2: what tern makes, qemu-img reads and checks clean;
what qemu-io writes, tern commits and converts byte for byte. No VM runs here.
"""
import fcntl
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
import overlay  # noqa: E402
import qcow2img  # noqa: E402
import ternlib  # noqa: E402

TERN = os.path.join(ternlib.BUILD, "tern")
MIB = 1 << 20


def tern(*args):
    r = subprocess.run([TERN] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=120,
                       env={k: v for k, v in os.environ.items() if k != "TERN_CONNECT"})
    return r.returncode, r.stdout.decode(), r.stderr.decode()


def qemu_io(path, *cmds, fmt="qcow2"):
    args = ["qemu-io", "-f", fmt]
    for c in cmds:
        args += ["-c", c]
    r = subprocess.run(args + [path], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    assert r.returncode == 0 and b"error" not in r.stdout.lower(), r.stdout


def patterned(path, size):
    with open(path, "wb") as f:
        for i in range(size // 4096):
            f.write(bytes([(i * 7 + 1) & 0xff]) * 4096)


def test_create_and_info():
    with tempfile.TemporaryDirectory(prefix="tern-img-") as d:
        a = os.path.join(d, "a.qcow2")
        rc, out, err = tern("img", "create", a, "--size", "8M", "--cluster-size", "4096")
        assert rc == 0 and "Created" in out, (rc, out, err)
        assert qcow2img.check(a)[0] == 0, qcow2img.check(a)
        i = qcow2img.info(a)
        assert i["format"] == "qcow2" and i["virtual-size"] == 8 * MIB, i
        assert i["cluster-size"] == 4096, i
        base = os.path.join(d, "base.img")
        patterned(base, 4 * MIB)
        top = os.path.join(d, "top.qcow2")
        rc, out, err = tern("img", "create", top, "--backing", base, "--lazy-refcounts")
        assert rc == 0, (out, err)
        i = qcow2img.info(top)
        assert i["virtual-size"] == 4 * MIB and i["backing-filename-format"] == "raw", i
        assert qcow2img.backing(top) == os.path.realpath(base), i
        rc, out, err = tern("img", "info", top, "--json")
        assert rc == 0, err
        j = json.loads(out)
        assert (j["format"], j["virtual_size"], j["lazy_refcounts"]) == ("qcow2", 4 * MIB, True), j
        assert [(b["path"], b["format"]) for b in j["backing_chain"]] == [(base, "raw")], j
        rc, out, err = tern("img", "info", top)
        assert rc == 0 and "backing file: %s" % base in out and "virtual size: 4 MiB" in out, out


def test_commit_writes_the_overlay_into_its_base():
    with tempfile.TemporaryDirectory(prefix="tern-img-") as d:
        base, top = os.path.join(d, "base.img"), os.path.join(d, "top.qcow2")
        patterned(base, 4 * MIB)
        assert tern("img", "create", top, "--backing", base)[0] == 0
        qemu_io(top, "write -P 0xab 65536 131072", "write -z 1048576 65536",
                "write -P 0xcd 3145728 512")
        want = os.path.join(d, "want.img")
        qcow2img.flatten(top, want)
        # A VM on the base (a read lock) stops the commit, which changes nothing.
        with open(base, "rb") as held:
            fcntl.lockf(held, fcntl.LOCK_SH)
            rc, out, err = tern("img", "commit", top)
            assert rc == 1 and "locked" in err, (rc, out, err)
        assert open(want, "rb").read() != open(base, "rb").read()
        held_before = qcow2img.allocated(top)
        rc, out, err = tern("img", "commit", top, "--json")
        j = json.loads(out) if rc == 0 else {}
        assert rc == 0 and j["base"] == base and j["emptied"] is True, (out, err)
        assert open(want, "rb").read() == open(base, "rb").read(), "the base after commit"
        assert qcow2img.read(top, 0, 4 * MIB) == open(want, "rb").read(), "the overlay after"
        assert qcow2img.check(top)[0] == 0, qcow2img.check(top)
        # Emptied, as qemu-img commit leaves it: every range reads through to the base
        # (data and zero clusters alike), and the data clusters' space went back.
        m = json.loads(qcow2img.qemu_img("map", "--output=json", "--image-opts",
                                         qcow2img.unlocked(top))[1])
        assert [e for e in m if e["depth"] == 0] == [], m
        assert qcow2img.allocated(top) <= held_before - 128 * 1024, \
            (held_before, qcow2img.allocated(top))
        # --keep leaves the overlay's own clusters where they are.
        qemu_io(top, "write -P 0xef 2097152 65536")
        rc, out, err = tern("img", "commit", top, "--keep")
        assert rc == 0 and "keeps its own copy" in out, (rc, out, err)
        assert qcow2img.here(top) == [(2097152, 65536)], qcow2img.here(top)
        with open(base, "rb") as f:
            f.seek(2097152)
            assert f.read(65536) == b"\xef" * 65536
        # Not a qcow2 overlay: refused, named.
        rc, out, err = tern("img", "commit", base)
        assert rc == 2 and "backing file" in err, (rc, err)


def test_convert_reads_every_format():
    with tempfile.TemporaryDirectory(prefix="tern-img-") as d:
        src = os.path.join(d, "src.qcow2")
        qcow2img.qemu_img("create", "-q", "-f", "qcow2", "-o", "cluster_size=65536", src, "6M")
        qemu_io(src, "write -P 0x11 0 1M", "write -P 0x22 2M 64k", "write -P 0x33 5M 512")
        zc = os.path.join(d, "zstd.qcow2")
        qcow2img.qemu_img("convert", "-c", "-O", "qcow2", "-o", "compression_type=zstd", src, zc)
        want = os.path.join(d, "want.img")
        qcow2img.flatten(src, want)
        for i, s in enumerate((src, zc)):
            out = os.path.join(d, "out%d.img" % i)
            rc, _, err = tern("img", "convert", s, out)
            assert rc == 0, err
            assert open(out, "rb").read() == open(want, "rb").read(), s
            assert os.stat(out).st_blocks * 512 < 3 * MIB, "the raw copy is not sparse"
        q = os.path.join(d, "out.qcow2")
        rc, _, err = tern("img", "convert", zc, q, "--format", "qcow2")
        assert rc == 0, err
        assert qcow2img.check(q)[0] == 0 and qcow2img.qemu_img("compare", q, want)[0] == 0
        # Never over a file: the existing one is untouched.
        before = open(q, "rb").read()
        rc, _, err = tern("img", "convert", src, q)
        assert rc == 2 and "exists" in err, (rc, err)
        assert open(q, "rb").read() == before
        # A tern overlay of an earlier tern converts to what its guest saw.
        base = os.path.join(d, "base.img")
        patterned(base, MIB)
        ovl = os.path.join(d, "old.ovl")
        overlay.create(ovl, base)
        rc, _, err = tern("img", "convert", ovl, os.path.join(d, "flat.img"))
        assert rc == 0, err
        assert open(os.path.join(d, "flat.img"), "rb").read() == open(base, "rb").read()


def test_convert_compresses():
    """--compress (qemu-img convert -c): zlib or zstd clusters qemu-img reads back the same,
    a smaller file than the plain copy, tern img info names the type."""
    with tempfile.TemporaryDirectory(prefix="tern-img-") as d:
        src = os.path.join(d, "src.img")
        with open(src, "wb") as f:
            for i in range(4 * MIB // 64):
                f.write(("block %08d of a compressible disk image...\n" % i).encode()[:64])
            f.write(os.urandom(MIB))  # does not compress: written plain
            f.truncate(8 * MIB - 1536)  # a short last cluster, zeros left out
        plain = os.path.join(d, "plain.qcow2")
        assert tern("img", "convert", src, plain, "--format", "qcow2")[0] == 0
        for kind in ("zlib", "zstd"):
            out = os.path.join(d, kind + ".qcow2")
            rc, o, err = tern("img", "convert", src, out, "--format", "qcow2", "--compress",
                              "--compression", kind, "--json")
            assert rc == 0 and json.loads(o)["compressed"] is True, (rc, o, err)
            assert qcow2img.check(out)[0] == 0, qcow2img.check(out)
            assert qcow2img.qemu_img("compare", "-f", "raw", src, out)[0] == 0
            assert os.path.getsize(out) < os.path.getsize(plain) / 2, (
                os.path.getsize(out), os.path.getsize(plain))
            rc, o, err = tern("img", "info", out, "--json")
            assert rc == 0 and '"%s"' % kind in o, (rc, o, err)
        for args, says in ((("--compress",), "--format qcow2"),
                           (("--format", "qcow2", "--compress", "--compression", "lz4"),
                            "zlib or zstd")):
            out = os.path.join(d, "bad.img")
            rc, o, err = tern("img", "convert", src, out, *args)
            assert rc == 2 and says in err and not os.path.exists(out), (args, rc, err)


def test_resize_grows_and_shrinks_qcow2_and_raw():
    """qcow2 grows in place (room in the L1 table's cluster) and with a new, larger L1
    table; qemu-img checks both clean and reads the old data and writes past the old end.
    Either shrinks only with --shrink. Refusals change nothing."""
    with tempfile.TemporaryDirectory(prefix="tern-img-") as d:
        for cluster, new_size, moves in (("65536", 4 << 30, False), ("4096", 8 << 30, True)):
            a = os.path.join(d, "grow-%s.qcow2" % cluster)
            assert tern("img", "create", a, "--size", "1M", "--cluster-size", cluster)[0] == 0
            qemu_io(a, "write -P 0x5a 0 64k", "write -P 0x6b 983040 65536")
            with open(a, "rb") as f:
                hdr = f.read(48)
            rc, out, err = tern("img", "resize", a, "+%d" % (new_size - MIB), "--json")
            assert rc == 0, (rc, out, err)
            j = json.loads(out)
            assert (j["old_size"], j["new_size"]) == (MIB, new_size), j
            assert qcow2img.check(a)[0] == 0, qcow2img.check(a)
            assert qcow2img.info(a)["virtual-size"] == new_size
            with open(a, "rb") as f:
                moved = f.read(48)[40:48] != hdr[40:48]  # l1_table_offset
            assert moved == moves, (cluster, hdr.hex())
            qemu_io(a, "read -P 0x5a 0 64k", "read -P 0x6b 983040 65536",
                    "read -P 0 1048576 1M", "write -P 0x7c %d 65536" % (new_size - 65536),
                    "read -P 0x7c %d 65536" % (new_size - 65536))
            assert qcow2img.check(a)[0] == 0, qcow2img.check(a)
            # Smaller only with --shrink; refused, the image is as it was.
            rc, out, err = tern("img", "resize", a, "1M")
            assert rc == 2 and "--shrink" in err, (rc, err)
            assert qcow2img.info(a)["virtual-size"] == new_size
            # With it: the data below the cut stays, what was past it is freed (no leaks),
            # and grown again that part reads as zeros, also in the cut's own cluster.
            rc, out, err = tern("img", "resize", a, "1000K", "--shrink")
            assert rc == 0, (rc, out, err)
            assert qcow2img.info(a)["virtual-size"] == 1000 * 1024
            assert qcow2img.check(a)[0] == 0, qcow2img.check(a)
            qemu_io(a, "read -P 0x5a 0 64k", "read -P 0x6b 983040 %d" % (1000 * 1024 - 983040))
            assert tern("img", "resize", a, "2M")[0] == 0
            qemu_io(a, "read -P 0x5a 0 64k", "read -P 0 %d %d" % (1000 * 1024, MIB - 1000 * 1024),
                    "read -P 0 1M 1M")
            assert qcow2img.check(a)[0] == 0, qcow2img.check(a)
        # A table longer than one refcount block's range: refused, named, nothing changed.
        small = os.path.join(d, "small.qcow2")
        assert tern("img", "create", small, "--size", "1M", "--cluster-size", "512")[0] == 0
        rc, out, err = tern("img", "resize", small, "64G")
        assert rc == 2 and "L1 table" in err and "64 KiB" in err, (rc, err)
        assert qcow2img.info(small)["virtual-size"] == MIB and qcow2img.check(small)[0] == 0
        # In use (a VM's lock): refused.
        with open(a, "rb") as held:
            fcntl.lockf(held, fcntl.LOCK_SH)
            rc, out, err = tern("img", "resize", a, "+1G")
            assert rc == 1 and "in use" in err, (rc, err)
        # Raw: grows; shrinks only when told.
        r = os.path.join(d, "disk.img")
        patterned(r, 4 * MIB)
        rc, out, err = tern("img", "resize", r, "8M")
        assert rc == 0 and os.path.getsize(r) == 8 * MIB, (rc, out, err)
        rc, out, err = tern("img", "resize", r, "2M")
        assert rc == 2 and "--shrink" in err and os.path.getsize(r) == 8 * MIB, (rc, err)
        rc, out, err = tern("img", "resize", r, "2M", "--shrink")
        assert rc == 0 and os.path.getsize(r) == 2 * MIB, (rc, err)
        with open(r, "rb") as f:
            assert f.read(4096) == bytes([1]) * 4096
        for size, says in (("1000", "multiple of 512"), ("+0x10", "SIZE"), ("0", "non-zero")):
            rc, out, err = tern("img", "resize", r, size)
            assert rc == 2 and says in err, (size, rc, err)
        ovl = os.path.join(d, "top.ovl")
        overlay.create(ovl, r)
        rc, out, err = tern("img", "resize", ovl, "+1M")
        assert rc == 2 and "only raw and qcow2" in err, (rc, err)


def test_bad_usage_names_the_option():
    with tempfile.TemporaryDirectory(prefix="tern-img-") as d:
        a = os.path.join(d, "a.qcow2")
        for args, says in ((("img",), "which?"), (("img", "rebase", a), "unknown subcommand"),
                           (("img", "create", a), "--size"),
                           (("img", "create", a, "--size", "10X"), "--size"),
                           (("img", "create", a, "--size", "1000"), "multiple of 512"),
                           (("img", "create", a, "--size", "1M", "--cluster-size", "3000"),
                            "--cluster-size"),
                           (("img", "create", a, "--size", "1M", "--cluster-size", "4M"),
                            "--cluster-size"),
                           (("img", "convert", a, a + ".raw", "--format", "vmdk"), "--format"),
                           (("img", "info"), "missing operand"),
                           (("img", "info", a, "--bogus"), "--bogus")):
            rc, out, err = tern(*args)
            assert rc == 2 and says in err, (args, rc, err)
        assert not os.path.exists(a), "a refused create left a file"
        rc, out, err = tern("img", "info", os.path.join(d, "none.qcow2"))
        assert rc == 1 and "none.qcow2" in err, (rc, err)
        with open(a, "wb") as f:
            f.write(b"QFI\xfb" + bytes(508))
        rc, out, err = tern("img", "info", a)
        assert rc == 2 and "a.qcow2" in err, (rc, err)
