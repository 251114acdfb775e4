"""Snapshots with the tiny guests (src/vmm/snapshot.h, docs/api.md): PUT /snapshot/create of
a paused VM, restoring it with --restore or PUT /snapshot/load into a fresh tern-vmm, diff
snapshots on a full one, bad state and memory files (and diffs whose base is gone), creates
that fail (bad paths, a crash and a full disk while a snapshot is written) without harming
the snapshot already there, and clones.

The counter guest (guest/tiny/counter.c) prints "count N" a few times a second; its counter
lives in guest memory, so a restored VM goes on from the line after the last one printed
before the pause. The memfill guest (guest/tiny/memfill.c) first fills `mib=` MiB of RAM,
so that a snapshot has that much to write, then counts the same way.

Every restore is checked by its first lines: "count N+1", "count N+2", ... where N is the
last line the original printed before it was paused. The pause may land in the middle of
printing a line; the restored VM then prints the rest of it first ("nt 5"), which must be
the end of "count N+1".
"""
import glob
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
import api  # noqa: E402
import qcow2img  # noqa: E402
import ternlib  # noqa: E402

COUNT_RE = re.compile(r"^count (\d+)$")
HEADER_CRC = 24  # src/vmstate/vmstate.h: magic 8, version u32 @8, arch u32 @12, flags u64 @16, CRC u32 @24
MEM_TRAILER_MAGIC = b"TERNMEM1"  # src/vmstate/mem_file.h: after the RAM image


def guest(name):
    """A tiny guest from TERN_BUILD's guest/ when it has one (a private build), else build/guest."""
    p = os.path.join(ternlib.BUILD, "guest", name + ".elf")
    return p if os.path.exists(p) else ternlib.guest_path(name)


def need_guest(name):
    ternlib.need_kvm()
    assert os.path.exists(ternlib.vmm_path()), "no %s: build it first" % ternlib.vmm_path()
    assert os.path.exists(guest(name)), "no %s: run `make guests`" % guest(name)
    return guest(name)


def expect_400(resp, what, *words):
    return api.expect_400(resp, what, *words, ignore_case=True)


def workdir(tag):
    return tempfile.mkdtemp(prefix="tern-snap-%s-" % tag)


def out_lines(vmm):
    with vmm._cond:
        return [l for _, l in vmm.out_lines]


def counts(vmm):
    return [int(m.group(1)) for m in map(COUNT_RE.match, out_lines(vmm)) if m]


def settle(vmm, quiet=0.5, timeout=5):
    """Waits until vmm's stdout has been quiet for `quiet` seconds (output already queued
    when the VM paused has arrived)."""
    end = time.time() + timeout
    n = len(out_lines(vmm))
    last = time.time()
    while time.time() < end:
        time.sleep(0.1)
        m = len(out_lines(vmm))
        if m != n:
            n, last = m, time.time()
        elif time.time() - last >= quiet:
            return
    raise AssertionError("output never stopped: %r" % vmm)


def pause(c, vmm):
    """Pauses the VM; returns the last count it printed (every line arrived)."""
    api.expect_204(c.patch("/vm", {"state": "Paused"}), "PATCH /vm Paused", vmm)
    assert api.vm_state(c) == "Paused"
    settle(vmm)
    got = counts(vmm)
    assert got and got == list(range(got[0], got[0] + len(got))), "counts not consecutive: %r" % vmm
    return got[-1]


def resume(c, vmm, more=2):
    n = len(counts(vmm))
    api.expect_204(c.patch("/vm", {"state": "Resumed"}), "PATCH /vm Resumed", vmm)
    assert api.vm_state(c) == "Running"
    assert wait_counts(vmm, n + more), "no counts after resume: %r" % vmm


def wait_counts(vmm, n, timeout=30):
    """Waits until vmm printed n "count" lines in all."""
    end = time.time() + timeout
    while time.time() < end:
        if len(counts(vmm)) >= n:
            return True
        if vmm.proc.poll() is not None:
            time.sleep(0.2)  # let the readers finish
            return len(counts(vmm)) >= n
        time.sleep(0.05)
    return False


def snapshot(c, st, mem, what, vmm=None, diff=False):
    body = {"snapshot_path": st, "mem_file_path": mem}
    if diff:
        body["snapshot_type"] = "Diff"
    # Writing the memory file may take a while (the lab runs this code under emulation):
    # how long is bench/snapshot's business, not this test's.
    api.expect_204(api.ApiClient(c.path, timeout=300).put("/snapshot/create", body), what, vmm)
    assert os.path.exists(st) and os.path.exists(mem), "%s: 204 but the files are missing" % what


def kill9(vmm):
    """SIGKILL, as a crash: no clean-up in tern-vmm."""
    if vmm.proc.poll() is None:
        vmm.proc.send_signal(signal.SIGKILL)
    vmm.wait(10)
    vmm.save_log()


def expect_continues(vmm, n, what, more=3, timeout=30):
    """vmm, restored from a snapshot taken after "count n", goes on with n+1, n+2, ..."""
    assert wait_counts(vmm, more, timeout), "%s: fewer than %d counts: %r" % (what, more, vmm)
    lines = out_lines(vmm)
    got = [int(m.group(1)) for m in map(COUNT_RE.match, lines) if m]
    first = lines[0]
    if COUNT_RE.match(first):
        start = n + 1
    else:
        # Paused in the middle of "count n+1": the restored VM prints the rest of it.
        assert ("count %d" % (n + 1)).endswith(first), \
            "%s: the first line %r is neither \"count %d\" nor its end: %r" % (what, first, n + 1, vmm)
        start = n + 2
    assert got[:more] == list(range(start, start + more)), \
        "%s: expected counting to go on from %d (last count before the snapshot), got %r: %r" % (
            what, n, got[:more + 2], vmm)


def boot(c, vmm, kernel, mem_mib, boot_args="console=ttyS0", track_dirty=None, extra=()):
    mc = {"vcpu_count": 1, "mem_size_mib": mem_mib}
    if track_dirty is not None:
        mc["track_dirty_pages"] = track_dirty
    api.expect_204(c.put("/machine-config", mc), "PUT /machine-config", vmm)
    api.expect_204(c.put("/boot-source", {"kernel_image_path": kernel, "boot_args": boot_args}), "PUT /boot-source", vmm)
    for path, body in extra:
        api.expect_204(c.put(path, body), "PUT " + path, vmm)
    api.expect_204(c.put("/actions", {"action_type": "InstanceStart"}), "InstanceStart", vmm)
    assert api.vm_state(c) == "Running"


