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
import subprocess
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


def wait_listening(port, vmm, timeout=30):
    """Whether a socket listens on TCP port (/proc/net/tcp, state 0A) within timeout."""
    end = time.time() + timeout
    while time.time() < end and vmm.proc.poll() is None:
        with open("/proc/net/tcp") as f:
            for line in f.readlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                if int(local.split(":")[1], 16) == port and state == "0A":
                    return True
        time.sleep(0.05)
    return False


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
            # A VMM that exits closes its API socket a moment before it can be reaped.
            try:
                vmm.proc.wait(5)
                return None
            except subprocess.TimeoutExpired:
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
    # A line the guest was printing at the switchover is split between the two consoles
    # ("pass 36 o" | "k"): joined, it is the source's last pass.
    src_out, dst_out = src.out().splitlines(), dst.out().splitlines()
    m = PASS_RE.match(src_out[-1] + dst_out[0]) if src_out and dst_out else None
    if m and not PASS_RE.match(src_out[-1]):
        last_src = max(last_src, int(m.group(1)))
    got = passes(dst)
    assert "FAIL" not in dst.out(), "%s: a word was wrong on the destination: %r" % (what, dst)
    # The pass under way at the switchover finishes there, then the next ones.
    assert got[0] in (last_src, last_src + 1) and got == list(range(got[0], got[0] + len(got))), \
        "%s: source ended at pass %d, destination printed %r" % (what, last_src, got[:5])
    d = api.ApiClient(dsock)
    rep = status(d)
    # After post-copy the source ends once the last page is sent; the destination says
    # completed once it took them and the source's report, a moment later.
    end = time.time() + 60
    while rep["status"] == "postcopy" and time.time() < end:
        time.sleep(0.1)
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


def test_migrate_takes_one_more_round_when_the_rest_fits_but_is_large():
    """64 MiB written once and 1 MiB rewritten all the time: the first round's rest (the
    rewritten MiB) fits the 300 ms limit at the capped 64 MiB/s, but it is a sliver of what
    that round sent, so the source sends it once more while the guest runs (another round)
    before it pauses, instead of handing it all to the downtime."""
    work, src, c = start_source("polish", cmdline="mib=1 static=64 gap=8")
    path = os.path.join(work, "incoming.sock")
    dst, dsock = start_destination("polish", work, "unix:" + path, wait_path=path)
    try:
        migrate(c, {"destination": "unix:" + path, "bandwidth_mib_s": 64}, "PUT /migrate", src)
        rep = expect_arrived(src, dst, dsock, "polish")
        assert rep["round"] >= 2, rep
        assert "one more round to shrink it" in src.err(), src
    finally:
        src.stop()
        dst.stop()


def test_migrate_over_tcp_with_two_vcpus():
    work, src, c = start_source("tcp", extra=["--cpus", "2"])
    port = ternlib.free_port()
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
        # Listening, seen without connecting (a connection would be its one source): under
        # the sanitizers a destination can take more than a second to get there.
        assert wait_listening(port, dst), "the destination never listened on %d: %r" % (port, dst)
        # TCP over the lab's loopback is slower than the guest dirties: auto-converge.
        migrate(c, {"destination": "tcp:127.0.0.1:%d" % port, "auto_converge": True},
                "PUT /migrate tcp", src)
        expect_arrived(src, dst, dsock, "tcp")
    finally:
        src.stop()
        dst.stop()


# ---- failures: the source's guest runs on ----

def expect_source_runs_on(src, c, what, want=("failed",), words=()):
    """The migration ended in one of `want`, its error names `words`, and the guest goes on."""
    st = wait_status(c, set(want) | {"completed"}, src)
    assert st and st["status"] in want, "%s: %r (the source exited if None): %r" % (what, st, src)
    for w in words:
        assert w.lower() in st.get("error", "").lower(), "%s: error should name %r: %r" % (what, w, st)
    n = len(passes(src))
    assert wait_passes(src, n + 3, 60), "%s: the source guest stopped: %r" % (what, src)
    assert api.vm_state(c) == "Running"
    assert "FAIL" not in src.out(), "%s: %r" % (what, src)
    return st


