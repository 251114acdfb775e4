"""CPUID as each vCPU sees it: the hypervisor bit, KVM's signature, the topology tern
writes per vCPU (leaf 1 EBX, leaf 0xb), and what the CPU templates hide.

The software KVM backend honours only part of KVM_SET_CPUID2 (see
../../../shared/SOFTWARE-KVM.md): there the template tests check only the words it
honours; on VT-x/AMD-V they check the whole compat template."""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ternlib  # noqa: E402
import tiny  # noqa: E402

LINE = re.compile(r"cpu (\d+) apic (\d+) hv (\d) sig (\S*) max 0x([0-9a-f]+) l1ebx 0x([0-9a-f]+) "
                  r"htt (\d) leafb (yes|no) (\S+) (\S+) ([0-9a-f]+)$")

# Leaf 1 ECX
SSE3, CX16, SSE42, POPCNT = 1 << 0, 1 << 13, 1 << 20, 1 << 23
FMA, XSAVE, OSXSAVE, AVX, F16C, HYPERVISOR = 1 << 12, 1 << 26, 1 << 27, 1 << 28, 1 << 29, 1 << 31
# Leaf 7.0 EBX: what compat keeps (FSGSBASE, SMEP, ERMS, SMAP); AVX2
L7EBX_COMPAT = (1 << 0) | (1 << 7) | (1 << 9) | (1 << 20)
AVX2 = 1 << 5
# 0x80000001 with one vCPU: what compat keeps (src/arch/x86/cpuid.c)
E1ECX_COMPAT = (1 << 0) | (1 << 5) | (1 << 8)
E1EDX_COMPAT = (1 << 11) | (1 << 20) | (1 << 26) | (1 << 27) | (1 << 29) | 0x0183f3ff
# 0x40000001 EAX: paravirtual features the software backend cannot serve
PV_UNHALT, PV_SEND_IPI, PV_SCHED_YIELD = 1 << 7, 1 << 11, 1 << 13


def check_cpus(ncpus):
    r = tiny.expect_ok("cpuid", cpus=ncpus, cmdline="cpus=%d" % ncpus)
    seen = []
    for line in tiny.lines(r, "cpu "):
        m = LINE.match(line)
        assert m, "bad line %r\n%r" % (line, r)
        cpu, apic, hv, sig, maxhv, l1ebx, htt, leafb, smt, core, end = m.groups()
        apic, l1ebx = int(apic), int(l1ebx, 16)
        assert int(cpu) == apic, "cpu %s reports APIC ID %d\n%r" % (cpu, apic, r)
        assert hv == "1", "cpu %d: no hypervisor bit\n%r" % (apic, r)
        assert sig == "KVMKVMKVM", "cpu %d: signature %r\n%r" % (apic, sig, r)
        assert int(maxhv, 16) >= 0x40000001, "cpu %d: max hv leaf 0x%s\n%r" % (apic, maxhv, r)
        assert l1ebx >> 24 == apic and (l1ebx >> 16) & 0xff == ncpus, \
            "cpu %d: leaf 1 EBX 0x%x, want APIC ID %d and %d CPUs\n%r" % (apic, l1ebx, apic, ncpus, r)
        if ncpus > 1:
            assert htt == "1", "cpu %d: HTT clear with %d CPUs\n%r" % (apic, ncpus, r)
        if leafb == "yes":
            s = [int(x, 16) for x in smt.split(":")]
            c = [int(x, 16) for x in core.split(":")]
            assert (s[2] >> 8) & 0xff == 1 and s[1] & 0xffff == 1 and s[3] == apic, \
                "cpu %d: leaf 0xb.0 (SMT level) %r\n%r" % (apic, smt, r)
            assert (c[2] >> 8) & 0xff == 2 and c[1] & 0xffff == ncpus and c[3] == apic \
                and (1 << (c[0] & 0x1f)) >= ncpus, \
                "cpu %d: leaf 0xb.1 (core level) %r, want %d CPUs\n%r" % (apic, core, ncpus, r)
            assert (int(end, 16) >> 8) & 0xff == 0, "cpu %d: leaf 0xb.2 ECX 0x%s\n%r" % (apic, end, r)
        seen.append(apic)
    assert sorted(seen) == list(range(ncpus)), \
        "expected APIC IDs 0..%d once each, got %r\n%r" % (ncpus - 1, seen, r)


def test_cpuid_1():
    check_cpus(1)


def test_cpuid_2():
    check_cpus(2)


def test_cpuid_3():
    # Not a power of two: the core level's APIC-ID shift must still cover every vCPU.
    check_cpus(3)


def test_cpuid_wrong_cpu_count_fails():
    # The guest's topology check can fail: told 2 CPUs while tern made 3.
    r = tiny.run("cpuid", cpus=3, cmdline="cpus=2")
    assert r.status == tiny.EXIT_FAIL and "(l1.ebx >> 16) & 0xff == ncpus (0x3 != 0x2)" in r.out, \
        "expected the leaf 1 EBX count check to fail: %s\n%r" % (tiny.describe(r), r)