def start_counter(work, name, mem_mib=32, track_dirty=None, extra=()):
    """A counter guest booted through the API in a fresh tern-vmm, counting."""
    counter = need_guest("counter")
    vmm, c = api.start_api_vmm([], log_name="snap-%s.log" % name, workdir=work)
    try:
        boot(c, vmm, counter, mem_mib, track_dirty=track_dirty, extra=extra)
        assert wait_counts(vmm, 3), "no counts: %r" % vmm
    except Exception:
        vmm.stop()
        raise
    return vmm, c


def start_memfill(work, name, fill_mib, mem_mib, track_dirty=None, timeout=60):
    memfill = need_guest("memfill")
    vmm, c = api.start_api_vmm([], log_name="snap-%s.log" % name, workdir=work)
    try:
        boot(c, vmm, memfill, mem_mib, boot_args="console=ttyS0 mib=%d" % fill_mib, track_dirty=track_dirty)
        assert vmm.wait_for("memfill: done", timeout=timeout), "memfill never finished: %r" % vmm
        assert wait_counts(vmm, 2), "no counts after the fill: %r" % vmm
    except Exception:
        vmm.stop()
        raise
    return vmm, c


def fresh_api(work, name, env=None):
    d = tempfile.mkdtemp(prefix="api-", dir=work)
    vmm, c = api.start_api_vmm([], env=env, log_name="snap-%s.log" % name, workdir=d)
    assert api.vm_state(c) == "Not started"
    return vmm, c


def load_body(st, mem, resume=True, **kw):
    b = {"snapshot_path": st, "mem_backend": {"backend_type": "File", "backend_path": mem}, "resume_vm": resume}
    b.update(kw)
    return b


def load_refused(c, vmm, body, what, *words):
    """PUT /snapshot/load answers 400 naming words, and the process stays empty and serving."""
    try:
        resp = c.put("/snapshot/load", body)
    except OSError as e:
        vmm.wait(5)
        raise AssertionError("%s: no answer to PUT /snapshot/load (%s); tern-vmm exit status %r "
                             "instead of a 400: %r" % (what, e, vmm.proc.poll(), vmm)) from None
    msg = expect_400(resp, what, *words)
    assert vmm.proc.poll() is None, "%s: tern-vmm exited after its 400: %r" % (what, vmm)
    assert api.vm_state(c) == "Not started", "%s: %r" % (what, vmm)
    return msg


def restore_cli(st, mem, name, extra=()):
    return api.Vmm(["--restore", st, "--restore-mem", mem] + list(extra), log_name="snap-%s.log" % name)


def expect_usage_error(r, what, *words):
    """Exit status 2 and one line on stderr naming what is wrong."""
    assert not r.timed_out and r.status == 2, "%s: expected exit status 2: %r" % (what, r)
    lines = [l for l in r.err.splitlines() if l.strip()]
    assert len(lines) == 1, "%s: expected one error line, got %d: %r" % (what, len(lines), r)
    for w in words:
        assert w.lower() in lines[0].lower(), "%s: the error should mention %r: %r" % (what, w, lines[0])
    assert not r.out, "%s: the guest printed something: %r" % (what, r)
    return lines[0]


def stop_all(vmms):
    for v in vmms:
        if v is not None:
            v.stop()


def allocated(path):
    return os.stat(path).st_blocks * 512


def mem_trailer(path, ram):
    """(kind, RAM size) from a memory file's trailer, which starts right after RAM (mem_file.h)."""
    with open(path, "rb") as f:
        f.seek(ram)
        t = f.read(20)
    assert t[:8] == MEM_TRAILER_MAGIC, "%s: no %r trailer at offset %d: %r" % (path, MEM_TRAILER_MAGIC, ram, t)
    return struct.unpack_from("<I", t, 8)[0], struct.unpack_from("<Q", t, 12)[0]


# ---- 1. counting goes on after a restore ----

def test_restore_continues_counting():
    work = workdir("cont")
    vmms = []
    try:
        orig, c = start_counter(work, "cont-orig")
        vmms.append(orig)
        st, mem = os.path.join(work, "vm.state"), os.path.join(work, "vm.mem")
        n = pause(c, orig)
        snapshot(c, st, mem, "Full snapshot", orig)
        time.sleep(0.5)
        assert counts(orig)[-1] == n, "the paused VM counted on during the snapshot: %r" % orig
        kill9(orig)

        # (a) --restore in a new process
        v = restore_cli(st, mem, "cont-cli")
        vmms.append(v)
        expect_continues(v, n, "--restore")
        assert v.proc.poll() is None, "restored tern-vmm exited: %r" % v
        v.stop()

        # (b) a fresh tern-vmm --api-sock, PUT /snapshot/load with resume_vm
        v, c2 = fresh_api(work, "cont-api")
        vmms.append(v)
        api.expect_204(c2.put("/snapshot/load", load_body(st, mem, True)), "PUT /snapshot/load (resume_vm)", v)
        assert api.vm_state(c2) == "Running"
        expect_continues(v, n, "PUT /snapshot/load with resume_vm")
        # what GET /vm/config reports is the restored machine
        status, conf = c2.get("/vm/config")
        assert status == 200 and conf["machine-config"]["mem_size_mib"] == 32, "GET /vm/config: %r" % (conf,)
        v.stop()

        # (c) resume_vm false: Paused, silent, until PATCH /vm Resumed
        v, c3 = fresh_api(work, "cont-paused")
        vmms.append(v)
        api.expect_204(c3.put("/snapshot/load", load_body(st, mem, False)), "PUT /snapshot/load (resume_vm false)", v)
        assert api.vm_state(c3) == "Paused", "loaded with resume_vm false: %r" % v
        time.sleep(1.5)
        assert not out_lines(v), "a VM loaded paused printed: %r" % v
        assert api.vm_state(c3) == "Paused"
        api.expect_204(c3.patch("/vm", {"state": "Resumed"}), "PATCH /vm Resumed", v)
        assert api.vm_state(c3) == "Running"
        expect_continues(v, n, "resume_vm false, then Resumed")
        v.stop()

        # (d) --restore-paused with --api-sock: the same from the command line
        d = tempfile.mkdtemp(prefix="api-", dir=work)
        sock = os.path.join(d, "api.sock")
        v = restore_cli(st, mem, "cont-cli-paused", ["--restore-paused", "--api-sock", sock])
        vmms.append(v)
        assert api.wait_for_socket(sock, 10, v.proc), "no API socket: %r" % v
        c4 = api.ApiClient(sock)
        assert api.vm_state(c4) == "Paused", "--restore-paused: %r" % v
        time.sleep(1)
        assert not out_lines(v), "--restore-paused VM printed: %r" % v
        api.expect_204(c4.patch("/vm", {"state": "Resumed"}), "PATCH /vm Resumed", v)
        expect_continues(v, n, "--restore-paused, then Resumed")
    finally:
        stop_all(vmms)
        shutil.rmtree(work, ignore_errors=True)


