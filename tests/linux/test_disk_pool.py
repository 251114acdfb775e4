"""The thread-pool disk engine (aio=threads) under a guest's own load. The small kernel
reads 64 MiB of its disk with O_DIRECT, 16 MiB a read, which its block layer splits into
many requests in flight at once. tern-vmm's pool starts with four workers and grows, up to
32, while requests wait on a slow disk (in the lab every request takes longer than the
pool's 50 us threshold); the workers added once the VM runs are started by the main
thread, already under its seccomp list, and each puts itself under the disk workers'
narrower one (src/backend/disk_threads.c).

Checked: the guest's checksum of what it read is the image's; the pool grew past four;
every thread of tern-vmm is under a filter; the VM powers off cleanly."""
import hashlib
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
import api  # noqa: E402
import initramfs  # noqa: E402
import ternlib  # noqa: E402

CMDLINE = "console=ttyS0 panic=-1 rodata=off percpu_alloc=page quiet"
MIB = 64
INIT = initramfs.PROLOGUE + r"""
for i in 1 2 3; do
  echo "SUM $(dd if=/dev/vda bs=16M count=%d iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1)"
done
read line
poweroff -f
""" % (MIB // 16)


def test_parallel_reads_grow_the_disk_workers_under_their_filter():
    ternlib.need_kvm()
    work = tempfile.mkdtemp(prefix="tern-disk-pool-")
    image = os.path.join(work, "disk.img")
    with open(image, "wb") as f:
        f.write(os.urandom(MIB << 20))
    with open(image, "rb") as f:
        want = hashlib.md5(f.read()).hexdigest()
    v = api.Vmm(["--kernel", os.path.join(ternlib.SHARED, "guest", "vmlinux-min"),
                 "--initrd", initramfs.build(INIT), "--memory", "256", "--cmdline", CMDLINE,
                 "--disk", "path=%s,aio=threads,cache=none" % image],
                log_name="linux-disk-pool.log", stdin=subprocess.PIPE)
    try:
        assert v.wait_for("SUM", 120, count=3), "the guest did not read its disk: %r" % v
        sums = [l.split()[1] for l in v.out().splitlines() if l.startswith("SUM ")]
        assert sums == [want] * 3, "the guest read %r, the image is %s" % (sums, want)
        threads = ternlib.thread_status(v.pid)
        workers = [t for t, st in threads.items() if st["Name"] == "disk-io"]
        assert len(workers) > 4, "the pool did not grow: %d workers" % len(workers)
        for tid, st in threads.items():
            assert ternlib.filtered(st), "thread %d (%s): Seccomp %s" % (tid, st["Name"], st["Seccomp"])
        print("  disk workers: %d after three 64 MiB O_DIRECT reads" % len(workers))
        v.proc.stdin.write(b"done\n")
        v.proc.stdin.flush()
        assert v.wait(60) == 0, "the guest did not power off: %r" % v
    finally:
        v.stop()
        v.save_log()
    os.unlink(image)
    os.rmdir(work)
