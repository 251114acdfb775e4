"""virtio-blk and virtio-rng driven by the guest's own Linux drivers: the small kernel
over both transports (one boot each), Debian's stock kernel over PCI (shared boot)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import debian  # noqa: E402
import guestcheck  # noqa: E402
import initramfs  # noqa: E402
import ternlib  # noqa: E402

FAST = "console=ttyS0 panic=-1 rodata=off percpu_alloc=page quiet"


def small_kernel_devices(transport):
    ternlib.need_kvm()
    k = os.path.join(ternlib.SHARED, "guest", "vmlinux-min")
    if not os.path.exists(k):
        raise ternlib.Skip("no %s" % k)
    data, md5, ext4 = guestcheck.make_images("min-" + transport)
    args = ["--kernel", k, "--initrd", initramfs.build(guestcheck.init_script()),
            "--memory", "128", "--cmdline", FAST,
            "--virtio-transport", transport] + guestcheck.disk_args(data, ext4)
    r = ternlib.run_vmm(args, timeout=900)
    with open(os.path.join(ternlib.OUT, "linux-virtio-%s.log" % transport), "w") as f:
        f.write(r.out + "\n--- stderr\n" + r.err)
    guestcheck.check_devices(r, data, md5, ext4)


def test_small_kernel_virtio_mmio():
    small_kernel_devices("mmio")


def test_small_kernel_virtio_pci():
    small_kernel_devices("pci")


def test_debian_stock_kernel_virtio_pci():
    r, data, md5, ext4 = debian.boot()
    guestcheck.check_devices(r, data, md5, ext4)