def test_restore_on_an_overlay_of_the_disk():
    """--restore-disk: a snapshot restored with its drive on a qcow2 overlay of the image it
    was taken on (how ternd reverts to a snapshot without writing the image it froze):
    the guest counts on, GET /vm/config names the overlay, the image is neither written nor
    locked for writing, and the overlay checks clean. Refused with exit status 2: a drive
    the snapshot does not have, a missing id= or path=, an overlay of another size, and
    --restore-disk without --restore."""
    work = workdir("rdisk")
    vmms = []
    try:
        disk = os.path.join(work, "disk.img")
        with open(disk, "wb") as f:
            f.write(b"tern restore-disk\n")
            f.truncate(1 << 20)
        orig, c = start_counter(work, "rdisk-orig", extra=(
            ("/drives/data", {"drive_id": "data", "path_on_host": disk, "is_root_device": False,
                              "is_read_only": False}),))
        vmms.append(orig)
        st, mem = os.path.join(work, "vm.state"), os.path.join(work, "vm.mem")
        n = pause(c, orig)
        snapshot(c, st, mem, "snapshot with a disk", orig)
        kill9(orig)
        before = open(disk, "rb").read()

        ovl, small = os.path.join(work, "top.qcow2"), os.path.join(work, "small.qcow2")
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", disk, "-F", "raw", ovl],
                       check=True)
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", disk, "-F", "raw", small,
                        str(512 << 10)], check=True)
        base = ["--restore", st, "--restore-mem", mem]
        for extra, what, words in (
                (["--restore-disk", "id=nope,path=%s,format=qcow2" % ovl], "a drive it lacks",
                 ("no drive 'nope'",)),
                (["--restore-disk", "path=%s" % ovl], "no id=", ("id=",)),
                (["--restore-disk", "id=data"], "no path=", ("path=",)),
                (["--restore-disk", "id=data,path=%s,format=qcow3" % ovl], "a bad format",
                 ("format=qcow3",)),
                (["--restore-disk", "id=data,path=%s,format=qcow2" % small], "another size",
                 ("capacity", "524288"))):
            r = ternlib.run_vmm(base + extra, timeout=30)
            assert r.status == 2 and all(w in r.err for w in words), "%s: %r" % (what, r)
        r = ternlib.run_vmm(["--restore-disk", "id=data,path=%s" % ovl, "--api-sock",
                             os.path.join(work, "x.sock")], timeout=30)
        expect_usage_error(r, "--restore-disk alone", "--restore")

        d = tempfile.mkdtemp(prefix="api-", dir=work)
        sock = os.path.join(d, "api.sock")
        v = restore_cli(st, mem, "rdisk", ["--restore-disk", "id=data,path=%s,format=qcow2" % ovl,
                                           "--api-sock", sock])
        vmms.append(v)
        expect_continues(v, n, "--restore-disk")
        assert api.wait_for_socket(sock, 10, v.proc), "no API socket: %r" % v
        status, conf = api.ApiClient(sock).get("/vm/config")
        assert status == 200 and conf["drives"][0]["path_on_host"] == ovl, conf
        # The image is only read: another process may open it read-only (a shared lock).
        assert subprocess.run(["qemu-img", "info", "-U", disk], capture_output=True).returncode == 0
        v.stop()
        assert open(disk, "rb").read() == before, "the restore wrote the snapshot's image"
        chk = subprocess.run(["qemu-img", "check", ovl], capture_output=True, text=True)
        assert chk.returncode == 0, chk.stdout + chk.stderr
    finally:
        stop_all(vmms)
        shutil.rmtree(work, ignore_errors=True)


# ---- 2. diff snapshots ----

