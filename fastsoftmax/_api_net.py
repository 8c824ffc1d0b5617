"""The public ops of the two-layer network: validate once, resolve the backend, delegate.

The same shape as ``_api`` (which holds the linear model's ops); the maths is
``backends/_reference_net.py``, fused on ``numba`` by ``backends/_numba_net.py``.

Conventions
-----------
X : (N, D) real floating       y : (N,) integer labels in [0, K)
W1 : (D, H)    b1 : (H,)       W2 : (H, K)    b2 : (K,)
sample_weight : (N,) non-negative, or None
"""

from __future__ import annotations

from . import _validate
from .backends import get_backend


def _net_arrays(be, X, W1, b1, W2, b2):
    """Validate shapes and promote ``(X, W1, b1, W2, b2)`` to one float dtype."""
    X = _validate.float_array(be, X, "X", ndim=2)
    W1 = _validate.float_array(be, W1, "W1", ndim=2)
    b1 = _validate.float_array(be, b1, "b1", ndim=1)
    W2 = _validate.float_array(be, W2, "W2", ndim=2)
    b2 = _validate.float_array(be, b2, "b2", ndim=1)
    n, d = X.shape
    if n == 0 or d == 0:
        raise ValueError(f"X is empty: shape {(n, d)}; need at least one sample and feature")
    if W1.shape[0] != d:
        raise ValueError(f"W1 has {W1.shape[0]} rows but X has {d} features; W1 must be (D, H)")
    h = W1.shape[1]
    if h == 0:
        raise ValueError("W1 has no columns; need at least one hidden unit")
    if b1.shape[0] != h:
        raise ValueError(f"b1 has {b1.shape[0]} entries but W1 has {h} hidden units")
    if W2.shape[0] != h:
        raise ValueError(f"W2 has {W2.shape[0]} rows but W1 has {h} hidden units; "
                         f"W2 must be (H, K)")
    if W2.shape[1] == 0:
        raise ValueError("W2 has no columns; need at least one class")
    if b2.shape[0] != W2.shape[1]:
        raise ValueError(f"b2 has {b2.shape[0]} entries but W2 has {W2.shape[1]} classes")
    xp = be.xp
    dtype = xp.result_type(X.dtype, W1.dtype, b1.dtype, W2.dtype, b2.dtype)
    return tuple(xp.astype(a, dtype, copy=False) for a in (X, W1, b1, W2, b2))


def net_scores(X, W1, b1, W2, b2, *, backend=None):
    """Class scores of the two-layer ReLU network, ``relu(X @ W1 + b1) @ W2 + b2``.

    Parameters
    ----------
    X : array_like, shape (N, D)
    W1 : array_like, shape (D, H)
    b1 : array_like, shape (H,)
    W2 : array_like, shape (H, K)
    b2 : array_like, shape (K,)
    backend : str, Backend or None

    Returns
    -------
    scores : array, shape (N, K)

    Examples
    --------
    >>> import fastsoftmax as fs
    >>> fs.net_scores([[1.0, -1.0]], [[1.0, 0.0], [0.0, 1.0]], [0.0, 0.0],
    ...               [[1.0], [1.0]], [0.5], backend="numpy")    # relu([1, -1]) = [1, 0]
    array([[1.5]])
    """
    be = get_backend(backend, like=X)
    return be.net_scores(*_net_arrays(be, X, W1, b1, W2, b2))


def net_loss_gradient(X, y, W1, b1, W2, b2, *, reg=0.0, sample_weight=None, backend=None):
    """Loss and gradients of the two-layer network: the case study's backprop.

    The loss is the (weighted) mean cross-entropy of ``softmax(scores)`` plus
    ``0.5 * reg * (|W1|^2 + |W2|^2)``; the biases are not regularised. The
    gradients are derived by hand (``docs/math.md``, section 13): the linear
    model's ``dscores`` at the top, then ``dW2 = hidden.T @ dscores``, ``dhidden
    = dscores @ W2.T`` gated by the ReLU, ``dW1 = X.T @ dhidden``. On ``numba``
    one fused pass over ``X`` computes all of it without an N x H array.

    Parameters
    ----------
    X : array_like, shape (N, D)
    y : array_like of int, shape (N,)
    W1, b1, W2, b2 : array_like, shapes (D, H), (H,), (H, K), (K,)
    reg : float, default 0.0
    sample_weight : array_like, shape (N,), optional
    backend : str, Backend or None

    Returns
    -------
    loss : 0-d array
    dW1, db1, dW2, db2 : arrays of the shapes of ``W1, b1, W2, b2``

    Examples
    --------
    >>> import numpy as np, fastsoftmax as fs
    >>> X, y = fs.make_spiral(seed=0, backend="numpy")
    >>> rng = np.random.default_rng(0)
    >>> W1, W2 = 0.01 * rng.standard_normal((2, 100)), 0.01 * rng.standard_normal((100, 3))
    >>> loss, dW1, db1, dW2, db2 = fs.net_loss_gradient(
    ...     X, y, W1, np.zeros(100), W2, np.zeros(3), reg=1e-3, backend="numpy")
    >>> round(float(loss), 4), dW1.shape, dW2.shape     # about log 3 = 1.0986 at the start
    (1.0987, (2, 100), (100, 3))
    """
    be = get_backend(backend, like=X)
    X, W1, b1, W2, b2 = _net_arrays(be, X, W1, b1, W2, b2)
    y = _validate.label_array(be, y, X.shape[0])
    w = _validate.weight_array(be, sample_weight, X.shape[0], X.dtype)
    reg = _validate.real_param(reg, "reg")
    return be.net_loss_gradient(X, y, W1, b1, W2, b2, reg=reg, sample_weight=w)
