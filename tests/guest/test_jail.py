"""The jail (tern-vmm --jail, src/jail/jail.c, docs/security.md): a jailed tern-vmm runs as
its own uid with no capabilities, in namespaces whose root holds only its files; through
the test-only fault hook (TERN_TEST_FAULT=jail-escape) a vCPU thread of VM A reaches for
VM B's disk, socket and process and is refused by the jail itself (its seccomp list set to
log, so that only the jail stands in the way)."""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
import api  # noqa: E402
import ternlib  # noqa: E402

UID_A, UID_B = 61001, 61002


def own_dir(uid, name):
    """A directory only uid may use (the VM's sockets and disk live there)."""
    d = tempfile.mkdtemp(prefix="tern-jail-%s-" % name)
    os.chown(d, uid, uid)
    os.chmod(d, 0o700)
    return d


def own_disk(path, uid, mib=8):
    with open(path, "wb") as f:
        f.truncate(mib << 20)
    os.chown(path, uid, uid)
    os.chmod(path, 0o600)
    return path


def jailed(uid, work, extra=(), env=None, log_name=None, jail_extra=""):
    """A counter guest in a jail as uid, its API socket and disk in work."""
    ternlib.need_kvm()
    disk = own_disk(os.path.join(work, "disk.img"), uid)
    args = ["--jail", "uid=%d,gid=%d%s" % (uid, uid, jail_extra), "--kernel",
            ternlib.guest_path("counter"), "--cmdline", "every=3000", "--api-sock",
            os.path.join(work, "api.sock"), "--disk", "path=%s" % disk] + list(extra)
    return api.Vmm(args, env=env, log_name=log_name)


def mount_points(pid):
    """[(mount point, filesystem type, options)] of pid's mount namespace."""
    out = []
    with open("/proc/%d/mountinfo" % pid) as f:
        for line in f:
            left, right = line.split(" - ", 1)
            fields = left.split()
            out.append((fields[4], right.split()[0], fields[5]))
    return out


