"""THE parity table: every backend gives the same answer, or the same error.

Rows are inputs (every dtype, byte order, layout and array subclass; NaN, inf,
subnormal and huge values in every argument; weights, labels of every integer
dtype, ``reg`` of every odd type; the softmax family's axes and special rows).
Columns are the ``backend`` fixture: adding a backend adds a column, nothing else.

Each row states its expected outcome:

* ``Raises(exc, words)``: the call raises exactly ``exc`` (not a foreign
  exception from a compiler or a library) and the message contains ``words``,
  which name the argument;
* ``Value(dtype, want=None)``: the call returns arrays of ``dtype`` equal, at
  ``dtype``'s tolerance and with the same NaN/inf pattern, to the ``numpy``
  backend's result -- and, where ``want`` is given, to an outside reference
  (SciPy, exact maths) too, so the numpy column is checked as well.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import scipy.special as sp

import fastsoftmax as fs

from conftest import assert_close, rtol_for

N, D, K = 8, 3, 4
INF, NAN = np.inf, np.nan


def _problem(dtype=np.float64):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((N, D)).astype(dtype)
    y = np.array([0, 1, 2, 3, 3, 2, 1, 0])
    W = rng.standard_normal((D, K)).astype(dtype)
    b = rng.standard_normal(K).astype(dtype)
    return X, y, W, b


X0, Y0, W0, B0 = _problem()
S0 = X0 @ W0 + B0
W_UNIFORM = np.linspace(0.5, 2.0, N)


@dataclasses.dataclass(frozen=True)
class Raises:
    exc: type
    words: str


@dataclasses.dataclass(frozen=True)
class Value:
    dtype: Any
    want: Callable | None = None  # outside reference: () -> tuple of arrays


@dataclasses.dataclass(frozen=True)
class Row:
    id: str
    call: Callable  # backend -> result (array or tuple of arrays)
    expect: Raises | Value
    # backend name -> why it cannot give this outcome (a strict xfail: it must fail)
    differs: dict = dataclasses.field(default_factory=dict)


ROWS: list[Row] = []
# XLA's CPU and GPU code flushes subnormal floats to zero (FTZ/DAZ), so on the
# jax backend subnormal weights are zero weights (docs/backends.md).
XLA_FTZ = {"jax": "XLA flushes subnormals to zero: subnormal weights sum to 0"}


def linear(op="loss_gradient", **changes):
    """A call of ``op`` on the base problem with some arguments replaced."""
    args = {"X": X0, "y": Y0, "W": W0, "b": B0, **changes}
    kwargs = {k: args.pop(k) for k in ("reg", "sample_weight") if k in args}

    def call(be):
        return getattr(fs, op)(args["X"], args["y"], args["W"], args["b"], backend=be,
                               **kwargs)
    return call


def xent(op="cross_entropy_gradient", S=S0, y=Y0, **kwargs):
    return lambda be: getattr(fs, op)(S, y, backend=be, **kwargs)


def family(op, S, *args, **kwargs):
    return lambda be: getattr(fs, op)(S, *args, backend=be, **kwargs)


def add(id, call, expect, differs=None):
    ROWS.append(Row(id, call, expect, differs or {}))


def _matrix(a):
    with warnings.catch_warnings():  # np.matrix is pending deprecation; users still pass it
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        return np.asmatrix(a)


def _masked(a):
    return np.ma.masked_array(a, mask=np.zeros(np.shape(a), bool))


class _Sub(np.ndarray):
    """A do-nothing ndarray subclass."""


f64, f32, f16 = np.dtype(np.float64), np.dtype(np.float32), np.dtype(np.float16)

# -- dtypes of every argument: the output dtype is result_type(X, W, b) (or S's);
#    integers and booleans count as float64; weights never change it --------------
for xd, wd, out in [(f32, f32, f32), (f32, f64, f64), (f64, f32, f64), (f16, f16, f16),
                    (f16, f32, f32), (np.int64, np.int64, f64), (np.int32, f32, f64),
                    (bool, bool, f64), (np.uint8, np.int16, f64)]:
    Xd, Wd, bd = (X0 * 3).astype(xd), (W0 * 3).astype(wd), (B0 * 3).astype(wd)
    for op in ("loss_gradient", "loss", "scores"):
        call = (linear(op, X=Xd, W=Wd, b=bd) if op != "scores"
                else (lambda be, Xd=Xd, Wd=Wd, bd=bd: fs.scores(Xd, Wd, bd, backend=be)))
        add(f"{op}-X{np.dtype(xd).name}-W{np.dtype(wd).name}", call, Value(out))
for wd in (np.float64, np.float32, np.float16, np.int64, bool):
    for xd in (f32, f64):
        add(f"weights-{np.dtype(wd).name}-X{xd.name}",
            linear(X=X0.astype(xd), W=W0.astype(xd), b=B0.astype(xd),
                   sample_weight=(W_UNIFORM * 2).astype(wd)), Value(xd))
    add(f"xent-weights-{np.dtype(wd).name}-Sfloat32",
        xent(S=S0.astype(f32), sample_weight=(W_UNIFORM * 2).astype(wd)), Value(f32))
for sd in (f64, f32, f16, np.int64, bool):
    for op in ("softmax", "log_softmax", "logsumexp"):
        add(f"{op}-S{np.dtype(sd).name}", family(op, (S0 * 2).astype(sd)),
            Value(f64 if np.dtype(sd).kind in "bi" else sd))
    add(f"xent-S{np.dtype(sd).name}", xent(S=(S0 * 2).astype(sd), reduction="none"),
        Value(f64 if np.dtype(sd).kind in "bi" else sd))
for bad, name in [(np.ones((N, D)) + 1j, "complex"), (np.full((N, D), "a"), "str"),
                  (np.full((N, D), None, dtype=object), "object")]:
    add(f"X-{name}", linear(X=bad), Raises(TypeError, "X must be"))
    add(f"S-{name}", family("softmax", bad), Raises(TypeError, "S must be"))

# -- byte orders (converted to native at the boundary) ----------------------------
BE = {"X": X0.astype(">f8"), "W": W0.astype(">f4"), "b": B0.astype(">f8"),
      "y": Y0.astype(">i8"), "sample_weight": W_UNIFORM.astype(">f8")}
for name, a in BE.items():
    add(f"big-endian-{name}", linear(**{name: a}), Value(f64))
add("big-endian-all", linear(**BE), Value(f64))
add("big-endian-float32", linear(X=X0.astype(">f4"), W=W0.astype(">f4"), b=B0.astype(">f4")),
    Value(f32))
add("big-endian-y-uint16", linear(y=Y0.astype(">u2")), Value(f64))
for op in ("softmax", "log_softmax", "logsumexp"):
    add(f"big-endian-S-{op}", family(op, S0.astype(">f8")), Value(f64))
add("big-endian-S-xent", xent(S=S0.astype(">f4"), y=Y0.astype(">i4")), Value(f32))

# -- layouts ------------------------------------------------------------------------
XL = np.random.default_rng(1).standard_normal((2 * N, 2 * D))
LAYOUTS = {
    "fortran": np.asfortranarray(X0),
    "strided": XL[::2, ::2],
    "reversed": X0[::-1, ::-1],
    "broadcast": np.broadcast_to(X0[:1], (N, D)),  # zero stride, read-only
}
for name, Xv in LAYOUTS.items():
    add(f"X-{name}", linear(X=Xv), Value(f64))
add("W-fortran", linear(W=np.asfortranarray(W0)), Value(f64))
add("W-transposed-view", linear(W=np.ascontiguousarray(W0.T).T), Value(f64))
add("y-strided", linear(y=np.repeat(Y0, 2)[::2]), Value(f64))
add("weights-strided", linear(sample_weight=np.repeat(W_UNIFORM, 2)[::2]), Value(f64))
for name, Sv in {"fortran": np.asfortranarray(S0), "strided": np.repeat(S0, 2, 1)[:, ::2],
                 "reversed": S0[::-1, ::-1]}.items():
    add(f"S-{name}-xent", xent(S=Sv), Value(f64))
    for op in ("softmax", "log_softmax", "logsumexp"):
        add(f"S-{name}-{op}", family(op, Sv), Value(f64))
add("S-3d-axis1", family("softmax", S0.reshape(2, 4, 4), 1), Value(f64))

# -- array subclasses: masked arrays are refused (one rule for every backend),
#    np.matrix and other subclasses are used as plain arrays ------------------------
for name in ("X", "W", "b", "y", "sample_weight"):
    base = {"X": X0, "W": W0, "b": B0, "y": Y0, "sample_weight": W_UNIFORM}[name]
    add(f"masked-{name}", linear(**{name: _masked(base)}),
        Raises(TypeError, f"{name} is a masked array"))
add("masked-X-nan-under-mask", linear(X=np.ma.masked_array(
    np.where(np.eye(N, D) > 0, np.nan, X0), mask=np.eye(N, D) > 0)),
    Raises(TypeError, "X is a masked array"))
for op in ("softmax", "log_softmax", "logsumexp"):
    add(f"masked-S-{op}", family(op, _masked(S0)), Raises(TypeError, "S is a masked array"))
add("masked-S-xent", xent(S=_masked(S0)), Raises(TypeError, "S is a masked array"))
add("masked-y-xent", xent(y=_masked(Y0)), Raises(TypeError, "y is a masked array"))
add("matrix-X", linear(X=_matrix(X0)), Value(f64, lambda: linear()("numpy")))
add("matrix-W", linear(W=_matrix(W0)), Value(f64, lambda: linear()("numpy")))
add("matrix-b", linear(b=_matrix(B0)), Raises(ValueError, "b must be 1-dimensional"))
add("matrix-y", linear(y=_matrix(Y0)), Raises(ValueError, "y must be 1-dimensional"))
add("subclass-X", linear(X=X0.view(_Sub)), Value(f64, lambda: linear()("numpy")))
for op in ("softmax", "log_softmax", "logsumexp"):
    add(f"matrix-S-{op}", family(op, _matrix(S0)),
        Value(f64, lambda op=op: getattr(sp, op)(S0, axis=-1)))
add("matrix-S-xent", xent(S=_matrix(S0)), Value(f64, lambda: xent()("numpy")))

# -- values in every argument --------------------------------------------------------
for name, base in (("X", X0), ("W", W0), ("b", B0)):
    for v in (NAN, INF, -INF):
        bad = base.copy()
        bad.flat[1] = v
        for op in ("loss_gradient", "loss"):
            add(f"{name}-{v}-{op}", linear(op, **{name: bad}),
                Raises(ValueError, f"{name} contains NaN or infinity"))
    for scale, tag in ((5e-324, "subnormal"), (1e-300, "tiny")):
        add(f"{name}-{tag}", linear(**{name: base * scale}), Value(f64))
add("X-huge-finite-scores", linear(X=X0 * 1e150, W=W0 * 1e-150), Value(f64))
add("X-subnormal-float32", linear(X=np.full((N, D), 1e-45, np.float32),
                                  W=W0.astype(np.float32), b=B0.astype(np.float32)),
    Value(f32))


def _overflowing_scores():
    """Finite X and W whose scores overflow to +inf in class 0 (labels elsewhere)."""
    X = np.ones((N, D))
    X[:, 0] = 1e200
    W = np.zeros((D, K))
    W[0, 0] = 1e200
    return X, np.r_[np.ones(N - 1, int), 2], W, np.zeros(K)


Xo, yo, Wo, bo = _overflowing_scores()
# The loss is +inf (not NaN: the reg=0 penalty is exactly 0 even though |W|^2
# overflows); dscores are NaN rows, as softmax of a row holding +inf.
add("overflow-loss", linear("loss", X=Xo, y=yo, W=Wo, b=bo), Value(f64, lambda: INF))
add("overflow-loss_gradient", linear(X=Xo, y=yo, W=Wo, b=bo),
    Value(f64, lambda: (INF, np.full((D, K), NAN), np.full(K, NAN))))
add("overflow-loss-wide", linear("loss", X=Xo, y=yo, W=np.pad(Wo, ((0, 0), (0, 700))),
                                 b=np.zeros(K + 700)), Value(f64, lambda: INF))
Xo32 = np.ones((N, D), np.float32)
Xo32[:, 0] = 1e30
Wo32 = np.zeros((D, K), np.float32)
Wo32[0, 0] = 1e30
add("overflow-loss-float32", linear("loss", X=Xo32, y=yo, W=Wo32, b=np.zeros(K, np.float32)),
    Value(f32, lambda: INF))

# A confident, correct row: the loss is tiny and keeps its relative accuracy.
_conf_W = np.array([[0.0, -40.0, -50.0, -45.0]])
add("confident-row-loss", linear("loss", X=np.ones((1, 1)), y=[0], W=_conf_W, b=np.zeros(4)),
    Value(f64, lambda: sp.logsumexp(_conf_W[0])))
add("confident-row-loss-wide", linear("loss", X=np.ones((1, 1)), y=[0],
                                      W=np.pad(_conf_W, ((0, 0), (0, 2100)),
                                               constant_values=-60.0), b=np.zeros(2104)),
    Value(f64, lambda: sp.logsumexp(np.r_[_conf_W[0], np.full(2100, -60.0)])))
add("confident-row-xent", xent("cross_entropy", S=_conf_W, y=[0]),
    Value(f64, lambda: sp.logsumexp(_conf_W[0])))

# -- weights ------------------------------------------------------------------------
for red in ("mean", "sum", "none"):
    for tag, w, words in [("inf", np.r_[np.ones(N - 1), INF], "sample_weight contains NaN"),
                          ("nan", np.r_[np.ones(N - 1), NAN], "sample_weight contains NaN"),
                          ("negative", np.r_[np.ones(N - 1), -1.0], "non-negative"),
                          ("zero", np.zeros(N), "positive sum")]:
        for op in ("cross_entropy", "cross_entropy_gradient"):
            add(f"weights-{tag}-{op}-{red}", xent(op, reduction=red, sample_weight=w),
                Raises(ValueError, words))
for tag, w, words in [("inf", np.r_[np.ones(N - 1), INF], "sample_weight contains NaN"),
                      ("zero", np.zeros(N), "positive sum"),
                      ("negative", np.r_[np.ones(N - 1), -1.0], "non-negative")]:
    for op in ("loss", "loss_gradient"):
        add(f"weights-{tag}-{op}", linear(op, sample_weight=w), Raises(ValueError, words))
        add(f"weights-{tag}-{op}-wide", linear(op, sample_weight=w,
                                               W=np.pad(W0, ((0, 0), (0, 700))),
                                               b=np.zeros(K + 700)),
            Raises(ValueError, words))
add("weights-length", linear(sample_weight=np.ones(N - 1)),
    Raises(ValueError, "sample_weight has 7 entries"))
add("weights-2d", linear(sample_weight=np.ones((N, 1))),
    Raises(ValueError, "sample_weight must be 1-dimensional"))
add("weights-str", linear(sample_weight="abc"), Raises(TypeError, "sample_weight must be"))
_uniform3 = (np.zeros((N, 2), np.float32), np.arange(N) % 3, np.zeros((2, 3), np.float32),
             np.zeros(3, np.float32))
for tag, w in [("float32-sum-overflows", np.full(N, 1e38, np.float32)),
               ("float32-subnormal", np.full(N, 1e-45, np.float32)),
               ("float64-huge", np.full(N, 1e300))]:
    for op in ("loss", "loss_gradient"):
        Xu, yu, Wu, bu = _uniform3
        add(f"weights-{tag}-{op}", linear(op, X=Xu, y=yu, W=Wu, b=bu, sample_weight=w)
            if tag != "float64-huge" else
            linear(op, X=Xu.astype(f64), y=yu, W=Wu.astype(f64), b=bu.astype(f64),
                   sample_weight=w),
            Value(f32 if tag != "float64-huge" else f64,
                  (lambda: np.log(3.0)) if op == "loss" else None),
            XLA_FTZ if "subnormal" in tag else None)
    add(f"weights-{tag}-xent-mean",
        xent("cross_entropy", S=np.zeros((N, 3), np.float32 if "32" in tag else f64),
             y=np.arange(N) % 3, sample_weight=w), Value(f32 if "32" in tag else f64,
                                                         lambda: np.log(3.0)),
        XLA_FTZ if "subnormal" in tag else None)
add("weights-float64-beyond-float32", linear(X=X0.astype(f32), W=W0.astype(f32),
                                             b=B0.astype(f32), sample_weight=np.full(N, 1e300)),
    Raises(ValueError, "sample_weight contains NaN or infinity"))
for red in ("sum", "none"):
    add(f"weights-some-zero-{red}", xent(reduction=red, sample_weight=np.r_[np.zeros(N - 1), 2]),
        Value(f64))

# -- labels of every integer dtype ---------------------------------------------------
for ld in (np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64):
    add(f"labels-{np.dtype(ld).name}", linear(y=Y0.astype(ld)), Value(f64))
    add(f"labels-{np.dtype(ld).name}-xent", xent(y=Y0.astype(ld)), Value(f64))
    y_top = Y0.astype(ld)
    y_top[-1] = np.iinfo(ld).max
    add(f"labels-{np.dtype(ld).name}-max", linear(y=y_top), Raises(ValueError, "y holds label"))
for tag, v in [("2**64-1", 2**64 - 1), ("2**63", 2**63), ("2**63+5", 2**63 + 5)]:
    yb = np.r_[Y0[:-1], 0].astype(np.uint64)
    yb[-1] = np.uint64(v)
    add(f"labels-uint64-{tag}", linear(y=yb), Raises(ValueError, "y holds label"))
    add(f"labels-uint64-{tag}-xent", xent(y=yb), Raises(ValueError, "y holds label"))
add("labels-negative", linear(y=np.r_[Y0[:-1], -1]), Raises(ValueError, "y holds label -1"))
add("labels-K", linear(y=np.r_[Y0[:-1], K]), Raises(ValueError, f"y holds label {K}"))
add("labels-float", linear(y=Y0.astype(float)), Raises(TypeError, "y must hold integer"))
add("labels-bool", linear(y=Y0 > 1), Raises(TypeError, "y must hold integer"))
add("labels-str", linear(y="abc"), Raises(TypeError, "y must be"))
add("labels-length", linear(y=Y0[:-1]), Raises(ValueError, "y has 7 labels"))
# uint8 labels with K = 300 classes: arange(300) in uint8 would wrap around.
S300 = np.random.default_rng(3).standard_normal((4, 300))
y300 = np.array([5, 255, 0, 44], np.uint8)
add("labels-uint8-K300", xent(S=S300, y=y300),
    Value(f64, lambda: xent(S=S300, y=y300.astype(np.int64))("numpy")))

# -- reg of every odd type and size -------------------------------------------------
for tag, reg in [("np.float32", np.float32(0.3)), ("np.float16", np.float16(0.5)),
                 ("np.int64", np.int64(2)), ("int", 1), ("0-d", np.array(0.25)),
                 ("0-d-f32", np.array(0.25, np.float32)), ("zero", 0.0),
                 ("huge", 1e308), ("subnormal", 5e-324)]:
    add(f"reg-{tag}", linear(reg=reg), Value(f64))
    add(f"reg-{tag}-float32", linear(reg=reg, X=X0.astype(f32), W=W0.astype(f32),
                                     b=B0.astype(f32)), Value(f32))
for tag, reg, exc in [("bool", True, TypeError), ("np.bool_", np.bool_(False), TypeError),
                      ("str", "0.1", TypeError), ("None", None, TypeError),
                      ("complex", 1j, TypeError), ("1-d", np.array([0.1]), TypeError),
                      ("0-d-bool", np.array(True), TypeError),
                      ("inf", INF, ValueError), ("nan", NAN, ValueError),
                      ("negative", -1.0, ValueError), ("np.-inf", np.float32(-INF), ValueError)]:
    add(f"reg-{tag}", linear(reg=reg), Raises(exc, "reg must be"))

# -- the softmax family: SciPy's answers, axes, 0-d ----------------------------------
SPECIAL = {
    "plus-inf": [[INF, 0.0, -1.0]],
    "minus-inf-plus-inf": [[-INF, INF]],
    "all-minus-inf": [[-INF, -INF, -INF]],
    "masked-entry": [[0.0, -INF, 1.0]],
    "nan": [[NAN, 0.0, 1.0]],
    "nan-last": [[0.0, 1.0, NAN]],
    "nan-and-inf": [[NAN, INF, 0.0]],
    "two-plus-inf": [[INF, INF, 0.0]],
    "plus-inf-minus-inf": [[INF, -INF]],
    "gh-18295": [[0.0, -40.0]],
    "near-zero-float32": np.array([[0.0, -20.0, -30.0]], np.float32),
    "huge": [[1e308, 1e308, -1e308]],
    "subnormal": [[5e-324, 0.0, -5e-324]],
    "ties": [[3.0, 3.0, -INF, 3.0]],
}


def _scipy(op, S, axis=-1):
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return getattr(sp, op)(np.asarray(S), axis=axis)


for tag, S in SPECIAL.items():
    Sa = np.asarray(S, dtype=np.asarray(S).dtype if np.asarray(S).dtype == f32 else f64)
    for op in ("softmax", "log_softmax", "logsumexp"):
        add(f"special-{tag}-{op}", family(op, Sa),
            Value(Sa.dtype, lambda op=op, Sa=Sa: _scipy(op, Sa)))
S3 = np.random.default_rng(4).standard_normal((2, 3, 4)) * 5
for op in ("softmax", "log_softmax", "logsumexp"):
    add(f"0-d-{op}", family(op, np.float64(2.5)), Value(f64, lambda op=op: _scipy(op, 2.5, None)))
    add(f"0-d-array-{op}", family(op, np.array(-1.0, np.float32)),
        Value(f32, lambda op=op: _scipy(op, np.float32(-1.0), None)))
    add(f"axis-None-{op}", family(op, S3, None), Value(f64, lambda op=op: _scipy(op, S3, None)))
    add(f"axis-tuple-{op}", family(op, S3, (0, 2)),
        Value(f64, lambda op=op: _scipy(op, S3, (0, 2))))
    add(f"axis-0-{op}", family(op, S3, 0), Value(f64, lambda op=op: _scipy(op, S3, 0)))
    add(f"axis-out-of-range-{op}", family(op, S0, 2), Raises(ValueError, "axis=2 is out"))
    add(f"axis-float-{op}", family(op, S0, 1.0), Raises(TypeError, "axis must be"))
    add(f"axis-repeated-{op}", family(op, S0, (1, -1)), Raises(ValueError, "axis="))
    add(f"empty-axis-{op}", family(op, np.zeros((2, 0))), Raises(ValueError, "S has no entries"))
    add(f"list-{op}", family(op, [[1, 2], [3, 5]]),
        Value(f64, lambda op=op: _scipy(op, [[1.0, 2.0], [3.0, 5.0]])))
for tag, S in SPECIAL.items():
    if tag.startswith(("nan", "huge", "subnormal", "near")):
        continue
    Sa = np.asarray(S, f64)
    add(f"special-{tag}-xent", xent(S=Sa, y=np.zeros(1, int), reduction="none"), Value(f64))
add("xent-label-on-plus-inf", xent(S=np.array([[INF, 0.0]]), y=[0], reduction="none"),
    Value(f64, lambda: (np.array([NAN]), np.full((1, 2), NAN))))
add("xent-label-off-plus-inf", xent(S=np.array([[INF, 0.0]]), y=[1], reduction="none"),
    Value(f64, lambda: (np.array([INF]), np.full((1, 2), NAN))))
add("xent-S-1d", xent(S=S0[0], y=Y0[:1]), Raises(ValueError, "S must be 2-dimensional"))
add("xent-reduction", xent(reduction="avg"), Raises(ValueError, "reduction must be"))


# -- the table, run on every backend --------------------------------------------------
def _outcome(backend, r):
    """The call's result as NumPy arrays, or the TypeError/ValueError it raised.
    Any other exception (a compiler's, a library's) propagates: a failure."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            out = r.call(backend)
            out = out if isinstance(out, tuple) else (out,)
            # A lazy backend (dask) raises a block's error when it is computed.
            return tuple(np.asarray(fs.to_numpy(o)) for o in out)
    except (TypeError, ValueError) as exc:
        return exc


