"""A running guest's disk grown on the host: Debian's stock kernel with a raw virtio-blk
disk (given on the command line, with the API socket beside it) sees its new size when
the file is grown and the same path is PATCHed to /drives/ID (Firecracker's way; QEMU's
block_resize). The guest's virtio_blk driver takes the configuration change, reads the new
capacity and then reads the new sectors: the bytes the host wrote there. Another path, a
smaller file: refused with a 400, the guest's disk as it was. One boot.
"""
import hashlib
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import api  # noqa: E402
import debian  # noqa: E402
import ternlib  # noqa: E402

MIB = 1 << 20
OLD, NEW = 16 * MIB, 24 * MIB

# Prints the first size, then waits (bounded) for another and reads the first new sector.
INIT = r"""
i=0
while [ ! -e /sys/block/vda/size ] && [ $i -lt 100 ]; do sleep 0.2; i=$((i+1)); done
s0=$(cat /sys/block/vda/size)
echo "SIZE0=$s0"
i=0
while [ "$(cat /sys/block/vda/size)" = "$s0" ] && [ $i -lt 600 ]; do sleep 0.2; i=$((i+1)); done
s1=$(cat /sys/block/vda/size)
echo "SIZE1=$s1"
echo "TAIL=$(dd if=/dev/vda bs=512 skip=$s0 count=8 2>/dev/null | md5sum | cut -c1-32)"
poweroff -f
"""


def test_debian_sees_its_disk_grow():
    ternlib.need_kvm()
    img = os.path.join(ternlib.OUT, "resize-%d.img" % os.getpid())
    other = img + ".other"
    for p in (img, other):
        with open(p, "wb") as f:
            f.truncate(OLD)
    initrd = debian.initrd(INIT, ["virtio_pci", "virtio_blk"])
    vmm, c = api.start_api_vmm(["--kernel", debian.kernel(), "--initrd", initrd, "--cpus", "1",
                                "--memory", "256", "--cmdline", debian.CMDLINE,
                                "--disk", "path=%s,format=raw,id=data" % img],
                               log_name="linux-disk-resize.log")
    try:
        assert vmm.wait_for("SIZE0=", timeout=300), "the guest found no disk: %r" % vmm
        assert "SIZE0=%d" % (OLD // 512) in vmm.out(), vmm.out()

        # Another file under a running guest, or a file that shrank: refused.
        api.expect_400(c.patch("/drives/data", {"drive_id": "data", "path_on_host": other}),
                       "another path", "not implemented", "own path")
        with open(img, "r+b") as f:
            f.truncate(OLD - MIB)
        api.expect_400(c.patch("/drives/data", {"drive_id": "data", "path_on_host": img}),
                       "a smaller file", "cannot shrink")

        # Grown, with data in the new part: the same path tells the guest.
        tail = os.urandom(4096)
        with open(img, "r+b") as f:
            f.truncate(NEW)
            f.seek(OLD)
            f.write(tail)
        api.expect_204(c.patch("/drives/data", {"drive_id": "data", "path_on_host": img}),
                       "PATCH with the grown file", vmm)
        assert vmm.wait_for("TAIL=", timeout=120), "the guest never saw a new size: %r" % vmm
        out = vmm.out()
        assert "SIZE1=%d" % (NEW // 512) in out, out
        assert "TAIL=%s" % hashlib.md5(tail).hexdigest() in out, out
        assert vmm.wait(60) == 0, "no clean power-off: %r" % vmm
        assert "%d -> %d bytes" % (OLD, NEW) in vmm.err(), vmm.err()
    finally:
        vmm.stop()
        for p in (img, other):
            os.unlink(p)
