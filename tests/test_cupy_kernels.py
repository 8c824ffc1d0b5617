"""The cupy backend's CUDA kernels at their edges, against the Array-API
reference run on the same device, against NumPy and against SciPy.

Most tests here need a usable CUDA GPU and skip with the registry's reason
without one. The cross-backend suites (test_loss.py, test_softmax.py, ...) run
on cupy too, through the shared ``backend`` fixture.

The first section runs everywhere: the backend's pure parts (which path a shape
takes, the dtype and shape guard in front of the raw pointers) and its host-side
sums over N. Those are functions of an array namespace, written with calls
NumPy and CuPy share (``sum(..., dtype=)``, ``astype``, ``@``), so running them
on NumPy runs the backend's own code; the data are chosen so that a sum
accumulated in float32 would fail.
"""

import ast
import inspect
import os
import subprocess
import sys

import numpy as np
import pytest

import fastsoftmax as fs
from fastsoftmax.backends import Backend, backend_info
from fastsoftmax.backends import cupy as cupy_module

from conftest import assert_close, random_problem

INFO = backend_info("cupy")


@pytest.fixture(scope="module")
def be():
    if not INFO["available"]:
        pytest.skip(f"backend 'cupy' is unavailable here: {INFO['reason']}")
    return fs.get_backend("cupy")


def _reference(be, op, *args, **kwargs):
    """The Array-API reference on the same device (the base class's op)."""
    return getattr(Backend, op)(be, *args, **kwargs)


def _on(be, *arrays):
    return tuple(None if a is None else be.asarray(a) for a in arrays)


def _numpy_loss_gradient(X, y, W, b, reg, w):
    f64 = (None if a is None else np.asarray(a, dtype=np.float64) for a in (X, W, b, w))
    X64, W64, b64, w64 = f64
    return fs.loss_gradient(X64, np.asarray(y).astype(np.int64), W64, b64, reg=reg,
                            sample_weight=w64, backend="numpy")


def _assert_outputs_close(got, want, dtype, scale):
    loss, dW, db = got
    assert_close(loss, fs.to_numpy(want[0]), dtype, scale=scale)
    assert_close(dW, fs.to_numpy(want[1]), dtype, scale=scale)
    assert_close(db, fs.to_numpy(want[2]), dtype, scale=1.0)


# (N, D, K): N around the block (256) and chunk sizes, K on both sides of the
# register path's limits (float32, float64: K <= 24, D*K <= 48; float16: K <= 16,
# D*K <= 32).
SHAPES = [
    (1, 2, 3), (2, 1, 1), (255, 2, 3), (256, 2, 3), (257, 2, 3), (1000, 1, 3), (1001, 3, 5),
    (4099, 4, 4), (777, 1, 16), (513, 2, 24), (300, 1, 25), (200, 5, 100), (130, 3, 1000),
    (77, 8, 9), (64, 48, 1), (65, 49, 1), (66, 16, 3), (513, 2, 32),
]


def _path(d, k, dtype):
    return cupy_module.loss_gradient_path(np.dtype(dtype).name, d, k)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("shape", SHAPES,
                         ids=[f"N{n}-D{d}-K{k}-f32{_path(d, k, np.float32)}"
                              f"-f64{_path(d, k, np.float64)}" for n, d, k in SHAPES])
def test_loss_gradient_matches_reference_and_numpy(be, shape, weighted, dtype):
    n, d, k = shape
    X, y, W, b = random_problem(n, d, k, dtype, seed=n + d + k, scale=2.0)
    w = np.random.default_rng(n).uniform(0, 2, n).astype(dtype) if weighted else None
    reg = 0.3
    Xd, yd, Wd, bd, wd = _on(be, X, y, W, b, w)
    got = be.loss_gradient(Xd, yd, Wd, bd, reg=reg, sample_weight=wd)
    for a in got:
        assert be.owns(a) and a.dtype == dtype
    scale = 2.0 * float(np.abs(X).max())
    ref = _reference(be, "loss_gradient", Xd, yd, Wd, bd, reg=reg, sample_weight=wd,
                     check=False)
    _assert_outputs_close(got, ref, np.dtype(dtype), scale)
    _assert_outputs_close(got, _numpy_loss_gradient(X, y, W, b, reg, w), np.dtype(dtype),
                          scale)
    loss_only = be.loss(Xd, yd, Wd, bd, reg=reg, sample_weight=wd)
    assert float(loss_only) == float(got[0])


