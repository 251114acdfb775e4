"""The walls under ternd (docs/security.md). cgroup v2 limits (docs/ternd.md, "Limits"):
ternd writes a definition's limits into the VM's cgroup before it starts, `tern set`
changes them while it runs, and the kernel holds them: a CPU-bound guest gets no more than
its cpu.max, a guest that touches all its RAM stays under memory.max without being killed.
Bad limits are refused naming the field. seccomp: a VM whose vCPU makes a forbidden call
ends, named, and the others run on."""
import os
import re
import subprocess
import sys
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
