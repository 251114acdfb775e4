"""virtio-net backends on the host, without a guest: TAP in a fresh network namespace, and
tern-vmm's answers to bad --net input. Every network namespace here is created by the test
and deleted after it; only loopback and the namespace's own addresses are used."""
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
import ternlib  # noqa: E402


def need_root_ip():
    if os.geteuid() != 0:
        raise ternlib.Missing("needs root (network namespaces, tap interfaces)")
    if not shutil.which("ip"):
        raise ternlib.Missing("the ip command (iproute2) is missing")
    if not os.path.exists("/dev/net/tun"):
        raise ternlib.Missing("/dev/net/tun is missing")


class Netns:
    """A network namespace of our own with loopback up; deleted on exit."""

    def __init__(self):
        self.name = "tern-test-%d" % os.getpid()

    def __enter__(self):
        subprocess.run(["ip", "netns", "del", self.name], stderr=subprocess.DEVNULL)
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        self.run(["ip", "link", "set", "lo", "up"], check=True)
        return self

    def run(self, args, **kw):
        return subprocess.run(["ip", "netns", "exec", self.name] + list(args), **kw)

    def __exit__(self, *exc):
        subprocess.run(["ip", "netns", "del", self.name], stderr=subprocess.DEVNULL)


def run_unit_in_netns(pattern):
    exe = os.path.join(ternlib.BUILD, "unit-tests")
    if not os.path.exists(exe):
        raise ternlib.Missing("%s is not built" % exe)
    with Netns() as ns:
        env = dict(os.environ, TERN_NET_NETNS="1")
        p = ns.run([exe, pattern], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                   timeout=300)
    out = p.stdout.decode(errors="replace")
    ok = [l for l in out.splitlines() if l.startswith("ok ")]
    assert p.returncode == 0 and "FAIL" not in out, out[-4000:]
    assert "not run" not in out, "a case did not run inside the namespace:\n" + out
    assert ok, "no %s cases ran:\n%s" % (pattern, out)
    return ok


def test_tap_backend_in_netns():
    """Create/open/offload ioctls, tap-fd, MTU, frames both ways, unprivileged errors."""
    need_root_ip()
    ok = run_unit_in_netns("net_tap")
    assert len(ok) >= 8, ok


def test_device_over_tap_in_netns():
    """The virtio-net device on a real tap: transmit and mergeable receive."""
    need_root_ip()
    run_unit_in_netns("net_dev_over_tap")


# ---- tern-vmm's answers to bad --net input (needs --net in tern-vmm) ----

def need_net_option():
    r = ternlib.run_vmm(["--help"], timeout=20)
    if "--net" not in r.out:
        raise ternlib.Missing("tern-vmm has no --net option yet")


def expect_usage_error(args, *words, prefix=()):
    p = subprocess.run(list(prefix) + [ternlib.vmm_path()] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=30)
    err = p.stderr.decode(errors="replace")
    lines = [l for l in err.splitlines() if l.strip()]
    assert p.returncode == 2, "expected exit status 2, got %r: %r" % (p.returncode, err)
    assert p.stdout == b"", "a guest ran: %r" % p.stdout
    assert len(lines) == 1, "expected one line on stderr: %r" % err
    for w in words:
        assert w in lines[0], "error should mention %r: %r" % (w, lines[0])


def test_bad_net_specs():
    need_net_option()
    # warn: the software-KVM notice (info) is not part of the answer.
    kernel = ["--kernel", ternlib.guest_path("hello"), "--log-level", "warn"]
    expect_usage_error(kernel + ["--net", "tap=t0,mac=01:02:03:04:05:06"], "--net", "mac=", "multicast")
    expect_usage_error(kernel + ["--net", "tap=t0,mac=52:54:00:12:34"], "--net", "mac=")
    expect_usage_error(kernel + ["--net", "user,mtu=20"], "--net", "mtu=", "68")
    expect_usage_error(kernel + ["--net", "user,hostfwd=tcp:22-:22"], "--net", "hostfwd=")
    expect_usage_error(kernel + ["--net", "tap=waytoolonginterfacename"], "--net", "tap=")
    expect_usage_error(kernel + ["--net", "bogus"], "--net", "bogus")
    expect_usage_error(kernel + ["--net", "user"] * 9, "--net", "8")
    expect_usage_error(kernel + ["--net", "tap-fd=999"], "tap-fd=999", "not an open file descriptor")


def test_missing_tap_without_permission():
    """A tap that does not exist, and no CAP_NET_ADMIN to create it: exit 2, one line."""
    need_root_ip()
    need_net_option()
    ternlib.need_kvm()
    if not shutil.which("setpriv"):
        raise ternlib.Missing("setpriv (util-linux) is missing")
    with Netns() as ns:
        drop = ["ip", "netns", "exec", ns.name, "setpriv", "--bounding-set=-net_admin",
                "--inh-caps=-net_admin"]
        expect_usage_error(["--kernel", ternlib.guest_path("hello"), "--log-level", "warn",
                            "--net", "tap=ternnope0"],
                           "tap=ternnope0", "does not exist", "CAP_NET_ADMIN", prefix=drop)
        r = ns.run(["ip", "link", "show", "ternnope0"], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
        assert r.returncode != 0, "the tap was created anyway"