def test_the_shapes_above_cover_both_paths():
    paths = {_path(d, k, t) for _, d, k in SHAPES for t in (np.float32, np.float64)}
    assert paths == {"fused", "wide"}


def test_one_class_costs_nothing(be):
    X, y, W, b = random_problem(300, 3, 1, np.float32, seed=1)
    loss, dW, db = be.loss_gradient(*_on(be, X, y, W, b), reg=0.5)
    assert float(loss) == pytest.approx(0.25 * float(np.sum(W.astype(float) ** 2)), rel=1e-6)
    np.testing.assert_allclose(fs.to_numpy(dW), 0.5 * W, rtol=1e-6)
    np.testing.assert_array_equal(fs.to_numpy(db), [0.0])


@pytest.mark.parametrize("label_dtype", [np.int8, np.uint8, np.int16, np.uint16, np.int32,
                                         np.uint32, np.int64, np.uint64])
@pytest.mark.parametrize("k", [3, 40])
def test_every_label_dtype_gives_the_same_result(be, label_dtype, k):
    X, y, W, b = random_problem(1001, 2, k, np.float32, seed=3)
    want = be.loss_gradient(*_on(be, X, y.astype(np.int64), W, b), reg=0.1)
    got = be.loss_gradient(*_on(be, X, y.astype(label_dtype), W, b), reg=0.1)
    for u, v in zip(got, want):
        np.testing.assert_array_equal(fs.to_numpy(u), fs.to_numpy(v))


def test_unaligned_views_take_the_element_load_path(be):
    import cupy

    X, y, W, b = random_problem(1025, 1, 3, np.float32, seed=4)
    X_big = cupy.asarray(np.vstack([np.zeros((1, 1), np.float32), X]))
    y_big = cupy.asarray(np.r_[0, y].astype(np.int32))
    X_view, y_view = X_big[1:], y_big[1:]  # 4 bytes past a 16-byte boundary
    assert X_view.data.ptr % 16 != 0 and X_view.flags.c_contiguous
    got = be.loss_gradient(X_view, y_view, *_on(be, W, b))
    want = be.loss_gradient(*_on(be, X, y.astype(np.int32), W, b))
    for u, v in zip(got, want):  # same rows per thread, same arithmetic: same bits
        np.testing.assert_array_equal(fs.to_numpy(u), fs.to_numpy(v))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("k", [3, 50])
def test_results_are_bitwise_reproducible(be, dtype, k):
    X, y, W, b = random_problem(1_000_003, 2, k, dtype, seed=5)
    w = np.random.default_rng(5).uniform(0, 1, len(y)).astype(dtype)
    args = _on(be, X, y, W, b, w)
    first = [fs.to_numpy(a) for a in be.loss_gradient(*args[:4], reg=0.1, sample_weight=args[4])]
    for _ in range(3):
        again = be.loss_gradient(*args[:4], reg=0.1, sample_weight=args[4])
        for u, v in zip(again, first):
            np.testing.assert_array_equal(fs.to_numpy(u), v)


def test_float32_accumulation_holds_at_ten_million_rows(be):
    X, y, W, b = random_problem(10_000_000, 2, 3, np.float32, seed=6)
    got = be.loss_gradient(*_on(be, X, y, W, b), reg=1e-3)
    want = _numpy_loss_gradient(X, y, W, b, 1e-3, None)
    for u, v in zip(got, want):
        np.testing.assert_allclose(fs.to_numpy(u), v, rtol=2e-6, atol=2e-7)


