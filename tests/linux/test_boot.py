"""Real Linux kernels booting to a busybox /init under tern-vmm.

Debian's stock cloud kernel as the bzImage Debian ships (2 vCPUs), and as the ELF
vmlinux inside it, entered through PVH and through the 64-bit Linux boot protocol; a
reboot from the guest ends the VM. The small kernel from ../shared/guest/ is booted
once, for what only its custom config has: a bzImage that is not relocatable (it must
run at 16 MiB) and LZ4-packed with no initramfs of its own.
Each /init prints a marker and the CPU count and powers off; tern-vmm must exit 0.
"""
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import debian  # noqa: E402
import initramfs  # noqa: E402
import ternlib  # noqa: E402


def boot(kernel, cpus, extra=(), cmdline=debian.CMDLINE, log="", timeout=300, memory=256):
    ternlib.need_kvm()
    args = ["--kernel", kernel, "--initrd", initramfs.build(), "--cpus", str(cpus),
            "--memory", str(memory), "--cmdline", cmdline] + list(extra)
    r = ternlib.run_vmm(args, timeout=timeout)
    with open(os.path.join(ternlib.OUT, "linux-boot-%s.log" % log), "w") as f:
        f.write(r.out + "\n--- stderr\n" + r.err)
    return r


def check_booted(r, cpus, stop="guest powered off"):
    assert not r.timed_out, "boot timed out: %r" % r
    m = re.search(initramfs.MARKER + r" cpus=(\d+)", r.out)
    assert m, "no init marker: %r" % r
    assert int(m.group(1)) == cpus, "guest saw %s CPUs, expected %d: %r" % (m.group(1), cpus, r)
    assert r.status == 0, "exit status %r: %r" % (r.status, r)
    assert stop in r.err, "expected %r in the log: %r" % (stop, r)


def test_debian_bzimage_smp():
    check_booted(boot(debian.kernel(), 2, log="debian-bzimage"), 2)


def test_debian_elf_pvh():
    r = boot(debian.elf(), 2, ["--boot-entry", "pvh", "--log-level", "debug"], log="debian-pvh")
    check_booted(r, 2)
    assert "(PVH)" in r.err, "tern-vmm did not enter through PVH: %r" % r


def test_debian_elf_linux64_entry():
    r = boot(debian.elf(), 1, ["--boot-entry", "linux64", "--log-level", "debug"],
             log="debian-linux64")
    check_booted(r, 1)
    assert "(64-bit Linux boot protocol)" in r.err, "not entered at the 64-bit entry: %r" % r


def test_debian_reboot_ends_vm():
    r = boot(debian.kernel(), 1, cmdline=debian.CMDLINE + " tern.action=reboot", log="debian-reboot")
    check_booted(r, 1, stop="guest rebooted")


def test_small_kernel_bzimage_not_relocatable_smp():
    k = os.path.join(ternlib.SHARED, "guest", "bzImage-min")
    if not os.path.exists(k):
        raise ternlib.Missing("%s is missing (../shared/guest/)" % k)
    check_booted(boot(k, 2, cmdline="console=ttyS0 panic=-1 quiet", log="small-bzimage",
                      memory=128), 2)
