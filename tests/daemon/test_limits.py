"""The walls under ternd (docs/security.md). cgroup v2 limits (docs/ternd.md, "Limits"):
ternd writes a definition's limits into the VM's cgroup before it starts, `tern set`
changes them while it runs, and the kernel holds them: a CPU-bound guest gets no more than
its cpu.max, a guest that touches all its RAM stays under memory.max without being killed.
Bad limits are refused naming the field. seccomp: a VM whose vCPU makes a forbidden call
ends, named, and the others run on."""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
import ternd  # noqa: E402
import ternlib  # noqa: E402


def cgroup_dir(t, info):
    return "/sys/fs/cgroup%s/vm-%s" % (t.cgroup, info["uuid"])


def read(path):
    with open(path) as f:
        return f.read().strip()


def cpu_usage_s(cg):
    """The cgroup's CPU time so far, in seconds (cpu.stat usage_usec)."""
    m = re.search(r"^usage_usec (\d+)$", read(os.path.join(cg, "cpu.stat")), re.M)
    return int(m.group(1)) / 1e6


def share(cg, seconds=4.0):
    """The cgroup's CPU time over a window, as a share of one CPU."""
    u0, t0 = cpu_usage_s(cg), time.monotonic()
    time.sleep(seconds)
    return (cpu_usage_s(cg) - u0) / (time.monotonic() - t0)


def tern(t, *args):
    return subprocess.run([ternd.tool("tern"), "--socket", t.sock] + list(args),
                          capture_output=True, text=True, timeout=60)


def test_cpu_max_holds_and_changes_while_running():
    t = ternd.Ternd("limits-cpu")
    try:
        t.define("busy", ternlib.guest_path("counter"), memory_mib=32,
                 cmdline="console=ttyS0 every=3000000", limits={"cpu_max_percent": 20})
        t.ok("POST", "/vms/busy/start")
        info = t.vm("busy")
        cg = cgroup_dir(t, info)
        assert read(os.path.join(cg, "cpu.max")) == "20000 100000", read(os.path.join(cg, "cpu.max"))
        assert info["cgroup"]["cpu_max_percent"] == 20, info
        assert info["definition"]["limits"]["cpu_max_percent"] == 20, info
        time.sleep(1)
        got = share(cg)
        # The quota is enforced per 100 ms period: a window of 4 s may take a little more.
        assert 0 < got <= 0.20 * 1.25 + 0.02, "a 20%% cap, and the VM used %.0f%% of a CPU" % (got * 100)
        r = tern(t, "set", "busy", "--cpu-max", "50")
        assert r.returncode == 0 and "cpu_max_percent" in r.stdout, r
        assert read(os.path.join(cg, "cpu.max")) == "50000 100000", read(os.path.join(cg, "cpu.max"))
        got50 = share(cg)
        assert 0 < got50 <= 0.50 * 1.25 + 0.02, "a 50%% cap, and the VM used %.0f%%" % (got50 * 100)
        print("CPU used: %.0f%% under a 20%% cap, %.0f%% under 50%%" % (got * 100, got50 * 100))
        shown = tern(t, "info", "busy").stdout
        assert re.search(r"Limits:\s+CPU 50% of one", shown), shown
        # Refused: the field and its range are named; nothing changes.
        r = tern(t, "set", "busy", "--cpu-max", "101")
        assert r.returncode == 2 and "limits.cpu_max_percent" in r.stderr and "1 to 100" in r.stderr, r
        assert read(os.path.join(cg, "cpu.max")) == "50000 100000"
        st, got = t.call("PATCH", "/vms/busy", {"limits": {"cpu_max_percent": 10, "swap": 1}})
        assert st == 400 and "swap" in got["error"], (st, got)
        st, got = t.call("PATCH", "/vms/busy", {"limits": 5})
        assert st == 400 and "limits" in got["error"], (st, got)
        assert read(os.path.join(cg, "cpu.max")) == "50000 100000"
        r = tern(t, "set", "busy", "--cpu-max", "0")  # no cap again
        assert r.returncode == 0, r
        assert read(os.path.join(cg, "cpu.max")) == "max 100000"
    finally:
        t.close()


