"""ternd's snapshots, clones and stats (docs/ternd.md) with real guests: a Debian guest
whose memory (a shell variable) and disk come back on revert, a clone that runs beside its
source on its own disk, per-disk counters; the tiny counter guest for the paused case."""
import json
import os
import re
import shutil
import subprocess
import tempfile
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "linux"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ternd  # noqa: E402
import qcow2img  # noqa: E402
import ternlib  # noqa: E402
from test_ternd import COUNTER, console_exchange, counter, counts, wait_counting  # noqa: E402

READY = "TERN-SHELL-READY"
# A shell on the console: each line typed is run, so the test drives the guest.
SHELL = 'echo %s\nwhile read -r line; do eval "$line"; done\n' % READY


def tern(t, *args, check=True):
    p = subprocess.run([ternd.tool("tern"), "--state-dir", t.dir] + list(args),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=600)
    if check:
        assert p.returncode == 0, (args, p.returncode, p.stderr.decode())
    return p


def disk_head(path, n=8):
    with open(path, "rb") as f:
        return f.read(n)


def boot(t, name, ready_count=1, timeout=300):
    end = time.time() + timeout
    while time.time() < end and ternd.console_log(t, name).count(READY) < ready_count:
        time.sleep(0.5)
    assert ternd.console_log(t, name).count(READY) >= ready_count, \
        ternd.console_log(t, name)[-3000:]


def run(t, name, cmd, marker):
    """Runs cmd in the guest's shell; returns its output up to marker."""
    got = console_exchange(t, name, "%s; echo %s" % (cmd, marker), r"\n%s" % marker)
    assert re.search(r"\n%s" % marker, got), got
    return got


