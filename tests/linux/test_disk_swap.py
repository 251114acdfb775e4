"""A running guest's drive moved onto another image: Debian's stock kernel with a raw disk
given on the command line without an id (the API names it disk0, as ternd's disks are
named), tern-vmm with --on-reboot restart.

- While the guest writes, PATCH /drives/disk0 moves the drive onto a qcow2 overlay whose
  backing file is the raw image (Firecracker's path_on_host swap, the way a snapshot moves
  a disk onto an overlay): tern pauses the VM, drains and flushes the raw image, opens the
  overlay and resumes. The overlay is larger, so the guest also sees its disk grow.
- After the swap the guest's writes go to the overlay and the raw image stays as it was;
  the guest reads the raw image's data through the overlay. GET /vm/config names the
  overlay.
- The guest reboots: tern-vmm restarts on the overlay (its --disk rewritten), never on
  the raw image, and the second boot reads what the first wrote after the swap.
- Refused with a 400, the guest untouched: a path that does not exist, an overlay whose
  backing file is gone (found once the raw image is closed: tern opens it again), tern_format
  without a path, a drive that does not exist.
After power-off `qemu-img check` of the overlay is clean and its flattened content holds
the host's data, the guest's writes from before and after the swap. One VM, two boots.
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
AFTER_SECTOR = 2048  # 1 MiB in: the guest's pattern written after the swap

# First boot: writes "before-K" records into sectors 16.. until the disk grows (the swap),
# then a pattern at 1 MiB and past the old end, reads it all back and reboots. Second
# boot: finds the pattern at 1 MiB (the overlay is its disk) and powers off.
INIT = r"""
i=0
while [ ! -e /sys/block/vda/size ] && [ $i -lt 100 ]; do sleep 0.2; i=$((i+1)); done
a0=$(cat /sys/block/vda/size)
if dd if=/dev/vda bs=512 skip=2048 count=8 2>/dev/null | grep -q tern-swapped; then
  echo "SECOND BOOT SIZE=$a0 HEAD=$(dd if=/dev/vda bs=4096 count=1 2>/dev/null | md5sum | cut -c1-32)"
  poweroff -f
fi
echo "SIZE0=$a0 HEAD=$(dd if=/dev/vda bs=4096 count=1 2>/dev/null | md5sum | cut -c1-32)"
k=0
while [ "$(cat /sys/block/vda/size)" = "$a0" ] && [ $k -lt 6000 ]; do
  printf 'before-%08d' $k | dd of=/dev/vda bs=512 seek=$((16 + k % 64)) conv=fsync 2>/dev/null
  k=$((k+1))
  [ $k -eq 1 ] && echo WRITING