_reference_cache: dict[str, Any] = {}


def _reference(r):
    if r.id not in _reference_cache:
        _reference_cache[r.id] = _outcome(fs.get_backend("numpy"), r)
    return _reference_cache[r.id]


def _expected_dtype(backend, dtype):
    # A backend whose arrays cannot hold float16 (array_api_strict) computes and
    # returns float32 (documented); the others return float16.
    if np.dtype(dtype) == f16 and _holds(backend, f16) != f16:
        return f32
    return np.dtype(dtype)


def _holds(backend, dtype):
    try:
        return np.dtype(fs.to_numpy(backend.asarray(np.zeros(1, dtype))).dtype)
    except (TypeError, ValueError):
        return None


def _compare(got, want, dtype):
    want = want if isinstance(want, tuple) else (want,)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        w = np.asarray(w, dtype=np.float64)
        assert g.shape == w.shape, (g.shape, w.shape)
        np.testing.assert_array_equal(np.isnan(g), np.isnan(w))
        np.testing.assert_array_equal(np.isposinf(g), np.isposinf(w))
        np.testing.assert_array_equal(np.isneginf(g), np.isneginf(w))
        # Absolute floor: the entries' scale, but at least a few of the dtype's
        # smallest subnormals (a float32 product of subnormals rounds either way).
        finite = np.abs(w[np.isfinite(w)])
        scale = max(float(finite.max()) if finite.size else 1.0,
                    4 * float(np.finfo(dtype).smallest_subnormal) / rtol_for(dtype))
        assert_close(g, w, dtype, scale=scale)


