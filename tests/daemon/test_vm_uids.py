"""ternd --vm-uids: each VM's tern-vmm jailed under a uid of its own, its writable disks
handed to that uid while it runs and given back after (also when ternd died meanwhile);
VM A's process can neither see nor open VM B's disk or socket."""
import errno
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ternd  # noqa: E402
import ternlib  # noqa: E402
from test_ternd import COUNTER, wait_counting  # noqa: E402

# daemon/test_migrate, not guest/'s of the same name.
_mig = ternlib.sibling(__file__, "test_migrate")
DOWNTIME_MS, Pair, passes, wait_passes = _mig.DOWNTIME_MS, _mig.Pair, _mig.passes, _mig.wait_passes

FIRST = 4100000  # no user of the host's has uids this high
UIDS = "%d-%d" % (FIRST, FIRST + 9)


def disk(d, name):
    p = os.path.join(d, name)
    with open(p, "wb") as f:
        f.truncate(4 << 20)
    os.chmod(p, 0o640)
    return p


def owner(path):
    st = os.stat(path)
    return st.st_uid, st.st_gid, st.st_mode & 0o7777


def as_uid(uid, code):
    """Runs python code as uid (and gid uid, no other groups); its stdout."""
    def drop():
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    # The system's python: one under root's home is out of another uid's reach.
    return subprocess.run(["/usr/bin/python3", "-c", code], preexec_fn=drop, capture_output=True,
                          text=True, timeout=30).stdout.strip()


ACL_XATTR = "system.posix_acl_access"


