"""The benchmark engine: the grid of cells, the timing, the floors and the cross-check.

A *cell* is one op on one data shape ``(N, K, D, dtype)`` for one row (a
fastsoftmax backend or a peer). All rows of a cell see the same NumPy data,
converted to their own arrays before timing. Per cell:

* ``warmup_s``: the first call in this process -- JIT compilation (Numba, JAX,
  a first GPU launch) lands here, not in the timings.
* A second, untimed call (only when the first took under a second) sets
  ``calls_per_repeat``: calls shorter than ``target_s`` are looped so one timed
  repeat lasts about ``target_s`` (as ``timeit`` does); a repeat's time is its
  loop time divided by the calls.
* ``repeat`` timed repeats with ``time.perf_counter`` (garbage collector off,
  every call synchronised): ``median_s`` and ``min_s`` of the per-call times.
  The calibration and the repeats start at least ``quiet_s`` after the previous
  row's last call (see ``Quiet``), so no row is timed against another library's
  spinning threads.
* ``rows_per_s = N / median_s``; ``gb_per_s`` = bytes of the op's input read
  once (``X`` and ``y``; the scores ``S`` (and ``y``) for ``softmax`` and
  ``cross_entropy_gradient``) / ``median_s``. ``train`` counts ``steps`` passes.
* ``ratio_to_numpy = median_s / median_s of the numpy backend`` in the same cell.
* ``ratio_to_floor = median_s / floor_s``, ``floor_s = max(read_s, exp_s)``:
  the best time, measured in this run on this machine, to stream the op's input
  once (``np.add.reduce``) and to run one SIMD ``np.exp`` pass over an N x K
  array (preallocated, ``out=``), each the best of a single NumPy thread and of
  all usable cores in threads (NumPy releases the GIL). No softmax classifier
  can beat both; ``train`` multiplies the floor by ``steps``. Rows on a CuPy
  device use a device floor instead (a device copy of the input and a CuPy
  ``exp`` pass).
* The cross-check: every row's result (from its warm-up call) is compared with
  the ``numpy`` backend's result in float64 on the same numbers (float32 cells
  are cast up) at the dtype's tolerance (``TOL``); ``max_rel_err`` is the
  largest ``max |row - ref| / max |ref|`` over the loss and every output array.
  A row outside the tolerance has status ``mismatch``, in the table and the
  JSON: it computes something else, or (float32, large N) accumulates so much
  rounding error that its result is off by more than 0.1%.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import gc
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from ._report import BUSY, format_block, format_header
from ._rows import PEERS, BackendRow, make_data, make_row, rel_err

SCHEMA = "fastsoftmax-bench/1"
DEFAULT_SIZES = (1_000, 10_000, 100_000, 1_000_000, 10_000_000)
QUICK_SIZES = (1_000, 10_000, 100_000, 1_000_000)
TOL = {"float64": 1e-8, "float32": 1e-3}
# fit: the largest relative gap of a row's objective to the best row's that counts as there
FIT_TOL = {"float64": 1e-9, "float32": 1e-6}
_NEEDS_SCORES = ("softmax", "cross_entropy_gradient")


@dataclass
class BenchConfig:
    """What to run. Lists are the sweep; every combination is a cell."""

    ops: list = field(default_factory=lambda: ["loss_gradient"])
    sizes: list = field(default_factory=lambda: list(DEFAULT_SIZES))
    classes: list = field(default_factory=lambda: [3])
    features: list = field(default_factory=lambda: [2])
    dtypes: list = field(default_factory=lambda: ["float64"])
    backends: list | None = None  # None: every available backend
    peers: list | None = None  # None: every peer (those not installed are noted)
    repeat: int = 7
    memory: bool = False
    quick: bool = False
    seed: int = 0
    reg: float = 1e-3
    steps: int = 200
    target_s: float = 0.02
    quiet_s: float = 0.3  # see Quiet
    isolate: bool = True  # every named row in a worker process of its own (see _worker)
    progress: bool = True
    extra_rows: list = field(default_factory=list)  # Row objects (run in this process)

    def as_json(self):
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["extra_rows"] = [row.label for row in self.extra_rows]
        return out


# -- timing ------------------------------------------------------------------------

def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


class Quiet:
    """Keeps the timed repeats of a row ``quiet_s`` away from the previous row's work.

    After a parallel call, thread pools keep spinning on the cores for a while
    (OpenBLAS's workers for about 0.1 s after NumPy's ``X.T @ dscores``, OpenMP
    teams for their spin count). On a small machine a spinning pool of one
    library halves the next library's multi-threaded speed -- PyTorch timed
    right after the numpy backend ran 2x slower than in a fresh process. So the
    engine ``mark()``s the end of each row's (and the reference's) work, and a
    row's timed repeats start no sooner than ``quiet_s`` later; the row's own
    warm-up call counts towards the wait.
    """

    def __init__(self, quiet_s):
        self.quiet_s = quiet_s
        self._last = -math.inf

    def mark(self):
        self._last = time.perf_counter()

    def remaining(self):
        return self._last + self.quiet_s - time.perf_counter()

    def wait(self):
        delay = self.remaining()
        if delay > 0:
            time.sleep(delay)


def measure(run, repeat, target_s=0.02, quiet=None):
    """Warm up, calibrate and time ``run``; see the module docstring.

    Returns ``(result_of_first_call, warmup_s, calls_per_repeat, per_call_times)``.
    """
    result, warmup_s = _timed(run)
    if quiet is not None:
        quiet.wait()
    number = 1
    if warmup_s < 1.0:  # a long first call is long enough to time alone: no calibration
        _, once = _timed(run)
        if once < target_s:
            number = max(1, min(10_000, int(target_s / max(once, 1e-9))))
    times = []
    enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeat):
            start = time.perf_counter()
            for _ in range(number):
                run()
            times.append((time.perf_counter() - start) / number)
    finally:
        if enabled:
            gc.enable()
    return result, warmup_s, number, times


class CpuMeter:
    """How much of the machine *other* processes used between two readings (Linux).

    Busy time of all CPUs from ``/proc/stat`` (user, nice, system, irq, softirq,
    steal) minus this process's own CPU time (all its threads), over the wall
    time times the cores. On a shared machine this says which timings to distrust.
    """

    def __init__(self):
        try:
            self._tick = os.sysconf("SC_CLK_TCK")
            self._cores = os.cpu_count() or 1
            self.reading()
            self.ok = True
        except (OSError, ValueError, AttributeError, IndexError):
            self.ok = False

    def reading(self):
        import resource

        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:9]]
        busy = (sum(fields[:3]) + sum(fields[5:8])) / self._tick
        own = sum(resource.getrusage(w)[0] + resource.getrusage(w)[1]
                  for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
        return time.perf_counter(), busy, own

    def start(self):
        return self.reading() if self.ok else None

    def others(self, start, min_window=0.1, own_extra=0.0):
        """Fraction of all cores used by other processes since ``start`` (None if unknown).

        ``own_extra``: CPU seconds of this run's own worker processes in the window.
        """
        if start is None:
            return None
        end = self.reading()
        wall = end[0] - start[0]
        if wall < min_window:
            return None  # /proc/stat counts in clock ticks: too coarse for less
        other = (end[1] - start[1]) - (end[2] - start[2]) - own_extra
        return min(1.0, max(0.0, other / (wall * self._cores)))


def _best(fn, repeat=5, target_s=0.005):
    """Best per-call time of ``fn`` (floors: the best is the floor)."""
    return min(measure(fn, repeat, target_s)[3])


class Floors:
    """The machine's floor for a pass over the data, measured in this run."""

    def __init__(self):
        try:
            self.threads = len(os.sched_getaffinity(0))
        except AttributeError:
            self.threads = os.cpu_count() or 1
        self._pool = ThreadPoolExecutor(self.threads) if self.threads > 1 else None
        self._rng = np.random.default_rng(12345)

    def close(self):
        if self._pool is not None:
            self._pool.shutdown()

    def _chunks(self, a):
        step = -(-a.shape[0] // self.threads)
        return [a[i:i + step] for i in range(0, a.shape[0], step)]

    def _both(self, single, parts):
        best = _best(single)
        if self._pool is not None and len(parts) > 1:
            def threaded():
                return list(self._pool.map(lambda f: f(), parts))
            best = min(best, _best(threaded))
        return best

    def read(self, a):
        """Best time to stream ``a`` once (a sum over its contiguous memory)."""
        flat = np.ascontiguousarray(a).reshape(-1)
        parts = [lambda c=c: np.add.reduce(c) for c in self._chunks(flat)]
        return self._both(lambda: np.add.reduce(flat), parts)

    def exp(self, n, k, dtype):
        """Best time of one ``np.exp`` pass over an N x K array into a preallocated one."""
        A = (-4.0 * self._rng.random((n, k))).astype(dtype)
        B = np.empty_like(A)
        parts = [lambda a=a, b=b: np.exp(a, out=b)
                 for a, b in zip(self._chunks(A), self._chunks(B))]
        return self._both(lambda: np.exp(A, out=B), parts)


def _cupy_copy(src):
    """Device floor for CuPy rows: the best time of a device-to-device copy of ``src``."""
    import cupy

    stream = cupy.cuda.get_current_stream()
    a = cupy.asarray(src)
    buf = cupy.empty_like(a)

    def copy():
        cupy.copyto(buf, a)
        stream.synchronize()
    return _best(copy)


def _cupy_exp(n, k, dtype):
    """Device floor for CuPy rows: the best time of one ``cupy.exp`` pass over N x K."""
    import cupy

    stream = cupy.cuda.get_current_stream()
    A = cupy.asarray((-4.0 * np.random.default_rng(0).random((n, k))).astype(dtype))
    B = cupy.empty_like(A)

    def exp():
        cupy.exp(A, out=B)
        stream.synchronize()
    return _best(exp)


# -- the machine -------------------------------------------------------------------

def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _meminfo(key):
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def machine_info():
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    try:
        load = list(os.getloadavg())
    except (AttributeError, OSError):
        load = None
    return {"load_average_at_start": load,
        "cpu": _cpu_model(), "logical_cores": os.cpu_count(), "usable_cores": usable,
        "memory_bytes": _meminfo("MemTotal"), "platform": platform.platform(),
        "machine": platform.machine(), "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
    }


_DISTRIBUTIONS = ("fastsoftmax", "numpy", "numba", "llvmlite", "scipy", "scikit-learn", "torch",
                  "jax", "jaxlib", "array-api-compat", "array-api-strict", "matplotlib", "tqdm",
                  "threadpoolctl")


def library_versions():
    from importlib import metadata

    out = {}
    for dist in _DISTRIBUTIONS:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    cupy = sys.modules.get("cupy")
    if cupy is not None:
        out["cupy"] = cupy.__version__
    return out


def thread_info():
    """Thread counts the libraries used (after the run, so they are loaded)."""
    out = {"env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                              "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS",
                                              "XLA_FLAGS") if k in os.environ}}
    if "numba" in sys.modules:
        out["numba"] = sys.modules["numba"].get_num_threads()
    if "torch" in sys.modules:
        out["torch"] = sys.modules["torch"].get_num_threads()
    try:
        from threadpoolctl import threadpool_info

        out["threadpools"] = [{k: p.get(k) for k in ("user_api", "internal_api", "version",
                                                     "num_threads", "prefix")}
                              for p in threadpool_info()]
    except ImportError:
        pass
    return out