def test_table_ids_are_unique():
    ids = [r.id for r in ROWS]
    assert len(ids) == len(set(ids)), {i for i in ids if ids.count(i) > 1}


@pytest.mark.parametrize("r", ROWS, ids=[r.id for r in ROWS])
def test_parity(backend, r):
    if backend.name in r.differs:  # a known, documented difference: it must still differ
        try:
            _check(backend, r)
        except AssertionError:
            pytest.xfail(r.differs[backend.name])
        pytest.fail(f"{r.id} now agrees on {backend.name}: drop its 'differs' entry")
    _check(backend, r)


def _check(backend, r):
    got = _outcome(backend, r)
    if isinstance(r.expect, Raises):
        assert isinstance(got, Exception), f"expected {r.expect.exc.__name__}, got a result"
        assert type(got) is r.expect.exc, repr(got)
        assert r.expect.words in str(got), str(got)
        return
    assert not isinstance(got, Exception), repr(got)
    for g in got:
        assert g.dtype == _expected_dtype(backend, r.expect.dtype), g.dtype
    dtype = r.expect.dtype  # the tolerance: float16 results are float16-rounded
    want = _reference(r)
    assert not isinstance(want, Exception), repr(want)
    _compare(got, want, dtype)
    if r.expect.want is not None:  # an outside reference checks the numpy column too
        outside = r.expect.want()
        outside = outside if isinstance(outside, tuple) else (outside,)
        _compare(got[:len(outside)], tuple(np.asarray(fs.to_numpy(o)) for o in outside), dtype)
