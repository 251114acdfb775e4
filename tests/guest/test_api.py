"""tern-vmm's control API (docs/api.md) with the tiny guests: the lifecycle as
firecracker-go-sdk drives it, pause and resume measured as vCPU time and serial output,
Ctrl-Alt-Del through the i8042, --config-file, and bad input of every kind, each of
which must leave the VM as it was.

The counter guest (guest/tiny/counter.c) prints "count N" a few times a second and never
stops; the cad guest (guest/tiny/cad.c) exits 0 once it reads Ctrl-Alt-Del's scan codes.
Where docs/api.md is silent a comment says "assumption" and follows Firecracker.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
import api  # noqa: E402
import ternlib  # noqa: E402

AFTER_START = "The requested operation is not supported after starting the microVM."
COUNTER = ternlib.guest_path("counter")
CAD = ternlib.guest_path("cad")


def workdir(tag):
    return tempfile.mkdtemp(prefix="tern-api-%s-" % tag)


def sized_file(path, size=1 << 20):
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def counts(vmm):
    return len(vmm.lines_since(0, "count "))


def still_counting(vmm, c, what, timeout=5):
    """The VM is unaffected: Running, and the counter prints another line."""
    assert api.vm_state(c) == "Running", "%s: the VM is no longer Running: %r" % (what, vmm)
    n = counts(vmm)
    assert vmm.wait_for("count ", timeout=timeout, count=n + 1), \
        "%s: the counter stopped counting: %r" % (what, vmm)


def boot_counter(c, vmm, extra_config=None):
    api.expect_204(c.put("/machine-config", {"vcpu_count": 1, "mem_size_mib": 64}), "PUT /machine-config", vmm)
    api.expect_204(c.put("/boot-source", {"kernel_image_path": COUNTER, "boot_args": "console=ttyS0"}),
       "PUT /boot-source", vmm)
    for path, body in (extra_config or []):
        api.expect_204(c.put(path, body), "PUT " + path, vmm)
    api.expect_204(c.put("/actions", {"action_type": "InstanceStart"}), "InstanceStart", vmm)
    assert vmm.wait_for("count ", timeout=30, count=2), "no count lines after InstanceStart: %r" % vmm


# ---- (a) lifecycle ----

def test_lifecycle_in_go_sdk_order_with_pause_and_resume():
    work = workdir("life")
    netns = api.TapNetns("life") if api.can_make_netns() else None
    vmm = None
    try:
        # --debug-exit with --api-sock: VM flags other than --kernel are defaults for the API.
        vmm, c = api.start_api_vmm(["--debug-exit", "--id", "lifecycle"], netns=netns and netns.name,
                                   log_name="api-lifecycle.log", workdir=work)
        assert api.vm_state(c) == "Not started"
        api.expect_204(c.put("/machine-config", {"vcpu_count": 1, "mem_size_mib": 128, "smt": False}),
           "PUT /machine-config", vmm)
        api.expect_204(c.put("/boot-source", {"kernel_image_path": COUNTER, "boot_args": "console=ttyS0"}),
           "PUT /boot-source", vmm)
        api.expect_204(c.put("/drives/rootfs", {"drive_id": "rootfs", "path_on_host": sized_file(os.path.join(work, "d")),
                                    "is_root_device": True, "is_read_only": False}), "PUT /drives", vmm)
        if netns:
            api.expect_204(c.put("/network-interfaces/eth0", {"iface_id": "eth0", "host_dev_name": "tap0",
                                                  "guest_mac": "06:00:ac:10:00:02"}),
               "PUT /network-interfaces", vmm)
        api.expect_204(c.put("/vsock", {"guest_cid": 3, "uds_path": os.path.join(work, "v.sock")}), "PUT /vsock", vmm)
        api.expect_204(c.put("/actions", {"action_type": "InstanceStart"}), "InstanceStart", vmm)
        assert api.vm_state(c) == "Running"
        assert vmm.wait_for("count ", timeout=30, count=2), "no count lines: %r" % vmm
        assert vmm.vcpu_threads() == 1, "expected one vcpu thread: %r" % vmm

        # Paused: no vCPU time, no new serial lines.
        api.expect_204(c.patch("/vm", {"state": "Paused"}), "PATCH /vm Paused", vmm)
        assert api.vm_state(c) == "Paused"
        time.sleep(0.3)  # output already queued may still drain
        t0, ticks0 = time.time(), vmm.vcpu_cpu_ticks()
        time.sleep(1.2)
        ticks1 = vmm.vcpu_cpu_ticks()
        new = vmm.lines_since(t0, "count ")
        assert ticks1 - ticks0 <= 2, "paused vCPU used %d ticks in 1.2 s: %r" % (ticks1 - ticks0, vmm)
        assert not new, "the guest printed while paused: %r" % new
        assert api.vm_state(c) == "Paused"

        # Resumed: counting and CPU time go on.
        n = counts(vmm)
        api.expect_204(c.patch("/vm", {"state": "Resumed"}), "PATCH /vm Resumed", vmm)
        assert api.vm_state(c) == "Running"
        ticks2 = vmm.vcpu_cpu_ticks()
        assert vmm.wait_for("count ", timeout=10, count=n + 2), "no counts after resume: %r" % vmm
        time.sleep(1)
        ticks3 = vmm.vcpu_cpu_ticks()
        hz = os.sysconf("SC_CLK_TCK")
        assert ticks3 - ticks2 >= hz // 5, "resumed vCPU used only %d ticks: %r" % (ticks3 - ticks2, vmm)

        status, conf = c.get("/vm/config")
        assert status == 200, "GET /vm/config: %d %r" % (status, conf)
        assert conf["boot-source"]["kernel_image_path"] == COUNTER, conf
        assert conf["machine-config"]["vcpu_count"] == 1 and conf["machine-config"]["mem_size_mib"] == 128, conf
        assert [d["drive_id"] for d in conf.get("drives") or []] == ["rootfs"], conf
        assert conf["vsock"]["guest_cid"] == 3, conf
        if netns:
            assert [n["iface_id"] for n in conf.get("network-interfaces") or []] == ["eth0"], conf
        assert vmm.proc.poll() is None, "tern-vmm exited: %r" % vmm
    finally:
        if vmm:
            vmm.stop()
        if netns:
            netns.close()
        shutil.rmtree(work, ignore_errors=True)


def test_network_interface_put_checks():
    if not api.can_make_netns():
        raise ternlib.Missing("PUT /network-interfaces needs a TAP: root and iproute2 (netns)")
    # The lifecycle test put a TAP interface; here only that an absent TAP is refused.
    work = workdir("nonet")
    netns = api.TapNetns("nonet")
    vmm = None
    try:
        vmm, c = api.start_api_vmm([], netns=netns.name, log_name="api-nonet.log", workdir=work)
        api.expect_204(c.put("/network-interfaces/eth0", {"iface_id": "eth0", "host_dev_name": "tap0"}), "existing TAP", vmm)
        # assumption: tern opens the TAP at PUT time, so a bad name is refused then (as Firecracker)
        status, body = c.put("/network-interfaces/eth1", {"iface_id": "eth1", "host_dev_name": "x" * 40})
        assert status == 400 and api.fault(body), "a TAP name over IFNAMSIZ: %d %r" % (status, body)
        status, body = c.put("/network-interfaces/eth2", {"iface_id": "eth3", "host_dev_name": "tap0"})
        assert status == 400 and api.fault(body), "iface_id differs from the path: %d %r" % (status, body)
    finally:
        if vmm:
            vmm.stop()
        netns.close()
        shutil.rmtree(work, ignore_errors=True)


def test_send_ctrl_alt_del_reaches_the_guest_keyboard():
    work = workdir("cad")
    vmm = None
    try:
        vmm, c = api.start_api_vmm(["--debug-exit"], log_name="api-cad.log", workdir=work)
        api.expect_204(c.put("/boot-source", {"kernel_image_path": CAD, "boot_args": "console=ttyS0"}),
           "PUT /boot-source", vmm)
        api.expect_204(c.put("/actions", {"action_type": "InstanceStart"}), "InstanceStart", vmm)
        assert vmm.wait_for("cad: ready", timeout=30), "cad guest not ready: %r" % vmm
        api.expect_204(c.put("/actions", {"action_type": "SendCtrlAltDel"}), "SendCtrlAltDel", vmm)
        assert vmm.wait_for("cad: ctrl-alt-del", timeout=10), "no ctrl-alt-del in the guest: %r" % vmm
        st = vmm.wait(10)
        assert st == 0, "tern-vmm exit status %r: %r" % (st, vmm)
        out = vmm.out()
        # Set-1 codes through the controller's translation: Ctrl, Alt, e0 Delete.
        for b in ("0x1d", "0x38", "0xe0", "0x53"):
            assert "cad: byte %s" % b in out, "byte %s not seen: %r" % (b, vmm)
    finally:
        if vmm:
            vmm.stop()
        shutil.rmtree(work, ignore_errors=True)


# ---- (b) --config-file ----

def config_doc(work):
    return {
        "boot-source": {"kernel_image_path": COUNTER, "boot_args": "console=ttyS0"},
        "machine-config": {"vcpu_count": 1, "mem_size_mib": 128, "smt": False},
        "drives": [{"drive_id": "rootfs", "path_on_host": sized_file(os.path.join(work, "d")),
                    "is_root_device": True, "is_read_only": False}],
        "vsock": {"guest_cid": 3, "uds_path": os.path.join(work, "v.sock")},
    }


def write_json(path, doc):
    with open(path, "w") as f:
        json.dump(doc, f)
    return path


def unlink(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def test_vm_config_document_boots_with_config_file():
    """GET /vm/config of a VM configured through the API, fed back as --config-file."""
    work = workdir("cfg")
    vmm = None
    try:
        vmm, c = api.start_api_vmm([], log_name="api-cfg-source.log", workdir=work)
        doc = config_doc(work)
        api.expect_204(c.put("/machine-config", doc["machine-config"]), "PUT /machine-config", vmm)
        api.expect_204(c.put("/boot-source", doc["boot-source"]), "PUT /boot-source", vmm)
        api.expect_204(c.put("/drives/rootfs", doc["drives"][0]), "PUT /drives", vmm)
        api.expect_204(c.put("/vsock", doc["vsock"]), "PUT /vsock", vmm)
        status, exported = c.get("/vm/config")
        assert status == 200, "GET /vm/config: %d %r" % (status, exported)
        vmm.stop()
        vmm = None
        unlink(doc["vsock"]["uds_path"])
        f = write_json(os.path.join(work, "vm.json"), exported)
        vmm = api.Vmm(["--config-file", f, "--no-api", "--debug-exit"], log_name="api-cfg-noapi.log")
        assert vmm.wait_for("count ", timeout=30, count=2), "--config-file did not boot the counter: %r" % vmm
        assert vmm.vcpu_threads() == 1
        assert vmm.proc.poll() is None
    finally:
        if vmm:
            vmm.stop()
        shutil.rmtree(work, ignore_errors=True)


def same_modulo_defaults(spec, schema, want, got, where, problems):
    """got (GET /vm/config) has every value of want (the file); what it adds is a default."""
    schema = api.resolve(spec, schema or {})
    if isinstance(want, dict):
        if not isinstance(got, dict):
            problems.append("%s: %r became %r" % (where, want, got))
            return
        props = schema.get("properties", {})
        for k, v in want.items():
            same_modulo_defaults(spec, props.get(k), v, got.get(k), "%s.%s" % (where, k), problems)
        for k in set(got) - set(want):
            sub = api.resolve(spec, props.get(k, {}))
            v = got[k]
            if v in (None, False, [], {}) or ("default" in sub and v == sub["default"]):
                continue
            problems.append("%s.%s: %r is neither in the file nor a default" % (where, k, v))
    elif isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            problems.append("%s: %r became %r" % (where, want, got))
            return
        for i, (w, g) in enumerate(zip(want, got)):
            same_modulo_defaults(spec, schema.get("items"), w, g, "%s[%d]" % (where, i), problems)
    elif want != got:
        problems.append("%s: %r became %r" % (where, want, got))


def test_config_file_with_api_reports_the_same_document():
    spec = api.load_yaml()
    work = workdir("cfg2")
    vmm = None
    try:
        doc = config_doc(work)
        f = write_json(os.path.join(work, "vm.json"), doc)
        vmm, c = api.start_api_vmm(["--config-file", f, "--debug-exit"], log_name="api-cfg-api.log",
                                   workdir=work)
        assert vmm.wait_for("count ", timeout=30, count=2), "no count lines: %r" % vmm
        assert api.vm_state(c) == "Running"
        status, got = c.get("/vm/config")
        assert status == 200, "GET /vm/config: %d %r" % (status, got)
        problems = []
        same_modulo_defaults(spec, {"$ref": "#/definitions/FullVmConfiguration"}, doc, got, "$", problems)
        assert not problems, "GET /vm/config differs from the file:\n%s\n%r" % ("\n".join(problems), got)
        # Booted from the file: the pre-boot resources are closed now.
        api.expect_400(c.put("/boot-source", doc["boot-source"]), "PUT /boot-source", AFTER_START)
    finally:
        if vmm:
            vmm.stop()
        shutil.rmtree(work, ignore_errors=True)


# ---- (c) bad input ----

def test_bad_field_values_leave_the_configuration_alone():
    work = workdir("badf")
    vmm = None
    try:
        vmm, c = api.start_api_vmm([], log_name="api-bad-fields.log", workdir=work)
        api.expect_204(c.put("/machine-config", {"vcpu_count": 2, "mem_size_mib": 64}), "PUT /machine-config", vmm)
        status, before = c.get("/machine-config")
        assert status == 200
        cases = [
            ('{"vcpu_count": 1, "mem_size_mib": ', "malformed JSON", []),
            ('{"vcpu_count": 1 "mem_size_mib": 64}', "malformed JSON (missing comma)", []),
            ({"vcpu_count": "2", "mem_size_mib": 64}, "vcpu_count as a string", ["vcpu_count"]),
            ({"vcpu_count": 1.5, "mem_size_mib": 64}, "vcpu_count as a float", ["vcpu_count"]),
            ({"vcpu_count": 1, "mem_size_mib": None}, "mem_size_mib null", ["mem_size_mib"]),
            ({"vcpu_count": 0, "mem_size_mib": 64}, "vcpu_count 0", ["vcpu_count", "254"]),
            ({"vcpu_count": 255, "mem_size_mib": 64}, "vcpu_count 255", ["vcpu_count", "254"]),
            ({"vcpu_count": 1, "mem_size_mib": 0}, "mem_size_mib 0", ["mem_size_mib", "16", "1048576"]),
            ({"vcpu_count": 1, "mem_size_mib": 1 << 40}, "mem_size_mib 2^40", ["mem_size_mib", "1048576"]),
            ({"vcpu_count": 1, "mem_size_mib": 64, "foo": 1}, "unknown field", ["foo"]),
            ({"mem_size_mib": 64}, "PUT without the required vcpu_count", ["vcpu_count"]),
            ([1, 2], "an array body", []),
        ]
        for body, what, words in cases:
            msg = api.expect_400(c.put("/machine-config", body), what, *words)
            if "malformed" in what:
                # assumption: the message says it is about JSON (Firecracker: "...deserializing the json body...")
                assert "json" in msg.lower(), "%s: the message should say JSON: %r" % (what, msg)
            assert api.vm_state(c) == "Not started", what
            status, now = c.get("/machine-config")
            assert status == 200 and now == before, "%s changed the configuration: %r -> %r" % (what, before, now)
        api.expect_400(c.patch("/machine-config", {"vcpu_count": 0}), "PATCH vcpu_count 0", "vcpu_count")
        api.expect_400(c.patch("/machine-config", {"smt": True}), "smt true", "not implemented")
        api.expect_400(c.put("/boot-source", {"kernel_image_path": "/nonexistent/k"}), "missing kernel",
                   "/nonexistent/k")
        api.expect_400(c.put("/boot-source", {"kernel_image_path": COUNTER, "bogus": 1}), "unknown field", "bogus")
        api.expect_400(c.put("/drives/rootfs", {"drive_id": "rootfs", "path_on_host": "/nonexistent/d",
                                            "is_root_device": False}), "missing drive file")
        # Before boot PATCH's tern_format says how the drive's image is opened: checked now.
        raw = os.path.join(work, "d.img")
        with open(raw, "wb") as f:
            f.truncate(1 << 20)
        api.expect_204(c.put("/drives/d0", {"drive_id": "d0", "path_on_host": raw, "is_root_device": False}),
                       "PUT /drives", vmm)
        api.expect_400(c.patch("/drives/d0", {"drive_id": "d0", "tern_format": "Qcow2"}),
                       "a raw file as qcow2", "d.img")
        api.expect_400(c.patch("/drives/d0", {"drive_id": "d0", "tern_format": "Vmdk"}), "tern_format Vmdk",
                       "tern_format")
        api.expect_204(c.patch("/drives/d0", {"drive_id": "d0", "tern_format": "Raw"}), "tern_format Raw", vmm)
        status, conf = c.get("/vm/config")
        assert status == 200 and conf["drives"][0].get("tern_format") == "Raw", conf
        api.expect_400(c.put("/vsock", {"guest_cid": 2, "uds_path": os.path.join(work, "v")}), "guest_cid 2",
                   "guest_cid")
        api.expect_400(c.put("/logger", {"level": "Loud"}), "logger level", "level")
        api.expect_400(c.patch("/vm", {"state": "Sleeping"}), "PATCH /vm bad state", "state")
        status, now = c.get("/machine-config")
        assert now == before, "configuration changed: %r -> %r" % (before, now)
        assert api.vm_state(c) == "Not started"
    finally:
        if vmm:
            vmm.stop()
        shutil.rmtree(work, ignore_errors=True)


def test_actions_in_the_wrong_state():
    work = workdir("acts")
    vmm = None
    try:
        vmm, c = api.start_api_vmm([], log_name="api-actions.log", workdir=work)
        api.expect_400(c.put("/actions", {"action_type": "InstanceStart"}), "InstanceStart without boot-source")
        api.expect_400(c.put("/actions", {"action_type": "SendCtrlAltDel"}), "SendCtrlAltDel before boot")
        api.expect_400(c.put("/actions", {"action_type": "SendPowerButton"}), "SendPowerButton before boot",
                       "running")
        api.expect_400(c.put("/actions", {"action_type": "Reboot"}), "unknown action", "action_type")
        api.expect_400(c.put("/actions", {}), "no action_type", "action_type")
        # A readable file that is no kernel passes PUT /boot-source (only the path is checked
        # there) and is refused by InstanceStart with a 400; the process keeps serving.
        notkernel = os.path.join(work, "not-a-kernel")
        sized_file(notkernel, 4096)
        api.expect_204(c.put("/boot-source", {"kernel_image_path": notkernel}), "boot-source (not a kernel)")
        api.expect_400(c.put("/actions", {"action_type": "InstanceStart"}), "InstanceStart of a non-kernel",
                   "kernel_image_path")
        assert api.vm_state(c) == "Not started"
        boot_counter(c, vmm)
        api.expect_400(c.put("/actions", {"action_type": "FlushMetrics"}), "FlushMetrics without metrics")
        still_counting(vmm, c, "FlushMetrics without metrics")
        api.expect_400(c.put("/actions", {"action_type": "InstanceStart"}), "a second InstanceStart")
        still_counting(vmm, c, "a second InstanceStart")
        api.expect_400(c.put("/machine-config", {"vcpu_count": 2, "mem_size_mib": 64}), "machine-config after boot",
                   AFTER_START)
        api.expect_400(c.put("/boot-source", {"kernel_image_path": COUNTER}), "boot-source after boot", AFTER_START)
        still_counting(vmm, c, "pre-boot resources after boot")
    finally:
        if vmm:
            vmm.stop()
        shutil.rmtree(work, ignore_errors=True)


def http_request(method, path, body=b"", headers=()):
    head = "%s %s HTTP/1.1\r\nHost: localhost\r\n" % (method, path)
    for h in headers:
        head += h + "\r\n"
    if body:
        head += "Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
    return head.encode() + b"\r\n" + body


IDLE_MS = 2000  # TERN_API_IDLE_MS of test_bad_http_while_running


def test_bad_http_while_running():
    work = workdir("http")
    vmm = None
    try:
        vmm, c = api.start_api_vmm([], env={"TERN_API_IDLE_MS": str(IDLE_MS)}, log_name="api-bad-http.log",
                                   workdir=work)
        boot_counter(c, vmm)

        msg = api.expect_400(c.patch("/vm", '{"state": "Paused"'), "malformed JSON")
        assert "json" in msg.lower(), "malformed JSON: the message should say JSON: %r" % msg
        still_counting(vmm, c, "malformed JSON")
        api.expect_400(c.get("/no/such/endpoint"), "unknown endpoint", "Invalid request method and/or path")
        still_counting(vmm, c, "unknown endpoint")

        big = b'{"state": "Paused", "pad": "' + b"x" * 52000 + b'"}'
        status, body, raw = c.raw(http_request("PATCH", "/vm", big))
        assert status == 413, "body over 51200 bytes: %r" % raw[:300]
        still_counting(vmm, c, "413")

        status, body, raw = c.raw(http_request("GET", "/", headers=["X-Pad: " + "a" * 9000]))
        assert status == 431, "headers over 8 KiB: %r" % raw[:300]
        status, body, raw = c.raw(http_request("GET", "/", headers=["X-H%d: v" % i for i in range(40)]))
        assert status == 431, "more than 32 headers: %r" % raw[:300]
        still_counting(vmm, c, "431")

        status, body, raw = c.raw(b"GARBAGE\r\n\r\n")
        assert status == 400, "malformed request line: %r" % raw[:300]
        still_counting(vmm, c, "malformed HTTP")

        # A client that sends half a request and stalls: others are served meanwhile (the
        # stalled connection is still open when they are done: a server that waited on it
        # would serve them only after closing it), and the server closes the stalled
        # connection after TERN_API_IDLE_MS, long enough that a slow lab's GETs fit in it.
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(c.path)
        s.sendall(b"PATCH /vm HTTP/1.1\r\nContent-Length: 40\r\n\r\n{\"sta")
        t0 = time.time()
        for _ in range(3):
            assert api.vm_state(c) == "Running"
        served = time.time() - t0
        s.setblocking(False)
        try:
            early = s.recv(4096)
        except BlockingIOError:
            early = None
        s.settimeout(10 + IDLE_MS / 1000)
        assert early is None, "three GETs took %.2f s beside a stalled client, which got %r" % (
            served, early)
        got = b""
        try:
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
        except socket.timeout:
            raise AssertionError("the stalled connection was still open after %.0f s" % (10 + IDLE_MS / 1000))
        except ConnectionResetError:
            pass
        finally:
            s.close()
        waited = time.time() - t0
        assert IDLE_MS / 1000 - 0.2 <= waited <= IDLE_MS / 1000 + 5, \
            "stalled connection closed after %.2f s (TERN_API_IDLE_MS=%d): %r" % (waited, IDLE_MS, got)
        still_counting(vmm, c, "stalled client")
        assert api.vm_state(c) == "Running"
    finally:
        if vmm:
            vmm.stop()
        shutil.rmtree(work, ignore_errors=True)


def test_metrics_file_and_flush():
    work = workdir("metrics")
    vmm = None
    try:
        metrics = sized_file(os.path.join(work, "metrics.json"), 0)
        vmm, c = api.start_api_vmm([], log_name="api-metrics.log", workdir=work)
        api.expect_204(c.put("/drives/rootfs", {"drive_id": "rootfs", "path_on_host": sized_file(os.path.join(work, "d")),
                                    "is_root_device": False, "is_read_only": True}), "PUT /drives", vmm)
        boot_counter(c, vmm, [("/metrics", {"metrics_path": metrics})])
        time.sleep(1)
        api.expect_204(c.put("/actions", {"action_type": "FlushMetrics"}), "FlushMetrics", vmm)
        lines = []
        end = time.time() + 5
        while time.time() < end:
            with open(metrics) as f:
                lines = [l for l in f.read().splitlines() if l.strip()]
            if lines:
                break
            time.sleep(0.1)
        assert lines, "no metrics line after FlushMetrics: %r" % vmm
        m = json.loads(lines[-1])
        for k in ("utc_timestamp_ms", "vcpu", "block"):
            assert k in m, "metrics line lacks %r: %r" % (k, m)
        assert abs(m["utc_timestamp_ms"] / 1000 - time.time()) < 60, m["utc_timestamp_ms"]
        # The counter's serial output is port I/O.
        assert m["vcpu"].get("exit_io_out", 0) > 0, "no exit_io_out counted: %r" % m["vcpu"]
        still_counting(vmm, c, "FlushMetrics")
    finally:
        if vmm:
            vmm.stop()
        shutil.rmtree(work, ignore_errors=True)


def test_logger_to_a_file():
    work = workdir("logger")
    vmm = None
    try:
        log = sized_file(os.path.join(work, "tern.log"), 0)
        vmm, c = api.start_api_vmm([], log_name="api-logger.log", workdir=work)
        api.expect_204(c.put("/logger", {"log_path": log, "level": "Debug", "show_level": True}), "PUT /logger", vmm)
        boot_counter(c, vmm)
        end = time.time() + 5
        text = ""
        while time.time() < end:
            with open(log) as f:
                text = f.read()
            if text.strip():
                break
            time.sleep(0.1)
        assert text.strip(), "the log file stayed empty: %r" % vmm
        # assumption: show_level prefixes the level's name in some case (docs/api.md: "prefixes each
        # line with the level")
        assert "debug" in text.lower(), "no Debug line in the log: %r" % text[-2000:]
    finally:
        if vmm:
            vmm.stop()
        shutil.rmtree(work, ignore_errors=True)


# ---- bad command lines ----

def expect_exit_2(args, *words):
    r = ternlib.run_vmm(args, timeout=20)
    assert not r.timed_out and r.status == 2, "expected exit status 2: %r" % r
    assert r.out == "", "a guest ran: %r" % r
    for w in words:
        assert w in r.err, "the error should mention %r: %r" % (w, r)
    return r


def test_bad_config_files():
    work = workdir("badcfg")
    try:
        good = config_doc(work)
        p = os.path.join(work, "bad.json")
        with open(p, "w") as f:
            f.write('{"boot-source": {"kernel_image_path": ')
        expect_exit_2(["--config-file", p, "--no-api"], "--config-file")
        doc = json.loads(json.dumps(good))
        doc["machine-config"]["frobnicate"] = 1
        expect_exit_2(["--config-file", write_json(p, doc), "--no-api"], "frobnicate")
        doc = json.loads(json.dumps(good))
        doc["machine-config"]["vcpu_count"] = "2"
        expect_exit_2(["--config-file", write_json(p, doc), "--no-api"], "vcpu_count")
        doc = json.loads(json.dumps(good))
        doc["machine-config"]["vcpu_count"] = 0
        expect_exit_2(["--config-file", write_json(p, doc), "--no-api"], "vcpu_count")
        doc = json.loads(json.dumps(good))
        doc["no-such-section"] = {}
        expect_exit_2(["--config-file", write_json(p, doc), "--no-api"], "no-such-section")
        doc = json.loads(json.dumps(good))
        del doc["boot-source"]
        expect_exit_2(["--config-file", write_json(p, doc), "--no-api"], "boot-source")
        expect_exit_2(["--config-file", os.path.join(work, "missing.json"), "--no-api"], "missing.json")
        # One source of configuration.
        expect_exit_2(["--config-file", write_json(p, good), "--kernel", COUNTER], "--config-file")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_api_sock_on_a_regular_file_is_refused():
    work = workdir("sockfile")
    try:
        p = os.path.join(work, "not-a-socket")
        with open(p, "w") as f:
            f.write("keep me\n")
        expect_exit_2(["--api-sock", p], p)
        with open(p) as f:
            assert f.read() == "keep me\n", "tern-vmm changed the regular file at --api-sock"
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_stale_api_socket_is_replaced():
    work = workdir("stale")
    vmm = None
    try:
        p = os.path.join(work, "api.sock")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(p)
        s.close()  # a socket file nobody listens on, as a crashed tern-vmm leaves it
        vmm, c = api.start_api_vmm([], log_name="api-stale.log", workdir=work)
        assert api.vm_state(c) == "Not started"
    finally:
        if vmm:
            vmm.stop()
        shutil.rmtree(work, ignore_errors=True)


def test_instance_start_with_a_drive_another_vm_holds():
    """A drive another tern-vmm has open for writing is refused by InstanceStart with a 400
    naming it (the lock is checked before anything is built), and the process stays usable."""
    work = workdir("lockd")
    a = b = None
    try:
        disk = sized_file(os.path.join(work, "shared.img"))
        drive = {"drive_id": "data", "path_on_host": disk, "is_root_device": False,
                 "is_read_only": False}
        a, ca = api.start_api_vmm([], log_name="api-lock-a.log",
                                  workdir=tempfile.mkdtemp(dir=work))
        api.expect_204(ca.put("/drives/data", drive), "drive on the first VM")
        boot_counter(ca, a)
        b, cb = api.start_api_vmm([], log_name="api-lock-b.log",
                                  workdir=tempfile.mkdtemp(dir=work))
        api.expect_204(cb.put("/boot-source", {"kernel_image_path": COUNTER}), "boot-source (second VM)")
        api.expect_204(cb.put("/drives/data", drive), "the same drive on the second VM (not opened yet)")
        api.expect_400(cb.put("/actions", {"action_type": "InstanceStart"}), "InstanceStart with a held drive",
                   "data", "in use")
        assert api.vm_state(cb) == "Not started"
        still_counting(a, ca, "the first VM while the second was refused")
    finally:
        for v in (a, b):
            if v:
                v.stop()
        shutil.rmtree(work, ignore_errors=True)


def test_growing_a_disk_past_the_file_size_limit_is_an_error_not_a_death():
    """tern-vmm under RLIMIT_FSIZE (`ulimit -f`, prlimit) asked to grow its disk past it: the
    kernel answers EFBIG and sends SIGXFSZ, which tern-vmm ignores, so the PATCH is a 400
    naming the file size and the guest counts on; within the limit the disk grows."""
    ternlib.need_kvm()
    w = workdir("fsize")
    disk = os.path.join(w, "disk.img")
    with open(disk, "wb") as f:
        f.truncate(8 << 20)
    sock = os.path.join(w, "api.sock")
    # ulimit -f counts 1024-byte blocks; 20 MiB also leaves room for 16 MiB of guest RAM.
    script = 'ulimit -f %d && exec "$@"' % (20 << 10)
    # A shell sets the limit and execs tern-vmm (api.Vmm starts tern-vmm itself).
    p = subprocess.Popen(["bash", "-c", script, "tern-vmm", ternlib.vmm_path(), "--memory", "16",
                          "--kernel", COUNTER, "--cmdline", "every=3000", "--api-sock", sock,
                          "--disk", "path=%s,format=raw,id=d0" % disk],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert api.wait_for_socket(sock, 10, p), "no API socket: %r" % p.stderr
        c = api.ApiClient(sock)
        api.expect_400(c.patch("/drives/d0", {"drive_id": "d0", "tern_size": 32 << 20}),
                       "growing past RLIMIT_FSIZE", "File too large")
        assert p.poll() is None, "tern-vmm died (status %r)" % p.returncode
        assert api.vm_state(c) == "Running"
        api.expect_204(c.patch("/drives/d0", {"drive_id": "d0", "tern_size": 12 << 20}),
                       "growing within the limit")
        assert os.path.getsize(disk) == 12 << 20
        assert p.poll() is None, "tern-vmm died (status %r)" % p.returncode
    finally:
        if p.poll() is None:
            p.terminate()
        p.wait(10)
        shutil.rmtree(w, ignore_errors=True)


def test_put_files_takes_open_files_sent_with_the_request():
    """PUT /files (tern's; docs/api.md, "Drives"): as many absolute paths as open files came
    with the request over the Unix socket (SCM_RIGHTS), which is how ternd hands a jailed
    tern-vmm a snapshot's overlays; anything else is a 400 that says what is wrong, and
    the connection serves the next request."""
    work = workdir("files")
    vmm = None
    try:
        img = os.path.join(work, "disk.img")
        with open(img, "wb") as f:
            f.truncate(1 << 20)
        vmm, c = api.start_api_vmm([], workdir=work, log_name="api-files.log")

        def put(body, fds=None):
            data = json.dumps(body).encode()
            req = (b"PUT /files HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                   b"Content-Length: %d\r\n\r\n%s" % (len(data), data))
            status, got, _ = c.raw(req, fds=fds)
            return status, got

        fd = os.open(img, os.O_RDWR)
        ro = os.open(img, os.O_RDONLY)
        pipe = os.pipe()
        try:
            status, got = put({"paths": [img]}, [fd])
            assert status == 204, (status, got)
            status, got = put({"paths": [img, img]}, [fd, ro])
            assert status == 204, (status, got)
            for body, fds, words in (
                    ({"paths": [img]}, None, "0 descriptors came"),
                    ({"paths": [img, img]}, [fd], "names 2 files but 1 descriptor"),
                    ({}, [fd], "'paths': required"),
                    ({"paths": []}, None, "'paths': required"),
                    ({"paths": ["disk.img"]}, [fd], "an absolute path"),
                    ({"paths": [7]}, [fd], "an absolute path"),
                    ({"paths": [img], "extra": 1}, [fd], "extra"),
                    ({"paths": [img]}, [pipe[0]], "not a regular file")):
                status, got = put(body, fds)
                assert status == 400 and words in api.fault(got), (body, status, got)
        finally:
            for x in (fd, ro) + pipe:
                os.close(x)
        st, info = c.get("/")
        assert st == 200 and vmm.proc.poll() is None, (st, info)
    finally:
        if vmm:
            vmm.stop()
        shutil.rmtree(work, ignore_errors=True)
