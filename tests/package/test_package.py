"""The Debian package and `make install` (README "Installing"), on the host: no KVM.

The package is built once, by `dpkg-buildpackage -b -us -uc` in a copy of the tree (what
`git ls-files -co --exclude-standard` lists), so that neither the repository nor its
parent gets its outputs; the tests then read the .deb and run what it holds, extracted
into a scratch root."""
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import ternlib

ROOT = ternlib.ROOT
WORK = os.path.join(ternlib.OUT, "package")
BIN = ["usr/bin/tern", "usr/bin/tern-vmm", "usr/sbin/ternd", "usr/sbin/tern-monitor"]
MANS = ["usr/share/man/man1/tern.1", "usr/share/man/man1/tern-vmm.1",
        "usr/share/man/man8/ternd.8", "usr/share/man/man8/tern-monitor.8"]
DOCS = ["usr/share/doc/tern/%s" % d for d in
        ("ternd.md", "ternd-api.yaml", "api.md", "api.yaml", "overlay.md", "disks.md", "security.md")]
COMPLETION = "usr/share/bash-completion/completions/tern"
_built = {}


def run(cmd, cwd=None, env=None, timeout=600, check=0):
    """Runs cmd; returns its output (stdout and stderr); asserts its exit status is check."""
    p = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       stdin=subprocess.DEVNULL, timeout=timeout)
    out = p.stdout.decode(errors="replace")
    assert check is None or p.returncode == check, "%s: exit %d, wanted %s\n%s" % (
        " ".join(cmd), p.returncode, check, out[-4000:])
    return out


def need(*tools):
    for t in tools:
        if not shutil.which(t):
            raise ternlib.Missing("no %s: install it (scripts/setup lists its package)" % t)


def copy_tree(dst):
    """The tracked files and the untracked ones that .gitignore does not hide."""
    names = run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT).split("\0")
    for n in filter(None, names):
        src = os.path.join(ROOT, n)
        if not os.path.lexists(src):  # tracked, deleted in the work tree
            continue
        os.makedirs(os.path.dirname(os.path.join(dst, n)), exist_ok=True)
        shutil.copy2(src, os.path.join(dst, n), follow_symlinks=False)


def package():
    """Builds the package once; returns {"deb": path, "root": the .deb extracted}."""
    if _built:
        assert "deb" in _built, "the package build failed (package.builds_outside_the_repository)"
        return _built
    need("dpkg-buildpackage", "dpkg-deb", "dh", "fakeroot", "git")
    shutil.rmtree(WORK, ignore_errors=True)
    src = os.path.join(WORK, "tern")
    os.makedirs(src)
    copy_tree(src)
    env = dict(os.environ, DEB_BUILD_OPTIONS="parallel=%d" % os.cpu_count())
    try:
        run(["dpkg-buildpackage", "-b", "-us", "-uc"], cwd=src, env=env, timeout=1200)
    except AssertionError:
        _built["failed"] = True
        raise
    debs = glob.glob(os.path.join(WORK, "tern_*_amd64.deb"))
    assert len(debs) == 1, "dpkg-buildpackage made %r" % os.listdir(WORK)
    root = os.path.join(WORK, "root")
    run(["dpkg-deb", "-x", debs[0], root])
    _built.update(deb=debs[0], root=root)
    return _built


def listing(deb):
    """The paths in the .deb, without the leading "./"."""
    return {line.split()[5][2:].rstrip("/") for line in
            run(["dpkg-deb", "-c", deb]).splitlines() if line.strip()}


def test_builds_outside_the_repository():
    """dpkg-buildpackage works from a copy of the tree, the clean step leaves its build
    directory alone, and every output lands beside the copy, none in the repository."""
    p = package()
    names = os.listdir(WORK)
    for pat in (r"tern_[\d.]+_amd64\.deb", r"tern_[\d.]+_amd64\.changes",
                r"tern_[\d.]+_amd64\.buildinfo"):
        assert any(re.fullmatch(pat, n) for n in names), "no %s in %r" % (pat, names)
    assert not glob.glob(os.path.join(ROOT, "debian", "tern")) and \
        not glob.glob(os.path.join(ROOT, "debian", "build")), "the package build touched the repo"
    assert os.path.exists(p["deb"])


