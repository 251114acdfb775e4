"""Bad input: each is a one-line error naming the problem, exit status 2, and no guest runs."""
import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
import ternlib  # noqa: E402

HELLO = "hello"


def expect_usage_error(args, *words):
    r = ternlib.run_vmm(args, timeout=20)
    assert not r.timed_out and r.status == 2, "expected exit status 2: %r" % r
    assert r.out == "", "a guest ran (stdout not empty): %r" % r
    lines = [l for l in r.err.splitlines() if l.strip()]
    assert len(lines) == 1, "expected one line on stderr: %r" % r
    for w in words:
        assert w in lines[0], "error should mention %r: %r" % (w, r)
    return lines[0]


def test_missing_kernel():
    expect_usage_error(["--kernel", "/nonexistent/vmlinux"], "--kernel", "/nonexistent/vmlinux",
                       "No such file")


def test_no_kernel_option():
    expect_usage_error([], "--kernel")


def test_kernel_is_a_directory():
    expect_usage_error(["--kernel", "/tmp"], "--kernel", "not a regular file")


def test_unreadable_kernel():
    # Root reads any file, so run tern-vmm as nobody against a root-only kernel file.
    import shutil
    import subprocess
    with tempfile.NamedTemporaryFile(dir="/tmp") as f:
        f.write(b"x" * 4096)
        f.flush()
        os.chmod(f.name, 0o600)
        prefix = []
        if os.geteuid() == 0:
            if not shutil.which("setpriv"):
                raise ternlib.Missing("setpriv (util-linux) is missing")
            prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        p = subprocess.run(prefix + [ternlib.vmm_path(), "--kernel", f.name], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=20)
        err = p.stderr.decode()
        assert p.returncode == 2 and p.stdout == b"", "expected exit 2: %r %r" % (p.returncode, err)
        assert "--kernel" in err and "Permission denied" in err and len(err.splitlines()) == 1, err


def test_file_that_is_no_kernel():
    with tempfile.NamedTemporaryFile() as f:
        f.write(b"this is not a kernel\n" * 100)
        f.flush()
        expect_usage_error(["--kernel", f.name], "--kernel", "not an ELF or bzImage")


def test_truncated_elf():
    with open(ternlib.guest_path(HELLO), "rb") as src, tempfile.NamedTemporaryFile() as f:
        f.write(src.read()[:100])
        f.flush()
        expect_usage_error(["--kernel", f.name], "--kernel", "ELF")


def test_initrd_does_not_fit():
    with tempfile.NamedTemporaryFile() as f:
        f.truncate(64 << 20)
        expect_usage_error(["--kernel", ternlib.guest_path(HELLO), "--initrd", f.name,
                            "--memory", "32"], "--initrd", "does not fit")


def test_missing_initrd():
    expect_usage_error(["--kernel", ternlib.guest_path(HELLO), "--initrd", "/nonexistent/initrd"],
                       "--initrd", "/nonexistent/initrd")


def test_memory_out_of_range():
    for v in ("0", "15", "1048577", "12x", "-5", ""):
        expect_usage_error(["--kernel", ternlib.guest_path(HELLO), "--memory", v],
                           "--memory", "16 to 1048576")


def test_cpus_out_of_range():
    for v in ("0", "255", "two"):
        expect_usage_error(["--kernel", ternlib.guest_path(HELLO), "--cpus", v], "--cpus", "1 to 254")


def test_kernel_larger_than_memory():
    # vmlinux-min is linked at 16 MiB: 16 MiB of RAM cannot hold it.
    k = os.path.join(ternlib.SHARED, "guest", "vmlinux-min")
    if not os.path.exists(k):
        raise ternlib.Missing("no %s" % k)
    expect_usage_error(["--kernel", k, "--memory", "16"], "--memory", "needs")


def test_unknown_option_and_bad_choices():
    expect_usage_error(["--kernel", ternlib.guest_path(HELLO), "--frobnicate"], "--frobnicate")
    expect_usage_error(["--kernel", ternlib.guest_path(HELLO), "--cpu-template", "fast"],
                       "--cpu-template", "host, compat")
    expect_usage_error(["--kernel", ternlib.guest_path(HELLO), "--on-reboot", "later"],
                       "--on-reboot", "exit, restart")
    expect_usage_error(["--kernel", ternlib.guest_path(HELLO), "--boot-entry", "pvh"],
                       "--boot-entry", "PVH note")


def test_no_kvm_access():
    expect_usage_error(["--kernel", ternlib.guest_path(HELLO), "--kvm-device", "/nonexistent/kvm"],
                       "/nonexistent/kvm")
    # Something that is not KVM at all.
    expect_usage_error(["--kernel", ternlib.guest_path(HELLO), "--kvm-device", "/dev/null"],
                       "/dev/null")
