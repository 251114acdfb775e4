"""Every operation of Firecracker's API document (../shared/firecracker-api.yaml) against
tern-vmm --api-sock, as docs/api.md says tern answers it.

Implemented operations (the endpoint table of docs/api.md) get a valid request built
from the document's schema with sensible values (the counter tiny guest as kernel, a
temporary file as drive, a TAP in a test-made network namespace): the status must be
one the document lists for the operation, GET bodies must conform to its schemas and
error bodies to its Error definition. Operations docs/api.md does not list must answer
400 "... not implemented ...". Pre-boot requests run before InstanceStart; then the
post-boot rules: pre-boot-only resources refused with Firecracker's words, GET / Running,
PATCH /vm pauses and resumes.

Where docs/api.md is silent the test expects what Firecracker does; each such place
says "assumption" in a comment.
"""
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
import api  # noqa: E402
import ternlib  # noqa: E402

AFTER_START = "The requested operation is not supported after starting the microVM."
INVALID = "Invalid request method and/or path"
PATH_IDS = {"{drive_id}": "rootfs", "{iface_id}": "eth0", "{id}": "pmem0"}
PRE_BOOT_ONLY = ["PUT /machine-config", "PATCH /machine-config", "PUT /boot-source",
                 "PUT /drives/{drive_id}", "PUT /network-interfaces/{iface_id}", "PUT /vsock",
                 "PUT /entropy", "PUT /logger", "PUT /metrics"]
# The order pre-boot configuration is sent in (firecracker-go-sdk's, logger and metrics first).
PRE_BOOT_ORDER = ["PUT /logger", "PUT /metrics", "PUT /machine-config", "PATCH /machine-config",
                  "PUT /boot-source", "PUT /drives/{drive_id}", "PATCH /drives/{drive_id}",
                  "PUT /network-interfaces/{iface_id}", "PATCH /network-interfaces/{iface_id}",
                  "PUT /vsock", "PUT /entropy"]


def concrete(path):
    for k, v in PATH_IDS.items():
        path = path.replace(k, v)
    return path


