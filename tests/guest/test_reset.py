"""Ways a guest ends the VM without the debug port: i8042 reset, triple fault."""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tiny  # noqa: E402


def check_reset(extra):
    r = tiny.run("reset", extra=extra)
    assert "tiny: resetting through the i8042" in r.out, "guest did not get that far\n%r" % r
    assert "still alive" not in r.out, "the VM outlived the reset\n%r" % r
    assert not r.timed_out and r.status == 0, \
        "reset should end tern-vmm with status 0: %s\n%r" % (tiny.describe(r), r)


def test_i8042_reset_ends_vm():
    check_reset([])


def test_i8042_reset_on_reboot_exit():
    check_reset(["--on-reboot=exit"])


def check_triple(mode):
    r = tiny.run("triple", cmdline="mode=" + mode)
    assert "tiny: empty IDT, then a fault (%s)" % mode in r.out, \
        "guest did not get that far\n%r" % r
    assert "still alive" not in r.out, "no triple fault\n%r" % r
    assert not r.timed_out and r.status == 3, \
        "a triple fault must end tern-vmm with status 3 (guest crashed): %s\n%r" % (
            tiny.describe(r), r)
    assert "triple fault" in r.err, "the log does not say why\n%r" % r
    assert re.search("rip", r.err, re.I), "no register dump on stderr\n%r" % r


def test_triple_fault_gp():
    check_triple("gp")


def test_triple_fault_pf():
    check_triple("pf")


def test_triple_fault_ud2():
    # On the emulating backend the #UD comes from tern-vmm's instruction fallback.
    check_triple("ud2")


def test_on_reboot_restart_boots_again():
    # With --on-reboot=restart the guest starts over after each reset, so it keeps
    # resetting until the test's timeout ends tern-vmm.
    r = tiny.run("reset", extra=["--on-reboot=restart"], timeout=5)
    n = r.out.count("tiny: resetting through the i8042")
    assert r.timed_out and n >= 2, "expected the guest to boot again after reset (%d boots)\n%r" % (n, r)
    assert "still alive" not in r.out, "the VM outlived a reset\n%r" % r
