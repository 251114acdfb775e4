"""The serial console: host input reaches the guest through the UART's interrupt,
pipes pass every byte unchanged, and on a terminal Ctrl-a x quits tern-vmm."""
import os
import pty
import select
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ternlib  # noqa: E402
import tiny  # noqa: E402


def read_pty(master, out, until=None, timeout=20.0):
    """Appends what the pty says to out until `until` shows up, EOF, or the timeout."""
    deadline = time.time() + timeout
    while time.time() < deadline and not (until and until in out):
        if not select.select([master], [], [], 0.2)[0]:
            if until is None:
                break
            continue
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the other side closed
            break
        if not chunk:
            break
        out += chunk
    return out


def test_pipe_input_reaches_guest_unchanged():
    data = b"hi \x01x tern\n"  # Ctrl-a x is data, not a command, when stdin is a pipe
    ternlib.need_kvm()
    r = ternlib.run_vmm(["--kernel", ternlib.guest_path("echo"), "--debug-exit"], timeout=30,
                        stdin_data=data)
    want = "tiny: got " + " ".join("%x" % b for b in data)
    assert want in r.out and r.status == 0, "expected %r: %s\n%r" % (want, tiny.describe(r), r)


def test_input_beyond_the_fifo_reaches_guest():
    # More than the UART's 1024-byte FIFO, sent before the guest reads any: the rest
    # waits in tern-vmm and goes in by the retry timer, armed only while it waits.
    data = b"x" * 1223 + b"\n"
    ternlib.need_kvm()
    r = ternlib.run_vmm(["--kernel", ternlib.guest_path("echo"), "--debug-exit"], timeout=30,
                        stdin_data=data)
    assert "tiny: got 78 78" in r.out and r.status == 0, "newline not seen: %s\n%r" % (
        tiny.describe(r), r)


def test_tty_ctrl_a_x_quits():
    ternlib.need_kvm()
    master, slave = pty.openpty()
    p = subprocess.Popen([ternlib.vmm_path(), "--kernel", ternlib.guest_path("echo"),
                          "--debug-exit"], stdin=slave, stdout=slave, stderr=subprocess.PIPE)
    os.close(slave)
    try:
        out = read_pty(master, b"", b"waiting for input")
        assert b"waiting for input" in out, "guest did not start: %r" % out
        os.write(master, b"\x01x")
        status = p.wait(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)
    err = p.stderr.read().decode()
    assert status == 0, "Ctrl-a x should end tern-vmm with status 0, got %r: %s" % (status, err)
    assert "quit from the console" in err, err
    assert "tiny: got" not in out.decode(errors="replace"), "the escape reached the guest: %r" % out


def test_tty_ctrl_a_a_sends_ctrl_a():
    ternlib.need_kvm()
    master, slave = pty.openpty()
    p = subprocess.Popen([ternlib.vmm_path(), "--kernel", ternlib.guest_path("echo"),
                          "--debug-exit"], stdin=slave, stdout=slave, stderr=subprocess.PIPE)
    os.close(slave)
    try:
        out = read_pty(master, b"", b"waiting for input")
        # raw mode: Enter arrives as \r, so end the line with an explicit \n (Ctrl-j)
        os.write(master, b"\x01a!\n")
        out = read_pty(master, out, b"tiny: echo ok", timeout=10)
        status = p.wait(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)
    assert status == 0 and b"tiny: got 1 21 a" in out, "status %r, output %r" % (status, out)


def test_terminal_restored_after_exit():
    import termios
    ternlib.need_kvm()
    master, slave = pty.openpty()
    try:
        before = termios.tcgetattr(slave)
        p = subprocess.run([ternlib.vmm_path(), "--kernel", ternlib.guest_path("hello"),
                            "--debug-exit"], stdin=slave, stdout=slave, stderr=subprocess.PIPE,
                           timeout=30)
        after = termios.tcgetattr(slave)
    finally:
        os.close(slave)
        os.close(master)
    assert p.returncode == 0, p.stderr
    assert before == after, "tern-vmm left the terminal in raw mode: %r -> %r" % (before, after)
