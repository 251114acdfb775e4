"""The platform as the tiny guests see it: serial output, command line, e820, exception delivery."""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tiny  # noqa: E402


def test_serial_hello():
    r = tiny.expect_ok("hello")
    assert "tiny: hello from a tiny guest\n" in r.out, "no greeting on stdout\n%r" % r


def test_cmdline():
    r = tiny.expect_ok("hello", cmdline="tiny.word=abc mode=xyz")
    got = tiny.lines(r, "cmdline")
    assert got and "tiny.word=abc mode=xyz" in got[0], "command line not passed\n%r" % r


def test_e820_covers_the_guest():
    r = tiny.expect_ok("hello")
    ram = []
    for line in tiny.lines(r, "e820 "):
        m = re.match(r"e820 0x([0-9a-f]+) 0x([0-9a-f]+) (\d+)$", line)
        assert m, "bad e820 line %r\n%r" % (line, r)
        addr, size, kind = int(m.group(1), 16), int(m.group(2), 16), int(m.group(3))
        if kind == 1:
            ram.append((addr, addr + size))
    assert any(a <= 0x100000 and 0x200000 <= b for a, b in ram), \
        "no usable-RAM e820 entry covers 1-2 MiB: %r\n%r" % (ram, r)


def test_exceptions_at_cpl0():
    # #DE, #GP, #PF delivered to the guest's IDT and resumed with iretq; nothing emulated by tern.
    tiny.expect_ok("exceptions")