def test_a_jailed_vm_has_every_wall():
    """Every thread: the VM's uid and gid, no capabilities in any set, no_new_privs, the
    seccomp filter. Its mounts: a read-only tmpfs root, its /proc, and only its own files
    (kernel, work directory, tern-vmm, its libraries and their loader's cache); /dev holds
    kvm, null and urandom.
    The guest runs, the API answers, rlimits hold, and SIGTERM ends it as before."""
    work = own_dir(UID_A, "walls")
    v = jailed(UID_A, work, ["--cpus", "2", "--rng"], log_name="jail-walls.log")
    try:
        assert v.wait_for("count 3", 90), "the jailed guest never counted: %r" % v
        pid = ternlib.jailed_pid(v)
        threads = ternlib.thread_status(pid)
        names = sorted(st.get("Name") for st in threads.values())
        assert "vcpu0" in names and "vcpu1" in names, names
        for tid, st in threads.items():
            who = "thread %d (%s)" % (tid, st.get("Name"))
            assert st["Uid"].split() == [str(UID_A)] * 4, "%s: Uid %r" % (who, st["Uid"])
            assert st["Gid"].split() == [str(UID_A)] * 4, "%s: Gid %r" % (who, st["Gid"])
            assert st["Groups"].split() == [str(UID_A)], "%s: Groups %r" % (who, st["Groups"])
            for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
                assert int(st[cap], 16) == 0, "%s: %s %s" % (who, cap, st[cap])
            assert st["NoNewPrivs"] == "1", "%s: NoNewPrivs %r" % (who, st["NoNewPrivs"])
            assert ternlib.filtered(st), "%s: Seccomp %r" % (who, st["Seccomp"])
        # The supervisor outside (root's CAP_KILL alone, to signal it) is filtered too.
        sup = ternlib.thread_status(v.pid)[v.pid]
        assert sup["Seccomp"] == "2" and sup["NoNewPrivs"] == "1", "supervisor: %r" % sup
        assert int(sup["CapEff"], 16) == 1 << 5 and int(sup["CapPrm"], 16) == 1 << 5, \
            "the supervisor should keep CAP_KILL alone: %r" % sup
        mounts = mount_points(pid)
        assert mounts[0][0] == "/" and mounts[0][1] == "tmpfs" and "ro" in mounts[0][2].split(","), \
            mounts[0]
        exe = os.path.realpath(ternlib.vmm_path())
        allowed = {"/", "/proc", work, os.path.realpath(ternlib.guest_path("counter")),
                   ternlib.guest_path("counter"), exe, "/etc/ld.so.cache"}
        if os.path.exists("/sys/module/kvm_pvm"):
            allowed.add("/sys/module/kvm_pvm")  # how a software-KVM host is told (jail_paths.c)
        for point, fstype, opts in mounts:
            lib = point.startswith(("/usr/lib", "/lib")) and ".so" in point
            assert point in allowed or lib, "the jail holds %s (%s): %r" % (point, fstype, mounts)
            if point not in ("/", "/proc", "/etc/ld.so.cache") and point != exe and not lib:
                assert "noexec" in opts.split(","), "%s is executable in the jail" % point
            # What the VM only reads or runs is read-only; nothing is suid or a device.
            if point not in ("/proc", work):
                assert "ro" in opts.split(","), "%s is writable in the jail: %s" % (point, opts)
            assert {"nosuid", "nodev"} <= set(opts.split(",")) or point == "/", (point, opts)
        root = "/proc/%d/root" % pid
        assert sorted(os.listdir(root + "/dev")) == ["kvm", "null", "urandom"], os.listdir(root + "/dev")
        assert not os.path.exists(root + "/etc/passwd"), "the host's /etc is in the jail"
        with open("/proc/%d/limits" % pid) as f:
            limits = f.read()
        assert any(l.startswith("Max open files") and l.split()[3:5] == ["4096", "4096"]
                   for l in limits.splitlines()), limits
        assert any(l.startswith("Max core file size") and l.split()[4:6] == ["0", "0"]
                   for l in limits.splitlines()), limits
        # Only stdin, stdout, stderr of what it was started with: nothing else inherited.
        c = api.ApiClient(os.path.join(work, "api.sock"))
        assert api.vm_state(c) == "Running"
        n = len(v.out().splitlines())
        assert v.wait_for("count %d" % (n + 2), 60), "the guest stopped: %r" % v
    finally:
        st = v.stop()
    assert st == -signal.SIGTERM, "SIGTERM should end the jailed tern-vmm as before: %r: %r" % (st, v)
    assert not ternlib.pid_alive(pid), "the jailed process outlived its supervisor"


def test_a_jailed_disk_grows_within_its_file_size_limit():
    """Under --jail fsize_mib=20, growing
    the disk (PATCH /drives tern_size) past 20 MiB is a 400 naming the file size and the guest
    counts on; within the limit it grows. (Outside a jail SIGXFSZ would end tern-vmm but for
    its SIG_IGN: tests/guest/test_api.py; inside, the jailed process is its PID namespace's
    init, which the kernel's SIGXFSZ does not reach.)"""
    ternlib.need_kvm()
    work = own_dir(UID_A, "fsize")
    disk = own_disk(os.path.join(work, "disk.img"), UID_A)
    v = api.Vmm(["--jail", "uid=%d,gid=%d,fsize_mib=20" % (UID_A, UID_A), "--memory", "16", "--kernel",
                 ternlib.guest_path("counter"), "--cmdline", "every=3000", "--api-sock",
                 os.path.join(work, "api.sock"), "--disk", "path=%s,format=raw,id=d0" % disk],
                log_name="jail-fsize.log")
    try:
        assert v.wait_for("count 2", 90), "the jailed guest never counted: %r" % v
        c = api.ApiClient(os.path.join(work, "api.sock"))
        api.expect_400(c.patch("/drives/d0", {"drive_id": "d0", "tern_size": 32 << 20}),
                       "growing past RLIMIT_FSIZE", "File too large")
        n = len(v.out().splitlines())
        assert v.wait_for("count %d" % (n + 2), 60), "the guest stopped: %r" % v
        api.expect_204(c.patch("/drives/d0", {"drive_id": "d0", "tern_size": 12 << 20}),
                       "growing within the limit", v)
        assert os.path.getsize(disk) == 12 << 20
    finally:
        v.stop()


