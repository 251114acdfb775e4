"""ternd (docs/ternd.md) with real VMs: many at once, its own death and restart, how VMs
end, managed save, bad input, concurrent callers and a hung tern-vmm. Tiny guests from
guest/ (the counter prints "count N" lines) keep these fast; Debian's kernel where a real
guest matters."""
import concurrent.futures
import json
import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "linux"))
import initramfs  # noqa: E402
import ternd  # noqa: E402
import ternlib  # noqa: E402

COUNTER = {"cmdline": "console=ttyS0 every=300000", "memory_mib": 32}


def counter():
    p = ternlib.guest_path("counter")
    assert os.path.exists(p), "no %s: make guests" % p
    return p


def counts(t, name):
    log = ternd.console_log(t, name)
    # A line still being written ("count 2" of "count 26") is no count yet; a line a revert
    # cut ("count 2" and then the snapshot's "t 19") is none at all.
    log = log[:log.rfind("\n") + 1]
    return [int(x) for x in re.findall(r"^count (\d+)$", log, re.M)]


def wait_counting(t, name, more=2, timeout=30):
    """The VM's console log gains `more` counts within timeout."""
    start = len(counts(t, name))
    end = time.time() + timeout
    while time.time() < end:
        if len(counts(t, name)) >= start + more:
            return True
        time.sleep(0.2)
    return False


def test_ten_vms_defined_started_listed_stopped():
    import debian
    t = ternd.Ternd("ten")
    try:
        initrd = initramfs.build(initramfs.PROLOGUE + "echo TERN-READY\nwhile true; do sleep 1; done\n")
        names = ["tiny%d" % i for i in range(8)] + ["deb0", "deb1"]
        # The echo guest waits for console input with hlt: eight of them leave the lab's
        # CPU to the two Linux boots (the counter spins).
        for n in names[:8]:
            t.define(n, ternlib.guest_path("echo"), cmdline="console=ttyS0 mode=wait",
                     memory_mib=32)
        for n in names[8:]:
            t.define(n, debian.kernel(), initrd=initrd, vcpus=2, memory_mib=256,
                     cmdline=debian.CMDLINE)
        listed = t.ok("GET", "/vms")["vms"]
        assert [v["name"] for v in listed] == sorted(names), listed
        assert all(v["state"] == "shut off" and v["reason"] == "never" for v in listed), listed
        for n in names:
            got = t.ok("POST", "/vms/%s/start" % n)
            assert got["state"] == "running" and got["reason"] == "booted", got
        listed = {v["name"]: v for v in t.ok("GET", "/vms")["vms"]}
        assert all(listed[n]["state"] == "running" for n in names), listed
        # A deadline well past the ~15 s this takes, and inside the lab's watchdog (300 s of
        # silence), so that a guest that never boots fails here with its console's tail.
        t0 = time.time()
        said = t0
        while time.time() < t0 + 240:
            waiting = [n for n in names[8:] if "TERN-READY" not in ternd.console_log(t, n)]
            if not waiting:
                break
            if time.time() - said > 60:
                said = time.time()
                print("  still waiting for %s after %.0f s" % (", ".join(waiting), said - t0), flush=True)
            time.sleep(0.5)
        for n in names[:8]:
            assert "waiting for input" in ternd.console_log(t, n), \
                "%s printed nothing: %r" % (n, ternd.console_log(t, n))
        for n in names[8:]:
            assert "TERN-READY" in ternd.console_log(t, n), "%s did not boot: %s" % (
                n, ternd.why_quiet(t, n))
        info = t.vm("tiny0")
        assert info["pid"] > 0 and info["rss_kib"] > 0 and info["uptime_s"] >= 0, info
        # Every thread of a VM ternd started runs under its seccomp list (the default).
        sc = info["seccomp"]
        # (io_uring's kernel workers are counted apart: they run no user code.)
        assert sc["threads"] >= 2 and sc["filtered_threads"] == sc["threads"] and \
            sc["io_uring_workers"] >= 0, info
        shown = subprocess.run([ternd.tool("tern"), "--socket", t.sock, "info", "tiny0"],
                               capture_output=True, text=True, timeout=30).stdout
        assert re.search(r"Seccomp:\s+on \(%d of %d threads filtered\)" % (sc["threads"], sc["threads"]),
                         shown), shown
        cg = open("/proc/%d/cgroup" % info["pid"]).read()
        assert "%s/vm-%s" % (t.cgroup, info["uuid"]) in cg, "tern-vmm's cgroup: %r" % cg
        for n in names:
            got = t.ok("POST", "/vms/%s/destroy" % n)
            assert got["state"] == "shut off" and got["reason"] == "destroyed", got
        assert all(v["state"] == "shut off" for v in t.ok("GET", "/vms")["vms"])
        events = t.ok("GET", "/events?after=0")["events"]
        assert sum(1 for e in events if e["state"] == "running") == 10, events
        assert sum(1 for e in events if e["reason"] == "destroyed") == 10, events
    finally:
        t.close()