def test_migrate_cancel_keeps_the_source_running():
    work, src, c = start_source("cancel")
    path = os.path.join(work, "incoming.sock")
    dst, _ = start_destination("cancel", work, "unix:" + path, wait_path=path)
    try:
        migrate(c, {"destination": "unix:" + path, "bandwidth_mib_s": 1}, "PUT /migrate", src)
        st = wait_status(c, {"active"}, src)
        api.expect_400(c.put("/migrate", {"destination": "unix:" + path}), "a second PUT /migrate",
                       "already")
        api.expect_204(c.put("/migrate/cancel", {}), "PUT /migrate/cancel", src)
        expect_source_runs_on(src, c, "cancel", ("cancelled",), ("cancelled",))
        # The destination was told and left: no VM, no socket.
        assert dst.wait(30) == 1, "the destination did not end with status 1: %r" % dst
        assert "the source gave up: cancelled" in dst.err(), dst
        assert not os.path.exists(path)
        api.expect_400(c.put("/migrate/cancel", {}), "cancel with none under way", "no migration")
        # And the source can still migrate afterwards.
        dst.stop()
        dst, dsock = start_destination("cancel2", work, "unix:" + path, wait_path=path)
        migrate(c, {"destination": "unix:" + path}, "PUT /migrate after a cancel", src)
        expect_arrived(src, dst, dsock, "after a cancel")
    finally:
        src.stop()
        dst.stop()


def test_migrate_destination_killed_midway():
    work, src, c = start_source("kill")
    path = os.path.join(work, "incoming.sock")
    dst, _ = start_destination("kill", work, "unix:" + path, wait_path=path)
    try:
        migrate(c, {"destination": "unix:" + path, "bandwidth_mib_s": 2}, "PUT /migrate", src)
        wait_status(c, {"active"}, src)
        time.sleep(1)
        dst.proc.kill()
        dst.wait(10)
        expect_source_runs_on(src, c, "destination killed", ("failed",), ("destination",))
    finally:
        src.stop()
        dst.stop()


def test_migrate_destination_api_while_arriving():
    """The destination's API answers while the VM arrives: GET /migrate shows the RAM
    coming in, requests that would build another machine are refused, and PUT
    /migrate/cancel there ends the migration with the source's guest running on."""
    work, src, c = start_source("arriving")
    path = os.path.join(work, "incoming.sock")
    dst, dsock = start_destination("arriving", work, "unix:" + path, wait_path=path)
    try:
        d = api.ApiClient(dsock)
        st = status(d)
        assert st["status"] == "incoming" and st["role"] == "destination", st
        assert st["bytes_sent"] == 0, st
        assert api.vm_state(d) == "Not started"
        migrate(c, {"destination": "unix:" + path, "bandwidth_mib_s": 2}, "PUT /migrate", src)
        end, seen = time.time() + 60, []
        while time.time() < end and len(set(seen)) < 3:
            st = status(d)
            assert st["status"] == "incoming" and st["role"] == "destination", st
            if st["bytes_sent"]:
                seen.append(st["bytes_sent"])
            time.sleep(0.2)
        assert len(set(seen)) >= 3 and seen == sorted(seen), \
            "the destination's GET /migrate did not follow the RAM coming in: %r" % seen
        assert st["ram_bytes"] == 128 << 20, st
        for path_, body in (("/machine-config", {"vcpu_count": 1, "mem_size_mib": 64}),
                            ("/actions", {"action_type": "InstanceStart"}),
                            ("/migrate/incoming", {"source": "unix:/x"})):
            api.expect_400(d.put(path_, body), "PUT %s while arriving" % path_, "arriving")
        assert api.vm_state(d) == "Not started"
        api.expect_204(d.put("/migrate/cancel", {}), "PUT /migrate/cancel at the destination", dst)
        assert dst.wait(30) == 1, "the destination did not end with status 1: %r" % dst
        assert "cancelled at the destination" in dst.err(), dst
        assert not os.path.exists(path)
        expect_source_runs_on(src, c, "cancelled at the destination", ("failed",),
                              ("cancelled at the destination",))
    finally:
        src.stop()
        dst.stop()