def test_a_jailed_drive_moves_onto_an_overlay_in_its_bind_directory():
    """Under --jail, with every filter on, PATCH /drives moves the running guest's drive onto a
    qcow2 overlay of its image that was made in a --jail-bind directory after the jail was
    built (the way a snapshot stops writing an image): the new file opens inside the jail, its
    backing file (the drive's own image, bound already) under it, and the guest counts on. An
    overlay outside the jail is a 400 (the jail has no such file), the drive as it was."""
    ternlib.need_kvm()
    work = own_dir(UID_A, "swap")
    later = own_dir(UID_A, "swap-later")
    disk = own_disk(os.path.join(work, "disk.img"), UID_A)
    v = api.Vmm(["--jail", "uid=%d,gid=%d" % (UID_A, UID_A), "--jail-bind", later, "--memory",
                 "16", "--kernel", ternlib.guest_path("counter"), "--cmdline", "every=3000",
                 "--api-sock", os.path.join(work, "api.sock"), "--disk", "path=%s,format=raw" % disk],
                log_name="jail-swap.log")
    outside = os.path.join(tempfile.mkdtemp(prefix="tern-jail-out-"), "top.qcow2")
    try:
        assert v.wait_for("count 2", 90), "the jailed guest never counted: %r" % v
        top = os.path.join(later, "top.qcow2")
        for p in (top, outside):
            subprocess.run(["qemu-img", "create", "-q", "-u", "-f", "qcow2", "-b", disk, "-F", "raw",
                            p, str(8 << 20)], check=True)
            os.chown(p, UID_A, UID_A)
        c = api.ApiClient(os.path.join(work, "api.sock"))
        api.expect_400(c.patch("/drives/disk0", {"drive_id": "disk0", "path_on_host": outside,
                                                 "tern_format": "Qcow2"}),
                       "an overlay outside the jail", "cannot open", "No such file")
        api.expect_204(c.patch("/drives/disk0", {"drive_id": "disk0", "path_on_host": top,
                                                 "tern_format": "Qcow2"}),
                       "PATCH onto the overlay in the bind directory", v)
        st, cfg = c.get("/vm/config")
        assert st == 200 and cfg["drives"][0]["path_on_host"] == top, cfg
        n = len(v.out().splitlines())
        assert v.wait_for("count %d" % (n + 2), 60), "the guest stopped: %r" % v
        assert "disk 0: '%s' -> '%s' (qcow2" % (disk, top) in v.err(), v.err()
    finally:
        v.stop()
        shutil.rmtree(os.path.dirname(outside), ignore_errors=True)
    chk = subprocess.run(["qemu-img", "check", top], capture_output=True, text=True)
    assert chk.returncode == 0, chk.stdout + chk.stderr