done
echo "SWAPPED SIZE=$(cat /sys/block/vda/size) K=$k"
yes tern-swapped | head -c 4096 > /pat
dd if=/pat of=/dev/vda bs=512 seek=2048 conv=fsync 2>/dev/null
dd if=/pat of=/dev/vda bs=512 seek=$a0 conv=fsync 2>/dev/null
echo 3 > /proc/sys/vm/drop_caches
echo "AFTER=$(dd if=/dev/vda bs=512 skip=2048 count=8 2>/dev/null | md5sum | cut -c1-32),$(dd if=/dev/vda bs=512 skip=$a0 count=8 2>/dev/null | md5sum | cut -c1-32) HEAD=$(dd if=/dev/vda bs=4096 count=1 2>/dev/null | md5sum | cut -c1-32)"
reboot -f
"""

PATTERN = (b"tern-swapped\n" * 400)[:4096]


def test_a_running_guest_moves_onto_an_overlay_of_its_disk():
    ternlib.need_kvm()
    raw = os.path.join(ternlib.OUT, "swap-%d.img" % os.getpid())
    ovl = os.path.join(ternlib.OUT, "swap-%d.qcow2" % os.getpid())
    head = os.urandom(4096)
    with open(raw, "wb") as f:
        f.write(head)
        f.truncate(OLD)
    # -u: the raw image is tern-vmm's (locked) by then; its size is given.
    subprocess.run(["qemu-img", "create", "-q", "-u", "-f", "qcow2", "-b", raw, "-F", "raw",
                    ovl, str(NEW)], check=True)
    # An overlay whose backing file is gone: it opens, its chain does not.
    bad = ovl + ".bad"
    subprocess.run(["qemu-img", "create", "-q", "-u", "-f", "qcow2", "-b", raw + ".gone", "-F",
                    "raw", bad, str(OLD)], check=True)
    with open(raw, "rb") as f:
        raw_sum = hashlib.md5(f.read()).hexdigest()
    initrd = debian.initrd(INIT, ["virtio_pci", "virtio_blk"])
    vmm, c = api.start_api_vmm(["--kernel", debian.kernel(), "--initrd", initrd, "--cpus", "1",
                                "--memory", "256", "--cmdline", debian.CMDLINE,
                                "--on-reboot", "restart", "--disk", "path=%s,format=raw" % raw],
                               log_name="linux-disk-swap.log")
    hsum = hashlib.md5(head).hexdigest()
    try:
        assert vmm.wait_for("WRITING", timeout=300), "the guest never wrote: %r" % vmm
        assert "SIZE0=%d HEAD=%s" % (OLD // 512, hsum) in vmm.out(), vmm.out()

        # Refused, the guest untouched.
        api.expect_400(c.patch("/drives/disk0", {"drive_id": "disk0",
                                                 "path_on_host": raw + ".missing"}),
                       "a missing image", "cannot open", ".missing")
        api.expect_400(c.patch("/drives/disk0", {"drive_id": "disk0", "path_on_host": bad,
                                                 "tern_format": "Qcow2"}),
                       "an overlay of a missing base", ".gone", "the guest stays on")
        api.expect_400(c.patch("/drives/disk0", {"drive_id": "disk0", "tern_format": "Qcow2"}),
                       "tern_format alone", "tern_format")
        api.expect_400(c.patch("/drives/disk1", {"drive_id": "disk1", "path_on_host": ovl}),
                       "a drive that does not exist", "no drive")

        api.expect_204(c.patch("/drives/disk0", {"drive_id": "disk0", "path_on_host": ovl,
                                                 "tern_format": "Qcow2"}),
                       "PATCH onto the overlay", vmm)
        st, cfg = c.get("/vm/config")
        assert st == 200 and cfg["drives"][0]["path_on_host"] == ovl, (st, cfg)
        assert vmm.wait_for("AFTER=", timeout=300), "the guest never finished: %r" % vmm
        out = vmm.out()
        assert "SWAPPED SIZE=%d" % (NEW // 512) in out, out
        p = hashlib.md5(PATTERN).hexdigest()
        assert "AFTER=%s,%s HEAD=%s" % (p, p, hsum) in out, out

        # The reboot restarts tern-vmm on the overlay.
        assert vmm.wait_for("SECOND BOOT", timeout=300), "no second boot: %r" % vmm
        assert "SECOND BOOT SIZE=%d HEAD=%s" % (NEW // 512, hsum) in vmm.out(), vmm.out()
        assert vmm.wait(120) == 0, "no clean power-off: %r" % vmm
        err = vmm.err()
        assert "disk 0: '%s' -> '%s' (qcow2, %d bytes)" % (raw, ovl, NEW) in err, err

        # The raw image: the guest's writes from before the swap, nothing after.
        with open(raw, "rb") as f:
            data = f.read()
        assert len(data) == OLD and data[:4096] == head
        assert b"before-" in data[16 * 512:80 * 512], "the writes before the swap are not there"
        assert b"tern-swapped" not in data, "a write after the swap reached the raw image"
        assert hashlib.md5(data).hexdigest() != raw_sum
        chk = subprocess.run(["qemu-img", "check", ovl], capture_output=True, text=True)
        assert chk.returncode == 0, "qemu-img check: %s%s" % (chk.stdout, chk.stderr)
        info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", ovl],
                                         capture_output=True, text=True, check=True).stdout)
        assert info["virtual-size"] == NEW and info["backing-filename"] == raw, info
        flat = ovl + ".raw"
        subprocess.run(["qemu-img", "convert", "-O", "raw", ovl, flat], check=True)
        with open(flat, "rb") as f:
            img = f.read()
        os.unlink(flat)
        assert img[:4096] == head
        assert img[AFTER_SECTOR * 512:AFTER_SECTOR * 512 + 4096] == PATTERN
        assert img[OLD:OLD + 4096] == PATTERN
        assert b"before-" in img[16 * 512:80 * 512]
    finally:
        vmm.stop()
        for p in (raw, ovl, bad):
            if os.path.exists(p):
                os.unlink(p)
