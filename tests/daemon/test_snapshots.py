"""ternd's snapshots, clones and stats (docs/ternd.md) with real guests: a Debian guest
whose memory (a shell variable) and disk come back on revert, a clone that runs beside its
source on its own disk, per-disk counters; the tiny counter guest for the paused case."""
import json
import os
import re
import shutil
import struct
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
        # The image is s1's now: the guest writes on an overlay in front of it.
        top = vm_disk(t, "web")
        assert top["format"] == "qcow2" and qcow2img.backing(top["path"]) == os.path.realpath(disk), top
        # Then both change.
        # conv=fsync: a FLUSH, after which qcow2's metadata is on the file for another reader
        # (sync(1) writes a bare block device's pages without one).
        run(t, "web", "X=two; printf disk-two | dd of=/dev/vda conv=notrunc,fsync 2>/dev/null",
            "WROTE2")
        assert disk_head(disk) == b"disk-one", disk_head(disk)
        assert qcow2img.read(top["path"], 0, 8) == b"disk-two", (
            qcow2img.read(top["path"], 0, 8), qcow2img.here(top["path"]), vm_disk(t, "web"),
            open_files(t.vm("web")["pid"]))
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
        qemu_io_write(vm_disk(t, "web")["path"], b"s" * 8)
        got = t.ok("POST", "/vms/web/snapshots/off1/revert")
        assert got["state"] == "shut off", got
        assert disk_head(disk) == b"disk-one"
        assert qcow2img.read(vm_disk(t, "web")["path"], 0, 8) == b"disk-one"
        # Wrong input: each a clear error, nothing changed.
        for body, want in (({"name": "s1"}, 409), ({"name": "../x"}, 400), ({}, 400),
                           ({"name": "a", "x": 1}, 400)):
            s, b = t.call("POST", "/vms/web/snapshots", body)
            assert s == want and "error" in b, (body, s, b)
        s, b = t.call("POST", "/vms/web/snapshots/nope/revert")
        assert s == 404 and "nope" in b["error"], b
        p = tern(t, "snapshot", "revert", "web", "nope", check=False)
        assert p.returncode == 1 and b"no snapshot named nope" in p.stderr, p.stderr
        # A clone with full copies, of a source with snapshots.
        out = tern(t, "clone", "web", "copy1", "--copy").stdout.decode()
        assert "copy1" in out, out
        cdef = t.vm("copy1")["definition"]
        assert cdef["disks"][0]["format"] == t.vm("web")["definition"]["disks"][0]["format"], cdef
        assert qcow2img.read(cdef["disks"][0]["path"], 0, 8) == b"disk-one"
        for sn in ("s1", "off1"):
            tern(t, "snapshot", "delete", "web", sn)
        assert json.loads(tern(t, "snapshot", "list", "web", "--json").stdout) == []
        # The default clone: qcow2 overlays in front of the image, the source on one of its own.
        got = t.ok("POST", "/vms/web/clone", {"name": "web2"})
        assert got["name"] == "web2" and got["state"] == "shut off", got
        src, cl = t.vm("web")["definition"], t.vm("web2")["definition"]
        assert cl["uuid"] != src["uuid"] and cl["disks"][0]["path"] != disk
        assert src["disks"][0]["path"] != disk and src["disks"][0]["format"] == cl["disks"][0]["format"]
        # The source is on a qcow2 overlay (its snapshots'): the clone has a copy of it, on
        # the same image below.
        assert src["disks"][0]["format"] == "qcow2", src
        assert qcow2img.backing(cl["disks"][0]["path"]) == qcow2img.backing(src["disks"][0]["path"])
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
        # The old VM's last line can reach the log after `before` was read (its console is
        # drained once it is killed; a CI run saw 21, then 22 after the revert, then 14): a
        # count that carries on the old run is not the restored VM's.
        while after and before and after[0] == before[-1] + 1:
            before.append(after.pop(0))
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


def qemu_io_write(path, data):
    """Writes data at offset 0 of the qcow2 image at path as a guest would (QEMU's qemu-io)."""
    p = subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x%02x 0 %d" % (data[0], len(data)),
                        path], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "wrote" in p.stdout, (p.stdout, p.stderr)


def vm_disk(t, name):
    return t.vm(name)["definition"]["disks"][0]


def open_files(pid):
    fds = "/proc/%d/fd" % pid
    out = set()
    for fd in os.listdir(fds):
        try:
            out.add(os.readlink(os.path.join(fds, fd)))
        except OSError:
            pass
    return out


