"""SMP bring-up: the guest starts its APs with INIT-SIPI-SIPI and each reports its APIC ID."""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tiny  # noqa: E402


def check_smp(ncpus, cmdline):
    r = tiny.expect_ok("smp", cpus=ncpus, cmdline=cmdline)
    ids = []
    for line in tiny.lines(r, "cpu "):
        m = re.match(r"cpu (\d+) apic (\d+)$", line)
        assert m, "bad line %r\n%r" % (line, r)
        ids.append(int(m.group(2)))
    assert sorted(ids) == list(range(ncpus)), \
        "expected APIC IDs 0..%d once each, got %r\n%r" % (ncpus - 1, ids, r)


def test_smp_1():
    check_smp(1, "cpus=1")


def test_smp_2():
    check_smp(2, "cpus=2")


def test_smp_4():
    check_smp(4, "cpus=4")


def test_smp_4_from_madt():
    # The same, with the CPU list taken from the ACPI MADT instead of the command line.
    check_smp(4, None)
