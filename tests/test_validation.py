"""Every bad-input rule of the contract: a clear ValueError/TypeError naming the
argument, on every backend; and inputs are never modified."""

import numpy as np
import pytest

import fastsoftmax as fs

from conftest import random_problem


def _problem():
    return random_problem(8, 3, 4, seed=0)


def _call_linear(backend, op, **changes):
    X, y, W, b = _problem()
    args = {"X": X, "y": y, "W": W, "b": b, **changes}
    kwargs = {k: args.pop(k) for k in ("reg", "sample_weight") if k in args}
    return getattr(fs, op)(args["X"], args["y"], args["W"], args["b"], backend=backend,
                           **kwargs)


LINEAR_CASES = [
    # (changes, exception, words the message must contain)
    ({"X": np.zeros((0, 3))}, ValueError, "X is empty"),
    ({"X": np.zeros(3)}, ValueError, "X must be 2-dimensional"),
    ({"X": np.ones((8, 3)) + 1j}, TypeError, "X must be a real floating"),
    ({"X": "abc"}, TypeError, "X must be an array"),
    ({"X": None}, TypeError, "X must be an array"),
    ({"X": np.array([[np.nan, 0, 0]] * 8)}, ValueError, "X contains NaN"),
    ({"X": np.array([[np.inf, 0, 0]] * 8)}, ValueError, "X contains NaN or infinity"),
    ({"W": np.zeros((2, 4))}, ValueError, "W has 2 rows but X has 3 features"),
    ({"W": np.full((3, 4), np.nan)}, ValueError, "W contains NaN"),
    ({"W": np.zeros((3, 0)), "b": np.zeros(0)}, ValueError, "W has no columns"),
    ({"b": np.zeros(3)}, ValueError, "b has 3 entries but W has 4 classes"),
    ({"b": np.array([0, 0, 0, np.inf])}, ValueError, "b contains NaN"),
    ({"y": np.zeros(7, dtype=int)}, ValueError, "y has 7 labels but there are 8 samples"),
    ({"y": np.zeros(8)}, TypeError, "y must hold integer class labels"),
    ({"y": np.zeros(8, dtype=bool)}, TypeError, "y must hold integer class labels"),
    ({"y": np.zeros((8, 1), dtype=int)}, ValueError, "y must be 1-dimensional"),
    ({"y": np.r_[np.zeros(7, dtype=int), 4]}, ValueError, "y holds label 4, outside [0, 4)"),
    ({"y": np.r_[np.zeros(7, dtype=int), -1]}, ValueError, "y holds label -1"),
    ({"reg": -1.0}, ValueError, "reg must be a finite number >= 0"),
    ({"reg": float("nan")}, ValueError, "reg must be a finite number"),
    ({"reg": "0.1"}, TypeError, "reg must be a real number"),
    ({"reg": True}, TypeError, "reg must be a real number"),
    ({"sample_weight": -np.ones(8)}, ValueError, "sample_weight must be non-negative"),
    ({"sample_weight": np.zeros(8)}, ValueError, "sample_weight must have a positive sum"),
    ({"sample_weight": np.ones(5)}, ValueError, "sample_weight has 5 entries"),
    ({"sample_weight": np.r_[np.ones(7), np.nan]}, ValueError, "sample_weight contains NaN"),
]


@pytest.mark.parametrize("op", ["loss", "loss_gradient"])
@pytest.mark.parametrize("changes,exc,words", LINEAR_CASES,
                         ids=[c[2][:40] for c in LINEAR_CASES])
def test_linear_model_bad_input(backend, op, changes, exc, words):
    with pytest.raises(exc, match=None) as info:
        _call_linear(backend, op, **changes)
    assert words in str(info.value)


@pytest.mark.parametrize("changes,exc,words", [c for c in LINEAR_CASES
                                               if not ({"y", "reg", "sample_weight"} & set(c[0]))],
                         ids=lambda c: str(c)[:30])
def test_scores_bad_input(backend, changes, exc, words):
    X, _, W, b = _problem()
    args = {"X": X, "W": W, "b": b, **changes}
    with pytest.raises(exc) as info:  # by the time the scores exist (dask's are lazy)
        fs.to_numpy(fs.scores(args["X"], args["W"], args["b"], backend=backend))
    assert words in str(info.value)


