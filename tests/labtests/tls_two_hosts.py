"""Runs on lab1 of a two-host lab (tests/labtests/test_remote.py): ternd on lab2 serves
TLS on 10.99.0.2, tern on lab1 manages a VM there with --connect. Prints "TLS-REMOTE-OK"
at the end; any failure is an exception (exit status 1)."""
import json
import os
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


def tern(*args, check=0):
    p = subprocess.run([TERN] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=120)
    print("$ tern %s -> %d\n%s%s" % (" ".join(args), p.returncode, p.stdout, p.stderr), flush=True)
    assert check is None or p.returncode == check, "exit status %d, want %d" % (p.returncode, check)
    return p


def main():
    # Under tests/out: the repository is shared with lab2 at the same path.
    work = os.path.join(ternlib.OUT, "tls-two-hosts")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    ca = pki.CA(work, "lab CA")
    server = ca.server(os.path.join(work, "server"), ["lab2", "10.99.0.2"])
    client = ca.client(os.path.join(work, "client"), "lab1-admin")
    kernel = ternlib.guest_path("counter")
    assert os.path.exists(kernel), "no %s: make guests" % kernel
    d = labhosts.spawn(2, [TERND, "--foreground", "--state-dir", "/tmp/ternd-remote", "--cgroup",
                           "none", "--log-level", "debug", "--listen-tls", "10.99.0.2:%d" % PORT,
                           "--tls-dir", server])
    try:
        remote = ["--connect", "tls://lab2:%d" % PORT, "--tls-dir", client]
        end = time.time() + 60
        while tern(*remote, "list", "--all", check=None).returncode == 3:
            assert time.time() < end, "ternd on lab2 did not answer: %r" % (labhosts.wait(2, d, 1),)
            time.sleep(0.5)
        path = os.path.join(work, "far.json")
        with open(path, "w") as f:
            json.dump({"name": "far", "kernel": kernel, "cmdline": "console=ttyS0 every=300000",
                       "memory_mib": 32}, f)
        tern(*remote, "define", path)
        tern(*remote, "start", "far")
        by_ip = ["--connect", "tls://10.99.0.2:%d" % PORT, "--tls-dir", client]
        info = json.loads(tern(*by_ip, "info", "far", "--json").stdout)
        assert info["state"] == "running" and info["pid"] > 0, info
        # The VM runs on lab2, not here.
        st, out = labhosts.run(2, ["cat", "/proc/%d/comm" % info["pid"]])
        assert st == 0 and out.strip() == "tern-vmm", (st, out)
        # Its console log (on lab2) fills.
        end = time.time() + 60
        while time.time() < end:
            st, out = labhosts.run(2, ["cat", info["console_log"]])
            if "count " in out:
                break
            time.sleep(1)
        assert "count " in out, out
        tern(*remote, "destroy", "far")
        info = json.loads(tern(*remote, "--json", "info", "far").stdout)
        assert info["state"] == "shut off" and info["reason"] == "destroyed", info
        tern(*remote, "undefine", "far")
    finally:
        labhosts.kill(2, d)
    st, out = labhosts.wait(2, d, 10)
    print("ternd on lab2:\n" + out, flush=True)
    assert "connected as CN=lab1-admin,O=tern tests" in out, out
    print("TLS-REMOTE-OK", flush=True)


if __name__ == "__main__":
    main()
