"""kvmclock as Linux uses it: per-vCPU pvclock time through MSR_KVM_SYSTEM_TIME_NEW and
the boot wall clock through MSR_KVM_WALL_CLOCK_NEW, checked against the host's time."""
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tiny  # noqa: E402

SLACK = 2.0  # seconds between the host's clock and the guest's idea of it
CPU = re.compile(r"cpu (\d+) version (\d+) mul (\d+) shift (-?\d+) flags 0x([0-9a-f]+) "
                 r"tsc_mhz (\d+) ns (\d+) then (\d+) \(\+(\d+)\)$")


def check_kvmclock(ncpus):
    t0 = time.time()
    r = tiny.expect_ok("kvmclock", cpus=ncpus, cmdline="cpus=%d now=%d" % (ncpus, int(t0)))
    t1 = time.time()
    cpus = []
    for line in tiny.lines(r, "cpu "):
        m = CPU.match(line)
        assert m, "bad line %r\n%r" % (line, r)
        cpu, version, mul, ns, then = (int(m.group(i)) for i in (1, 2, 3, 7, 8))
        assert version and version % 2 == 0 and mul, "cpu %d: %r\n%r" % (cpu, line, r)
        # Nanoseconds since the VM was created: it has not run longer than this test.
        assert 0 < ns < then <= (t1 - t0 + SLACK) * 1e9, "cpu %d: %r\n%r" % (cpu, line, r)
        cpus.append(cpu)
    assert sorted(cpus) == list(range(ncpus)), "expected cpus 0..%d, got %r\n%r" % (
        ncpus - 1, cpus, r)

    wall = tiny.lines(r, "wall version ")
    assert len(wall) == 1, "no wall clock line\n%r" % r
    m = re.match(r"wall version (\d+) sec (\d+) nsec (\d+) ", wall[0])
    assert m, "bad line %r\n%r" % (wall[0], r)
    boot = int(m.group(2)) + int(m.group(3)) / 1e9
    # The UNIX time at which kvmclock read 0: when tern created the VM.
    assert t0 - SLACK <= boot <= t1 + SLACK, \
        "kvmclock's boot time %.3f is not within this run (%.3f .. %.3f)\n%r" % (boot, t0, t1, r)
    now = tiny.lines(r, "wall now ")
    assert len(now) == 1, "no wall now line\n%r" % r
    guest_now = float(now[0].split()[2])
    assert max(boot, t0 - SLACK) <= guest_now <= t1 + SLACK, \
        "the guest's wall time %.3f is not within this run (%.3f .. %.3f)\n%r" % (guest_now, t0, t1, r)
    if ncpus > 1:
        assert ("tiny: all %d cpus agree" % ncpus) in r.out, "%r" % r


def test_kvmclock_1():
    check_kvmclock(1)


def test_kvmclock_2():
    check_kvmclock(2)


def test_kvmclock_3():
    check_kvmclock(3)


def test_kvmclock_wrong_host_time_fails():
    # The guest's wall-clock check can fail: a host time two days off.
    r = tiny.run("kvmclock", cmdline="cpus=1 now=%d" % (int(time.time()) - 2 * 86400))
    if r.status == tiny.EXIT_SKIP:
        tiny.check_ok("kvmclock", r)  # raises Skip
    assert r.status == tiny.EXIT_FAIL and "sec > now - DAY && sec < now + DAY" in r.out, \
        "expected the wall-clock check to fail: %s\n%r" % (tiny.describe(r), r)
