"""One boot, every device check: the /init script the virtio tests run inside a Linux
guest, and the host-side images and assertions that go with it.

Disks are found by their virtio-blk serial (id=), not by name, so the order in which
a transport enumerates them does not matter:
  tern-data  read-only, random bytes: the guest prints its md5 and tries a write
  tern-ext4  read-write ext4 (cache=writeback): the guest writes /hello.txt and syncs
"""
import hashlib
import os
import subprocess

import initramfs
import ternlib

EXT4_TEXT = "written by a tern guest"

# The body of /init (after debian.initrd's prologue and module loads).
CHECKS = r"""
n=0
while [ $n -lt 600 ]; do
  ls /sys/block/ | grep -q vd && [ -e /dev/hwrng ] && break
  sleep 1; n=$((n+1))
done
for d in /sys/block/vd*; do
  s=$(cat $d/serial 2>/dev/null)
  [ "$s" = tern-data ] && DATA=/dev/${d##*/}
  [ "$s" = tern-ext4 ] && EXT4=/dev/${d##*/}
done
echo "DISKS data=$DATA ext4=$EXT4"
echo "SUM $(md5sum < $DATA)"
if dd if=/dev/zero of=$DATA bs=512 count=1 conv=fsync 2>/dev/null; then echo "RO-WRITE accepted"; else echo "RO-WRITE refused"; fi
echo "SUM-AFTER $(md5sum < $DATA)"
mount -t ext4 $EXT4 /mnt && echo "%s" > /mnt/hello.txt && sync && umount /mnt && echo "EXT4 written"
echo "RNG $(head -c 16 /dev/hwrng | od -An -tx1 | tr -d ' \n')"
echo "PCIROOTS $(ls /sys/bus/acpi/devices/ | grep -c PNP0A03)"
echo "%s cpus=$(grep -c ^processor /proc/cpuinfo)"
poweroff -f
""" % (EXT4_TEXT, initramfs.MARKER)


def make_images(tag):
    """Creates the two disk images; returns (data_path, data_md5, ext4_path)."""
    d = os.path.join(ternlib.OUT, "disks-" + tag)
    os.makedirs(d, exist_ok=True)
    data = os.path.join(d, "data.img")
    with open(data, "wb") as f:
        f.write(os.urandom(4 << 20))
    with open(data, "rb") as f:
        md5 = hashlib.md5(f.read()).hexdigest()
    ext4 = os.path.join(d, "ext4.img")
    with open(ext4, "wb") as f:
        f.truncate(32 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", ext4], check=True)
    return data, md5, ext4


def disk_args(data, ext4):
    return ["--disk", "path=%s,readonly=on,id=tern-data" % data,
            "--disk", "path=%s,cache=writeback,id=tern-ext4" % ext4, "--rng"]


def line(r, key):
    for l in r.out.splitlines():
        if l.startswith(key + " "):
            return l[len(key) + 1:].strip()
    return None


def check_devices(r, data, md5, ext4):
    assert not r.timed_out, "timed out: %r" % r
    assert "MODFAIL" not in r.out, "a module did not load: %r" % r
    assert line(r, "DISKS") and "/dev/vd" in line(r, "DISKS"), "disks not found: %r" % r
    assert (line(r, "SUM") or "").startswith(md5), "data checksum differs from %s: %r" % (md5, r)
    assert line(r, "RO-WRITE") == "refused", "read-only disk accepted a write: %r" % r
    assert (line(r, "SUM-AFTER") or "").startswith(md5), "read-only disk changed: %r" % r
    with open(data, "rb") as f:
        assert hashlib.md5(f.read()).hexdigest() == md5, "the read-only image changed on the host"
    assert line(r, "EXT4") == "written", "ext4 write failed: %r" % r
    got = subprocess.run(["debugfs", "-R", "cat /hello.txt", ext4], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL).stdout.decode()
    assert got.strip() == EXT4_TEXT, "host reads %r from the guest's ext4 file" % got
    fsck = subprocess.run(["e2fsck", "-fn", ext4], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert fsck.returncode == 0, "ext4 image does not check clean: %s" % fsck.stdout.decode()
    rng = line(r, "RNG") or ""
    assert len(rng) == 32 and rng != "0" * 32, "no data from /dev/hwrng: %r" % r
    assert r.status == 0, "exit status %r: %r" % (r.status, r)
