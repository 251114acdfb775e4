"""A running guest's disks grown: Debian's stock kernel with a raw and a qcow2 virtio-blk
disk (given on the command line, with the API socket beside it).

- The raw file is grown on the host and its own path PATCHed to /drives/ID (Firecracker's
  way): the guest sees the new capacity and reads the bytes the host wrote in the new part.
- The qcow2 image is grown by tern itself (PATCH /drives/ID {"tern_size"}, QEMU's
  block_resize): the guest sees it, writes a pattern into the new part and reads it back;
  after power-off `qemu-img check` is clean, `qemu-img info` gives the new size and the
  pattern is where the guest put it.
- Another path with a size (a swap, test_disk_swap.py, then a resize), a file that shrank, a size not in sectors, a smaller tern_size: refused with
  a 400, the guest's disks as they were. One boot.
"""
import hashlib
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import api  # noqa: E402
import debian  # noqa: E402
import ternlib  # noqa: E402

MIB = 1 << 20
OLD, NEW = 16 * MIB, 24 * MIB

# For each disk: its first size, then (bounded) a larger one; on vdb a pattern is written
# past the old end and read back.
INIT = r"""
grown() {
  i=0
  while [ "$(cat /sys/block/$1/size)" = "$2" ] && [ $i -lt 600 ]; do sleep 0.2; i=$((i+1)); done
  cat /sys/block/$1/size
}
i=0
while [ ! -e /sys/block/vdb/size ] && [ $i -lt 100 ]; do sleep 0.2; i=$((i+1)); done
a0=$(cat /sys/block/vda/size); b0=$(cat /sys/block/vdb/size)
echo "SIZES0=$a0,$b0"
a1=$(grown vda $a0)
echo "VDA1=$a1 TAIL=$(dd if=/dev/vda bs=512 skip=$a0 count=8 2>/dev/null | md5sum | cut -c1-32)"
b1=$(grown vdb $b0)
yes tern-grown | head -c 4096 > /pat
dd if=/pat of=/dev/vdb bs=512 seek=$b0 conv=fsync 2>/dev/null
echo 3 > /proc/sys/vm/drop_caches
echo "VDB1=$b1 BACK=$(dd if=/dev/vdb bs=512 skip=$b0 count=8 2>/dev/null | md5sum | cut -c1-32)"
poweroff -f
"""

PATTERN = (b"tern-grown\n" * 400)[:4096]


def test_debian_sees_its_disks_grow():
    ternlib.need_kvm()
    raw = os.path.join(ternlib.OUT, "resize-%d.img" % os.getpid())
    q2 = os.path.join(ternlib.OUT, "resize-%d.qcow2" % os.getpid())
    other = raw + ".other"
    for p in (raw, other):
        with open(p, "wb") as f:
            f.truncate(OLD)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", q2, str(OLD)], check=True)
    initrd = debian.initrd(INIT, ["virtio_pci", "virtio_blk"])
    vmm, c = api.start_api_vmm(["--kernel", debian.kernel(), "--initrd", initrd, "--cpus", "1",
                                "--memory", "256", "--cmdline", debian.CMDLINE,
                                "--disk", "path=%s,format=raw,id=data" % raw,
                                "--disk", "path=%s,format=qcow2,id=q" % q2],
                               log_name="linux-disk-resize.log")
    try:
        assert vmm.wait_for("SIZES0=", timeout=300), "the guest found no disks: %r" % vmm
        assert "SIZES0=%d,%d" % (OLD // 512, OLD // 512) in vmm.out(), vmm.out()

        # Refused, nothing changed.
        api.expect_400(c.patch("/drives/data", {"drive_id": "data", "path_on_host": other,
                                                "tern_size": NEW}),
                       "another path with a size", "tern_size", "swap")
        with open(raw, "r+b") as f:
            f.truncate(OLD - MIB)
        api.expect_400(c.patch("/drives/data", {"drive_id": "data", "path_on_host": raw}),
                       "a smaller file", "cannot shrink")
        api.expect_400(c.patch("/drives/q", {"drive_id": "q", "tern_size": NEW + 100}),
                       "a size not in sectors", "multiple of 512")
        api.expect_400(c.patch("/drives/q", {"drive_id": "q", "tern_size": OLD - MIB}),
                       "a smaller size", "cannot shrink")
        api.expect_400(c.patch("/drives/q", {"drive_id": "q", "path_on_host": q2}),
                       "a qcow2 image without a size", "tern_size")

        # The raw file grown on the host, with data in the new part: its path tells the guest.
        tail = os.urandom(4096)
        with open(raw, "r+b") as f:
            f.truncate(NEW)
            f.seek(OLD)
            f.write(tail)
        api.expect_204(c.patch("/drives/data", {"drive_id": "data", "path_on_host": raw}),
                       "PATCH with the grown file", vmm)
        assert vmm.wait_for("VDA1=", timeout=120), "the guest never saw vda grow: %r" % vmm
        assert "VDA1=%d TAIL=%s" % (NEW // 512, hashlib.md5(tail).hexdigest()) in vmm.out(), \
            vmm.out()

        # The qcow2 image grown by tern.
        api.expect_204(c.patch("/drives/q", {"drive_id": "q", "tern_size": NEW}),
                       "PATCH tern_size", vmm)
        assert vmm.wait_for("VDB1=", timeout=120), "the guest never saw vdb grow: %r" % vmm
        assert "VDB1=%d BACK=%s" % (NEW // 512, hashlib.md5(PATTERN).hexdigest()) in vmm.out(), \
            vmm.out()
        assert vmm.wait(60) == 0, "no clean power-off: %r" % vmm
        err = vmm.err()
        assert "%d -> %d bytes" % (OLD, NEW) in err, err

        chk = subprocess.run(["qemu-img", "check", q2], capture_output=True, text=True)
        assert chk.returncode == 0, "qemu-img check: %s%s" % (chk.stdout, chk.stderr)
        info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", q2],
                                         capture_output=True, text=True, check=True).stdout)
        assert info["virtual-size"] == NEW, info
        flat = q2 + ".raw"
        subprocess.run(["qemu-img", "convert", "-O", "raw", q2, flat], check=True)
        with open(flat, "rb") as f:
            f.seek(OLD)
            assert f.read(4096) == PATTERN, "the guest's pattern is not past the old end"
        os.unlink(flat)
    finally:
        vmm.stop()
        for p in (raw, other, q2):
            if os.path.exists(p):
                os.unlink(p)
