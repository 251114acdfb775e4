"""Migration between two lab hosts (tests/lab --hosts 2): tern migrate moves a VM from
lab1's ternd to lab2's over TLS, its disk on storage both reach, then another with
--copy-storage, its disk on lab1 only (migrate_two_hosts.py runs inside). Runs on the host;
boots its own lab (~1 min) and migrates two tiny guests (a minute or two in the lab)."""
import os
import subprocess

import ternlib

LAB = os.path.join(ternlib.ROOT, "tests", "lab")


def test_tern_migrate_moves_a_vm_between_hosts():
    p = subprocess.run([LAB, "--hosts", "2", "--memory", "1024", "--", "python3",
                        os.path.join("tests", "labtests", "migrate_two_hosts.py")],
                       cwd=ternlib.ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=900)
    out = p.stdout.decode(errors="replace")
    assert p.returncode == 0 and "MIGRATE-TWO-HOSTS-OK" in out, "exit status %r\n%s" % (
        p.returncode, out[-8000:])
