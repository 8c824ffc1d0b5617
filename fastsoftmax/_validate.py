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
    """``a`` as an array of ``backend``, with the host-side rules applied first.

    * A masked array is refused: every backend would see its data, masked or
      not (NumPy's ufuncs honour a mask, the kernels cannot), so there is no one
      answer to give. The message says how to make a plain array of it.
    * Other NumPy subclasses (``np.matrix``, ``np.memmap``, ...) are viewed as
      plain ``ndarray`` (no copy): the maths is defined on arrays, and a
      ``matrix`` would keep reductions 2-d.
    * Non-native byte order (``'>f8'`` on x86) is converted to native: compiled
      kernels and device copies read native numbers only.
    """
    if a is None:
        raise TypeError(f"{name} must be an array, got None")
    if isinstance(a, (str, bytes, dict, set)):
        raise TypeError(f"{name} must be an array, got {type(a).__name__}")
    if isinstance(a, np.ma.MaskedArray):
        raise TypeError(
            f"{name} is a masked array; fill it ({name}.filled(...)) or drop the masked "
            f"rows: fastsoftmax does not honour masks (use -inf scores to mask classes)")
    if isinstance(a, np.ndarray):
        if type(a) is not np.ndarray:
            a = np.asarray(a)
        if not a.dtype.isnative:
            a = a.astype(a.dtype.newbyteorder("="))
    elif isinstance(a, np.generic) and not a.dtype.isnative:  # pragma: no cover
        a = a.astype(a.dtype.newbyteorder("="))
    backend.check_input(a, name)
    try:
        return backend.asarray(a)
    except OverflowError as exc:
        raise ValueError(f"{name} holds values this backend cannot represent: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a numeric array: {exc}") from None


def compute_dtype(xp, dtype):
    """The dtype the maths runs in for a real floating ``dtype``: floats narrower
    than float32 (float16, bfloat16) compute in float32 and are rounded back at
    the end -- NumPy's float16 loops do the same per operation, and the Numba and
    CUDA kernels have no half-precision arithmetic."""
    return xp.float32 if xp.finfo(dtype).bits < 32 else dtype


def float_array(backend, a, name, *, ndim=None, min_ndim=None, dtypes=None):
    """Convert ``a`` to a real floating array of ``backend``.

    Integer and boolean inputs are promoted to float64 (as ``scipy.special``
    does); complex, object and string inputs are a ``TypeError``. Floats
    narrower than float32 are computed in float32 (``compute_dtype``); the dtype
    before that is appended to ``dtypes`` (when given) so the caller can round
    its results back to it.
    """
    a = _convert(backend, a, name)
    xp = backend.xp
    kind = _dtype_kind(xp, a.dtype)
    if kind in ("integral", "bool"):
        a = xp.astype(a, xp.float64)
    elif kind != "real floating":
        raise TypeError(f"{name} must be a real floating array, got dtype {a.dtype}")
    if dtypes is not None:
        dtypes.append(a.dtype)
    wide = compute_dtype(xp, a.dtype)
    if wide != a.dtype:
        a = xp.astype(a, wide)
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


def _scalar(value):
    """A 0-d array (of any backend) as its Python scalar; anything else unchanged."""
    if getattr(value, "ndim", None) == 0 and getattr(value, "shape", None) == () \
            and not isinstance(value, np.generic):
        try:
            return value.item()
        except Exception:  # a traced JAX value has no concrete item  # noqa: BLE001
            return value
    return value


def real_param(value, name, *, positive=False):
    """A finite real scalar parameter (``reg``, ``lr``, ``noise``) as a float,
    ``>= 0`` (``> 0`` with ``positive``).

    Python and NumPy real numbers and 0-d real arrays of any backend are
    accepted; booleans (``True`` is not a regularisation strength), strings and
    arrays of another size are a ``TypeError``.
    """
    value = _scalar(value)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
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
    """``axis`` (an int, a tuple of ints or None for all) as a sorted tuple of
    non-negative axes. A 0-d array counts as one element along one axis, so the
    default ``axis=-1`` works on it."""
    ndim = max(ndim, 1)
    if axis is None:
        return tuple(range(ndim))
    axes = axis if isinstance(axis, tuple) else (axis,)
    out = []
    for a in axes:
        if isinstance(a, (bool, np.bool_)) or not isinstance(a, numbers.Integral):
            raise TypeError(f"{name} must be an integer, a tuple of integers or None, "
                            f"got {type(a).__name__}")
        if not -ndim <= a < ndim:
            raise ValueError(f"{name}={a} is out of range for an array of {ndim} dimension(s)")
        out.append(int(a) % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"{name}={axis} repeats an axis")
    if not out:
        raise ValueError(f"{name}=() names no axis")
    return tuple(sorted(out))


def result_dtype(xp, dtypes):
    """The dtype results are returned in: the inputs' promoted dtype."""
    return xp.result_type(*dtypes)


def score_inputs(backend, S, y, sample_weight, dtypes=None):
    """Validate ``(S, y, sample_weight)`` for the cross-entropy functions."""
    S = float_array(backend, S, "S", ndim=2, dtypes=dtypes)
    n, k = S.shape
    if n == 0 or k == 0:
        raise ValueError(f"S must have at least one row and one column, got shape {(n, k)}")
    y = label_array(backend, y, n)
    w = weight_array(backend, sample_weight, n, S.dtype)
    return S, y, w


def linear_inputs(backend, X, W, b, dtypes=None):
    """Validate and promote ``(X, W, b)`` of the linear model to one float dtype."""
    X = float_array(backend, X, "X", ndim=2, dtypes=dtypes)
    W = float_array(backend, W, "W", ndim=2, dtypes=dtypes)
    b = float_array(backend, b, "b", ndim=1, dtypes=dtypes)
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
