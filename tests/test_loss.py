"""Cross-entropy, its gradient and the linear model's loss_gradient, checked
against scikit-learn, PyTorch, the naive loops and finite differences."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn._loss.loss import HalfMultinomialLoss
from sklearn.linear_model._linear_loss import LinearModelLoss

import fastsoftmax as fs

import naive
from conftest import assert_close, random_problem, rtol_for

REDUCTIONS = ["mean", "sum", "none"]


def _sklearn_rows(S, y):
    """Per-sample loss and gradient from scikit-learn's multinomial loss (float64)."""
    S = np.ascontiguousarray(S, dtype=np.float64)
    loss = HalfMultinomialLoss(n_classes=S.shape[1])
    rows, grad = loss.loss_gradient(y_true=y.astype(np.float64), raw_prediction=S)
    return rows, grad


def _reduce(rows, grad, reduction, w):
    w = np.ones(len(rows)) if w is None else np.asarray(w, dtype=np.float64)
    c = w / w.sum() if reduction == "mean" else w
    value = c * rows if reduction == "none" else np.sum(c * rows)
    return value, c[:, None] * grad


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_cross_entropy_matches_sklearn(backend, dtype, reduction, weighted):
    rng = np.random.default_rng(5)
    S = (4 * rng.standard_normal((40, 6))).astype(dtype)
    y = rng.integers(0, 6, 40)
    w = rng.uniform(0, 2, 40).astype(dtype) if weighted else None
    rows, grad = _sklearn_rows(S, y)
    want_loss, want_grad = _reduce(rows, grad, reduction, w)

    got = fs.cross_entropy(S, y, reduction=reduction, sample_weight=w, backend=backend)
    got_loss, got_grad = fs.cross_entropy_gradient(S, y, reduction=reduction,
                                                   sample_weight=w, backend=backend)
    assert_close(got, want_loss, dtype, scale=float(np.sum(np.abs(rows))))
    assert_close(got_loss, want_loss, dtype, scale=float(np.sum(np.abs(rows))))
    assert_close(got_grad, want_grad, dtype, scale=1.0)
    assert fs.to_numpy(got_grad).dtype == dtype
    if reduction != "none":
        assert fs.to_numpy(got).shape == ()


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_gradient_matches_torch_autograd(backend, reduction):
    torch = pytest.importorskip("torch", reason="PyTorch reference not installed")
    rng = np.random.default_rng(6)
    S = 3 * rng.standard_normal((25, 7))
    y = rng.integers(0, 7, 25)
    St = torch.tensor(S, requires_grad=True)
    ref = torch.nn.functional.cross_entropy(St, torch.tensor(y), reduction=reduction)
    ref.backward(torch.ones_like(ref))
    loss, dscores = fs.cross_entropy_gradient(S, y, reduction=reduction, backend=backend)
    assert_close(loss, ref.detach().numpy(), np.float64)
    assert_close(dscores, St.grad.numpy(), np.float64, scale=1.0)


def test_cross_entropy_extreme_and_masked_scores(backend, dtype):
    inf = np.inf
    big = 1e300 if dtype == np.float64 else 1e38
    S = np.array([[1e4, -1e4, 0.0], [-1e4, 0.0, 1e4], [big, -big, 0.0],
                  [0.0, -inf, 2.0], [-inf, 1.0, -inf]], dtype=dtype)
    y = np.array([0, 0, 1, 2, 1])
    rows = fs.to_numpy(fs.cross_entropy(S, y, reduction="none", backend=backend))
    # Exact answers: a correct label far ahead costs ~0, far behind costs the gap;
    # a masked (-inf) wrong class contributes nothing.
    expected = [0.0, 2e4, 2 * big, np.log1p(np.exp(-2.0)), 0.0]
    assert_close(rows, expected, dtype, scale=1.0)
    assert_close(rows[:2], expected[:2], dtype)  # relative at the 1e4 scale
    loss, dscores = fs.cross_entropy_gradient(S, y, reduction="none", backend=backend)
    dscores = fs.to_numpy(dscores)
    assert np.all(np.isfinite(dscores))
    assert_close(dscores[1], [-1.0, 0.0, 1.0], dtype, scale=1.0)
    assert dscores[3, 1] == 0.0 and dscores[4, 0] == 0.0 and dscores[4, 2] == 0.0