def test_deb_holds_programs_man_pages_unit_completion():
    p = package()
    files = listing(p["deb"])
    want = BIN + [m + ".gz" for m in MANS] + DOCS + [
        COMPLETION, "lib/systemd/system/ternd.service", "usr/share/doc/tern/copyright"]
    missing = [w for w in want if w not in files]
    assert not missing, "the .deb lacks %s; it holds:\n%s" % (missing, "\n".join(sorted(files)))
    for b in BIN:
        assert os.access(os.path.join(p["root"], b), os.X_OK), b + " is not executable"
    info = run(["dpkg-deb", "-f", p["deb"], "Depends"])
    for lib in ("libsqlite3", "libjson-c", "liburing", "libslirp", "libhttp-parser", "adduser"):
        assert lib in info, "Depends lacks %s: %s" % (lib, info)


def test_unit_names_the_installed_ternd():
    p = package()
    with open(os.path.join(p["root"], "lib/systemd/system/ternd.service")) as f:
        unit = f.read()
    m = re.search(r"^ExecStart=(\S+)", unit, re.M)
    assert m and m.group(1) == "/usr/sbin/ternd", "ExecStart: %r" % (m and m.group(0))
    if not shutil.which("systemd-analyze"):
        raise ternlib.Skip("no systemd-analyze: the unit was not verified")
    # The unit as installed, its ExecStart pointing into the extracted root; its man page
    # (Documentation=man:ternd(8)) is found there too.
    copy = os.path.join(WORK, "ternd.service")
    with open(copy, "w") as f:
        f.write(unit.replace("/usr/sbin/ternd", os.path.join(p["root"], "usr/sbin/ternd")))
    out = run(["systemd-analyze", "verify", copy],
              env=dict(os.environ, MANPATH=os.path.join(p["root"], "usr/share/man")))
    assert not out.strip(), "systemd-analyze verify complained:\n" + out


def test_postinst_makes_group_tern_before_starting_ternd():
    p = package()
    out = os.path.join(WORK, "control")
    run(["dpkg-deb", "-e", p["deb"], out])
    with open(os.path.join(out, "postinst")) as f:
        script = f.read()
    group = script.find("addgroup --system --quiet tern")
    start = script.find("deb-systemd-invoke $_dh_action 'ternd.service'")
    enable = script.find("deb-systemd-helper enable 'ternd.service'")
    assert 0 <= group < enable and group < start, "postinst:\n" + script
    run(["sh", "-n", os.path.join(out, "postinst")])


def test_installed_programs_run():
    r = package()["root"]
    assert re.fullmatch(r"tern \d+\.\d+\.\d+\n",
                        run([os.path.join(r, "usr/bin/tern"), "--version"]))
    assert run([os.path.join(r, "usr/sbin/ternd"), "--help"]).startswith("usage: ternd ")
    assert run([os.path.join(r, "usr/bin/tern-vmm"), "--help"]).startswith("usage: tern-vmm ")
    assert run([os.path.join(r, "usr/sbin/tern-monitor"), "--help"]).startswith(
        "usage: tern-monitor ")


