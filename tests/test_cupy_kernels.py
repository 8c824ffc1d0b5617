"""The cupy backend's CUDA kernels at their edges, against the Array-API
reference run on the same device and against NumPy.

Every test here but the CLI ones needs a usable CUDA GPU and skips with the
registry's reason without one. The cross-backend suites (test_loss.py,
test_softmax.py, ...) run on cupy too, through the shared ``backend`` fixture.
"""

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
# register path's limits (float32: K <= 32, D*K <= 64; float64: K <= 16, D*K <= 32).
SHAPES = [
    (1, 2, 3), (2, 1, 1), (255, 2, 3), (256, 2, 3), (257, 2, 3), (1000, 1, 3), (1001, 3, 5),
    (4099, 4, 4), (777, 1, 16), (513, 2, 32), (300, 1, 33), (200, 5, 100), (130, 3, 1000),
    (77, 8, 9), (64, 64, 1), (65, 16, 2),
]


def _path(d, k, dtype):
    return "fused" if cupy_module._fits_registers(d, k, np.dtype(dtype).name) else "wide"


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


def test_float16_inputs_accumulate_in_float32(be):
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

