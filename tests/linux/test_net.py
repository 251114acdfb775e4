"""virtio-net (user-mode networking and TAP) and virtio-vsock driven by Debian's stock
kernel's own drivers, in one boot. Everything runs inside a network namespace this
test creates (a TAP device 192.168.77.1/24 and its own loopback); netcheck.py plays
the host side there. Needs root (netns, TAP)."""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import debian  # noqa: E402
import ternlib  # noqa: E402

MODULES = ["virtio_pci", "virtio_net", "vmw_vsock_virtio_transport"]

HERE = os.path.dirname(os.path.abspath(__file__))

UDHCPC = """#!/bin/sh
case "$1" in
bound|renew)
  ip addr add $ip/${mask:-24} dev $interface
  [ -n "$router" ] && ip route add default via $router ;;
esac
"""

INIT = r"""
mkdir -p /tmp
ip link set lo up
for i in /sys/class/net/*; do
  case "$(cat $i/address)" in
  52:54:00:12:34:01) U=${i##*/} ;;
  52:54:00:12:34:02) T=${i##*/} ;;
  esac
done
echo "NICS user=$U tap=$T"
ip link set $U up
udhcpc -i $U -s /udhcpc.sh -q -n -t 10 >/dev/null 2>&1
echo "DHCP-IP $(ip -4 -o addr show dev $U | awk '{print $4}')"
wget -q -O /tmp/blob http://10.0.2.2:18080/blob && echo "HTTP-SUM $(md5sum < /tmp/blob)"
nc 10.0.2.2 9003 < /tmp/blob
(echo reply-from-guest | nc -l -p 8022 > /tmp/fwd.in; echo "FWD-IN $(cat /tmp/fwd.in)") &
echo FWD-LISTEN
ip addr add 192.168.77.2/24 dev $T
ip link set $T up
(nc -l -p 9001 > /tmp/tap.in; echo "TAP-IN-SUM $(md5sum < /tmp/tap.in)") &
echo TAP-LISTEN
nc 192.168.77.1 9002 < /tmp/blob
/vsockecho serve 1234 &
/vsockecho send 5000 1048576
wait
poweroff -f
"""


def test_user_tap_vsock_one_boot():
    ternlib.need_kvm()
    if os.geteuid() != 0 or not shutil.which("ip"):
        raise ternlib.Missing("needs root and iproute2 (network namespaces, TAP)")
    k = debian.kernel()
    work = tempfile.mkdtemp(prefix="tern-net-")
    helper = os.path.join(work, "vsockecho")
    subprocess.run(["gcc", "-static", "-O2", "-o", helper,
                    os.path.join(HERE, "guestsrc", "vsockecho.c")], check=True)
    script = os.path.join(work, "udhcpc.sh")
    with open(script, "w") as f:
        f.write(UDHCPC)
    os.chmod(script, 0o755)
    initrd = debian.initrd(INIT, MODULES, {"/vsockecho": helper, "/udhcpc.sh": script})
    ns = "tern-net-%d" % os.getpid()
    sh = lambda *a: subprocess.run(["ip", "netns", "exec", ns] + list(a), check=True)
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        sh("ip", "link", "set", "lo", "up")
        sh("ip", "tuntap", "add", "dev", "tap0", "mode", "tap")
        sh("ip", "addr", "add", "192.168.77.1/24", "dev", "tap0")
        sh("ip", "link", "set", "tap0", "up")
        # Written as it runs: a run the lab's watchdog stops still leaves what it got to.
        log = os.path.join(ternlib.OUT, "linux-net.log")
        with open(log, "wb") as f:
            p = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-u",
                                os.path.join(HERE, "netcheck.py"), ternlib.vmm_path(), k, initrd,
                                work, debian.CMDLINE],
                               stdout=f, stderr=subprocess.STDOUT, timeout=1500)
    finally:
        subprocess.run(["ip", "netns", "del", ns])
    with open(log, "rb") as f:
        out = f.read().decode(errors="replace")
    failed = [l for l in out.splitlines() if l.startswith("NETCHECK ") and " FAIL" in l]
    checks = [l for l in out.splitlines() if l.startswith("NETCHECK ")]
    assert p.returncode == 0 and not failed and len(checks) >= 9, \
        "network checks failed:\n%s\n--- log tail\n%s" % ("\n".join(failed), out[-4000:])
    shutil.rmtree(work, ignore_errors=True)
