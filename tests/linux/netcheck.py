#!/usr/bin/env python3
"""Runs inside a network namespace made by test_net.py: boots one Linux guest with a
user-mode NIC, a TAP NIC and a vsock device, and plays every host-side peer:

- user mode: an HTTP server on this namespace's loopback (the guest reaches it as
  10.0.2.2 after DHCP) and a client through a host port forward to a guest listener;
- TAP (tap0, 192.168.77.1/24 here, the guest is 192.168.77.2): TCP both ways;
- vsock: host-initiated (CONNECT over the Unix socket) and guest-initiated
  (the Unix socket PATH_5000) echoes of 1 MiB, more than either credit window.

Prints "NETCHECK <name> ok|FAIL <why>" lines and the guest console to stdout.
usage: netcheck.py VMM KERNEL INITRD WORKDIR CMDLINE
"""
import hashlib
import http.server
import os
import socket
import subprocess
import sys
import threading
import time

VMM, KERNEL, INITRD, WORK, CMDLINE = sys.argv[1:6]
HTTP_PORT, FWD_HOST_PORT = 18080, 18022
VSOCK_BYTES = 1 << 20
BLOB = os.urandom(300 * 1024)
results = {}
console = []
lock = threading.Lock()


def result(name, ok, why=""):
    with lock:
        results[name] = (ok, why)
    print("NETCHECK %s %s %s" % (name, "ok" if ok else "FAIL", why), flush=True)


def wait_for(marker, timeout):
    end = time.time() + timeout
    while time.time() < end:
        with lock:
            for l in console:
                if marker in l:
                    return l
        time.sleep(0.2)
    return None


def connect_retry(addr, timeout=60):
    """The guest prints its marker just before busybox nc listens: retry briefly."""
    end = time.time() + timeout
    while True:
        try:
            return socket.create_connection(addr, timeout=120)
        except OSError:
            if time.time() > end:
                raise
            time.sleep(0.5)


def pattern(n):
    return bytes((i * 131 + (i >> 11)) & 0xff for i in range(n))


class Blob(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(BLOB)))
        self.end_headers()
        self.wfile.write(BLOB)

    def log_message(self, *a):
        pass


def echo_unix_server(path):
    """The guest-initiated vsock peer: echo one connection on PATH_5000."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(1)
    s.settimeout(600)
    try:
        c, _ = s.accept()
        with c:
            while True:
                d = c.recv(65536)
                if not d:
                    break
                c.sendall(d)
    except OSError:
        pass


def vsock_host_initiated(uds):
    data = pattern(VSOCK_BYTES)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(300)
    s.connect(uds)
    s.sendall(b"CONNECT 1234\n")
    line = b""
    while not line.endswith(b"\n"):
        ch = s.recv(1)
        if not ch:
            break
        line += ch
    if not line.startswith(b"OK "):
        return result("vsock-host-initiated", False, "handshake %r" % line)
    got = bytearray()

    def reader():
        while len(got) < len(data):
            d = s.recv(65536)
            if not d:
                break
            got.extend(d)
    t = threading.Thread(target=reader)
    t.start()
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    t.join(300)
    s.close()
    result("vsock-host-initiated", bytes(got) == data,
           "echoed %d of %d bytes" % (len(got), len(data)))


def tap_peers():
    # host -> guest: the guest listens on 9001 and prints the md5 of what it got
    if not wait_for("TAP-LISTEN", 300):
        return result("tap-host-to-guest", False, "guest never listened")
    payload = os.urandom(200 * 1024)
    with connect_retry(("192.168.77.2", 9001)) as c:
        c.sendall(payload)
    line = wait_for("TAP-IN-SUM", 300) or ""
    result("tap-host-to-guest", hashlib.md5(payload).hexdigest() in line, line.strip())


def blob_server(name, addr):
    """guest -> host: the guest sends the HTTP blob to addr (TAP), or to 10.0.2.2, which
    slirp maps to this namespace's loopback (user-mode networking, through the device's
    software TSO and checksums)."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(addr)
    s.listen(1)
    s.settimeout(600)
    try:
        c, _ = s.accept()
        got = bytearray()
        with c:
            # Close after the expected bytes: the guest's nc waits for the peer to close.
            while len(got) < len(BLOB):
                d = c.recv(65536)
                if not d:
                    break
                got.extend(d)
        result(name, bytes(got) == BLOB, "%d of %d bytes" % (len(got), len(BLOB)))
    except OSError as e:
        result(name, False, str(e))