def test_migrate_refused_by_the_destination():
    """Another CPU template, too little memory: refused before any RAM goes."""
    work, src, c = start_source("tmpl")
    path = os.path.join(work, "incoming.sock")
    dst, _ = start_destination("tmpl", work, "unix:" + path, ["--cpu-template", "compat"], path)
    try:
        migrate(c, {"destination": "unix:" + path}, "PUT /migrate", src)
        expect_source_runs_on(src, c, "other CPU template", ("failed",), ("CPU template",))
        assert dst.wait(30) == 1, dst
        assert "CPU template" in dst.err(), dst
    finally:
        src.stop()
        dst.stop()
    with open("/proc/meminfo") as f:
        avail = [int(l.split()[1]) for l in f if l.startswith("MemAvailable:")][0] >> 10
    big = (avail + 1024) // 1024 * 1024 + 1024  # MiB: more than this host has free
    work, src, c = start_source("mem", memory=big)
    try:
        dst, _ = start_destination("mem", work, "unix:" + path, wait_path=path)
        migrate(c, {"destination": "unix:" + path}, "PUT /migrate", src)
        st = expect_source_runs_on(src, c, "too little memory", ("failed",), ("MiB available",))
        assert st["bytes_sent"] < 1 << 20, "RAM went before the refusal: %r" % st
    finally:
        src.stop()
        dst.stop()


class Proxy:
    """A unix-socket relay between source and destination that can corrupt or cut the stream.

    flip_at: after that many bytes from the source, one byte is flipped; cut_at: after that
    many bytes both connections are closed."""

    def __init__(self, listen_path, target_path, flip_at=None, cut_at=None):
        import threading
        self.srv = socket.socket(socket.AF_UNIX)
        self.srv.bind(listen_path)
        self.srv.listen(1)
        self.target, self.flip_at, self.cut_at = target_path, flip_at, cut_at
        self.forwarded = 0
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        import threading
        a, _ = self.srv.accept()
        b = socket.socket(socket.AF_UNIX)
        b.connect(self.target)

        def back():
            try:
                while True:
                    d = b.recv(65536)
                    if not d:
                        break
                    a.sendall(d)
            except OSError:
                pass
        back_thread = threading.Thread(target=back, daemon=True)
        back_thread.start()
        try:
            while True:
                d = bytearray(a.recv(65536))
                if not d:
                    break
                if self.flip_at is not None and self.forwarded <= self.flip_at < self.forwarded + len(d):
                    d[self.flip_at - self.forwarded] ^= 0x40
                if self.cut_at is not None and self.forwarded + len(d) >= self.cut_at:
                    break
                b.sendall(d)
                self.forwarded += len(d)
        except OSError:
            pass
        if self.cut_at is None:
            # The destination hung up (a refusal) or the source did: what the destination
            # said last must still reach the source before its side closes.
            try:
                b.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            back_thread.join(10)
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


def test_migrate_corrupted_stream_is_refused():
    work, src, c = start_source("crc")
    path = os.path.join(work, "incoming.sock")
    dst, _ = start_destination("crc", work, "unix:" + path, wait_path=path)
    proxy = os.path.join(work, "proxy.sock")
    Proxy(proxy, path, flip_at=3 << 20)
    try:
        migrate(c, {"destination": "unix:" + proxy}, "PUT /migrate", src)
        expect_source_runs_on(src, c, "corrupted stream", ("failed",), ("CRC mismatch",))
        assert dst.wait(30) == 1 and "CRC mismatch" in dst.err(), dst
    finally:
        src.stop()
        dst.stop()