def test_extreme_scores_stay_finite_and_match(be):
    # Scores of +-1e4: a correct label far ahead costs ~0, far behind costs ~2e4.
    X = np.array([[1e4], [-1e4], [1e4], [0.0]] * 64)
    W = np.array([[1.0, -1.0, 0.0]])
    b = np.zeros(3)
    y = np.array([0, 0, 2, 1] * 64)
    for dtype in (np.float32, np.float64):
        args = _on(be, X.astype(dtype), y, W.astype(dtype), b.astype(dtype))
        got = be.loss_gradient(*args)
        assert all(np.isfinite(fs.to_numpy(a)).all() for a in got)
        _assert_outputs_close(got, _numpy_loss_gradient(X, y, W, b, 0.0, None), np.dtype(dtype),
                              scale=2e4)


def test_overflowing_scores_follow_the_reference(be):
    # Finite inputs whose float32 scores overflow to inf: no input error, and the
    # reference's answer (NaN from inf - inf), not a made-up one.
    X = np.array([[3e38], [1.0]], dtype=np.float32)
    W = np.array([[10.0, 0.0]], dtype=np.float32)
    b = np.zeros(2, dtype=np.float32)
    y = np.array([0, 1])
    args = _on(be, X, y, W, b)
    got = be.loss_gradient(*args)
    want = _reference(be, "loss_gradient", *args, check=False)
    for u, v in zip(got, want):
        np.testing.assert_array_equal(np.isnan(fs.to_numpy(u)), np.isnan(fs.to_numpy(v)))


