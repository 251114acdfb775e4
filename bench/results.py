"""Machine-readable results of a benchmark, for bench/all's page (docs/bench/).

A benchmark calls record() for each figure it compares with a peer; when the environment
names a file in TERN_BENCH_RESULTS (bench/all sets it), each call appends one JSON object
to it, one per line. Nothing is written otherwise, so running a benchmark by hand is as before.
"""
import json
import os


def record(bench, row, tern, peer, peer_name, unit, better, goal=None, note=None):
    """One figure of tern next to its peer in the same run.

    better: "higher" (throughput) or "lower" (time, memory); the ratio is tern / peer either
    way, as the benchmarks print it. goal: the ratio the project aims for (issue 16), read
    in the same direction (at least it for "higher", at most it for "lower"), or None.
    A figure a peer could not give (QEMU skipped) is recorded with peer None."""
    if better not in ("higher", "lower"):
        raise ValueError("better must be 'higher' or 'lower', not %r" % (better,))
    path = os.environ.get("TERN_BENCH_RESULTS")
    if not path:
        return
    ratio = tern / peer if tern is not None and peer else None
    rec = {"bench": bench, "row": row, "tern": tern, "peer": peer, "peer_name": peer_name,
           "unit": unit, "better": better, "ratio": ratio, "goal": goal}
    if note:
        rec["note"] = note
    with open(path, "a") as f:
        f.write(json.dumps(rec) + "\n")
