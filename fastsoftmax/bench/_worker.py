"""One row per process: the worker that times a row's cells for ``fastsoftmax bench``.

Why a process per row: a library's timings depend on the state of the process
it runs in, not only on the machine. Measured here, NumPy's ``loss_gradient``
at N = 1e4 takes 1.36 ms in a process that has run only NumPy and 0.88 ms in one
where PyTorch ran first: glibc's allocator raises its mmap and trim thresholds
when a large block is freed, after which NumPy's temporaries stop costing page
faults (320 per call). Spinning thread pools and JIT runtimes add to it. In its
own process every row is timed as a user's program that uses only that library
would see it -- the same numbers a ``timeit`` in a fresh process gives -- and
the order of the rows stops mattering.

The parent (``_engine.run_bench``) keeps the sweep in one run: every cell goes,
one at a time, to the row's worker, on the same machine, interleaved with the
other rows. The worker rebuilds the cell's spiral from the same seed and proves
it is the same data (a SHA-1 of ``X`` and ``y`` must match the parent's),
times it exactly as the parent would (``_engine.time_row``), and compares its
result with the float64 reference the parent wrote to disk. Only numbers
travel back.

Protocol: one JSON object per line on stdin and stdout. ``{"cmd": "cell", ...}``
is answered with ``{"ok": true, "stats": ..., "errors": ..., "cpu_s": ...}`` or
``{"ok": false, "error": "..."}``; end of input ends the worker.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np


def data_sha(data):
    """Fingerprint of a cell's data: SHA-1 of ``X`` and ``y`` (bytes, shapes, dtypes)."""
    h = hashlib.sha1()
    for a in (data.X, data.y, data.W, data.b):
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(np.ascontiguousarray(a).data)
    return h.hexdigest()


def _cpu_s():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _serve(kind, name):
    from ._engine import CpuMeter, Quiet, reference_errors, time_row
    from ._rows import make_data, make_row

    out = sys.stdout
    sys.stdout = sys.stderr  # a library that prints must not break the protocol
    row = make_row(kind, name)
    ok = row.available()
    _send(out, {"ok": ok, "reason": row.reason, "version": row.version,
                "device": row.device, "cpu_s": _cpu_s()})
    if not ok:
        return
    meter = CpuMeter()
    cached = None
    for line in sys.stdin:
        task = json.loads(line)
        arrived = time.perf_counter()
        try:
            key = (task["size"], task["k"], task["d"], task["dtype"], task["seed"],
                   task["reg"], task["steps"])
            if cached is None or cached[0] != key:
                cached = None  # free the previous shape's data before building the next
                data = make_data(task["size"], task["k"], task["d"], task["dtype"],
                                 seed=task["seed"], reg=task["reg"], steps=task["steps"])
                cached = (key, data, data_sha(data))
            _, data, sha = cached
            if sha != task["sha"]:
                raise RuntimeError("the worker's spiral differs from the parent's "
                                   f"(SHA-1 {sha[:12]} vs {task['sha'][:12]})")
            quiet = Quiet(task["quiet_s"])
            quiet._last = arrived  # the parent counted the time since the last row's end
            outputs, stats = time_row(row, task["op"], data, task["repeat"], task["target_s"],
                                      quiet, meter)
            reference = {k: np.load(os.path.join(task["ref_dir"], f"{k}.npy"), mmap_mode="r")
                         for k in task["ref_keys"]}
            errors = reference_errors(outputs, reference)
            del outputs, reference
            _send(out, {"ok": True, "stats": stats, "errors": errors, "cpu_s": _cpu_s()})
        except Exception as exc:  # reported as the cell's error; the worker lives on
            _send(out, {"ok": False, "error": f"{type(exc).__name__}: {exc}",
                        "cpu_s": _cpu_s()})


def _send(out, message):
    out.write(json.dumps(message) + "\n")
    out.flush()


class Worker:
    """The parent's handle on one row's worker process."""

    def __init__(self, row):
        self.row = row
        self.error = None
        self.cpu_start = self.cpu_s = 0.0
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (root, os.environ.get("PYTHONPATH")) if p)}
        self._stderr = tempfile.TemporaryFile(mode="w+")  # read back when it dies
        # A session of its own: Ctrl-C on the terminal interrupts the parent only,
        # which then ends the workers itself.
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fastsoftmax.bench._worker", row.kind, row.name],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, text=True,
            env=env, start_new_session=True)

    def ready(self):
        """Wait for the worker to load its row; False (with ``error``) if it cannot."""
        reply = self._receive()
        if reply is None:
            return False
        if not reply["ok"]:
            self.error = reply["reason"]
            return False
        self.cpu_start = self.cpu_s = reply["cpu_s"]
        return True

    def cell(self, task):
        """Send one cell, wait for its answer; ``(stats, errors)`` or raise RuntimeError."""
        if self.error is not None:
            raise RuntimeError(self.error)
        try:
            self.proc.stdin.write(json.dumps(task) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            self.error = f"the worker process ended (exit status {self.proc.poll()})"
            raise RuntimeError(self.error) from None
        reply = self._receive()
        if reply is None:
            raise RuntimeError(self.error)
        self.cpu_s = reply["cpu_s"]
        if not reply["ok"]:
            raise RuntimeError(reply["error"])
        return reply["stats"], reply["errors"]

    def _receive(self):
        line = self.proc.stdout.readline()
        if not line:
            status = self.proc.wait()
            self._stderr.seek(0)
            last = ([ln for ln in self._stderr.read().splitlines() if ln.strip()] or [""])[-1]
            self.error = f"the worker process ended (exit status {status}) {last}".strip()
            return None
        return json.loads(line)

    def close(self):
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        try:  # an idle worker ends at once on end of input; a busy one (Ctrl-C) is killed
            self.proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._stderr.close()


if __name__ == "__main__":
    _serve(sys.argv[1], sys.argv[2])
