"""Where ``backend="auto"`` should switch from ``numpy`` to ``numba`` for NumPy inputs.

Not a test and not a pytest-benchmark suite: a script that measures the three
costs the choice trades off, each in a fresh process so nothing is warm that a
new user's process would not have warm:

1. the one-off cost of the numba backend in a new process: ``import numba`` and
   the first call, with the on-disk kernel cache empty (compilation) and full
   (cache load);
2. the per-call time of ``loss_gradient`` on both backends once warm, over N;
3. the README's first command, ``fastsoftmax train`` (300 points, 200 steps),
   end to end, on each backend.

Run from the repository root: ``python bench/auto_crossover.py``. Results are
in docs/benchmarks.md ("Where auto switches to numba").
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

ONE_OFF = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
import fastsoftmax as fs
t1 = time.perf_counter()
fs.get_backend("numba")
t2 = time.perf_counter()
n = int(sys.argv[1])
X, y = fs.make_spiral(n // 3, 3, seed=0, backend="numpy")
W, b = np.zeros((2, 3)), np.zeros(3)
t3 = time.perf_counter()
fs.loss_gradient(X, y, W, b, backend="numba")
t4 = time.perf_counter()
print(json.dumps({"import_fastsoftmax_s": t1 - t0, "load_numba_s": t2 - t1,
                  "first_call_s": t4 - t3}))
"""

PER_CALL = r"""
import json, sys, time
import numpy as np
import fastsoftmax as fs
n, d, k, backend = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
X, y = fs.make_spiral(max(1, n // k), k, n_features=d, seed=0, backend="numpy")
rng = np.random.default_rng(1)
W, b = rng.standard_normal((d, k)), np.zeros(k)
fs.loss_gradient(X, y, W, b, backend=backend)
fs.loss_gradient(X, y, W, b, backend=backend)
times = []
for _ in range(7):
    start = time.perf_counter()
    calls = 0
    while time.perf_counter() - start < 0.05 or calls < 3:
        fs.loss_gradient(X, y, W, b, backend=backend)
        calls += 1
    times.append((time.perf_counter() - start) / calls)
times.sort()
print(json.dumps({"median_s": times[3]}))
"""


def python(code, *args, env=None):
    out = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True,
                         text=True, cwd=ROOT, env={**os.environ, **(env or {})}, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def wall(*args, env=None):
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "fastsoftmax", *args], capture_output=True,
                   cwd=ROOT, env={**os.environ, **(env or {})}, check=True)
    return time.perf_counter() - start


def main():
    print("one-off cost of the numba backend in a new process (median of 3):")
    for n in (300, 150_000):
        for state in ("cache empty", "cache full"):
            runs = []
            for _ in range(3):
                with tempfile.TemporaryDirectory() as cache:
                    env = {"NUMBA_CACHE_DIR": cache}
                    if state == "cache full":
                        python(ONE_OFF, n, env=env)
                    runs.append(python(ONE_OFF, n, env=env))
            med = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
            print(f"  N={n:>7,} {state:<11}  import numba + load {med['load_numba_s']:.2f} s"
                  f"  first call {med['first_call_s']:.2f} s")
    print("warm per-call loss_gradient, median of 7 (fresh process per cell):")
    for d, k, sizes in ((2, 3, (30, 300, 3_000, 30_000, 300_000)), (64, 100, (300, 30_000))):
        for n in sizes:
            t_np = python(PER_CALL, n, d, k, "numpy")["median_s"]
            t_nb = python(PER_CALL, n, d, k, "numba")["median_s"]
            print(f"  N={n:>7,} D={d:<3} K={k:<3}  numpy {t_np * 1e3:9.3f} ms  numba "
                  f"{t_nb * 1e3:9.3f} ms  numpy per N*D*K {t_np / (n * d * k) * 1e9:6.2f} ns")
    print("fastsoftmax train --seed 0 (300 points, 200 steps), wall clock of the command "
          "(median of 3, each with its own cache folder):")
    for backend in ("numpy", "numba", "auto"):
        for state in ("cache empty", "cache full"):
            times = []
            for _ in range(3):
                with tempfile.TemporaryDirectory() as cache:
                    env = {"NUMBA_CACHE_DIR": cache, "FASTSOFTMAX_BACKEND": ""}
                    if state == "cache full":
                        wall("train", "--seed", "0", "--backend", "numba", env=env)
                    times.append(wall("train", "--seed", "0", "--backend", backend, env=env))
            print(f"  --backend {backend:<6} {state:<11} {statistics.median(times):.2f} s")


if __name__ == "__main__":
    main()
