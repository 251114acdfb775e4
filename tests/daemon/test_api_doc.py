"""docs/ternd-api.yaml against the ternd that serves it: every status a request gets is one
the document lists for that path and method, answers carry the documented fields, and a
definition the server stores validates against the document's Definition schema."""
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
sys.path.insert(0, "/usr/lib/python3/dist-packages")
import ternd  # noqa: E402
import ternlib  # noqa: E402
import yaml  # noqa: E402

DOC = os.path.join(ternlib.ROOT, "docs", "ternd-api.yaml")


def load():
    with open(DOC) as f:
        return yaml.safe_load(f)


def route(doc, path):
    """The document's path template for a concrete path: of those that match, the one
    with the fewest parameters (/vms/{name}/stats before /vms/{name}/{operation})."""
    found = []
    for tmpl in doc["paths"]:
        rx = "^" + re.sub(r"\{[^}]+\}", "[^/]+", tmpl) + "$"
        if re.match(rx, path.split("?")[0]):
            found.append((tmpl.count("{"), tmpl))
    assert found, "%s is not in %s" % (path, DOC)
    return min(found)[1]


def resolve(doc, s):
    while "$ref" in s:
        name = s["$ref"].split("/")[-1]
        s = doc["components"]["schemas"].get(name) or doc["components"]["responses"][name]
    return s


def check_schema(doc, schema, value, where):
    s = resolve(doc, schema)
    if "allOf" in s:
        for part in s["allOf"]:
            check_schema(doc, part, value, where)
        return
    if value is None:
        assert s.get("nullable"), "%s: null where the document does not allow it" % where
        return
    kind = s.get("type")
    py = {"object": dict, "array": list, "string": str, "integer": int, "boolean": bool,
          "number": (int, float)}.get(kind)
    if py:
        assert isinstance(value, py) and not (kind == "integer" and isinstance(value, bool)), \
            "%s: %r is not %s" % (where, value, kind)
    if "enum" in s:
        assert value in s["enum"], "%s: %r not in %r" % (where, value, s["enum"])
    if kind == "object":
        props = s.get("properties", {})
        for k in s.get("required", []):
            assert k in value, "%s: required %r missing" % (where, k)
        if s.get("additionalProperties") is False:
            extra = set(value) - set(props)
            assert not extra, "%s: fields the document does not have: %r" % (where, extra)
        for k, v in value.items():
            if k in props:
                check_schema(doc, props[k], v, "%s.%s" % (where, k))
    if kind == "array":
        for i, v in enumerate(value):
            check_schema(doc, s["items"], v, "%s[%d]" % (where, i))


def call(doc, t, method, path, body=None):
    status, got = t.call(method, path, body)
    op = doc["paths"][route(doc, path)].get(method.lower())
    assert op, "%s %s is not in the document" % (method, path)
    assert str(status) in op["responses"], "%s %s answered %d, not one of %s" % (
        method, path, status, list(op["responses"]))
    content = resolve(doc, op["responses"][str(status)]).get("content")
    if content and got is not None:
        check_schema(doc, content["application/json"]["schema"], got, "%s %s %d" % (method, path, status))
    return status, got


