"""tern-monitor: the pid file, the rotated console and vmm logs, console.sock (readers,
one writer, BUSY, a stuck reader cut off alone), the status file for each way PROGRAM
ends, life after its parent's death, bad usage; first with a fake PROGRAM
(fakevmm.py), then with tern-vmm and tiny guests."""
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lib"))
import ternlib  # noqa: E402

FAKE = os.path.join(HERE, "fakevmm.py")
TIMEOUT = 60  # seconds; everything here takes well under that, even in the lab


def monitor_path():
    return os.path.join(ternlib.BUILD, "tern-monitor")


def fake(*args):
    return [sys.executable, FAKE] + [str(a) for a in args]


def new_dir():
    # Short: DIR/console.sock must fit in a socket address.
    return tempfile.mkdtemp(prefix="tmon-")


def wait_for(pred, what, timeout=TIMEOUT):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out waiting for %s" % what)


def read(path, mode="r"):
    with open(path, mode) as f:
        return f.read()


class Monitor:
    """A tern-monitor on DIR running argv; its stderr is kept for messages."""

    def __init__(self, d, argv, extra=()):
        assert os.path.exists(monitor_path()), "no %s: build it first" % monitor_path()
        self.dir = d
        self.err_path = d + ".stderr"
        self.errf = open(self.err_path, "wb")
        self.p = subprocess.Popen([monitor_path(), "--dir", d] + list(extra) + ["--"] + argv,
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=self.errf)
        self.pids = wait_for(self.read_pids, "%s/pid" % d)

    def read_pids(self):
        try:
            f = read(os.path.join(self.dir, "pid")).split()
        except FileNotFoundError:
            if self.p.poll() is not None:
                raise AssertionError("tern-monitor exited %r before writing its pid file: %s"
                                     % (self.p.returncode, self.stderr()))
            return None
        return [int(x) for x in f]

    @property
    def vmm_pid(self):
        return self.pids[2]

    def stderr(self):
        return read(self.err_path)

    def wait(self, timeout=TIMEOUT):
        try:
            status = self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("tern-monitor did not end: %s" % self.stderr())
        return status

    def status(self):
        return json.loads(read(os.path.join(self.dir, "status")))

    def kill(self):
        for pid in (self.vmm_pid, self.p.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.p.wait()

    def close(self):
        if self.p.poll() is None:
            self.kill()
        self.errf.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        try:
            os.unlink(self.err_path)
        except FileNotFoundError:
            pass


class Client:
    """A console.sock client; what it receives collects in .buf."""

    def __init__(self, d, mode=None):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(os.path.join(d, "console.sock"))
        self.s.setblocking(False)
        self.buf = bytearray()
        self.eof = False
        self.reply = self.attach(mode) if mode else None

    def attach(self, mode):
        self.send(b"ATTACH %s\n" % mode.encode())
        return self.line()

    def send(self, data):
        self.s.setblocking(True)
        self.s.sendall(data)
        self.s.setblocking(False)

    def take(self):
        """Reads what is there now; False once at EOF."""
        try:
            chunk = self.s.recv(1 << 16)
        except BlockingIOError:
            return True
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def line(self, timeout=TIMEOUT):
        self.until(b"\n", timeout)
        line, rest = self.buf.split(b"\n", 1)
        self.buf = bytearray(rest)
        return line.decode()

    def until(self, want, timeout=TIMEOUT):
        pump([self], lambda: want in self.buf, timeout, "%r" % want)

    def to_eof(self, timeout=TIMEOUT):
        pump([self], lambda: self.eof, timeout, "EOF")

    def close(self):
        self.s.close()


def pump(clients, done, timeout, what):
    """Reads every client until done() holds."""
    deadline = time.time() + timeout
    while not done():
        left = deadline - time.time()
        live = [c for c in clients if not c.eof]
        if left <= 0 or not live:
            raise AssertionError("waiting for %s: %s" % (
                what, "; ".join("%r%s" % (c.buf[-300:], " EOF" if c.eof else "")
                                for c in clients)))
        for c in select.select([c.s for c in live], [], [], min(left, 0.5))[0]:
            next(x for x in live if x.s is c).take()


def attach_or_none(d, mode):
    c = Client(d)
    if c.attach(mode) == "OK":
        return c
    c.close()
    return None


def proc_start(pid):
    """Field 22 of /proc/PID/stat, counted after comm."""
    stat = read("/proc/%d/stat" % pid)
    return int(stat[stat.rindex(")") + 2:].split()[19])


# --- with a fake PROGRAM ----------------------------------------------------------------


def test_bad_usage():
    d = new_dir()
    try:
        cases = [
            ([], "--dir is required"),
            (["--dir"], "--dir needs a value"),
            (["--dir", d + "/missing", "--", "true"], "--dir: '%s/missing'" % d),
            (["--dir", d + "/file", "--", "true"], "--dir: '%s/file' is not a directory" % d),
            (["--dir", d, "--log-size", "4095", "--", "true"],
             "--log-size: '4095' is not a whole number of bytes from 4096 to 1073741824"),
            (["--dir", d, "--log-size", "1073741825", "--", "true"], "--log-size"),
            (["--dir", d, "--log-size", "1k", "--", "true"], "--log-size"),
            (["--dir", d, "--log-keep", "0", "--", "true"],
             "--log-keep: '0' is not a whole number from 1 to 100"),
            (["--dir", d, "--log-keep", "101", "--", "true"], "--log-keep"),
            (["--dir", d], "no PROGRAM"),
            (["--dir", d, "--"], "no PROGRAM"),
            (["--dir", d, "--frobnicate", "--", "true"], "unknown option '--frobnicate'"),
            (["--dir", d + "/" + "x" * 100, "--", "true"], "is too long"),
        ]
        open(d + "/file", "w").close()
        os.mkdir(d + "/" + "x" * 100)
        for args, want in cases:
            p = subprocess.run([monitor_path()] + args, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=TIMEOUT)
            err = p.stderr.decode()
            assert p.returncode == 2, "%r: exit %r, want 2: %s" % (args, p.returncode, err)
            assert err.startswith("tern-monitor: ") and err.count("\n") == 1, \
                "%r: want one line: %r" % (args, err)
            assert want in err, "%r: want %r in %r" % (args, want, err)
        assert sorted(os.listdir(d)) == sorted(["file", "x" * 100]), \
            "bad usage left files: %r" % os.listdir(d)
        p = subprocess.run([monitor_path(), "--help"], stdout=subprocess.PIPE, timeout=TIMEOUT)
        assert p.returncode == 0 and b"ATTACH rw" in p.stdout and b"--log-keep" in p.stdout
    finally:
        shutil.rmtree(d)


def test_pid_file():
    m = Monitor(new_dir(), fake("--tick", "1"))
    try:
        mpid, mstart, vpid, vstart = m.pids
        assert mpid == m.p.pid, (m.pids, m.p.pid)
        assert mstart == proc_start(mpid) and vstart == proc_start(vpid), m.pids
        ppid = int(read("/proc/%d/stat" % vpid).rsplit(")", 1)[1].split()[1])
        assert ppid == mpid, "PROGRAM's parent is %d, not the monitor %d" % (ppid, mpid)
        assert oct(os.stat(os.path.join(m.dir, "console.sock")).st_mode & 0o777) == "0o600"
        os.kill(vpid, signal.SIGTERM)
        assert m.wait() == 0
        assert not os.path.exists(os.path.join(m.dir, "console.sock"))
    finally:
        m.close()


def test_console_log_rotation():
    # 300 lines of 50 bytes = 15000 bytes: 4096-byte files, three kept.
    m = Monitor(new_dir(), fake("--lines", 300, "--stderr", "fake log line", "--exit", 0),
                extra=["--log-size", "4096", "--log-keep", "2"])
    try:
        assert m.wait() == 0, m.stderr()
        want = b"".join(b"line %04d %s\n" % (i, b"." * 40) for i in range(300))
        path = os.path.join(m.dir, "console.log")
        files = [read(path + ".2", "rb"), read(path + ".1", "rb"), read(path, "rb")]
        assert [len(f) for f in files] == [4096, 4096, len(want) - 3 * 4096], \
            [len(f) for f in files]
        assert not os.path.exists(path + ".3")
        assert want.endswith(b"".join(files)), "the logs are not the console's last bytes"
        assert read(os.path.join(m.dir, "vmm.log")) == "fake log line\n"
        st = m.status()
        assert st["console_tail"] == ["line %04d %s" % (i, "." * 40) for i in range(280, 300)], \
            st["console_tail"]
    finally:
        m.close()


def test_console_readers_and_writer():
    m = Monitor(new_dir(), fake())
    try:
        a, b, w = Client(m.dir, "ro"), Client(m.dir, "ro"), Client(m.dir, "rw")
        assert (a.reply, b.reply, w.reply) == ("OK", "OK", "OK")
        x = Client(m.dir)
        assert x.attach("rw") == "BUSY"
        x.to_eof()
        bad = Client(m.dir)
        bad.send(b"HELLO\n")
        assert bad.line().startswith("ERROR"), bad.buf
        bad.to_eof()
        a.send(b"echo from-a-reader\n")  # a reader's bytes go nowhere
        w.send(b"echo hello\n")
        for c in (a, b, w):
            c.until(b"echo: hello\n")
        w.send(b"echo again\n")
        for c in (a, b, w):
            c.until(b"echo: again\n")
            assert b"from-a-reader" not in c.buf, c.buf
        # The rw slot frees when its client leaves (as soon as the monitor has seen it go).
        w.close()
        y = wait_for(lambda: attach_or_none(m.dir, "rw"), "the rw slot to free")
        y.send(b"echo from y\n")
        for c in (a, b, y):
            c.until(b"echo: from y\n")
        # 16 clients at most: a, b and y, plus 13 more; the 17th is refused.
        more = [Client(m.dir, "ro") for _ in range(13)]
        assert all(c.reply == "OK" for c in more)
        extra = Client(m.dir)
        extra.until(b"BUSY\n")
        extra.to_eof()
        y.send(b"exit 0\n")
        for c in [a, b, y] + more:
            c.to_eof()
        assert m.wait() == 0
    finally:
        m.close()


def test_stuck_reader_does_not_stall_others():
    size = 2 * 1024 * 1024
    m = Monitor(new_dir(), fake())
    try:
        stuck, b, w = Client(m.dir, "ro"), Client(m.dir, "ro"), Client(m.dir, "rw")
        w.send(b"flood %d\n" % size)
        pump([b, w], lambda: b"flood done\n" in b.buf and b"flood done\n" in w.buf, TIMEOUT,
             "the flood to reach both readers")
        for c in (b, w):
            assert c.buf.count(b"f" * 99 + b"\n") == size // 100, len(c.buf)
        # The stuck one was cut off: it gets what was sent before, then EOF.
        stuck.to_eof()
        assert len(stuck.buf) < size, len(stuck.buf)
        assert "disconnected" in m.stderr(), m.stderr()
        assert "disconnected" in read(os.path.join(m.dir, "vmm.log"))
        w.send(b"echo still here\n")
        b.until(b"echo: still here\n")
        w.send(b"exit 0\n")
        assert m.wait() == 0
    finally:
        m.close()


def test_status_exit_0_with_status_vmm():
    d = new_dir()
    # What an earlier run left must not be taken for this one's end.
    with open(os.path.join(d, "status"), "w") as f:
        f.write("stale")
    m = Monitor(d, fake("--lines", 3, "--status-file", os.path.join(d, "status.vmm"),
                        "--reason", "poweroff", "--exit", 0))
    try:
        t0 = time.time()
        assert m.wait() == 0
        st = m.status()
        assert (st["exit_status"], st["signal"], st["reason"]) == (0, 0, "poweroff"), st
        assert st["message"] == "fake says poweroff", st
        assert t0 - 5 < st["ended_at"] <= time.time(), st
        assert st["console_tail"] == ["line %04d %s" % (i, "." * 40) for i in range(3)], st
        assert sorted(os.listdir(d)) == ["console.log", "pid", "status", "status.vmm",
                                         "vmm.log"], os.listdir(d)
    finally:
        m.close()


def test_status_exit_0_without_status_vmm():
    m = Monitor(new_dir(), fake("--exit", 0))
    try:
        assert m.wait() == 0
        st = m.status()
        assert (st["exit_status"], st["signal"], st["reason"]) == (0, 0, "error"), st
        assert "exited with status 0" in st["message"], st
    finally:
        m.close()


def test_status_exit_3():
    d = new_dir()
    with open(os.path.join(d, "status.vmm"), "w") as f:  # stale: removed at start
        json.dump({"reason": "reboot", "exit_status": 0, "message": "old"}, f)
    m = Monitor(d, fake("--stderr", "first\nfake: error: the last word", "--exit", 3))
    try:
        assert m.wait() == 0
        st = m.status()
        assert (st["exit_status"], st["signal"], st["reason"]) == (3, 0, "error"), st
        assert st["message"] == "fake: error: the last word", st
    finally:
        m.close()


def test_status_killed():
    m = Monitor(new_dir(), fake())
    try:
        w = Client(m.dir, "rw")
        w.send(b"echo before the end\n")
        w.until(b"echo: before the end\n")
        os.kill(m.vmm_pid, signal.SIGKILL)
        w.to_eof()
        assert m.wait() == 0
        st = m.status()
        assert (st["exit_status"], st["signal"], st["reason"]) == (137, 9, "killed"), st
        assert "signal 9" in st["message"], st
        assert st["console_tail"] == ["echo: before the end"], st
        assert not os.path.exists(os.path.join(m.dir, "console.sock"))
    finally:
        m.close()


def test_program_cannot_start():
    d = new_dir()
    try:
        p = subprocess.run([monitor_path(), "--dir", d, "--", d + "/no-such-program"],
                           stderr=subprocess.PIPE, timeout=TIMEOUT)
        assert p.returncode == 1, p
        st = json.loads(read(os.path.join(d, "status")))
        assert st["reason"] == "error" and "cannot run" in st["message"], st
        assert "No such file" in st["message"], st
        assert not os.path.exists(os.path.join(d, "console.sock"))
    finally:
        shutil.rmtree(d)


def test_console_sock_stale_replaced_live_refused():
    d = new_dir()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(os.path.join(d, "console.sock"))
    s.close()  # left behind, nobody listening: stale
    m = Monitor(d, fake())
    try:
        assert Client(d, "ro").reply == "OK"
        p = subprocess.run([monitor_path(), "--dir", d, "--"] + fake(),
                           stderr=subprocess.PIPE, timeout=TIMEOUT)
        assert p.returncode == 1 and b"another tern-monitor" in p.stderr, p
        assert not os.path.exists(os.path.join(d, "status")), "wrote the live run's status"
        assert Client(d, "ro").reply == "OK", "the live monitor lost its socket"
    finally:
        m.close()


def test_survives_parent_death():
    d = new_dir()
    # The intermediate starts the monitor in the background and exits at once.
    sh = subprocess.run(["sh", "-c", '"$@" >/dev/null 2>&1 </dev/null &', "sh", monitor_path(),
                         "--dir", d, "--"] + fake("--tick", "0.2"), timeout=TIMEOUT)
    assert sh.returncode == 0
    pids = None
    try:
        pids = wait_for(lambda: os.path.exists(os.path.join(d, "pid")) and
                        [int(x) for x in read(os.path.join(d, "pid")).split()], "the pid file")
        log = os.path.join(d, "console.log")
        wait_for(lambda: b"tick 2\n" in read(log, "rb"), "ticks in console.log")
        os.kill(pids[0], signal.SIGHUP)
        wait_for(lambda: b"tick 8\n" in read(log, "rb"), "ticks after its parent's death")
        assert ternlib.pid_alive(pids[0]) and ternlib.pid_alive(pids[2])
        r = Client(d, "ro")
        r.until(b"tick")
        os.kill(pids[2], signal.SIGTERM)
        r.to_eof()
        wait_for(lambda: not ternlib.pid_alive(pids[0]), "the monitor to end")
        st = json.loads(read(os.path.join(d, "status")))
        assert (st["reason"], st["signal"]) == ("killed", 15), st
    finally:
        for pid in (pids or [])[::2]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(d)


# --- with tern-vmm ------------------------------------------------------------------------


def vmm(guest, *extra, d):
    return [ternlib.vmm_path(), "--kernel", ternlib.guest_path(guest), "--debug-exit",
            "--status-file", os.path.join(d, "status.vmm")] + list(extra)


def test_vmm_bad_usage_writes_no_status_vmm():
    d = new_dir()
    m = Monitor(d, [ternlib.vmm_path(), "--kernel", d + "/no-kernel",
                    "--status-file", os.path.join(d, "status.vmm")])
    try:
        assert m.wait() == 0
        assert not os.path.exists(os.path.join(d, "status.vmm"))
        st = m.status()
        assert (st["exit_status"], st["reason"]) == (2, "error"), st
        assert "--kernel" in st["message"] and "no-kernel" in st["message"], st
        assert "--kernel" in read(os.path.join(d, "vmm.log"))
    finally:
        m.close()


def test_vmm_debug_exit():
    ternlib.need_kvm()
    d = new_dir()
    m = Monitor(d, vmm("hello", d=d))
    try:
        assert m.wait() == 0, m.stderr()
        st = m.status()
        assert (st["exit_status"], st["signal"], st["reason"]) == (0, 0, "debug-exit"), \
            (st, read(os.path.join(d, "vmm.log")))
        assert st["message"] == "guest wrote to the debug-exit port", st
        assert "hello from a tiny guest" in read(os.path.join(d, "console.log"))
        assert "hello from a tiny guest" in "\n".join(st["console_tail"]), st
        assert json.loads(read(os.path.join(d, "status.vmm")))["reason"] == "debug-exit"
        assert "guest wrote to the debug-exit port" in read(os.path.join(d, "vmm.log"))
    finally:
        m.close()


def test_vmm_reboot_and_crash():
    ternlib.need_kvm()
    for guest, reason, status, message in [("reset", "reboot", 0, "guest rebooted"),
                                           ("triple", "crash", 3, "guest crashed")]:
        d = new_dir()
        m = Monitor(d, vmm(guest, d=d))
        try:
            assert m.wait() == 0, m.stderr()
            st = m.status()
            assert (st["exit_status"], st["reason"], st["message"]) == \
                (status, reason, message), (st, read(os.path.join(d, "vmm.log")))
        finally:
            m.close()


def test_vmm_console_rw():
    ternlib.need_kvm()
    d = new_dir()
    m = Monitor(d, vmm("echo", d=d))
    try:
        w = Client(d, "rw")
        assert w.reply == "OK"
        # The guest may have said it before the client came: the log has it either way.
        wait_for(lambda: "waiting for input" in read(os.path.join(d, "console.log")),
                 "the echo guest to wait")
        w.send(b"hi\n")
        w.until(b"tiny: got 68 69 a")
        w.to_eof()
        assert m.wait() == 0
        st = m.status()
        assert (st["exit_status"], st["reason"]) == (0, "debug-exit"), st
        assert "tiny: got 68 69 a" in st["console_tail"], st
    finally:
        m.close()


def test_vmm_counter_attach():
    ternlib.need_kvm()
    d = new_dir()
    m = Monitor(d, vmm("counter", "--cmdline", "console=ttyS0 every=100000", d=d))
    try:
        w, r = Client(d, "rw"), Client(d, "ro")
        assert (w.reply, r.reply) == ("OK", "OK")
        assert Client(d).attach("rw") == "BUSY"
        pump([w, r], lambda: w.buf.count(b"count ") >= 3 and r.buf.count(b"count ") >= 3,
             TIMEOUT, "count lines on both clients")
        w.send(b"typed at the counter\n")  # the guest ignores it; the VM goes on
        n = r.buf.count(b"count ")
        pump([w, r], lambda: r.buf.count(b"count ") >= n + 3, TIMEOUT, "more count lines")
        os.kill(m.vmm_pid, signal.SIGTERM)
        assert m.wait() == 0
        st = m.status()
        assert (st["reason"], st["signal"], st["exit_status"]) == ("killed", 15, 143), st
        # SIGTERM can land mid-line: the last line may be a cut-off "count N".
        last = st["console_tail"][-1] if st["console_tail"] else ""
        assert last.startswith("count ") or (last and "count ".startswith(last)), st
        assert any(l.startswith("count ") for l in st["console_tail"]), st
        assert "count " in read(os.path.join(d, "console.log"))
    finally:
        m.close()
