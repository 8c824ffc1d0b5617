"""pytest-benchmark fixtures: one ``backend`` parameter, cached spiral data.

Run ``python -m pytest bench --benchmark-only`` (add ``-m big`` for the large
shapes, ``--benchmark-json out.json`` to keep the numbers). CI runs this suite
with ``--benchmark-disable`` so every case executes once and cannot rot.
"""

import functools
import os

import pytest

import fastsoftmax as fs
from fastsoftmax.backends import backend_info

BENCH_BACKENDS = [n for n in fs.list_backends() if n != "array_api_strict"]


def _selected():
    env = os.environ.get("FASTSOFTMAX_BENCH_BACKENDS", "").strip()
    return [n.strip() for n in env.split(",") if n.strip()] if env else BENCH_BACKENDS


@pytest.fixture(params=_selected())
def backend(request):
    info = backend_info(request.param)
    if not info["available"]:
        pytest.skip(f"backend {request.param!r} is unavailable here: {info['reason']}")
    return fs.get_backend(request.param)


@functools.lru_cache(maxsize=4)
def spiral(n_points, n_classes, n_features, dtype):
    """A spiral of about ``n_points`` points as NumPy arrays, plus W and b."""
    import numpy as np

    X, y = fs.make_spiral(max(1, n_points // n_classes), n_classes, n_features=n_features,
                          seed=0, dtype=dtype, backend="numpy")
    rng = np.random.default_rng(1)
    W = (0.01 * rng.standard_normal((n_features, n_classes))).astype(dtype)
    b = np.zeros(n_classes, dtype=dtype)
    return X, y, W, b


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
