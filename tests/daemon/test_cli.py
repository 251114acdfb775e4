"""tern, the CLI of ternd (docs/ternd.md), against a real ternd in a scratch state directory.

No VM runs here, so no test needs /dev/kvm: ternd gets /bin/false as its tern-vmm, so the
one start these tests ask for (create's all-or-nothing) fails at once, as it would on a
host without KVM. Each test has a ternd of its own (it starts in a fraction of a second).
"""
import json
import os
import pty
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import termios
import threading
import time

import ternlib

TERN = os.path.join(ternlib.BUILD, "tern")
TERND = os.path.join(ternlib.BUILD, "ternd")
MONITOR = os.path.join(ternlib.BUILD, "tern-monitor")
COMPLETION = os.path.join(ternlib.ROOT, "contrib", "bash-completion", "tern")


class Ternd:
    """ternd --foreground on a fresh state directory; a context manager that stops it
    (SIGTERM to the pid it started) and removes the directory."""

    def __init__(self):
        for p in (TERN, TERND, MONITOR):
            if not os.access(p, os.X_OK):
                raise ternlib.Missing("%s is not built (make build/tern build/ternd "
                                      "build/tern-monitor)" % p)
        self.dir = tempfile.mkdtemp(prefix="tern-cli-")
        self.kernel = os.path.join(self.dir, "vmlinux")  # ternd only checks it is readable
        with open(self.kernel, "w") as f:
            f.write("not a kernel\n")
        self.log = open(os.path.join(self.dir, "ternd.out"), "w+")
        self.proc = subprocess.Popen(
            [TERND, "--foreground", "--state-dir", self.dir, "--cgroup", "none",
             "--vmm", "/bin/false", "--monitor", MONITOR],
            stdout=self.log, stderr=subprocess.STDOUT)
        sock = os.path.join(self.dir, "ternd.sock")
        deadline = time.time() + 10
        while True:
            if self.proc.poll() is not None:
                raise AssertionError("ternd exited with %s:\n%s" % (self.proc.returncode,
                                                                    self.output()))
            try:
                s = socket.socket(socket.AF_UNIX)
                s.connect(sock)
                s.close()
                break
            except OSError:
                if time.time() > deadline:
                    raise AssertionError("ternd did not serve %s within 10 s:\n%s" % (
                        sock, self.output()))
                time.sleep(0.05)

    def output(self):
        self.log.seek(0)
        return self.log.read()

    def tern(self, *args, stdin=None, env=None, check=None, timeout=30):
        """Runs tern --state-dir DIR ARGS; check: the exit status it must have."""
        return run_tern(["--state-dir", self.dir] + list(args), stdin=stdin, env=env,
                        check=check, timeout=timeout)

    def file(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def definition(self, name="web", **fields):
        d = {"name": name, "kernel": self.kernel}
        d.update(fields)
        return d

    def define(self, name="web", **fields):
        path = self.file(name + ".json", json.dumps(self.definition(name, **fields)))
        return self.tern("define", path, check=0)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class Run:
    def __init__(self, args, status, out, err):
        self.args, self.status, self.out, self.err = args, status, out, err

    def __repr__(self):
        return "tern %s -> %r\n--- stdout\n%s--- stderr\n%s" % (
            " ".join(self.args), self.status, self.out[-3000:], self.err[-3000:])


def run_tern(args, stdin=None, env=None, check=None, timeout=30):
    e = dict(os.environ)
    e.pop("TERN_SOCKET", None)
    e.update(env or {})
    p = subprocess.run([TERN] + list(args), input=stdin, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, env=e, timeout=timeout, text=True)
    r = Run(list(args), p.returncode, p.stdout, p.stderr)
    if check is not None:
        assert r.status == check, "expected exit status %d: %r" % (check, r)
    return r


def one_error_line(r, *words):
    """stderr is one "tern: ..." line that has every word."""
    lines = r.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("tern: "), r
    for w in words:
        assert w in lines[0], "%r lacks %r: %r" % (lines[0], w, r)


def table(text):
    """A table's rows as lists of cells (cells are split at two or more blanks)."""
    return [re.split(r"\s{2,}", line.strip()) for line in text.splitlines() if line.strip()]


def test_define_from_file_and_stdin():
    with Ternd() as t:
        r = t.define("web", vcpus=2, memory_mib=512)
        assert r.out.startswith("Defined web (uuid "), r
        d = t.definition("db")
        r = t.tern("define", "-", stdin=json.dumps(d), check=0)
        assert "Defined db" in r.out, r
        r = t.tern("--json", "define", "-", stdin=json.dumps(t.definition("cache")), check=0)
        stored = json.loads(r.out)
        assert stored["name"] == "cache" and stored["vcpus"] == 1 and len(stored["uuid"]) == 36
        names = [v["name"] for v in json.loads(t.tern("list", "--all", "--json", check=0).out)]
        assert names == ["cache", "db", "web"], names
        r = t.tern("define", os.path.join(t.dir, "absent.json"), check=2)
        one_error_line(r, "absent.json", "No such file")


def test_create_no_start():
    with Ternd() as t:
        disk = t.file("root.img", "")
        r = t.tern("create", "web", "--kernel", t.kernel, "--memory", "1024", "--cpus", "2",
                   "--huge-pages", "none",
                   "--disk", disk + ",readonly,id=root", "--disk", disk + ",cache=none",
                   "--nic", "user,mac=52:54:00:00:00:01,hostfwd=tcp::2222-:22",
                   "--vsock-cid", "7", "--rng", "--on-crash", "restart", "--no-start", check=0)
        assert r.out.startswith("Defined web"), r
        d = json.loads(t.tern("dumpconfig", "web", check=0).out)
        assert d["memory_mib"] == 1024 and d["vcpus"] == 2 and d["rng"] is True, d
        assert d["huge_pages"] == "none", d
        assert d["disks"] == [
            {"path": disk, "readonly": True, "id": "root", "cache": "writeback", "format": "auto"},
            {"path": disk, "readonly": False, "cache": "none", "format": "auto"}], d["disks"]
        assert d["nics"] == [{"type": "user", "mac": "52:54:00:00:00:01",
                              "hostfwd": ["tcp::2222-:22"]}], d["nics"]
        assert d["vsock"] == {"cid": 7} and d["on_crash"] == "restart", d


def test_create_relative_paths():
    with Ternd() as t:
        p = subprocess.run([TERN, "--state-dir", t.dir, "create", "rel", "--kernel", "vmlinux",
                            "--disk", "vmlinux,readonly", "--no-start", "--json"],
                           cwd=t.dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=30)
        assert p.returncode == 0, p.stderr
        d = json.loads(p.stdout)
        assert d["kernel"] == t.kernel and d["disks"][0]["path"] == t.kernel, d


def test_create_failed_start_leaves_nothing():
    with Ternd() as t:
        r = t.tern("create", "web", "--kernel", t.kernel, check=1)
        one_error_line(r, "web", "undefined again")
        assert json.loads(t.tern("list", "--all", "--json", check=0).out) == []
        assert t.tern("info", "web").status == 1


def test_list_table_and_json():
    with Ternd() as t:
        t.define("web")
        t.define("db", autostart=True)
        # Like virsh: without --all only running and paused VMs.
        r = t.tern("list", check=0)
        assert table(r.out) == [["NAME", "STATE", "REASON", "AUTOSTART"]], r
        r = t.tern("list", "--all", check=0)
        assert table(r.out) == [["NAME", "STATE", "REASON", "AUTOSTART"],
                                ["db", "shut off", "never", "yes"],
                                ["web", "shut off", "never", "no"]], r
        assert all(line == line.rstrip() for line in r.out.splitlines()), r
        for args in (["--json", "list", "--all"], ["list", "--all", "--json"]):
            vms = json.loads(t.tern(*args, check=0).out)
            assert [v["name"] for v in vms] == ["db", "web"], vms
            assert vms[0]["state"] == "shut off" and vms[0]["autostart"] is True, vms
        assert json.loads(t.tern("list", "--json", check=0).out) == []


def test_info():
    with Ternd() as t:
        t.define("web", vcpus=3, memory_mib=768)
        r = t.tern("info", "web", check=0)
        fields = dict(line.split(":", 1) for line in r.out.splitlines() if ":" in line)
        fields = {k.strip(): v.strip() for k, v in fields.items()}
        assert fields["Name"] == "web" and fields["State"] == "shut off (never)", r
        assert fields["vCPUs"] == "3" and fields["Memory"] == "768 MiB", r
        assert fields["Autostart"] == "no" and fields["Console log"].endswith("console.log"), r
        info = json.loads(t.tern("info", "web", "--json", check=0).out)
        assert info["definition"]["vcpus"] == 3 and info["state"] == "shut off", info
        # The uuid names the VM too.
        r = t.tern("info", info["uuid"], check=0)
        assert r.out.splitlines()[0].split() == ["Name:", "web"], r


def test_dumpconfig_round_trip():
    with Ternd() as t:
        t.define("web", vcpus=2, nics=[{"type": "user"}], cmdline="console=ttyS0 quiet")
        before = t.tern("dumpconfig", "web", check=0).out
        path = t.file("dumped.json", before)
        t.tern("undefine", "web", check=0)
        t.tern("define", path, check=0)
        after = t.tern("dumpconfig", "web", check=0).out
        assert json.loads(before) == json.loads(after), (before, after)
        # The generated MAC and the uuid survive the trip.
        assert json.loads(after)["nics"][0]["mac"] == json.loads(before)["nics"][0]["mac"]


def test_duplicate_name():
    with Ternd() as t:
        t.define("web")
        path = t.file("again.json", json.dumps(t.definition("web")))
        r = t.tern("define", path, check=1)
        one_error_line(r, "web", "exists already")
        r = t.tern("create", "web", "--kernel", t.kernel, "--no-start", check=1)
        one_error_line(r, "exists already")


def test_malformed_fields():
    with Ternd() as t:
        cases = [
            ({"vcpus": 0}, "vcpus"),
            ({"vcpus": 255}, "vcpus"),
            ({"memory_mib": 8}, "memory_mib"),
            ({"name": "-bad"}, "name"),
            ({"name": "x" * 64}, "name"),
            ({"kernel": "vmlinux"}, "kernel"),
            ({"kernel": "/nonexistent/vmlinux"}, "kernel"),
            ({"initrd": "/nonexistent/initrd"}, "initrd"),
            ({"cmdline": "x" * 5000}, "cmdline"),
            ({"uuid": "not-a-uuid"}, "uuid"),
            ({"disks": [{"path": "relative.img"}]}, "disks[0]"),
            ({"disks": [{"path": "/nonexistent.img"}]}, "disks[0]"),
            ({"disks": [{"path": "/dev/null", "cache": "fast"}]}, "cache"),
            ({"nics": [{"type": "tap"}]}, "type"),
            ({"nics": [{"type": "user", "mac": "01:00:00:00:00:00"}]}, "mac"),
            ({"nics": [{"type": "user", "hostfwd": ["udp::1-:2"]}]}, "hostfwd"),
            ({"nics": [{"type": "bridge"}]}, "bridge"),
            ({"vsock": {"cid": 2}}, "cid"),
            ({"on_crash": "reboot"}, "on_crash"),
            ({"rng": "yes"}, "rng"),
            ({"frobnicate": 1}, "frobnicate"),
        ]
        for fields, word in cases:
            d = t.definition("bad")
            d.update(fields)
            path = t.file("bad.json", json.dumps(d))
            r = t.tern("define", path)
            assert r.status == 2, (fields, r)
            one_error_line(r, word)
        r = t.tern("define", t.file("junk.json", "{not json"), check=2)
        one_error_line(r)
        assert json.loads(t.tern("list", "--all", "--json", check=0).out) == []


def test_create_usage_errors():
    with Ternd() as t:
        k = ["--kernel", t.kernel, "--no-start"]
        cases = [
            (["create", "web", "--memory", "8"] + k, "--memory", "16 to 1048576"),
            (["create", "web", "--cpus", "0"] + k, "--cpus", "1 to 254"),
            (["create", "web", "--huge-pages", "4k"] + k, "--huge-pages", "transparent, none or 2M"),
            (["create", "web", "--memory", "65", "--huge-pages", "2M"] + k, "memory_mib",
             "2 MiB pages"),
            (["create", "web", "--vsock-cid", "1"] + k, "--vsock-cid", "3 to 4294967294"),
            (["create", "web", "--disk", "/a,cache=fast"] + k, "--disk", "none or writeback"),
            (["create", "web", "--disk", "/a,ro"] + k, "--disk", "PATH[,readonly]"),
            (["create", "web", "--nic", "tap=tap0"] + k, "--nic", "user or bridge=NAME"),
            (["create", "web", "--nic", "user,hostfwd=tcp::99999-:22"] + k, "hostfwd=",
             "1 to 65535"),
            (["create", "web", "--on-reboot", "exit"] + k, "--on-reboot", "destroy or restart"),
            (["create", "web", "--no-start"], "--kernel", "required"),
            (["create", "--kernel", t.kernel], "NAME", "missing"),
        ]
        for args, w1, w2 in cases:
            r = t.tern(*args)
            assert r.status == 2, r
            one_error_line(r, w1, w2)
        assert json.loads(t.tern("list", "--all", "--json", check=0).out) == []


def test_undefine():
    with Ternd() as t:
        disk = t.file("data.img", "x")
        t.define("web", disks=[{"path": disk}])
        t.define("db", disks=[{"path": disk}])
        r = t.tern("undefine", "web", check=0)
        assert r.out.strip() == "Undefined web", r
        assert t.tern("info", "web").status == 1
        assert os.path.exists(disk)
        t.tern("undefine", "db", "--remove-storage", check=0)
        assert not os.path.exists(disk)
        assert json.loads(t.tern("list", "--all", "--json", check=0).out) == []


def test_unknown_vm():
    with Ternd() as t:
        for args in (["info", "nope"], ["dumpconfig", "nope"], ["start", "nope"],
                     ["shutdown", "nope"], ["destroy", "nope"], ["undefine", "nope"],
                     ["autostart", "nope"], ["edit", "nope"], ["console", "nope"],
                     ["console", "--log", "nope"], ["save", "nope"]):
            r = t.tern(*args)
            assert r.status == 1, r
            one_error_line(r, "no VM named nope")


def test_wrong_state():
    with Ternd() as t:
        t.define("web")
        for op in ("shutdown", "suspend", "resume", "save", "reboot"):
            r = t.tern(op, "web")
            assert r.status == 1, r
            one_error_line(r, "web", "shut off")
        r = t.tern("console", "web", check=1)
        one_error_line(r, "web is shut off", "--log")


def test_no_ternd():
    empty = tempfile.mkdtemp(prefix="tern-cli-none-")
    try:
        for args in (["list"], ["info", "web"], ["events"], ["start", "web"]):
            r = run_tern(["--state-dir", empty] + args)
            assert r.status == 3, r
            one_error_line(r, "ternd.sock", "is ternd running?")
        r = run_tern(["--socket", os.path.join(empty, "x.sock"), "list"], check=3)
        one_error_line(r, "x.sock")
        r = run_tern(["list"], env={"TERN_SOCKET": os.path.join(empty, "env.sock")}, check=3)
        one_error_line(r, "env.sock")
        # A socket nobody listens on: refused.
        path = os.path.join(empty, "ternd.sock")
        s = socket.socket(socket.AF_UNIX)
        s.bind(path)
        s.close()
        r = run_tern(["--state-dir", empty, "list"], check=3)
        one_error_line(r, "refused")
    finally:
        shutil.rmtree(empty, ignore_errors=True)


def test_bad_usage():
    d = tempfile.mkdtemp(prefix="tern-cli-usage-")  # nothing reaches ternd: none is needed
    try:
        cases = [
            ([], "no command"),
            (["frobnicate"], "unknown command 'frobnicate'"),
            (["--frob", "list"], "unknown option '--frob'"),
            (["list", "--frob"], "list: unknown option '--frob'"),
            (["list", "extra"], "unexpected argument 'extra'"),
            (["info"], "missing operand"),
            (["info", "a", "b"], "unexpected argument 'b'"),
            (["info", "bad/name"], "not a VM name"),
            (["shutdown", "web", "--timeout", "soon"], "--timeout", ),
            (["shutdown", "web", "--timeout", "86401"], "0 to 86400 seconds"),
            (["events", "--since", "-1"], "--since"),
            (["--socket", "/x", "--state-dir", "/y", "list"], "--socket and --state-dir"),
            (["help", "frob"], "no command 'frob'"),
            (["edit", "--json", "web"], "unknown option '--json'"),
        ]
        for case in cases:
            args, words = case[0], case[1:]
            r = run_tern((["--state-dir", d] if "--socket" not in args else []) + args)
            assert r.status == 2, r
            one_error_line(r, *words)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_help_and_version():
    r = run_tern(["help"], check=0)
    for w in ("usage: tern", "create", "console", "events", "Exit status", "3  ternd is not"):
        assert w in r.out, (w, r)
    for args in (["help", "create"], ["create", "--help"], ["--state-dir", "/nonexistent",
                                                              "create", "--help"]):
        r = run_tern(args, check=0)
        assert "usage: tern create NAME --kernel FILE" in r.out and "Example:" in r.out, r
    r = run_tern(["info", "--help"], check=0)
    assert "--json" in r.out, r
    r = run_tern(["--version"], check=0)
    assert r.out.startswith("tern "), r


def test_events_after_define():
    with Ternd() as t:
        t.define("web")
        r = t.tern("events", check=0)
        lines = r.out.splitlines()
        assert len(lines) == 1 and "  web  defined  added  #" in lines[0], r
        doc = json.loads(t.tern("events", "--json", check=0).out)
        ev = doc["events"]
        assert [(e["name"], e["state"], e["reason"]) for e in ev] == [("web", "defined", "added")]
        last = doc["last"]
        assert t.tern("events", "--since", str(last), check=0).out == ""
        # --follow prints what comes next, as it comes.
        p = subprocess.Popen([TERN, "--state-dir", t.dir, "events", "--follow", "--json"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            time.sleep(0.3)  # let it reach its long poll
            t.define("db")
            t.tern("undefine", "db", check=0)
            buf = b""
            deadline = time.time() + 10
            while buf.count(b"\n") < 2 and time.time() < deadline:
                ready, _, _ = select.select([p.stdout], [], [], 0.5)
                if ready:
                    buf += os.read(p.stdout.fileno(), 65536)  # not readline: select sees the fd
            got = [json.loads(line) for line in buf.decode().splitlines()]
            assert [(e["name"], e["state"]) for e in got] == [("db", "defined"),
                                                               ("db", "undefined")], got
            assert got[0]["id"] > last
        finally:
            p.terminate()
            p.wait(timeout=10)


def test_autostart():
    with Ternd() as t:
        t.define("web")
        r = t.tern("autostart", "web", check=0)
        assert "enabled" in r.out, r
        assert json.loads(t.tern("dumpconfig", "web", check=0).out)["autostart"] is True
        r = t.tern("autostart", "web", check=0)
        assert "already" in r.out, r
        t.tern("autostart", "web", "--disable", check=0)
        assert table(t.tern("list", "--all", check=0).out)[1][3] == "no"


def test_edit_without_terminal():
    with Ternd() as t:
        t.define("web", memory_mib=256)
        good = t.file("good-editor", "#!/bin/sh\nsed -i 's/\"memory_mib\": 256/\"memory_mib\": 640/' \"$1\"\n")
        bad = t.file("bad-editor", "#!/bin/sh\nsed -i 's/\"vcpus\": 1/\"vcpus\": 0/' \"$1\"\n")
        for p in (good, bad):
            os.chmod(p, 0o755)
        r = t.tern("edit", "web", env={"EDITOR": "true", "VISUAL": ""}, check=0)
        assert "unchanged" in r.out, r
        r = t.tern("edit", "web", env={"VISUAL": good}, check=0)
        assert "updated" in r.out, r
        assert json.loads(t.tern("dumpconfig", "web", check=0).out)["memory_mib"] == 640
        # Refused by ternd and no terminal to ask on: status 2 at once, nothing stored.
        r = t.tern("edit", "web", env={"VISUAL": bad}, stdin="", check=2)
        one_error_line(r, "vcpus")
        assert json.loads(t.tern("dumpconfig", "web", check=0).out)["vcpus"] == 1
        r = t.tern("edit", "web", env={"VISUAL": "false"}, check=1)
        one_error_line(r, "editor", "nothing sent")
        assert not [f for f in os.listdir(tempfile.gettempdir()) if f.startswith("tern-web-")]


def test_edit_reopens_on_a_terminal():
    """On a 400 with a terminal, the error is shown and the same file opens again."""
    with Ternd() as t:
        t.define("web")
        count = os.path.join(t.dir, "editor-runs")
        # First run: an invalid vcpus; second: a valid one (the file still has the first edit).
        editor = t.file("editor", "#!/bin/sh\necho x >> %s\n"
                        "if [ $(wc -l < %s) -eq 1 ]; then sed -i 's/\"vcpus\": 1/\"vcpus\": 0/' \"$1\";\n"
                        "else sed -i 's/\"vcpus\": 0/\"vcpus\": 4/' \"$1\"; fi\n" % (count, count))
        os.chmod(editor, 0o755)
        pid, fd = pty.fork()
        if pid == 0:
            env = dict(os.environ, VISUAL=editor)
            env.pop("TERN_SOCKET", None)
            os.execve(TERN, [TERN, "--state-dir", t.dir, "edit", "web"], env)
        out = b""
        answered = False
        deadline = time.time() + 20
        while time.time() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
            if not answered and b"Edit again?" in out:
                os.write(fd, b"y\n")
                answered = True
        _, status = os.waitpid(pid, 0)
        os.close(fd)
        text = out.decode(errors="replace")
        assert os.WEXITSTATUS(status) == 0, text
        assert "vcpus" in text and answered and "updated" in text, text
        assert json.loads(t.tern("dumpconfig", "web", check=0).out)["vcpus"] == 4


def test_console_log():
    with Ternd() as t:
        t.define("web")
        info = json.loads(t.tern("info", "web", "--json", check=0).out)
        r = t.tern("console", "web", "--log", check=1)
        one_error_line(r, "no console log yet")
        log = info["console_log"]
        os.makedirs(os.path.dirname(log), exist_ok=True)
        for suffix, text in ((".2", "oldest\n"), (".1", "older\n"), ("", "newest\n")):
            with open(log + suffix, "w") as f:
                f.write(text)
        r = t.tern("console", "--log", "web", check=0)
        assert r.out == "oldest\nolder\nnewest\n", r


def test_readonly_socket():
    with Ternd() as t:
        t.define("web")
        ro = os.path.join(t.dir, "ternd-ro.sock")
        r = run_tern(["--socket", ro, "list", "--all"], check=0)
        assert "web" in r.out, r
        r = run_tern(["--socket", ro, "undefine", "web"], check=1)
        one_error_line(r, "read-only")
        # A user ternd.sock refuses (mode 0600 without a group tern) reads through
        # ternd-ro.sock and is told why a change is refused. Needs root to be another user.
        if os.geteuid() == 0 and shutil.which("setpriv"):
            os.chmod(t.dir, 0o755)
            nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", TERN,
                      "--state-dir", t.dir]
            p = subprocess.run(nobody + ["list", "--all"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, timeout=30)
            assert p.returncode == 0 and "web" in p.stdout, (p.stdout, p.stderr)
            p = subprocess.run(nobody + ["undefine", "web"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, timeout=30)
            assert p.returncode == 3 and "group tern" in p.stderr, (p.stdout, p.stderr)


def test_bash_completion():
    with Ternd() as t:
        t.define("web")
        t.define("db")
        script = ('source %s\n'
                  'c() { COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _tern; echo "${COMPREPLY[*]}"; }\n'
                  'c tern st\n'
                  'c tern --state-dir %s info ""\n'
                  'c tern --state-dir %s create web --on-crash ""\n'
                  'c tern --state-dir %s shutdown --t\n'
                  'c tern snapshot ""\n'
                  'c tern --state-dir %s snapshot revert ""\n'
                  'c tern clone --c\n'
                  'c tern migrate --a\n'
                  'c tern --state-dir %s migrate web ""\n'
                  'c tern --state-dir %s migrate ""\n'
                  'c tern img ""\n'
                  'c tern img create a.qcow2 --format ""\n'
                  % (COMPLETION, t.dir, t.dir, t.dir, t.dir, t.dir, t.dir))
        env = dict(os.environ, PATH=ternlib.BUILD + ":" + os.environ.get("PATH", ""))
        env.pop("TERN_SOCKET", None)
        p = subprocess.run(["bash", "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, env=env, timeout=30)
        assert p.returncode == 0, p.stderr
        assert p.stdout.splitlines() == ["start stats", "db web", "destroy restart", "--timeout",
                                         "create list revert delete", "db web", "--copy",
                                         "--auto-converge", "tls://", "db web",
                                         "info create commit convert resize", "raw qcow2"], p.stdout


class FakeConsole:
    """A stand-in for ternd and a running VM's monitor: ternd's API answers GET /vms/web
    with a running VM whose console socket is ours; the console answers ATTACH with
    `answer`, sends `greeting`, and records what the client sends."""

    def __init__(self, answer=b"OK\n", greeting=b"hello from the guest\r\n", close_after=None,
                 api_delay=0, vm=None, job=None):
        self.dir = tempfile.mkdtemp(prefix="tern-cli-console-")
        self.api = os.path.join(self.dir, "ternd.sock")
        self.console = os.path.join(self.dir, "console.sock")
        self.answer, self.greeting, self.close_after = answer, greeting, close_after
        self.api_delay = api_delay  # seconds before each API answer (a slow save)
        self.vm = vm or {}  # fields over those of the running VM GET /vms/web answers
        # GET /vms/web/job answers job() at once (no api_delay), {} when None
        self.job = job or (lambda: {"name": "web", "operation": None, "done_bytes": 0,
                                    "total_bytes": 0})
        self.hello = b""
        self.received = b""
        self.done = threading.Event()
        self.api_sock = socket.socket(socket.AF_UNIX)
        self.api_sock.bind(self.api)
        self.api_sock.listen(8)
        self.con_sock = socket.socket(socket.AF_UNIX)
        self.con_sock.bind(self.console)
        self.con_sock.listen(1)
        threading.Thread(target=self.serve_api, daemon=True).start()
        threading.Thread(target=self.serve_console, daemon=True).start()

    def serve_api(self):
        vm = {"name": "web", "state": "running", "reason": "booted",
              "console_socket": self.console, "console_log": os.path.join(self.dir, "console.log")}
        vm.update(self.vm)
        body = json.dumps(vm).encode()
        while True:
            try:
                c, _ = self.api_sock.accept()
            except OSError:
                return
            # A thread per connection: the progress line asks for the job meanwhile.
            threading.Thread(target=self.answer_api, args=(c, body), daemon=True).start()

    def answer_api(self, c, body):
        req = b""
        while b"\r\n\r\n" not in req:
            chunk = c.recv(4096)
            if not chunk:
                break
            req += chunk
        if req.split(b" ")[1:2] == [b"/vms/web/job"]:
            body = json.dumps(self.job()).encode()
        else:
            time.sleep(self.api_delay)
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
        c.close()

    def serve_console(self):
        try:
            c, _ = self.con_sock.accept()
        except OSError:
            return
        while not self.hello.endswith(b"\n"):
            b = c.recv(1)
            if not b:
                break
            self.hello += b
        c.sendall(self.answer + (self.greeting if self.answer == b"OK\n" else b""))
        if self.answer == b"OK\n":
            # Until the client leaves, or until it has sent close_after bytes.
            while self.close_after is None or len(self.received) < self.close_after:
                chunk = c.recv(4096)
                if not chunk:
                    break
                self.received += chunk
        c.close()
        self.done.set()

    def close(self):
        self.api_sock.close()
        self.con_sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def test_console_attach_without_terminal():
    f = FakeConsole(close_after=len(b"typed\n"))
    try:
        r = run_tern(["--socket", f.api, "console", "web"], stdin="typed\n", check=0)
        assert f.hello == b"ATTACH rw\n", f.hello
        assert f.received == b"typed\n", f.received
        assert r.out == "hello from the guest\n", r  # (text mode: \r\n read as \n)
        assert "console closed" in r.err, r
    finally:
        f.close()
    f = FakeConsole()
    try:
        # Read-only: stdin is not even read; the console's end ends tern.
        p = subprocess.Popen([TERN, "--socket", f.api, "console", "--ro", "web"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        deadline = time.time() + 10
        while f.hello != b"ATTACH ro\n" and time.time() < deadline:
            time.sleep(0.05)
        assert f.hello == b"ATTACH ro\n", f.hello
        p.stdin.write(b"ignored\n")
        p.stdin.close()
        time.sleep(0.3)
        p.terminate()
        p.wait(timeout=10)
        assert f.done.wait(10) and f.received == b"", f.received
    finally:
        f.close()
    f = FakeConsole(answer=b"BUSY\n")
    try:
        r = run_tern(["--socket", f.api, "console", "web"], stdin="", check=1)
        one_error_line(r, "read-write client already", "--ro")
    finally:
        f.close()


def pty_run(script, on_output, timeout=20):
    """Runs `sh -c script` on a new terminal; on_output(all_output_so_far, fd, pid) is
    called as output comes and may write to fd. Returns (exit status, output)."""
    pid, fd = pty.fork()
    if pid == 0:
        env = dict(os.environ)
        env.pop("TERN_SOCKET", None)
        os.execve("/bin/sh", ["sh", "-c", script], env)
    out = b""
    deadline = time.time() + timeout
    while time.time() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        on_output(out, fd, pid)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.WEXITSTATUS(status), out.decode(errors="replace")


def test_console_terminal_restored():
    """Raw mode while attached; the terminal's settings come back after Ctrl-] and after
    a SIGTERM alike (stty -a, run by the same shell afterwards, shows them)."""
    for way in ("escape", "sigterm"):
        f = FakeConsole()
        state = {"sent": False}

        def on_output(out, fd, pid):
            if state["sent"] or b"hello from the guest" not in out:
                return
            state["sent"] = True
            # The master reports the terminal's settings (Linux): raw while attached.
            state["raw"] = not termios.tcgetattr(fd)[3] & (termios.ICANON | termios.ISIG)
            if way == "escape":
                os.write(fd, b"abc\x1d")
            else:
                with open("/proc/%d/task/%d/children" % (pid, pid)) as c:
                    os.kill(int(c.read().split()[0]), signal.SIGTERM)

        try:
            status, out = pty_run("stty -a | grep -o ' -\\?icanon'; %s --socket %s console web; "
                                  "echo tern=$?; stty -a | grep -o ' -\\?icanon'"
                                  % (TERN, f.api), on_output)
            assert status == 0 and state["sent"] and state["raw"], out
            assert "Connected to web's console" in out and "Ctrl-] detaches" in out, out
            modes = [line.strip() for line in out.splitlines() if "icanon" in line]
            assert modes == ["icanon", "icanon"], out  # canonical before and after
            if way == "escape":
                assert "tern=0" in out, out
                f.done.wait(5)
                assert f.received == b"abc", f.received
            else:
                assert "tern=143" in out, out  # died of SIGTERM, as if it had not caught it
        finally:
            f.close()


def test_save_progress_only_on_a_terminal():
    f = FakeConsole(api_delay=2.5)
    try:
        status, out = pty_run("%s --socket %s save web" % (TERN, f.api), lambda *a: None)
        assert status == 0, out
        assert "saving web... 1s" in out and "saving web... 2s" in out, out
        assert out.rstrip().endswith("Saved web: tern start restores it"), out
        r = run_tern(["--socket", f.api, "save", "web"], check=0)
        assert r.err == "" and r.out == "Saved web: tern start restores it\n", r
    finally:
        f.close()


def test_progress_follows_the_job():
    """ternd's GET /vms/NAME/job drives the line: bytes written while the total is not
    known (a save), a bar once it is (a clone's copies)."""
    asked = []

    def saving():
        asked.append(1)
        return {"name": "web", "operation": "save", "done_bytes": len(asked) * (32 << 20),
                "total_bytes": 0}
    f = FakeConsole(api_delay=2.5, job=saving)
    try:
        status, out = pty_run("%s --socket %s save web" % (TERN, f.api), lambda *a: None)
        assert status == 0 and re.search(r"saving web\.\.\. \d+ MiB written, \ds", out), out
        assert len(asked) >= 3, asked  # twice a second
    finally:
        f.close()
    f = FakeConsole(api_delay=2.5, job=lambda: {"name": "web", "operation": "clone",
                                                "done_bytes": 128 << 20,
                                                "total_bytes": 256 << 20})
    try:
        status, out = pty_run("%s --socket %s clone web web2 --copy" % (TERN, f.api),
                              lambda *a: None)
        assert status == 0, out
        assert "cloning web (copying its disks) [##########          ]  50% 128/256 MiB" in out, out
        assert "Cloned web as web" in out, out
        # Not on a pipe: the outcome only.
        r = run_tern(["--socket", f.api, "clone", "web", "web2"], check=0)
        assert r.err == "" and r.out.startswith("Cloned web"), r
    finally:
        f.close()


def info_fields(text):
    return {k.strip(): v.strip() for k, v in
            (line.split(":", 1) for line in text.splitlines() if not line.startswith("  "))}


def test_info_of_a_running_vm():
    f = FakeConsole(vm={"uuid": "u", "autostart": True, "vcpus": 2, "memory_mib": 512,
                        "pid": 4242, "monitor_pid": 4241, "started_at": 1.0,
                        "uptime_s": 3 * 86400 + 3723.5, "cpu_time_s": 12.34,
                        "rss_kib": 307200, "detail": None})
    try:
        r = run_tern(["--socket", f.api, "info", "web"], check=0)
        i = info_fields(r.out)
        assert i["State"] == "running (booted)" and i["Autostart"] == "yes", r
        assert i["vCPUs"] == "2" and i["Memory"] == "512 MiB", r
        assert i["Uptime"] == "3d 01:02:03" and i["CPU time"] == "12.3s", r
        assert i["RSS"] == "300.0 MiB" and i["PID"] == "4242 (monitor 4241)", r
        assert "Last run" not in i, r
    finally:
        f.close()


def test_info_of_a_crashed_vm():
    tail = ["[    1.0] Kernel panic - not syncing: VFS: Unable to mount root fs",
            "[    1.1] ---[ end Kernel panic ]---"]
    f = FakeConsole(vm={"state": "shut off", "reason": "crashed", "detail": {
        "exit_status": 3, "signal": 0, "reason": "crash", "ended_at": 1764921600.25,
        "message": "triple fault", "console_tail": tail}})
    try:
        r = run_tern(["--socket", f.api, "info", "web"], check=0)
        i = info_fields(r.out)
        assert i["State"] == "shut off (crashed)", r
        assert i["Last run"].endswith("(crash)") and i["Exit status"] == "3", r
        assert i["Message"] == "triple fault", r
        assert r.out.endswith("Console (last 2 lines):\n  %s\n  %s\n" % tuple(tail)), r
    finally:
        f.close()
    f = FakeConsole(vm={"state": "shut off", "reason": "destroyed", "detail": {
        "exit_status": 137, "signal": 9, "reason": "killed", "ended_at": 1764921600.25,
        "message": "killed by signal 9", "console_tail": tail}})
    try:
        r = run_tern(["--socket", f.api, "info", "web"], check=0)
        i = info_fields(r.out)
        assert i["Signal"] == "9 (Killed)" and "Exit status" not in i, r
        assert "Console (last" not in r.out, r  # only a crash needs the guest's last words
    finally:
        f.close()
