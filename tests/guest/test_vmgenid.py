"""The VM generation ID (src/devices/vmgenid.h): every boot gets a new non-zero ID where
the DSDT's ADDR method says, and a snapshot restored as a clone gets another one and an
interrupt on the Generic Event Device's pin (guest/tiny/vmgenid.c checks the DSDT side)."""
import os
import re
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
import api  # noqa: E402
import ternlib  # noqa: E402
import tiny  # noqa: E402

ID = re.compile(r"^tiny: vmgenid: ([0-9a-f]{32})$")
# What vmgenid_changed() logs: tern-vmm said it wrote a new ID and pulsed the line.
CHANGED_LOG = "vmgenid: new generation ID"


def ids(out):
    return [m.group(1) for m in (ID.match(l) for l in out.splitlines()) if m]


def test_vmgenid_new_nonzero_id_each_boot():
    seen = []
    for _ in range(2):
        r = tiny.expect_ok("vmgenid")
        got = ids(r.out)
        assert len(got) == 1, "expected one ID line\n%r" % r
        assert got[0] != "0" * 32, "all-zero ID\n%r" % r
        seen.append(got[0])
    assert seen[0] != seen[1], "two boots got the same ID %s" % seen[0]


def test_vmgenid_clone_gets_new_id_and_notification():
    """Boot (mode=wait: the guest waits for the GED interrupt), pause, snapshot, stop; then
    restore the snapshot with --clone: the clone's guest must be interrupted and read a new ID.

    """
    ternlib.need_kvm()
    work = tempfile.mkdtemp(prefix="tern-vmgenid-")
    state, mem = os.path.join(work, "snap.state"), os.path.join(work, "snap.mem")
    v1 = v2 = None
    try:
        v1, c = api.start_api_vmm(["--kernel", ternlib.guest_path("vmgenid"), "--debug-exit",
                                   "--cmdline", "mode=wait"], workdir=work,
                                  log_name="vmgenid-boot.log")
        assert v1.wait_for("vmgenid: waiting", timeout=tiny.TIMEOUT), "guest never waited: %r" % v1
        first = ids(v1.out())
        assert len(first) == 1, "expected one ID before the snapshot: %r" % v1
        st, body = c.patch("/vm", {"state": "Paused"})
        assert st == 204, "pause: %s %r" % (st, body)
        st, body = c.put("/snapshot/create", {"snapshot_path": state, "mem_file_path": mem,
                                              "snapshot_type": "Full"})
        assert st == 204, "snapshot/create: %s %r" % (st, body)
        v1.stop()

        v2 = api.Vmm(["--restore", state, "--restore-mem", mem, "--clone"],
                     log_name="vmgenid-clone.log")
        assert v2.wait_for("restored", timeout=tiny.TIMEOUT, stream="err"), \
            "the clone never came up: %r" % v2
        assert v2.wait_for(CHANGED_LOG, timeout=tiny.TIMEOUT, stream="err"), \
            "the clone restore did not announce a new generation ID: %r" % v2
        status = v2.wait(tiny.TIMEOUT)
        out = v2.out()
        assert status == 0 and "tiny: vmgenid: notified" in out and "tiny: vmgenid ok" in out, \
            "the clone's guest was not notified (status %r): %r" % (status, v2)
        after = ids(out)
        assert len(after) == 1 and after[0] != first[0], \
            "the clone still reads ID %s (or none): %r" % (first[0], v2)
    finally:
        for v in (v1, v2):
            if v:
                v.stop()
        shutil.rmtree(work, ignore_errors=True)
