#!/usr/bin/env python3
"""Commands on the other machines of a multi-host lab (`tests/lab --hosts N`).

The lab's first machine runs the command under test; every other one runs `serve`, a
small agent on TCP port 7070 of its lab address (10.99.0.N, on the lab's private
virtual network, so nothing outside the lab reaches it). A test calls run() to run a
command there and get its status and output, or spawn()/wait()/kill() for one that
must keep running (a receiving VMM, a server).

  python3 tests/lib/labhosts.py run HOST [--timeout S] -- COMMAND...   (inside the lab)
"""
import json
import os
import socket
import subprocess
import sys
import threading
import time

PORT = 7070


def hosts():
    """The lab addresses, host 1 first; [] outside a multi-host lab."""
    return os.environ.get("TERN_LAB_HOSTS", "").split()


def address(host):
    hs = hosts()
    if not 1 <= host <= len(hs):
        raise ValueError("lab host %d does not exist (this lab has %d: %s)" % (host, len(hs), hs))
    return hs[host - 1]


def _call(host, req, timeout):
    """Sends one request; retries the connection while the agent is still booting (60 s)."""
    end = time.time() + 60
    while True:
        try:
            s = socket.create_connection((address(host), PORT), timeout=5)
            break
        except OSError:
            if time.time() > end:
                raise
            time.sleep(0.5)
    with s:
        s.settimeout(timeout + 30)
        s.sendall(json.dumps(req).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError("lab host %d closed the connection" % host)
            data += chunk
    reply = json.loads(data)
    if "error" in reply:
        raise RuntimeError("lab host %d: %s" % (host, reply["error"]))
    return reply


def run(host, argv, timeout=60, cwd=None):
    """Runs argv on lab host HOST; returns (exit status, output); None status on timeout."""
    r = _call(host, {"op": "run", "argv": list(argv), "cwd": cwd, "timeout": timeout}, timeout)
    return r["status"], r["output"]


def spawn(host, argv, cwd=None):
    """Starts argv on HOST in the background; returns its id for wait() and kill()."""
    return _call(host, {"op": "spawn", "argv": list(argv), "cwd": cwd}, 10)["id"]


def wait(host, pid, timeout=60):
    """(exit status or None if still running after timeout, output so far)."""
    r = _call(host, {"op": "wait", "id": pid, "timeout": timeout}, timeout)
    return r["status"], r["output"]


def kill(host, pid):
    return _call(host, {"op": "kill", "id": pid}, 10)["status"]


class Agent:
    def __init__(self):
        self.procs = {}
        self.lock = threading.Lock()

    def start(self, req):
        return subprocess.Popen(req["argv"], cwd=req.get("cwd") or None, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def collect(self, p, timeout):
        try:
            out, _ = p.communicate(timeout=timeout)
            return {"status": p.returncode, "output": out.decode(errors="replace")}
        except subprocess.TimeoutExpired:
            return {"status": None, "output": ""}

    def handle(self, req):
        op = req.get("op")
        if op == "run":
            p = self.start(req)
            r = self.collect(p, req.get("timeout", 60))
            if r["status"] is None:
                p.kill()
                r["output"] = p.communicate()[0].decode(errors="replace")
                r["status"] = None
            return r
        if op == "spawn":
            p = self.start(req)
            with self.lock:
                self.procs[p.pid] = p
            return {"id": p.pid}
        with self.lock:
            p = self.procs.get(req.get("id"))
        if p is None:
            return {"error": "no process %r started here" % req.get("id")}
        if op == "wait":
            return self.collect(p, req.get("timeout", 60))
        if op == "kill":
            p.kill()
            p.wait()
            return {"status": p.returncode}
        return {"error": "unknown op %r" % op}

    def serve_one(self, conn):
        with conn:
            data = b""
            while not data.endswith(b"\n"):
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            try:
                reply = self.handle(json.loads(data))
            except Exception as e:  # the reply names it; the agent keeps serving
                reply = {"error": "%s: %s" % (type(e).__name__, e)}
            conn.sendall(json.dumps(reply).encode() + b"\n")

    def serve(self, addr):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, PORT))
        s.listen(16)
        print("labhosts: serving on %s:%d" % (addr, PORT), flush=True)
        while True:
            conn, _ = s.accept()
            threading.Thread(target=self.serve_one, args=(conn,), daemon=True).start()


def main(argv):
    if len(argv) == 2 and argv[0] == "serve":
        Agent().serve(argv[1])
        return 0
    if len(argv) >= 3 and argv[0] == "run":
        host, rest, timeout = int(argv[1]), argv[2:], 60
        if rest[:1] == ["--timeout"]:
            timeout, rest = int(rest[1]), rest[2:]
        if rest[:1] == ["--"]:
            rest = rest[1:]
        status, out = run(host, rest, timeout=timeout)
        sys.stdout.write(out)
        return 124 if status is None else status
    print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