def test_migrate_cut_connection():
    work, src, c = start_source("cut")
    path = os.path.join(work, "incoming.sock")
    dst, _ = start_destination("cut", work, "unix:" + path, wait_path=path)
    proxy = os.path.join(work, "proxy.sock")
    Proxy(proxy, path, cut_at=5 << 20)
    try:
        migrate(c, {"destination": "unix:" + proxy}, "PUT /migrate", src)
        expect_source_runs_on(src, c, "cut connection", ("failed",))
        assert dst.wait(30) == 1 and "closed the stream" in dst.err(), dst
    finally:
        src.stop()
        dst.stop()


def crc(data, start=0):
    return zlib.crc32(data, start) & 0xffffffff


def header(version=1):
    h = b"TERNSTAT" + struct.pack("<IIQ", version, 1, 0)
    return h + struct.pack("<I", crc(h))


def section(tag, payload, version=1):
    h = struct.pack("<IIIIQ", tag, 0, version, 0, len(payload))
    return h + payload + struct.pack("<I", crc(payload, crc(h)))


def fake_source(path, data):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    s.sendall(data)
    return s


def test_migrate_destination_refuses_bad_streams():
    """Another format version, another protocol version, a RAM run past the end of RAM."""
    work = tempfile.mkdtemp(prefix="tern-mig-bad-")
    path = os.path.join(work, "incoming.sock")
    cases = [
        ("format version", header(2), "format version 2"),
        ("protocol version", header() + section(64, struct.pack("<IIQI", 9, 4096, 128 << 20, 0)),
         "protocol version 9"),
        ("page size", header() + section(64, struct.pack("<IIQI", 1, 8192, 128 << 20, 0)),
         "page size 8192"),
        ("no hello", header() + section(1, b""), "hello"),
    ]
    for what, data, words in cases:
        dst, _ = start_destination("bad", work, "unix:" + path, wait_path=path)
        try:
            s = fake_source(path, data)
            assert dst.wait(30) == 1, "%s: %r" % (what, dst)
            assert words in dst.err(), "%s: %r" % (what, dst)
            # It answered with its own header and an ERROR section naming the fault.
            got = s.recv(65536)
            assert got.startswith(b"TERNSTAT") and words.encode() in got, "%s: %r" % (what, got)
            s.close()
        finally:
            dst.stop()


def test_migrate_refusal_from_the_destination_is_reported():
    """A destination that answers ERROR: the source names its words and runs on."""
    work, src, c = start_source("fakedst")
    path = os.path.join(work, "fake.sock")
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(path)
    srv.listen(1)
    try:
        migrate(c, {"destination": "unix:" + path}, "PUT /migrate", src)
        conn, _ = srv.accept()
        conn.settimeout(30)
        got = b""
        while len(got) < 28:
            got += conn.recv(4096)
        assert got.startswith(b"TERNSTAT"), got[:40]
        msg = b"no room for this VM today"
        conn.sendall(header() + section(69, struct.pack("<I", len(msg)) + msg))
        expect_source_runs_on(src, c, "refusal", ("failed",), ("no room for this VM today",))
        conn.close()
    finally:
        srv.close()
        src.stop()


