"""Time ``softmax``, ``cross_entropy_gradient`` and ``train`` per backend, grouped ``op|shape``.

The scores ``S = X @ W + b`` are computed and moved to the backend before
timing; ``train`` is a full ``SoftmaxClassifier`` fit of 200 steps (one round
is long, so it runs a fixed few rounds).
"""

import pytest

import fastsoftmax as fs

from conftest import group, on_backend, settle, shape_id, spiral

SCORE_SHAPES = [(3_000, 3, 2, "float64"), (300_000, 3, 2, "float64")]
SCORE_BIG = [(3_000_000, 3, 2, "float64"), (100_000, 100, 64, "float64"),
             (100_000, 100, 64, "float32")]
TRAIN_SHAPES = [(3_000, 3, 2, "float64")]
TRAIN_BIG = [(300_000, 3, 2, "float64"), (300_000, 3, 2, "float32"),
             (3_000_000, 3, 2, "float64")]


def _sync(backend, *arrays):
    """Wait for device work: a stream sync on CuPy, nothing on the CPU backends."""
    if backend.name == "cupy":
        import cupy

        cupy.cuda.get_current_stream().synchronize()


def _score_case(benchmark, backend, op, shape):
    n, k, d, dtype = shape
    X, y, W, b = spiral(n, k, d, dtype)
    S, y = on_backend(backend, (X @ W + b, y))
    benchmark.group = group(op, shape)
    benchmark.extra_info.update(op=op, backend=backend.name, n=n, k=k, d=d, dtype=dtype)
    if op == "softmax":
        def run():
            probs = fs.softmax(S, backend=backend)
            _sync(backend, probs)
            return probs
    else:
        def run():
            loss, dscores = fs.cross_entropy_gradient(S, y, backend=backend)
            _sync(backend, loss, dscores)
            return dscores

    run()  # warm-up
    settle(benchmark)
    out = benchmark(run)
    assert tuple(out.shape) == tuple(S.shape)


def _train_case(benchmark, backend, shape, rounds):
    n, k, d, dtype = shape
    X, y = on_backend(backend, spiral(n, k, d, dtype)[:2])
    benchmark.group = group("train", shape)
    benchmark.extra_info.update(op="train", backend=backend.name, n=n, k=k, d=d, dtype=dtype,
                                steps=200)

    def run():
        return fs.SoftmaxClassifier(solver="gd", tol=0, max_iter=200, random_state=0,
                                    backend=backend).fit(X, y)

    run()  # warm-up
    settle(benchmark)
    model = benchmark.pedantic(run, rounds=rounds, iterations=1)
    assert len(model.loss_history_) == 200
    assert model.loss_history_[-1] < model.loss_history_[0]


@pytest.mark.parametrize("op", ["softmax", "cross_entropy_gradient"])
@pytest.mark.parametrize("shape", SCORE_SHAPES, ids=shape_id)
def test_scores_op(benchmark, backend, op, shape):
    _score_case(benchmark, backend, op, shape)


@pytest.mark.big
@pytest.mark.parametrize("op", ["softmax", "cross_entropy_gradient"])
@pytest.mark.parametrize("shape", SCORE_BIG, ids=shape_id)
def test_scores_op_big(benchmark, backend, op, shape):
    _score_case(benchmark, backend, op, shape)


@pytest.mark.parametrize("shape", TRAIN_SHAPES, ids=shape_id)
def test_train(benchmark, backend, shape):
    _train_case(benchmark, backend, shape, rounds=5)


@pytest.mark.big
@pytest.mark.parametrize("shape", TRAIN_BIG, ids=shape_id)
def test_train_big(benchmark, backend, shape):
    _train_case(benchmark, backend, shape, rounds=3)
