"""ternd --listen-tls and tern --connect (docs/ternd.md, "Remote management over TLS"):
a VM defined, started, watched and stopped over mutual TLS; clients and servers with the
wrong certificates refused, each side saying why; bad flags. The certificates come from
certtool (tests/lib/pki.py), made once per run in a scratch directory."""
import atexit
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
import pki  # noqa: E402
import ternd  # noqa: E402
import ternlib  # noqa: E402

_PKI = {}


def certs():
    """Directories of certificates (made on first use): server (SAN 127.0.0.1, localhost),
    client, intruder (a client certificate from another CA), nocert (the CA only),
    elsewhere (a server certificate for another host), and the CAs' own directories."""
    if not _PKI:
        work = tempfile.mkdtemp(prefix="tern-pki-")
        atexit.register(shutil.rmtree, work, True)
        ca, other = pki.CA(work, "tern test CA"), pki.CA(work, "other CA")
        d = {"work": work, "ca": ca.dir}
        d["server"] = ca.server(os.path.join(work, "server"), ["127.0.0.1", "localhost"])
        d["client"] = ca.client(os.path.join(work, "client"), "client1")
        d["elsewhere"] = ca.server(os.path.join(work, "elsewhere"),
                                   ["elsewhere.invalid", "10.255.255.1"])
        # The intruder trusts our CA, but its own certificate is the other CA's.
        other.client(os.path.join(work, "intruder"), "intruder")
        shutil.copy(ca.cert, os.path.join(work, "intruder", "cacert.pem"))
        os.makedirs(os.path.join(work, "nocert"))
        shutil.copy(ca.cert, os.path.join(work, "nocert", "cacert.pem"))
        d["intruder"], d["nocert"] = os.path.join(work, "intruder"), os.path.join(work, "nocert")
        _PKI.update(d)
    return _PKI


class Run:
    def __init__(self, argv, p):
        self.argv, self.status, self.out, self.err = argv, p.returncode, p.stdout, p.stderr

    def __repr__(self):
        return "%s -> %r\n--- stdout\n%s--- stderr\n%s" % (" ".join(self.argv), self.status,
                                                           self.out[-3000:], self.err[-3000:])


def run(prog, args, env=None, check=None, timeout=60):
    e = dict(os.environ)
    for k in ("TERN_SOCKET", "TERN_CONNECT"):
        e.pop(k, None)
    e.update(env or {})
    argv = [ternd.tool(prog)] + list(args)
    r = Run(argv, subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 env=e, timeout=timeout, stdin=subprocess.DEVNULL))
    if check is not None:
        assert r.status == check, "expected exit status %d: %r" % (check, r)
    return r


def refused(r, status, *words):
    """Exit status status and one error line with every word."""
    assert r.status == status, "expected exit status %d: %r" % (status, r)
    lines = r.err.strip().splitlines()
    assert len(lines) == 1, r
    for w in words:
        assert w in lines[0], "%r lacks %r: %r" % (lines[0], w, r)


