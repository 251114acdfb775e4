"""Builds the busybox initramfs archives the real-kernel tests boot.

From Debian's busybox-static (/bin/busybox). Archives are uncompressed newc cpio:
on the emulating KVM backend the kernel's own gzip inflate costs about a minute of
boot time, an uncompressed archive almost nothing.

The default /init mounts /proc, /sys and /dev, prints MARKER and the number of
online CPUs, then does what `tern.action=` on the kernel command line says:
poweroff (default) or reboot. Tests may pass their own /init and extra files.
"""
import hashlib
import os
import shutil
import subprocess
import tempfile

import ternlib

MARKER = "TERN-LINUX-INIT-OK"

PROLOGUE = """#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev
"""

INIT = PROLOGUE + """echo "%s cpus=$(grep -c ^processor /proc/cpuinfo)"
case "$(cat /proc/cmdline)" in
*tern.action=reboot*) reboot -f ;;
*) poweroff -f ;;
esac
""" % MARKER


def busybox():
    for p in ("/bin/busybox", "/usr/bin/busybox"):
        if os.path.exists(p):
            return p
    raise ternlib.Missing("busybox-static is not installed (the set-up step installs it)")


def build(init=INIT, files=None):
    """Returns the path of an initramfs with this /init and files {path in archive: host path}.

    Archives are cached by content in tests/out/ for the run.
    """
    files = dict(files or {})
    key = hashlib.sha256((init + repr(sorted(files.items()))).encode()).hexdigest()[:16]
    out = os.path.join(ternlib.OUT, "initramfs-%s.cpio" % key)
    if os.path.exists(out):
        return out
    bb = busybox()
    os.makedirs(ternlib.OUT, exist_ok=True)
    with tempfile.TemporaryDirectory() as root:
        for d in ("bin", "dev", "proc", "sys", "mnt"):
            os.mkdir(os.path.join(root, d))
        shutil.copy(bb, os.path.join(root, "bin", "busybox"))
        # Applet links made here cost nothing at boot (`busybox --install` in the guest
        # would be hundreds of emulated system calls).
        applets = subprocess.run([bb, "--list"], stdout=subprocess.PIPE, check=True).stdout
        for a in applets.decode().split():
            if a != "busybox" and "/" not in a:
                os.symlink("busybox", os.path.join(root, "bin", a))
        with open(os.path.join(root, "init"), "w") as f:
            f.write(init)
        os.chmod(os.path.join(root, "init"), 0o755)
        for dest, src in files.items():
            path = os.path.join(root, dest.lstrip("/"))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            shutil.copy(src, path)
        names = subprocess.run(["find", "."], cwd=root, stdout=subprocess.PIPE,
                               check=True).stdout
        with open(out + ".tmp", "wb") as f:
            subprocess.run(["cpio", "-o", "-H", "newc", "--quiet"], cwd=root, input=names,
                           stdout=f, check=True)
    os.rename(out + ".tmp", out)
    return out