# -- the grid ----------------------------------------------------------------------

def resolve_rows(config):
    """The rows to run and notes about those left out.

    Unknown names raise ``ValueError``; a backend named explicitly that cannot
    run here raises ``BackendUnavailableError``; a peer that is not installed is
    left out with a note.
    """
    from ..backends import available_backends, get_backend, list_backends

    notes = []
    if config.backends is None:
        backend_names = available_backends()
        for name in list_backends():
            if name not in backend_names:
                row = BackendRow(name)
                row.available()
                notes.append(f"backend {name} skipped: {row.reason}")
    else:
        known = list_backends()
        for name in config.backends:
            if name not in known:
                raise ValueError(f"unknown backend {name!r}; known: {', '.join(known)}")
        for name in config.backends:
            get_backend(name)  # raises BackendUnavailableError with the reason
        backend_names = list(config.backends)
    peer_names = list(PEERS) if config.peers is None else list(config.peers)
    for name in peer_names:
        if name not in PEERS:
            raise ValueError(f"unknown peer {name!r}; known: {', '.join(PEERS)}")
    rows = [BackendRow(name) for name in backend_names]
    all_rows = rows + [make_row("peer", name) for name in peer_names]
    for row in all_rows:
        if not row.available() and row.kind == "peer":
            notes.append(f"peer {row.name} skipped: {row.reason}")
    for row in config.extra_rows:
        if not row.available():
            raise ValueError(f"row {row.label} cannot run here: {row.reason}")
    all_rows += list(config.extra_rows)
    rows = [r for r in all_rows if r.kind == "backend" or r.available()]
    labels = [r.label for r in rows]
    if len(set(labels)) != len(labels):
        raise ValueError(f"two rows share a label: {labels}")
    return rows, [r.info() for r in all_rows], notes