def test_linux_snapshot_revert_clone_and_stats():
    import debian
    d = tempfile.mkdtemp(prefix="tern-snapdisk-")
    disk = os.path.join(d, "web.img")
    with open(disk, "wb") as f:
        f.truncate(16 << 20)
    initrd = debian.initrd(SHELL, modules=["virtio_pci", "virtio_blk"])
    t = ternd.Ternd("snap")
    try:
        t.define("web", debian.kernel(), initrd=initrd, vcpus=1, memory_mib=256,
                 cmdline=debian.CMDLINE, disks=[{"path": disk}])
        t.ok("POST", "/vms/web/start")
        boot(t, "web")
        # Memory (X) and disk ("disk-one") as they are when the snapshot is taken.
        run(t, "web", "X=one; printf disk-one | dd of=/dev/vda conv=notrunc 2>/dev/null; sync",
            "WROTE1")
        st = t.ok("GET", "/vms/web/stats")
        vda = [x for x in st["disks"] if x["write_bytes"] > 0]
        assert len(st["disks"]) == 1 and vda and vda[0]["write_count"] > 0, st
        assert st["nics"] == [] and "vcpu" in st, st
        out = tern(t, "stats", "web").stdout.decode()
        assert "DISK" in out and "WRITE_BYTES" in out, out
        got = t.ok("POST", "/vms/web/snapshots", {"name": "s1"})
        assert got["state"] == "running" and got["snapshot"] == "s1", got
        assert disk_head(disk) == b"disk-one"
        # Then both change.
        run(t, "web", "X=two; printf disk-two | dd of=/dev/vda conv=notrunc 2>/dev/null; sync",
            "WROTE2")
        assert disk_head(disk) == b"disk-two"
        pid = t.vm("web")["pid"]
        got = t.ok("POST", "/vms/web/snapshots/s1/revert")
        assert got["state"] == "running" and got["reason"] == "from snapshot", got
        assert t.vm("web")["pid"] != pid
        assert disk_head(disk) == b"disk-one"
        # The shell goes on from the moment of the snapshot: X is "one" again.
        got = run(t, "web", "echo X=$X; dd if=/dev/vda bs=512 count=1 iflag=direct 2>/dev/null | head -c 8; echo",
                  "READ1")
        assert "X=one" in got and "disk-one" in got, got
        snaps = json.loads(tern(t, "snapshot", "list", "web", "--json").stdout)
        assert [(s["name"], s["vm_state"], s["memory"]) for s in snaps] == [("s1", "running", True)], snaps
        # A snapshot of the shut-off VM: its disk only.
        t.ok("POST", "/vms/web/destroy")
        tern(t, "snapshot", "create", "web", "off1")
        with open(disk, "r+b") as f:
            f.write(b"scribble")
        got = t.ok("POST", "/vms/web/snapshots/off1/revert")
        assert got["state"] == "shut off", got
        assert disk_head(disk) == b"disk-one"
        # Wrong input: each a clear error, nothing changed.
        for body, want in (({"name": "s1"}, 409), ({"name": "../x"}, 400), ({}, 400),
                           ({"name": "a", "x": 1}, 400)):
            s, b = t.call("POST", "/vms/web/snapshots", body)
            assert s == want and "error" in b, (body, s, b)
        s, b = t.call("POST", "/vms/web/snapshots/nope/revert")
        assert s == 404 and "nope" in b["error"], b
        p = tern(t, "snapshot", "revert", "web", "nope", check=False)
        assert p.returncode == 1 and b"no snapshot named nope" in p.stderr, p.stderr
        # A clone needs the source's images unchanged: not while snapshots could write them.
        s, b = t.call("POST", "/vms/web/clone", {"name": "web2"})
        assert s == 409 and "snapshots" in b["error"], b
        # ... but full copies are fine.
        out = tern(t, "clone", "web", "copy1", "--copy").stdout.decode()
        assert "copy1" in out, out
        cdef = t.vm("copy1")["definition"]
        assert cdef["disks"][0]["format"] == t.vm("web")["definition"]["disks"][0]["format"], cdef
        assert disk_head(cdef["disks"][0]["path"]) == b"disk-one"
        for sn in ("s1", "off1"):
            tern(t, "snapshot", "delete", "web", sn)
        assert json.loads(tern(t, "snapshot", "list", "web", "--json").stdout) == []
        # The default clone: qcow2 overlays in front of the image, the source on one of its own.
        got = t.ok("POST", "/vms/web/clone", {"name": "web2"})
        assert got["name"] == "web2" and got["state"] == "shut off", got
        src, cl = t.vm("web")["definition"], t.vm("web2")["definition"]
        assert cl["uuid"] != src["uuid"] and cl["disks"][0]["path"] != disk
        assert src["disks"][0]["path"] != disk and src["disks"][0]["format"] == cl["disks"][0]["format"]
        if cl["disks"][0]["format"] == "qcow2":  # no reflinks here (tmpfs, ext4)
            assert src["disks"][0]["path"].endswith("web-disk0.qcow2"), src
            for p in (src["disks"][0]["path"], cl["disks"][0]["path"]):
                assert qcow2img.backing(p) == os.path.realpath(disk), qcow2img.info(p)
        t.ok("POST", "/vms/web/start")
        t.ok("POST", "/vms/web2/start")
        boot(t, "web")
        boot(t, "web2")
        run(t, "web2", "printf clone-ab | dd of=/dev/vda conv=notrunc 2>/dev/null; sync", "CW")
        got = run(t, "web", "dd if=/dev/vda bs=512 count=1 iflag=direct 2>/dev/null | head -c 8; echo", "R2")
        assert "disk-one" in got, got
        got = run(t, "web2", "dd if=/dev/vda bs=512 count=1 iflag=direct 2>/dev/null | head -c 8; echo", "R3")
        assert "clone-ab" in got, got
        assert disk_head(disk) == b"disk-one", "the shared image was written"
        # tern blockresize: the running guest's disk (0, no id: tern-vmm's disk0) grows.
        last = t.ok("GET", "/events?after=-1")["last"]
        out = tern(t, "blockresize", "web", "0", "24M").stdout.decode()
        assert "Disk 0 of web is now 25165824 bytes" in out, out
        size = ""
        for i in range(20):
            size = run(t, "web", "cat /sys/block/vda/size", "SZ%d" % i)
            if "49152" in size:
                break
            time.sleep(0.5)
        assert "49152" in size, "the guest never saw its disk grow: %r" % size
        wdisk = t.vm("web")["definition"]["disks"][0]
        if wdisk["format"] == "qcow2":
            assert qcow2img.info(wdisk["path"])["virtual-size"] == 24 << 20
        else:
            assert os.path.getsize(wdisk["path"]) == 24 << 20
        ev = [x for x in t.ok("GET", "/events?after=%d" % last)["events"]
              if x["name"] == "web" and x["state"] == "disk"]
        assert ev and ev[-1]["reason"] == "resized" and ev[-1]["detail"]["size"] == 24 << 20, ev
        for args, words in ((("web", "0", "8M"), ("cannot shrink",)),
                            (("web", "3", "32M"), ("'disk': 3 is not 0 to 0",)),
                            (("web", "nope", "32M"), ("no disk with id 'nope'",))):
            p = tern(t, "blockresize", *args, check=False)
            assert p.returncode == 2 and all(w.encode() in p.stderr for w in words), \
                (args, p.returncode, p.stderr)
        p = tern(t, "blockresize", "web", "0", "10000", check=False)
        assert p.returncode == 2 and b"512-byte sectors" in p.stderr, p.stderr
        for body, want in (({"disk": 0}, "'size' is required"), ({"size": 1 << 25}, "'disk'"),
                           ({"disk": 0, "size": 1 << 25, "x": 1}, "x")):
            s, b = t.call("POST", "/vms/web/blockresize", body)
            assert s == 400 and want in b["error"], (body, s, b)
        for n in ("web", "web2"):
            t.ok("POST", "/vms/%s/destroy" % n)
        s, b = t.call("POST", "/vms/web/blockresize", {"disk": 0, "size": 32 << 20})
        assert s == 409 and "tern img resize" in b["error"], (s, b)
    finally:
        t.close()
        shutil.rmtree(d, ignore_errors=True)


