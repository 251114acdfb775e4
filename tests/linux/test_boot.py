"""Real Linux kernels booting to a busybox /init under tern-vmm.

The small kernel from ../shared/guest/ is booted as an ELF through PVH, as an ELF
through the 64-bit Linux boot protocol, and as a bzImage with 2 vCPUs; Debian's
stock cloud kernel (installed by the set-up step) as a bzImage with 2 vCPUs. Each
/init prints a marker and the CPU count and powers off; tern-vmm must exit 0.
On the emulating KVM backend these take from ~40 s to several minutes each.
"""
import glob
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
import initramfs  # noqa: E402
import ternlib  # noqa: E402

# Boot-time savers for emulated kernel code; none changes what the test checks.
FAST = "console=ttyS0 panic=-1 rodata=off percpu_alloc=page quiet"
# Debian's kernel also needs its slowest initcalls skipped here (../shared/SOFTWARE-KVM.md).
DEBIAN_EXTRA = ("nokaslr mitigations=off ipv6.disable=1 cryptomgr.notests 8250.nr_uarts=1 "
                "initcall_blacklist=ftrace_check_for_weak_functions,tracer_init_tracefs,"
                "trace_eval_init,cubictcp_register,btf_module_init,slab_sysfs_init,"
                "crypto_kdf108_init,blake2s_mod_init,bpf_prog_test_run_init,"
                "bpf_key_sig_kfuncs_init,bpf_tcp_ca_kfunc_init,kfunc_init,bpf_rstat_kfunc_init,"
                "load_system_certificate_list,init_encrypted")


def small(name):
    p = os.path.join(ternlib.SHARED, "guest", name)
    if not os.path.exists(p):
        raise ternlib.Skip("%s is missing" % p)
    return p


def debian_kernel():
    k = sorted(glob.glob("/boot/vmlinuz-*-cloud-amd64"))
    if not k:
        raise ternlib.Skip("linux-image-cloud-amd64 is not installed (the set-up step installs it)")
    return k[-1]


def boot(kernel, cpus, extra=(), cmdline=FAST, timeout=600):
    ternlib.need_kvm()
    args = ["--kernel", kernel, "--initrd", initramfs.build(), "--cpus", str(cpus),
            "--memory", "128" if "vmlinuz" not in kernel else "256",
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
    r = boot(debian_kernel(), 2, cmdline=FAST + " " + DEBIAN_EXTRA, timeout=1500)
    check_booted(r, 2)