def test_float16_inputs_compute_in_float32(be):
    X, y, W, b = random_problem(5000, 2, 3, np.float16, seed=7)
    got = be.loss_gradient(*_on(be, X, y, W, b), reg=0.1)
    assert all(a.dtype == np.float16 for a in got)
    want = _numpy_loss_gradient(X, y, W, b, 0.1, None)  # the same float16 values, in float64
    for u, v in zip(got, want):
        np.testing.assert_allclose(fs.to_numpy(u).astype(float), v, rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("k", [3, 40])
@pytest.mark.parametrize("bad,words", [
    ("label", "y holds label"), ("X", "X contains NaN"), ("W", "W contains NaN"),
    ("b", "b contains NaN"), ("weight", "sample_weight must be non-negative"),
    ("zero_weights", "sample_weight must have a positive sum"),
])
def test_flagged_values_raise_the_generic_error(be, k, bad, words):
    X, y, W, b = random_problem(600, 2, k, np.float64, seed=8)
    w = np.ones(600)
    if bad == "label":
        y[599] = k
    elif bad == "X":
        X[300, 1] = np.inf
    elif bad == "W":
        W[0, 0] = np.nan
    elif bad == "b":
        b[-1] = -np.inf
    elif bad == "weight":
        w[10] = -1.0
    else:
        w[:] = 0.0
    with pytest.raises(ValueError, match=words):
        be.loss_gradient(*_on(be, X, y, W, b), sample_weight=be.asarray(w))


@pytest.mark.parametrize("k", [3, 40])
def test_unchecked_bad_label_poisons_the_loss(be, k):
    X, y, W, b = random_problem(600, 2, k, np.float32, seed=9)
    y[5] = k + 7
    loss, _, _ = be.loss_gradient(*_on(be, X, y, W, b), check=False)
    assert np.isnan(float(loss))


# -- N >= 1e7 on the device: every path sums over N in float64 ----------------------
# (N, D, K, dtype, the path loss_gradient takes); X is un-centred (~100), where a
# float32 sum over the rows loses digits.
BIG_SHAPES = [(10_000_000, 2, 3, "float32", "fused"), (10_000_000, 2, 3, "float64", "fused"),
              (10_000_000, 40, 3, "float32", "wide")]


def _device_problem(n, d, k, dtype, seed):
    import cupy

    rng = cupy.random.default_rng(seed)
    X = (rng.standard_normal((n, d)) + 100.0).astype(dtype)
    y = rng.integers(0, k, n).astype(cupy.int32)
    W = (0.01 * rng.standard_normal((d, k))).astype(dtype)
    b = (0.1 * rng.standard_normal(k)).astype(dtype)
    return X, y, W, b


@pytest.mark.parametrize("shape", BIG_SHAPES, ids=[f"{t}-D{d}-K{k}-{p}"
                                                   for _, d, k, t, p in BIG_SHAPES])
def test_big_uncentred_problem_matches_float64(be, shape):
    import cupy

    n, d, k, dtype, path = shape
    assert cupy_module.loss_gradient_path(dtype, d, k) == path
    X, y, W, b = _device_problem(n, d, k, dtype, seed=d + k)
    got = be.loss_gradient(X, y, W, b, reg=1e-3)
    X64, W64, b64 = (a.astype(cupy.float64) for a in (X, W, b))
    want = _reference(be, "loss_gradient", X64, y, W64, b64, reg=1e-3, check=False)
    _assert_outputs_close(got, want, np.dtype(dtype), scale=2.0 * float(cupy.abs(X).max()))


def test_wide_path_dw_is_the_float64_sum_of_its_float32_dscores(be):
    # The wide path's own dscores, rebuilt with the same float32 kernels (X @ W by
    # the same cuBLAS call, + b, the row kernel with c_i = 1), then summed over the
    # 1e7 rows in float64: dW must be that sum rounded once (a float32 GEMM is
    # hundreds of ulps away at X ~ 100), db exactly CuPy's float64 sum.
    import cupy

    n, d, k = 10_000_000, 40, 3
    assert cupy_module.loss_gradient_path("float32", d, k) == "wide"
    X, y, W, b = _device_problem(n, d, k, "float32", seed=1)
    _, dW, db = be.loss_gradient(X, y, W, b, check=False)
    _, G = be.cross_entropy_gradient(X @ W + b, y, reduction="sum", check=False)
    want_dW = (X.astype(cupy.float64).T @ G.astype(cupy.float64)) / n
    np.testing.assert_array_max_ulp(fs.to_numpy(dW), fs.to_numpy(want_dW.astype(cupy.float32)),
                                    maxulp=1)
    want_db = (cupy.sum(G, axis=0, dtype=cupy.float64) / n).astype(cupy.float32)
    np.testing.assert_array_equal(fs.to_numpy(db), fs.to_numpy(want_db))


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("k", [3, 40])  # 1 and 8 threads per row
def test_cross_entropy_reductions_sum_rows_in_float64(be, k, weighted):
    import cupy

    n = 10_000_000
    rng = cupy.random.default_rng(k)
    S = (3.0 * rng.standard_normal((n, k))).astype(cupy.float32)
    y = rng.integers(0, k, n)
    w = rng.uniform(0.0, 2.0, n).astype(cupy.float32) if weighted else None
    rows = be.cross_entropy(S, y, reduction="none", sample_weight=w)
    total = be.cross_entropy(S, y, reduction="sum", sample_weight=w)
    # "sum" rows are the "none" rows: the total is their float64 sum, rounded once.
    assert total.dtype == np.float32
    assert float(total) == float(cupy.sum(rows, dtype=cupy.float64).astype(cupy.float32))
    mean = be.cross_entropy(S, y, reduction="mean", sample_weight=w)
    wsum = n if w is None else cupy.sum(w, dtype=cupy.float64)
    want = (cupy.sum(rows, dtype=cupy.float64) / wsum).astype(cupy.float32)
    np.testing.assert_array_max_ulp(fs.to_numpy(mean), fs.to_numpy(want), maxulp=2)


def test_float32_data_with_float64_parameters_is_promoted_not_misread(be):
    # The kernels take raw pointers: float64 W and b must not be read as float.
    X, y, W, b = random_problem(1000, 2, 3, np.float32, seed=11)
    W64, b64 = W.astype(np.float64), b.astype(np.float64)
    w64 = np.random.default_rng(11).uniform(0, 1, 1000)
    got = be.loss_gradient(*_on(be, X, y, W64, b64), reg=0.1, sample_weight=be.asarray(w64))
    want = fs.loss_gradient(X, y, W64, b64, reg=0.1, sample_weight=w64, backend="numpy")
    for u, v in zip(got, want):
        assert u.dtype == np.float64
        assert_close(u, v, np.float64, scale=4.0)
    S32 = be.asarray(np.zeros((5, 3), np.float32))
    loss = be.cross_entropy(S32, be.asarray(np.arange(5) % 3), sample_weight=be.asarray(
        np.ones(5)))  # float64 weights follow S
    assert loss.dtype == np.float32 and float(loss) == pytest.approx(np.log(3), rel=1e-6)


def test_mismatched_shapes_are_refused_before_any_kernel(be):
    X, y, W, b = _on(be, *random_problem(10, 2, 3, np.float32))
    with pytest.raises(ValueError, match="b must have shape"):
        be.loss_gradient(X, y, W, b[:2])
    with pytest.raises(ValueError, match="y must have shape"):
        be.loss_gradient(X, y[:9], W, b)


# -- SciPy's answers (scipy.special) for the row kernels ----------------------------
SCIPY_ROWS = [[0.0, -40.0],               # gh-18295: logsumexp = 4.248e-18, not 0
              [1.0, 1.0, -40.0],          # a tie at the max
              [np.inf, 0.0, -1.0],        # +inf: softmax all NaN, logsumexp +inf
              [-np.inf, np.inf], [np.inf, np.inf, 0.0],
              [-np.inf, -np.inf],         # fully masked
              [np.nan, 0.0], [2.0, -3.0, 0.5]]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("k", [3, 40, 1000])  # 1, 8 and 128 threads per row
def test_row_kernels_give_scipys_answers(be, k, dtype):
    special = pytest.importorskip("scipy.special")
    S = np.full((len(SCIPY_ROWS), k), -np.inf)  # -inf padding changes no answer
    for i, row in enumerate(SCIPY_ROWS):
        S[i, :len(row)] = row
    S = S.astype(dtype)
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    with np.errstate(invalid="ignore", divide="ignore"):
        for op, atol in (("softmax", 0.0), ("log_softmax", rtol), ("logsumexp", 0.0)):
            got = fs.to_numpy(getattr(be, op)(be.asarray(S), 1))
            want = getattr(special, op)(S, axis=1)
            np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=op)
            np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=op)
    assert fs.to_numpy(be.logsumexp(be.asarray(S), 1))[0] > 0  # 4.2e-18, relative accuracy


