"""Debian's stock kernel booted through the control API, then powered off with the ACPI
power button: PUT /actions SendPowerButton sets the power-button bit in the Generic Event
Device's selector and raises its interrupt; Linux's evged runs the GED's _EVT, which reads
the selector and notifies the PNP0C0C device; the button driver (the `button` module)
reports KEY_POWER on its input device (evdev, a module too), where busybox acpid runs
/etc/acpi/PWRF/00000080, which powers off. tern-vmm then exits 0. One boot.

What a stock guest needs is exactly that: the button driver, and a userspace that acts on
KEY_POWER (here acpid; systemd-logind does it on a full distribution).
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import api  # noqa: E402
import debian  # noqa: E402
import ternlib  # noqa: E402

READY = "TERN-PWRBTN-READY"
ACTION = "TERN-PWRBTN-ACTION"
# How long the guest must stay up on its own after READY: a power-off without a press
# (a bit pending from boot, a stray interrupt) would come within this.
QUIET = 5

# Waits (bounded) for the button's input device (phys "PNP0C0C/button/input0") and its
# event node, writes acpid's action for the power button (acpid runs it directly: a file,
# not a directory), starts acpid on every /dev/input/event* (it opens them once, at
# start), waits until it holds them open, then idles as PID 1.
INIT = r"""
i=0
while ! grep -q "PNP0C0C/button" /proc/bus/input/devices 2>/dev/null && [ $i -lt 100 ]; do
  sleep 0.2; i=$((i+1))
done
echo "PWRBTN=$(grep -c PNP0C0C/button /proc/bus/input/devices) EVENTS=$(ls /dev/input | grep -c event)"
mkdir -p /etc/acpi/PWRF
printf '#!/bin/sh\necho %s\npoweroff -f\n' > /etc/acpi/PWRF/00000080
chmod 755 /etc/acpi/PWRF/00000080
acpid -d -c /etc/acpi &
n=$(ls /dev/input | grep -c event)
i=0
while [ "$(ls -l /proc/$!/fd 2>/dev/null | grep -c /dev/input/event)" -lt "$n" ] && [ $i -lt 100 ]; do
  sleep 0.1; i=$((i+1))
done
echo "ACPID_FDS=$(ls -l /proc/$!/fd 2>/dev/null | grep -c /dev/input/event)"
echo "%s"
while true; do sleep 1; done
""" % (ACTION, READY)


def test_debian_powers_off_on_the_power_button():
    ternlib.need_kvm()
    k = debian.kernel()
    initrd = debian.initrd(INIT, modules=["button", "evdev"])
    vmm, c = api.start_api_vmm(["--id", "linux-pwrbtn"], log_name="linux-power-button.log")
    try:
        for path, body in (("/machine-config", {"vcpu_count": 2, "mem_size_mib": 256}),
                           ("/boot-source", {"kernel_image_path": k, "initrd_path": initrd,
                                             "boot_args": debian.CMDLINE})):
            api.expect_204(c.put(path, body), "PUT %s" % path, vmm)
        api.expect_204(c.put("/actions", {"action_type": "InstanceStart"}), "InstanceStart", vmm)
        assert vmm.wait_for(READY, timeout=300), "no init marker: %r" % vmm
        out = vmm.out()
        assert "MODFAIL" not in out, "a module did not load: %r" % vmm
        assert "PWRBTN=1" in out, "Linux's button driver bound no PNP0C0C power button: %r" % vmm
        assert "ACPID_FDS=0" not in out, "acpid holds no input device: %r" % vmm

        # Nothing powers the guest off before the press.
        st = vmm.wait(QUIET)
        assert st is None, "the guest stopped by itself before the press (status %r): %r" % (st, vmm)
        assert ACTION not in vmm.out(), "acpid acted before the press: %r" % vmm

        api.expect_204(c.put("/actions", {"action_type": "SendPowerButton"}), "SendPowerButton", vmm)
        st = vmm.wait(60)
        assert st is not None, "tern-vmm still running 60 s after SendPowerButton: %r" % vmm
        assert st == 0, "exit status %r: %r" % (st, vmm)
        assert ACTION in vmm.out(), "acpid's power-button action did not run: %r" % vmm
        assert "guest powered off" in vmm.err(), "expected a power-off in the log: %r" % vmm
    finally:
        vmm.stop()