def test_installed_ternd_runs_its_monitor_and_vmm():
    """ternd in usr/sbin, with no --vmm or --monitor, serves its API and starts a VM
    through usr/sbin/tern-monitor and usr/bin/tern-vmm: the VM's status file (the
    monitor's) holds tern-vmm's own refusal of a kernel that is not one. With tern-vmm
    gone, ternd refuses to start and names the path it looked for."""
    r = package()["root"]
    tern, ternd = os.path.join(r, "usr/bin/tern"), os.path.join(r, "usr/sbin/ternd")
    d = tempfile.mkdtemp(prefix="tern-pkg-")
    log = open(os.path.join(d, "ternd.out"), "w+")
    proc = subprocess.Popen([ternd, "--foreground", "--state-dir", d, "--cgroup", "none"],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def output():
        log.seek(0)
        return log.read()
    try:
        deadline = time.time() + 10
        while True:
            assert proc.poll() is None, "ternd exited %s:\n%s" % (proc.returncode, output())
            s = socket.socket(socket.AF_UNIX)
            try:
                s.connect(os.path.join(d, "ternd.sock"))
                break
            except OSError:
                assert time.time() < deadline, "ternd did not listen:\n" + output()
                time.sleep(0.05)
            finally:
                s.close()
        assert run([tern, "--state-dir", d, "list", "--all"]).split() == \
            ["NAME", "STATE", "REASON", "AUTOSTART"]
        kernel = os.path.join(d, "vmlinux")
        with open(kernel, "w") as f:
            f.write("not a kernel\n")
        with open(os.path.join(d, "pkg.json"), "w") as f:
            json.dump({"name": "pkg", "kernel": kernel}, f)
        run([tern, "--state-dir", d, "define", os.path.join(d, "pkg.json")])
        run([tern, "--state-dir", d, "start", "pkg"], check=1)
        info = json.loads(run([tern, "--state-dir", d, "--json", "info", "pkg"]))
        detail = info.get("detail") or {}
        assert detail.get("reason") == "error" and \
            detail.get("message", "").startswith("tern-vmm: ") and \
            "not an ELF or bzImage kernel" in detail["message"], \
            "%r\nternd:\n%s" % (info, output())
    finally:
        proc.send_signal(signal.SIGTERM)
        status = proc.wait(10)
    assert status == 0, "ternd exited %d on SIGTERM:\n%s" % (status, output())
    vmm = os.path.join(r, "usr/bin/tern-vmm")
    os.rename(vmm, vmm + ".away")
    try:
        out = run([ternd, "--foreground", "--state-dir", d, "--cgroup", "none"], check=1,
                  timeout=20)
    finally:
        os.rename(vmm + ".away", vmm)
    assert os.path.join(r, "usr/sbin/tern-vmm") in out and "--vmm" in out, out
    shutil.rmtree(d, ignore_errors=True)


def options(text):
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", text))


def test_man_pages_render_and_name_every_option():
    """Each man page renders without a groff warning and names every option its program's
    --help (for tern also each command's help) names."""
    need("groff")
    r = package()["root"]
    helps = {
        "tern-vmm.1": run([os.path.join(r, "usr/bin/tern-vmm"), "--help"]),
        "ternd.8": run([os.path.join(r, "usr/sbin/ternd"), "--help"]),
        "tern-monitor.8": run([os.path.join(r, "usr/sbin/tern-monitor"), "--help"]),
    }
    tern = os.path.join(r, "usr/bin/tern")
    top = run([tern, "--help"])
    cmds = re.findall(r"^  ([a-z]+)  ", top.split("Commands:")[1].split("\n\n")[0], re.M)
    assert "list" in cmds and "console" in cmds, top
    helps["tern.1"] = top + "".join(run([tern, "help", c]) for c in cmds)
    for m in MANS:
        page = os.path.join(r, m + ".gz")
        src = subprocess.run(["gzip", "-dc", page], stdout=subprocess.PIPE, check=True).stdout
        p = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z"], input=src,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert p.returncode == 0 and not p.stderr, "%s: %s" % (m, p.stderr.decode())
        text = src.decode().replace("\\-", "-")
        name = os.path.basename(m)
        missing = sorted(options(helps[name]) - options(text))
        assert not missing, "%s does not name %s" % (m, missing)
        if name == "tern.1":
            for c in cmds:
                assert re.search(r"^\.B[IR]? \"?%s\b" % c, text, re.M), "tern.1 lacks " + c


def test_make_install_and_uninstall():
    """make install DESTDIR=D PREFIX=/usr puts exactly the package's files in place (the
    unit in PREFIX/lib/systemd/system); another PREFIX is what the unit's ExecStart and
    the man pages name; make uninstall removes every file again."""
    d = tempfile.mkdtemp(prefix="tern-install-")
    try:
        run(["make", "-s", "install", "DESTDIR=" + d, "PREFIX=/usr"], cwd=ROOT)
        got = set()
        for base, _, files in os.walk(d):
            got |= {os.path.relpath(os.path.join(base, f), d) for f in files}
        want = set(BIN + MANS + DOCS + [COMPLETION, "usr/lib/systemd/system/ternd.service"])
        assert got == want, "extra %s, missing %s" % (sorted(got - want), sorted(want - got))
        for b in BIN:
            assert os.stat(os.path.join(d, b)).st_mode & 0o777 == 0o755, b
        out = os.path.join(d, "opt")
        run(["make", "-s", "install", "DESTDIR=" + out, "PREFIX=/opt/tern"], cwd=ROOT)
        with open(os.path.join(out, "opt/tern/lib/systemd/system/ternd.service")) as f:
            unit = f.read()
        assert "\nExecStart=/opt/tern/sbin/ternd " in unit, unit
        assert "file:/opt/tern/share/doc/tern/ternd.md" in unit, unit
        with open(os.path.join(out, "opt/tern/share/man/man8/ternd.8")) as f:
            assert "/opt/tern/share/doc/tern/ternd.md" in f.read()
        run(["make", "-s", "uninstall", "DESTDIR=" + out, "PREFIX=/opt/tern"], cwd=ROOT)
        left = [os.path.join(b, f) for b, _, fs in os.walk(out) for f in fs]
        assert not left, "make uninstall left %s" % left
    finally:
        shutil.rmtree(d, ignore_errors=True)
