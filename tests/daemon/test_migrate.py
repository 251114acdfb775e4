"""tern migrate between two ternds on one host (docs/ternd.md, "Migration"): the source's
ternd sends a running VM to the destination's over mutual TLS (certificates from certtool,
tests/lib/pki.py). The dirtier guest (guest/tiny/dirtier.c) rewrites and checks 16 MiB the
whole time, so a page lost or sent stale shows as a FAIL line at the destination. A client
certificate from another CA is refused, and a destination whose tern-vmm dies half-way
costs nothing: the VM runs on at the source, the destination keeps nothing."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ternd  # noqa: E402
import ternlib  # noqa: E402
from test_tls import certs, run, wait_listening  # noqa: E402

VM = {"cmdline": "mib=16 static=4 gap=4", "memory_mib": 64}
MIGRATE_TIMEOUT = 300  # seconds: the lab runs KVM under emulation
DOWNTIME_MS = "8000"  # what the lab's emulated CPU needs for the last 16 MiB (below)


def dirtier():
    p = os.path.join(ternlib.BUILD, "guest", "dirtier.elf")
    p = p if os.path.exists(p) else ternlib.guest_path("dirtier")
    assert os.path.exists(p), "no %s: make guests" % p
    return p


def passes(t, name):
    return [int(x) for x in re.findall(r"^pass (\d+) ok$", ternd.console_log(t, name), re.M)]


def wait_passes(t, name, n, timeout=120):
    end = time.time() + timeout
    while time.time() < end:
        if len(passes(t, name)) >= n:
            return True
        assert "FAIL" not in ternd.console_log(t, name), ternd.console_log(t, name)[-2000:]
        time.sleep(0.2)
    return False


class Pair:
    """Two ternds serving TLS on 127.0.0.1, each with a server and a client certificate in
    its --tls-dir (copies: a test swaps the source's client certificate)."""

    def __init__(self, tag, extra=(), dst_wrap=()):
        c = certs()
        self.src = self.dst = None
        self.tls, self.tls_dst = (tempfile.mkdtemp(prefix="tern-migtls-") for _ in range(2))
        for d in (self.tls, self.tls_dst):
            for f in ("cacert.pem", "servercert.pem", "serverkey.pem"):
                shutil.copy(os.path.join(c["server"], f), d)
            for f in ("clientcert.pem", "clientkey.pem"):
                shutil.copy(os.path.join(c["client"], f), d)
        self.src_port, self.port = ternlib.free_port(), ternlib.free_port()
        self.src_url, self.url = ("tls://127.0.0.1:%d" % p for p in (self.src_port, self.port))
        self.src = ternd.Ternd(tag + "src", extra=["--listen-tls", "127.0.0.1:%d" % self.src_port,
                                                   "--tls-dir", self.tls] + list(extra))
        self.dst = ternd.Ternd(tag + "dst", extra=["--listen-tls", "127.0.0.1:%d" % self.port,
                                                   "--tls-dir", self.tls_dst] + list(extra),
                               wrap=dst_wrap)
        wait_listening(self.src.proc, self.src.log)
        wait_listening(self.dst.proc, self.dst.log)

    def tern(self, t, *args, timeout=MIGRATE_TIMEOUT):
        return run("tern", ["--state-dir", t.dir] + list(args), timeout=timeout)

    def start_vm(self, name, **extra):
        self.src.define(name, dirtier(), **dict(VM, **extra))
        self.src.ok("POST", "/vms/%s/start" % name)
        assert wait_passes(self.src, name, 2), ternd.console_log(self.src, name)[-2000:]

    def logs(self):
        return "--- source ternd\n%s\n--- destination ternd\n%s" % (self.src.log(), self.dst.log())

    def close(self):
        for t in (self.src, self.dst):
            if t:
                t.close()
        shutil.rmtree(self.tls, ignore_errors=True)
        shutil.rmtree(self.tls_dst, ignore_errors=True)


def start_slow_migration(p, name):
    """tern migrate at 1 MiB/s (the first round alone takes many seconds), once it runs."""
    proc = subprocess.Popen([ternd.tool("tern"), "--state-dir", p.src.dir, "migrate", name, p.url,
                             "--live", "--bandwidth", "1"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    end = time.time() + 120
    while True:
        job = p.src.ok("GET", "/vms/%s/job" % name)
        if job["operation"] == "migrate" and job.get("migration", {}).get("status") == "active":
            return proc
        if proc.poll() is not None:
            raise AssertionError("tern migrate ended: %r\n%s" % (proc.communicate(), p.logs()))
        assert time.time() < end, "%r\n%s" % (job, p.logs())
        time.sleep(0.2)


def expect_source_runs_on(p, name, proc, word):
    """The migration failed (tern migrate's status 1, its error naming word), the VM counts
    on at the source, and the destination removed what it made for it."""
    try:
        out, err = proc.communicate(timeout=MIGRATE_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1 and word in err, (proc.returncode, out, err)
    assert p.src.state(name)[0] == "running", p.src.state(name)
    n = len(passes(p.src, name))
    assert wait_passes(p.src, name, n + 2), ternd.console_log(p.src, name)[-2000:]
    assert p.src.ok("GET", "/vms/%s/job" % name)["operation"] is None
    end = time.time() + 30
    while p.dst.call("GET", "/vms/%s" % name)[0] != 404:
        assert time.time() < end, p.dst.vm(name)
        time.sleep(0.2)


def test_migrate_live_between_two_ternds_over_tls():
    p = Pair("mig")
    try:
        # A disk: both ternds reach it at its path (this host), as shared storage.
        disk = os.path.join(p.tls, "mig.img")
        with open(disk, "wb") as f:
            f.truncate(4 << 20)
        p.start_vm("mig", disks=[{"path": disk}])
        # Bad input: exit 2 naming the option or field, nothing started.
        for args, words in ((["nonsense"], "is not tls://HOST:PORT"),
                            ([p.url, "--downtime", "0"], "--downtime: '0' must be 1 to 3600000"),
                            ([p.url, "--bandwidth", "x"], "--bandwidth")):
            r = p.tern(p.src, "migrate", "mig", *args)
            assert r.status == 2 and words in r.err, r
        st, got = p.src.call("POST", "/vms/mig/migrate", {"host": p.url, "live": "yes"})
        assert st == 400 and "live" in got["error"], (st, got)
        st, got = p.src.call("POST", "/vms/mig/migrate", {})
        assert st == 400 and "'host' is required" in got["error"], (st, got)

        # --copy-storage makes the disk at the destination, which has it already: refused
        # there (409), the VM runs on here.
        r = p.tern(p.src, "migrate", "mig", p.url, "--live", "--copy-storage")
        assert r.status == 1 and "exists on this host: copy_storage" in r.err, r
        assert p.src.state("mig") == ("running", "booted") and p.dst.ok("GET", "/vms")["vms"] == []

        # A client certificate from another CA: the destination refuses it and says whose
        # it was; the VM runs on at the source and nothing is made at the destination.
        intruder = certs()["intruder"]
        good = os.path.join(p.tls, "good")
        os.makedirs(good)
        for f in ("clientcert.pem", "clientkey.pem"):
            shutil.copy(os.path.join(p.tls, f), good)
            shutil.copy(os.path.join(intruder, f), p.tls)
        r = p.tern(p.src, "migrate", "mig", p.url, "--live")
        assert r.status == 1 and "refused our certificate" in r.err, r
        end = time.time() + 10
        while "(CN=intruder,O=tern tests): certificate refused" not in p.dst.log():
            assert time.time() < end, p.dst.log()
            time.sleep(0.1)
        assert p.src.state("mig") == ("running", "booted"), p.src.state("mig")
        assert p.dst.ok("GET", "/vms")["vms"] == [], p.dst.ok("GET", "/vms")
        for f in ("clientcert.pem", "clientkey.pem"):
            shutil.copy(os.path.join(good, f), p.tls)

        # The migration: the dirtier rewrites its RAM all along. The lab's one emulated CPU
        # runs the guest, both tern-vmms and both ends of TLS (AES-GCM: ~14 MB/s there), so
        # the 16 MiB it keeps dirtying take seconds to send: a downtime limit to match.
        p.src.ok("PATCH", "/vms/mig", {"autostart": True})
        before = passes(p.src, "mig")
        r = p.tern(p.src, "migrate", "mig", p.url, "--live", "--auto-converge", "--downtime",
                   DOWNTIME_MS, "--json")
        assert r.status == 0, "%r\n%s" % (r, p.logs())
        got = json.loads(r.out)
        m = got["migration"]
        print("migrated: %s" % json.dumps(m))
        assert got["state"] == "shut off" and got["reason"] == "migrated", got
        assert m["destination"] == p.url and m["destination_state"] == "running", m
        assert m["downtime_ms"] > 0 and m["total_ms"] > 0 and m["rounds"] >= 1, m
        assert p.src.state("mig") == ("shut off", "migrated")
        assert p.dst.state("mig") == ("running", "migrated"), p.dst.state("mig")
        assert p.dst.vm("mig")["uuid"] == p.src.vm("mig")["uuid"]
        # The source's console stops; the destination's goes on where it left off (a line
        # cut at the switchover ends there): one console across the two.
        assert max(passes(p.src, "mig")) >= max(before)
        assert wait_passes(p.dst, "mig", 3), ternd.console_log(p.dst, "mig")[-2000:]
        here, there = ternd.console_log(p.src, "mig"), ternd.console_log(p.dst, "mig")
        both = [int(x) for x in re.findall(r"^pass (\d+) ok$", here + there, re.M)]
        assert both == list(range(both[0], both[0] + len(both))), \
            "source printed up to %r, destination from %r" % (here[-40:], there[:40])
        assert "FAIL" not in there, there
        assert "tunnel ended" in p.dst.log(), p.dst.log()
        # A VM that moved away is not started again here by autostart, nor migrated again.
        p.src.stop()
        p.src.start()
        wait_listening(p.src.proc, p.src.log)
        time.sleep(2)  # autostart runs once the sockets are up
        assert p.src.state("mig") == ("shut off", "migrated"), p.src.state("mig")
        r = p.tern(p.src, "migrate", "mig", p.url, "--live")
        assert r.status == 1 and "cannot migrate mig: it is shut off" in r.err, r

        # And back, not live: paused there first, resumed here, into the shut-off VM of the
        # same uuid here; --undefine-source removes it there.
        last = max(passes(p.dst, "mig"))
        r = p.tern(p.dst, "migrate", "mig", p.src_url, "--undefine-source", "--downtime",
                   DOWNTIME_MS)
        assert r.status == 0 and "it is running there, and undefined here" in r.out, \
            "%r\n%s" % (r, p.logs())
        assert p.dst.call("GET", "/vms/mig")[0] == 404
        assert p.src.state("mig") == ("running", "unpaused"), p.src.state("mig")
        reasons = [(e["state"], e["reason"]) for e in p.src.ok("GET", "/events?after=0")["events"]
                   if e["name"] == "mig"]
        assert reasons[-3:] == [("migrating in", "migration"), ("paused", "migrated"),
                                ("running", "unpaused")], reasons
        assert wait_passes(p.src, "mig", len(passes(p.src, "mig")) + 2)
        assert max(passes(p.src, "mig")) > last and "FAIL" not in ternd.console_log(p.src, "mig")
    finally:
        p.close()


def test_migrate_a_vm_on_2m_pages_lands_on_them():
    """A definition with huge_pages "2M": the destination's ternd starts its tern-vmm with
    --huge-pages 2M (it used tern-vmm's default, transparent pages, before), so the VM runs
    there on 2 MiB hugetlbfs pages too."""
    guest = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "guest")
    mem = ternlib.sibling(os.path.join(guest, "test_memory.py"), "test_memory")
    p = Pair("mig2m")
    try:
        mem.set_huge_pool(VM["memory_mib"] + 4)  # both ends' pages
        p.start_vm("big", huge_pages="2M")
        r = p.tern(p.src, "migrate", "big", p.url, "--live", "--auto-converge", "--downtime",
                   DOWNTIME_MS)
        assert r.status == 0, "%r\n%s" % (r, p.logs())
        assert p.dst.state("big") == ("running", "migrated"), p.dst.state("big")
        assert wait_passes(p.dst, "big", 3), ternd.console_log(p.dst, "big")[-2000:]
        ram = mem.hugetlb_ram(p.dst.vm("big")["pid"], VM["memory_mib"])
        assert ram and ram["page_kb"] == 2048, ram
        assert p.dst.vm("big")["definition"]["huge_pages"] == "2M"
        p.dst.ok("POST", "/vms/big/destroy")
    finally:
        p.close()
        mem.set_huge_pool(0)


def test_migrate_fails_when_the_destination_dies_half_way():
    p = Pair("migkill")
    try:
        p.start_vm("victim")
        # 1 MiB/s: the first round alone takes many seconds.
        proc = subprocess.Popen([ternd.tool("tern"), "--state-dir", p.src.dir, "migrate", "victim",
                                 p.url, "--live", "--bandwidth", "1"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            end = time.time() + 120
            while True:
                job = p.src.ok("GET", "/vms/victim/job")
                if job["operation"] == "migrate" and job["done_bytes"] > (1 << 20):
                    break
                assert proc.poll() is None, proc.communicate()
                assert time.time() < end, "%r\n%s" % (job, p.logs())
                time.sleep(0.2)
            assert job["total_bytes"] == 64 << 20 and job["migration"]["status"] == "active", job
            assert job["migration"]["destination"] == p.url and "round" in job["detail"], job
            there = p.dst.vm("victim")
            assert there["state"] == "migrating in" and there["pid"] > 0, there
            os.kill(there["pid"], 9)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        expect_source_runs_on(p, "victim", proc, "migration failed")
        events = [(e["name"], e["state"], e["reason"])
                  for e in p.dst.ok("GET", "/events?after=0")["events"]]
        assert ("victim", "migrating in", "migration") in events and \
            ("victim", "shut off", "failed") in events and \
            ("victim", "undefined", "removed") in events, events
    finally:
        p.close()


def test_migrate_cancelled_by_tern_abort_and_by_ctrl_c():
    """tern abort NAME (virsh domjobabort) and Ctrl-C in tern migrate each cancel a running
    migration: the VM runs on at the source, the destination keeps nothing; with no
    migration running, tern abort says so."""
    p = Pair("migcancel")
    try:
        p.start_vm("mover")
        r = p.tern(p.src, "abort", "mover")
        assert r.status == 1 and "no job runs on mover" in r.err, r
        proc = start_slow_migration(p, "mover")
        r = p.tern(p.src, "abort", "mover")
        assert r.status == 0 and "Cancelling mover's migrate" in r.out, r
        expect_source_runs_on(p, "mover", proc, "cancelled")
        proc = start_slow_migration(p, "mover")
        proc.send_signal(signal.SIGINT)
        expect_source_runs_on(p, "mover", proc, "cancelled")
        # And it still migrates afterwards.
        r = p.tern(p.src, "migrate", "mover", p.url, "--live", "--downtime", DOWNTIME_MS)
        assert r.status == 0 and "Migrated mover" in r.out, "%r\n%s" % (r, p.logs())
    finally:
        p.close()