# -- row kernels ----------------------------------------------------------------
ROW_K = [1, 3, 8, 9, 33, 100, 1000, 5000]  # 1, 1, 1, 2, 8, 16, 128, 256 threads per row


def _masked_scores(n, k, dtype, seed):
    rng = np.random.default_rng(seed)
    S = (8 * rng.standard_normal((n, k))).astype(dtype)
    S[rng.uniform(size=(n, k)) < 0.3] = -np.inf
    S[0] = -np.inf  # a fully masked row
    return S


@pytest.mark.parametrize("op", ["softmax", "log_softmax", "logsumexp"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("k", ROW_K)
def test_softmax_rows_match_the_reference(be, op, dtype, k):
    S = _masked_scores(301, k, dtype, seed=k)
    got = fs.to_numpy(getattr(be, op)(be.asarray(S), 1))
    want = fs.to_numpy(_reference(be, op, be.asarray(S), 1))
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
    assert_close(got, fs.to_numpy(getattr(fs, op)(S.astype(np.float64), backend="numpy")),
                 np.dtype(dtype))


def test_fully_masked_row_gives_nan_and_minus_inf(be):
    S = be.asarray(np.full((3, 40), -np.inf))
    assert np.isnan(fs.to_numpy(be.softmax(S, 1))).all()
    assert np.isnan(fs.to_numpy(be.log_softmax(S, 1))).all()
    assert (fs.to_numpy(be.logsumexp(S, 1)) == -np.inf).all()


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("k", ROW_K)
def test_cross_entropy_rows_match_numpy(be, k, weighted, reduction):
    rng = np.random.default_rng(k)
    n = 517
    S = 5 * rng.standard_normal((n, k))
    S[3, :] = -np.inf
    S[3, 0] = 2.0  # one allowed class, and it is the label: costs 0
    y = rng.integers(0, k, n)
    y[3] = 0
    w = rng.uniform(0, 2, n) if weighted else None
    for dtype in (np.float32, np.float64):
        Sd, yd, wd = _on(be, S.astype(dtype), y, None if w is None else w.astype(dtype))
        loss, dS = be.cross_entropy_gradient(Sd, yd, reduction=reduction, sample_weight=wd)
        want_loss, want_dS = fs.cross_entropy_gradient(S, y, reduction=reduction,
                                                      sample_weight=w, backend="numpy")
        assert_close(loss, want_loss, np.dtype(dtype), scale=float(np.sum(np.abs(S[S > -1e300]))))
        assert_close(dS, want_dS, np.dtype(dtype), scale=1.0)
        only = be.cross_entropy(Sd, yd, reduction=reduction, sample_weight=wd)
        np.testing.assert_array_equal(fs.to_numpy(only), fs.to_numpy(loss))


def test_masked_scores_do_not_cost_a_generic_check(be, monkeypatch):
    # -inf scores are legitimate in cross_entropy: the fused check must not fall
    # back to the generic one (a pass over y and w plus syncs) because of them.
    calls = []
    monkeypatch.setattr(be, "check_values", lambda **kw: calls.append(kw))
    S = np.zeros((64, 40))
    S[:, 1:] = -np.inf
    value = be.cross_entropy(be.asarray(S), be.asarray(np.zeros(64, dtype=np.int64)))
    assert float(value) == 0.0 and calls == []
    be.cross_entropy(be.asarray(S), be.asarray(np.full(64, 40)))  # a bad label does
    assert len(calls) == 1


def test_cross_entropy_flags_bad_labels(be):
    S = be.asarray(np.zeros((40, 50)))
    with pytest.raises(ValueError, match="y holds label 50"):
        be.cross_entropy(S, be.asarray(np.full(40, 50)))


# -- arrays on the device -----------------------------------------------------------
def test_spiral_is_generated_on_the_device(be):
    X, y = fs.make_spiral(1000, 3, seed=1, dtype="float32", backend="cupy")
    assert be.owns(X) and be.owns(y) and X.dtype == np.float32
    again = fs.make_spiral(1000, 3, seed=1, dtype="float32", backend="cupy")[0]
    np.testing.assert_array_equal(fs.to_numpy(X), fs.to_numpy(again))


def test_classifier_keeps_every_array_on_the_device(be):
    X, y = fs.make_spiral(100, 3, seed=0, backend="cupy")
    model = fs.SoftmaxClassifier(solver="gd", tol=0, random_state=0, backend="cupy").fit(X, y)
    assert be.owns(model.W_) and be.owns(model.b_) and be.owns(model.predict(X))
    assert model.loss_history_[-1] < model.loss_history_[0]


# -- without a GPU: the routing, the guard and the float64 sums --------------------
CP = cupy_module


def test_routing_sends_each_shape_to_the_path_its_tests_expect():
    assert CP.loss_gradient_path("float32", 2, 3) == "fused"      # the benchmarked shape
    assert CP.loss_gradient_path("float64", 2, 3) == "fused"
    assert CP.loss_gradient_path("float32", 100, 3) == "wide"     # the example
    assert CP.loss_gradient_path("float32", 40, 3) == "wide"      # BIG_SHAPES below
    assert CP.loss_gradient_path("float32", 1, 25) == "wide"      # K beyond the registers
    assert CP.loss_gradient_path("float16", 2, 3) == "fused"
    assert CP.loss_gradient_path("float16", 100, 3) == "reference"
    for _, d, k, dtype, path in BIG_SHAPES:
        assert CP.loss_gradient_path(dtype, d, k) == path


def test_wide_path_sums_x_times_dscores_in_float64():
    # Un-centred float32 data (X ~ 100): a float32 product over N = 2e6 rows is
    # ~1e-9 off relative to the summed magnitudes (NumPy's sgemm; cuBLAS's is
    # worse); cast first, it agrees with the float64 product to ~1e-17.
    rng = np.random.default_rng(0)
    n, d, k = 2_000_000, 4, 3
    X = (rng.standard_normal((n, d)) + 100).astype(np.float32)
    G = rng.dirichlet(np.ones(k), n).astype(np.float32)
    G[np.arange(n), rng.integers(0, k, n)] -= 1  # P - onehot: columns cancel
    W = rng.standard_normal((d, k)).astype(np.float32)
    rows = rng.exponential(size=n).astype(np.float32)
    X64, G64 = X.astype(np.float64), G.astype(np.float64)
    want = X64.T @ G64
    magnitude = np.abs(X64).T @ np.abs(G64)
    assert np.max(np.abs((X.T @ G) - want) / magnitude) > 1e-11  # float32 would fail below
    for chunk in (CP.WIDE_CHUNK_BYTES, 1 << 20):  # one chunk; 24 chunks
        got = CP.gemm_tn_f64(np, X, G, chunk)
        assert got.dtype == np.float64
        assert np.max(np.abs(got - want) / magnitude) < 1e-14
    value, dW, db = CP.wide_outputs(np, X, G, rows, W, float(n), 0.1)
    assert value.dtype == dW.dtype == db.dtype == np.float64  # cast once, by the caller
    np.testing.assert_allclose(dW, want / n + 0.1 * W.astype(np.float64), rtol=1e-13)
    np.testing.assert_allclose(db, G64.sum(axis=0) / n, rtol=1e-13, atol=1e-16)


def test_row_sums_accumulate_in_float64():
    # One 1.0 and 2e6 terms below half its float32 ulp: a float32 accumulator
    # (even NumPy's pairwise one) drops those added to the 1.0; float64 keeps all.
    n = 2_000_001
    rows = np.full(n, 0.75 * 2.0**-24, dtype=np.float32)
    rows[0] = 1.0
    exact = np.float32(1.0 + (n - 1) * 0.75 * 2.0**-24)
    assert np.sum(rows) != exact  # float32 accumulation: the data discriminate
    total = CP.sum_rows(np, rows)
    assert total.dtype == np.float64 and np.float32(total) == exact
    np.testing.assert_array_equal(CP.sum_rows(np, np.stack([rows, rows], 1), axis=0),
                                  [float(total)] * 2)


def _calls_in(tree):
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)]