def test_migrate_api_refuses_bad_requests():
    work, src, c = start_source("api")
    try:
        bad = [
            ({}, "destination"),
            ({"destination": "ftp:x"}, "tcp:HOST:PORT"),
            ({"destination": "tcp:127.0.0.1:0"}, "port"),
            ({"destination": "unix:/x", "downtime_limit_ms": 0}, "downtime_limit_ms"),
            ({"destination": "unix:/x", "bandwidth_mib_s": -1}, "bandwidth_mib_s"),
            ({"destination": "unix:/x", "max_rounds": 0}, "max_rounds"),
            ({"destination": "unix:/x", "post_copy": "yes"}, "post_copy"),
            ({"destination": "unix:/x", "copy_storage": 1}, "copy_storage"),
            ({"destination": "unix:/x", "speed": 1}, "speed"),
        ]
        for body, word in bad:
            api.expect_400(c.put("/migrate", body), "PUT /migrate %r" % body, word)
        # Nothing listens there: the migration fails and the guest runs on.
        migrate(c, {"destination": "unix:" + os.path.join(work, "nobody.sock")}, "PUT /migrate", src)
        expect_source_runs_on(src, c, "nobody listening", ("failed",), ("cannot connect",))
        api.expect_400(c.put("/migrate/incoming", {"source": "unix:/x"}), "incoming into a running VM",
                       "runs no microVM")
    finally:
        src.stop()
    r = ternlib.run_vmm(["--incoming", "bogus:1"], timeout=10)
    assert r.status == 2 and "--incoming" in r.err and "tcp:HOST:PORT" in r.err, r
    r = ternlib.run_vmm(["--incoming", "unix:/x", "--kernel", guest("dirtier")], timeout=10)
    assert r.status == 2 and "--incoming" in r.err, r


def dirty_rate_mib_s(vmm, mib, seconds=4):
    """How fast the dirtier rewrites its RAM, from its pass lines: MiB/s."""
    n0, t0 = len(passes(vmm)), time.time()
    time.sleep(seconds)
    n1, t1 = len(passes(vmm)), time.time()
    return (n1 - n0) * mib / (t1 - t0)


def test_migrate_auto_converge_outruns_the_bandwidth_cap():
    """A guest that dirties faster than the capped link: pre-copy alone gives up after its
    rounds (and the guest runs on); with auto_converge the vCPUs are throttled until the
    rest fits the downtime limit, and the VM arrives."""
    mib = 8  # each round rewrites all of it: rounds as short as a low cap allows
    work, src, c = start_source("converge", cmdline="mib=%d static=4 gap=4 delay=100000" % mib)
    path = os.path.join(work, "incoming.sock")
    dst = None
    try:
        rate = dirty_rate_mib_s(src, mib)
        cap = max(1, int(rate / 3))
        print("guest dirties %.1f MiB/s; bandwidth capped at %d MiB/s" % (rate, cap))
        assert rate >= 3, "the guest dirties too slowly to outrun any cap: %.1f MiB/s" % rate
        dst, _ = start_destination("converge", work, "unix:" + path, wait_path=path)
        # A 1 ms limit: the lab may starve the guest's vCPU for part of a round, and a
        # round in which it dirtied little must not let this one converge by luck.
        migrate(c, {"destination": "unix:" + path, "bandwidth_mib_s": cap, "max_rounds": 4,
                    "downtime_limit_ms": 1}, "PUT /migrate without auto-converge", src)
        st = expect_source_runs_on(src, c, "no auto-converge", ("failed",), ("did not converge",))
        dst.wait(30)
        dst.stop()
        # The rate that counts is the one while pages go: the lab's one CPU also runs both
        # ends of the migration, and a guest slowed below the link converges without any
        # throttle (CI once saw 52 MiB/s idle fall under 5 MiB/s). The cap follows it down.
        m = re.search(r"the guest dirtied (\d+) KiB/s, (\d+) KiB/s went", st["error"])
        assert m, st
        during, went = int(m.group(1)) / 1024, int(m.group(2)) / 1024
        if during < 1.2 * went:
            cap = max(1, min(cap, int(during / 2)))
        print("while migrating the guest dirtied %.1f MiB/s and %.1f MiB/s went; cap now %d MiB/s"
              % (during, went, cap))
        dst, dsock = start_destination("converge2", work, "unix:" + path, wait_path=path)
        # The same 1 ms limit: with the default 300 ms, a round in which the lab starved the
        # guest converged before two rounds could call for the throttle (CI saw it once).
        # At 1 ms only a throttled guest fits: a few pages in a round.
        migrate(c, {"destination": "unix:" + path, "bandwidth_mib_s": cap, "max_rounds": 100,
                    "downtime_limit_ms": 1, "auto_converge": True},
                "PUT /migrate with auto-converge", src)
        seen, said = 0, time.time()
        end = time.time() + MIGRATE_TIMEOUT
        while src.proc.poll() is None:
            try:
                st = status(c)
            except (OSError, AssertionError):
                break
            seen = max(seen, st["throttle_percent"])
            assert st["status"] not in ("failed", "cancelled"), "auto-converge: %r: %r" % (st, src)
            assert time.time() < end, "auto-converge still migrating after %d s: %r: %r" % (
                MIGRATE_TIMEOUT, st, src)
            if time.time() - said > 30:  # a slow lab says where it is, never goes silent
                print("still migrating: round %d, throttle %d%%, %d KiB left" % (
                    st["round"], st["throttle_percent"], st["bytes_left"] >> 10))
                said = time.time()
            time.sleep(0.2)
        rep = expect_arrived(src, dst, dsock, "auto-converge")
        assert "vCPUs throttled" in src.err(), "converged with no throttle at %d MiB/s: %r: %r" % (
            cap, rep, src)
        print("throttled up to %d%% (seen by GET /migrate); %d rounds, downtime %.1f ms" % (
            seen, rep["round"], rep["downtime_ms"]))
        assert seen >= 20, "GET /migrate never showed the throttle: %d" % seen
    finally:
        src.stop()
        if dst:
            dst.stop()


