"""Boundary checks for the public API.

Every public function validates its arguments here, once, and hands the backend
arrays that are known to be well-formed. Two kinds of check live here:

* *structural* checks (types, dtypes, shapes, scalars) run on every call; they
  cost O(1) and never touch the data;
* *value* checks (finite ``X``/``W``/``b``, labels in ``[0, K)``, non-negative
  ``sample_weight``) read the data once. They are written against the Array API
  (``check_values``) so every backend has them; a backend whose fused kernel
  checks the values while it computes (Numba) skips the separate pass and calls
  ``check_values`` only to word the error once its kernel has flagged one.

Errors name the argument: ``ValueError`` for bad values or shapes, ``TypeError``
for things that are not (suitable) arrays. Nothing here writes to an input.
"""

from __future__ import annotations

import numbers

import numpy as np

REDUCTIONS = ("mean", "sum", "none")


def _dtype_kind(xp, dtype):
    for kind in ("bool", "complex floating", "real floating", "integral"):
        if xp.isdtype(dtype, kind):
            return kind
    return "other"


def _convert(backend, a, name):
    if a is None:
        raise TypeError(f"{name} must be an array, got None")
    if isinstance(a, (str, bytes, dict, set)):
        raise TypeError(f"{name} must be an array, got {type(a).__name__}")
    try:
        return backend.asarray(a)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a numeric array: {exc}") from None


def float_array(backend, a, name, *, ndim=None, min_ndim=None):
    """Convert ``a`` to a real floating array of ``backend``.

    Integer and boolean inputs are promoted to float64 (as ``scipy.special``
    does); complex, object and string inputs are a ``TypeError``.
    """
    a = _convert(backend, a, name)
    xp = backend.xp
    kind = _dtype_kind(xp, a.dtype)
    if kind in ("integral", "bool"):
        a = xp.astype(a, xp.float64)
    elif kind != "real floating":
        raise TypeError(f"{name} must be a real floating array, got dtype {a.dtype}")
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-dimensional, got shape {tuple(a.shape)}")
    if min_ndim is not None and a.ndim < min_ndim:
        raise ValueError(
            f"{name} must have at least {min_ndim} dimension(s), got shape {tuple(a.shape)}"
        )
    return a


def label_array(backend, y, n, name="y"):
    """Convert ``y`` to a 1-d integer array of length ``n`` (range checked later)."""
    y = _convert(backend, y, name)
    xp = backend.xp
    if _dtype_kind(xp, y.dtype) != "integral":
        raise TypeError(f"{name} must hold integer class labels, got dtype {y.dtype}")
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-dimensional, got shape {tuple(y.shape)}")
    if y.shape[0] != n:
        raise ValueError(f"{name} has {y.shape[0]} labels but there are {n} samples")
    return y


def weight_array(backend, sample_weight, n, dtype):
    """Convert ``sample_weight`` to a 1-d array of length ``n`` and ``dtype``, or None."""
    if sample_weight is None:
        return None
    w = float_array(backend, sample_weight, "sample_weight", ndim=1)
    if w.shape[0] != n:
        raise ValueError(f"sample_weight has {w.shape[0]} entries but there are {n} samples")
    return backend.xp.astype(w, dtype, copy=False)


def real_param(value, name, *, positive=False):
    """A finite real scalar parameter (``reg``, ``lr``, ``noise``) as a float,
    ``>= 0`` (``> 0`` with ``positive``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not np.isfinite(value) or value < 0 or (positive and value == 0):
        raise ValueError(f"{name} must be a finite number {'>' if positive else '>='} 0, "
                         f"got {value}")
    return value


def int_param(value, name, minimum):
    """An integer scalar parameter, at least ``minimum``, as an int."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def reduction_value(reduction):
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return reduction


def axis_value(axis, ndim, name="axis"):
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(axis).__name__}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"{name}={axis} is out of range for an array of {ndim} dimension(s)")
    return int(axis) % ndim


def score_inputs(backend, S, y, sample_weight):
    """Validate ``(S, y, sample_weight)`` for the cross-entropy functions."""
    S = float_array(backend, S, "S", ndim=2)
    n, k = S.shape
    if n == 0 or k == 0:
        raise ValueError(f"S must have at least one row and one column, got shape {(n, k)}")
    y = label_array(backend, y, n)
    w = weight_array(backend, sample_weight, n, S.dtype)
    return S, y, w


def linear_inputs(backend, X, W, b):
    """Validate and promote ``(X, W, b)`` of the linear model to one float dtype."""
    X = float_array(backend, X, "X", ndim=2)
    W = float_array(backend, W, "W", ndim=2)
    b = float_array(backend, b, "b", ndim=1)
    n, d = X.shape
    if n == 0 or d == 0:
        raise ValueError(f"X is empty: shape {(n, d)}; need at least one sample and feature")
    if W.shape[0] != d:
        raise ValueError(f"W has {W.shape[0]} rows but X has {d} features; W must be (D, K)")
    if W.shape[1] == 0:
        raise ValueError("W has no columns; need at least one class")
    if b.shape[0] != W.shape[1]:
        raise ValueError(f"b has {b.shape[0]} entries but W has {W.shape[1]} classes")
    xp = backend.xp
    dtype = xp.result_type(X.dtype, W.dtype, b.dtype)
    X, W, b = (xp.astype(a, dtype, copy=False) for a in (X, W, b))
    return X, W, b


def check_values(xp, *, X=None, W=None, b=None, y=None, n_classes=None, sample_weight=None):
    """Value checks that read the data; raise ``ValueError`` naming the argument."""
    for name, a in (("X", X), ("W", W), ("b", b)):
        if a is not None and not bool(xp.all(xp.isfinite(a))):
            raise ValueError(f"{name} contains NaN or infinity")
    if y is not None:
        lo, hi = int(xp.min(y)), int(xp.max(y))
        if lo < 0 or hi >= n_classes:
            bad = lo if lo < 0 else hi
            raise ValueError(
                f"y holds label {bad}, outside [0, {n_classes}) for {n_classes} class(es)"
            )
    if sample_weight is not None:
        w = sample_weight
        if not bool(xp.all(xp.isfinite(w))):
            raise ValueError("sample_weight contains NaN or infinity")
        if bool(xp.any(w < 0)):
            raise ValueError("sample_weight must be non-negative")
        if not float(xp.sum(w)) > 0:
            raise ValueError("sample_weight must have a positive sum, but every weight is zero")
