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
    assert not r.timed_out and r.status not in (None, 0, tiny.EXIT_ALIVE), \
        "a triple fault must end tern-vmm with a non-zero status: %s\n%r" % (tiny.describe(r), r)
    assert re.search("rip", r.err, re.I), "no register dump on stderr\n%r" % r


def test_triple_fault_gp():
    check_triple("gp")


def test_triple_fault_pf():
    check_triple("pf")


def test_triple_fault_ud2():
    # On the emulating backend the #UD comes from tern-vmm's instruction fallback.
    check_triple("ud2")