def test_a_jailed_vm_cannot_reach_another():
    """VM A's vCPU thread opens VM B's disk, connects to B's API socket, ptraces and signals
    B's process: none of them exists in A's jail. A file of B's in a directory A was given
    (--jail-bind) is refused by the uid wall. Both guests count on."""
    wb, wa = own_dir(UID_B, "b"), own_dir(UID_A, "a")
    shared = tempfile.mkdtemp(prefix="tern-jail-shared-")
    os.chmod(shared, 0o755)
    b_file = own_disk(os.path.join(shared, "b-private.img"), UID_B, mib=1)
    b = jailed(UID_B, wb, log_name="jail-b.log")
    a = None
    try:
        assert b.wait_for("count 2", 90), "VM B never counted: %r" % b
        bpid = ternlib.jailed_pid(b)
        arg = "open=%s,connect=%s,ptrace=%d,kill=%d,open=%s" % (
            os.path.join(wb, "disk.img"), os.path.join(wb, "api.sock"), bpid, bpid, b_file)
        a = jailed(UID_A, wa, ["--seccomp", "log", "--jail-bind", shared],
                   env={"TERN_TEST_FAULT": "jail-escape", "TERN_TEST_FAULT_ARG": arg},
                   log_name="jail-a.log")
        assert a.wait_for("count 2", 90), "VM A never counted: %r" % a
        want = ["open %s: No such file or directory" % os.path.join(wb, "disk.img"),
                "connect %s: No such file or directory" % os.path.join(wb, "api.sock"),
                "ptrace %d: No such process" % bpid,
                "kill %d: No such process" % bpid,
                "open %s: Permission denied" % b_file]
        for w in want:
            assert a.wait_for(w, 30, stream="err"), "VM A's try should end as %r: %r" % (w, a)
        for vm, name in ((a, "A"), (b, "B")):
            n = len(vm.out().splitlines())
            assert vm.wait_for("count %d" % (n + 2), 60), "VM %s stopped: %r" % (name, vm)
    finally:
        if a:
            a.stop()
        b.stop()


def test_killing_the_supervisor_ends_the_jailed_vm():
    """kill -9 of the process that was started: the jailed tern-vmm goes too."""
    work = own_dir(UID_A, "kill")
    v = jailed(UID_A, work, log_name="jail-kill.log")
    try:
        assert v.wait_for("count 2", 90), "the jailed guest never counted: %r" % v
        pid = ternlib.jailed_pid(v)
        v.proc.kill()
        v.wait(10)
        end = time.time() + 10
        while ternlib.pid_alive(pid) and time.time() < end:
            time.sleep(0.1)
        assert not ternlib.pid_alive(pid), "the jailed tern-vmm %d outlived its supervisor" % pid
    finally:
        v.stop()


def test_a_call_outside_its_list_ends_the_jailed_vm_by_sigsys():
    """The jailed tern-vmm is its PID namespace's init, which ignores the SIGSYS it raises
    at itself: it exits instead, and the supervisor ends by SIGSYS, as an unjailed tern-vmm
    would, its log naming the call and the thread."""
    work = own_dir(UID_A, "sigsys")
    v = jailed(UID_A, work, env={"TERN_TEST_FAULT": "vcpu-socket"}, log_name="jail-sigsys.log")
    try:
        st = v.wait(60)
        assert st == -signal.SIGSYS, "the jailed VM did not end by SIGSYS (%r): %r" % (st, v)
        assert "called socket (41)" in v.err() and "vcpu0 (vcpu list)" in v.err(), v
    finally:
        v.stop()


def test_a_call_outside_the_supervisors_list_is_named():
    """The supervisor (outside the jail, waiting for it) has a list of its own: a call off
    it ends the supervisor by SIGSYS, the jailed VM with it, and one line names the call's
    number, where a killed supervisor once ended the VM without a word."""
    work = own_dir(UID_A, "supsys")
    v = jailed(UID_A, work, env={"TERN_TEST_FAULT": "supervisor-socket"},
               log_name="jail-supervisor-sigsys.log")
    try:
        st = v.wait(60)
        assert st == -signal.SIGSYS, "the supervisor did not end by SIGSYS (%r): %r" % (st, v)
        assert "the jail's supervisor called system call 41," in v.err(), v
        assert "vcpu" not in v.err(), v
    finally:
        v.stop()


