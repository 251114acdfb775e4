"""A Linux guest in tern-vmm's jail (--jail, docs/security.md) with every wall on: the small
kernel (vmlinux-min) with an ext4 disk it writes, virtio-rng, user-mode networking with a
host port forwarded to its httpd, and a vsock device (its socket made by the jailed
process); paused, snapshotted into a --jail-bind
directory, killed, and restored by a second jailed tern-vmm. The guest's /init:

- mounts /dev/vda (-o sync) on /mnt and appends an increasing counter to /mnt/counter,
  printing "tick N" about every 0.3 s;
- reads 64 bytes from /dev/hwrng and prints "RNG N bytes";
- brings eth0 up as 10.0.2.15 (slirp's network; tern.ip= on the command line gives another)
  and serves "JAILED-OK" with busybox httpd on port 8080;
- on "stop" from the console, unmounts the disk and powers off.

Checked: every thread of the jailed tern-vmm as in tests/guest/test_jail.py; the ticks, the
rng bytes and HTTP through the forwarded port; after the restore, the ticks go on from the
snapshot's and HTTP answers again; after "stop", e2fsck of the image is clean and the
counter holds 1..N with no gap."""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
import api  # noqa: E402
import initramfs  # noqa: E402
import ternlib  # noqa: E402

UID = 61010
CMDLINE = "console=ttyS0 panic=-1 rodata=off percpu_alloc=page quiet"
INIT = initramfs.PROLOGUE + r"""
mount -o sync /dev/vda /mnt || echo "MOUNT FAILED"
echo "RNG $(dd if=/dev/hwrng bs=64 count=1 2>/dev/null | wc -c) bytes"
ifconfig lo up
ip=$(sed -n 's/.*tern.ip=\([0-9.]*\).*/\1/p' /proc/cmdline)
ifconfig eth0 ${ip:-10.0.2.15} netmask 255.255.255.0 up
mkdir -p /www && echo JAILED-OK > /www/index.html
httpd -p 8080 -h /www
mkdir -p /tmp && mkfifo /tmp/never
n=0; [ -f /mnt/counter ] && n=$(wc -l < /mnt/counter)
( while true; do
    n=$((n + 1)); echo $n >> /mnt/counter; echo "tick $n"
    read -t 0.3 x <> /tmp/never
  done ) &
loop=$!
while read line; do
  case "$line" in
  stop) kill $loop; sleep 0.5; umount /mnt && echo "UNMOUNTED"; poweroff -f ;;
  esac
done
"""


def ticks(v):
    return [int(x) for x in re.findall(r"^tick (\d+)$", v.out(), re.M)]


def wait_ticks(v, above, timeout=120):
    end = time.time() + timeout
    while time.time() < end:
        t = ticks(v)
        if t and t[-1] > above:
            return t[-1]
        assert v.proc.poll() is None, "tern-vmm ended: %r" % v
        time.sleep(0.2)
    raise AssertionError("no tick above %d: %r" % (above, v))


def http(port, timeout=60):
    end, last = time.time() + timeout, None
    while time.time() < end:
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/" % port, timeout=5) as r:
                return r.read().decode().strip()
        except OSError as e:
            last = e
            time.sleep(0.5)
    raise AssertionError("no HTTP answer on port %d: %r" % (port, last))