SCORE_CASES = [
    ({"S": np.zeros((0, 3))}, ValueError, "S must have at least one row"),
    ({"S": np.zeros(3)}, ValueError, "S must be 2-dimensional"),
    ({"y": np.array([0, 1, 3])}, ValueError, "y holds label 3, outside [0, 3)"),
    ({"y": np.array([0.0, 1.0, 2.0])}, TypeError, "y must hold integer"),
    ({"y": np.array([0, 1])}, ValueError, "y has 2 labels but there are 3 samples"),
    ({"reduction": "avg"}, ValueError, "reduction must be one of"),
    ({"sample_weight": np.array([1.0, -1.0, 1.0])}, ValueError, "non-negative"),
]


@pytest.mark.parametrize("op", ["cross_entropy", "cross_entropy_gradient"])
@pytest.mark.parametrize("changes,exc,words", SCORE_CASES, ids=[c[2][:30] for c in SCORE_CASES])
def test_cross_entropy_bad_input(backend, op, changes, exc, words):
    args = {"S": np.zeros((3, 3)), "y": np.array([0, 1, 2]), **changes}
    S, y = args.pop("S"), args.pop("y")
    with pytest.raises(exc) as info:
        getattr(fs, op)(S, y, backend=backend, **args)
    assert words in str(info.value)


@pytest.mark.parametrize("op", ["softmax", "log_softmax", "logsumexp"])
def test_softmax_family_bad_input(backend, op):
    f = getattr(fs, op)
    with pytest.raises(ValueError, match="axis=2 is out of range"):
        f(np.zeros((2, 2)), 2, backend=backend)
    with pytest.raises(TypeError, match="axis must be an integer"):
        f(np.zeros((2, 2)), 1.0, backend=backend)
    with pytest.raises(ValueError, match="axis=2 is out of range"):
        f(np.float64(1.0), 2, backend=backend)  # a 0-d S has one axis, -1 or 0
    with pytest.raises(ValueError, match="S has no entries along axis"):
        f(np.zeros(0), None, backend=backend)
    with pytest.raises(ValueError, match="S has no entries along axis 1"):
        f(np.zeros((2, 0)), backend=backend)
    with pytest.raises(TypeError, match="S must be a real floating"):
        f(np.zeros(3, dtype=complex), backend=backend)


def test_unknown_backend_is_a_value_error_listing_known_ones():
    with pytest.raises(ValueError, match="unknown backend 'fortran'.*numpy"):
        fs.softmax([1.0], backend="fortran")


def test_inputs_are_never_modified(backend):
    X, y, W, b = _problem()
    w = np.linspace(0.5, 1.5, 8)
    S = X @ W + b
    originals = [a.copy() for a in (X, y, W, b, w, S)]
    for a in (X, y, W, b, w, S):
        a.flags.writeable = False  # a write attempt raises, wherever it hides
    fs.loss_gradient(X, y, W, b, reg=0.1, sample_weight=w, backend=backend)
    fs.loss(X, y, W, b, reg=0.1, sample_weight=w, backend=backend)
    fs.scores(X, W, b, backend=backend)
    for red in ("mean", "sum", "none"):
        fs.cross_entropy_gradient(S, y, reduction=red, sample_weight=w, backend=backend)
        fs.cross_entropy(S, y, reduction=red, backend=backend)
    for op in (fs.softmax, fs.log_softmax, fs.logsumexp):
        op(S, backend=backend)
    for a, o in zip((X, y, W, b, w, S), originals):
        np.testing.assert_array_equal(a, o)


def test_returned_gradient_does_not_alias_inputs(backend):
    # The notebook's `dscores = probs` aliasing bug: our outputs are fresh arrays.
    X, y, W, b = _problem()
    loss, dW, db = fs.loss_gradient(X, y, W, b, backend=backend)
    dW_np, db_np = fs.to_numpy(dW), fs.to_numpy(db)
    assert not np.shares_memory(dW_np, W) and not np.shares_memory(db_np, b)
