"""A ternd for tests: its own state directory and cgroup, its API, and VM helpers."""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

import api
import ternlib


def tool(name):
    p = os.path.join(ternlib.BUILD, name)
    assert os.path.exists(p), "no %s: build it first (make)" % p
    return p


class Ternd:
    """ternd --foreground on a fresh state directory (or a given one), logging to
    tests/out/ternd-TAG.log; the VMs it leaves running are killed by close()."""

    def __init__(self, tag, state_dir=None, cgroup=None, extra=(), env=None, wrap=()):
        ternlib.need_kvm()
        self.tag = tag
        self.env = dict(os.environ, **(env or {}))  # ternd's, so its VMs' too
        self.dir = state_dir or tempfile.mkdtemp(prefix="ternd-%s-" % tag)
        self.cgroup = cgroup or "/tern-test-%s-%d" % (tag, os.getpid())
        self.extra = list(extra)
        self.wrap = list(wrap)  # a command ternd runs under (unshare ...), execing it
        self.proc = None
        self.log_path = os.path.join(ternlib.OUT, "ternd-%s.log" % tag)
        self.start()

    @property
    def sock(self):
        return os.path.join(self.dir, "ternd.sock")

    def start(self, timeout=20):
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen(self.wrap + [tool("ternd"), "--foreground", "--state-dir", self.dir,
                                      "--cgroup", self.cgroup, "--log-level", "debug"]
                                     + self.extra, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=self.env)
        assert api.wait_for_socket(self.sock, timeout, self.proc), \
            "ternd did not listen on %s (exit %r); log:\n%s" % (self.sock, self.proc.poll(),
                                                               self.log())
        self.api = api.ApiClient(self.sock, timeout=120)

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()[-4000:]

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)

    def call(self, method, path, body=None):
        return self.api.request(method, path, body)

    def ok(self, method, path, body=None, want=(200, 201, 204)):
        status, got = self.call(method, path, body)
        assert status in want, "%s %s: %d %r\nternd log:\n%s" % (method, path, status, got,
                                                                self.log())
        return got

    def define(self, name, kernel, **kw):
        d = dict(name=name, kernel=kernel, **kw)
        return self.ok("POST", "/vms", d)

    def vm(self, name):
        return self.ok("GET", "/vms/" + name)

    def state(self, name):
        v = self.vm(name)
        return v["state"], v["reason"]

    def wait_state(self, name, state, timeout=60):
        end = time.time() + timeout
        while time.time() < end:
            if self.state(name)[0] == state:
                return True
            time.sleep(0.2)
        return False

    def close(self):
        """Stops ternd, then every VM process it started (by the pid files), then the
        state directory and the test cgroup."""
        self.stop()
        vms = os.path.join(self.dir, "vms")
        for d in os.listdir(vms) if os.path.isdir(vms) else []:
            try:
                with open(os.path.join(vms, d, "pid")) as f:
                    pids = f.read().split()
                for pid in (pids[2], pids[0]):
                    os.kill(int(pid), signal.SIGKILL)
            except (OSError, IndexError, ValueError):
                pass
        time.sleep(0.2)
        shutil.rmtree(self.dir, ignore_errors=True)
        cg = "/sys/fs/cgroup" + self.cgroup
        for d in sorted((os.path.join(cg, x) for x in os.listdir(cg)) if os.path.isdir(cg) else [],
                        reverse=True):
            try:
                os.rmdir(d)
            except OSError:
                pass
        try:
            os.rmdir(cg)
        except OSError:
            pass


def console_log(t, name):
    """What the VM's console printed so far (its current log file)."""
    v = t.vm(name)
    try:
        with open(v["console_log"], errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def why_quiet(t, name, n=2000):
    """What a test prints for a VM whose guest said nothing it waited for: the tails of its
    console and of its monitor's log (tern-vmm's stderr), and its tern-vmm's threads, to
    tell a guest spinning or asleep in KVM_RUN from a tern-vmm blocked before it ran."""
    v = t.vm(name)
    mon = os.path.join(os.path.dirname(v["console_log"]), "monitor.log")
    try:
        with open(mon, errors="replace") as f:
            log = f.read()[-n:]
    except OSError as e:
        log = "(%s)" % e
    return "console %r; monitor.log %r; threads of pid %s: %s" % (
        console_log(t, name)[-n:], log, v.get("pid"),
        api.threads_of(v["pid"]) if v.get("pid") else "-")


def detail(t, name):
    d = t.vm(name)["detail"]
    return d if isinstance(d, dict) else json.loads(d) if d else {}