def layers_flow(tag, jailed):
    d = tempfile.mkdtemp(prefix="tern-layers-")
    os.chmod(d, 0o755)
    base = os.path.join(d, "base.img")
    with open(base, "wb") as f:
        f.write(b"\x62" * 512)
        f.truncate(8 << 20)
    t = ternd.Ternd(tag, extra=[] if jailed else ["--vm-uids", "off"])
    try:
        t.define("v", counter(), disks=[{"path": base}], **COUNTER)
        tern(t, "snapshot", "create", "v", "a")
        a = vm_disk(t, "v")
        assert a == dict(a, path=os.path.join(d, "v-disk0.a.qcow2"), format="qcow2"), a
        assert qcow2img.backing(a["path"]) == base
        qemu_io_write(a["path"], b"\x41" * 512)  # what the VM wrote after a
        tern(t, "snapshot", "create", "v", "b")
        b = vm_disk(t, "v")["path"]
        assert b == os.path.join(d, "v-disk0.b.qcow2") and qcow2img.backing(b) == a["path"]
        chain = json.loads(qcow2img.qemu_img("info", "--output=json", "--backing-chain", b)[1])
        assert [c["filename"] for c in chain] == [b, a["path"], base], chain
        qemu_io_write(b, b"\x42" * 512)
        # Back to a: a new overlay on the base; b's frozen image stays, the overlay written
        # after b goes (nothing stands on it).
        got = t.ok("POST", "/vms/v/snapshots/a/revert")
        assert got["state"] == "shut off", got
        ra = vm_disk(t, "v")["path"]
        assert ra == os.path.join(d, "v-disk0.a-2.qcow2") and qcow2img.backing(ra) == base
        assert qcow2img.read(ra, 0, 512) == b"\x62" * 512
        assert sorted(os.listdir(d)) == ["base.img", "v-disk0.a-2.qcow2", "v-disk0.a.qcow2"]
        got = t.ok("POST", "/vms/v/snapshots/b/revert")
        rb = vm_disk(t, "v")["path"]
        assert qcow2img.backing(rb) == a["path"] and qcow2img.read(rb, 0, 512) == b"\x41" * 512
        left = sorted(["base.img", "v-disk0.a.qcow2", os.path.basename(rb)])
        assert sorted(os.listdir(d)) == left, "v-disk0.a-2.qcow2 should have gone"
        # Deleting a snapshot keeps what the disk stands on while another snapshot holds
        # it; once none does, the shut-off VM's overlays are merged into the image below
        # (libvirt's snapshot-delete, a block commit) and it is back on its own image.
        qemu_io_write(rb, b"\x43" * 512)
        tern(t, "snapshot", "delete", "v", "a")
        assert vm_disk(t, "v")["path"] == rb and sorted(os.listdir(d)) == left
        with open(base, "rb") as f:
            assert f.read(512) == b"\x62" * 512, "the frozen base was written"
        tern(t, "snapshot", "delete", "v", "b")
        cur = vm_disk(t, "v")
        assert cur == dict(cur, path=base, format="raw"), cur
        assert os.listdir(d) == ["base.img"], os.listdir(d)
        with open(base, "rb") as f:
            assert f.read(512) == b"\x43" * 512, "the overlay's data did not reach the image"
        # Running: the drive moves onto the new overlay live, in the same tern-vmm, and the
        # guest counts on. A jailed VM's jail holds only the files it started with: ternd
        # hands it the overlay and the files below open (PUT /files). Twice, so that the
        # second overlay stands on one that came so.
        if jailed:
            # A user's image: lent to the VM's uid while it runs, its overlays still the user's.
            os.chown(base, 4242, 4242)
            os.chmod(base, 0o640)
        t.ok("POST", "/vms/v/start")
        assert wait_counting(t, "v")
        pid = t.vm("v")["pid"]
        assert base in open_files(pid)
        assert bool(t.vm("v").get("jail")) == jailed, t.vm("v")
        got = t.ok("POST", "/vms/v/snapshots", {"name": "r"})
        assert got["state"] == "running", got
        r = vm_disk(t, "v")["path"]
        assert r == os.path.join(d, "v-disk0.r.qcow2") and qcow2img.backing(r) == base
        assert t.vm("v")["pid"] == pid and r in open_files(pid), (pid, t.vm("v"), open_files(pid))
        if jailed:
            st = os.stat(r)
            assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (4242, 4242, 0o640), st
        assert wait_counting(t, "v")
        got = t.ok("POST", "/vms/v/snapshots", {"name": "r2"})
        r2 = vm_disk(t, "v")["path"]
        assert r2 == os.path.join(d, "v-disk0.r2.qcow2") and qcow2img.backing(r2) == r
        held = open_files(pid)
        assert t.vm("v")["pid"] == pid and r2 in held and r in held and base in held, held
        assert wait_counting(t, "v")
        tern(t, "snapshot", "delete", "v", "r2")  # running: nothing merges yet
        # Reverted to it: restored on a new overlay in front of the image the snapshot froze.
        got = t.ok("POST", "/vms/v/snapshots/r/revert")
        assert got["state"] == "running" and got["reason"] == "from snapshot", got
        rr = vm_disk(t, "v")["path"]
        assert rr == os.path.join(d, "v-disk0.r-2.qcow2") and qcow2img.backing(rr) == base
        assert rr in open_files(t.vm("v")["pid"]), open_files(t.vm("v")["pid"])
        assert wait_counting(t, "v")
        assert not os.path.exists(r), "the overlay the revert left was kept"
        if jailed:
            hostile_header(t, d, t.vm("v")["pid"], rr)
        t.ok("POST", "/vms/v/destroy")
        # A clone of a VM with a snapshot: a copy of its overlay, on the same image, which
        # the source's revert and the snapshot's deletion leave alone (no merge into an
        # image the clone stands on).
        t.ok("POST", "/vms/v/clone", {"name": "w"})
        w = vm_disk(t, "w")["path"]
        assert w == os.path.join(d, "w-disk0.qcow2") and qcow2img.backing(w) == base
        t.ok("POST", "/vms/v/snapshots/r/revert")
        t.ok("POST", "/vms/v/destroy")
        qemu_io_write(vm_disk(t, "v")["path"], b"\x44" * 512)
        tern(t, "snapshot", "delete", "v", "r")
        rr = vm_disk(t, "v")["path"]
        assert qcow2img.backing(rr) == base and qcow2img.read(rr, 0, 512) == b"\x44" * 512
        assert qcow2img.read(w, 0, 512) == b"\x43" * 512
        with open(base, "rb") as f:
            assert f.read(512) == b"\x43" * 512, "the clone's base was written"
        for p in (rr, w):
            assert qcow2img.check(p)[0] == 0, qcow2img.check(p)
        if jailed:
            # Undefined, the VM's disks stay (virsh undefine): the chain reads as it did.
            t.ok("DELETE", "/vms/v")
            assert qcow2img.read(rr, 0, 512) == b"\x44" * 512
        else:
            # With its storage: the disk and the overlays ternd made; the user's image stays.
            t.ok("DELETE", "/vms/v?remove_storage=1")
            assert sorted(os.listdir(d)) == ["base.img", "w-disk0.qcow2"], os.listdir(d)
            t.ok("DELETE", "/vms/w?remove_storage=1")
            assert sorted(os.listdir(d)) == ["base.img"], os.listdir(d)
    finally:
        t.close()
        shutil.rmtree(d, ignore_errors=True)