def test_migrate_post_copy_when_pre_copy_cannot_converge():
    """The guest dirties faster than the capped link and there is no auto-converge: with
    post_copy the VM switches over anyway after a few rounds and pulls the rest from the
    source as it touches it (userfaultfd); the dirtier checks every word on arrival."""
    mib = 32
    work, src, c = start_source("postcopy", cmdline="mib=%d static=8 gap=8" % mib)
    path = os.path.join(work, "incoming.sock")
    dst, dsock = start_destination("postcopy", work, "unix:" + path, wait_path=path)
    try:
        # A 1 ms limit: a round in which the lab starved the guest cannot converge by luck.
        migrate(c, {"destination": "unix:" + path, "bandwidth_mib_s": 16, "post_copy": True,
                    "max_rounds": 10, "downtime_limit_ms": 1}, "PUT /migrate post_copy", src)
        rep = expect_arrived(src, dst, dsock, "post-copy")
        assert "switching to post-copy" in src.err(), src
        assert "post-copy complete" in dst.err() or dst.wait_for("post-copy complete", 60,
                                                                 stream="err"), dst
        assert rep["round"] <= 4, rep
    finally:
        src.stop()
        dst.stop()


def test_migrate_post_copy_destination_lost():
    """The destination dies while it pulls pages: the guest's memory is split, so neither
    side may run it. The source's VM stays paused and GET /migrate says why."""
    # A slow dirtier (delay=): at the destination it touches its pages slower than the
    # capped link brings them, so post-copy lasts seconds, not the one a fast guest needs
    # to pull everything on demand.
    work, src, c = start_source("pclost", cmdline="mib=8 static=2 gap=2 delay=1000000")
    path = os.path.join(work, "incoming.sock")
    dst, _ = start_destination("pclost", work, "unix:" + path, wait_path=path)
    try:
        migrate(c, {"destination": "unix:" + path, "bandwidth_mib_s": 1, "post_copy": True,
                    "downtime_limit_ms": 1}, "PUT /migrate post_copy", src)
        wait_status(c, {"postcopy"}, src)
        assert dst.wait_for("the VM runs here", 60, stream="err"), dst
        time.sleep(0.5)
        assert src.proc.poll() is None and dst.proc.poll() is None, "post-copy ended too soon"
        dst.proc.kill()
        dst.wait(10)
        st = wait_status(c, {"failed"}, src)
        assert "stays paused" in st["error"], st
        assert src.proc.poll() is None, "the source exited: %r" % src
        assert api.vm_state(c) == "Paused", "the source's VM must stay paused"
        n = len(passes(src))
        time.sleep(2)
        assert len(passes(src)) == n, "the paused source ran on"
    finally:
        src.stop()
        dst.stop()
