"""Debian's stock kernel booted through the control API (docs/api.md), then rebooted
by Ctrl-Alt-Del: PUT /actions SendCtrlAltDel queues the keys on the i8042, Linux's
atkbd and VT keyboard handler turn them into ctrl_alt_del(), and since /init is a
shell script (nothing disabled Ctrl-Alt-Del) the kernel restarts at once; with the
default --on-reboot=exit tern-vmm then exits 0. One boot.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import api  # noqa: E402
import debian  # noqa: E402
import ternlib  # noqa: E402

READY = "TERN-API-CAD-READY"

# Waits (bounded) until atkbd has bound the keyboard, so the keys cannot arrive before
# anything listens; reports its name (translated or raw set 2), then idles as PID 1.
INIT = r"""
i=0
while ! grep -q "Set 2 keyboard" /proc/bus/input/devices 2>/dev/null && [ $i -lt 100 ]; do
  sleep 0.2; i=$((i+1))
done
echo "KBD=$(grep -o 'AT [A-Za-z]* Set 2 keyboard' /proc/bus/input/devices)"
echo "%s"
while true; do sleep 1; done
""" % READY


def test_debian_through_api_reboots_on_ctrl_alt_del():
    ternlib.need_kvm()
    k = debian.kernel()
    initrd = debian.initrd(INIT)
    vmm, c = api.start_api_vmm(["--id", "linux-cad"], log_name="linux-api-cad.log")
    try:
        for path, body in (("/machine-config", {"vcpu_count": 2, "mem_size_mib": 256}),
                           ("/boot-source", {"kernel_image_path": k, "initrd_path": initrd,
                                             "boot_args": debian.CMDLINE})):
            status, got = c.put(path, body)
            assert status == 204, "PUT %s: %d %r" % (path, status, got)
        status, got = c.put("/actions", {"action_type": "InstanceStart"})
        assert status == 204, "InstanceStart: %d %r" % (status, got)
        assert vmm.wait_for(READY, timeout=300), "no init marker: %r" % vmm
        assert "KBD=AT" in vmm.out(), "Linux found no AT keyboard on the i8042: %r" % vmm
        status, got = c.get("/")
        assert status == 200 and got["state"] == "Running", "GET /: %d %r" % (status, got)

        status, got = c.put("/actions", {"action_type": "SendCtrlAltDel"})
        assert status == 204, "SendCtrlAltDel: %d %r" % (status, got)
        st = vmm.wait(60)
        assert st is not None, "tern-vmm still running 60 s after SendCtrlAltDel: %r" % vmm
        assert st == 0, "exit status %r: %r" % (st, vmm)
        assert "guest rebooted" in vmm.err(), "expected a reboot in the log: %r" % vmm
    finally:
        vmm.stop()
