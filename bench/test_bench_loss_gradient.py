"""Time ``loss_gradient`` per backend on spirals, grouped by shape."""

import pytest

import fastsoftmax as fs

from conftest import (
    LOSS_GRADIENT_BIG,
    LOSS_GRADIENT_SHAPES,
    group,
    on_backend,
    settle,
    shape_id,
    spiral,
    sync,
)


def _case(benchmark, backend, shape):
    n, k, d, dtype = shape
    X, y, W, b = on_backend(backend, spiral(n, k, d, dtype))
    benchmark.group = group("loss_gradient", shape)
    benchmark.extra_info.update(op="loss_gradient", backend=backend.name, n=n, k=k, d=d,
                                dtype=dtype)

    def run():
        loss, dW, db = fs.loss_gradient(X, y, W, b, reg=1e-3, backend=backend)
        sync(backend, loss)
        return dW

    run()  # warm-up: JIT compile / GPU init are not part of the timing
    settle(benchmark)
    dW = benchmark(run)
    assert tuple(dW.shape) == (d, k)


@pytest.mark.parametrize("shape", LOSS_GRADIENT_SHAPES, ids=shape_id)
def test_loss_gradient(benchmark, backend, shape):
    _case(benchmark, backend, shape)


@pytest.mark.big
@pytest.mark.parametrize("shape", LOSS_GRADIENT_BIG, ids=shape_id)
def test_loss_gradient_big(benchmark, backend, shape):
    _case(benchmark, backend, shape)
