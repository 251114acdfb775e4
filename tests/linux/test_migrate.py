"""Live migration of a running Linux guest (Debian's stock kernel) between two tern-vmm on
this host, with the disk on storage both reach (the same image file), a TAP NIC on each
side of one bridge, and traffic the whole time.

The guest mounts an ext4 disk (-o sync) and appends a counter to it every 0.5 s; it runs
guestsrc/migcheck.c: a TCP echo server and a ticker that sends the host a UDP datagram
every 2 ms (sequence, guest monotonic and real-time clocks). A host program in the network
namespace streams a pattern into the echo server the whole time and checks every byte
that comes back, and records every tick. The destination is `tern-vmm --api-sock` told
PUT /migrate/incoming with network_overrides naming the second TAP; the source is told
PUT /migrate.

Checked: the source exits 0 (migrated); the TCP connection carries on with no byte lost
or changed in either direction; no tick is lost and the guest's monotonic clock never
goes back; the longest gap in the ticks during the migration (the downtime as the
network saw it) is printed beside tern's own figure, which must not be longer; the
guest's real-time clock keeps step with the host's (the destination moves it on by the
downtime, so it is not left behind by it); then "stop" on the destination's console:
the guest unmounts and powers off, e2fsck of the image is clean and the counter file
holds exactly 1..N.
Logs: tests/out/linux-migrate-*.log.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import api  # noqa: E402
import debian  # noqa: E402
import ternlib  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
MODULES = ["virtio_pci", "virtio_blk", "virtio_net"]
MEM_MIB = 256
MAC = "52:54:00:12:34:07"
HOST_IP, GUEST_IP, UDP_PORT, TCP_PORT = "192.168.78.1", "192.168.78.2", 5001, 5000

INIT = r"""
ip link set lo up
for i in /sys/class/net/*; do
  [ "$(cat $i/address)" = "%(mac)s" ] && T=${i##*/}
done
ip addr add %(guest)s/24 dev $T
ip link set $T up
n=0
while [ $n -lt 300 ]; do ls /sys/block | grep -q vd && break; sleep 1; n=$((n+1)); done
for d in /sys/block/vd*; do [ "$(cat $d/serial)" = tern-mig ] && D=/dev/${d##*/}; done
mount -t ext4 -o sync $D /mnt && echo "MOUNTED $D" || echo "MOUNT-FAIL $D"
/migcheck %(host)s %(uport)d %(tport)d &
mkdir -p /tmp
mkfifo /tmp/pause
( n=0
  while :; do
    n=$((n+1))
    echo $n >> /mnt/counter
    echo "tick $n"
    read -t 0.5 x <> /tmp/pause
  done ) &
L=$!
echo "WORKLOAD-STARTED nic=$T disk=$D"
while read cmd; do
  case "$cmd" in
  stop) break ;;
  esac
done
kill $L
wait $L
echo "COUNTER-LAST $(tail -n 1 /mnt/counter)"
umount /mnt && echo UMOUNT-OK
poweroff -f
""" % {"mac": MAC, "guest": GUEST_IP, "host": HOST_IP, "uport": UDP_PORT, "tport": TCP_PORT}

# Runs in the namespace: records the guest's ticks and streams a pattern through its echo
# server until STOPFILE exists; then writes a JSON summary (and every tick) to OUT.
HOST_SIDE = r"""
import json, os, socket, struct, sys, threading, time
host, guest, uport, tport, stopfile, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), \
    int(sys.argv[4]), sys.argv[5], sys.argv[6]
ticks, done = [], threading.Event()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind((host, uport))
u.settimeout(0.5)
def rx_udp():
    while not done.is_set():
        try:
            d = u.recv(64)
        except socket.timeout:
            continue
        if len(d) == 24:
            ticks.append((time.time(),) + struct.unpack("<QQQ", d))
threading.Thread(target=rx_udp, daemon=True).start()
def pat(off, n):
    return bytes(((i * 7) ^ (i >> 9)) & 0xff for i in range(off, off + n))
end = time.time() + 120
while True:
    try:
        c = socket.create_connection((guest, tport), timeout=5)
        break
    except OSError:
        if time.time() > end:
            raise
        time.sleep(0.5)