def test_post_copy_into_a_jailed_destination():
    """A jailed destination has no CAP_SYS_PTRACE, which userfaultfd(2) asks for to take
    KVM's faults: it gets its userfaultfd from the /dev/userfaultfd its jail holds, and the
    dirtier checks every word it pulled on arrival."""
    mig = ternlib.sibling(__file__, "test_migrate")
    work, src, c = mig.start_source("jailpc", cmdline="mib=32 static=8 gap=8")
    jw = own_dir(UID_A, "pc")
    path = os.path.join(jw, "incoming.sock")
    dst, dsock = mig.start_destination("jailpc", jw, "unix:" + path,
                                       extra=["--jail", "uid=%d,gid=%d" % (UID_A, UID_A)],
                                       wait_path=path)
    try:
        mig.migrate(c, {"destination": "unix:" + path, "bandwidth_mib_s": 16, "post_copy": True,
                        "max_rounds": 10, "downtime_limit_ms": 1}, "PUT /migrate post_copy", src)
        mig.expect_arrived(src, dst, dsock, "post-copy")
        assert "switching to post-copy" in src.err(), src
        assert dst.wait_for("post-copy complete", 60, stream="err"), dst
        threads = ternlib.thread_status(ternlib.jailed_pid(dst))
        assert threads and all(t["Uid"].split()[0] == str(UID_A) for t in threads.values()), \
            "the destination is not jailed: %r" % threads
    finally:
        src.stop()
        dst.stop()


def test_a_jailed_vm_restarts_inside_its_jail():
    """--on-reboot restart: tern-vmm executes itself again inside the jail (it is there,
    read-only, with its libraries) and the guest boots again, still jailed."""
    work = own_dir(UID_A, "restart")
    ternlib.need_kvm()
    v = api.Vmm(["--jail", "uid=%d,gid=%d" % (UID_A, UID_A), "--kernel", ternlib.guest_path("reset"),
                 "--on-reboot", "restart", "--api-sock", os.path.join(work, "api.sock")],
                log_name="jail-restart.log")
    try:
        assert v.wait_for("tiny: resetting through the i8042", 90, count=3), \
            "the guest did not boot again in the jail: %r" % v
        pid = ternlib.jailed_pid(v)
        st = {}
        for _ in range(50):  # a restart may be replacing the image just now
            st = ternlib.thread_status(pid)
            if st:
                break
            time.sleep(0.1)
        assert st and all(s["Uid"].split()[0] == str(UID_A) and ternlib.filtered(s) for s in st.values()), st
        assert v.err().count("jailed: uid") == 1, "the restart built a second jail: %r" % v
    finally:
        v.stop()


def test_bad_jail_options_are_refused():
    kernel = ternlib.guest_path("counter")
    cases = [
        (["--jail", "uid=0,gid=1000"], "uid='0'"),
        (["--jail", "uid=1000"], "gid= is required"),
        (["--jail", "uid=1000,gid=1000,nofile=10"], "nofile"),
        (["--jail", "uid=1000,gid=1000,netns=relative"], "netns"),
        (["--jail", "uid=1000,gid=1000,colour=blue"], "unknown key 'colour'"),
        (["--jail-bind", "/tmp"], "--jail-bind needs --jail"),
        (["--jail", "uid=1000,gid=1000", "--jail-bind", "/"], "whole host"),
        (["--jail", "uid=1000,gid=1000", "--jail-bind", "/dev/"], "host's whole /dev"),
    ]
    for extra, word in cases:
        r = ternlib.run_vmm(extra + ["--kernel", kernel], timeout=10)
        assert r.status == 2 and word in r.err, "%r: %r" % (extra, r)
    # Not root: the jail cannot be built, and tern-vmm says why before starting anything.
    r = subprocess.run(["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
                        ternlib.vmm_path(), "--jail", "uid=1000,gid=1000", "--kernel", kernel],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 1 and "--jail: needs root" in r.stderr, r