class Conformance:
    def __init__(self, spec, work, netns):
        self.spec = spec
        self.work = work
        self.netns = netns
        self.problems = []
        self.done = set()
        self.disk = self.tmpfile("disk.img", 1 << 20)
        self.disk2 = self.tmpfile("disk2.img", 1 << 20)
        self.log = self.tmpfile("tern.log", 0)
        self.metrics = self.tmpfile("metrics.json", 0)
        self.vsock = os.path.join(work, "v.sock")
        self.ops = {"%s %s" % (m, p): op for m, p, op in api.operations(spec)}

    def tmpfile(self, name, size):
        p = os.path.join(self.work, name)
        with open(p, "wb") as f:
            f.truncate(size)
        return p

    def fail(self, what):
        self.problems.append(what)

    # The valid request of each implemented operation (overrides on the schema's example).
    def valid_body(self, key):
        bodies = {
            # assumption: log_path and metrics_path exist (Firecracker opens, never creates, them)
            "PUT /logger": {"level": "Info", "log_path": self.log, "show_level": False,
                            "show_log_origin": False},
            "PUT /metrics": {"metrics_path": self.metrics},
            "PUT /machine-config": {"vcpu_count": 1, "mem_size_mib": 64, "smt": False,
                                    "track_dirty_pages": False},
            "PATCH /machine-config": {"mem_size_mib": 128},
            "PUT /boot-source": {"kernel_image_path": ternlib.guest_path("counter"),
                                 "boot_args": "console=ttyS0"},
            "PUT /drives/{drive_id}": {"drive_id": "rootfs", "path_on_host": self.disk,
                                       "is_root_device": True, "is_read_only": False,
                                       "cache_type": "Unsafe", "io_engine": "Sync"},
            "PATCH /drives/{drive_id}": {"drive_id": "rootfs", "path_on_host": self.disk2},
            "PUT /network-interfaces/{iface_id}": {"iface_id": "eth0", "host_dev_name": "tap0",
                                                   "guest_mac": "06:00:ac:10:00:02"},
            "PATCH /network-interfaces/{iface_id}": {"iface_id": "eth0"},
            "PUT /vsock": {"guest_cid": 3, "uds_path": self.vsock},
            "PUT /entropy": {},
            "PUT /actions": {"action_type": "InstanceStart"},
            "PATCH /vm": {"state": "Paused"},
            "PUT /snapshot/create": {"snapshot_path": os.path.join(self.work, "snap.state"),
                                     "mem_file_path": os.path.join(self.work, "snap.mem"),
                                     "snapshot_type": "Full"},
            "PUT /snapshot/load": {"snapshot_path": os.path.join(self.work, "snap.state"),
                                   "mem_backend": {"backend_type": "File",
                                                   "backend_path": os.path.join(self.work, "snap.mem")},
                                   "resume_vm": True},
        }
        if key in bodies:
            return bodies[key]
        schema = api.body_schema(self.ops[key]) if key in self.ops else None
        return api.example(self.spec, schema) if schema else None

    def send(self, c, key, body=None, use_valid=True):
        method, path = key.split(" ", 1)
        if body is None and use_valid:
            body = self.valid_body(key)
        return c.request(method, concrete(path), body)

    def check_error_body(self, key, status, body):
        errs = api.validate(self.spec, {"$ref": "#/definitions/Error"}, body)
        if errs or not isinstance(body, dict) or not isinstance(body.get("fault_message"), str) \
                or not body["fault_message"]:
            self.fail("%s: %d error body is not {\"fault_message\": string}: %r %s" % (key, status, body, errs))

    def expect_ok(self, c, key, body=None):
        """A valid request: a 2xx the document lists; GET bodies conform to its schema."""
        self.done.add(key)
        status, got = self.send(c, key, body)
        op = self.ops[key]
        listed = [int(s) for s in op.get("responses", {}) if str(s).isdigit()]
        if status not in listed or not 200 <= status < 300:
            self.fail("%s: status %d (document lists %s) %r" % (key, status, listed, got))
            return None
        if status == 204 and c.last_body:
            self.fail("%s: 204 with a body %r" % (key, c.last_body[:200]))
        schema = api.response_schema(op, status)
        if schema:
            errs = api.validate(self.spec, schema, got)
            if errs:
                self.fail("%s: response does not conform: %s; body %r" % (key, "; ".join(errs), got))
        return got

    def expect_400(self, c, key, words, body=None, use_valid=True, label=None):
        status, got = self.send(c, key, body, use_valid)
        label = label or key
        if status != 400:
            self.fail("%s: expected 400 (%s), got %d %r" % (label, words, status, got))
            return
        self.check_error_body(label, status, got)
        if words and words not in api.fault(got):
            self.fail("%s: fault_message should contain %r: %r" % (label, words, got))

    def state(self, c):
        status, got = c.get("/")
        if status != 200:
            self.fail("GET /: %d %r" % (status, got))
            return None
        return got.get("state")


def test_every_operation_of_the_firecracker_document():
    ternlib.need_kvm()
    spec = api.load_yaml()
    implemented = api.documented_endpoints()
    assert len(implemented) >= 15, "docs/api.md's endpoint table not found: %r" % implemented
    work = tempfile.mkdtemp(prefix="tern-conf-")
    netns = api.TapNetns("conf") if api.can_make_netns() else None
    vmm = None
    try:
        t = Conformance(spec, work, netns)
        undocumented = sorted(k for k in implemented if k not in t.ops)
        assert not undocumented, "docs/api.md lists endpoints the document lacks: %r" % undocumented
        vmm, c = api.start_api_vmm(["--id", "conf-test"], netns=netns and netns.name,
                                   log_name="api-conformance.log", workdir=work)
        run_checks(t, c, vmm, implemented)
        assert not t.problems, "%d problems:\n%s\n%r" % (len(t.problems), "\n".join(t.problems), vmm)
    finally:
        if vmm:
            vmm.stop()
        if netns:
            netns.close()
        shutil.rmtree(work, ignore_errors=True)