def test_diff_on_full():
    work = workdir("diff")
    vmms = []
    try:
        # memfill: 16 MiB of filled RAM that the full snapshot holds and the diff does not
        ram_mib = 64
        orig, c = start_memfill(work, "diff-orig", 16, ram_mib, track_dirty=True)
        vmms.append(orig)
        full_st, full_mem = os.path.join(work, "full.state"), os.path.join(work, "full.mem")
        diff_st, diff_mem = os.path.join(work, "diff.state"), os.path.join(work, "diff.mem")

        expect_400(c.put("/snapshot/create", {"snapshot_path": full_st, "mem_file_path": full_mem}),
                   "snapshot of a running VM", "paused")
        assert not os.path.exists(full_st) and not os.path.exists(full_mem), "files written by a refused snapshot"
        assert api.vm_state(c) == "Running"

        n_full = pause(c, orig)
        expect_400(c.put("/snapshot/create", {"snapshot_path": diff_st, "mem_file_path": diff_mem,
                                              "snapshot_type": "Diff"}),
                   "Diff as the first snapshot", "earlier snapshot")
        assert not glob.glob(os.path.join(work, "diff.*")), "files written by a refused Diff"
        snapshot(c, full_st, full_mem, "Full snapshot", orig)
        resume(c, orig, more=3)
        n_diff = pause(c, orig)
        assert n_diff > n_full, "no progress between the snapshots: %r" % orig
        snapshot(c, diff_st, diff_mem, "Diff snapshot", orig, diff=True)
        kill9(orig)

        ram = ram_mib << 20
        assert mem_trailer(full_mem, ram) == (0, ram), "full memory file trailer: %r" % (mem_trailer(full_mem, ram),)
        assert mem_trailer(diff_mem, ram) == (1, ram), "diff memory file trailer: %r" % (mem_trailer(diff_mem, ram),)
        full_alloc, diff_alloc = allocated(full_mem), allocated(diff_mem)
        assert full_alloc >= 16 << 20, "the full memory file holds only %d bytes" % full_alloc
        assert diff_alloc * 8 < full_alloc, \
            "the diff memory file is not much smaller: %d bytes allocated, the full %d" % (diff_alloc, full_alloc)
        r = ternlib.run_vmm(["--describe-snapshot", diff_st], timeout=30)
        assert r.status == 0 and "memory: diff, %d MiB" % ram_mib in r.out, "--describe-snapshot diff: %r" % r
        r = ternlib.run_vmm(["--describe-snapshot", full_st], timeout=30)
        assert r.status == 0 and "memory: full, %d MiB" % ram_mib in r.out, "--describe-snapshot full: %r" % r

        v = restore_cli(diff_st, diff_mem, "diff-restore-diff")
        vmms.append(v)
        expect_continues(v, n_diff, "restoring the Diff")
        v.stop()
        v = restore_cli(full_st, full_mem, "diff-restore-full")
        vmms.append(v)
        expect_continues(v, n_full, "restoring the Full (under the Diff)")
        v.stop()

        # A VM loaded with track_dirty_pages takes a Diff on the snapshot it came from.
        v, c3 = fresh_api(work, "diff-restored")
        vmms.append(v)
        api.expect_204(c3.put("/snapshot/load", load_body(full_st, full_mem, True, track_dirty_pages=True)),
           "PUT /snapshot/load with track_dirty_pages", v)
        expect_continues(v, n_full, "the Full loaded with track_dirty_pages")
        n_rdiff = pause(c3, v)
        rdiff_st, rdiff_mem = os.path.join(work, "rdiff.state"), os.path.join(work, "rdiff.mem")
        snapshot(c3, rdiff_st, rdiff_mem, "Diff of a restored VM", v, diff=True)
        kill9(v)
        assert allocated(rdiff_mem) * 8 < full_alloc, "the restored VM's Diff is not small: %d" % allocated(rdiff_mem)
        v = restore_cli(rdiff_st, rdiff_mem, "diff-restore-rdiff")
        vmms.append(v)
        expect_continues(v, n_rdiff, "restoring the Diff of a restored VM")
        v.stop()

        # Without dirty-page tracking there is nothing to build a Diff from.
        nt, c2 = start_counter(work, "diff-notrack")
        vmms.append(nt)
        pause(c2, nt)
        nt_st, nt_mem = os.path.join(work, "nt.state"), os.path.join(work, "nt.mem")
        snapshot(c2, nt_st, nt_mem, "Full snapshot without tracking", nt)
        expect_400(c2.put("/snapshot/create", {"snapshot_path": nt_st + "2", "mem_file_path": nt_mem + "2",
                                               "snapshot_type": "Diff"}),
                   "Diff without track_dirty_pages", "track_dirty_pages")
        assert not os.path.exists(nt_st + "2") and not os.path.exists(nt_mem + "2")
        assert api.vm_state(c2) == "Paused"
        resume(c2, nt)
    finally:
        stop_all(vmms)
        shutil.rmtree(work, ignore_errors=True)


# ---- 3. bad files ----

def with_header_u32(data, off, value):
    """data with the header's u32 at off replaced and the header CRC recomputed."""
    b = bytearray(data)
    struct.pack_into("<I", b, off, value)
    struct.pack_into("<I", b, HEADER_CRC, zlib.crc32(bytes(b[:HEADER_CRC])) & 0xffffffff)
    return bytes(b)


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return path


def test_snapshots_cut_the_output_between_two_bytes():
    """The counter printing without pause (every=1): each byte it writes to the serial
    port is an exit, so a pause stops the vCPU right after one, and KVM finishes that OUT
    only at the next KVM_RUN. Six rounds of pause, snapshot, kill -9 and restore (each
    restored VM the next round's original), the console written raw to a file per
    process: joined, the files must read "count 1", "count 2" ... with no byte doubled
    (an OUT run again after the restore) and none lost."""
    counter = need_guest("counter")
    work = workdir("seam")
    procs = []
    try:
        args = ["--kernel", counter, "--memory", "32", "--cmdline", "console=ttyS0 every=1"]
        outs = []
        for rnd in range(6):
            sock, out = os.path.join(work, "api%d.sock" % rnd), os.path.join(work, "out%d" % rnd)
            st, mem = os.path.join(work, "vm%d.state" % rnd), os.path.join(work, "vm%d.mem" % rnd)
            outs.append(out)
            with open(out, "wb") as f, open(os.path.join(ternlib.OUT, "snap-seam-%d.log" % rnd), "w") as e:
                p = subprocess.Popen([ternlib.vmm_path()] + args + ["--api-sock", sock], stdout=f,
                                     stderr=e, stdin=subprocess.DEVNULL)
            procs.append(p)
            assert api.wait_for_socket(sock, 10, p), "round %d: no API socket (exit %r)" % (rnd, p.poll())
            end = time.time() + 30
            while os.path.getsize(out) < 2000 and time.time() < end and p.poll() is None:
                time.sleep(0.05)
            assert os.path.getsize(out) >= 2000, "round %d: the guest printed %d bytes" % (
                rnd, os.path.getsize(out))
            c = api.ApiClient(sock)
            api.expect_204(c.patch("/vm", {"state": "Paused"}), "round %d: pause" % rnd)
            snapshot(c, st, mem, "round %d: snapshot" % rnd)
            p.kill()
            p.wait()
            args = ["--restore", st, "--restore-mem", mem]
        text = b"".join(open(o, "rb").read() for o in outs).decode(errors="replace")
        lines = text.split("\n")
        assert lines[0] == "counter: every 1", "first line %r" % lines[0]
        seams = [sum(os.path.getsize(o) for o in outs[:i + 1]) for i in range(len(outs) - 1)]
        for i, line in enumerate(lines[1:-1], 1):
            if line != "count %d" % i:
                at = len("\n".join(lines[:i]))
                raise AssertionError("line %d is %r, want 'count %d' (byte %d; the rounds end at "
                                     "bytes %s)" % (i, line, i, at, seams))
        assert ("count %d" % (len(lines) - 1)).startswith(lines[-1]), "last line %r" % lines[-1]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(work, ignore_errors=True)


