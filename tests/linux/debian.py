"""Debian's stock cloud kernel, booted once per test run and shared by the tests that
check it: as a bzImage with 2 vCPUs and its virtio modules loaded from the initramfs,
disks and rng over virtio-pci (what a distribution kernel uses).
On the emulating KVM backend this one boot takes 10-15 minutes."""
import glob
import os

import guestcheck
import ternlib

# Boot-time savers for emulated kernel code (../shared/SOFTWARE-KVM.md); none changes
# what the tests check.
# The soft-lockup and RCU-stall detectors misfire when every kernel instruction is
# emulated (module signature checks take minutes); their NMI backtraces only cost time.
CMDLINE = ("console=ttyS0 panic=-1 quiet nokaslr mitigations=off ipv6.disable=1 "
           "nowatchdog rcupdate.rcu_cpu_stall_suppress=1 "
           "cryptomgr.notests 8250.nr_uarts=1 "
           "initcall_blacklist=ftrace_check_for_weak_functions,tracer_init_tracefs,"
           "trace_eval_init,cubictcp_register,btf_module_init,slab_sysfs_init,"
           "crypto_kdf108_init,blake2s_mod_init,bpf_prog_test_run_init,"
           "bpf_key_sig_kfuncs_init,bpf_tcp_ca_kfunc_init,kfunc_init,bpf_rstat_kfunc_init,"
           "load_system_certificate_list,init_encrypted")

# Load order follows modules.dep.
MODULES = ["virtio_ring", "virtio", "virtio_pci_legacy_dev", "virtio_pci_modern_dev",
           "virtio_pci", "virtio_blk", "virtio-rng"]
MODULE_DIRS = ["drivers/virtio", "drivers/block", "drivers/char/hw_random"]

_result = None


def kernel():
    k = sorted(glob.glob("/boot/vmlinuz-*-cloud-amd64"))
    if not k:
        raise ternlib.Skip("linux-image-cloud-amd64 is not installed (the set-up step installs it)")
    return k[-1]


def module_files(k):
    version = os.path.basename(k)[len("vmlinuz-"):]
    files = {}
    for m in MODULES:
        for d in MODULE_DIRS:
            p = os.path.join("/lib/modules", version, "kernel", d, m + ".ko")
            if os.path.exists(p):
                files["/modules/%s.ko" % m] = p
                break
        else:
            raise ternlib.Skip("module %s.ko of %s is missing" % (m, version))
    return files


def boot():
    """Boots once; returns (Result, data image, its md5, ext4 image)."""
    global _result
    if _result is None:
        ternlib.need_kvm()
        k = kernel()
        import initramfs
        initrd = initramfs.build(guestcheck.init_script(MODULES), module_files(k))
        data, md5, ext4 = guestcheck.make_images("debian")
        args = ["--kernel", k, "--initrd", initrd, "--cpus", "2", "--memory", "256",
                "--cmdline", CMDLINE, "--virtio-transport", "pci"] + guestcheck.disk_args(data, ext4)
        r = ternlib.run_vmm(args, timeout=2400)
        with open(os.path.join(ternlib.OUT, "linux-debian.log"), "w") as f:
            f.write(r.out + "\n--- stderr\n" + r.err)
        _result = (r, data, md5, ext4)
    return _result