def test_label_at_masked_class_costs_infinity(backend):
    S = np.array([[0.0, -np.inf]])
    assert fs.to_numpy(fs.cross_entropy(S, [1], backend=backend)) == np.inf


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_loss_gradient_matches_naive_loops(backend, dtype, weighted):
    X, y, W, b = random_problem(13, 4, 5, dtype, seed=7)
    w = np.random.default_rng(8).uniform(0, 3, 13).astype(dtype) if weighted else None
    want_loss, want_dW, want_db = naive.loss_gradient(X.astype(float), y, W.astype(float),
                                                      b.astype(float), reg=0.3,
                                                      sample_weight=w)
    loss, dW, db = fs.loss_gradient(X, y, W, b, reg=0.3, sample_weight=w, backend=backend)
    scale = float(np.abs(X).max())
    assert_close(loss, want_loss, dtype, scale=scale)
    assert_close(dW, want_dW, dtype, scale=scale)
    assert_close(db, want_db, dtype, scale=1.0)
    assert_close(fs.loss(X, y, W, b, reg=0.3, sample_weight=w, backend=backend),
                 want_loss, dtype, scale=scale)
    assert_close(fs.scores(X, W, b, backend=backend), naive.scores(X, W, b), dtype,
                 scale=scale * 4)
    for a in (loss, dW, db):
        assert fs.to_numpy(a).dtype == dtype


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_loss_gradient_matches_sklearn_linear_model_loss(backend, weighted):
    X, y, W, b = random_problem(200, 6, 4, seed=9)
    w = np.random.default_rng(10).uniform(0, 2, 200) if weighted else None
    reg = 0.05
    lml = LinearModelLoss(base_loss=HalfMultinomialLoss(n_classes=4), fit_intercept=True)
    coef = np.hstack([W.T, b[:, None]])  # scikit-learn's (K, D + 1) layout
    want_loss, grad = lml.loss_gradient(coef, X, y.astype(float), sample_weight=w,
                                        l2_reg_strength=reg)
    loss, dW, db = fs.loss_gradient(X, y, W, b, reg=reg, sample_weight=w, backend=backend)
    assert_close(loss, want_loss, np.float64, scale=10.0)
    assert_close(dW, grad[:, :-1].T, np.float64, scale=10.0)
    assert_close(db, grad[:, -1], np.float64, scale=1.0)


def test_loss_gradient_matches_torch_autograd(backend, dtype):
    torch = pytest.importorskip("torch", reason="PyTorch reference not installed")
    X, y, W, b = random_problem(64, 5, 3, dtype, seed=11)
    Wt = torch.tensor(W.astype(np.float64), requires_grad=True)
    bt = torch.tensor(b.astype(np.float64), requires_grad=True)
    S = torch.tensor(X.astype(np.float64)) @ Wt + bt
    ref = torch.nn.functional.cross_entropy(S, torch.tensor(y)) + 0.5 * 0.1 * (Wt * Wt).sum()
    ref.backward()
    loss, dW, db = fs.loss_gradient(X, y, W, b, reg=0.1, backend=backend)
    assert_close(loss, ref.item(), dtype, scale=5.0)
    assert_close(dW, Wt.grad.numpy(), dtype, scale=5.0)
    assert_close(db, bt.grad.numpy(), dtype, scale=1.0)


