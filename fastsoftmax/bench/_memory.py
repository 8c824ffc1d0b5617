"""Extra peak memory of one ``loss_gradient`` call per row, each in a fresh process.

Method (Linux): the child process builds the spiral, converts it for the row
(``prepare``) and collects garbage; the RSS then is the *baseline* (the data
and the libraries). Writing ``5`` to ``/proc/self/clear_refs`` resets the peak
RSS (``VmHWM``) to the current RSS, so the ``VmHWM`` after a call is the peak
during that call. The first call (JIT compilation, first touch) and a second,
steady call are measured separately:

``extra_bytes``
    the second call's peak RSS minus the RSS just before it: the working memory
    of one call (temporaries such as the N x K scores and probabilities).
``retained_bytes``
    the RSS before the second call minus the baseline: what the first call left
    behind (compiled code, a JIT or runtime, thread stacks, cached buffers).
``first_call_extra_bytes``
    the first call's peak minus the baseline (compilation included).

Where the reset is refused, the peak since the process started is used and the
result is marked as a lower bound.

Run by ``fastsoftmax bench --memory``; the child is
``python -m fastsoftmax.bench._memory SPEC_JSON``.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys


def _status():
    values = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) * 1024
    return values


def _reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def child(spec):
    """Measure one row; returns the JSON-ready record."""
    from ._rows import make_data, make_row

    row = make_row(spec["kind"], spec["name"])
    if not row.available():
        raise RuntimeError(row.reason)
    data = make_data(spec["size"], spec["k"], spec["d"], spec["dtype"], seed=spec["seed"],
                     reg=spec["reg"])
    row.prepare("loss_gradient", data)
    gc.collect()
    reset = _reset_peak()
    before = _status()
    baseline = before["VmRSS"]
    result = row.run()
    first_peak = _status()["VmHWM"]
    del result
    gc.collect()
    reset = _reset_peak() and reset
    before_second = _status()["VmRSS"]
    result = row.run()
    peak = _status()["VmHWM"]
    del result
    return {"n": data.n, "baseline_bytes": baseline, "data_bytes": data.X.nbytes + data.y.nbytes,
            "first_call_extra_bytes": max(0, first_peak - baseline),
            "retained_bytes": before_second - baseline,
            "extra_bytes": max(0, peak - before_second),
            "method": "VmHWM after clear_refs reset" if reset else "VmHWM since start",
            "lower_bound": (not reset) and before["VmHWM"] > baseline}


def measure_memory(config, rows, notes, progress):
    """One fresh process per row at the largest size, for each (K, D, dtype) of the sweep."""
    from .._cliutil import gib, meminfo
    from ._engine import shape_bytes

    size = max(config.sizes)
    out = []
    if not os.path.exists("/proc/self/status"):
        notes.append("memory not measured: needs Linux's /proc/self/status")
        return out
    for dtype in config.dtypes:
        for k in config.classes:
            for d in config.features:
                need, n = shape_bytes(size, k, d, dtype, ["loss_gradient"])
                available = meminfo("MemAvailable")
                if available is not None and need > 0.8 * available:
                    notes.append(f"memory not measured for N={n:,} K={k} D={d} {dtype}: "
                                 f"needs about {gib(need)}, {gib(available)} available")
                    continue
                for row in rows:
                    spec = {"kind": row.kind, "name": row.name, "size": size, "k": k, "d": d,
                            "dtype": dtype, "seed": config.seed, "reg": config.reg}
                    progress.update(0, f"memory: {row.name}")
                    record = {"row": row.name, "kind": row.kind, "label": row.label,
                              "op": "loss_gradient", "size": size, "k": k, "d": d,
                              "dtype": dtype, "error": None}
                    record.update(_run_child(spec))
                    out.append(record)
    return out


def _run_child(spec):
    # The child imports this very package, wherever it was imported from.
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (root, os.environ.get("PYTHONPATH")) if p)}
    try:
        proc = subprocess.run([sys.executable, "-m", "fastsoftmax.bench._memory",
                               json.dumps(spec)], capture_output=True, text=True, timeout=900,
                              env=env)
    except subprocess.TimeoutExpired:
        return {"error": "timed out after 900 s"}
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"exit {proc.returncode}: {tail}"}
    return json.loads(lines[-1])


def _main(argv):
    print(json.dumps(child(json.loads(argv[1]))))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv))