def template(name, env=None):
    """The feature words of a one-vCPU guest under --cpu-template NAME (None: tern's default)."""
    extra = ["--cpu-template", name] if name else []
    r = tiny.expect_ok("cpuid", cmdline="mode=template", extra=extra, env=env)
    found = tiny.lines(r, "template ")
    assert len(found) == 1, "want one template line\n%r" % r
    words = found[0].split()[1:]
    assert len(words) % 2 == 0, "bad template line %r\n%r" % (found[0], r)
    t = {k: int(v, 16) for k, v in zip(words[::2], words[1::2])}
    t["run"] = r
    return t


def host_flags():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    raise ternlib.Missing("no flags line in /proc/cpuinfo")


def test_cpuid_template_default():
    # Without --cpu-template tern picks compat on the software backend, host elsewhere.
    want = "compat" if ternlib.software_kvm() else "host"
    d, t = template(None), template(want)
    for k in d:
        if k != "run":
            assert d[k] == t[k], "default template differs from %s in %s: 0x%x != 0x%x\n%r\n%r" % (
                want, k, d[k], t[k], d["run"], t["run"])


def check_common(t, name):
    assert t["l1ecx"] & HYPERVISOR, "%s: no hypervisor bit\n%r" % (name, t["run"])
    assert (t["l1ebx"] >> 16) & 0xff == 1 and t["l1ebx"] >> 24 == 0, \
        "%s: leaf 1 EBX 0x%x, want APIC ID 0 of 1 CPU\n%r" % (name, t["l1ebx"], t["run"])


def test_cpuid_template_software_kvm():
    # Where the backend is not kvm_pvm, TERN_SOFTWARE_KVM=on makes tern apply its
    # software-KVM policy all the same; KVM then honours every word, so the checks hold.
    env = None if ternlib.software_kvm() else dict(os.environ, TERN_SOFTWARE_KVM="on")
    host, compat = template("host", env), template("compat", env)
    for name, t in (("host", host), ("compat", compat)):
        check_common(t, name)
        # tern's software-KVM module hides these whatever the template: the emulator
        # cannot run cmpxchg16b or serve these hypercalls.
        assert not t["l1ecx"] & CX16, "%s: CX16 visible\n%r" % (name, t["run"])
        for bit, what in ((PV_UNHALT, "PV_UNHALT"), (PV_SEND_IPI, "PV_SEND_IPI"),
                          (PV_SCHED_YIELD, "PV_SCHED_YIELD")):
            assert not t["pv"] & bit, "%s: %s offered (0x40000001 EAX 0x%x)\n%r" % (
                name, what, t["pv"], t["run"])
    # 0x80000001 is honoured here: compat keeps exactly its list of the host's bits.
    for reg, mask in (("e1ecx", E1ECX_COMPAT), ("e1edx", E1EDX_COMPAT)):
        assert compat[reg] == host[reg] & mask, \
            "compat 0x80000001 %s 0x%x, want host 0x%x & 0x%x\n%r\n%r" % (
                reg, compat[reg], host[reg], mask, host["run"], compat["run"])


def test_cpuid_template_hardware():
    if ternlib.software_kvm():
        raise ternlib.Skip("the software KVM backend does not honour these CPUID words")
    flags = host_flags()
    host, compat = template("host"), template("compat")
    check_common(host, "host")
    check_common(compat, "compat")
    assert bool(host["l1ecx"] & AVX) == ("avx" in flags), \
        "host template: AVX %s, /proc/cpuinfo %s\n%r" % (
            bool(host["l1ecx"] & AVX), "avx" in flags, host["run"])
    for bit, what in ((AVX, "AVX"), (XSAVE, "XSAVE"), (OSXSAVE, "OSXSAVE"), (FMA, "FMA"),
                      (F16C, "F16C")):
        assert not compat["l1ecx"] & bit, "compat: %s visible\n%r" % (what, compat["run"])
    assert not compat["l7ebx"] & AVX2, "compat: AVX2 visible\n%r" % compat["run"]
    assert compat["l7ebx"] & ~L7EBX_COMPAT == 0 and compat["l7ecx"] == 0 and compat["l7edx"] == 0, \
        "compat: leaf 7 beyond FSGSBASE/SMEP/ERMS/SMAP\n%r" % compat["run"]
    assert compat["dEax"] == 0, "compat: leaf 0xd.0 EAX 0x%x\n%r" % (compat["dEax"], compat["run"])
    for bit, flag in ((SSE3, "pni"), (CX16, "cx16"), (SSE42, "sse4_2"), (POPCNT, "popcnt")):
        assert bool(compat["l1ecx"] & bit) == bool(host["l1ecx"] & bit) == (flag in flags), \
            "%s: compat %s, host template %s, /proc/cpuinfo %s\n%r\n%r" % (
                flag, bool(compat["l1ecx"] & bit), bool(host["l1ecx"] & bit), flag in flags,
                host["run"], compat["run"])
    for reg, mask in (("e1ecx", E1ECX_COMPAT), ("e1edx", E1EDX_COMPAT)):
        assert compat[reg] == host[reg] & mask, \
            "compat 0x80000001 %s 0x%x, want host 0x%x & 0x%x\n%r\n%r" % (
                reg, compat[reg], host[reg], mask, host["run"], compat["run"])
