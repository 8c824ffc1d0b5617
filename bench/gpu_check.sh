#!/usr/bin/env bash
# One-shot check of the cupy backend on a machine with an NVIDIA GPU.
#
# Written for a device session (H200; CuPy, Numba, PyTorch and pytest in the
# image's python3; no network; no array-api-compat): install the project, run
# the kernel tests, the GPU benchmark and the cross-backend suite on cupy, and
# leave logs and JSON in "$OUT" (default ./gpu-check-out). Fits in one 10-minute
# command: each step has its own time limit (override with the env vars below).
#
# Before the session, on the machine with the checkout (the wheel travels in the
# ignored folder .whl/, named in the device call's `carry`):
#     python3 -m pip download --no-deps -d .whl array-api-compat==1.16.0
# Then, on the GPU machine, from the repository root:
#     bash bench/gpu_check.sh
set -u -o pipefail
cd "$(dirname "$0")/.."

OUT="${OUT:-$PWD/gpu-check-out}"
PY="${PYTHON:-python3}"
T_KERNELS="${T_KERNELS:-200}"   # seconds for tests/test_cupy_kernels.py + test_cuda_sources.py
T_BENCH="${T_BENCH:-150}"       # seconds for bench/gpu_bench.py
T_SUITE="${T_SUITE:-200}"       # seconds for the whole suite on cupy
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
summary="$OUT/summary.txt"
: > "$summary"
note() { echo "$*" | tee -a "$summary"; }

# -- install ---------------------------------------------------------------------
if ! "$PY" -c "import array_api_compat" 2>/dev/null; then
    wheel=$(ls .whl/array_api_compat-*.whl 2>/dev/null | head -n 1)
    if [ -z "$wheel" ]; then
        note "array-api-compat is missing and no wheel was carried in .whl/; on the checkout run:"
        note "    python3 -m pip download --no-deps -d .whl array-api-compat==1.16.0"
        exit 2
    fi
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site "$wheel" > "$OUT/install.log" 2>&1 || { note "wheel install failed"; exit 2; }
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
if ! "$PY" -m pip install --no-deps --no-build-isolation --no-index -e . >> "$OUT/install.log" 2>&1; then
    note "editable install failed (install.log); importing from the checkout instead"
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi

# -- the machine -------------------------------------------------------------------
{
    echo "commit: $(git rev-parse HEAD 2>/dev/null || echo unknown)"
    nvidia-smi 2>&1 | head -n 15
    "$PY" - <<'EOF'
import importlib
for name in ("numpy", "cupy", "numba", "torch", "array_api_compat", "fastsoftmax"):
    try:
        print(name, getattr(importlib.import_module(name), "__version__", "?"))
    except Exception as exc:
        print(name, "unavailable:", exc)
EOF
    "$PY" -m fastsoftmax backends
} > "$OUT/env.txt" 2>&1
note "backends: $(grep -E '^cupy' "$OUT/env.txt" || echo 'cupy row missing, see env.txt')"

# -- kernel tests, benchmark, suite ----------------------------------------------------
timeout "$T_KERNELS" "$PY" -m pytest -q -rs --durations=10 -p no:cacheprovider \
    tests/test_cupy_kernels.py tests/test_cuda_sources.py > "$OUT/kernels.log" 2>&1
note "kernel tests: exit $? ($(tail -n 1 "$OUT/kernels.log"))"

timeout "$T_BENCH" "$PY" bench/gpu_bench.py --require-gpu --out "$OUT/gpu_bench.json" \
    > "$OUT/gpu_bench.log" 2>&1
note "benchmark: exit $?"
grep -E "copy:|ms |targets" "$OUT/gpu_bench.log" | tee -a "$summary"

FASTSOFTMAX_TEST_BACKENDS=cupy timeout "$T_SUITE" "$PY" -m pytest -q -rs --durations=15 \
    -p no:cacheprovider --ignore=tests/test_cupy_kernels.py --ignore=tests/test_cuda_sources.py \
    tests > "$OUT/cupy_suite.log" 2>&1
note "suite on cupy: exit $? ($(tail -n 1 "$OUT/cupy_suite.log"))"