# Short enough that a guest gone quiet ends this (with an error) well inside the lab's
# watchdog, which would otherwise stop the whole lab and lose what the test knows.
c.settimeout(45)
st = {"sent": 0, "echoed": 0, "mismatch": None, "error": None}
def sender():
    try:
        while not os.path.exists(stopfile):
            b = pat(st["sent"], 8192)
            c.sendall(b)
            st["sent"] += len(b)
            time.sleep(0.01)
        c.shutdown(socket.SHUT_WR)
    except OSError as e:
        st["error"] = "send: %r" % e
def receiver():
    try:
        while True:
            d = c.recv(65536)
            if not d:
                break
            if st["mismatch"] is None and d != pat(st["echoed"], len(d)):
                st["mismatch"] = st["echoed"]
            st["echoed"] += len(d)
    except OSError as e:
        st["error"] = "recv: %r" % e
ts = [threading.Thread(target=sender), threading.Thread(target=receiver)]
for t in ts:
    t.start()
print("READY", flush=True)
for t in ts:
    t.join()
time.sleep(0.5)
done.set()
st["ticks"] = ticks
with open(out, "w") as f:
    json.dump(st, f)
print("DONE", flush=True)
"""


def test_debian_live_migration_keeps_tcp_disk_and_clock():
    migrate_linux(copy_storage=False)


def test_debian_live_migration_copies_a_local_disk():
    """copy_storage: the destination gets its own copy of the image (disk_paths names
    it), streamed while the guest writes; the source's image is left as it was."""
    migrate_linux(copy_storage=True)


def test_debian_live_migration_copies_a_qcow2_disk():
    """copy_storage of a disk that is a qcow2 overlay over the raw ext4 image, which the
    guest writes through while it migrates: the destination gets one raw image, the chain
    flattened (e2fsck, the counter), and opens it as raw; the overlay stays clean."""
    migrate_linux(copy_storage=True, qcow2=True)


def test_debian_live_migration_post_copy_with_a_local_disk():
    """post_copy with copy_storage: a 1 ms limit the ticking guest never fits, so after three
    rounds the VM switches over with its dirty pages left behind and pulls them at the
    destination; the disk's last writes went during the switchover, so its copy is whole
    (e2fsck, the counter) though RAM came after."""
    migrate_linux(copy_storage=True, post_copy=True)


