"""Ring 3: iretq to user mode, syscall/sysretq, int $0x80/iretq, a #GP from ring 3."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tiny  # noqa: E402


def test_user_mode_round_trips():
    # Progress lines show how far it got: "entering ring 3", "syscall from ring 3",
    # "returning with sysretq", "int $0x80 from ring 3", "hlt in ring 3", "last syscall".
    tiny.expect_ok_but_check("user", "sysflags")


def test_syscall_keeps_flags_fmask_does_not_clear():
    tiny.expect_check("user", "sysflags")
