"""Shared fixtures: ONE ``backend`` fixture parametrises every cross-backend test.

``FASTSOFTMAX_TEST_BACKENDS=numpy,numba`` narrows the run to those backends.
A backend that cannot run here (no CuPy, no GPU, ...) is skipped with the reason
the registry gives.

The ``jax`` column runs with JAX's 64-bit mode switched on here, explicitly:
the tables compare float64 results at float64 tolerance on every backend, and
fastsoftmax itself switches nothing global (the 64-bit-off rule is tested in a
subprocess, tests/test_backends.py).
"""

import os

import numpy as np
import pytest

import fastsoftmax as fs
from fastsoftmax.backends import backend_info

# Relative tolerance per dtype: a few hundred ulps of float64, ~100 ulps of float32;
# float16 results are computed in float32 and rounded once: a few float16 ulps.
RTOL = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-5,
        np.dtype(np.float16): 4e-3}
DTYPES = [np.float64, np.float32]


def _selected_backends():
    env = os.environ.get("FASTSOFTMAX_TEST_BACKENDS", "").strip()
    if not env:
        return fs.list_backends()
    names = [n.strip() for n in env.split(",") if n.strip()]
    unknown = set(names) - set(fs.list_backends())
    if unknown:
        raise pytest.UsageError(f"FASTSOFTMAX_TEST_BACKENDS names unknown backends {unknown}")
    return names


if "jax" in _selected_backends():
    try:
        import jax
    except ImportError:  # the jax column then skips with the registry's reason
        pass
    else:
        jax.config.update("jax_enable_x64", True)


# Why the network's tests skip the dask column (pytest.mark.no_dask(NO_DASK)).
NO_DASK = ("TwoLayerNet has no distributed path yet (open, docs/dask.md): its reference "
           "ops on Dask arrays would run step by step on the cluster, minutes per test")


@pytest.fixture(params=_selected_backends())
def backend(request):
    info = backend_info(request.param)
    if not info["available"]:
        pytest.skip(f"backend {request.param!r} is unavailable here: {info['reason']}")
    if request.param == "dask":  # its column runs on a real cluster of worker processes
        marker = request.node.get_closest_marker("no_dask")
        if marker is not None:  # the reason is the marker's one argument
            pytest.skip(marker.args[0])
        request.getfixturevalue("dask_client")
    return fs.get_backend(request.param)


@pytest.fixture
def torch_single_thread():
    """torch on one thread for the test: on tiny tensors on a busy 2-core machine
    its spinning intra-op threads make each op ~30x slower (measured), which
    only costs time (tests/test_net.py, tests/test_gradcheck.py)."""
    try:
        import torch
    except ImportError:  # no torch backend to slow down
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def dask_client():
    """A ``LocalCluster`` of 2 worker processes (1 thread each) and its client,
    the default scheduler while it lives; shut down at the end of the session."""
    pytest.importorskip("distributed", reason="the dask tests need dask.distributed")
    from distributed import Client

    from fastsoftmax.distributed import local_cluster

    with local_cluster(2, threads_per_worker=1) as cluster, Client(cluster) as client:
        yield client


@pytest.fixture(params=DTYPES, ids=["float64", "float32"])
def dtype(request):
    return np.dtype(request.param)


def rtol_for(dtype):
    return RTOL[np.dtype(dtype)]


def assert_close(actual, expected, dtype, *, scale=None):
    """Compare a backend result with a float64 reference at ``dtype``'s tolerance.

    ``scale`` sets the absolute floor: the magnitude of the terms that were summed
    (entries of a sum can cancel to ~0, where only an absolute error makes sense).
    """
    actual = np.asarray(fs.to_numpy(actual))
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    rtol = rtol_for(dtype)
    if scale is None:
        finite = expected[np.isfinite(expected)]
        scale = float(np.max(np.abs(finite))) if finite.size else 1.0
    np.testing.assert_allclose(actual.astype(np.float64), expected, rtol=rtol,
                               atol=rtol * max(scale, 1e-300), equal_nan=True)


def random_problem(n, d, k, dtype=np.float64, seed=0, scale=1.0):
    """A random linear-model problem ``(X, y, W, b)`` as NumPy arrays."""
    rng = np.random.default_rng(seed)
    X = (scale * rng.standard_normal((n, d))).astype(dtype)
    y = rng.integers(0, k, size=n)
    W = rng.standard_normal((d, k)).astype(dtype)
    b = rng.standard_normal(k).astype(dtype)
    return X, y, W, b