def rewrite_backing(top, old, new):
    """Replaces the backing file name old in qcow2 image top's header with new (as long)."""
    assert len(old) == len(new)
    with open(top, "r+b") as f:
        off, size = struct.unpack(">QI", f.read(20)[8:20])
        f.seek(off)
        name = f.read(size)
        assert name == old.encode(), name
        f.seek(off)
        f.write(new.encode())


def hostile_header(t, d, pid, top):
    """The jailed VM writes its top's header: its backing file is now a root-only image
    next to it, of the name's length. The next snapshot's overlay stands on that top, and
    ternd hands the jail only the overlays it made for the VM: the secret is never opened
    for it. The VM breaks its own drive (the move fails, and so does going back onto a top
    whose chain no longer opens), nothing else. The header is put back after."""
    base, secret = os.path.join(d, "base.img"), os.path.join(d, "secr.img")  # as long
    qcow2img.qemu_img("create", "-q", "-f", "qcow2", secret, "1M")
    os.chmod(secret, 0o600)
    rewrite_backing(top, base, secret)
    try:
        status, got = t.call("POST", "/vms/v/snapshots", {"name": "r3"})
        assert status >= 400 and secret in got.get("error", ""), (status, got)
        held = open_files(pid)
        assert secret not in held, held
    finally:
        rewrite_backing(top, secret, base)
        os.unlink(secret)


