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

from . import _validate
from .backends import get_backend


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
    X, W, b = _validate.linear_inputs(be, X, W, b)
    return be.scores(X, W, b)


def _score_array(be, S, axis):
    S = _validate.float_array(be, S, "S", min_ndim=1)
    axis = _validate.axis_value(axis, S.ndim)
    if S.shape[axis] == 0:
        raise ValueError(f"S has no entries along axis {axis}; shape {tuple(S.shape)}")
    return S, axis


def softmax(S, axis=-1, *, backend=None):
    """Numerically stable softmax along ``axis``.

    Subtracts the maximum before exponentiating, so any finite scores work.
    ``-inf`` entries are masked out (probability 0); a fully masked slice gives
    NaN, as ``scipy.special.softmax`` does.

    Parameters
    ----------
    S : array_like
    axis : int, default -1
    backend : str, Backend or None

    Returns
    -------
    probs : array, same shape and dtype as ``S``

    Examples
    --------
    >>> import fastsoftmax as fs
    >>> fs.softmax([[1e4, 1e4, -float("inf")]], backend="numpy")
    array([[0.5, 0.5, 0. ]])
    """
    be = get_backend(backend, like=S)
    S, axis = _score_array(be, S, axis)
    return be.softmax(S, axis)


def log_softmax(S, axis=-1, *, backend=None):
    """Numerically stable ``log(softmax(S))`` along ``axis``, without taking a log of 0.

    Examples
    --------
    >>> import fastsoftmax as fs
    >>> fs.log_softmax([[0.0, 0.0]], backend="numpy")
    array([[-0.69314718, -0.69314718]])
    """
    be = get_backend(backend, like=S)
    S, axis = _score_array(be, S, axis)
    return be.log_softmax(S, axis)


def logsumexp(S, axis=-1, *, backend=None):
    """``log(sum(exp(S), axis))``, stable; ``-inf`` for a fully masked slice.

    Returns
    -------
    array, ``S``'s shape without ``axis``

    Examples
    --------
    >>> import fastsoftmax as fs
    >>> fs.logsumexp([[1000.0, 1000.0]], backend="numpy")
    array([1000.69314718])
    """
    be = get_backend(backend, like=S)
    S, axis = _score_array(be, S, axis)
    return be.logsumexp(S, axis)


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
    S, y, w = _validate.score_inputs(be, S, y, sample_weight)
    reduction = _validate.reduction_value(reduction)
    return be.cross_entropy(S, y, reduction=reduction, sample_weight=w)


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
    S, y, w = _validate.score_inputs(be, S, y, sample_weight)
    reduction = _validate.reduction_value(reduction)
    return be.cross_entropy_gradient(S, y, reduction=reduction, sample_weight=w)


def _linear_inputs(be, X, y, W, b, sample_weight, reg):
    X, W, b = _validate.linear_inputs(be, X, W, b)
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
    X, y, W, b, w, reg = _linear_inputs(be, X, y, W, b, sample_weight, reg)
    return be.loss(X, y, W, b, reg=reg, sample_weight=w)


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
    X, y, W, b, w, reg = _linear_inputs(be, X, y, W, b, sample_weight, reg)
    return be.loss_gradient(X, y, W, b, reg=reg, sample_weight=w)
