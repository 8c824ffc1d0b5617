"""Time ``loss_gradient`` per backend on spirals, grouped by shape."""

import pytest

import fastsoftmax as fs

from conftest import on_backend, spiral, sync

# (points, classes, features, dtype); the spiral sizes of the foundation issue.
SHAPES = [
    (3_000, 3, 2, "float64"),
    (300_000, 3, 2, "float64"),
    (3_000_000, 3, 2, "float64"),
]
BIG = [
    (3_000_000, 3, 2, "float32"),
    (10_000_000, 3, 2, "float64"),
    (100_000, 100, 64, "float64"),
    (100_000, 100, 64, "float32"),
]


def _case(benchmark, backend, shape):
    n, k, d, dtype = shape
    X, y, W, b = on_backend(backend, spiral(n, k, d, dtype))
    benchmark.group = f"loss_gradient|N={n:.0e},K={k},D={d},{dtype}"
    benchmark.extra_info.update(op="loss_gradient", backend=backend.name, n=n, k=k, d=d,
                                dtype=dtype)

    def run():
        loss, dW, db = fs.loss_gradient(X, y, W, b, reg=1e-3, backend=backend)
        sync(backend, loss)
        return dW

    run()  # warm-up: JIT compile / GPU init are not part of the timing
    dW = benchmark(run)
    assert tuple(dW.shape) == (d, k)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"N{s[0]}-K{s[1]}-D{s[2]}-{s[3]}")
def test_loss_gradient(benchmark, backend, shape):
    _case(benchmark, backend, shape)


@pytest.mark.big
@pytest.mark.parametrize("shape", BIG, ids=lambda s: f"N{s[0]}-K{s[1]}-D{s[2]}-{s[3]}")
def test_loss_gradient_big(benchmark, backend, shape):
    _case(benchmark, backend, shape)
