"""Helpers shared by tern's Python tests: paths, running tern-vmm, skipping.

A test skips (raises Skip) only for a CPU feature or behaviour it needs and the CPU
lacks; anything else missing is a failure: a test that cannot run tests nothing."""
import importlib.util
import os
import sys
import socket
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.path.normpath(os.path.join(ROOT, "..", "shared"))
BUILD = os.environ.get("TERN_BUILD", os.path.join(ROOT, "build"))
GUEST_BUILD = os.path.join(ROOT, "build", "guest")
OUT = os.path.join(ROOT, "tests", "out")


class Skip(Exception):
    """Raised by a test that needs what this CPU lacks; the runner counts it as skipped
    and lists it, with the reason, in its closing lines."""


class Missing(AssertionError):
    """Raised by a test that cannot run for want of something other than a CPU feature
    (a package, root, a module): a failure, whose message says what is missing."""


def vmm_path():
    return os.path.join(BUILD, "tern-vmm")


def guest_path(name):
    """Path of a tiny test guest built by guest/Makefile."""
    return os.path.join(GUEST_BUILD, name + ".elf")


class Result:
    def __init__(self, status, out, err, timed_out):
        self.status = status
        self.out = out
        self.err = err
        self.timed_out = timed_out

    def __repr__(self):
        return "status=%r timed_out=%r\n--- stdout (tail)\n%s\n--- stderr (tail)\n%s" % (
            self.status, self.timed_out, self.out[-3000:], self.err[-3000:])


def run_vmm(args, timeout=60, stdin_data=b"", env=None):
    """Runs tern-vmm with args; returns a Result with decoded stdout/stderr."""
    try:
        p = subprocess.run([vmm_path()] + list(args), input=stdin_data,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout, env=env)
        return Result(p.returncode, p.stdout.decode(errors="replace"),
                      p.stderr.decode(errors="replace"), False)
    except subprocess.TimeoutExpired as e:
        return Result(None, (e.stdout or b"").decode(errors="replace"),
                      (e.stderr or b"").decode(errors="replace"), True)


def run_guest(name, extra=(), timeout=60, cmdline=None, env=None):
    """Runs a tiny guest with the test-only debug-exit port enabled."""
    args = ["--kernel", guest_path(name), "--debug-exit"] + list(extra)
    if cmdline is not None:
        args += ["--cmdline", cmdline]
    return run_vmm(args, timeout=timeout, env=env)


def kvm_available():
    return os.access("/dev/kvm", os.R_OK | os.W_OK)


def need_kvm():
    """A KVM test that cannot reach /dev/kvm fails: scripts/test runs it in the lab."""
    assert kvm_available(), ("cannot open /dev/kvm read-write: run KVM tests with "
                             "scripts/test or tests/run, which run them in the lab (tests/lab)")


def software_kvm():
    """True on the emulating software KVM backend (see ../shared/SOFTWARE-KVM.md)."""
    return os.path.exists("/sys/module/kvm_pvm")


def cpu_model():
    """The CPU's model name from /proc/cpuinfo."""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return ""


def cpu_is_qemu_tcg():
    """True on QEMU's emulated CPU (the lab's): it skips a few architectural checks
    that Intel's and AMD's manuals require of hardware (see tests/guest/tiny.py)."""
    return cpu_model().startswith("QEMU TCG CPU")


def sibling(test_file, name):
    """The test module name.py beside test_file (a caller's __file__), loaded under a name of
    its own: tiers have modules of the same name (guest/ and daemon/ test_migrate), and a
    plain import would get whichever one the run imported first."""
    d = os.path.dirname(os.path.abspath(test_file))
    key = "sibling_%s_%s" % (os.path.basename(d), name)
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, os.path.join(d, name + ".py"))
        mod = importlib.util.module_from_spec(spec)
        sys.modules[key] = mod
        spec.loader.exec_module(mod)
    return sys.modules[key]


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def pid_alive(pid):
    """Whether pid runs: a zombie, or a process gone (even while /proc is read), does not."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat[stat.rindex(")") + 2] != "Z"


PF_IO_WORKER = 0x10  # include/linux/sched.h: a kernel thread io_uring made for a process


def thread_status(pid):
    """{tid: {field: value}} of /proc/PID/task/TID/status for every thread of pid, with
    "IoWorker" true for io_uring's kernel workers (iou-wrk-*); a thread that ends meanwhile
    (or an image being replaced by an exec) is left out."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
                st = dict(l.rstrip("\n").split(":\t", 1) for l in f if ":\t" in l)
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                flags = int(f.read().rsplit(")", 1)[1].split()[6])
        except (FileNotFoundError, ProcessLookupError):
            continue
        st["IoWorker"] = bool(flags & PF_IO_WORKER)
        out[int(tid)] = st
    return out


def filtered(st):
    """Whether a thread of thread_status() is inside tern's seccomp filter. io_uring's
    workers run no user code (seccomp would never see a call from them) and carry the
    filter their creator had when the first was made, none if that was before tern-vmm
    entered its own; what limits them is the ring's list of operations (disk_uring.c)."""
    return st["Seccomp"] == "2" or st["IoWorker"]


def jailed_pid(vmm, timeout=30):
    """The jailed tern-vmm of a `tern-vmm --jail` (tests/lib/api.py's Vmm): the child of the
    supervisor that was started."""
    end = time.time() + timeout
    while time.time() < end:
        try:
            with open("/proc/%d/task/%d/children" % (vmm.pid, vmm.pid)) as f:
                kids = f.read().split()
            if kids:
                return int(kids[0])
        except FileNotFoundError:
            pass
        assert vmm.proc.poll() is None, "tern-vmm ended: %r" % vmm
        time.sleep(0.1)
    raise AssertionError("no jailed process under %d: %r" % (vmm.pid, vmm))
