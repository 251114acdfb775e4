"""Builds the busybox initramfs the real-kernel tests boot.

From Debian's busybox-static (/bin/busybox). The archive is an uncompressed newc
cpio: on the emulating KVM backend the kernel's own gzip inflate costs about a
minute of boot time, an uncompressed archive almost nothing.

/init mounts /proc, /sys and /dev, prints MARKER and the number of online CPUs,
then does what `tern.action=` on the kernel command line says: poweroff (default)
or reboot.
"""
import os
import shutil
import subprocess
import tempfile

import ternlib

MARKER = "TERN-LINUX-INIT-OK"

INIT = """#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev
echo "%s cpus=$(/bin/busybox grep -c ^processor /proc/cpuinfo)"
case "$(/bin/busybox cat /proc/cmdline)" in
*tern.action=reboot*) /bin/busybox reboot -f ;;
*) /bin/busybox poweroff -f ;;
esac
""" % MARKER


def busybox():
    for p in ("/bin/busybox", "/usr/bin/busybox"):
        if os.path.exists(p):
            return p
    raise ternlib.Skip("busybox-static is not installed (the set-up step installs it)")


def build():
    """Returns the path of the initramfs, building it once per run."""
    out = os.path.join(ternlib.OUT, "initramfs.cpio")
    if os.path.exists(out):
        return out
    bb = busybox()
    os.makedirs(ternlib.OUT, exist_ok=True)
    with tempfile.TemporaryDirectory() as root:
        for d in ("bin", "dev", "proc", "sys"):
            os.mkdir(os.path.join(root, d))
        shutil.copy(bb, os.path.join(root, "bin", "busybox"))
        with open(os.path.join(root, "init"), "w") as f:
            f.write(INIT)
        os.chmod(os.path.join(root, "init"), 0o755)
        names = subprocess.run(["find", "."], cwd=root, stdout=subprocess.PIPE,
                               check=True).stdout
        with open(out + ".tmp", "wb") as f:
            subprocess.run(["cpio", "-o", "-H", "newc", "--quiet"], cwd=root, input=names,
                           stdout=f, check=True)
    os.rename(out + ".tmp", out)
    return out