def run_checks(t, c, vmm, implemented):
    # -- before boot: the GETs
    info = t.expect_ok(c, "GET /")
    if info and (info.get("state") != "Not started" or info.get("id") != "conf-test"):
        t.fail("GET / before boot: %r (expected state 'Not started', id 'conf-test')" % info)
    t.expect_ok(c, "GET /version")
    t.expect_ok(c, "GET /machine-config")
    t.expect_ok(c, "GET /vm/config")

    # -- pre-boot configuration
    for key in PRE_BOOT_ORDER:
        assert key in implemented, "docs/api.md no longer lists %s" % key
        if "network-interfaces" in key and not t.netns:
            t.done.add(key)  # no TAP without root: left out (the lifecycle test says so too)
            continue
        t.expect_ok(c, key)
    mc = t.expect_ok(c, "GET /machine-config")
    if mc and (mc.get("vcpu_count") != 1 or mc.get("mem_size_mib") != 128):
        t.fail("GET /machine-config after PUT (1 vCPU, 64 MiB) and PATCH (128 MiB): %r" % mc)

    # -- snapshots: nothing to snapshot yet, and a configured process cannot load one (loading
    # into a fresh process is tests/guest/test_snapshot.py's)
    t.expect_400(c, "PUT /snapshot/create", "no microVM", label="snapshot/create before boot")
    t.expect_400(c, "PUT /snapshot/load", "not allowed after configuring",
                 label="snapshot/load after configuration")

    # -- what tern does not implement: 400 naming it, never a silent 204
    for key, op in t.ops.items():
        if key in implemented:
            continue
        t.done.add(key)
        t.expect_400(c, key, "not implemented")
    if t.state(c) != "Not started":
        t.fail("unimplemented operations changed the state")

    # -- unknown paths and methods
    t.expect_400(c, "GET /no-such-thing", INVALID, label="unknown path")
    t.expect_400(c, "PUT /no-such-thing", INVALID, body={}, label="unknown path (PUT)")
    t.expect_400(c, "DELETE /machine-config", INVALID, use_valid=False, label="DELETE /machine-config")
    t.expect_400(c, "GET /actions", INVALID, use_valid=False, label="GET /actions")
    t.expect_400(c, "POST /boot-source", INVALID, body={}, label="POST /boot-source")
    t.expect_400(c, "PUT /", INVALID, body={}, label="PUT /")
    t.expect_400(c, "PATCH /version", INVALID, body={}, label="PATCH /version")

    # -- keep-alive: several requests on one connection (assumption: HTTP/1.1 persistent
    # connections, as Firecracker's server and firecracker-go-sdk use them)
    kc = api.ApiClient(c.path, keepalive=True)
    try:
        for _ in range(3):
            status, _ = kc.get("/")
            if status != 200:
                t.fail("keep-alive: GET / on a reused connection: %d" % status)
                break
    except Exception as e:  # noqa: BLE001 - reported with the rest
        t.fail("keep-alive: the server closed a persistent connection: %r" % e)
    finally:
        kc.close()

    # -- boot
    t.expect_ok(c, "PUT /actions")
    if not vmm.wait_for("count ", timeout=30):
        t.fail("the counter guest printed no count after InstanceStart")
    if t.state(c) != "Running":
        t.fail("GET / after InstanceStart: not Running")
    t.expect_ok(c, "GET /vm/config")
    t.expect_ok(c, "GET /machine-config")

    # -- after boot
    for key in PRE_BOOT_ONLY:
        if "network-interfaces" in key and not t.netns:
            continue
        t.expect_400(c, key, AFTER_START, label="%s after boot" % key)
    # After boot (before boot the drive became disk2): another image moves the drive onto it
    # (Firecracker's swap) and back, one that cannot be opened is refused, and its own path is a
    # 204 (the size read again, here unchanged: nothing for the guest).
    t.expect_ok(c, "PATCH /drives/{drive_id}", body={"drive_id": "rootfs", "path_on_host": t.disk})
    t.expect_400(c, "PATCH /drives/{drive_id}", "cannot open",
                 body={"drive_id": "rootfs", "path_on_host": t.disk + ".missing"},
                 label="PATCH drive after boot onto a missing image")
    t.expect_ok(c, "PATCH /drives/{drive_id}", body={"drive_id": "rootfs", "path_on_host": t.disk2})
    t.expect_ok(c, "PATCH /drives/{drive_id}", body={"drive_id": "rootfs", "path_on_host": t.disk2})
    if t.netns:
        # Rate limiters are what an interface PATCH changes; with none given, Firecracker's
        # PATCH is a no-op (assumption: tern may answer 204 or 400 to that, so send one).
        limited = {"iface_id": "eth0", "rx_rate_limiter": {"bandwidth": {"size": 1000, "refill_time": 100}}}
        t.expect_400(c, "PATCH /network-interfaces/{iface_id}", "not implemented", body=limited,
                     label="PATCH network interface rate limiter after boot")
    t.expect_400(c, "PUT /actions", None, body={"action_type": "InstanceStart"},
                 label="a second InstanceStart")
    for action in ("FlushMetrics", "SendCtrlAltDel"):
        status, got = c.put("/actions", {"action_type": action})
        if status != 204:
            t.fail("PUT /actions %s after boot: %d %r" % (action, status, got))
    if t.state(c) != "Running":
        t.fail("GET / after the post-boot refusals: not Running")

    t.expect_ok(c, "PATCH /vm", {"state": "Paused"})
    if t.state(c) != "Paused":
        t.fail("GET / after PATCH /vm Paused: not Paused")
    t.expect_ok(c, "PATCH /vm", {"state": "Paused"})  # docs/api.md: a 204 no-op
    t.expect_ok(c, "PUT /snapshot/create")
    for f in ("snap.state", "snap.mem"):
        if not os.path.exists(os.path.join(t.work, f)):
            t.fail("PUT /snapshot/create answered 204 but %s is missing" % f)
    t.expect_ok(c, "GET /")
    t.expect_ok(c, "PATCH /vm", {"state": "Resumed"})
    if t.state(c) != "Running":
        t.fail("GET / after PATCH /vm Resumed: not Running")
    seen = len(vmm.lines_since(0, "count "))
    if not vmm.wait_for("count ", timeout=10, count=seen + 1):
        t.fail("no count after resume")

    # -- the snapshot taken above, loaded into a fresh tern-vmm once the first one is gone
    # (its disk is locked while it runs); it must have lived through everything above
    if vmm.proc.poll() is not None:
        t.fail("tern-vmm exited (%r)" % vmm.proc.returncode)
    vmm.stop()
    load_work = tempfile.mkdtemp(prefix="tern-conf-load-")
    v2 = None
    try:
        v2, c2 = api.start_api_vmm(["--id", "conf-load"], netns=t.netns and t.netns.name,
                                   log_name="api-conformance-load.log", workdir=load_work)
        t.expect_ok(c2, "PUT /snapshot/load")
        if t.state(c2) != "Running":
            t.fail("GET / after PUT /snapshot/load with resume_vm: not Running")
        if not v2.wait_for("count ", timeout=10):
            t.fail("the restored counter guest printed no count")
    finally:
        if v2:
            v2.stop()
        shutil.rmtree(load_work, ignore_errors=True)

    missing = sorted(set(t.ops) - t.done)
    if missing:
        t.fail("operations never exercised: %r" % missing)