def test_bad_snapshot_files_are_refused():
    work = workdir("bad")
    vmms = []
    try:
        orig, c = start_counter(work, "bad-orig")
        vmms.append(orig)
        s1, m1 = os.path.join(work, "one.state"), os.path.join(work, "one.mem")
        s2, m2 = os.path.join(work, "two.state"), os.path.join(work, "two.mem")
        n = pause(c, orig)
        snapshot(c, s1, m1, "first snapshot", orig)
        snapshot(c, s2, m2, "second snapshot", orig)
        kill9(orig)

        with open(s1, "rb") as f:
            good = f.read()
        assert good[:8] == b"TERNSTAT" and len(good) > 1000, "unexpected state file: %r" % good[:32]
        assert struct.unpack_from("<I", good, HEADER_CRC)[0] == zlib.crc32(good[:HEADER_CRC]), \
            "the header CRC is not where src/vmstate/vmstate.h says"

        # --describe-snapshot of the good file
        r = ternlib.run_vmm(["--describe-snapshot", s1], timeout=30)
        assert r.status == 0, "--describe-snapshot: %r" % r
        for word in ("machine", "memory", "vcpu", "serial", "irqchip", "1 vCPUs", "32 MiB", "memory: full"):
            assert word in r.out, "--describe-snapshot does not mention %r: %r" % (word, r)

        cases = []  # (what, state, mem, words in the error)
        for cut in (0, 10, 27, 28, 60, len(good) // 2, len(good) - 4, len(good) - 1):
            p = write(os.path.join(work, "cut%d.state" % cut), good[:cut])
            words = ["truncated"] if cut >= 28 else ["not a tern state file"]
            cases.append(("state file cut to %d of %d bytes" % (cut, len(good)), p, m1, [p] + words))
        flipped = bytearray(good)
        flipped[len(good) // 2] ^= 0x08
        p = write(os.path.join(work, "flipped.state"), bytes(flipped))
        cases.append(("one bit flipped at %d" % (len(good) // 2), p, m1, [p, "CRC"]))
        p = write(os.path.join(work, "v2.state"), with_header_u32(good, 8, 2))
        cases.append(("format version 2", p, m1, [p, "version 2"]))
        p = write(os.path.join(work, "arch.state"), with_header_u32(good, 12, 7))
        cases.append(("architecture 7", p, m1, [p, "architecture 7"]))
        cases.append(("memory file of another snapshot", s1, m2, [m2, "another snapshot"]))
        cases.append(("memory file of another snapshot (other way)", s2, m1, [m1, "another snapshot"]))
        missing = os.path.join(work, "missing.mem")
        cases.append(("missing memory file", s1, missing, [missing, "No such file"]))
        cases.append(("the state file as memory file", s1, s1, [s1, "memory file"]))
        cut_mem = os.path.join(work, "cut.mem")
        with open(cut_mem, "wb") as f:
            f.truncate(16 << 20)  # half the RAM, no trailer
        cases.append(("memory file cut short", s1, cut_mem, [cut_mem, "memory file"]))
        missing_st = os.path.join(work, "missing.state")
        cases.append(("missing state file", missing_st, m1, [missing_st]))

        for what, st, mem, words in cases:
            r = ternlib.run_vmm(["--restore", st, "--restore-mem", mem], timeout=30)
            expect_usage_error(r, "--restore: " + what, *words)

        v, c2 = fresh_api(work, "bad-api")
        vmms.append(v)
        for what, st, mem, words in cases:
            load_refused(c2, v, load_body(st, mem, True), "PUT /snapshot/load: " + what, *words)
        # ... and it still loads a good snapshot after all those refusals
        api.expect_204(c2.put("/snapshot/load", load_body(s1, m1, True)), "PUT /snapshot/load of the good files", v)
        expect_continues(v, n, "good snapshot after the refusals")

        # --describe-snapshot of damaged files: status 2
        for p, words in ((os.path.join(work, "flipped.state"), ["CRC"]),
                         (os.path.join(work, "cut%d.state" % (len(good) // 2)), ["truncated"]),
                         (os.path.join(work, "v2.state"), ["version 2"])):
            r = ternlib.run_vmm(["--describe-snapshot", p], timeout=30)
            expect_usage_error(r, "--describe-snapshot " + p, *words)
    finally:
        stop_all(vmms)
        shutil.rmtree(work, ignore_errors=True)


def test_diff_with_a_broken_base_is_refused():
    """A Diff's memory file names its base by path: a base that is gone, or that another
    snapshot replaced, is a bad file like the others (exit 2 / 400, nothing started)."""
    work = workdir("base")
    vmms = []
    try:
        orig, c = start_counter(work, "base-orig", track_dirty=True)
        vmms.append(orig)
        other_st, other_mem = os.path.join(work, "other.state"), os.path.join(work, "other.mem")
        base_st, base_mem = os.path.join(work, "base.state"), os.path.join(work, "base.mem")
        diff_st, diff_mem = os.path.join(work, "diff.state"), os.path.join(work, "diff.mem")
        pause(c, orig)
        snapshot(c, other_st, other_mem, "a Full that is not the base", orig)
        snapshot(c, base_st, base_mem, "the base Full", orig)
        resume(c, orig)
        n = pause(c, orig)
        snapshot(c, diff_st, diff_mem, "Diff", orig, diff=True)
        kill9(orig)

        os.rename(base_mem, base_mem + ".saved")
        os.rename(other_mem, base_mem)  # the base's place taken by another snapshot's memory
        r = ternlib.run_vmm(["--restore", diff_st, "--restore-mem", diff_mem], timeout=30)
        assert r.status == 2 and base_mem in r.err and "another snapshot" in r.err, \
            "--restore of a Diff whose base was replaced: %r" % r
        v, c2 = fresh_api(work, "base-replaced")
        vmms.append(v)
        load_refused(c2, v, load_body(diff_st, diff_mem), "load a Diff whose base was replaced",
                     base_mem, "another snapshot")
        v.stop()

        os.unlink(base_mem)  # the base is gone
        r = ternlib.run_vmm(["--restore", diff_st, "--restore-mem", diff_mem], timeout=30)
        assert r.status == 2 and base_mem in r.err and "No such file" in r.err, \
            "--restore of a Diff whose base is missing: %r" % r
        v, c3 = fresh_api(work, "base-missing")
        vmms.append(v)
        load_refused(c3, v, load_body(diff_st, diff_mem), "load a Diff whose base is missing", base_mem)
        v.stop()

        os.rename(base_mem + ".saved", base_mem)  # back in place: it loads
        v = restore_cli(diff_st, diff_mem, "base-ok")
        vmms.append(v)
        expect_continues(v, n, "the Diff with its base back")
    finally:
        stop_all(vmms)
        shutil.rmtree(work, ignore_errors=True)


def mem_id(path, ram):
    """The id a memory file's trailer gives it (mem_file.h), to see whether it was replaced."""
    with open(path, "rb") as f:
        f.seek(ram)
        return f.read(36)


def test_refused_create_replaces_nothing():
    """snapshot.h: a failed PUT /snapshot/create replaces nothing; the snapshot already at
    those paths still loads."""
    work = workdir("norepl")
    vmms = []
    try:
        orig, c = start_counter(work, "norepl-orig", track_dirty=True)
        vmms.append(orig)
        st, mem = os.path.join(work, "vm.state"), os.path.join(work, "vm.mem")
        n = pause(c, orig)
        snapshot(c, st, mem, "the first snapshot", orig)
        with open(st, "rb") as f:
            good_state = f.read()
        good_id = mem_id(mem, 32 << 20)
        resume(c, orig)
        pause(c, orig)
        adir = os.path.join(work, "a-directory")
        os.mkdir(adir)
        nodir = os.path.join(work, "no-such-dir")
        cases = [
            ("snapshot_path in a missing directory", os.path.join(nodir, "s"), mem, [nodir]),
            ("mem_file_path in a missing directory", st, os.path.join(nodir, "m"), [nodir]),
            ("mem_file_path is a directory", st, adir, []),
            ("snapshot_path is a directory", adir, mem, []),
        ]
        for what, s_path, m_path, words in cases:
            expect_400(c.put("/snapshot/create", {"snapshot_path": s_path, "mem_file_path": m_path}), what, *words)
            left = [f for f in os.listdir(work) + os.listdir(adir) if ".tmp-" in f]
            assert not left, "%s: temporary files left: %r" % (what, left)
            with open(st, "rb") as f:
                assert f.read() == good_state, "%s: the earlier state file was replaced" % what
            assert mem_id(mem, 32 << 20) == good_id, \
                "%s: answered 400, yet the earlier snapshot's memory file %s was replaced (its state " \
                "file %s no longer loads)" % (what, mem, st)
        assert api.vm_state(c) == "Paused"
        resume(c, orig)
        kill9(orig)
        v = restore_cli(st, mem, "norepl-restore")
        vmms.append(v)
        expect_continues(v, n, "the snapshot after refused creates over it")
    finally:
        stop_all(vmms)
        shutil.rmtree(work, ignore_errors=True)


def test_diff_onto_its_own_base():
    """A Diff written over the memory file it builds on: either refused (and the Full is still
    there), or a snapshot that loads. Never a 204 for files that cannot be restored."""
    work = workdir("self")
    vmms = []
    try:
        orig, c = start_counter(work, "self-orig", track_dirty=True)
        vmms.append(orig)
        st, mem = os.path.join(work, "vm.state"), os.path.join(work, "vm.mem")
        n_full = pause(c, orig)
        snapshot(c, st, mem, "Full", orig)
        resume(c, orig)
        n_diff = pause(c, orig)
        status, body = c.put("/snapshot/create", {"snapshot_path": st, "mem_file_path": mem,
                                                  "snapshot_type": "Diff"})
        assert status in (204, 400), "Diff onto its base: %d %r" % (status, body)
        kill9(orig)
        r = ternlib.run_vmm(["--restore", st, "--restore-mem", mem], timeout=10)
        if status == 204:
            assert r.timed_out and COUNT_RE.match(r.out.splitlines()[-1] if r.out.splitlines() else ""), \
                "PUT /snapshot/create of a Diff over its own base (%s) answered 204, but the snapshot " \
                "does not load: %r" % (mem, r)
            what, n = "the Diff written over its base", n_diff
        else:
            assert api.fault(body), body
            what, n = "the Full after a refused Diff over it", n_full
        v = restore_cli(st, mem, "self-restore")
        vmms.append(v)
        expect_continues(v, n, what)
    finally:
        stop_all(vmms)
        shutil.rmtree(work, ignore_errors=True)


# ---- 4. faults while a snapshot is written ----

FILL_MIB = 256  # ~1.5 s to write on hardware, more in the lab: room to kill tern-vmm mid-way


def test_kill_during_snapshot_keeps_the_previous_one():
    work = workdir("kill")
    vmms = []
    try:
        st, mem = os.path.join(work, "vm.state"), os.path.join(work, "vm.mem")
        for attempt in range(3):
            orig, c = start_memfill(work, "kill-orig-%d" % attempt, FILL_MIB, FILL_MIB + 64)
            vmms.append(orig)
            n1 = pause(c, orig)
            t0 = time.time()
            snapshot(c, st, mem, "the first snapshot", orig)
            took = time.time() - t0
            with open(st, "rb") as f:
                first_state = f.read()
            resume(c, orig, more=2)  # a second snapshot would continue from elsewhere
            n2 = pause(c, orig)
            assert n2 > n1

            tmps = [mem + ".tmp-%d" % orig.pid, st + ".tmp-%d" % orig.pid]
            result = {}

            def second():
                try:
                    result["resp"] = c.put("/snapshot/create", {"snapshot_path": st, "mem_file_path": mem})
                except Exception as e:  # tern-vmm is killed under it
                    result["exc"] = e

            t = threading.Thread(target=second, daemon=True)
            t.start()
            end = time.time() + 10
            while time.time() < end and not any(os.path.exists(p) for p in tmps):
                time.sleep(0.005)
            seen = [p for p in tmps if os.path.exists(p)]
            time.sleep(min(0.3, took / 4))  # into the memory file's data
            still = [p for p in tmps if os.path.exists(p)]
            orig.proc.send_signal(signal.SIGKILL)
            orig.wait(10)
            t.join(10)
            left = [p for p in tmps if os.path.exists(p)]
            if seen and still and tmps[0] in left:
                break  # killed while the memory file was being written
            # the kill missed the write (it was faster than expected): again, from scratch
            orig.save_log()
            shutil.rmtree(work, ignore_errors=True)
            os.makedirs(work)
        else:
            raise AssertionError("never killed tern-vmm while it wrote a snapshot (first one took %.1f s)" % took)

        assert "resp" not in result or result["resp"][0] != 204, \
            "the second snapshot completed before the kill: %r" % (result,)
        with open(st, "rb") as f:
            assert f.read() == first_state, "the state file changed under a killed snapshot"
        v = restore_cli(st, mem, "kill-restore")
        vmms.append(v)
        expect_continues(v, n1, "restoring after a kill during the next snapshot")
    finally:
        stop_all(vmms)
        shutil.rmtree(work, ignore_errors=True)


def test_full_disk_during_snapshot():
    if os.geteuid() != 0:
        raise ternlib.Missing("mounting a small tmpfs needs root")
    work = workdir("full")
    small = os.path.join(work, "small")
    os.makedirs(small)
    mounted = False
    vmms = []
    try:
        p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tern-snaptest", small],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if p.returncode != 0:
            raise ternlib.Missing("cannot mount a tmpfs: %s" % p.stdout.decode(errors="replace").strip())
        mounted = True
        st, mem = os.path.join(small, "vm.state"), os.path.join(small, "vm.mem")

        # a snapshot that fits: the counter with 16 MiB touches little of it
        tiny, c = start_counter(work, "full-tiny", mem_mib=16)
        vmms.append(tiny)
        n = pause(c, tiny)
        snapshot(c, st, mem, "a small snapshot on the small tmpfs", tiny)
        assert allocated(mem) < 4 << 20, "the small snapshot is not small: %d bytes" % allocated(mem)
        kill9(tiny)
        with open(st, "rb") as f:
            good_state = f.read()

        # one that does not: 32 MiB filled, over the same files
        big, c2 = start_memfill(work, "full-big", 32, 64)
        vmms.append(big)
        pause(c2, big)
        expect_400(c2.put("/snapshot/create", {"snapshot_path": st, "mem_file_path": mem}),
                   "snapshot onto a full disk", "No space left on device")
        left = [f for f in os.listdir(small) if ".tmp-" in f]
        assert not left, "temporary files left on the full disk: %r" % left
        assert sorted(os.listdir(small)) == ["vm.mem", "vm.state"], os.listdir(small)
        with open(st, "rb") as f:
            assert f.read() == good_state, "the failed snapshot changed the previous state file"
        assert api.vm_state(c2) == "Paused"
        resume(c2, big, more=3)
        # it can still be snapshotted where there is room
        pause(c2, big)
        snapshot(c2, os.path.join(work, "big.state"), os.path.join(work, "big.mem"), "snapshot with room", big)
        resume(c2, big)
        big.stop()

        v = restore_cli(st, mem, "full-restore")
        vmms.append(v)
        expect_continues(v, n, "the earlier snapshot on the disk that filled up")
        v.stop()
    finally:
        stop_all(vmms)
        if mounted and subprocess.run(["umount", small]).returncode != 0:
            subprocess.run(["umount", "-l", small])
        shutil.rmtree(work, ignore_errors=True)


# ---- 5. clones ----

# Clones on any file system get qcow2 overlays, as on one without reflinks (this one's ext4).
NO_REFLINK = {"TERN_CLONE_NO_REFLINK": "1"}


def restore_clone(st, mem, name, sock):
    return api.Vmm(["--restore", st, "--restore-mem", mem, "--clone", "--api-sock", sock],
                   env=NO_REFLINK, log_name="snap-%s.log" % name)


def wait_clone(v, sock, n, what):
    assert api.wait_for_socket(sock, 10, v.proc), "%s's API socket: %r" % (what, v)
    expect_continues(v, n, what)
    cc = api.ApiClient(sock)
    assert api.vm_state(cc) == "Running"
    status, conf = cc.get("/vm/config")
    assert status == 200, "GET /vm/config of %s: %d %r" % (what, status, conf)
    return cc, conf


def test_clones_get_their_own_identity():
    """Clones of one snapshot: distinct MAC, CID, socket and disk, each disk a qcow2 overlay
    in front of the snapshot's image (refused while the original still writes it); a
    snapshot of a clone restores with its overlay, and a clone of it copies the overlay.
    qemu-img reads every overlay and finds it clean."""
    work = workdir("clone")
    vmms = []
    try:
        disk = os.path.join(work, "disk.img")
        with open(disk, "wb") as f:
            f.write(b"tern clone disk\n")
            f.truncate(1 << 20)
        disk_before = open(disk, "rb").read()
        uds = os.path.join(work, "v.sock")
        mac = "06:00:ac:10:00:02"
        orig, c = start_counter(work, "clone-orig", extra=(
            ("/drives/data", {"drive_id": "data", "path_on_host": disk, "is_root_device": False,
                              "is_read_only": False}),
            ("/network-interfaces/eth0", {"iface_id": "eth0", "tern_backend": "user", "guest_mac": mac}),
            ("/vsock", {"guest_cid": 3, "uds_path": uds})))
        vmms.append(orig)
        status, oconf = c.get("/vm/config")
        assert status == 200, oconf
        st, mem = os.path.join(work, "vm.state"), os.path.join(work, "vm.mem")
        n = pause(c, orig)
        snapshot(c, st, mem, "snapshot with disk, net and vsock", orig)
        resume(c, orig)

        # the original still runs and holds its disk: a plain restore is refused
        r = ternlib.run_vmm(["--restore", st, "--restore-mem", mem], timeout=30)
        expect_usage_error(r, "--restore while the original runs", disk, "in use")
        v, c0 = fresh_api(work, "clone-refused-api", env=NO_REFLINK)
        vmms.append(v)
        expect_400(c0.put("/snapshot/load", load_body(st, mem, True)), "load while the original runs", disk, "in use")
        assert api.vm_state(c0) == "Not started"
        # and so is a clone: its overlay needs the image unchanged
        expect_400(c0.put("/snapshot/load", load_body(st, mem, True, tern_clone=True)),
                   "clone while the original runs", disk, "in use", "stop that VM first")
        assert api.vm_state(c0) == "Not started"
        v.stop()
        r = ternlib.run_vmm(["--restore", st, "--restore-mem", mem, "--clone"], timeout=30,
                            env=dict(os.environ, **NO_REFLINK))
        expect_usage_error(r, "--clone while the original runs", disk, "stop that VM first")
        assert not glob.glob(disk + ".clone-*"), "a refused clone left a disk behind"
        assert wait_counts(orig, len(counts(orig)) + 1), "the original stopped counting: %r" % orig
        orig.stop()

        clones = []
        for i in range(2):
            sock = os.path.join(work, "clone%d.sock" % i)
            v = restore_clone(st, mem, "clone-%d" % i, sock)
            vmms.append(v)
            clones.append((v, sock))
        confs = [(v, wait_clone(v, sock, n, "clone %d" % v.pid)[1]) for v, sock in clones]

        def ident(conf):
            return (conf["network-interfaces"][0]["guest_mac"].lower(), conf["vsock"]["guest_cid"],
                    conf["vsock"]["uds_path"], conf["drives"][0]["path_on_host"])

        o = ident(oconf)
        assert o == (mac, 3, uds, disk), "the original's configuration: %r" % (oconf,)
        ids = [ident(conf) for _, conf in confs]
        for k, field in enumerate(("guest_mac", "guest_cid", "uds_path", "path_on_host")):
            vals = [o[k]] + [i[k] for i in ids]
            assert len(set(vals)) == 3, "%s is not different in each VM (original, clones): %r" % (field, vals)
        for (v, conf), i in zip(confs, ids):
            assert i[3] == "%s.clone-%d" % (disk, v.pid), "clone %d's disk: %r" % (v.pid, i[3])
            assert conf["drives"][0].get("tern_format") == "Qcow2", conf["drives"]
            base = qcow2img.backing(i[3])
            assert base == os.path.realpath(disk), "clone %d's overlay base: %r" % (v.pid, base)
            assert qcow2img.allocated(i[3]) <= 1 << 20, \
                "clone %d's overlay holds data nobody wrote: %d bytes" % (v.pid, qcow2img.allocated(i[3]))
            assert os.path.exists(i[2]), "clone %d's vsock socket %s does not exist" % (v.pid, i[2])
            mac_bytes = int(i[0].split(":")[0], 16)
            assert mac_bytes & 2 and not mac_bytes & 1, "clone MAC %s is not locally administered unicast" % i[0]
        # The clones read-lock the image: the original cannot come back and write it.
        r = ternlib.run_vmm(["--restore", st, "--restore-mem", mem], timeout=30)
        expect_usage_error(r, "--restore of the original while clones run", disk, "in use")
        assert open(disk, "rb").read() == disk_before, "the clones' base image changed"

        # A snapshot of a clone restores with its overlay (format kept in the state file) ...
        v0, sock0 = clones[0]
        cc0 = api.ApiClient(sock0)
        n0 = pause(cc0, v0)
        st2, mem2 = os.path.join(work, "clone.state"), os.path.join(work, "clone.mem")
        snapshot(cc0, st2, mem2, "snapshot of a clone", v0)
        v0.stop()
        sock2 = os.path.join(work, "again.sock")
        v2 = api.Vmm(["--restore", st2, "--restore-mem", mem2, "--api-sock", sock2],
                     log_name="snap-clone-again.log")
        vmms.append(v2)
        _, conf2 = wait_clone(v2, sock2, n0, "the clone's snapshot restored")
        assert conf2["drives"][0]["path_on_host"] == ids[0][3], conf2["drives"]
        assert conf2["drives"][0].get("tern_format") == "Qcow2", conf2["drives"]
        v2.stop()
        # ... and a clone of it copies the overlay, which keeps the same base.
        sock3 = os.path.join(work, "clone-of-clone.sock")
        v3 = restore_clone(st2, mem2, "clone-of-clone", sock3)
        vmms.append(v3)
        _, conf3 = wait_clone(v3, sock3, n0, "a clone of a clone")
        p3 = conf3["drives"][0]["path_on_host"]
        assert p3 == "%s.clone-%d" % (ids[0][3], v3.pid), p3
        assert qcow2img.backing(p3) == os.path.realpath(disk)
        for v, _ in clones[1:] + [(v3, None)]:
            assert v.proc.poll() is None, "a clone exited: %r" % v
        # With every VM stopped (qemu-img respects their locks: it opens nothing in use),
        # qemu-img reads each clone's overlay as the image and finds it clean.
        stop_all(vmms)
        for p in [i[3] for i in ids] + [p3]:
            assert qcow2img.read(p, 0, 16) == b"tern clone disk\n", "%s does not read as the image" % p
            assert qcow2img.here(p) == [], "%s holds data nobody wrote: %r" % (p, qcow2img.here(p))
            rc, out = qcow2img.check(p)
            assert rc == 0, "qemu-img check %s: %s" % (p, out)
    finally:
        stop_all(vmms)
        shutil.rmtree(work, ignore_errors=True)


def test_snapshot_to_from_the_command_line():
    """`tern-vmm --api-sock S --snapshot-to STATE,MEM[,diff]` snapshots the running tern-vmm
    behind S (paused for the write, then resumed); the files restore; refusals exit 1 with
    the VMM's message and leave it running; a malformed spec exits 2."""
    ternlib.need_kvm()
    work = workdir("cli")
    v = r = None
    try:
        st, mem = os.path.join(work, "cli.state"), os.path.join(work, "cli.mem")
        v, c = api.start_api_vmm([], log_name="snap-cli.log", workdir=work)
        boot(c, v, guest("counter"), 64)
        assert wait_counts(v, 2), "no counts: %r" % v
        sock = os.path.join(work, "api.sock")
        p = subprocess.run([ternlib.vmm_path(), "--api-sock", sock, "--snapshot-to", "%s,%s" % (st, mem)],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0 and "snapshot written" in p.stdout, "--snapshot-to: %r" % (p,)
        assert api.vm_state(c) == "Running", "the VM was not resumed after --snapshot-to"
        n = len(counts(v))
        assert wait_counts(v, n + 2), "no counts after --snapshot-to: %r" % v
        p = subprocess.run([ternlib.vmm_path(), "--api-sock", sock, "--snapshot-to",
                            "%s.d,%s.d,diff" % (st, mem)], capture_output=True, text=True, timeout=60)
        assert p.returncode == 1 and "track_dirty_pages" in p.stderr, "diff without tracking: %r" % (p,)
        assert api.vm_state(c) == "Running", "a refused --snapshot-to left the VM paused"
        p = subprocess.run([ternlib.vmm_path(), "--api-sock", sock, "--snapshot-to", "only-one-path"],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 2 and "STATE,MEM" in p.stderr, "malformed spec: %r" % (p,)
        kill9(v)
        v = None
        r = api.Vmm(["--restore", st, "--restore-mem", mem], log_name="snap-cli-restore.log")
        assert wait_counts(r, 2), "the snapshot from --snapshot-to does not run: %r" % r
    finally:
        for x in (v, r):
            if x:
                x.stop()
        shutil.rmtree(work, ignore_errors=True)
