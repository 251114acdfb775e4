"""Talking to tern-vmm's control API (docs/api.md) from the tests.

ApiClient: HTTP/1.1 over the Unix socket with http.client; get/put/patch return
(status, parsed JSON body or None); raw() sends arbitrary bytes for malformed requests.
Vmm: a tern-vmm process whose serial output and stderr are collected by threads.
load_yaml() and validate(): Firecracker's Swagger 2.0 document and a checker for the
subset of JSON Schema it uses.
"""
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import ternlib

FIRECRACKER_YAML = os.path.join(ternlib.SHARED, "firecracker-api.yaml")
API_DOC = os.path.join(ternlib.ROOT, "docs", "api.md")

try:
    import yaml
except ImportError:
    # Debian's python3-yaml, for a test python built elsewhere (pyenv).
    sys.path.insert(0, "/usr/lib/python3/dist-packages")
    import yaml


# ---- the client ----

class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


def _decode(data):
    if not data:
        return None
    try:
        return json.loads(data.decode())
    except (UnicodeDecodeError, ValueError):
        return None


class ApiClient:
    """Requests to tern-vmm's API socket. One connection per request unless keepalive."""

    # 60 s: in the lab, tern-vmm runs under emulation (and ASan in san:guest); a request
    # that writes a snapshot can take tens of seconds there. A hang still fails.
    def __init__(self, sock_path, timeout=60, keepalive=False):
        self.path = sock_path
        self.timeout = timeout
        self.keepalive = keepalive
        self._conn = None
        self.last_headers = {}
        self.last_body = b""

    def close(self):
        if self._conn:
            self._conn.close()
            self._conn = None

    def request(self, method, path, body=None, headers=None):
        """body: a dict/list (sent as JSON), str/bytes (sent as is) or None."""
        if isinstance(body, (dict, list)):
            data = json.dumps(body).encode()
        elif isinstance(body, str):
            data = body.encode()
        else:
            data = body
        h = {"Accept": "application/json"}
        if data is not None:
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        conn = self._conn if self.keepalive and self._conn else _UnixConnection(self.path, self.timeout)
        try:
            conn.request(method, path, body=data, headers=h)
            r = conn.getresponse()
            raw = r.read()
            self.last_headers = {k.lower(): v for k, v in r.getheaders()}
            self.last_body = raw
            status = r.status
        finally:
            if self.keepalive:
                self._conn = conn
            else:
                conn.close()
        return status, _decode(raw)

    def get(self, path):
        return self.request("GET", path)

    def put(self, path, body=None):
        return self.request("PUT", path, {} if body is None else body)

    def patch(self, path, body=None):
        return self.request("PATCH", path, {} if body is None else body)

    def raw(self, data, timeout=None, shutdown=False, fds=None):
        """Sends bytes on a new connection (fds: open files sent with them, SCM_RIGHTS);
        returns (status or None, parsed body or None, every byte received) once a whole
        response has arrived or the server closed."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout or self.timeout)
        try:
            s.connect(self.path)
            try:
                if fds:
                    sent = socket.send_fds(s, [data], fds)
                    data = data[sent:]
                s.sendall(data)
                if shutdown:
                    s.shutdown(socket.SHUT_WR)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server may answer (413, 431) and close before reading it all
            got = b""
            while True:
                status, body, done = parse_response(got)
                if done:
                    return status, body, got
                try:
                    chunk = s.recv(65536)
                except ConnectionResetError:
                    chunk = b""
                if not chunk:
                    return status, body, got
                got += chunk
        finally:
            s.close()


def parse_response(data):
    """(status, parsed JSON body, complete?) from the bytes of an HTTP response so far."""
    head, sep, rest = data.partition(b"\r\n\r\n")
    if not sep:
        return None, None, False
    lines = head.decode(errors="replace").split("\r\n")
    m = re.match(r"HTTP/1\.[01] (\d{3})", lines[0])
    status = int(m.group(1)) if m else None
    length = 0
    for line in lines[1:]:
        k, _, v = line.partition(":")
        if k.strip().lower() == "content-length":
            length = int(v.strip() or 0)
    if len(rest) < length:
        return status, None, False
    return status, _decode(rest[:length]), True


def wait_for_socket(path, timeout=10, proc=None):
    """Waits until something accepts connections at path; False on timeout (or if proc died)."""
    end = time.time() + timeout
    while time.time() < end:
        if proc is not None and proc.poll() is not None:
            return False
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
            return True
        except OSError:
            time.sleep(0.05)
        finally:
            s.close()
    return False


def fault(body):
    """The fault_message of an error body, or "" (so `in` checks read naturally)."""
    if isinstance(body, dict) and isinstance(body.get("fault_message"), str):
        return body["fault_message"]
    return ""


def expect_204(resp, what, vmm=None):
    """An API answer that must be 204 No Content."""
    status, body = resp
    assert status == 204, "%s: expected 204, got %d %r\n%r" % (what, status, body, vmm)


def expect_400(resp, what, *words, ignore_case=False):
    """An API answer that must be 400 with a fault_message naming every one of words."""
    status, body = resp
    assert status == 400, "%s: expected 400, got %d %r" % (what, status, body)
    msg = fault(body)
    assert msg, "%s: no fault_message: %r" % (what, body)
    for w in words:
        found = w.lower() in msg.lower() if ignore_case else w in msg
        assert found, "%s: fault_message should mention %r: %r" % (what, w, msg)
    return msg


def vm_state(c):
    """The instance state GET / reports ("Not started", "Running", "Paused")."""
    status, body = c.get("/")
    assert status == 200, "GET /: %d %r" % (status, body)
    return body["state"]


# ---- a tern-vmm process ----

def tasks_of(pid):
    """(name, state, wchan, utime+stime ticks) for each thread of process pid."""
    tdir = "/proc/%d/task" % pid
    try:
        tids = sorted(os.listdir(tdir), key=int)
    except OSError:
        return
    for tid in tids:
        try:
            with open(os.path.join(tdir, tid, "stat")) as f:
                st = f.read()
            with open(os.path.join(tdir, tid, "wchan")) as f:
                wchan = f.read().strip() or "-"
        except OSError:
            continue
        comm = st[st.index("(") + 1:st.rindex(")")]
        fields = st[st.rindex(")") + 2:].split()
        yield comm, fields[0], wchan, int(fields[11]) + int(fields[12])  # fields 14, 15


def threads_of(pid):
    """Each thread of process pid: name, state, where it sleeps and its CPU ticks, to tell
    a vCPU spinning from one blocked when a guest has gone quiet."""
    if not os.path.isdir("/proc/%d/task" % pid):
        return "no process %d" % pid
    return "; ".join("%s %s %s %d ticks" % t for t in tasks_of(pid)) or "no threads"


class Vmm:
    """tern-vmm started with args (plus netns: run inside `ip netns exec NS`).

    stdout (the guest's serial console) and stderr are read by threads into lines with
    their arrival times, so tests can wait for output and check that none arrives.
    stdin: the console's input (default /dev/null; subprocess.PIPE lets a test type into
    the guest's console through self.proc.stdin).
    """

    def __init__(self, args, env=None, netns=None, log_name=None, stdin=subprocess.DEVNULL):
        self.args = list(args)
        cmd = [ternlib.vmm_path()] + self.args
        if netns:
            cmd = ["ip", "netns", "exec", netns] + cmd
        e = dict(os.environ)
        e.update(env or {})
        self.log_name = log_name
        self.out_lines = []  # (time, line)
        self.err_lines = []
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=e)
        self._threads = [threading.Thread(target=self._reader, args=(self.proc.stdout, self.out_lines),
                                          daemon=True),
                         threading.Thread(target=self._reader, args=(self.proc.stderr, self.err_lines),
                                          daemon=True)]
        for t in self._threads:
            t.start()

    def _reader(self, f, lines):
        for raw in iter(f.readline, b""):
            with self._cond:
                lines.append((time.time(), raw.decode(errors="replace").rstrip("\r\n")))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    @property
    def pid(self):
        return self.proc.pid

    def out(self):
        with self._cond:
            return "\n".join(l for _, l in self.out_lines)

    def err(self):
        with self._cond:
            return "\n".join(l for _, l in self.err_lines)

    def lines_since(self, t, prefix=""):
        with self._cond:
            return [l for ts, l in self.out_lines if ts >= t and l.startswith(prefix)]

    def wait_for(self, text, timeout=30, count=1, stream="out"):
        """Waits until `count` lines of stdout (or stderr) contain text; True if so."""
        lines = self.out_lines if stream == "out" else self.err_lines
        end = time.time() + timeout
        with self._cond:
            while True:
                if sum(1 for _, l in lines if text in l) >= count:
                    return True
                left = end - time.time()
                if left <= 0 or (self.proc.poll() is not None and not any(t.is_alive() for t in self._threads)):
                    return sum(1 for _, l in lines if text in l) >= count
                self._cond.wait(min(left, 0.2))

    def threads(self):
        """Each thread's name, state, where it sleeps and its CPU ticks: what a test prints
        when the guest has gone quiet, to tell a vCPU spinning from one blocked."""
        return threads_of(self.pid)

    def tail(self, n=20, stream="out"):
        """The last n lines of the console (or stderr)."""
        with self._cond:
            lines = self.out_lines if stream == "out" else self.err_lines
            return "\n".join(l for _, l in lines[-n:])

    def wait(self, timeout=30):
        """Exit status, or None if still running after timeout."""
        try:
            st = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        for t in self._threads:
            t.join(timeout=5)
        return st

    def stop(self):
        """Ends tern-vmm (SIGTERM, then SIGKILL) and writes its log; returns the status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            if self.wait(10) is None:
                self.proc.kill()
                self.wait(10)
        else:
            self.wait(10)
        self.save_log()
        return self.proc.returncode

    def save_log(self):
        if not self.log_name:
            return
        os.makedirs(ternlib.OUT, exist_ok=True)
        with open(os.path.join(ternlib.OUT, self.log_name), "w") as f:
            f.write("$ tern-vmm %s\n%s\n--- stderr\n%s\n" % (" ".join(self.args), self.out(), self.err()))

    def vcpu_cpu_ticks(self):
        """utime+stime (clock ticks) summed over the threads named vcpu*."""
        return sum(t[3] for t in tasks_of(self.pid) if t[0].startswith("vcpu"))

    def vcpu_threads(self):
        n = 0
        for tid in os.listdir("/proc/%d/task" % self.pid):
            try:
                with open("/proc/%d/task/%s/comm" % (self.pid, tid)) as f:
                    n += f.read().startswith("vcpu")
            except OSError:
                pass
        return n

    def __repr__(self):
        o = self.out()
        e = self.err()
        return "tern-vmm %s: status=%r\n--- stdout (tail)\n%s\n--- stderr (tail)\n%s" % (
            " ".join(self.args), self.proc.poll(), o[-2000:], e[-3000:])


def start_api_vmm(extra=(), env=None, netns=None, log_name=None, workdir=None, timeout=10,
                  sock_name="api.sock", stdin=subprocess.DEVNULL):
    """tern-vmm --api-sock WORKDIR/SOCK_NAME EXTRA...; returns (Vmm, ApiClient) once it listens."""
    ternlib.need_kvm()
    assert os.path.exists(ternlib.vmm_path()), "no %s: build it first" % ternlib.vmm_path()
    workdir = workdir or tempfile.mkdtemp(prefix="tern-api-")
    sock = os.path.join(workdir, sock_name)
    v = Vmm(["--api-sock", sock] + list(extra), env=env, netns=netns, log_name=log_name,
            stdin=stdin)
    if not wait_for_socket(sock, timeout, v.proc):
        v.stop()
        raise AssertionError("the API socket %s never accepted a connection: %r" % (sock, v))
    return v, ApiClient(sock)


# ---- network namespace with a TAP ----

class TapNetns:
    """A test-made network namespace holding TAP device `tap` (root and iproute2 only)."""

    def __init__(self, tag, tap="tap0"):
        self.name = "tern-%s-%d" % (tag, os.getpid())
        self.tap = tap
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        try:
            self.run("ip", "link", "set", "lo", "up")
            self.run("ip", "tuntap", "add", "dev", tap, "mode", "tap")
            self.run("ip", "link", "set", tap, "up")
        except Exception:
            self.close()
            raise

    def run(self, *cmd):
        subprocess.run(["ip", "netns", "exec", self.name] + list(cmd), check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def close(self):
        subprocess.run(["ip", "netns", "del", self.name], stderr=subprocess.DEVNULL)


def can_make_netns():
    import shutil
    return os.geteuid() == 0 and shutil.which("ip") is not None


# ---- Swagger ----

class _Loader(yaml.SafeLoader):
    """YAML 1.2 booleans only: Firecracker's `Off` (a logger level) stays a string."""


_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:bool"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                              list("tTfF"))


def load_yaml(path=FIRECRACKER_YAML):
    if not os.path.exists(path):
        raise ternlib.Missing("%s is missing" % path)
    with open(path) as f:
        return yaml.load(f, Loader=_Loader)


def resolve(spec, schema):
    """Follows $ref (#/definitions/NAME) until a schema without one."""
    while isinstance(schema, dict) and "$ref" in schema:
        ref = schema["$ref"]
        assert ref.startswith("#/definitions/"), "unsupported $ref %r" % ref
        schema = spec["definitions"][ref[len("#/definitions/"):]]
    return schema


def validate(spec, schema, value, where="$", strict=False):
    """Checks value against a Swagger schema (type object/string/integer/number/boolean/array,
    required, enum, properties, additionalProperties, items, minimum/maximum, $ref);
    returns a list of problems, empty when it conforms. Swagger allows properties a schema
    does not name (clients generated from it ignore them); strict counts them as problems."""
    schema = resolve(spec, schema)
    errs = []
    t = schema.get("type")
    checks = {
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
    }
    if t is not None:
        if t not in checks:
            return ["%s: schema type %r not supported by this checker" % (where, t)]
        if not checks[t](value):
            return ["%s: expected %s, got %r" % (where, t, value)]
    if "enum" in schema and value not in schema["enum"]:
        errs.append("%s: %r is not one of %r" % (where, value, schema["enum"]))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            errs.append("%s: %r < minimum %r" % (where, value, schema["minimum"]))
        if "maximum" in schema and value > schema["maximum"]:
            errs.append("%s: %r > maximum %r" % (where, value, schema["maximum"]))
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for k in schema.get("required", []):
            if k not in value:
                errs.append("%s: required %r missing" % (where, k))
        extra = schema.get("additionalProperties", True)
        for k, v in value.items():
            if k in props:
                errs += validate(spec, props[k], v, "%s.%s" % (where, k), strict)
            elif extra is False:
                errs.append("%s: unexpected property %r" % (where, k))
            elif isinstance(extra, dict):
                errs += validate(spec, extra, v, "%s.%s" % (where, k), strict)
            elif strict and props:
                errs.append("%s: property %r is not in the schema" % (where, k))
    if isinstance(value, list) and "items" in schema:
        for i, v in enumerate(value):
            errs += validate(spec, schema["items"], v, "%s[%d]" % (where, i), strict)
    return errs


def example(spec, schema, overrides=None):
    """A value built from a schema: required properties only (plus overrides), enums'
    first value, integers at their minimum (or 1)."""
    schema = resolve(spec, schema)
    overrides = overrides or {}
    t = schema.get("type")
    if "enum" in schema:
        return schema["enum"][0]
    if t == "object" or "properties" in schema:
        out = {}
        for k in schema.get("required", []):
            out[k] = example(spec, schema.get("properties", {}).get(k, {"type": "string"}))
        out.update(overrides)
        return out
    if t == "array":
        return []
    if t == "integer" or t == "number":
        return schema.get("minimum", 1)
    if t == "boolean":
        return False
    return "x"


def operations(spec):
    """[(METHOD, path template, operation)] in the document's order."""
    ops = []
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method in ("get", "put", "patch", "post", "delete"):
                ops.append((method.upper(), path, op))
    return ops


def body_schema(op):
    for p in op.get("parameters", []):
        if p.get("in") == "body":
            return p.get("schema")
    return None


def response_schema(op, status):
    r = op.get("responses", {}).get(status) or op.get("responses", {}).get(str(status))
    return r.get("schema") if r else None


def documented_endpoints(path=API_DOC):
    """The set of "METHOD /path" that docs/api.md's endpoint table lists as implemented."""
    found = set()
    in_table = False
    with open(path) as f:
        for line in f:
            if line.startswith("## "):
                in_table = line.strip() == "## Endpoints"
                continue
            m = re.match(r"^\| `(GET|PUT|PATCH|POST|DELETE) ([^`]+)`", line)
            if in_table and m:
                found.add("%s %s" % (m.group(1), m.group(2)))
    return found