def hostfwd_client():
    if not wait_for("FWD-LISTEN", 300):
        return result("user-hostfwd", False, "guest never listened")
    # slirp accepts on the host side at once and resets the connection if nothing
    # listens in the guest yet (busybox nc starts just after the marker): retry the
    # whole exchange until the guest answers.
    end, reply, err = time.time() + 90, b"", ""
    while time.time() < end and not reply:
        try:
            with socket.create_connection(("127.0.0.1", FWD_HOST_PORT), timeout=60) as c:
                c.sendall(b"hello-through-hostfwd\n")
                c.shutdown(socket.SHUT_WR)
                reply = c.recv(100)
        except OSError as e:
            err = str(e)
        if not reply:
            time.sleep(1)
    line = wait_for("FWD-IN", 120) or ""
    result("user-hostfwd", reply.startswith(b"reply-from-guest") and "hello-through-hostfwd" in line,
           "reply %r, guest got %r %s" % (reply, line.strip(), err))


def main():
    uds = os.path.join(WORK, "vsock.sock")
    httpd = http.server.HTTPServer(("127.0.0.1", HTTP_PORT), Blob)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    threading.Thread(target=echo_unix_server, args=(uds + "_5000",), daemon=True).start()
    threading.Thread(target=blob_server, args=("tap-guest-to-host", ("192.168.77.1", 9002)),
                     daemon=True).start()
    threading.Thread(target=blob_server, args=("user-guest-to-host", ("127.0.0.1", 9003)),
                     daemon=True).start()
    cmd = [VMM, "--kernel", KERNEL, "--initrd", INITRD, "--memory", "256", "--cpus", "2",
           "--cmdline", CMDLINE,
           "--net", "user,mac=52:54:00:12:34:01,hostfwd=tcp::%d-:8022" % FWD_HOST_PORT,
           "--net", "tap=tap0,mac=52:54:00:12:34:02", "--vsock", "cid=7,uds=" + uds]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)

    def pump():
        for raw in p.stdout:
            l = raw.decode(errors="replace")
            with lock:
                console.append(l)
            print("guest: " + l.rstrip(), flush=True)
    threading.Thread(target=pump, daemon=True).start()
    peers = [threading.Thread(target=f, daemon=True) for f in (tap_peers, hostfwd_client)]
    for t in peers:
        t.start()
    if wait_for("VSOCK-SERVE listening", 600):
        vsock_host_initiated(uds)
    else:
        result("vsock-host-initiated", False, "guest never listened")
    try:
        p.wait(timeout=900)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    for t in peers:
        t.join(5)
    err = p.stderr.read().decode(errors="replace")
    print("stderr: " + err.replace("\n", "\nstderr: "), flush=True)
    out = "".join(console)
    sum_line = [l for l in console if l.startswith("HTTP-SUM ")]
    result("user-dhcp", "DHCP-IP 10.0.2.15" in out, "lease line missing" if "DHCP-IP" not in out else "")
    result("user-http", bool(sum_line) and hashlib.md5(BLOB).hexdigest() in sum_line[0],
           sum_line[0].strip() if sum_line else "no HTTP-SUM line")
    result("vsock-guest-initiated", "VSOCK-SEND sent %d got %d bad 0" % (VSOCK_BYTES, VSOCK_BYTES) in out,
           "".join(l for l in console if l.startswith("VSOCK-SEND")).strip())
    result("exit", p.returncode == 0, "tern-vmm exit status %r" % p.returncode)
    return 0 if all(ok for ok, _ in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
