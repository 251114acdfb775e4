"""virtio-blk and virtio-rng driven by Debian's stock kernel's own drivers, over both
transports, one boot each: virtio-pci (what distributions use) and virtio-mmio (found
through the DSDT's LNRO0005 entries by the virtio_mmio module)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import debian  # noqa: E402
import guestcheck  # noqa: E402
import ternlib  # noqa: E402


def debian_devices(transport):
    ternlib.need_kvm()
    mods = ["virtio_pci" if transport == "pci" else "virtio_mmio", "virtio_blk", "virtio-rng"]
    data, md5, ext4 = guestcheck.make_images("debian-" + transport)
    args = ["--kernel", debian.kernel(), "--initrd", debian.initrd(guestcheck.CHECKS, mods),
            "--cpus", "2", "--memory", "256", "--cmdline", debian.CMDLINE,
            "--virtio-transport", transport] + guestcheck.disk_args(data, ext4)
    r = ternlib.run_vmm(args, timeout=300)
    with open(os.path.join(ternlib.OUT, "linux-virtio-%s.log" % transport), "w") as f:
        f.write(r.out + "\n--- stderr\n" + r.err)
    guestcheck.check_devices(r, data, md5, ext4)
    # A PCI host bridge in the DSDT only when a device sits behind it (virtio_setup_uses_pci).
    roots = guestcheck.line(r, "PCIROOTS")
    assert roots == ("1" if transport == "pci" else "0"), "PCI roots %r: %r" % (roots, r)


def test_debian_virtio_pci():
    debian_devices("pci")


def test_debian_virtio_mmio():
    debian_devices("mmio")
