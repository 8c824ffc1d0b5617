#!/usr/bin/env bash
# The cupy backend on a machine with an NVIDIA GPU, in two passes that each fit
# one device call and leave their results in "$OUT" (default ./gpu-check-out):
#
#   bash bench/gpu_check.sh quick   # < 4 min: kernel tests on the GPU + the benchmark at N=1e7
#   bash bench/gpu_check.sh long    # < 5.5 min: cross-backend tests on cupy + benchmark at
#                                   # N=1e8 + SoftmaxClassifier 200 steps at N=1e7
#
# Written for the H200 device machine (docs/backends-cupy.md, "Running the GPU
# checks"): CuPy 14 (cupy-cuda13x), Numba, PyTorch, SciPy, scikit-learn, pytest
# and hypothesis are in its python3; array-api-compat is not, and it has no
# registry, so its wheel travels in the ignored folder .whl/ (the call names it
# in `carry`). Before the session, on the machine with the checkout:
#     echo /.whl/ >> .git/info/exclude
#     python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#         --implementation cp -d .whl array-api-compat==1.16.0
# The project itself is imported from the checkout (PYTHONPATH), not installed.
#
# Each step has its own time limit (seconds; override with the env vars below);
# their sums stay inside one call with room for the machine's start: quick
# 35 + 150 + 45 = 230 s, long 150 + 120 + 60 = 330 s. Every step appends its
# result line to summary.txt as soon as it ends, so a call cut short still
# brings back what finished. At most 8 files come back from a call: a pass
# writes 5 or 6 (summary.txt, env.txt and its own logs and JSON).
set -u -o pipefail
cd "$(dirname "$0")/.."

PASS="${1:-}"
case "$PASS" in
    quick|long) ;;
    *) echo "usage: bash bench/gpu_check.sh quick|long" >&2; exit 2 ;;
esac
OUT="${OUT:-$PWD/gpu-check-out}"
PY="${PYTHON:-python3}"
T_ENV="${T_ENV:-35}"                 # wheel install + versions + `fastsoftmax backends`
T_KERNELS="${T_KERNELS:-150}"        # quick: tests/test_cupy_kernels.py on the GPU (~60 NVRTC builds)
T_QUICK_BENCH="${T_QUICK_BENCH:-45}" # quick: gpu_bench.py at N=1e7, float32
T_SUITE="${T_SUITE:-150}"            # long: the cross-backend suite on cupy
T_BENCH="${T_BENCH:-120}"            # long: gpu_bench.py at N=1e8, float32 and float64
T_TRAIN="${T_TRAIN:-60}"             # long: SoftmaxClassifier 200 steps at N=1e7
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
summary="$OUT/summary.txt"
: > "$summary"
note() { echo "$*" | tee -a "$summary"; }
last_line() { tail -n 1 "$1" 2>/dev/null; }
note "pass: $PASS, commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(date -u +%FT%TZ)"

# -- array-api-compat from the carried wheel, then the machine -------------------------
{
    if ! "$PY" -c "import array_api_compat" 2>/dev/null; then
        wheel=$(ls .whl/array_api_compat-*.whl 2>/dev/null | head -n 1)
        if [ -z "$wheel" ]; then
            echo "array-api-compat is missing and no wheel was carried in .whl/"
        else
            timeout "$T_ENV" "$PY" -m pip install -q --no-index --no-deps --no-compile \
                --no-cache-dir --upgrade --target /tmp/site "$wheel"
        fi
    fi
} > "$OUT/env.txt" 2>&1
[ -d /tmp/site ] && export PYTHONPATH="$PYTHONPATH:/tmp/site"
if ! "$PY" -c "import array_api_compat" >> "$OUT/env.txt" 2>&1; then
    note "array-api-compat cannot be imported (see env.txt); on the checkout run:"
    note "    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp -d .whl array-api-compat==1.16.0"
    exit 2
fi
timeout "$T_ENV" bash -c '
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem \
        --format=csv 2>&1
    "$1" - <<EOF
import importlib
for name in ("numpy", "cupy", "numba", "torch", "scipy", "array_api_compat", "fastsoftmax"):
    try:
        print(name, getattr(importlib.import_module(name), "__version__", "?"))
    except Exception as exc:
        print(name, "unavailable:", exc)
EOF
    "$1" -m fastsoftmax backends' _ "$PY" >> "$OUT/env.txt" 2>&1
note "backends: $(grep -E '^cupy +(yes|no) ' "$OUT/env.txt" || echo 'cupy row missing, see env.txt')"

if [ "$PASS" = quick ]; then
    # -- the kernel tests on the GPU (N up to 1e7), then one benchmark size -----------
    timeout "$T_KERNELS" "$PY" -m pytest -q -rs --maxfail=10 --durations=10 -p no:cacheprovider \
        tests/test_cupy_kernels.py > "$OUT/kernels.log" 2>&1
    note "kernel tests: exit $? ($(last_line "$OUT/kernels.log"))"

    timeout "$T_QUICK_BENCH" "$PY" bench/gpu_bench.py --require-gpu --n 10000000 \
        --dtypes float32 --repeat 10 --copy-bytes $((1 << 30)) \
        --out "$OUT/bench_quick.json" > "$OUT/bench_quick.log" 2>&1
    note "benchmark N=1e7: exit $?"
    grep -E "copy:|ms |kernel " "$OUT/bench_quick.log" | tee -a "$summary"
else
    # -- the cross-backend suite on cupy, the judged benchmark, the classifier --------
    # The cross-backend tests (agreement with SciPy, scikit-learn, PyTorch, naive
    # loops; every bad-input rule; the notebook experiment), their cupy column only.
    FASTSOFTMAX_TEST_BACKENDS=cupy timeout "$T_SUITE" "$PY" -m pytest -q -rs --durations=15 \
        -p no:cacheprovider -k cupy --ignore=tests/test_cupy_kernels.py \
        --ignore=tests/test_cuda_sources.py tests > "$OUT/suite.log" 2>&1
    note "suite on cupy: exit $? ($(last_line "$OUT/suite.log"))"

    timeout "$T_BENCH" "$PY" bench/gpu_bench.py --require-gpu --n 100000000 \
        --out "$OUT/bench.json" > "$OUT/bench.log" 2>&1
    note "benchmark N=1e8: exit $?"
    grep -E "copy:|ms |kernel |targets" "$OUT/bench.log" | tee -a "$summary"

    timeout "$T_TRAIN" "$PY" bench/gpu_bench.py --require-gpu --train-only --train-n 10000000 \
        --train-steps 200 --out "$OUT/train.json" >> "$OUT/bench.log" 2>&1
    note "SoftmaxClassifier N=1e7, 200 steps: exit $?"
    grep -E "^train" "$OUT/bench.log" | tee -a "$summary"
fi
