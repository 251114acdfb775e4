"""The lab itself (tests/lab): what a command sees inside, its exit status and output,
the watchdog on a silent lab and on a hung test, two lab hosts on one network, and
bad usage. Runs on the host; each test boots the lab (~10-20 s)."""
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
import ternlib  # noqa: E402

LAB = os.path.join(ternlib.ROOT, "tests", "lab")


def lab(args, timeout=300, env=None):
    t0 = time.time()
    p = subprocess.run([LAB] + list(args), cwd=ternlib.ROOT, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout, env=env)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace"), \
        time.time() - t0


INSIDE = r"""
echo "cpu: $(grep -m1 -o -w -E 'svm' /proc/cpuinfo) $(grep -m1 -o -w -E 'npt' /proc/cpuinfo)"
echo "kvm: $(stat -c '%t:%T %G %a' /dev/kvm)"
echo "kernel: $(uname -r)"
echo "pwd: $(pwd)"
echo "host file: $(cat /etc/debian_version)"
echo inside > tests/out/lab-probe
touch /etc/tern-lab-probe && echo "root writable"
[ -w /sys/fs/cgroup/cgroup.procs ] && echo "cgroup2"
lsmod | grep -q '^tun ' && lsmod | grep -q '^loop ' && echo "modules: tun loop"
echo "to stderr" >&2
exit 7
"""


def test_command_sees_the_lab_and_its_status_comes_back():
    probe = os.path.join(ternlib.OUT, "lab-probe")
    if os.path.exists(probe):
        os.unlink(probe)
    st, out, err, _ = lab(["--", "sh", "-c", INSIDE])
    assert st == 7, "exit status %r\n%s\n%s" % (st, out, err)
    with open("/etc/debian_version") as f:
        ver = f.read().strip()
    for want in ("cpu: svm npt", "kvm: a:e8 kvm 660", "pwd: %s" % ternlib.ROOT,
                 "host file: " + ver, "root writable", "cgroup2", "modules: tun loop", "to stderr"):
        assert want in out, "%r not in the lab's output:\n%s\n%s" % (want, out, err)
    assert "kernel: " in out and "cloud" not in out.split("kernel: ")[1].split()[0], out
    # The repository is shared read-write; the host's root only through an overlay.
    with open(probe) as f:
        assert f.read() == "inside\n"
    assert not os.path.exists("/etc/tern-lab-probe"), "a write in the lab reached the host's /etc"


def test_watchdog_stops_a_silent_lab_and_names_what_it_was_doing():
    cmd = "echo my-test.that-hangs > $TERN_LAB_PROGRESS; echo started; sleep 100000"
    st, out, err, took = lab(["--watchdog", "20", "--", "sh", "-c", cmd], timeout=240)
    assert st == 124, "exit status %r, want 124\n%s\n%s" % (st, out, err)
    assert "started" in out, out
    assert "no output for 20 s while in 'my-test.that-hangs'" in err, err
    # Where the lab's vCPU was, from QEMU's monitor.
    assert re.search(r"lab1 vCPU 0: CPL \d RIP [0-9a-f]+ \(", err), err
    assert took < 120, "the watchdog took %.0f s" % took


def test_runner_fails_a_hung_test_by_name():
    env = dict(os.environ, TERN_RUN_HANG="guest/basic.cmdline", TERN_LAB_WATCHDOG="20")
    p = subprocess.run([sys.executable, os.path.join(ternlib.ROOT, "tests", "run"), "--lab",
                        "guest", "-k", "basic."], cwd=ternlib.ROOT, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=300, env=env)
    out = p.stdout.decode(errors="replace")
    assert p.returncode == 1, "exit status %r\n%s" % (p.returncode, out)
    assert "ok guest/basic.serial_hello" in out, out
    assert "FAIL guest/basic.cmdline (stopped by the lab watchdog: no output for 20 s)" in out, out
    # The tests after it are not lost: a fresh lab runs them, and nothing runs twice.
    assert "lab: the tests after guest/basic.cmdline run in a fresh lab" in out, out
    for n in ("serial_hello", "e820_covers_the_guest", "exceptions_at_cpl0"):
        assert out.count("ok guest/basic.%s " % n) == 1, (n, out)
    assert re.search(r"^3 passed, 1 failed, 0 skipped$", out.splitlines()[-1]), out


def test_two_hosts_on_one_network():
    script = r"""
import labhosts, socket, sys
print("hosts", labhosts.hosts())
st, out = labhosts.run(2, ["sh", "-c", "hostname; ip -4 -o addr show"])
print("lab2 says", st, out.replace("\n", " | "))
srv = labhosts.spawn(2, ["python3", "-c",
    "import socket; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
    "s.bind(('10.99.0.2', 7171)); s.listen(1); c=s.accept()[0]; n=0\n"
    "while True:\n d=c.recv(65536)\n if not d: break\n n+=len(d)\nprint('received', n)"])
for _ in range(100):
    try:
        c = socket.create_connection(("lab2", 7171), timeout=5)
        break
    except OSError:
        import time; time.sleep(0.2)
c.sendall(b"x" * 1000000)
c.close()
print("server", labhosts.wait(2, srv, 60))
print("myself", socket.gethostname())
"""
    st, out, err, _ = lab(["--hosts", "2", "--memory", "1024", "--", "sh", "-c",
                           "cd tests/lib && python3 -c '%s'" % script.replace("'", "'\"'\"'")])
    assert st == 0, "exit status %r\n%s\n%s" % (st, out, err)
    assert "hosts ['10.99.0.1', '10.99.0.2']" in out, out
    assert re.search(r"lab2 says 0 lab2 \| .*inet 10\.99\.0\.2/24", out), out
    assert "server (0, 'received 1000000\\n')" in out, out
    assert "myself lab1" in out, out


def test_bad_usage_exits_2_naming_the_option():
    for args, words in ((["--hosts", "9", "--", "true"], "--hosts 9 is out of range: it must be from 1 to 4"),
                        (["--memory", "100", "--", "true"], "--memory 100 is out of range"),
                        (["--watchdog", "1", "--", "true"], "--watchdog 1 is out of range"),
                        ([], "no command given"),
                        (["--frobnicate", "--", "true"], "unrecognized arguments")):
        st, out, err, took = lab(args, timeout=30)
        assert st == 2 and words in err, "%r: exit %r\n%s%s" % (args, st, out, err)
