"""The public ops: validate once, resolve the backend, delegate.

Conventions
-----------
X : (N, D) real floating            y : (N,) integer labels in [0, K)
W : (D, K)                          b : (K,)
S : (N, K) scores ``X @ W + b``     sample_weight : (N,) non-negative, or None

Every op takes a keyword-only ``backend`` (a name, a ``Backend`` or ``None`` for
``$FASTSOFTMAX_BACKEND`` / ``"auto"``). Inputs are converted to that backend's
arrays and results are that backend's arrays; a scalar loss is a 0-d array
(``float(loss)`` is the only device sync). The output dtype follows the inputs.
"""

from __future__ import annotations

import math

from . import _validate
from .backends import get_backend


def _rounded(be, dtypes, *outs):
    """Results in the dtype the inputs promote to: float16 inputs were computed
    in float32 (``_validate.compute_dtype``) and are rounded back here."""
    xp = be.xp
    dtype = _validate.result_dtype(xp, dtypes)
    if _validate.compute_dtype(xp, dtype) == dtype:
        return outs if len(outs) > 1 else outs[0]
    outs = tuple(xp.astype(o, dtype) for o in outs)
    return outs if len(outs) > 1 else outs[0]


def scores(X, W, b, *, backend=None):
    """Class scores of the linear model, ``S = X @ W + b``.

    Parameters
    ----------
    X : array_like, shape (N, D)
    W : array_like, shape (D, K)
    b : array_like, shape (K,)
    backend : str, Backend or None

    Returns
    -------
    S : array, shape (N, K)

    Examples
    --------
    >>> import fastsoftmax as fs
    >>> fs.scores([[1.0, 2.0]], [[1.0, 0.0], [0.0, 1.0]], [0.5, 0.0], backend="numpy")
    array([[1.5, 2. ]])
    """
    be = get_backend(backend, like=X)
    dtypes = []
    X, W, b = _validate.linear_inputs(be, X, W, b, dtypes)
    return _rounded(be, dtypes, be.scores(X, W, b))


def _along(be, op, S, axis):
    """Run the backend's ``op`` (softmax, log_softmax, logsumexp) over ``axis``.

    One integer axis goes straight to the backend. A 0-d ``S``, ``axis=None``
    (every element, SciPy's default) and tuples of axes move the reduced axes
    last, flatten them into one and undo that afterwards.
    """
    xp = be.xp
    dtypes = []
    S = _validate.float_array(be, S, "S", dtypes=dtypes)
    axes = _validate.axis_value(axis, S.ndim)
    shape = tuple(S.shape)
    reduced = math.prod(shape[a] for a in axes if a < len(shape))
    if reduced == 0:
        where = axes[0] if len(axes) == 1 else axis
        raise ValueError(f"S has no entries along axis {where}; shape {shape}")
    if S.ndim >= 1 and len(axes) == 1:
        return _rounded(be, dtypes, getattr(be, op)(S, axes[0]))
    keep = [a for a in range(S.ndim) if a not in axes]
    order = keep + [a for a in axes if a < S.ndim]
    moved = xp.permute_dims(S, tuple(order)) if S.ndim > 1 else S
    kept_shape = tuple(shape[a] for a in keep)
    out = getattr(be, op)(xp.reshape(moved, (*kept_shape, reduced)), len(kept_shape))
    if op == "logsumexp":
        return _rounded(be, dtypes, out)
    out = xp.reshape(out, tuple(moved.shape))
    if S.ndim > 1:
        inverse = tuple(order.index(a) for a in range(S.ndim))
        out = xp.permute_dims(out, inverse)
    return _rounded(be, dtypes, out)


def softmax(S, axis=-1, *, backend=None):
    """Numerically stable softmax along ``axis``.

    Subtracts the maximum before exponentiating, so any finite scores work.
    ``-inf`` entries are masked out (probability 0); a slice that is fully
    masked or holds ``+inf`` or NaN gives NaN, as ``scipy.special.softmax`` does.

    Parameters
    ----------
    S : array_like, any number of dimensions (0-d too)
    axis : int, tuple of ints or None, default -1
        The axis (or axes) the probabilities sum to 1 along; ``None``: all of
        them. The default differs from SciPy's (``None``): fastsoftmax's
        arrays are ``(N, K)`` scores, one distribution per row.
    backend : str, Backend or None

    Returns
    -------
    probs : array, same shape and dtype as ``S``

    Examples
    --------
    >>> import fastsoftmax as fs
    >>> fs.softmax([[1e4, 1e4, -float("inf")]], backend="numpy")
    array([[0.5, 0.5, 0. ]])
    >>> fs.softmax([[0.0, 0.0], [0.0, 0.0]], axis=None, backend="numpy")
    array([[0.25, 0.25],
           [0.25, 0.25]])
    """
    be = get_backend(backend, like=S)
    return _along(be, "softmax", S, axis)


def log_softmax(S, axis=-1, *, backend=None):
    """Numerically stable ``log(softmax(S))`` along ``axis``, without taking a log of 0.

    Computed as ``(S - m) - log1p(r)`` (``m`` the maximum, ``r`` the sum of the
    other exponentials), so the entry of a dominant score keeps its relative
    accuracy. ``axis`` as in :func:`softmax`.

    Examples
    --------
    >>> import fastsoftmax as fs
    >>> fs.log_softmax([[0.0, 0.0]], backend="numpy")
    array([[-0.69314718, -0.69314718]])
    >>> float(fs.log_softmax([0.0, -40.0], backend="numpy")[0])
    -4.248354255291589e-18
    """
    be = get_backend(backend, like=S)
    return _along(be, "log_softmax", S, axis)


