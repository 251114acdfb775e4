"""Management between two lab hosts (tests/lab --hosts 2): ternd on lab2 with
--listen-tls, tern on lab1 with --connect (tls_two_hosts.py runs inside). Runs on the
host; boots its own lab (~1 min)."""
import os
import subprocess

import ternlib

LAB = os.path.join(ternlib.ROOT, "tests", "lab")


def test_tern_connect_manages_ternd_on_another_host():
    p = subprocess.run([LAB, "--hosts", "2", "--memory", "1024", "--", "python3",
                        os.path.join("tests", "labtests", "tls_two_hosts.py")], cwd=ternlib.ROOT,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
    out = p.stdout.decode(errors="replace")
    assert p.returncode == 0 and "TLS-REMOTE-OK" in out, "exit status %r\n%s" % (
        p.returncode, out[-6000:])