def test_every_sum_in_the_backend_names_its_accumulation_dtype():
    # CuPy sums float32 in float32 unless told (its f->f rule): every sum in the
    # backend says dtype=, and sums over rows go through sum_rows (float64).
    tree = ast.parse(inspect.getsource(CP))
    sums = [c for c in _calls_in(tree)
            if isinstance(c.func, ast.Attribute) and c.func.attr == "sum"]
    assert sums, "the backend sums somewhere"
    for call in sums:
        assert any(kw.arg == "dtype" for kw in call.keywords), ast.unparse(call)


def test_products_over_rows_only_in_the_float64_gemm():
    # X.T @ ... adds N products: only gemm_tn_f64 may write one (it casts first).
    tree = ast.parse(inspect.getsource(CP))
    for func in ast.walk(tree):
        if not isinstance(func, ast.FunctionDef):
            continue
        for node in ast.walk(func):
            if (isinstance(node, ast.BinOp) and isinstance(node.op, ast.MatMult)
                    and isinstance(node.left, ast.Attribute) and node.left.attr == "T"):
                assert func.name == "gemm_tn_f64", (func.name, ast.unparse(node))


def _a(shape, dtype):
    return np.zeros(shape, dtype=dtype)


@pytest.mark.parametrize("X,W,b,w,want", [
    (np.float32, np.float32, np.float32, None, "float32"),
    (np.float32, np.float64, np.float64, None, "float64"),    # the public API promotes
    (np.float32, np.float32, np.float64, None, "float64"),
    (np.float16, np.float32, np.float32, None, "float32"),
    (np.float32, np.int64, np.int64, None, "float64"),        # integers as float64
    (np.float32, np.float32, np.float32, np.float64, "float32"),  # weights follow X
])
def test_kernel_dtype_follows_the_public_promotion_rule(X, W, b, w, want):
    got, label = CP.kernel_dtypes(_a(5, np.int64), None if w is None else _a(5, w),
                                  X=_a((5, 2), X), W=_a((2, 3), W), b=_a(3, b))
    assert (got, label) == (want, "int64")
    public = fs.loss_gradient(_a((5, 2), X), _a(5, np.int64), _a((2, 3), W), _a(3, b),
                              sample_weight=None if w is None else np.ones(5, w),
                              backend="numpy")
    assert all(str(a.dtype) == want for a in public)