def test_ternd_death_leaves_vms_running_and_restart_reattaches():
    t = ternd.Ternd("restart")
    try:
        for i in range(5):
            t.define("c%d" % i, counter(), **COUNTER)
            t.ok("POST", "/vms/c%d/start" % i)
        t.define("auto", counter(), autostart=True, **COUNTER)
        pids = {("c%d" % i): t.vm("c%d" % i)["pid"] for i in range(5)}
        t.kill9()
        # Without ternd: every VM goes on printing; one is killed meanwhile.
        for i in range(5):
            assert wait_counting(t_offline(t), "c%d" % i), "c%d stopped with ternd" % i
        os.kill(pids["c4"], signal.SIGKILL)
        time.sleep(1)
        t.start()
        for i in range(4):
            v = t.vm("c%d" % i)
            assert v["state"] == "running" and v["pid"] == pids["c%d" % i], v
            assert wait_counting(t, "c%d" % i), "c%d after the restart" % i
        v = t.vm("c4")
        assert v["state"] == "shut off" and v["reason"] == "crashed", v
        d = v["detail"]
        assert d["reason"] == "killed" and d["signal"] == 9, d
        assert t.wait_state("auto", "running", 30), t.vm("auto")
        # Reattached VMs are still under control: suspend, resume, destroy.
        assert t.ok("POST", "/vms/c0/suspend")["state"] == "paused"
        assert t.ok("POST", "/vms/c0/resume")["state"] == "running"
        assert t.ok("POST", "/vms/c1/destroy")["reason"] == "destroyed"
    finally:
        t.close()


class t_offline:
    """Reads a stopped ternd's VM files directly (its API is gone)."""

    def __init__(self, t):
        self.t = t

    def vm(self, name):
        import sqlite3
        db = sqlite3.connect(os.path.join(self.t.dir, "ternd.db"))
        (uuid,) = db.execute("SELECT uuid FROM vms WHERE name = ?", (name,)).fetchone()
        db.close()
        return {"console_log": os.path.join(self.t.dir, "vms", uuid, "console.log")}


def test_how_vms_end():
    import debian
    t = ternd.Ternd("end")
    try:
        # A triple fault: crashed, with tern-vmm's exit status and the last console lines.
        t.define("triple", ternlib.guest_path("triple"), memory_mib=32)
        t.ok("POST", "/vms/triple/start", want=(200, 500))
        assert t.wait_state("triple", "shut off", 30), t.vm("triple")
        v = t.vm("triple")
        assert v["reason"] == "crashed" and v["detail"]["exit_status"] == 3, v
        assert v["detail"]["reason"] == "crash" and v["detail"]["console_tail"], v
        # A Linux guest that powers off: shutdown.
        initrd = initramfs.build(initramfs.PROLOGUE + "echo BYE\npoweroff -f\n")
        t.define("off", debian.kernel(), initrd=initrd, memory_mib=256, cmdline=debian.CMDLINE)
        t.ok("POST", "/vms/off/start", want=(200, 500))
        assert t.wait_state("off", "shut off", 120), t.vm("off")
        v = t.vm("off")
        assert v["reason"] == "shutdown" and v["detail"]["reason"] == "poweroff", v
        # on_poweroff restart: it powers off and comes back by itself.
        t.ok("PUT", "/vms/off", dict(t.ok("GET", "/vms/off")["definition"], on_poweroff="restart"))
        t.ok("POST", "/vms/off/start", want=(200, 500))
        end = time.time() + 120
        runs = 0
        while time.time() < end and runs < 2:
            runs = sum(1 for e in t.ok("GET", "/events?after=0")["events"]
                       if e["name"] == "off" and e["state"] == "running")
            time.sleep(0.5)
        assert runs >= 2, t.ok("GET", "/events?after=0")
        t.ok("PUT", "/vms/off", dict(t.ok("GET", "/vms/off")["definition"], on_poweroff="destroy"),
             want=(200, 409))
    finally:
        t.close()