def acl_users(path):
    """The named-user entries of path's access ACL, {uid: perm} (the mask applied); None
    when it has none. Linux's format: u32 version 2, then {u16 tag, u16 perm, u32 id}."""
    try:
        raw = os.getxattr(path, ACL_XATTR)
    except OSError as e:
        if e.errno == errno.ENODATA:
            return None
        raise
    version, = struct.unpack_from("<I", raw)
    assert version == 2 and (len(raw) - 4) % 8 == 0, raw
    ents = [struct.unpack_from("<HHI", raw, 4 + 8 * i) for i in range((len(raw) - 4) // 8)]
    mask = [perm for tag, perm, _ in ents if tag == 0x10]
    users = {i: perm & (mask[0] if mask else 7) for tag, perm, i in ents if tag == 0x02}
    return users or None


def acls_work(d):
    """Whether d's file system keeps POSIX ACLs (the lab's /tmp is a tmpfs)."""
    probe = os.path.join(d, "acl-probe")
    open(probe, "wb").close()
    try:  # user:65534:r, with the mask it needs
        os.setxattr(probe, ACL_XATTR, struct.pack("<I", 2) + b"".join(
            struct.pack("<HHI", tag, perm, i) for tag, perm, i in (
                (0x01, 6, 0xffffffff), (0x02, 4, 65534), (0x04, 4, 0xffffffff),
                (0x10, 4, 0xffffffff), (0x20, 0, 0xffffffff))))
        return True
    except OSError as e:
        if e.errno in (errno.EOPNOTSUPP, errno.ENOTSUP):
            return False
        raise
    finally:
        os.unlink(probe)


def tern_info(t, name):
    p = subprocess.run([ternd.tool("tern"), "--state-dir", t.dir, "info", name],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p
    return p.stdout


def test_each_vm_runs_jailed_under_its_own_uid():
    d = tempfile.mkdtemp(prefix="tern-vmuids-")
    os.chmod(d, 0o755)
    t = ternd.Ternd("vmuids", extra=["--vm-uids", UIDS])
    try:
        disks = {n: disk(d, n + ".img") for n in ("a", "b")}
        for n in ("a", "b"):
            t.define(n, ternlib.guest_path("counter"), disks=[{"path": disks[n]}], **COUNTER)
            t.ok("POST", "/vms/%s/start" % n)
        for n in ("a", "b"):
            assert wait_counting(t, n), "%s never counted:\n%s" % (n, t.log())
        vm = {n: t.vm(n) for n in ("a", "b")}
        uid = {n: vm[n]["jail"]["uid"] for n in ("a", "b")}
        assert uid["a"] != uid["b"] and all(FIRST <= u < FIRST + 10 for u in uid.values()), uid
        for n in ("a", "b"):
            pid = vm[n]["pid"]
            assert pid != vm[n]["jail"]["supervisor_pid"], vm[n]
            # Every thread: the VM's uid, filtered, no capabilities, no new privileges.
            threads = ternlib.thread_status(pid)
            assert threads, pid
            for tid, st in threads.items():
                assert st["Uid"].split() == [str(uid[n])] * 4, (n, tid, st["Uid"])
                assert ternlib.filtered(st) and st["NoNewPrivs"] == "1", (n, tid, st)
                assert int(st["CapEff"], 16) == 0, (n, tid, st["CapEff"])
            # Its disk is its uid's while it runs; the files it needs are in its jail, the
            # other VM's are not.
            assert owner(disks[n])[:2] == (uid[n], uid[n]), (n, owner(disks[n]))
            other = "b" if n == "a" else "a"
            root = "/proc/%d/root" % pid
            assert os.path.exists(root + disks[n]), "%s's disk is not in its jail" % n
            assert not os.path.exists(root + disks[other]), "%s sees %s's disk" % (n, other)
            assert not os.path.exists(root + t.vm(other)["api_socket"]), (n, other)
            assert "Jail:" in tern_info(t, n) and "uid %d" % uid[n] in tern_info(t, n)
        # The uid wall beside the mount wall: as a's uid, b's disk and socket are refused.
        code = ("import socket\n"
                "for f in (lambda: open(%r, 'r+b'), lambda: socket.socket(socket.AF_UNIX)"
                ".connect(%r)):\n"
                "    try:\n"
                "        f(); print('opened')\n"
                "    except PermissionError:\n"
                "        print('refused')\n") % (disks["b"], vm["b"]["api_socket"])
        assert as_uid(uid["a"], code).split() == ["refused", "refused"]
        # A managed save and a snapshot go through ternd's directories and come back.
        t.ok("POST", "/vms/a/save")
        assert owner(disks["a"]) == (0, 0, 0o640), owner(disks["a"])
        t.ok("POST", "/vms/a/start")
        assert t.state("a") == ("running", "restored"), t.state("a")
        assert wait_counting(t, "a"), "a did not count on after its restore"
        assert t.vm("a")["jail"]["uid"] == uid["a"], "a's uid changed between its runs"
        t.ok("POST", "/vms/b/snapshots", {"name": "s1"})
        assert wait_counting(t, "b")
        got = t.ok("POST", "/vms/b/snapshots/s1/revert")
        assert got["state"] == "running", got
        assert wait_counting(t, "b"), "b did not count on after its revert"
        for n in ("a", "b"):
            t.ok("POST", "/vms/%s/destroy" % n)
            assert owner(disks[n]) == (0, 0, 0o640), (n, owner(disks[n]))
        # ternd killed while a runs, a killed meanwhile: the next ternd gives its disk back.
        t.ok("POST", "/vms/a/start")
        assert wait_counting(t, "a")
        assert owner(disks["a"])[0] == uid["a"]
        pids = open(os.path.join(t.dir, "vms", t.vm("a")["uuid"], "pid")).read().split()
        t.kill9()
        os.kill(int(pids[2]), signal.SIGKILL)  # the jail's supervisor: its VM goes with it
        os.kill(int(pids[0]), signal.SIGKILL)
        time.sleep(0.5)
        assert owner(disks["a"])[0] == uid["a"]
        t.start()
        assert t.wait_state("a", "shut off"), t.state("a")
        assert owner(disks["a"]) == (0, 0, 0o640), owner(disks["a"])
    finally:
        t.close()
        shutil.rmtree(d, ignore_errors=True)


def test_a_jailed_vm_on_2m_pages():
    """huge_pages "2M" in a definition: the jailed tern-vmm, another uid with no capability,
    gets its guest RAM on 2 MiB hugetlbfs pages from the host's pool, which has them all
    back once the VM is shut off, and again when it comes back from a managed save; an odd
    memory_mib with it is refused, naming both."""
    guest = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "guest")
    mem = ternlib.sibling(os.path.join(guest, "test_memory.py"), "test_memory")
    t = ternd.Ternd("vmhuge", extra=["--vm-uids", UIDS])
    try:
        mem.set_huge_pool(COUNTER["memory_mib"] // 2 + 2)
        st, body = t.call("POST", "/vms", dict(name="odd", kernel=ternlib.guest_path("counter"),
                                               memory_mib=33, huge_pages="2M"))
        assert st == 400 and "'memory_mib' 33" in body["error"] and "2M" in body["error"], body
        t.define("h", ternlib.guest_path("counter"), huge_pages="2M", **COUNTER)
        assert t.vm("h")["definition"]["huge_pages"] == "2M"
        t.ok("POST", "/vms/h/start")
        assert wait_counting(t, "h"), t.log()
        pid = t.vm("h")["pid"]
        ram = mem.hugetlb_ram(pid, COUNTER["memory_mib"])
        assert ram and ram["page_kb"] == 2048, ram
        assert mem.in_use(mem.huge_pool()) == COUNTER["memory_mib"] // 2, mem.huge_pool()
        # Saved and started again: the memory file is read into 2 MiB pages, not mapped.
        t.ok("POST", "/vms/h/save")
        t.wait_state("h", "shut off")
        assert mem.in_use(mem.huge_pool()) == 0, mem.huge_pool()
        t.ok("POST", "/vms/h/start")
        assert t.vm("h")["reason"] == "restored", t.vm("h")
        assert wait_counting(t, "h"), t.log()
        ram = mem.hugetlb_ram(t.vm("h")["pid"], COUNTER["memory_mib"])
        assert ram and ram["page_kb"] == 2048, ram
        t.ok("POST", "/vms/h/destroy")
        t.wait_state("h", "shut off")
        assert mem.in_use(mem.huge_pool()) == 0, mem.huge_pool()
    finally:
        t.stop()
        mem.set_huge_pool(0)


def test_what_a_jailed_vm_cannot_have_is_refused():
    """A kernel its uid cannot read, a disk another VM's uid holds: 409 naming the file,
    nothing handed over. Bad --vm-uids: exit 2 naming the option."""
    d = tempfile.mkdtemp(prefix="tern-vmuids-bad-")
    os.chmod(d, 0o755)
    t = ternd.Ternd("vmuids-bad", extra=["--vm-uids", UIDS])
    try:
        kernel = os.path.join(d, "counter.elf")
        shutil.copy(ternlib.guest_path("counter"), kernel)
        os.chmod(kernel, 0o600)
        img = disk(d, "c.img")
        t.define("c", kernel, disks=[{"path": img}], **COUNTER)
        st, got = t.call("POST", "/vms/c/start")
        assert st == 409 and kernel in got["error"] and "chmod o+r" in got["error"], (st, got)
        assert owner(img) == (0, 0, 0o640), owner(img)
        os.chmod(kernel, 0o644)
        os.chown(img, FIRST + 9, FIRST + 9)  # as if another VM of this range held it
        st, got = t.call("POST", "/vms/c/start")
        assert st == 409 and img in got["error"] and "another VM" in got["error"], (st, got)
        os.chown(img, 0, 0)
        t.ok("POST", "/vms/c/start")
        t.ok("POST", "/vms/c/destroy")
        assert owner(img) == (0, 0, 0o640), owner(img)
        # A clone's base is shared with its source, read by both uids, handed to neither:
        # each uid gets an ACL entry user:UID:r on it for its run, taken off after.
        t.ok("POST", "/vms/c/clone", {"name": "c2"})
        overlays = t.vm("c2")["definition"]["disks"][0].get("format") == "qcow2"
        acls = overlays and acls_work(d)
        if overlays and not acls:  # no reflinks, and no ACLs, on this file system
            print("  (no POSIX ACLs on %s: the clone's start is refused as without them)" % d)
            st, got = t.call("POST", "/vms/c2/start")
            assert st == 409 and "backing file %s" % img in got["error"], (st, got)
            assert acl_users(img) is None and owner(img) == (0, 0, 0o640), owner(img)
            os.chmod(img, 0o644)
        t.ok("POST", "/vms/c2/start")
        uid2 = t.vm("c2")["jail"]["uid"]
        if acls:
            assert owner(img) == (0, 0, 0o640), owner(img)
            assert acl_users(img) == {uid2: 4}, acl_users(img)
            assert wait_counting(t, "c2"), "c2 never counted:\n%s" % t.log()
        t.ok("POST", "/vms/c/start")
        uid1 = t.vm("c")["jail"]["uid"]
        assert uid1 != uid2
        if acls:
            assert owner(img) == (0, 0, 0o640), owner(img)
            assert acl_users(img) == {uid1: 4, uid2: 4}, acl_users(img)
        elif overlays:
            assert owner(img) == (0, 0, 0o644), owner(img)
        for n in ("c2", "c"):
            t.ok("POST", "/vms/%s/destroy" % n)
            if acls:  # each run takes off its own uid's entry alone
                assert acl_users(img) == ({uid1: 4} if n == "c2" else None), acl_users(img)
        if acls:
            assert owner(img) == (0, 0, 0o640), owner(img)
    finally:
        t.close()
        shutil.rmtree(d, ignore_errors=True)
    for bad, says in (("5", "FIRST-LAST"), ("0-9", "FIRST-LAST"), ("9-5", "FIRST-LAST"),
                      ("1-2000000", "at most"), ("65534-65534", "nobody")):
        p = subprocess.run([ternd.tool("ternd"), "--foreground", "--state-dir", "/nonexistent",
                            "--vm-uids", bad], capture_output=True, text=True, timeout=30)
        assert p.returncode == 2 and "--vm-uids" in p.stderr and says in p.stderr, (bad, p)


def owners_file(t, name):
    with open(os.path.join(t.dir, "vms", t.vm(name)["uuid"], "owners")) as f:
        return json.load(f)


def test_jailed_vms_migrate_between_ternds():
    """Both ternds jail their VMs: the VM arrives under the same uid, its disk (shared
    storage: this host) stays that uid's, the destination records who owned it before the
    source's run and gives it back when the VM ends there; and back again, post-copy."""
    p = Pair("jmig", extra=["--vm-uids", UIDS])
    d = tempfile.mkdtemp(prefix="tern-vmuids-mig-")
    os.chmod(d, 0o755)
    try:
        img = disk(d, "jm.img")
        p.start_vm("jm", disks=[{"path": img}])
        uid = p.src.vm("jm")["jail"]["uid"]
        assert owner(img)[0] == uid, owner(img)
        r = p.tern(p.src, "migrate", "jm", p.url, "--live", "--auto-converge", "--downtime",
                   DOWNTIME_MS)
        assert r.status == 0, "%r\n%s" % (r, p.logs())
        assert p.src.state("jm") == ("shut off", "migrated") and \
            p.dst.state("jm") == ("running", "migrated"), p.logs()
        there = p.dst.vm("jm")
        assert there["jail"]["uid"] == uid, there["jail"]
        for st in ternlib.thread_status(there["pid"]).values():
            assert st["Uid"].split() == [str(uid)] * 4 and ternlib.filtered(st), st
        assert owner(img)[0] == uid, "the source gave the disk back under the destination"
        rec = owners_file(p.dst, "jm")
        assert rec["uid"] == uid and rec["files"] == [
            {"path": img, "uid": 0, "gid": 0, "mode": "0640"}], rec
        assert wait_passes(p.dst, "jm", len(passes(p.dst, "jm")) + 2), p.logs()
        # And back, post-copy, into the shut-off VM of the same uuid there: the same uid
        # again. A 1 ms downtime limit the lab never meets: post-copy takes over after 3
        # rounds, its pages relayed by both ternds.
        r = p.tern(p.dst, "migrate", "jm", p.src_url, "--live", "--post-copy", "--downtime", "1")
        assert r.status == 0, "%r\n%s" % (r, p.logs())
        assert p.src.state("jm")[0] == "running", (p.src.state("jm"), ternd.detail(p.src, "jm"))
        with open(os.path.join(p.src.dir, "vms", p.src.vm("jm")["uuid"], "vmm.log")) as f:
            assert "post-copy: the VM runs here" in f.read(), "no post-copy happened"
        assert p.src.vm("jm")["jail"]["uid"] == uid
        assert wait_passes(p.src, "jm", len(passes(p.src, "jm")) + 2), p.logs()
        assert "FAIL" not in ternd.console_log(p.src, "jm")
        p.src.ok("POST", "/vms/jm/destroy")
        assert owner(img) == (0, 0, 0o640), owner(img)
    finally:
        p.close()
        shutil.rmtree(d, ignore_errors=True)


def test_jailed_copy_storage_makes_the_disk_for_the_destination():
    """--copy-storage into a jailed destination: the destination's ternd runs in a mount
    namespace of its own with an empty tmpfs over the disk's directory (another host's
    disk, at the same path); it makes the image, empty and the VM's uid's, for the jailed
    tern-vmm to fill. Every byte arrives; the source's disk goes back to its owner at
    once, the destination's to the owner the source recorded when the VM ends there."""
    copy_storage_into_a_jail(post_copy=False)


def test_jailed_copy_storage_with_post_copy():
    """The same, post-copy: a 1 ms limit the lab never meets, so after 3 rounds the VM
    runs at the destination with its disk whole (its last blocks went in the switchover)
    and its missing pages relayed by both ternds."""
    copy_storage_into_a_jail(post_copy=True)


def hidden_dir_pair(name):
    """A directory for the source's disks and a pair of ternds with VM uids whose
    destination has an empty tmpfs over that directory (another host's disks, at the same
    paths); in it, data.img: 4 MiB, the first 1 MiB random."""
    d = tempfile.mkdtemp(prefix="tern-vmuids-%s-" % name)
    os.chmod(d, 0o755)
    p = Pair(name, extra=["--vm-uids", UIDS],
             dst_wrap=["unshare", "-m", "sh", "-c", 'mount -t tmpfs tmpfs "$0" && exec "$@"', d])
    img = disk(d, "data.img")
    with open(img, "r+b") as f:
        f.write(os.urandom(1 << 20))
    return d, p, img


def copy_storage_into_a_jail(post_copy):
    d, p, img = hidden_dir_pair("jcopy")
    try:
        p.start_vm("jc", disks=[{"path": img}])
        there_img = "/proc/%d/root%s" % (p.dst.proc.pid, img)
        assert not os.path.exists(there_img), "the destination sees the source's disk"
        how = ["--post-copy", "--downtime", "1"] if post_copy else ["--downtime", DOWNTIME_MS]
        r = p.tern(p.src, "migrate", "jc", p.url, "--live", "--copy-storage", *how)
        assert r.status == 0, "%r\n%s" % (r, p.logs())
        if post_copy:
            with open(os.path.join(p.dst.dir, "vms", p.dst.vm("jc")["uuid"], "vmm.log")) as f:
                assert "post-copy: the VM runs here" in f.read(), "no post-copy happened"
        uid = p.dst.vm("jc")["jail"]["uid"]
        assert owner(there_img)[0] == uid, owner(there_img)
        assert owner(img) == (0, 0, 0o640), "the source kept its disk's handover"
        assert wait_passes(p.dst, "jc", len(passes(p.dst, "jc")) + 2), p.logs()
        p.dst.ok("POST", "/vms/jc/destroy")
        with open(img, "rb") as a, open(there_img, "rb") as b:
            assert a.read() == b.read(), "the copy differs"
        assert owner(there_img) == (0, 0, 0o640), owner(there_img)
    finally:
        p.close()
        shutil.rmtree(d, ignore_errors=True)


def test_jailed_copy_storage_flattens_a_qcow2_chain():
    """--copy-storage of a VM on a qcow2 overlay over a raw base, into a jailed destination
    that has neither file: it gets one raw image holding what the guest reads through the
    chain (the base's bytes, the overlay's over them), and its definition there says raw;
    the source's chain stays as it was, and qemu-img finds it clean."""
    for tool in ("qemu-img", "qemu-io"):
        if not shutil.which(tool):
            raise ternlib.Missing("%s is not installed (qemu-utils; scripts/setup installs it)" % tool)
    d, p, base = hidden_dir_pair("jqcopy")
    try:
        top = os.path.join(d, "top.qcow2")
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", base, "-F", "raw", top],
                       check=True)
        # Over the base's data and past it, and a zero cluster over base data.
        for cmd in ("write -P 0x5a 512k 1M", "write -P 0x3c 3M 64k", "write -z 128k 64k"):
            subprocess.run(["qemu-io", "-f", "qcow2", "-c", cmd, top], check=True,
                           stdout=subprocess.DEVNULL)
        os.chmod(top, 0o640)
        flat = os.path.join(d, "flat.raw")
        subprocess.run(["qemu-img", "convert", "-O", "raw", top, flat], check=True)
        with open(flat, "rb") as f:
            want = f.read()
        os.unlink(flat)
        p.start_vm("jq", disks=[{"path": top}])
        there = "/proc/%d/root%s" % (p.dst.proc.pid, top)
        assert not os.path.exists(there), "the destination sees the source's disk"
        r = p.tern(p.src, "migrate", "jq", p.url, "--live", "--copy-storage", "--downtime",
                   DOWNTIME_MS)
        assert r.status == 0, "%r\n%s" % (r, p.logs())
        disks = p.dst.vm("jq")["definition"]["disks"]
        assert disks[0]["format"] == "raw", disks
        assert not os.path.exists("/proc/%d/root%s" % (p.dst.proc.pid, base)), \
            "the base came along: the copy should stand alone"
        assert wait_passes(p.dst, "jq", len(passes(p.dst, "jq")) + 2), p.logs()
        p.dst.ok("POST", "/vms/jq/destroy")
        with open(there, "rb") as f:
            got = f.read()
        assert got[:4] != b"QFI\xfb" and len(got) == len(want) == 4 << 20, (got[:4], len(got))
        assert got == want, "the copy differs from the chain as qemu-img reads it"
        r = subprocess.run(["qemu-img", "check", top], capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
        subprocess.run(["qemu-img", "convert", "-O", "raw", top, flat], check=True)
        with open(flat, "rb") as f:
            assert f.read() == want, "the source's chain changed"
    finally:
        p.close()
        shutil.rmtree(d, ignore_errors=True)