def test_memory_max_holds_a_guest_that_touches_all_its_ram():
    t = ternd.Ternd("limits-mem")
    try:
        # 96 MiB of the guest's 128 filled: RAM plus tern-vmm's own, under 128 + 64.
        t.define("fill", ternlib.guest_path("memfill"), memory_mib=128,
                 cmdline="console=ttyS0 mib=96 every=3000000",
                 limits={"memory_max_mib": 192, "pids_max": 64})
        t.ok("POST", "/vms/fill/start")
        info = t.vm("fill")
        cg = cgroup_dir(t, info)
        assert read(os.path.join(cg, "memory.max")) == str(192 << 20)
        assert read(os.path.join(cg, "pids.max")) == "64"
        end = time.time() + 120
        while time.time() < end and "memfill: done" not in ternd.console_log(t, "fill"):
            time.sleep(0.5)
        assert "memfill: done" in ternd.console_log(t, "fill"), ternd.console_log(t, "fill")[-2000:]
        time.sleep(1)
        info = t.vm("fill")
        c = info["cgroup"]
        assert info["state"] == "running", info
        assert c["oom_kills"] == 0 and 96 << 20 <= c["memory_bytes"] <= 192 << 20, c
        print("memory.current %.0f MiB of memory.max 192 MiB, %d pids" % (c["memory_bytes"] / 2**20, c["pids"]))
        # Below the guest's RAM + 64 MiB: refused, naming the field and the least it takes.
        r = tern(t, "set", "fill", "--memory-max", "150")
        assert r.returncode == 2 and "limits.memory_max_mib" in r.stderr and "192" in r.stderr, r
        r = tern(t, "set", "fill", "--pids-max", "8")
        assert r.returncode == 2 and "limits.pids_max" in r.stderr and "16 to 65536" in r.stderr, r
        assert read(os.path.join(cg, "memory.max")) == str(192 << 20)
        # The defaults: no memory cap, 512 pids.
        r = tern(t, "set", "fill", "--memory-max", "0", "--pids-max", "0")
        assert r.returncode == 0, r
        assert read(os.path.join(cg, "memory.max")) == "max"
        assert read(os.path.join(cg, "pids.max")) == "512"
    finally:
        t.close()


def test_a_refused_system_call_ends_only_that_vm_and_names_the_call():
    """Under ternd, a VM whose vCPU makes a call outside its seccomp list (the test-only
    fault hook, set in its ternd's environment) ends as killed, its message naming the call
    and the thread; a VM of another ternd counts on."""
    calm = ternd.Ternd("seccomp-calm")
    evil = ternd.Ternd("seccomp-evil", env={"TERN_TEST_FAULT": "vcpu-socket"})
    try:
        calm.define("calm", ternlib.guest_path("counter"), memory_mib=32,
                    cmdline="console=ttyS0 every=300000")
        calm.ok("POST", "/vms/calm/start")
        evil.define("evil", ternlib.guest_path("counter"), memory_mib=32,
                    cmdline="console=ttyS0 every=300000")
        evil.call("POST", "/vms/evil/start")  # it may end before the start is answered
        assert evil.wait_state("evil", "shut off", 60), evil.vm("evil")
        d = ternd.detail(evil, "evil")
        assert d.get("reason") == "killed" and d.get("signal") == 31, d
        assert "called socket (41)" in d.get("message", "") and "vcpu0 (vcpu list)" in d["message"], d
        shown = subprocess.run([ternd.tool("tern"), "--socket", evil.sock, "info", "evil"],
                               capture_output=True, text=True, timeout=30).stdout
        assert "called socket (41)" in shown, shown
        n = len(re.findall(r"^count ", ternd.console_log(calm, "calm"), re.M))
        end = time.time() + 60
        while time.time() < end and len(re.findall(r"^count ", ternd.console_log(calm, "calm"), re.M)) < n + 2:
            time.sleep(0.5)
        assert len(re.findall(r"^count ", ternd.console_log(calm, "calm"), re.M)) >= n + 2, \
            "the other VM stopped counting"
        assert calm.state("calm")[0] == "running"
    finally:
        evil.close()
        calm.close()


class LoopDisk:
    """An ext4 file system on a loop device (io.max needs a block device under the image),
    holding a disk image of random data."""

    def __init__(self, mib=48, image_mib=32):
        self.dir = tempfile.mkdtemp(prefix="tern-io-")
        self.backing = os.path.join(self.dir, "fs.img")
        with open(self.backing, "wb") as f:
            f.truncate(mib << 20)
        self.dev = subprocess.run(["losetup", "-f", "--show", self.backing], capture_output=True,
                                  text=True, check=True).stdout.strip()
        self.mnt = os.path.join(self.dir, "mnt")
        os.mkdir(self.mnt)
        subprocess.run(["mkfs.ext4", "-q", self.dev], check=True)
        subprocess.run(["mount", self.dev, self.mnt], check=True)
        self.image = os.path.join(self.mnt, "disk.img")
        with open(self.image, "wb") as f:
            for _ in range(image_mib):
                f.write(os.urandom(1 << 20))
        st = os.stat(self.dev)
        self.majmin = "%d:%d" % (os.major(st.st_rdev), os.minor(st.st_rdev))

    def close(self):
        subprocess.run(["umount", self.mnt])
        subprocess.run(["losetup", "-d", self.dev])
        shutil.rmtree(self.dir, ignore_errors=True)


def reads_per_s(t, name, after, timeout=120):
    """The next RANDREAD line's rate after the first `after` lines: (lines seen, reads/s)."""
    end = time.time() + timeout
    while time.time() < end:
        got = re.findall(r"RANDREAD reads (\d+) seconds ([0-9.]+)", ternd.console_log(t, name))
        if len(got) > after:
            n, s = got[after]
            return after + 1, int(n) / float(s)
        time.sleep(0.5)
    raise AssertionError("no RANDREAD line: %s" % ternd.console_log(t, name)[-2000:])


