"""pytest-benchmark fixtures: one ``backend`` and one ``peer`` parameter, cached spirals.

Run ``python -m pytest bench --benchmark-only`` (add ``-m big`` for the large
shapes, ``--benchmark-json out.json`` to keep the numbers and
``--benchmark-compare`` to compare with the last saved run). Benchmarks are
grouped ``op|shape``, so each backend and peer on one shape land in one table.
CI runs this suite with ``--benchmark-disable`` so every case executes once and
cannot rot. ``fastsoftmax bench`` runs the same rows through its own engine.
"""

import functools
import os

import pytest

import fastsoftmax as fs
from fastsoftmax.backends import backend_info
from fastsoftmax.bench import PEERS, BenchData, make_row

BENCH_BACKENDS = [n for n in fs.list_backends() if n != "array_api_strict"]

# (points, classes, features, dtype) of loss_gradient: the spiral sizes of the
# foundation issue by default; the large and the wide shapes behind -m big.
LOSS_GRADIENT_SHAPES = [
    (3_000, 3, 2, "float64"),
    (300_000, 3, 2, "float64"),
    (3_000_000, 3, 2, "float64"),
]
LOSS_GRADIENT_BIG = [
    (3_000_000, 3, 2, "float32"),
    (10_000_000, 3, 2, "float64"),
    (100_000, 100, 64, "float64"),
    (100_000, 100, 64, "float32"),
]


def shape_id(shape):
    n, k, d, dtype = shape
    return f"N{n}-K{k}-D{d}-{dtype}"


def group(op, shape):
    """The benchmark group ``op|shape``: every row of one op on one shape."""
    n, k, d, dtype = shape
    return f"{op}|N={n:.0e},K={k},D={d},{dtype}"


def _selected(env_var, names):
    env = os.environ.get(env_var, "").strip()
    return [n.strip() for n in env.split(",") if n.strip()] if env else list(names)


@pytest.fixture(params=_selected("FASTSOFTMAX_BENCH_BACKENDS", BENCH_BACKENDS))
def backend(request):
    info = backend_info(request.param)
    if not info["available"]:
        pytest.skip(f"backend {request.param!r} is unavailable here: {info['reason']}")
    return fs.get_backend(request.param)


@pytest.fixture(params=_selected("FASTSOFTMAX_BENCH_PEERS", PEERS))
def peer(request):
    """A peer row of ``fastsoftmax bench`` (notebook, sklearn, torch-autograd, jax-jit)."""
    row = make_row("peer", request.param)
    if not row.available():
        pytest.skip(f"peer {request.param!r} is not installed here: {row.reason}")
    return row


@functools.lru_cache(maxsize=4)
def spiral(n_points, n_classes, n_features, dtype):
    """A spiral of about ``n_points`` points as NumPy arrays, plus W and b."""
    import numpy as np

    X, y = fs.make_spiral(max(1, n_points // n_classes), n_classes, n_features=n_features,
                          shuffle=False, seed=0, dtype=dtype, backend="numpy")
    rng = np.random.default_rng(1)
    W = (0.01 * rng.standard_normal((n_features, n_classes))).astype(dtype)
    b = np.zeros(n_classes, dtype=dtype)
    return X, y, W, b


def bench_data(shape):
    """The same spiral as ``spiral(*shape)``, as the ``BenchData`` rows take."""
    X, y, W, b = spiral(*shape)
    return BenchData(X, y, W, b, reg=1e-3)


def settle(benchmark):
    """Let the previous case's thread pools stop spinning before timing this one.

    OpenBLAS's workers spin for about 0.1 s after a threaded product and halve
    the next library's multi-threaded speed on a small machine (see
    ``fastsoftmax.bench._engine.Quiet``). No pause when timing is disabled (CI).
    """
    if not benchmark.disabled:
        import time

        time.sleep(0.3)


def on_backend(backend, arrays):
    """The arrays moved to the backend once, outside the timed region."""
    return tuple(backend.asarray(a) for a in arrays)


def sync(backend, value):
    """Wait for a device result (float() of the loss is the only sync needed)."""
    float(value)


def pytest_collection_modifyitems(config, items):
    if "big" in (config.option.markexpr or ""):
        return
    skip = pytest.mark.skip(reason="large shape: opt in with -m big")
    for item in items:
        if "big" in item.keywords:
            item.add_marker(skip)
