"""GPU cases: the cupy backend's loss_gradient kernels (the fused one, or the wide
path where (D, K) is beyond the registers: ``loss_gradient_path``) against the
generic CuPy path (the Array-API reference run on CuPy), on spirals generated on
the device.

Skipped, with the registry's reason, where no CUDA GPU is usable. The issue's
judged shape (N = 1e8, D = 2, K = 3) is in BIG (opt in with ``-m big``);
``bench/gpu_bench.py`` measures it against the copy bandwidth and PyTorch.
"""

import functools

import pytest

import fastsoftmax as fs
from fastsoftmax.backends import Backend, backend_info
from fastsoftmax.backends.cupy import loss_gradient_path

INFO = backend_info("cupy")
pytestmark = pytest.mark.skipif(
    not INFO["available"], reason=f"backend 'cupy' is unavailable here: {INFO['reason']}")

# (points, classes, features, dtype)
SHAPES = [(3_000_000, 3, 2, "float32"), (3_000_000, 3, 2, "float64"),
          (1_000_000, 100, 16, "float32")]
BIG = [(100_000_000, 3, 2, "float32"), (100_000_000, 3, 2, "float64")]


@functools.lru_cache(maxsize=2)
def _device_spiral(n, k, d, dtype):
    be = fs.get_backend("cupy")
    X, y = fs.make_spiral(max(1, n // k), k, n_features=d, seed=0, dtype=dtype, backend=be)
    W = 0.01 * be.standard_normal((d, k), seed=1, dtype=dtype)
    b = be.xp.zeros((k,), dtype=X.dtype)
    return X, y, W, b


def _case(benchmark, shape, path):
    n, k, d, dtype = shape
    be = fs.get_backend("cupy")
    X, y, W, b = _device_spiral(n, k, d, dtype)
    op = be.loss_gradient if path == "kernel" else functools.partial(Backend.loss_gradient, be)
    route = loss_gradient_path(dtype, d, k) if path == "kernel" else "generic"
    benchmark.group = f"loss_gradient|N={n:.0e},K={k},D={d},{dtype}"
    benchmark.extra_info.update(op="loss_gradient", backend=f"cupy-{route}", n=n, k=k, d=d,
                                dtype=dtype, device=be.device,
                                bytes_one_read=int(X.nbytes + y.nbytes))

    def run():
        loss, dW, db = op(X, y, W, b, reg=1e-3, check=False)
        float(loss)  # the one sync
        return dW

    run()  # compile the kernels outside the timing
    dW = benchmark(run)
    assert tuple(dW.shape) == (d, k)


@pytest.mark.parametrize("path", ["kernel", "generic"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"N{s[0]}-K{s[1]}-D{s[2]}-{s[3]}")
def test_gpu_loss_gradient(benchmark, shape, path):
    _case(benchmark, shape, path)


@pytest.mark.big
@pytest.mark.parametrize("path", ["kernel", "generic"])
@pytest.mark.parametrize("shape", BIG, ids=lambda s: f"N{s[0]}-K{s[1]}-D{s[2]}-{s[3]}")
def test_gpu_loss_gradient_big(benchmark, shape, path):
    _case(benchmark, shape, path)