class TlsTernd:
    """A ternd without VMs (its tern-vmm is /bin/false) serving TLS on a free port of
    127.0.0.1 with the certificates in tls_dir."""

    def __init__(self, tls_dir):
        self.dir = tempfile.mkdtemp(prefix="ternd-tls-")
        self.port = ternlib.free_port()
        self.url = "tls://127.0.0.1:%d" % self.port
        self.log_path = os.path.join(self.dir, "out.log")
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(
                [ternd.tool("ternd"), "--foreground", "--state-dir", self.dir, "--cgroup", "none",
                 "--vmm", "/bin/false", "--monitor", ternd.tool("tern-monitor"),
                 "--listen-tls", "127.0.0.1:%d" % self.port, "--tls-dir", tls_dir],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        wait_listening(self.proc, self.log)

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def wait_listening(proc, log, timeout=20):
    end = time.time() + timeout
    while "serving TLS on" not in log():
        assert proc.poll() is None, "ternd exited with %r:\n%s" % (proc.returncode, log())
        assert time.time() < end, "ternd did not serve TLS within %d s:\n%s" % (timeout, log())
        time.sleep(0.05)


def wait_log(log, text, timeout=10):
    """ternd logs a refusal after the client has gone: give it a moment."""
    end = time.time() + timeout
    while text not in log():
        assert time.time() < end, "%r not in ternd's log:\n%s" % (text, log())
        time.sleep(0.05)


def test_vm_lifecycle_over_tls():
    c = certs()
    port = ternlib.free_port()
    t = ternd.Ternd("tls", extra=["--listen-tls", "127.0.0.1:%d" % port, "--tls-dir", c["server"]])
    try:
        wait_listening(t.proc, t.log)
        url = "tls://127.0.0.1:%d" % port
        remote = ["--connect", url, "--tls-dir", c["client"]]
        r = run("tern", remote + ["list", "--all"], check=0)
        assert r.out.split() == ["NAME", "STATE", "REASON", "AUTOSTART"], r
        kernel = ternlib.guest_path("counter")
        assert os.path.exists(kernel), "no %s: make guests" % kernel
        path = os.path.join(t.dir, "far.json")
        with open(path, "w") as f:
            json.dump({"name": "far", "kernel": kernel, "cmdline": "console=ttyS0 every=300000",
                       "memory_mib": 32}, f)
        r = run("tern", remote + ["define", path], check=0)
        assert r.out.startswith("Defined far"), r
        run("tern", remote + ["start", "far"], check=0)
        info = json.loads(run("tern", remote + ["info", "far", "--json"], check=0).out)
        assert info["state"] == "running" and info["pid"] > 0, info
        # The environment names the remote ternd too; --tls-dir still applies.
        r = run("tern", ["--tls-dir", c["client"], "list"], env={"TERN_CONNECT": url}, check=0)
        assert [x for x in r.out.splitlines() if x.startswith("far ")], r
        r = run("tern", ["--connect", "tls://localhost:%d" % port, "--tls-dir", c["client"],
                         "suspend", "far"], check=0)
        assert t.state("far")[0] == "paused"
        run("tern", remote + ["resume", "far"], check=0)
        end = time.time() + 30
        while "count " not in ternd.console_log(t, "far") and time.time() < end:
            time.sleep(0.2)
        assert "count " in ternd.console_log(t, "far"), ternd.console_log(t, "far")
        r = run("tern", remote + ["console", "far"])
        refused(r, 2, "console needs a local ternd")
        r = run("tern", remote + ["destroy", "far"], check=0)
        info = json.loads(run("tern", remote + ["--json", "info", "far"], check=0).out)
        assert info["state"] == "shut off" and info["reason"] == "destroyed", info
        r = run("tern", remote + ["events", "--json"], check=0)
        assert any(e["reason"] == "destroyed" for e in json.loads(r.out)["events"]), r
        run("tern", remote + ["undefine", "far"], check=0)
        r = run("tern", remote + ["info", "far"])
        refused(r, 1, "no VM named far")
        assert "TLS: client 127.0.0.1:" in t.log() and "connected as CN=client1,O=tern tests" \
            in t.log(), t.log()
    finally:
        t.close()


def test_wrong_certificates_are_refused_both_ways():
    c = certs()
    t = TlsTernd(c["server"])
    other = None
    try:
        # A client certificate from another CA: the server refuses it and logs whose it was.
        r = run("tern", ["--connect", t.url, "--tls-dir", c["intruder"], "list"])
        refused(r, 3, "ternd at " + t.url, "refused our certificate")
        wait_log(t.log, "(CN=intruder,O=tern tests): certificate refused")
        assert "issuer is unknown" in t.log(), t.log()
        # No client certificate at all: tern will not try, a bare TLS client is refused.
        refused(run("tern", ["--connect", t.url, "--tls-dir", c["nocert"], "list"]), 2,
                "--tls-dir", os.path.join(c["nocert"], "clientcert.pem"))
        ctx = ssl.create_default_context(cafile=os.path.join(c["server"], "cacert.pem"))
        got = b""
        try:
            with socket.create_connection(("127.0.0.1", t.port), timeout=10) as raw:
                with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                    s.sendall(b"GET /vms HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    got = s.recv(4096)
        except (ssl.SSLError, OSError):
            pass
        assert b"HTTP/" not in got, got
        wait_log(t.log, "refused: it sent no certificate")
        # TLS 1.1 is refused; so is plain HTTP on the TLS port.
        cli = shutil.which("gnutls-cli")
        assert cli, "gnutls-cli is not installed (apt install gnutls-bin; scripts/setup does)"
        p = subprocess.run([cli, "--priority", "NORMAL:-VERS-ALL:+VERS-TLS1.1", "--x509cafile",
                            os.path.join(c["client"], "cacert.pem"), "--x509certfile",
                            os.path.join(c["client"], "clientcert.pem"), "--x509keyfile",
                            os.path.join(c["client"], "clientkey.pem"), "-p", str(t.port),
                            "127.0.0.1"], input=b"", stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=30)
        assert p.returncode != 0 and b"HTTP/" not in p.stdout, p.stdout
        wait_log(t.log, "not TLS 1.2 or 1.3")
        with socket.create_connection(("127.0.0.1", t.port), timeout=10) as s:
            s.sendall(b"GET /vms HTTP/1.1\r\nHost: x\r\n\r\n")
            got = s.recv(4096)
        assert b"HTTP/" not in got, got
        # ternd serves the right client all along.
        run("tern", ["--connect", t.url, "--tls-dir", c["client"], "list"], check=0)
        # A server whose certificate is for another host: the client refuses it.
        other = TlsTernd(c["elsewhere"])
        r = run("tern", ["--connect", other.url, "--tls-dir", c["client"], "list"])
        refused(r, 3, "ternd at " + other.url, "(CN=elsewhere.invalid): certificate refused",
                "name in the certificate does not match")
        wait_log(other.log, "refused our certificate")
    finally:
        t.close()
        if other:
            other.close()


def test_bad_tls_flags_exit_2_naming_them():
    c = certs()
    work = tempfile.mkdtemp(prefix="tern-tls-flags-")
    try:
        state = os.path.join(work, "state")
        ternd_args = ["--foreground", "--state-dir", state, "--cgroup", "none"]
        for arg, words in (("nonsense", ["--listen-tls: 'nonsense' is not ADDR:PORT"]),
                           ("127.0.0.1:0", ["--listen-tls", "port '0' must be 1 to 65535"]),
                           ("127.0.0.1:65536", ["--listen-tls", "1 to 65535"]),
                           ("localhost:1", ["--listen-tls", "not an IP address"]),
                           ("::1:80", ["--listen-tls", "[::1]:PORT"])):
            refused(run("ternd", ternd_args + ["--listen-tls", arg, "--tls-dir", c["server"]]),
                    2, *words)
        # --tls-dir alone is for migrations out: it needs the client certificate.
        refused(run("ternd", ternd_args + ["--tls-dir", c["server"]]), 2, "--tls-dir",
                os.path.join(c["server"], "clientcert.pem"))
        # Missing, mismatched or foreign files: ternd names the file and does not start.
        bad = os.path.join(work, "bad")
        os.makedirs(bad)
        listen = ["--listen-tls", "127.0.0.1:%d" % ternlib.free_port(), "--tls-dir", bad]
        refused(run("ternd", ternd_args + listen), 2, os.path.join(bad, "cacert.pem"),
                "No such file")
        for f in ("cacert.pem", "servercert.pem"):
            shutil.copy(os.path.join(c["server"], f), bad)
        refused(run("ternd", ternd_args + listen), 2, os.path.join(bad, "serverkey.pem"))
        shutil.copy(os.path.join(c["client"], "clientkey.pem"), os.path.join(bad, "serverkey.pem"))
        refused(run("ternd", ternd_args + listen), 2, "serverkey.pem is not the key of")
        shutil.copy(os.path.join(c["server"], "serverkey.pem"), bad)
        shutil.copy(os.path.join(c["intruder"], "clientcert.pem"), os.path.join(bad, "cacert.pem"))
        refused(run("ternd", ternd_args + listen), 2, "servercert.pem is not valid under")
        assert not os.path.exists(state), "ternd made its state directory before refusing"
        # tern's side.
        for args, env, words in (
                (["--connect", "nonsense"], None, ["--connect: 'nonsense' is not tls://HOST:PORT"]),
                (["--connect", "tls://127.0.0.1:0"], None, ["--connect", "must be 1 to 65535"]),
                (["--connect", "tls://bad_name:7"], None, ["--connect", "not an IP address"]),
                ([], {"TERN_CONNECT": "http://x:1"}, ["TERN_CONNECT: 'http://x:1'"]),
                (["--connect", "tls://127.0.0.1:1", "--socket", "/x"], None,
                 ["--connect and --socket"]),
                (["--tls-dir", c["client"]], None, ["--tls-dir: only with --connect"]),
                (["--connect", "tls://127.0.0.1:1", "--tls-dir", bad + "-none"], None,
                 ["--tls-dir", "cacert.pem", "No such file"])):
            refused(run("tern", args + ["list"], env=env), 2, *words)
        # Nothing listening there: not reachable (3).
        refused(run("tern", ["--connect", "tls://127.0.0.1:%d" % ternlib.free_port(), "--tls-dir",
                             c["client"], "list"]), 3, "Connection refused", "--listen-tls")
    finally:
        shutil.rmtree(work, ignore_errors=True)
