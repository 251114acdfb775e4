"""--vsock: bad input is a one-line error naming the problem, exit status 2, and no guest runs;
a stale socket at the path is replaced and the guest runs."""
import os
import shutil
import socket
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ternlib  # noqa: E402
import tiny  # noqa: E402

HELLO = "hello"
RANGE = "3 to 4294967294"


def expect_usage_error(args, *words):
    r = ternlib.run_vmm(["--kernel", ternlib.guest_path(HELLO)] + args, timeout=20)
    assert not r.timed_out and r.status == 2, "expected exit status 2: %r" % r
    assert r.out == "", "a guest ran (stdout not empty): %r" % r
    lines = [l for l in r.err.splitlines() if l.strip()]
    assert len(lines) == 1, "expected one line on stderr: %r" % r
    for w in words:
        assert w in lines[0], "error should mention %r: %r" % (w, r)
    return lines[0]


class TempDir:
    """A short temporary directory (Unix socket paths are limited to 108 bytes)."""

    def __enter__(self):
        self.path = tempfile.mkdtemp(prefix="tvs-", dir="/tmp")
        return self.path

    def __exit__(self, *exc):
        shutil.rmtree(self.path, ignore_errors=True)


def test_vsock_reserved_cids():
    with TempDir() as d:
        uds = os.path.join(d, "v.sock")
        for cid in ("0", "1", "2", "-1", "4294967295", "18446744073709551615", "0x10", "three", ""):
            expect_usage_error(["--vsock", "cid=%s,uds=%s" % (cid, uds)], "--vsock", "cid=", RANGE)


def test_vsock_existing_non_socket():
    with TempDir() as d:
        f = os.path.join(d, "file")
        with open(f, "w") as fh:
            fh.write("keep me\n")
        expect_usage_error(["--vsock", "cid=3,uds=" + f], "--vsock", f, "not a socket")
        with open(f) as fh:
            assert fh.read() == "keep me\n", "tern-vmm touched an existing file"
        sub = os.path.join(d, "dir")
        os.mkdir(sub)
        expect_usage_error(["--vsock", "cid=3,uds=" + sub], "--vsock", "not a socket")
        link = os.path.join(d, "link")
        os.symlink(f, link)
        expect_usage_error(["--vsock", "cid=3,uds=" + link], "--vsock", "not a socket")
        assert os.path.islink(link)


def test_vsock_socket_in_use():
    with TempDir() as d:
        uds = os.path.join(d, "v.sock")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(uds)
        s.listen(1)
        try:
            expect_usage_error(["--vsock", "cid=3,uds=" + uds], "--vsock", "listens on")
        finally:
            s.close()


def test_vsock_bad_paths_and_keys():
    with TempDir() as d:
        expect_usage_error(["--vsock", "cid=3,uds=/nonexistent-dir/v.sock"], "--vsock",
                           "/nonexistent-dir")
        expect_usage_error(["--vsock", "cid=3,uds=" + d + "/" + "a" * 120], "--vsock", "at most")
        expect_usage_error(["--vsock", "cid=3"], "--vsock", "uds= is required")
        expect_usage_error(["--vsock", "uds=" + d + "/v.sock"], "--vsock", "cid= is required")
        expect_usage_error(["--vsock", "cid=3,uds=" + d + "/v.sock,port=5"], "--vsock",
                           "unknown key 'port'")
        expect_usage_error(["--vsock", "cid=3,uds=" + d + "/a", "--vsock",
                            "cid=4,uds=" + d + "/b"], "--vsock", "only one")
        assert os.listdir(d) == [], "tern-vmm left files behind: %r" % os.listdir(d)


def test_vsock_stale_socket_replaced():
    """A socket file nobody listens on (a previous tern-vmm's) is replaced; the guest runs."""
    with TempDir() as d:
        uds = os.path.join(d, "v.sock")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(uds)
        s.close()
        for transport in ("pci", "mmio"):
            tiny.expect_ok(HELLO, extra=["--vsock", "cid=3,uds=" + uds,
                                         "--virtio-transport", transport])