def test_save_then_start_continues():
    t = ternd.Ternd("save")
    try:
        t.define("s", counter(), **COUNTER)
        t.ok("POST", "/vms/s/start")
        assert wait_counting(t, "s", 3)
        s, b = t.call("POST", "/vms/s/restore")  # running: nothing to restore
        assert s == 409, b
        got = t.ok("POST", "/vms/s/save")
        assert got["state"] == "shut off" and got["reason"] == "saved", got
        last = counts(t, "s")[-1]
        time.sleep(1)
        got = t.ok("POST", "/vms/s/start")
        assert got["state"] == "running" and got["reason"] == "restored", got
        assert wait_counting(t, "s", 2)
        after = counts(t, "s")
        nxt = after[after.index(last) + 1:]
        # last + 2 when the save caught the guest mid-line (the rest of it is no count)
        assert nxt and last + 1 <= nxt[0] <= last + 2, \
            "counting did not go on from %d: %r" % (last, after[-10:])
        assert not os.path.exists(os.path.join(t.dir, "vms", t.vm("s")["uuid"], "save", "vm.mem"))
        # tern restore: only from a managed save.
        t.ok("POST", "/vms/s/destroy")
        p = subprocess.run([ternd.tool("tern"), "--state-dir", t.dir, "restore", "s"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert p.returncode == 1 and "no managed save" in p.stderr, (p.returncode, p.stderr)
        assert t.state("s") == ("shut off", "destroyed")
        t.ok("POST", "/vms/s/start")
        t.ok("POST", "/vms/s/save")
        p = subprocess.run([ternd.tool("tern"), "--state-dir", t.dir, "restore", "s"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert p.returncode == 0 and p.stdout.startswith("Restored s"), (p.stdout, p.stderr)
        assert t.state("s") == ("running", "restored")
    finally:
        t.close()


def test_bad_input_changes_nothing():
    t = ternd.Ternd("bad")
    try:
        t.define("one", counter(), **COUNTER)
        before = t.ok("GET", "/vms")
        for body, words in (({"name": "one", "kernel": counter()}, "exists already"),
                            ({"name": "x y", "kernel": counter()}, "'name'"),
                            ({"name": "x", "kernel": "/no/such"}, "'kernel'"),
                            ({"name": "x", "kernel": counter(), "vcpus": 300}, "'vcpus'"),
                            ({"name": "x", "kernel": counter(), "memory_mib": 1}, "'memory_mib'"),
                            ({"name": "x", "kernel": counter(), "disks": [{}]}, "disks[0].path"),
                            ({"name": "x", "kernel": counter(), "nics": [{"type": "tap"}]}, "'type'"),
                            ({"name": "x", "kernel": counter(), "nics": [{"type": "user", "mac": "01:00:00:00:00:00"}]}, "mac"),
                            ({"name": "x", "kernel": counter(), "vsock": {"cid": 2}}, "'cid'"),
                            ({"name": "x", "kernel": counter(), "on_crash": "reboot"}, "'on_crash'"),
                            ({"name": "x", "kernel": counter(), "colour": "red"}, "colour")):
            status, got = t.call("POST", "/vms", body)
            assert status in (400, 409) and words in got["error"], (body, status, got)
        status, got = t.call("POST", "/vms", "{not json")
        assert status == 400, (status, got)
        assert t.call("GET", "/vms/nope")[0] == 404
        status, got = t.call("POST", "/vms/one/suspend")
        assert status == 409 and "shut off" in got["error"], got
        status, got = t.call("POST", "/vms/one/frobnicate")
        assert status in (400, 404) and "frobnicate" in got["error"], got
        assert t.ok("GET", "/vms") == before
        # A second ternd on the same state directory is refused; the first goes on.
        p = subprocess.run([ternd.tool("ternd"), "--foreground", "--state-dir", t.dir],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
        assert p.returncode == 1 and b"another ternd" in p.stderr, p
        assert t.ok("GET", "/vms") == before
        for args, words in ((["--start-timeout", "0"], "--start-timeout"),
                            (["--state-dir", "relative"], "--state-dir"),
                            (["--bogus"], "--bogus")):
            p = subprocess.run([ternd.tool("ternd")] + args, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=20)
            assert p.returncode == 2 and words.encode() in p.stderr, (args, p)
    finally:
        t.close()


def test_concurrent_callers_and_a_hung_vmm():
    t = ternd.Ternd("busy")
    try:
        for i in range(10):
            t.define("b%d" % i, counter(), **COUNTER)
        for i in range(5):
            t.ok("POST", "/vms/b%d/start" % i)
        # Twenty `tern` commands at once, as twenty users would type them.
        calls = [["list", "--all", "--json"], ["info", "b0", "--json"], ["events", "--json"]] * 4 + \
                [["start", "b%d" % i] for i in range(5, 10)] + \
                [["suspend", "b1"], ["suspend", "b2"], ["destroy", "b3"]]

        def one(c):
            return subprocess.run([ternd.tool("tern"), "--state-dir", t.dir] + c,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
        with concurrent.futures.ThreadPoolExecutor(20) as ex:
            got = list(ex.map(one, calls))
        assert len(got) == 20 and all(p.returncode == 0 for p in got), \
            [(c, p.returncode, p.stderr) for c, p in zip(calls, got) if p.returncode]
        for c, p in zip(calls, got):
            if "--json" in c:
                json.loads(p.stdout)
        states = {v["name"]: v["state"] for v in t.ok("GET", "/vms")["vms"]}
        assert states["b1"] == states["b2"] == "paused" and states["b3"] == "shut off", states
        assert all(states["b%d" % i] == "running" for i in (0, 4, 5, 6, 7, 8, 9)), states
        # A tern-vmm that hangs holds up its own operation only.
        hung = t.vm("b4")["pid"]
        os.kill(hung, signal.SIGSTOP)
        try:
            with concurrent.futures.ThreadPoolExecutor(1) as ex:
                slow = ex.submit(lambda: ternd.api.ApiClient(t.sock, timeout=120).request(
                    "POST", "/vms/b4/suspend"))
                time.sleep(0.5)
                t0 = time.time()
                assert t.ok("GET", "/vms")["vms"] and t.vm("b4")["state"] == "running"
                t.ok("POST", "/vms/b0/suspend")
                # Served while the hung call still waits (a slow lab makes any bound on
                # the time a guess; this is what stalling behind it would break).
                assert not slow.done(), "ternd served others only after the hung call ended " \
                    "(%.1f s): %r" % (time.time() - t0, slow.result())
                status, body = slow.result(60)
                assert status == 504 or status == 500, (status, body)
        finally:
            os.kill(hung, signal.SIGCONT)
    finally:
        t.close()


def console_exchange(t, name, line, want, timeout=60):
    """Attaches read-write to the VM's console, types line, returns what came back up to
    want (a regular expression), then detaches."""
    import socket
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(t.vm(name)["console_socket"])
    try:
        s.sendall(b"ATTACH rw\n")
        got = b""
        while not got.endswith(b"\n"):
            got += s.recv(1)
        assert got == b"OK\n", got
        s.sendall(line.encode() + b"\n")
        got, end = b"", time.time() + timeout
        while time.time() < end and not re.search(want, got.decode(errors="replace")):
            got += s.recv(4096)
        return got.decode(errors="replace")
    finally:
        s.close()


def test_linux_guest_console_reboot_and_shutdown():
    import debian
    import test_power_button as pb
    # The power-button guest (tests/linux/test_power_button.py), with a shell on its
    # console instead of an idle loop: it runs what the console sends.
    init = pb.INIT.replace("while true; do sleep 1; done",
                           'while read -r line; do eval "$line"; done')
    assert init != pb.INIT
    initrd = debian.initrd(init, modules=["button", "evdev"])
    t = ternd.Ternd("linux")
    try:
        t.define("lin", debian.kernel(), initrd=initrd, vcpus=2, memory_mib=256,
                 cmdline=debian.CMDLINE)
        t.ok("POST", "/vms/lin/start")
        end = time.time() + 300
        while time.time() < end and pb.READY not in ternd.console_log(t, "lin"):
            time.sleep(0.5)
        assert pb.READY in ternd.console_log(t, "lin"), ternd.console_log(t, "lin")[-3000:]
        # Console: a command typed in, its answer read back.
        got = console_exchange(t, "lin", "echo ANSWER=$((6*7)) $(uname -r) END", r"ANSWER=42 \S+ END")
        assert re.search(r"ANSWER=42 \S+-cloud-amd64 END", got), got
        # Reboot (Ctrl-Alt-Del): the guest boots again in the same tern-vmm.
        pid = t.vm("lin")["pid"]
        t.ok("POST", "/vms/lin/reboot")
        end = time.time() + 300
        while time.time() < end and ternd.console_log(t, "lin").count(pb.READY) < 2:
            time.sleep(0.5)
        assert ternd.console_log(t, "lin").count(pb.READY) >= 2, ternd.console_log(t, "lin")[-3000:]
        v = t.vm("lin")
        assert v["state"] == "running" and v["pid"] == pid, v
        time.sleep(pb.QUIET)
        # Shutdown: the power button; the guest powers off well within the timeout.
        t0 = time.time()
        got = t.ok("POST", "/vms/lin/shutdown", {"timeout": 120})
        assert got["state"] == "shut off" and got["reason"] == "shutdown", got
        assert time.time() - t0 < 120
        d = t.vm("lin")["detail"]
        assert d["reason"] == "poweroff" and d["exit_status"] == 0, d
        assert pb.ACTION in ternd.console_log(t, "lin")
    finally:
        t.close()


def test_bridge_nic():
    """A bridge NIC: ternd makes a TAP on the bridge for the run and removes it after."""
    import debian
    import socket
    br = "brt%d" % (os.getpid() % 10000)
    init = r"""
for i in /sys/class/net/*; do [ "$(cat $i/address)" = 02:00:00:00:77:01 ] && N=${i##*/}; done
ip link set $N up
ip addr add 192.168.77.2/24 dev $N
echo "NIC=$N"
i=0
while [ $i -lt 60 ]; do echo hello-over-the-bridge | nc 192.168.77.1 7001 && break; sleep 1; i=$((i+1)); done
echo SENT
while true; do sleep 1; done
"""
    subprocess.run(["ip", "link", "add", br, "type", "bridge"], check=True)
    t = None
    srv = socket.socket()
    try:
        subprocess.run(["ip", "addr", "add", "192.168.77.1/24", "dev", br], check=True)
        subprocess.run(["ip", "link", "set", br, "up"], check=True)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("192.168.77.1", 7001))
        srv.listen(1)
        srv.settimeout(300)
        t = ternd.Ternd("bridge")
        initrd = debian.initrd(init, ["virtio_pci", "virtio_net"])
        t.define("br", debian.kernel(), initrd=initrd, memory_mib=256, cmdline=debian.CMDLINE,
                 nics=[{"type": "bridge", "bridge": br, "mac": "02:00:00:00:77:01"}])
        status, got = t.call("POST", "/vms", {"name": "nobr", "kernel": debian.kernel(),
                                              "nics": [{"type": "bridge", "bridge": "nosuchbr0"}]})
        assert status == 201, got
        status, got = t.call("POST", "/vms/nobr/start")
        assert status == 400 and "there is no bridge nosuchbr0" in got["error"], got
        assert t.vm("nobr")["state"] == "shut off"
        t.ok("POST", "/vms/br/start")
        uuid = t.vm("br")["uuid"]
        tap = "tn%s-0" % uuid[:8]
        master = open("/sys/class/net/%s/master/uevent" % tap).read()
        assert "INTERFACE=%s" % br in master, master
        conn, _ = srv.accept()
        data = conn.recv(100)
        conn.close()
        assert data == b"hello-over-the-bridge\n", data
        t.ok("POST", "/vms/br/destroy")
        assert not os.path.exists("/sys/class/net/" + tap), "the TAP outlived its VM"
    finally:
        srv.close()
        if t:
            t.close()
        subprocess.run(["ip", "link", "del", br])
