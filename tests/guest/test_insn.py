"""Instructions KVM's emulator cannot run at CPL0 on the software backend, each at CPL0,
checked against the architecture (see ../../../shared/SOFTWARE-KVM.md). Instructions
the CPU lacks make the guest skip itself."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ternlib
import tiny  # noqa: E402


def test_int3_traps_to_bp_handler():
    tiny.expect_ok("int3")


def test_ud2_faults_at_its_rip():
    tiny.expect_ok("ud2")


def test_fwait_is_noop():
    tiny.expect_ok("fwait")


def test_fwait_with_ts_raises_nm():
    tiny.expect_ok("fwait", cmdline="mode=ts")


def test_ldmxcsr_stmxcsr():
    tiny.expect_ok_but_check("mxcsr", "gp")


def test_ldmxcsr_reserved_bit_raises_gp():
    tiny.expect_check("mxcsr", "gp")


def test_stac_clac():
    tiny.expect_ok("stac")


def test_popcnt():
    tiny.expect_ok("popcnt")


def test_rdrand():
    tiny.expect_ok("rdrand")


def test_rdseed():
    tiny.expect_ok("rdrand", cmdline="mode=rdseed")


def test_swapgs():
    tiny.expect_ok("swapgs")


def test_fsgsbase():
    tiny.expect_ok_but_check("fsgsbase", "gp")


def test_wrfsbase_non_canonical_raises_gp():
    tiny.expect_check("fsgsbase", "gp")


def test_fsgsbase_needs_cr4():
    if ternlib.software_kvm():
        # The software backend executes rdfsbase itself and ignores CR4.FSGSBASE: the
        # instruction never exits to tern, so no VMM can raise the #UD it owes.
        raise ternlib.Skip("software KVM runs rdfsbase without checking CR4.FSGSBASE")
    tiny.expect_ok("fsgsbase", cmdline="mode=nocr4")


def test_lsl_lar():
    tiny.expect_ok("lsl")