def io_max_line(cg, majmin):
    lines = [l for l in read(os.path.join(cg, "io.max")).splitlines() if l.startswith(majmin + " ")]
    return lines[0] if lines else None


def test_io_max_caps_a_disk_and_changes_while_running():
    """limits.disks: a Linux guest reads its disk (cache=none, on ext4 over a loop device) at
    random, 4 KiB at a time with O_DIRECT; io.max riops=40 holds it near 40 reads/s, `tern
    set --disk 0 --read-iops 400` lets it go faster at once, 0 takes the cap away. A disk on
    a file system with no block device cannot be capped (the start says so), and bad
    values are refused naming the field."""
    import initramfs
    helper_dir = tempfile.mkdtemp(prefix="tern-io-helper-")
    helper = os.path.join(helper_dir, "randread")
    subprocess.run(["gcc", "-static", "-O2", "-o", helper,
                    os.path.join(ternlib.ROOT, "bench", "randread.c")], check=True)
    initrd = initramfs.build(initramfs.PROLOGUE + "while true; do /randread /dev/vda 3; done\n",
                             {"/randread": helper})
    loop = LoopDisk()
    t = ternd.Ternd("limits-io")
    try:
        kernel = os.path.join(ternlib.SHARED, "guest", "vmlinux-min")
        t.define("reader", kernel, initrd=initrd, memory_mib=128,
                 cmdline="console=ttyS0 panic=-1 rodata=off percpu_alloc=page quiet",
                 disks=[{"path": loop.image, "cache": "none"}],
                 limits={"disks": [{"read_iops": 40}]})
        t.ok("POST", "/vms/reader/start")
        info = t.vm("reader")
        cg = cgroup_dir(t, info)
        assert io_max_line(cg, loop.majmin) == "%s rbps=max wbps=max riops=40 wiops=max" % loop.majmin, \
            read(os.path.join(cg, "io.max"))
        assert info["cgroup"]["io_max"] == {loop.majmin: "rbps=max wbps=max riops=40 wiops=max"}, info
        seen, capped = reads_per_s(t, "reader", 0)
        seen, capped = reads_per_s(t, "reader", seen)  # a whole run under the cap
        assert 0 < capped <= 40 * 1.5 + 5, "riops=40, and the guest read %.0f/s" % capped
        r = tern(t, "set", "reader", "--disk", "0", "--read-iops", "400")
        assert r.returncode == 0, r
        assert io_max_line(cg, loop.majmin).endswith("riops=400 wiops=max"), read(os.path.join(cg, "io.max"))
        seen, _ = reads_per_s(t, "reader", seen)  # the run under way when it changed
        seen, raised = reads_per_s(t, "reader", seen)
        assert raised > 3 * 40 and raised <= 400 * 1.5 + 5, "riops=400, and the guest read %.0f/s" % raised
        print("4 KiB random reads/s: %.0f under riops=40, %.0f under riops=400" % (capped, raised))
        shown = tern(t, "info", "reader").stdout
        assert re.search(r"Disk I/O:\s+device %s: rbps=max wbps=max riops=400" % loop.majmin, shown), shown
        r = tern(t, "set", "reader", "--disk", "0", "--read-iops", "0")
        assert r.returncode == 0, r
        assert io_max_line(cg, loop.majmin) is None, read(os.path.join(cg, "io.max"))
        # Bad values: the field and its range named, nothing changed.
        r = tern(t, "set", "reader", "--disk", "1", "--read-iops", "5")
        assert r.returncode == 2 and "limits.disks" in r.stderr and "1 disk" in r.stderr, r
        st, got = t.call("PATCH", "/vms/reader", {"limits": {"disks": [{"read_iops": -1}]}})
        assert st == 400 and "limits.disks[0].read_iops" in got["error"], (st, got)
        st, got = t.call("PATCH", "/vms/reader", {"limits": {"disks": [{"riops": 5}]}})
        assert st == 400 and "riops" in got["error"], (st, got)
        r = tern(t, "set", "reader", "--read-iops", "5")
        assert r.returncode == 2 and "--disk I" in r.stderr, r
        # A disk on tmpfs (no block device of its own) cannot be capped: the start says so.
        tmp = os.path.join(helper_dir, "tmpfs.img")
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", helper_dir], check=True)
        try:
            with open(tmp, "wb") as f:
                f.truncate(4 << 20)
            t.define("nodev", ternlib.guest_path("counter"), memory_mib=32, disks=[{"path": tmp}],
                     limits={"disks": [{"write_mib_s": 10}]})
            st, got = t.call("POST", "/vms/nodev/start")
            assert st == 409 and "limits.disks[0]" in got["error"] and "no block device" in got["error"], \
                (st, got)
            assert t.state("nodev")[0] == "shut off", t.state("nodev")
        finally:
            t.call("DELETE", "/vms/nodev")
            subprocess.run(["umount", helper_dir])
    finally:
        t.close()
        loop.close()
        shutil.rmtree(helper_dir, ignore_errors=True)
