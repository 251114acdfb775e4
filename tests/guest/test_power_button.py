"""The ACPI power button (src/devices/ged.h) with the tiny guest guest/tiny/powerbtn.c:
the DSDT's PNP0C0C device, the Generic Event Device's interrupt and event selector as a
guest's AML interpreter finds them; PUT /actions SendPowerButton interrupts the guest and
sets the power-button bit that its read clears; a press the guest has not read yet lives
through a snapshot. (tests/linux/test_power_button.py: a stock Linux powers off on it.)"""
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
import api  # noqa: E402
import ternlib  # noqa: E402
import tiny  # noqa: E402

PRESS_LOG = "power button pressed"


def test_power_button_dsdt_and_idle_selector():
    r = tiny.expect_ok("powerbtn")
    assert "tiny: powerbtn: selector at 0x604, GSI 23, nothing pending" in r.out, repr(r)


def start_waiting(work, log_name):
    v, c = api.start_api_vmm(["--kernel", ternlib.guest_path("powerbtn"), "--debug-exit",
                              "--cmdline", "mode=wait"], workdir=work, log_name=log_name)
    assert v.wait_for("powerbtn: waiting", timeout=tiny.TIMEOUT), "guest never waited: %r" % v
    return v, c


def test_send_power_button_interrupts_the_guest():
    work = tempfile.mkdtemp(prefix="tern-pwrb-")
    v = None
    try:
        v, c = start_waiting(work, "powerbtn.log")
        assert "powerbtn: events" not in v.out(), "an event before the press: %r" % v
        api.expect_204(c.put("/actions", {"action_type": "SendPowerButton"}), "SendPowerButton", v)
        status = v.wait(tiny.TIMEOUT)
        out = v.out()
        assert status == 0 and "tiny: powerbtn: events 0x2" in out and "tiny: powerbtn ok" in out, \
            "the guest did not see the press (status %r): %r" % (status, v)
        assert PRESS_LOG in v.err(), "tern-vmm did not log the press: %r" % v
    finally:
        if v:
            v.stop()
        shutil.rmtree(work, ignore_errors=True)


def test_power_button_pressed_while_paused_survives_a_snapshot():
    """Pause, press (the event waits in the GED's selector and the irqchip), snapshot, stop;
    the restored VM's guest takes the interrupt and reads the press from the selector."""
    work = tempfile.mkdtemp(prefix="tern-pwrb-snap-")
    state, mem = os.path.join(work, "snap.state"), os.path.join(work, "snap.mem")
    v1 = v2 = None
    try:
        v1, c = start_waiting(work, "powerbtn-boot.log")
        st, body = c.patch("/vm", {"state": "Paused"})
        assert st == 204, "pause: %s %r" % (st, body)
        api.expect_204(c.put("/actions", {"action_type": "SendPowerButton"}), "SendPowerButton (paused)", v1)
        st, body = c.put("/snapshot/create", {"snapshot_path": state, "mem_file_path": mem,
                                              "snapshot_type": "Full"})
        assert st == 204, "snapshot/create: %s %r" % (st, body)
        v1.stop()
        assert "powerbtn: events" not in v1.out(), "the paused guest ran: %r" % v1

        v2 = api.Vmm(["--restore", state, "--restore-mem", mem], log_name="powerbtn-restore.log")
        status = v2.wait(tiny.TIMEOUT)
        out = v2.out()
        assert status == 0 and "tiny: powerbtn: events 0x2" in out and "tiny: powerbtn ok" in out, \
            "the restored guest did not get the press (status %r): %r" % (status, v2)
    finally:
        for v in (v1, v2):
            if v:
                v.stop()
        shutil.rmtree(work, ignore_errors=True)
