"""Running the tiny guests of guest/ under tern-vmm and explaining how they ended.

The exit statuses match guest/lib/tiny.h.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
import ternlib  # noqa: E402

TIMEOUT = 30  # seconds; a guest takes well under 2 s even on the emulating backend

EXIT_OK = 0
EXIT_FAIL = 33
EXIT_ALIVE = 34
EXIT_SKIP = 77
EXIT_EXCEPTION = 0x40
EXIT_INTERRUPT = 0x60

TERN_STATUS = {1: "tern-vmm failed", 2: "bad usage",
               3: "guest crashed (triple fault or an exit tern cannot handle)"}

VECTORS = ["#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "#CSO", "#TS",
           "#NP", "#SS", "#GP", "#PF", "#15", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP"]


# Checks QEMU's TCG CPU (the lab's) gets wrong, where Intel's SDM and AMD's APM say
# what hardware does: {guest cmdline that leaves the check out: what TCG lacks}.
TCG_LACKS = {
    "mxcsr skip=gp": "QEMU's TCG CPU does not raise #GP for ldmxcsr with a reserved bit set "
                     "(hardware does: SDM and APM, LDMXCSR)",
    "fsgsbase skip=gp": "QEMU's TCG CPU does not raise #GP for wrfsbase with a non-canonical "
                        "address (hardware does: SDM and APM, WRFSBASE)",
    "user skip=sysflags": "QEMU's TCG CPU clears the arithmetic flags on a 64-bit syscall "
                          "(hardware keeps every bit IA32_FMASK does not clear: SDM and APM, "
                          "SYSCALL)",
}


def run(name, cmdline=None, cpus=None, extra=(), timeout=TIMEOUT, env=None):
    """Runs guest NAME (build/guest/NAME.elf) with --debug-exit; returns a ternlib.Result."""
    ternlib.need_kvm()
    assert os.path.exists(ternlib.vmm_path()), "no %s: build it first" % ternlib.vmm_path()
    assert os.path.exists(ternlib.guest_path(name)), \
        "no %s: run `make guests`" % ternlib.guest_path(name)
    args = list(extra)
    if cpus is not None:
        args += ["--cpus", str(cpus)]
    return ternlib.run_guest(name, extra=args, timeout=timeout, cmdline=cmdline, env=env)


def describe(r):
    """One line on what the exit status means."""
    s = r.status
    if r.timed_out:
        return "timed out"
    if s is None:
        return "no exit status"
    if s < 0:
        return "tern-vmm killed by signal %d" % -s
    if s == EXIT_OK:
        return "exit 0 (success)"
    if s == EXIT_FAIL:
        return "exit %d: a check in the guest failed (see its FAIL line)" % s
    if s == EXIT_ALIVE:
        return "exit %d: the guest kept running after what should have ended the VM" % s
    if s == EXIT_SKIP:
        return "exit %d: the guest skipped itself" % s
    if EXIT_EXCEPTION <= s < EXIT_EXCEPTION + 32:
        v = s - EXIT_EXCEPTION
        return "exit 0x%x: unexpected exception %d %s in the guest" % (
            s, v, VECTORS[v] if v < len(VECTORS) else "")
    if s == EXIT_INTERRUPT:
        return "exit 0x%x: unexpected interrupt in the guest" % s
    if s in TERN_STATUS:
        return "exit %d: from tern-vmm: %s" % (s, TERN_STATUS[s])
    return "exit %d: neither a guest status nor one of tern-vmm's" % s


def check_ok(name, r):
    """Asserts that guest NAME ended with "tiny: NAME ok" and status 0; maps status 77 to a skip."""
    if r.status == EXIT_SKIP and not r.timed_out:
        why = [line for line in r.out.splitlines() if line.startswith("tiny: skip")]
        # "tiny: skip NAME: reason" -> "reason"
        raise ternlib.Skip(why[-1].split(": ", 2)[-1] if why else "guest %s skipped" % name)
    assert not r.timed_out and r.status == EXIT_OK and ("tiny: %s ok" % name) in r.out, \
        "guest %s: %s\n%r" % (name, describe(r), r)
    return r


def expect_ok(name, **kw):
    return check_ok(name, run(name, **kw))


def expect_ok_but_check(name, skip):
    """expect_ok(NAME), leaving out the guest's check `skip=SKIP` on a CPU known to get
    it wrong (TCG_LACKS); expect_check() makes that check on its own."""
    if not ternlib.cpu_is_qemu_tcg():
        return expect_ok(name)
    r = expect_ok(name, cmdline="skip=" + skip)
    assert lines(r, "not checked: "), "guest %s ignored skip=%s\n%r" % (name, skip, r)
    return r


def expect_check(name, skip):
    """The check `skip=SKIP` of guest NAME (the whole guest runs): a skip, with the
    reason, on a CPU known to get it wrong."""
    if ternlib.cpu_is_qemu_tcg():
        raise ternlib.Skip(TCG_LACKS["%s skip=%s" % (name, skip)])
    return expect_ok(name)


def lines(r, prefix):
    """The stdout lines that start with "tiny: PREFIX", without "tiny: "."""
    return [line[len("tiny: "):] for line in r.out.splitlines()
            if line.startswith("tiny: " + prefix)]