@pytest.mark.parametrize("name,bad", [("X", np.complex64), ("W", object), ("b", "U1"),
                                      ("sample_weight", np.complex128), ("X", np.longdouble)])
def test_kernel_dtype_refuses_what_no_kernel_reads(name, bad):
    if np.dtype(bad) == np.dtype(np.float64):
        pytest.skip("long double is float64 on this platform")
    args = {"X": _a((5, 2), np.float32), "W": _a((2, 3), np.float32), "b": _a(3, np.float32)}
    w = None
    if name == "sample_weight":
        w = _a(5, bad)
    else:
        args[name] = _a(args[name].shape, bad)
    with pytest.raises(TypeError, match=f"^{name} must be a real floating array"):
        CP.kernel_dtypes(_a(5, np.int64), w, **args)


@pytest.mark.parametrize("labels", [np.float32, np.bool_, np.float64])
def test_kernel_dtype_refuses_labels_that_are_not_integers(labels):
    with pytest.raises(TypeError, match="^y must hold integer class labels"):
        CP.kernel_dtypes(_a(5, labels), S=_a((5, 3), np.float32))


@pytest.mark.parametrize("bad,words", [
    ({"X": (5,)}, "X must be 2-dimensional"), ({"W": (3, 3)}, r"W must have shape \(D, K\)"),
    ({"b": (4,)}, r"b must have shape \(K,\)"), ({"y": (4,)}, r"y must have shape \(N,\)"),
    ({"sample_weight": (6,)}, r"sample_weight must have shape \(N,\)"),
])
def test_shape_guard_names_the_argument(bad, words):
    shapes = {"X": (5, 2), "y": (5,), "W": (2, 3), "b": (3,), "sample_weight": (5,), **bad}
    with pytest.raises(ValueError, match=words):
        CP.check_shapes(**{k: _a(v, np.float32) for k, v in shapes.items()})
    CP.check_shapes(S=_a((5, 3), np.float32), y=_a(5, np.int64))  # a score matrix passes


# -- without a GPU: one clear error line (runs everywhere) -----------------------------
def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "fastsoftmax", *args], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=300)


@pytest.mark.parametrize("how", ["flag", "env"])
def test_train_on_unusable_cupy_is_one_error_line_with_the_reason(how):
    if INFO["available"]:
        pytest.skip("a CUDA GPU is usable here, so --backend cupy trains")
    out = (_cli("train", "--backend", "cupy") if how == "flag"
           else _cli("train", env={"FASTSOFTMAX_BACKEND": "cupy"}))
    assert out.returncode == 2 and out.stdout == ""
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastsoftmax: error: "), out.stderr
    assert INFO["reason"] in lines[0]