def _shape_bytes(n, k, d, dtype, ops, workers=0):
    """A generous guess of the memory one shape needs (data, scores, temporaries).

    Each worker process holds its own copy of the data (and the scores).
    """
    s = np.dtype(dtype).itemsize
    scores = any(op in _NEEDS_SCORES for op in ops)
    per_nk = 12 + (2 if scores else 0)
    data = n * d * s + 4 * n + (n * k * s if scores else 0)
    return 3 * n * d * s + per_nk * n * k * s + 16 * n + workers * data


def _input_bytes(op, data):
    if op in _NEEDS_SCORES:
        return data.n * data.k * data.X.itemsize + (data.y.nbytes if op != "softmax" else 0)
    return data.X.nbytes + data.y.nbytes


class _Progress:
    def __init__(self, total, enabled):
        self.bar = None
        if enabled and sys.stderr.isatty():
            try:
                from tqdm import tqdm
            except ImportError:
                return
            self.bar = tqdm(total=total, desc="bench", unit="cell", file=sys.stderr,
                            leave=False, dynamic_ncols=True)

    def update(self, n=1, text=None):
        if self.bar is not None:
            if text:
                self.bar.set_postfix_str(text, refresh=False)
            self.bar.update(n)

    def write(self, text):
        if self.bar is not None:
            self.bar.write(text, file=sys.stdout)
        else:
            print(text, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _check(errors, dtype):
    tol = TOL[dtype]
    worst = max(errors, key=errors.get) if errors else None
    error = errors[worst] if errors else 0.0
    return {"ok": bool(error <= tol), "max_rel_err": error, "worst": worst, "tol": tol,
            "errors": errors, "reference": "numpy backend, float64"}


def _cell_record(op, size, data, row):
    return {"op": op, "size": size, "n": data.n, "k": data.k, "d": data.d,
            "dtype": str(data.dtype), "row": row.name, "kind": row.kind, "label": row.label,
            "device": row.device, "status": None, "reason": None, "warmup_s": None,
            "calls_per_repeat": None, "repeat": None, "times_s": None, "median_s": None,
            "min_s": None, "rows_per_s": None, "bytes": None, "gb_per_s": None,
            "ratio_to_numpy": None, "floor_s": None, "ratio_to_floor": None, "check": None,
            "other_cpu": None}


def time_row(row, op, data, repeat, target_s, quiet, meter):
    """Prepare, time and collect one row on one cell: ``(outputs, stats)``.

    The same code runs in this process and in a row's worker process.
    """
    row.prepare(op, data)
    try:
        reading = meter.start()
        result, warmup, number, times = measure(row.run, repeat, target_s, quiet)
        other = meter.others(reading)
        outputs = row.outputs(result)
    finally:
        quiet.mark()
        row.release()
    stats = {"warmup_s": warmup, "calls_per_repeat": number, "times_s": times,
             "other_cpu": other}
    for key in ("evals", "iters"):  # fit: counts, not outputs to cross-check
        if key in outputs:
            stats[key] = int(outputs.pop(key))
    if "objective" in outputs:
        stats["objective"] = float(outputs["objective"])
    return outputs, stats


def reference_errors(outputs, reference):
    """Per output: ``max |row - ref| / max |ref|`` (inf where an output is missing)."""
    return {key: rel_err(outputs[key], ref) if key in outputs else math.inf
            for key, ref in reference.items()}


def _passes(op, data, stats):
    """Passes over the data one call makes: ``steps`` for ``train``, the evaluations
    (else iterations) of a ``fit``, one otherwise."""
    if op == "fit":
        return stats.get("evals") or stats.get("iters") or 1
    return data.steps if op == "train" else 1


def _fill(record, op, data, stats):
    passes = _passes(op, data, stats)
    times = stats["times_s"]
    median = statistics.median(times)
    nbytes = passes * _input_bytes(op, data)
    record.update(warmup_s=stats["warmup_s"], calls_per_repeat=stats["calls_per_repeat"],
                  repeat=len(times), times_s=times, median_s=median, min_s=min(times),
                  rows_per_s=passes * data.n / median, bytes=nbytes,
                  gb_per_s=nbytes / median / 1e9, other_cpu=stats["other_cpu"], status="ok",
                  **{k: stats[k] for k in ("evals", "iters", "objective") if k in stats})


class _Context:
    """What the cells of one run share: config, progress, meters, workers, references."""

    def __init__(self, config, rows, progress):
        self.config, self.progress = config, progress
        self.meter = CpuMeter()
        self.quiet = Quiet(config.quiet_s)
        self.workers = {}
        self.shape_task = None
        self._tmp = tempfile.TemporaryDirectory(prefix="fastsoftmax-bench-")
        if config.isolate:
            from ._worker import Worker

            named = [r for r in rows if not any(r is e for e in config.extra_rows)]
            started = {row.label: Worker(row) for row in named}  # they load in parallel
            for label, worker in started.items():
                if not worker.ready():
                    worker.error = f"its worker process could not load it: {worker.error}"
                self.workers[label] = worker

    def set_shape(self, size, data, config):
        from ._worker import data_sha

        self.shape_task = None
        if self.workers:
            self.shape_task = {
                "cmd": "cell", "size": size, "k": data.k, "d": data.d,
                "dtype": str(data.dtype), "seed": config.seed, "reg": config.reg,
                "steps": config.steps, "sha": data_sha(data)}

    def save_reference(self, op, reference):
        if not self.workers:
            return None
        folder = os.path.join(self._tmp.name, op)
        os.makedirs(folder, exist_ok=True)
        for key, value in reference.items():
            np.save(os.path.join(folder, f"{key}.npy"), np.asarray(value))
        return folder

    def workers_cpu_s(self):
        return sum(w.cpu_s - w.cpu_start for w in self.workers.values())

    def close(self):
        for worker in self.workers.values():
            worker.close()
        self._tmp.cleanup()


def run_bench(config, *, echo=False):
    """Run the sweep of ``config``; returns the JSON-ready result.

    With ``echo`` the header and each finished (op, shape) block of the table
    are printed as they complete. Ctrl-C stops the sweep: the finished cells are
    kept and ``result["interrupted"]`` is true.
    """
    rows, row_info, notes = resolve_rows(config)
    started = _dt.datetime.now(_dt.timezone.utc)
    result = {
        "schema": SCHEMA, "created": started.isoformat(timespec="seconds"),
        "command": None, "interrupted": False, "elapsed_s": None,
        "machine": machine_info(), "versions": library_versions(), "threads": {},
        "config": config.as_json(), "tolerance": TOL, "rows": row_info, "notes": notes,
        "floors": [], "cells": [], "memory": [],
    }
    if echo:
        print(format_header(result), flush=True)
    shapes = [(dtype, k, d, size) for dtype in config.dtypes for k in config.classes
              for d in config.features for size in sorted(config.sizes)]
    progress = _Progress(len(shapes) * len(config.ops) * len(rows), config.progress)
    floors = Floors()
    t0 = time.perf_counter()
    ctx = None
    try:
        ctx = _Context(config, rows, progress)
        whole_run = ctx.meter.start()
        available = _meminfo("MemAvailable")
        for dtype, k, d, size in shapes:
            need = _shape_bytes(size, k, d, dtype, config.ops, len(ctx.workers))
            if available is not None and need > 0.8 * available:
                notes.append(f"skipped N={size:,} K={k} D={d} {dtype}: needs about "
                             f"{need / 2**30:.1f} GiB, {available / 2**30:.1f} GiB available")
                progress.update(len(config.ops) * len(rows))
                continue
            data = make_data(size, k, d, dtype, seed=config.seed, reg=config.reg,
                             steps=config.steps)
            ctx.set_shape(size, data, config)
            ctx.quiet.wait()
            floor = _measure_floors(floors, data, config.ops, rows)
            result["floors"].append(floor)
            for op in config.ops:
                first = len(result["cells"])
                try:
                    _run_op(op, size, data, floor, rows, ctx, result["cells"])
                finally:
                    if echo and len(result["cells"]) > first:
                        progress.write(format_block(result["cells"][first:], floor, op))
            del data
        if config.memory and rows:
            from ._memory import measure_memory

            result["memory"] = measure_memory(config, rows, notes, progress)
    except KeyboardInterrupt:
        result["interrupted"] = True
    finally:
        progress.close()
        floors.close()
        if ctx is not None:
            ctx.close()
    result["elapsed_s"] = time.perf_counter() - t0
    if ctx is not None:
        result["machine"]["other_cpu"] = ctx.meter.others(whole_run,
                                                          own_extra=ctx.workers_cpu_s())
    busy = [c for c in result["cells"] if (c["other_cpu"] or 0) > BUSY]
    other = result["machine"].get("other_cpu")
    if other is not None and other > BUSY:
        notes.append(f"other processes used {other:.0%} of the CPUs during this run "
                     f"({len(busy)} cells over {BUSY:.0%}): timings, above all of "
                     f"multi-threaded rows, are unreliable; rerun on an idle machine")
    result["versions"] = library_versions()
    result["threads"] = thread_info()
    return result


def _measure_floors(floors, data, ops, rows):
    floor = {"n": data.n, "k": data.k, "d": data.d, "dtype": str(data.dtype),
             "threads": floors.threads, "read_X_s": floors.read(data.X),
             "read_S_s": None, "exp_s": floors.exp(data.n, data.k, data.dtype), "device": {}}
    if any(op in _NEEDS_SCORES for op in ops):
        floor["read_S_s"] = floors.read(data.S)
    if any(r.kind == "backend" and r.name == "cupy" for r in rows):
        floor["device"]["cupy"] = {
            "copy_X_s": _cupy_copy(data.X), "exp_s": _cupy_exp(data.n, data.k, data.dtype),
            "copy_S_s": _cupy_copy(data.S) if floor["read_S_s"] is not None else None}
    return floor


def _floor_for(op, floor, row, passes):
    read_key = "S" if op in _NEEDS_SCORES else "X"
    if row.kind == "backend" and row.name == "cupy":
        dev = floor["device"].get("cupy")
        if not dev or dev[f"copy_{read_key}_s"] is None:
            return None
        return passes * max(dev[f"copy_{read_key}_s"], dev["exp_s"])
    if not str(row.device).startswith("cpu"):
        return None  # a device this run has no floor for
    return passes * max(floor[f"read_{read_key}_s"], floor["exp_s"])


def float64_data(data):
    """``data`` cast up to float64 -- the same numbers, for the float32 cells' reference."""
    f8 = np.float64
    return dataclasses.replace(
        data, X=data.X.astype(f8), W=data.W.astype(f8), b=data.b.astype(f8),
        _S=None if data._S is None else data._S.astype(f8), init=data.W0.astype(f8))


def reference_outputs(op, data):
    """The numpy backend's result in float64 for ``data`` (cast up where it is float32).

    ``train`` runs ``SoftmaxClassifier``'s loop (``W -= lr * dW``, ``b -= lr * db``)
    on the numpy backend's ``loss_gradient`` from the cell's own initial weights,
    since a float64 ``SoftmaxClassifier`` would draw different ones.
    """
    import fastsoftmax as fs

    if data.dtype != np.float64:
        data = float64_data(data)
    if op == "fit":  # judged against the best row's objective instead (see _run_op)
        return {}
    if op != "train":
        row = BackendRow("numpy")
        row.available()
        row.prepare(op, data)
        try:
            return row.outputs(row.run())
        finally:
            row.release()
    W, b = data.W0, np.zeros(data.k)
    for _ in range(data.steps):
        loss, dW, db = fs.loss_gradient(data.X, data.y, W, b, reg=data.reg, backend="numpy")
        W = W - data.lr * dW
        b = b - data.lr * db
    return {"loss": np.asarray(loss), "W": W, "b": b}


def _run_op(op, size, data, floor, rows, ctx, cells):
    """Time every row on one (op, shape), appending each finished cell to ``cells``."""
    config, progress, quiet = ctx.config, ctx.progress, ctx.quiet
    first, dtype = len(cells), str(data.dtype)
    try:
        reference = reference_outputs(op, data)
    except Exception:  # reported on every row's check; the rows still run
        reference = None
    quiet.mark()
    ref_dir = ctx.save_reference(op, reference) if reference is not None else None
    try:
        for row in (r for r in rows if r.supports(op)):
            record = _cell_record(op, size, data, row)
            progress.update(0, f"{op} N={data.n:,} K={data.k} D={data.d} {dtype}: {row.name}")
            try:
                worker = ctx.workers.get(row.label)
                if worker is not None:
                    stats, errors = worker.cell(dict(
                        ctx.shape_task, op=op, repeat=config.repeat, target_s=config.target_s,
                        quiet_s=max(0.0, quiet.remaining()), ref_dir=ref_dir,
                        ref_keys=sorted(reference or {})))
                    quiet.mark()
                    if reference is None:
                        errors = None
                else:
                    outputs, stats = time_row(row, op, data, config.repeat, config.target_s,
                                              quiet, ctx.meter)
                    errors = None if reference is None else reference_errors(outputs,
                                                                             reference)
                    del outputs
            except Exception as exc:  # a row that fails is reported, not fatal
                record.update(status="error", reason=f"{type(exc).__name__}: {exc}"
                              if not isinstance(exc, RuntimeError) else str(exc))
                cells.append(record)
                progress.update(1)
                continue
            _fill(record, op, data, stats)
            record["floor_s"] = _floor_for(op, floor, row, _passes(op, data, stats))
            if record["floor_s"]:
                record["ratio_to_floor"] = record["median_s"] / record["floor_s"]
            if errors is None:
                record["check"] = {"ok": None, "reason": "the numpy reference failed"}
            else:
                record["check"] = _check(errors, dtype)
                if not record["check"]["ok"]:
                    record["status"] = "mismatch"
            cells.append(record)
            progress.update(1)
    finally:  # also after Ctrl-C: the finished cells of this block stay complete
        numpy_median = next((c["median_s"] for c in cells[first:]
                             if c["label"] == "numpy (backend)" and c["median_s"]), None)
        best = min((c["objective"] for c in cells[first:] if c.get("objective") is not None),
                   default=None)
        for record in cells[first:]:
            if numpy_median and record["median_s"] is not None:
                record["ratio_to_numpy"] = record["median_s"] / numpy_median
            if best is not None and record.get("objective") is not None:
                gap = (record["objective"] - best) / abs(best)
                record["gap"] = gap
                record["check"] = {"ok": bool(gap <= FIT_TOL[dtype]), "gap": gap,
                                   "tol": FIT_TOL[dtype], "reference": "the best row's objective"}
