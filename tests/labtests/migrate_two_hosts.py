"""Runs on lab1 of a two-host lab (tests/labtests/test_migrate.py): a ternd on each host, a
VM on lab1 with its disk image on the repository (storage both hosts reach at the same
path), moved to lab2 with `tern migrate --live` over TLS. The dirtier guest checks every
byte of its RAM as it goes. Prints "MIGRATE-TWO-HOSTS-OK" at the end; any failure is an
exception (exit status 1)."""
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lib"))
import labhosts  # noqa: E402
import pki  # noqa: E402
import ternlib  # noqa: E402

PORT = 16514
TERND, TERN = os.path.join(ternlib.BUILD, "ternd"), os.path.join(ternlib.BUILD, "tern")


def tern(*args, check=0, timeout=120):
    p = subprocess.run([TERN] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=timeout)
    print("$ tern %s -> %d\n%s%s" % (" ".join(args), p.returncode, p.stdout, p.stderr), flush=True)
    assert check is None or p.returncode == check, "exit status %d, want %d" % (p.returncode, check)
    return p


def passes(text):
    return [int(x) for x in re.findall(r"^pass (\d+) ok$", text, re.M)]


def main():
    # Under tests/out: the repository is shared with lab2 at the same path.
    work = os.path.join(ternlib.OUT, "migrate-two-hosts")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    ca = pki.CA(work, "lab CA")
    # lab1's ternd is a client of lab2's (the migration); tern on lab1 is one too.
    src_tls = ca.client(os.path.join(work, "lab1"), "lab1-ternd")
    dst_tls = ca.server(os.path.join(work, "lab2"), ["lab2", "10.99.0.2"])
    kernel = os.path.join(ternlib.BUILD, "guest", "dirtier.elf")
    assert os.path.exists(kernel), "no %s: make guests" % kernel
    disk = os.path.join(work, "shared.img")
    with open(disk, "wb") as f:
        f.truncate(8 << 20)
    src_state = "/tmp/ternd-mig-src"
    src_log = open(os.path.join(work, "ternd-lab1.log"), "w")
    src = subprocess.Popen([TERND, "--foreground", "--state-dir", src_state, "--cgroup", "none",
                            "--log-level", "debug", "--tls-dir", src_tls], stdout=src_log,
                           stderr=subprocess.STDOUT)
    d = labhosts.spawn(2, [TERND, "--foreground", "--state-dir", "/tmp/ternd-mig-dst", "--cgroup",
                           "none", "--log-level", "debug", "--listen-tls", "10.99.0.2:%d" % PORT,
                           "--tls-dir", dst_tls])
    local = ["--state-dir", src_state]
    remote = ["--connect", "tls://lab2:%d" % PORT, "--tls-dir", src_tls]
    try:
        end = time.time() + 60
        while tern(*remote, "list", "--all", check=None).returncode == 3 or \
                tern(*local, "list", check=None).returncode == 3:
            assert time.time() < end, "a ternd did not answer: %r" % (labhosts.wait(2, d, 1),)
            time.sleep(0.5)
        path = os.path.join(work, "roamer.json")
        with open(path, "w") as f:
            json.dump({"name": "roamer", "kernel": kernel, "cmdline": "mib=16 static=4 gap=4",
                       "memory_mib": 64, "disks": [{"path": disk}]}, f)
        tern(*local, "define", path)
        tern(*local, "start", "roamer")
        log1 = json.loads(tern(*local, "info", "roamer", "--json").stdout)["console_log"]
        end = time.time() + 120
        while len(passes(open(log1).read())) < 2:
            assert time.time() < end and "FAIL" not in open(log1).read(), open(log1).read()
            time.sleep(0.5)
        # Each lab host is one emulated CPU (TLS at ~14 MB/s): the 16 MiB the guest keeps
        # dirtying need seconds at the switchover.
        here_uid = json.loads(tern(*local, "info", "roamer", "--json").stdout)["jail"]["uid"]
        r = tern(*local, "migrate", "roamer", "tls://lab2:%d" % PORT, "--live", "--auto-converge",
                 "--downtime", "8000", "--json", timeout=600)
        m = json.loads(r.stdout)["migration"]
        assert m["destination_state"] == "running" and m["downtime_ms"] > 0, m
        info = json.loads(tern(*local, "info", "roamer", "--json").stdout)
        assert (info["state"], info["reason"]) == ("shut off", "migrated"), info
        before = open(log1).read()
        there = json.loads(tern(*remote, "info", "roamer", "--json").stdout)
        assert (there["state"], there["reason"]) == ("running", "migrated"), there
        # Both ternds jail their VMs (the default): it arrived under its uid.
        assert there["jail"] and there["jail"]["uid"] == here_uid, (there["jail"], here_uid)
        # It runs on lab2 now, and its guest goes on where it left off, every byte right.
        st, out = labhosts.run(2, ["cat", "/proc/%d/comm" % there["pid"]])
        assert st == 0 and out.strip() == "tern-vmm", (st, out)
        end = time.time() + 120
        while True:
            st, out = labhosts.run(2, ["cat", there["console_log"]])
            assert "FAIL" not in out, out
            if len(passes(out)) >= 3:
                break
            assert time.time() < end, out
            time.sleep(1)
        # One console across the hosts: a line cut at the switchover ends on lab2.
        got = passes(before + out)
        assert got == list(range(got[0], got[0] + len(got))) and len(passes(out)) >= 3, \
            "lab1 printed up to %r, lab2 from %r" % (before[-40:], out[:40])
        tern(*remote, "destroy", "roamer")
        tern(*remote, "undefine", "roamer")
        tern(*local, "undefine", "roamer")

        # A disk only lab1 has (its /tmp): --copy-storage makes it on lab2, every byte.
        local_disk = "/tmp/tern-carrier.img"
        with open(local_disk, "wb") as f:
            f.truncate(8 << 20)
            f.write(os.urandom(1 << 20))
            f.seek(5 << 20)
            f.write(os.urandom(512 << 10))  # and a hole between
        want = hashlib.sha256(open(local_disk, "rb").read()).hexdigest()
        path = os.path.join(work, "carrier.json")
        with open(path, "w") as f:
            json.dump({"name": "carrier", "kernel": kernel, "cmdline": "mib=4 static=1 gap=1",
                       "memory_mib": 32, "disks": [{"path": local_disk}]}, f)
        tern(*local, "define", path)
        tern(*local, "start", "carrier")
        st, _ = labhosts.run(2, ["test", "-e", local_disk])
        assert st == 1, "lab2 has %s already" % local_disk
        r = tern(*local, "migrate", "carrier", "tls://lab2:%d" % PORT, "--live", "--copy-storage",
                 "--downtime", "8000", "--undefine-source", "--json", timeout=600)
        m = json.loads(r.stdout)["migration"]
        assert m["destination_state"] == "running" and m["source_undefined"], m
        st, out = labhosts.run(2, ["sha256sum", local_disk])
        assert st == 0 and out.split()[0] == want, (st, out, want)
        there = json.loads(tern(*remote, "info", "carrier", "--json").stdout)
        st, out = labhosts.run(2, ["stat", "-c", "%u", local_disk])
        assert there["jail"] and out.strip() == str(there["jail"]["uid"]), (there["jail"], out)
        assert tern(*local, "info", "carrier", check=None).returncode == 1
        tern(*remote, "destroy", "carrier")
        tern(*remote, "undefine", "carrier", "--remove-storage")
    finally:
        labhosts.kill(2, d)
        src.terminate()
        src.wait(10)
        st, out = labhosts.wait(2, d, 10)
        print("ternd on lab2:\n" + out[-4000:], flush=True)
        with open(os.path.join(work, "ternd-lab1.log")) as f:
            print("ternd on lab1:\n" + f.read()[-4000:], flush=True)
    assert "tunnel ended" in out, out
    print("MIGRATE-TWO-HOSTS-OK", flush=True)


if __name__ == "__main__":
    main()