def test_the_document_matches_the_server():
    doc = load()
    t = ternd.Ternd("apidoc")
    try:
        k = ternlib.guest_path("counter")
        call(doc, t, "GET", "/")
        call(doc, t, "GET", "/vms")
        st, d = call(doc, t, "POST", "/vms", {"name": "doc1", "kernel": k, "memory_mib": 32,
                                              "nics": [{"type": "user", "hostfwd": ["tcp::8022-:22"]}],
                                              "vsock": {"cid": 5}, "disks": []})
        assert st == 201
        check_schema(doc, {"$ref": "#/components/schemas/Definition"}, d, "stored definition")
        call(doc, t, "POST", "/vms", {"name": "doc1", "kernel": k})  # 409
        call(doc, t, "POST", "/vms", {"name": "doc2", "kernel": k, "vcpus": 0})  # 400
        call(doc, t, "GET", "/vms/doc1")
        call(doc, t, "GET", "/vms/nope")  # 404
        call(doc, t, "PATCH", "/vms/doc1", {"autostart": True})
        call(doc, t, "PATCH", "/vms/doc1", {"autostart": "yes"})  # 400
        call(doc, t, "PATCH", "/vms/doc1", {"limits": {"cpu_weight": 200}})
        call(doc, t, "PATCH", "/vms/doc1", {"limits": {"pids_max": 1}})  # 400
        call(doc, t, "PUT", "/vms/doc1", dict(d, cmdline="console=ttyS0 every=300000"))
        call(doc, t, "POST", "/vms/doc1/suspend")  # 409
        call(doc, t, "POST", "/vms/doc1/blockresize", {"disk": 0, "size": 1 << 20})  # 400/409
        call(doc, t, "POST", "/vms/doc1/blockresize", {"disk": 0})  # 400
        st, _ = call(doc, t, "POST", "/vms/doc1/start")
        assert st == 200
        call(doc, t, "GET", "/vms/doc1")
        call(doc, t, "PUT", "/vms/doc1", d)  # 409 while it runs
        call(doc, t, "POST", "/vms/doc1/suspend")
        call(doc, t, "POST", "/vms/doc1/resume")
        call(doc, t, "POST", "/vms/doc1/migrate", {})  # 400: no host
        call(doc, t, "POST", "/vms/doc1/migrate", {"host": "tls://127.0.0.1:1",
                                                    "downtime_limit_ms": 0})  # 400
        call(doc, t, "POST", "/vms/doc1/incoming/stream", {"uuid": d["uuid"]})  # 409
        call(doc, t, "POST", "/vms/nope/incoming/stream", {"uuid": d["uuid"]})  # 404
        call(doc, t, "POST", "/vms/docx/incoming", {"definition": {"name": "docx", "kernel": k}})  # 400
        call(doc, t, "POST", "/vms/doc1/incoming", {"definition": d})  # 409: it runs here
        st, j = call(doc, t, "GET", "/vms/doc1/job")
        assert st == 200 and j["operation"] is None, j
        call(doc, t, "GET", "/vms/nope/job")  # 404
        st, _ = call(doc, t, "GET", "/vms/doc1/stats")
        assert st == 200
        st, _ = call(doc, t, "POST", "/vms/doc1/snapshots", {"name": "s1"})
        assert st == 201
        call(doc, t, "POST", "/vms/doc1/snapshots", {"name": "s1"})  # 409
        call(doc, t, "POST", "/vms/doc1/snapshots", {"name": "-x"})  # 400
        call(doc, t, "GET", "/vms/doc1/snapshots")
        st, _ = call(doc, t, "POST", "/vms/doc1/snapshots/s1/revert")
        assert st == 200
        call(doc, t, "POST", "/vms/doc1/snapshots/s2/revert")  # 404
        call(doc, t, "POST", "/vms/doc1/clone", {"name": "doc3"})  # 409: it runs
        call(doc, t, "POST", "/vms/doc1/shutdown", {"timeout": "soon"})  # 400
        call(doc, t, "POST", "/vms/doc1/destroy")
        call(doc, t, "GET", "/vms/doc1/stats")  # 409
        call(doc, t, "POST", "/vms/doc1/migrate", {"host": "tls://127.0.0.1:1"})  # 409
        st, _ = call(doc, t, "DELETE", "/vms/doc1/snapshots/s1")
        assert st == 204
        call(doc, t, "DELETE", "/vms/doc1/snapshots/s1")  # 404
        st, _ = call(doc, t, "POST", "/vms/doc1/clone", {"name": "doc3"})
        assert st == 201
        call(doc, t, "POST", "/vms/doc1/clone", {"name": "doc3", "copy": 1})  # 400
        call(doc, t, "DELETE", "/vms/doc3")
        call(doc, t, "GET", "/events?after=0")
        call(doc, t, "GET", "/events?after=-1&wait=0")
        call(doc, t, "GET", "/events?after=x")  # 400
        call(doc, t, "DELETE", "/vms/doc1?remove_storage=0")
        call(doc, t, "DELETE", "/vms/doc1")  # 404
    finally:
        t.close()
