"""Live migration with the tiny guests (src/vmm/migrate.h, docs/migration.md): a source
tern-vmm told PUT /migrate sends its running VM to a destination started with --incoming;
the dirtier guest (guest/tiny/dirtier.c) rewrites and checks its RAM the whole time, so a
page lost or sent stale shows as a FAIL line on the destination. Failures (cancel, a
destination killed or refusing, a broken stream) must leave the source's guest running.
"""
import json
import os
import re
import socket
import struct
import sys
import tempfile
import time
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
import api  # noqa: E402
import ternlib  # noqa: E402

PASS_RE = re.compile(r"^pass (\d+) ok$")
MIGRATE_TIMEOUT = 240  # seconds: the lab runs KVM under emulation


def guest(name):
    p = os.path.join(ternlib.BUILD, "guest", name + ".elf")
    return p if os.path.exists(p) else ternlib.guest_path(name)


def passes(vmm):
    with vmm._cond:
        return [int(m.group(1)) for m in (PASS_RE.match(l) for _, l in vmm.out_lines) if m]


def wait_passes(vmm, n, timeout=120):
    end = time.time() + timeout
    while time.time() < end:
        if len(passes(vmm)) >= n:
            return True
        if "FAIL" in vmm.out() or vmm.proc.poll() is not None:
            return False
        time.sleep(0.1)
    return False


def start_source(tag, cmdline="mib=32 static=8 gap=8", memory=128, extra=()):
    ternlib.need_kvm()
    work = tempfile.mkdtemp(prefix="tern-mig-%s-" % tag)
    vmm, c = api.start_api_vmm(["--kernel", guest("dirtier"), "--debug-exit", "--cmdline",
                                cmdline, "--memory", str(memory)] + list(extra),
                               workdir=work, log_name="migrate-%s-src.log" % tag)
    assert wait_passes(vmm, 2), "the source guest never rewrote its RAM twice: %r" % vmm
    return work, vmm, c


def start_destination(tag, work, uri, extra=(), wait_path=None):
    dsock = os.path.join(work, "dst-api.sock")
    vmm = api.Vmm(["--incoming", uri, "--api-sock", dsock] + list(extra),
                  log_name="migrate-%s-dst.log" % tag)
    if wait_path:
        end = time.time() + 30
        while not os.path.exists(wait_path) and time.time() < end and vmm.proc.poll() is None:
            time.sleep(0.05)
        assert os.path.exists(wait_path), "the destination never listened: %r" % vmm
    return vmm, dsock


def migrate(c, body, what, vmm):
    api.expect_204(c.put("/migrate", body), what, vmm)


def status(c):
    st, body = c.get("/migrate")
    assert st == 200, "GET /migrate: %d %r" % (st, body)
    return body


def wait_status(c, want, vmm, timeout=MIGRATE_TIMEOUT):
    end = time.time() + timeout
    last = None
    while time.time() < end:
        try:
            last = status(c)
        except (OSError, AssertionError):
            if vmm.proc.poll() is not None:
                return None
            raise
        if last["status"] in want:
            return last
        time.sleep(0.1)
    raise AssertionError("migration still %r after %d s: %r" % (last, timeout, vmm))


def expect_arrived(src, dst, dsock, what):
    """The source ended as migrated and the destination's guest goes on rewriting."""
    st = src.wait(MIGRATE_TIMEOUT)
    src.save_log()
    assert st == 0, "%s: the source exited %r: %r" % (what, st, src)
    assert "migrated" in src.err(), "%s: the source did not say it migrated: %r" % (what, src)
    last_src = max(passes(src))
    assert wait_passes(dst, 3, 120), "%s: the destination did not go on: %r" % (what, dst)
    got = passes(dst)
    assert "FAIL" not in dst.out(), "%s: a word was wrong on the destination: %r" % (what, dst)
    # The pass under way at the switchover finishes there, then the next ones.
    assert got[0] in (last_src, last_src + 1) and got == list(range(got[0], got[0] + len(got))), \
        "%s: source ended at pass %d, destination printed %r" % (what, last_src, got[:5])
    d = api.ApiClient(dsock)
    rep = status(d)
    print("%s: %s" % (what, json.dumps(rep)))
    assert rep["status"] == "completed" and rep["role"] == "destination", rep
    assert rep["downtime_ms"] > 0 and rep["total_ms"] >= rep["downtime_ms"] / 1000, rep
    assert api.vm_state(d) == "Running"
    return rep


def test_migrate_over_unix_keeps_every_byte():
    work, src, c = start_source("unix")
    path = os.path.join(work, "incoming.sock")
    dst, dsock = start_destination("unix", work, "unix:" + path, wait_path=path)
    try:
        migrate(c, {"destination": "unix:" + path}, "PUT /migrate", src)
        rep = expect_arrived(src, dst, dsock, "unix")
        assert not os.path.exists(path), "the incoming socket was left behind"
        # The guest rewrites 32 MiB all the time: pre-copy needs more than one round.
        assert rep["round"] >= 2, rep
    finally:
        src.stop()
        dst.stop()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def test_migrate_over_tcp_with_two_vcpus():
    work, src, c = start_source("tcp", extra=["--cpus", "2"])
    port = free_port()
    dst, dsock = start_destination("tcp", work, "tcp:127.0.0.1:%d" % port)
    try:
        end = time.time() + 30
        while time.time() < end:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        # That probe was the destination's one connection: it refuses it as a bad stream.
        assert dst.wait(30) not in (None, 0), "the destination took a probe for a source: %r" % dst
        dst.stop()
        dst, dsock = start_destination("tcp", work, "tcp:127.0.0.1:%d" % port)
        time.sleep(1)
        migrate(c, {"destination": "tcp:127.0.0.1:%d" % port, "downtime_limit_ms": 100},
                "PUT /migrate tcp", src)
        expect_arrived(src, dst, dsock, "tcp")
    finally:
        src.stop()
        dst.stop()