def _central_difference(f, a, eps):
    g = np.zeros_like(a)
    for idx in np.ndindex(a.shape):
        up, down = a.copy(), a.copy()
        up[idx] += eps
        down[idx] -= eps
        g[idx] = (f(up) - f(down)) / (2 * eps)
    return g


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_gradients_match_central_differences(backend, weighted):
    X, y, W, b = random_problem(30, 3, 4, seed=12)
    w = np.random.default_rng(13).uniform(0.1, 2, 30) if weighted else None
    reg = 0.2

    def f(W_, b_):
        return float(fs.loss(X, y, W_, b_, reg=reg, sample_weight=w, backend=backend))

    _, dW, db = fs.loss_gradient(X, y, W, b, reg=reg, sample_weight=w, backend=backend)
    eps = 1e-6
    # Central differences are exact to O(eps^2) plus rounding ~1e-16/eps: ~1e-9.
    np.testing.assert_allclose(fs.to_numpy(dW), _central_difference(lambda a: f(a, b), W, eps),
                               rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(fs.to_numpy(db), _central_difference(lambda a: f(W, a), b, eps),
                               rtol=1e-6, atol=1e-8)

    # dscores on 8 of the rows (each a loss call per entry, twice: on dask a round trip)
    S = np.asarray(fs.to_numpy(fs.scores(X[:8], W, b, backend=backend)))
    y8, w8 = y[:8], (w[:8] if weighted else None)
    _, dS = fs.cross_entropy_gradient(S, y8, sample_weight=w8, backend=backend)
    num = _central_difference(
        lambda a: float(fs.cross_entropy(a, y8, sample_weight=w8, backend=backend)), S, eps)
    np.testing.assert_allclose(fs.to_numpy(dS), num, rtol=1e-6, atol=1e-8)


def test_loss_is_first_output_of_loss_gradient(backend, dtype):
    X, y, W, b = random_problem(50, 3, 3, dtype, seed=14)
    a = fs.to_numpy(fs.loss(X, y, W, b, reg=0.01, backend=backend))
    c = fs.to_numpy(fs.loss_gradient(X, y, W, b, reg=0.01, backend=backend)[0])
    np.testing.assert_allclose(a, c, rtol=rtol_for(dtype))


def test_mixed_precision_promotes_to_float64(backend):
    X, y, W, b = random_problem(10, 2, 3, np.float32, seed=15)
    loss, dW, db = fs.loss_gradient(X, y, W.astype(np.float64), b, backend=backend)
    assert fs.to_numpy(dW).dtype == np.float64 and fs.to_numpy(loss).dtype == np.float64


def test_integer_features_are_promoted_to_float64(backend):
    X = np.array([[1, 2], [3, 4]])
    S = fs.to_numpy(fs.scores(X, np.eye(2), np.zeros(2), backend=backend))
    assert S.dtype == np.float64
    np.testing.assert_array_equal(S, X.astype(float))


def test_weights_of_ones_equal_no_weights(backend):
    X, y, W, b = random_problem(20, 3, 3, seed=16)
    a = fs.loss_gradient(X, y, W, b, reg=0.1, backend=backend)
    c = fs.loss_gradient(X, y, W, b, reg=0.1, sample_weight=np.full(20, 3.0), backend=backend)
    for u, v in zip(a, c):
        assert_close(u, fs.to_numpy(v), np.float64, scale=1.0)


def test_zero_weight_rows_do_not_count(backend):
    X, y, W, b = random_problem(20, 3, 3, seed=17)
    w = np.r_[np.ones(10), np.zeros(10)]
    full = fs.loss_gradient(X, y, W, b, sample_weight=w, backend=backend)
    half = fs.loss_gradient(X[:10], y[:10], W, b, backend=backend)
    for u, v in zip(full, half):
        assert_close(u, fs.to_numpy(v), np.float64, scale=1.0)


def test_non_contiguous_and_fortran_inputs(backend):
    X, y, W, b = random_problem(40, 6, 3, seed=18)
    want = [fs.to_numpy(a) for a in fs.loss_gradient(X[::2, ::2], y[::2], W[::2], b,
                                                     backend="numpy")]
    strided = X[::2, ::2]
    fortran = np.asfortranarray(np.ascontiguousarray(strided))
    assert not strided.flags.c_contiguous and not fortran.flags.c_contiguous
    for Xv in (strided, fortran):
        got = fs.loss_gradient(Xv, y[::2], W[::2], b, backend=backend)
        for u, v in zip(got, want):
            assert_close(u, v, np.float64, scale=1.0)


LABEL_DTYPES = [np.int8, np.uint8, np.int16, np.int32, np.int64, np.uint32]


# The backend fixture is stateless: one per column serves every example.
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 12), d=st.integers(1, 4), k=st.integers(1, 5),
       dtype=st.sampled_from([np.float32, np.float64]),
       label_dtype=st.sampled_from(LABEL_DTYPES), seed=st.integers(0, 2**16),
       reg=st.sampled_from([0.0, 1e-3, 0.5]), weighted=st.booleans())
def test_property_against_naive(backend, n, d, k, dtype, label_dtype, seed, reg, weighted):
    X, y, W, b = random_problem(n, d, k, dtype, seed=seed)
    y = y.astype(label_dtype)
    w = np.random.default_rng(seed).uniform(0.5, 2, n).astype(dtype) if weighted else None
    want = naive.loss_gradient(X.astype(float), y, W.astype(float), b.astype(float),
                               reg=reg, sample_weight=w)
    got = fs.loss_gradient(X, y, W, b, reg=reg, sample_weight=w, backend=backend)
    for u, v in zip(got, want):
        assert fs.to_numpy(u).dtype == dtype
        assert_close(u, v, dtype, scale=10.0)


def test_float32_sums_over_many_rows_keep_float32_accuracy(backend):
    """Sums over N (db, the loss, the weights) accumulate wider than float32:
    a float32 running sum down 600k rows would be off by percents of db."""
    X, y = fs.make_spiral(200_000, 3, seed=0, dtype="float32", backend="numpy")
    W = np.array([[0.3, -0.2, 0.1], [-0.1, 0.4, 0.2]], dtype=np.float32)
    b = np.array([0.05, -0.02, 0.0], dtype=np.float32)
    want = fs.loss_gradient(X.astype(np.float64), y, W.astype(np.float64),
                            b.astype(np.float64), reg=1e-3, backend="numpy")
    got = fs.loss_gradient(X, y, W, b, reg=1e-3, backend=backend)
    for g, v in zip(got, want):
        assert fs.to_numpy(g).dtype == np.float32
        assert_close(g, v, np.float32, scale=float(np.max(np.abs(v))))