def migrate_linux(copy_storage, post_copy=False, qcow2=False):
    ternlib.need_kvm()
    if qcow2 and not shutil.which("qemu-img"):
        raise ternlib.Missing("qemu-img is not installed (qemu-utils; scripts/setup installs it)")
    if not api.can_make_netns():
        raise ternlib.Missing("needs root and iproute2 (network namespaces, TAP, bridge)")
    for tool in ("gcc", "mkfs.ext4", "e2fsck", "debugfs"):
        if not shutil.which(tool):
            raise ternlib.Missing("%s is not installed" % tool)
    k = debian.kernel()
    work = tempfile.mkdtemp(prefix="tern-mig-")
    ns = None
    vmms = []
    host = None

    def note(msg):
        print("  migrate: " + msg, flush=True)

    try:
        helper = os.path.join(work, "migcheck")
        subprocess.run(["gcc", "-static", "-O2", "-pthread", "-o", helper,
                        os.path.join(HERE, "guestsrc", "migcheck.c")], check=True)
        initrd = debian.initrd(INIT, MODULES, {"/migcheck": helper})
        disk = os.path.join(work, "disk.img")
        with open(disk, "wb") as f:
            f.truncate(32 << 20)
        subprocess.run(["mkfs.ext4", "-q", "-F", disk], check=True, stdout=subprocess.DEVNULL)
        top = disk
        if qcow2:
            top = os.path.join(work, "disk.qcow2")
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", disk, "-F", "raw",
                            top], check=True)
        ns = api.TapNetns("mig", tap="tmiga")
        ns.run("ip", "link", "add", "tmigbr", "type", "bridge")
        ns.run("ip", "tuntap", "add", "dev", "tmigb", "mode", "tap")
        for dev in ("tmiga", "tmigb"):
            ns.run("ip", "link", "set", dev, "master", "tmigbr")
            ns.run("ip", "link", "set", dev, "up")
        ns.run("ip", "addr", "add", HOST_IP + "/24", "dev", "tmigbr")
        ns.run("ip", "link", "set", "tmigbr", "up")

        src, c = api.start_api_vmm([
            "--kernel", k, "--initrd", initrd, "--memory", str(MEM_MIB), "--cmdline",
            debian.CMDLINE, "--disk", "path=%s,cache=writeback,id=tern-mig" % top,
            "--net", "tap=tmiga,mac=" + MAC], netns=ns.name, log_name="linux-migrate-source.log",
            workdir=work, sock_name="src.sock", stdin=subprocess.PIPE)
        vmms.append(src)
        t0 = time.time()
        assert src.wait_for("WORKLOAD-STARTED", timeout=300), "no workload: %r" % src
        assert "MOUNTED /dev/vd" in src.out(), "the guest did not mount its disk: %r" % src
        assert src.wait_for("MIGCHECK echo listening", timeout=60), "no echo server: %r" % src
        note("boot to workload: %.1fs" % (time.time() - t0))

        stopfile, summary = os.path.join(work, "stop"), os.path.join(work, "host.json")
        host = subprocess.Popen(["ip", "netns", "exec", ns.name, sys.executable, "-c", HOST_SIDE,
                                 HOST_IP, GUEST_IP, str(UDP_PORT), str(TCP_PORT), stopfile,
                                 summary], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        line = host.stdout.readline().decode(errors="replace").strip()
        assert line == "READY", "the host side did not connect to the guest: %r\n%r" % (
            line + host.stdout.read().decode(errors="replace"), src)
        time.sleep(5)

        dst, d = api.start_api_vmm([], netns=ns.name, log_name="linux-migrate-destination.log",
                                   workdir=work, sock_name="dst.sock", stdin=subprocess.PIPE)
        vmms.append(dst)
        incoming = os.path.join(work, "incoming.sock")
        body = {"source": "unix:" + incoming,
                "network_overrides": [{"iface_id": "eth0", "host_dev_name": "tmigb"}]}
        image = disk
        if copy_storage:
            image = os.path.join(work, "disk-destination.img")
            body["disk_paths"] = [{"drive_id": "tern-mig", "path_on_host": image}]
        api.expect_204(d.put("/migrate/incoming", body), "PUT /migrate/incoming", dst)
        end = time.time() + 30
        while not os.path.exists(incoming) and time.time() < end:
            time.sleep(0.05)
        assert os.path.exists(incoming), "the destination never listened: %r" % dst
        t_mig = time.time()
        body = {"destination": "unix:" + incoming, "copy_storage": copy_storage}
        if post_copy:
            # The ticker dirties pages every 2 ms, and at 16 MiB/s even one round's few
            # dozen take longer than 1 ms to send: pre-copy never converges.
            body.update(post_copy=True, downtime_limit_ms=1, bandwidth_mib_s=16)
        api.expect_204(c.put("/migrate", body), "PUT /migrate", src)
        last = None
        while src.proc.poll() is None and time.time() < t_mig + 600:
            try:
                st, last = c.get("/migrate")
            except OSError:
                break
            time.sleep(0.5)
        assert src.wait(60) == 0, "the source did not end migrated: %r\n%r" % (last, src)
        src.save_log()
        assert "migrated" in src.err(), src
        if post_copy:
            assert "switching to post-copy" in src.err(), src
            assert dst.wait_for("post-copy complete", 60, stream="err"), dst
        t_done = time.time()
        st, rep = d.get("/migrate")
        assert st == 200 and rep["status"] == "completed", rep
        note("migrated in %.1fs: tern's report %s" % (t_done - t_mig, json.dumps(rep)))
        assert api.vm_state(d) == "Running"

        time.sleep(8)
        open(stopfile, "w").close()
        out, _ = host.communicate(timeout=150)
        assert host.returncode == 0 and b"DONE" in out, out
        with open(summary) as f:
            s = json.load(f)
        ticks = s.pop("ticks")
        note("TCP through the migration: %r" % s)
        if s["error"] is not None:
            last = max((t[0] for t in ticks), default=t_mig)
            note("the last tick came %.1fs after the migration ended; the destination's "
                 "threads: %s\n  its console's last lines:\n%s\n  its stderr:\n%s"
                 % (last - t_done, dst.threads(), dst.tail(15), dst.tail(15, "err")))
        assert s["error"] is None and s["mismatch"] is None, "the TCP stream broke: %r" % s
        assert s["sent"] > 0 and s["echoed"] == s["sent"], "bytes lost: %r" % s
        assert any(t[0] > t_done + 2 for t in ticks), "no tick from the destination"
        seqs = [t[1] for t in ticks]
        lost = (seqs[-1] - seqs[0] + 1) - len(set(seqs))
        monos = [t[2] for t in sorted(ticks, key=lambda t: t[1])]
        assert all(b > a for a, b in zip(monos, monos[1:])), "the guest's monotonic clock went back"
        gaps = sorted(((b[0] - a[0], a[0]) for a, b in zip(ticks, ticks[1:])), reverse=True)
        # The switchover's gap is the longest within the migration; one outside it (the lab's
        # emulated guest stalls now and then on a loaded host) is reported, not judged.
        during = [g for g in gaps if t_mig - 1 <= g[1] <= t_done + 1]
        assert during, "no ticks during the migration"
        gap, at = during[0]
        outside = [g for g in gaps if not t_mig - 1 <= g[1] <= t_done + 1]
        before = [t[3] / 1e9 - t[0] for t in ticks if t[0] < t_mig]
        after = [t[3] / 1e9 - t[0] for t in ticks if t[0] > t_done + 1]
        drift = sorted(after)[len(after) // 2] - sorted(before)[len(before) // 2]
        note("ticks: %d received, %d lost; the longest gap during the migration %.0f ms (%.1fs "
             "into it; tern says downtime %.1f ms), outside it %.0f ms; guest real-time clock "
             "moved %+.0f ms against the host's"
             % (len(ticks), lost, gap * 1000, at - t_mig, rep["downtime_ms"],
                outside[0][0] * 1000 if outside else 0, drift * 1000))
        assert lost <= 2, "%d ticks lost" % lost
        # The guest cannot tick while paused: tern's downtime is no longer than the gap seen.
        assert gap * 1000 >= rep["downtime_ms"] - 10, \
            "tern says downtime %.1f ms, the network saw %.0f ms" % (rep["downtime_ms"], gap * 1000)
        # The destination moves the guest's clock on by the downtime (clock_state_restore):
        # before it did, the guest's real time fell behind by the whole downtime.
        assert abs(drift) < 0.05 + rep["downtime_ms"] / 4000, \
            "the guest's real-time clock moved %+.3f s against the host's (downtime %.1f ms)" \
            % (drift, rep["downtime_ms"])

        dst.proc.stdin.write(b"stop\n")
        dst.proc.stdin.flush()
        assert dst.wait(120) == 0, "the destination did not power off cleanly: %r" % dst
        dst.save_log()
        assert "UMOUNT-OK" in dst.out(), dst
        if copy_storage and not qcow2:
            # The source's image stopped where the switchover was; the copy went on.
            r = subprocess.run(["e2fsck", "-fn", disk], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
            note("the source's image after the copy: e2fsck %d" % r.returncode)
        if qcow2:
            with open(image, "rb") as f:
                assert f.read(4) != b"QFI\xfb", "the copy is not a raw image"
            r = subprocess.run(["qemu-img", "check", top], capture_output=True, text=True)
            assert r.returncode == 0, "the source's overlay: " + r.stdout + r.stderr
        r = subprocess.run(["e2fsck", "-fn", image], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert r.returncode == 0, "e2fsck: %s" % r.stdout.decode(errors="replace")
        r = subprocess.run(["debugfs", "-R", "cat /counter", image], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, check=True)
        nums = [int(x) for x in r.stdout.split()]
        last_tick = max(int(m.group(1)) for m in (re.match(r"^tick (\d+)$", l)
                        for l in dst.out().splitlines()) if m)
        assert nums == list(range(1, len(nums) + 1)) and nums[-1] >= last_tick, \
            "the counter file: %d entries, last %r; last tick %d" % (len(nums), nums[-1:], last_tick)
        note("disk%s: e2fsck clean, counter 1..%d" % (" (the copy)" if copy_storage else "",
                                                       nums[-1]))
    finally:
        if host and host.poll() is None:
            host.kill()
        for v in vmms:
            v.stop()
        if ns:
            ns.close()
