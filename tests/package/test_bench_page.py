"""bench/all's page (docs/bench/) from figures it is handed, on the host: no KVM, no benchmark run.

bench/results.py is what the benchmarks call; bench/all --render writes the page from a
results.json. Both are checked here with made-up figures whose verdicts are known."""
import json
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

import ternlib

ROOT = ternlib.ROOT
ALL = os.path.join(ROOT, "bench", "all")
sys.path.insert(0, os.path.join(ROOT, "bench"))
import results  # noqa: E402


def record_all(path, figures):
    old = os.environ.get("TERN_BENCH_RESULTS")
    os.environ["TERN_BENCH_RESULTS"] = path
    try:
        for f in figures:
            results.record(*f[:7], **f[7])
    finally:
        if old is None:
            del os.environ["TERN_BENCH_RESULTS"]
        else:
            os.environ["TERN_BENCH_RESULTS"] = old
    with open(path) as f:
        return [json.loads(line) for line in f]


FIGURES = [
    # bench, row, tern, peer, peer name, unit, better, extra
    ("startup", "Debian kernel: exec->/init", 4000.0, 10000.0, "QEMU microvm (best)", "ms", "lower",
     {"goal": 0.5}),
    ("startup", "Debian kernel: exec->power-off", 9000.0, 10000.0, "QEMU microvm (best)", "ms", "lower", {}),
    ("blk", "device rand-read 4K io_uring qd32", 850.0, 1000.0, "host io_uring qd32", "MB/s", "higher",
     {"goal": 0.9}),
    ("blk", "guest 4 KiB random read", 1500.0, 1000.0, "QEMU", "IOPS", "higher", {"goal": 1.0}),
    ("blk", "guest dd read", 30.0, None, "QEMU", "MB/s", "higher", {}),
]


def test_results_are_recorded_only_when_asked():
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "r.jsonl")
        old = os.environ.pop("TERN_BENCH_RESULTS", None)
        try:
            results.record("x", "row", 1.0, 2.0, "peer", "ms", "lower")
            assert not os.path.exists(path)
        finally:
            if old is not None:
                os.environ["TERN_BENCH_RESULTS"] = old
        recs = record_all(path, FIGURES)
        assert len(recs) == len(FIGURES), recs
        assert abs(recs[0]["ratio"] - 0.4) < 1e-9 and recs[0]["goal"] == 0.5, recs[0]
        assert recs[4]["ratio"] is None and recs[4]["peer"] is None, recs[4]
        try:
            results.record("x", "row", 1.0, 2.0, "peer", "ms", "sideways")
            raise AssertionError("a direction other than higher/lower was taken")
        except ValueError:
            pass


def test_render_writes_the_page_with_each_goal_judged():
    with tempfile.TemporaryDirectory() as d:
        recs = record_all(os.path.join(d, "r.jsonl"), FIGURES)
        saved = {"machine": {"host": "h", "kernel": "k", "cpu": "c", "cpus": 2, "where": "bare metal",
                             "tern": "abc1234", "qemu": "QEMU 7.2", "date": "2026-12-06 00:00 UTC"},
                 "quick": False, "command": "bench/all",
                 "runs": {"startup": {"exit": 0, "seconds": 10}, "blk": {"exit": 1, "seconds": 5}},
                 "results": recs}
        src = os.path.join(d, "saved.json")
        with open(src, "w") as f:
            json.dump(saved, f)
        out = os.path.join(d, "page")
        p = subprocess.run([ALL, "--render", src, "--out", out], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=60)
        assert p.returncode == 0, p.stdout.decode()
        with open(os.path.join(out, "README.md")) as f:
            page = f.read()
        # 4000 ms against 10000 ms is 0.40, within "at most 0.5"; 0.85 misses "at least 0.9".
        assert "| Debian kernel: exec->/init (ms, lower is better) | 4000 | 10000 |" in page, page
        assert "| 0.40 | <= 0.50: met |" in page, page
        assert "| 0.85 | >= 0.90: **not met** |" in page, page
        assert "| 1.50 | >= 1.00: met |" in page, page
        assert "Goals (issue 16): 2 of 3 met; not met: blk device rand-read 4K io_uring qd32" in page, page
        assert "exit status 1 (**failed**" in page, page
        assert "abc1234" in page and "QEMU 7.2" in page, page
        for name, bars in (("startup", 2), ("blk", 2)):  # a figure without a peer has no bar
            svg = ET.parse(os.path.join(out, name + ".svg")).getroot()
            rects = [r for r in svg.iter("{http://www.w3.org/2000/svg}rect") if r.get("fill") != "white"]
            assert len(rects) == bars, (name, len(rects))
        # The exec->/init bar: 2.5 times better than QEMU, drawn green (goal met).
        svg = open(os.path.join(out, "startup.svg")).read()
        assert ">2.50 <tspan" in svg and "goal met" in svg, svg
        with open(os.path.join(out, "results.json")) as f:
            assert json.load(f)["results"] == recs


def test_bad_usage_exits_2_naming_the_option():
    for args, word in ((["--only", "nope"], "--only"), (["--timeout", "0"], "--timeout"),
                       (["--render", "/nonexistent/results.json"], "--render")):
        p = subprocess.run([ALL] + args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        assert p.returncode == 2 and word in p.stdout.decode(), (args, p.returncode, p.stdout.decode())
