"""Real Linux kernels booting to a busybox /init under tern-vmm.

The small kernel from ../shared/guest/ is booted as an ELF through PVH, as an ELF
through the 64-bit Linux boot protocol, and as a bzImage with 2 vCPUs; Debian's
stock cloud kernel (installed by the set-up step) as a bzImage with 2 vCPUs. Each
/init prints a marker and the CPU count and powers off; tern-vmm must exit 0.
On the emulating KVM backend these take from ~40 s to several minutes each.
"""
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import debian  # noqa: E402
import initramfs  # noqa: E402
import ternlib  # noqa: E402

# Boot-time savers for emulated kernel code; none changes what the test checks.
FAST = "console=ttyS0 panic=-1 rodata=off percpu_alloc=page quiet"
def small(name):
    p = os.path.join(ternlib.SHARED, "guest", name)
    if not os.path.exists(p):
        raise ternlib.Skip("%s is missing" % p)
    return p


def boot(kernel, cpus, extra=(), cmdline=FAST, timeout=600):
    ternlib.need_kvm()
    args = ["--kernel", kernel, "--initrd", initramfs.build(), "--cpus", str(cpus),
            "--memory", "128",
            "--cmdline", cmdline] + list(extra)
    r = ternlib.run_vmm(args, timeout=timeout)
    with open(os.path.join(ternlib.OUT, "linux-%s-%d.log" % (os.path.basename(kernel), cpus)), "w") as f:
        f.write(r.out + "\n--- stderr\n" + r.err)
    return r


def check_booted(r, cpus, stop="guest powered off"):
    assert not r.timed_out, "boot timed out: %r" % r
    m = re.search(initramfs.MARKER + r" cpus=(\d+)", r.out)
    assert m, "no init marker: %r" % r
    assert int(m.group(1)) == cpus, "guest saw %s CPUs, expected %d: %r" % (m.group(1), cpus, r)
    assert r.status == 0, "exit status %r: %r" % (r.status, r)
    assert stop in r.err, "expected %r in the log: %r" % (stop, r)


def test_small_kernel_elf_pvh():
    check_booted(boot(small("vmlinux-min"), 1, ["--boot-entry", "pvh"]), 1)


def test_small_kernel_elf_linux64_entry():
    check_booted(boot(small("vmlinux-min"), 1, ["--boot-entry", "linux64"]), 1)


def test_small_kernel_bzimage_smp():
    check_booted(boot(small("bzImage-min"), 2), 2)


def test_small_kernel_reboot_ends_vm():
    r = boot(small("vmlinux-min"), 1, cmdline=FAST + " tern.action=reboot")
    check_booted(r, 1, stop="guest rebooted")


def test_debian_stock_kernel_bzimage_smp():
    # One boot shared with tests/linux/test_virtio.py, which checks its devices.
    r = debian.boot()[0]
    check_booted(r, 2)