def test_snapshot_of_a_paused_vm_reverts_paused():
    t = ternd.Ternd("snappause")
    try:
        t.define("c", counter(), **COUNTER)
        t.ok("POST", "/vms/c/start")
        assert wait_counting(t, "c", 3)
        t.ok("POST", "/vms/c/suspend")
        time.sleep(1)  # what the guest printed before the pause reaches the console log
        at = counts(t, "c")[-1]
        got = t.ok("POST", "/vms/c/snapshots", {"name": "p"})
        assert got["state"] == "paused", got
        t.ok("POST", "/vms/c/resume")
        assert wait_counting(t, "c", 3)
        got = t.ok("POST", "/vms/c/snapshots/p/revert")
        assert got["state"] == "paused" and got["reason"] == "from snapshot", got
        before = counts(t, "c")
        t.ok("POST", "/vms/c/resume")
        assert wait_counting(t, "c", 2)
        after = counts(t, "c")[len(before):]
        # Back in time: counting goes on from the snapshot's moment, not from where it had
        # got to. The snapshot's count can be past `at`: lines the guest wrote just before
        # the pause can still be on their way to the console log (a CI run saw at = 10
        # and the revert go on at 13), and a line cut by the pause is no count.
        if not (after and at + 1 <= after[0] < before[-1]):
            vdir = os.path.dirname(t.vm("c")["console_log"])
            keep = os.path.join(ternlib.OUT, "snappause-failed")
            shutil.rmtree(keep, ignore_errors=True)
            shutil.copytree(vdir, keep, ignore=shutil.ignore_patterns("*.sock", "*.mem", "disk-*"))
            raise AssertionError(
                "counting did not go on from %d (it had reached %d): %r; counts in the log: %r; "
                "the VM's directory is kept in %s" % (at, before[-1], after[:5], counts(t, "c"), keep))
        evs = [(e["state"], e["reason"]) for e in t.ok("GET", "/events?after=0")["events"]]
        assert ("snapshot", "created") in evs and ("snapshot", "reverted") in evs, evs
        # Stats of a shut-off VM: 409; of a missing one: 404.
        t.ok("POST", "/vms/c/destroy")
        s, b = t.call("GET", "/vms/c/stats")
        assert s == 409 and "shut off" in b["error"], b
        s, b = t.call("GET", "/vms/nope/stats")
        assert s == 404, b
        # Undefine takes the snapshots with it.
        uuid = t.vm("c")["uuid"]
        t.ok("DELETE", "/vms/c")
        assert not os.path.exists(os.path.join(t.dir, "vms", uuid))
    finally:
        t.close()


def test_clone_with_copies_reports_its_job():
    """GET /vms/NAME/job says what runs on a VM and how far it is (the progress bar's
    source): a clone copying 512 MiB of data is seen as "clone" with that total."""
    import threading
    d = tempfile.mkdtemp(prefix="tern-jobdisk-")
    disk = os.path.join(d, "big.img")
    chunk = bytes(range(256)) * 4096  # 1 MiB, no zero run a copy could skip
    with open(disk, "wb") as f:
        for _ in range(512):
            f.write(chunk)
    t = ternd.Ternd("job")
    try:
        t.define("big", counter(), disks=[{"path": disk}], **COUNTER)
        idle = t.ok("GET", "/vms/big/job")
        assert idle["operation"] is None and idle["done_bytes"] == 0, idle
        seen, stop = [], threading.Event()

        def poll():
            while not stop.is_set():
                seen.append(t.api.__class__(t.sock, timeout=30).request("GET", "/vms/big/job")[1])
                time.sleep(0.05)
        th = threading.Thread(target=poll)
        th.start()
        t0 = time.time()
        try:
            got = t.ok("POST", "/vms/big/clone", {"name": "big2", "copy": True})
        finally:
            took = time.time() - t0
            stop.set()
            th.join()
        assert got["name"] == "big2", got
        copy = t.vm("big2")["definition"]["disks"][0]["path"]
        assert os.path.getsize(copy) == 512 << 20 and disk_head(copy, 1024) == chunk[:1024]
        during = [j for j in seen if j["operation"] == "clone"]
        assert all(j["total_bytes"] == 512 << 20 and 0 <= j["done_bytes"] <= 512 << 20
                   for j in during), during
        if took > 1.0:  # long enough for the poller (every 50 ms) to catch it
            assert during, "no job seen during a %.1f s clone: %r" % (took, seen[-3:])
        assert t.ok("GET", "/vms/big/job")["operation"] is None
        os.unlink(copy)
    finally:
        t.close()
        shutil.rmtree(d, ignore_errors=True)