def logsumexp(S, axis=-1, *, backend=None):
    """``log(sum(exp(S), axis))``, stable; ``-inf`` for a fully masked slice.

    ``m + log1p(r)`` with ``m`` the maximum and ``r`` the sum of the other
    exponentials, as SciPy computes it: full relative accuracy near 0. A slice
    holding ``+inf`` gives ``+inf``, one holding NaN gives NaN. ``axis`` as in
    :func:`softmax` (``None``: over every element, a 0-d result).

    Returns
    -------
    array, ``S``'s shape without ``axis``

    Examples
    --------
    >>> import fastsoftmax as fs
    >>> fs.logsumexp([[1000.0, 1000.0]], backend="numpy")
    array([1000.69314718])
    >>> float(fs.logsumexp([0.0, -40.0], backend="numpy"))
    4.248354255291589e-18
    """
    be = get_backend(backend, like=S)
    return _along(be, "logsumexp", S, axis)


def cross_entropy(S, y, *, reduction="mean", sample_weight=None, backend=None):
    """Cross-entropy of ``softmax(S)`` against integer labels ``y``.

    ``l_i = logsumexp(S_i) - S_{i, y_i}``, reduced by ``reduction``:
    ``"mean"`` gives ``sum_i w_i l_i / sum_i w_i`` (the plain mean unweighted),
    ``"sum"`` gives ``sum_i w_i l_i`` and ``"none"`` the vector ``w_i l_i``.

    Parameters
    ----------
    S : array_like, shape (N, K)
    y : array_like of int, shape (N,)
    reduction : {"mean", "sum", "none"}
    sample_weight : array_like, shape (N,), optional
    backend : str, Backend or None

    Returns
    -------
    loss : 0-d array, or shape (N,) for ``reduction="none"``

    Examples
    --------
    >>> import fastsoftmax as fs
    >>> float(fs.cross_entropy([[0.0, 0.0]], [1], backend="numpy"))  # log 2
    0.6931471805599453
    """
    be = get_backend(backend, like=S)
    dtypes = []
    S, y, w = _validate.score_inputs(be, S, y, sample_weight, dtypes)
    reduction = _validate.reduction_value(reduction)
    return _rounded(be, dtypes,
                    be.cross_entropy(S, y, reduction=reduction, sample_weight=w))


def cross_entropy_gradient(S, y, *, reduction="mean", sample_weight=None, backend=None):
    """Cross-entropy and its gradient with respect to the scores.

    ``dscores_i = c_i (softmax(S_i) - onehot(y_i))`` with ``c_i = w_i / sum(w)``
    for ``"mean"`` and ``w_i`` otherwise: the notebook's ``dscores``.

    Returns
    -------
    loss : 0-d array, or shape (N,) for ``reduction="none"``
    dscores : array, shape (N, K)

    Examples
    --------
    >>> import fastsoftmax as fs
    >>> loss, dscores = fs.cross_entropy_gradient([[0.0, 0.0]], [1], backend="numpy")
    >>> dscores
    array([[ 0.5, -0.5]])
    """
    be = get_backend(backend, like=S)
    dtypes = []
    S, y, w = _validate.score_inputs(be, S, y, sample_weight, dtypes)
    reduction = _validate.reduction_value(reduction)
    return _rounded(be, dtypes, *be.cross_entropy_gradient(
        S, y, reduction=reduction, sample_weight=w))


def _linear_inputs(be, X, y, W, b, sample_weight, reg, dtypes):
    X, W, b = _validate.linear_inputs(be, X, W, b, dtypes)
    y = _validate.label_array(be, y, X.shape[0])
    w = _validate.weight_array(be, sample_weight, X.shape[0], X.dtype)
    return X, y, W, b, w, _validate.real_param(reg, "reg")


def loss(X, y, W, b, *, reg=0.0, sample_weight=None, backend=None):
    """Loss of the linear softmax classifier: mean cross-entropy + ``0.5 reg |W|^2``.

    Returns
    -------
    loss : 0-d array

    Examples
    --------
    >>> import numpy as np, fastsoftmax as fs
    >>> X, y = fs.make_spiral(seed=0, backend="numpy")
    >>> W, b = np.zeros((2, 3)), np.zeros(3)
    >>> round(float(fs.loss(X, y, W, b, backend="numpy")), 6)  # log 3
    1.098612
    """
    be = get_backend(backend, like=X)
    dtypes = []
    X, y, W, b, w, reg = _linear_inputs(be, X, y, W, b, sample_weight, reg, dtypes)
    return _rounded(be, dtypes, be.loss(X, y, W, b, reg=reg, sample_weight=w))


def loss_gradient(X, y, W, b, *, reg=0.0, sample_weight=None, backend=None):
    """Loss and gradients of the linear softmax classifier -- the hot path.

    ``dW = X.T @ dscores + reg W`` and ``db = sum_i dscores_i`` with the
    ``dscores`` of :func:`cross_entropy_gradient`; fused into one pass over ``X``
    where the backend has a kernel (``numba``), never materialising ``S`` there.

    Returns
    -------
    loss : 0-d array
    dW : array, shape (D, K)
    db : array, shape (K,)

    Examples
    --------
    >>> import numpy as np, fastsoftmax as fs
    >>> X, y = fs.make_spiral(seed=0, backend="numpy")
    >>> loss, dW, db = fs.loss_gradient(X, y, np.zeros((2, 3)), np.zeros(3), reg=1e-3)
    >>> dW.shape, db.shape
    ((2, 3), (3,))
    """
    be = get_backend(backend, like=X)
    dtypes = []
    X, y, W, b, w, reg = _linear_inputs(be, X, y, W, b, sample_weight, reg, dtypes)
    return _rounded(be, dtypes, *be.loss_gradient(X, y, W, b, reg=reg, sample_weight=w))