def guest_files(work, mib):
    """An ext4 image of mib MiB in work, the VM's user's, and the initramfs with INIT,
    readable by it."""
    image = os.path.join(work, "disk.img")
    with open(image, "wb") as f:
        f.truncate(mib << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", image], check=True)
    os.chown(image, UID, UID)
    initrd = initramfs.build(INIT)
    os.chmod(initrd, 0o644)
    return image, initrd


def check_walls(pid):
    for tid, st in ternlib.thread_status(pid).items():
        who = "thread %s (%s)" % (tid, st["Name"])
        assert st["Uid"].split() == [str(UID)] * 4, "%s: Uid %r" % (who, st["Uid"])
        assert int(st["CapEff"], 16) == 0 and int(st["CapBnd"], 16) == 0, "%s: %r" % (who, st)
        assert st["NoNewPrivs"] == "1" and ternlib.filtered(st), "%s: %r" % (who, st)


def test_a_linux_guest_runs_snapshots_and_restores_in_the_jail():
    ternlib.need_kvm()
    kernel = os.path.join(ternlib.SHARED, "guest", "vmlinux-min")
    work = tempfile.mkdtemp(prefix="tern-jail-linux-")
    os.chmod(work, 0o711)
    run, snaps = os.path.join(work, "run"), os.path.join(work, "snaps")
    for d in (run, snaps):
        os.mkdir(d, 0o700)
        os.chown(d, UID, UID)
    image, initrd = guest_files(work, 32)
    port = ternlib.free_port()
    jail = ["--jail", "uid=%d,gid=%d" % (UID, UID), "--jail-bind", snaps]
    common = ["--api-sock", os.path.join(run, "api.sock")]
    vsock = ["--vsock", "cid=7,uds=%s" % os.path.join(run, "vsock.sock")]  # restored with the VM
    v = api.Vmm(jail + common + vsock + ["--kernel", kernel, "--initrd", initrd, "--memory", "128",
                                 "--cmdline", CMDLINE, "--disk", "path=%s" % image, "--rng",
                                 "--net", "user,hostfwd=tcp:127.0.0.1:%d-:8080" % port],
                log_name="linux-jail.log", stdin=subprocess.PIPE)
    r = None
    try:
        first = wait_ticks(v, 3)
        assert v.wait_for("RNG 64 bytes", 10), "no entropy from virtio-rng: %r" % v
        assert "MOUNT FAILED" not in v.out(), v
        check_walls(ternlib.jailed_pid(v))
        assert http(port) == "JAILED-OK"
        vs = os.stat(os.path.join(run, "vsock.sock"))  # the vsock device's socket, made in the jail
        assert vs.st_uid == UID, "vsock.sock belongs to uid %d" % vs.st_uid
        c = api.ApiClient(os.path.join(run, "api.sock"))
        api.expect_204(c.patch("/vm", {"state": "Paused"}), "PATCH /vm Paused", v)
        state, mem = os.path.join(snaps, "vm.state"), os.path.join(snaps, "vm.mem")
        api.expect_204(c.put("/snapshot/create", {"snapshot_path": state, "mem_file_path": mem}),
                       "PUT /snapshot/create into the --jail-bind directory", v)
        time.sleep(1)  # the console lines printed before the pause, read
        at = ticks(v)[-1]
        api.expect_204(c.patch("/vm", {"state": "Resumed"}), "PATCH /vm Resumed", v)
        wait_ticks(v, at + 2)
        assert os.stat(state).st_uid == UID, "the snapshot was written by another user"
        # The first VM goes (as a crash would); a second jailed tern-vmm restores it.
        v.proc.send_signal(signal.SIGKILL)
        v.wait(30)
        for f in ("api.sock", "vsock.sock"):
            if os.path.exists(os.path.join(run, f)):
                os.unlink(os.path.join(run, f))
        r = api.Vmm(jail + common + ["--restore", state, "--restore-mem", mem],
                    log_name="linux-jail-restored.log", stdin=subprocess.PIPE)
        got = wait_ticks(r, at)
        # The next tick, or the one after if the pause split its line between the two VMs.
        assert at < ticks(r)[0] <= at + 2, "the restored guest should go on from tick %d: %r" % (
            at, ticks(r)[:5])
        check_walls(ternlib.jailed_pid(r))
        assert http(port) == "JAILED-OK"
        print("jailed Linux guest: ticks from %d, snapshot at %d, restored to %d; rng, HTTP over "
              "user networking, snapshot and restore in the jail" % (first, at, got))
        r.proc.stdin.write(b"stop\n")
        r.proc.stdin.flush()
        assert r.wait(60) == 0, "the restored guest did not power off: %r" % r
        assert "UNMOUNTED" in r.out(), r
    finally:
        v.stop()
        if r:
            r.stop()
    fsck = subprocess.run(["e2fsck", "-fn", image], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    dump = subprocess.run(["debugfs", "-R", "cat /counter", image], capture_output=True, text=True)
    nums = [int(x) for x in dump.stdout.split()]
    assert nums == list(range(1, len(nums) + 1)) and len(nums) >= at, nums[-5:]
    shutil.rmtree(work, ignore_errors=True)


def test_a_jailed_vm_in_a_network_namespace_on_its_own_tap():
    """--jail netns=/run/netns/NS: the jailed tern-vmm joins a network namespace and opens a
    TAP made there for its uid (`ip tuntap add ... user UID`), which it may attach to with no
    capability at all; a host program in that namespace reaches the guest's httpd through
    it. The jail's UTS namespace carries the VM's --id as its host name."""
    ternlib.need_kvm()
    kernel = os.path.join(ternlib.SHARED, "guest", "vmlinux-min")
    work = tempfile.mkdtemp(prefix="tern-jail-tap-")
    os.chown(work, UID, UID)
    image, initrd = guest_files(work, 16)
    ns = "tern-jail-%d" % os.getpid()
    inns = lambda *a, **kw: subprocess.run(["ip", "netns", "exec", ns] + list(a), **kw)
    subprocess.run(["ip", "netns", "add", ns], check=True)
    v = None
    try:
        inns("ip", "link", "set", "lo", "up", check=True)
        inns("ip", "tuntap", "add", "dev", "tapj", "mode", "tap", "user", str(UID), "vnet_hdr",
             check=True)
        inns("ip", "addr", "add", "192.168.90.1/24", "dev", "tapj", check=True)
        inns("ip", "link", "set", "tapj", "up", check=True)
        v = api.Vmm(["--jail", "uid=%d,gid=%d,netns=/run/netns/%s" % (UID, UID, ns), "--id", "web-jailed",
                     "--api-sock", os.path.join(work, "api.sock"), "--kernel", kernel,
                     "--initrd", initrd, "--memory", "128",
                     "--cmdline", CMDLINE + " tern.ip=192.168.90.2", "--disk", "path=%s" % image,
                     "--net", "tap=tapj"], log_name="linux-jail-tap.log", stdin=subprocess.PIPE)
        wait_ticks(v, 2)
        check_walls(ternlib.jailed_pid(v))
        joined = os.stat("/proc/%d/ns/net" % ternlib.jailed_pid(v)).st_ino
        assert joined == os.stat("/run/netns/" + ns).st_ino, "the jail is not in netns %s" % ns
        got, end = None, time.time() + 60
        while time.time() < end:
            p = inns(sys.executable, "-c", "import urllib.request as u; print(u.urlopen("
                     "'http://192.168.90.2:8080/', timeout=5).read().decode(), end='')",
                     capture_output=True, text=True)
            if p.returncode == 0:
                got = p.stdout.strip()
                break
            time.sleep(0.5)
        assert got == "JAILED-OK", "no HTTP answer through the jailed VM's TAP: %r" % v
        uts = subprocess.run(["nsenter", "-t", str(ternlib.jailed_pid(v)), "-u", "hostname"],
                             capture_output=True, text=True)
        assert uts.stdout.strip() == "web-jailed", uts
        v.proc.stdin.write(b"stop\n")
        v.proc.stdin.flush()
        assert v.wait(60) == 0, "the guest did not power off: %r" % v
    finally:
        if v:
            v.stop()
        subprocess.run(["ip", "netns", "del", ns])
    shutil.rmtree(work, ignore_errors=True)