def test_a_merge_goes_into_the_image_ternd_put_the_overlay_on_not_the_header_s():
    """A snapshot's deletion merges the shut-off VM's overlay into the image ternd made it
    in front of, as root, and removes the overlays nothing stands on. The overlay's header
    was the VM's to write while it ran: here it names a root-only image beside the one
    below instead (a tern-vmm taken over could write that). ternd goes by its own record:
    nothing is merged, that image is not written, the one below (held only through the
    overlay) is kept, and the log says why; with the header put back, the next deletion
    merges the VM back onto its own image."""
    d = tempfile.mkdtemp(prefix="tern-merge-")
    base = os.path.join(d, "base.img")
    with open(base, "wb") as f:
        f.write(b"\x62" * 512)
        f.truncate(8 << 20)
    t = ternd.Ternd("merge-record", extra=["--vm-uids", "off"])
    try:
        t.define("v", counter(), disks=[{"path": base}], **COUNTER)
        tern(t, "snapshot", "create", "v", "a")
        tern(t, "snapshot", "create", "v", "b")
        a, top = os.path.join(d, "v-disk0.a.qcow2"), os.path.join(d, "v-disk0.b.qcow2")
        assert vm_disk(t, "v")["path"] == top and qcow2img.backing(top) == a
        qemu_io_write(top, b"\x41" * 512)
        other = os.path.join(d, "v-disk0.x.qcow2")  # as long as a's name
        qcow2img.qemu_img("create", "-q", "-f", "qcow2", other, "8M")
        os.chmod(other, 0o600)
        with open(other, "rb") as f:
            other_bytes = f.read()
        rewrite_backing(top, a, other)
        tern(t, "snapshot", "delete", "v", "b")
        assert vm_disk(t, "v")["path"] == top, t.vm("v")
        with open(other, "rb") as f:
            assert f.read() == other_bytes, "ternd merged into the file the header named"
        assert os.path.exists(a), "ternd removed the image the VM's overlay stands on"
        assert "names %s (qcow2) below it, but ternd made it in front of %s" % (other, a) \
            in t.log(), t.log()[-2000:]
        # The header back as ternd wrote it: the next deletion merges down to the image.
        rewrite_backing(top, other, a)
        tern(t, "snapshot", "delete", "v", "a")
        cur = vm_disk(t, "v")
        assert cur == dict(cur, path=base, format="raw"), cur
        assert disk_head(base, 512) == b"\x41" * 512
        assert sorted(os.listdir(d)) == ["base.img", "v-disk0.x.qcow2"], os.listdir(d)
    finally:
        t.close()
        shutil.rmtree(d, ignore_errors=True)


def test_a_start_refuses_a_chain_the_vm_rewrote():
    """The user's disk is a qcow2 over a raw image; ternd records that chain when the VM is
    defined. A VM that rewrote its top's header to name a file any user may read below it
    (a tern-vmm taken over could) is refused at its next start, naming both files, so that
    file never reaches its jail; with the header put back it starts."""
    d = tempfile.mkdtemp(prefix="tern-chain-")
    os.chmod(d, 0o755)
    base, other = os.path.join(d, "base.img"), os.path.join(d, "pass.img")  # as long
    for path in (base, other):
        with open(path, "wb") as f:
            f.truncate(8 << 20)
        os.chmod(path, 0o644)
    top = os.path.join(d, "top.qcow2")
    qcow2img.qemu_img("create", "-q", "-f", "qcow2", "-b", base, "-F", "raw", top)
    t = ternd.Ternd("chain-record")
    try:
        t.define("v", counter(), disks=[{"path": top}], **COUNTER)
        rewrite_backing(top, base, other)
        status, got = t.call("POST", "/vms/v/start")
        assert status == 409, (status, got)
        assert "names %s (raw) below it, but ternd recorded %s (raw)" % (other, base) \
            in got["error"], got
        record = os.path.join(t.dir, "vms", t.vm("v")["uuid"], "chain")
        assert "qemu-img rebase -u -b %s -F raw %s" % (base, top) in got["error"], got
        assert "remove %s" % record in got["error"] and os.path.exists(record), got
        assert t.state("v")[0] == "shut off", t.state("v")
        rewrite_backing(top, other, base)
        t.ok("POST", "/vms/v/start")
        assert wait_counting(t, "v")
        t.ok("POST", "/vms/v/destroy")
    finally:
        t.close()
        shutil.rmtree(d, ignore_errors=True)


def test_snapshots_freeze_images_under_qcow2_overlays():
    """A snapshot freezes the VM's images and puts it on qcow2 overlays in front of them
    (libvirt's external snapshots, readable by qemu-img); a revert puts it on a new overlay
    in front of the snapshot's images; what no disk or snapshot stands on any more is
    removed, the user's own image never. Shut off, then running (moved live: the overlays
    handed to the jail open), then reverted to the running snapshot: restored on its new
    overlay. Jailed (ternd's default as root)."""
    layers_flow("layers", True)


def test_a_vm_not_jailed_moves_onto_the_overlay_live():
    """ternd --vm-uids off: the running VM's drive moves onto the snapshot's overlay in
    the same tern-vmm (PATCH /drives), the guest paused only meanwhile."""
    layers_flow("layers-live", False)


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
