"""THE reference of the two-layer network: forward and hand-derived backprop, on the Array API.

The cs231n case study's network -- a hidden layer of ``H`` ReLU units, then the
softmax classifier of ``_reference`` on top -- written once, with only Array-API
functions (each takes the namespace as ``xp``), so it runs on NumPy, PyTorch,
CuPy and ``array_api_strict`` alike. No autograd: every gradient below is
derived by hand (``docs/math.md``, section 13) and checked in the tests against
finite differences and against PyTorch autograd. The fused Numba kernel
(``_numba_net``) is an optimisation of this module and is tested against it.

Imports flow one way: this module uses ``_reference`` (the top layer's
``cross_entropy_gradient``), never the reverse.

Conventions
-----------
X : (N, D) real floating       y : (N,) integer labels in [0, K)
W1 : (D, H)    b1 : (H,)       hidden = relu(X @ W1 + b1) : (N, H)
W2 : (H, K)    b2 : (K,)       scores = hidden @ W2 + b2  : (N, K)
sample_weight : (N,) non-negative or None (the weighted mean, as the linear loss)

    loss = cross_entropy(scores, y) + 0.5 * reg * (sum(W1*W1) + sum(W2*W2))

The biases are not regularised. ``relu(v) = v`` for ``v > 0`` and 0 otherwise
(NaN stays NaN), and its derivative at 0 is taken as 0, as PyTorch does.
"""

from __future__ import annotations

from ._reference import _sum_rows, cross_entropy, cross_entropy_gradient


def _relu(pre, xp):
    # where(pre <= 0, 0, pre) rather than maximum(pre, 0): NaN is kept (NaN <= 0 is
    # false), so a run that blew up says so instead of silently zeroing units.
    return xp.where(pre <= 0, xp.zeros_like(pre), pre)


def net_hidden(X, W1, b1, *, xp):
    """Hidden activations ``relu(X @ W1 + b1)``, shape (N, H)."""
    return _relu(X @ W1 + b1, xp)


def net_scores(X, W1, b1, W2, b2, *, xp):
    """Class scores of the network, ``relu(X @ W1 + b1) @ W2 + b2``, shape (N, K)."""
    return net_hidden(X, W1, b1, xp=xp) @ W2 + b2


def net_active_counts(X, W1, b1, *, xp):
    """Per hidden unit, on how many rows of ``X`` it is active (``pre > 0``): (H,) int64.

    A unit with count 0 is *dead on this batch*: no gradient reaches ``W1``,
    ``b1`` through it, so gradient descent cannot revive it.
    """
    active = xp.astype((X @ W1 + b1) > 0, xp.int64)
    return xp.sum(active, axis=0)


def _penalty(W1, W2, xp):
    return xp.sum(W1 * W1) + xp.sum(W2 * W2)


def _tmatmul(A, B, xp):
    """``A.T @ B``: a sum over the N rows, so float32 accumulates in float64."""
    if A.dtype == xp.float32:
        A64, B64 = xp.astype(A, xp.float64), xp.astype(B, xp.float64)
        return xp.astype(xp.matrix_transpose(A64) @ B64, xp.float32)
    return xp.matrix_transpose(A) @ B


def net_loss(X, y, W1, b1, W2, b2, *, reg=0.0, sample_weight=None, xp):
    """The network's loss: (weighted) mean cross-entropy + ``0.5 reg (|W1|^2 + |W2|^2)``."""
    S = net_scores(X, W1, b1, W2, b2, xp=xp)
    data = cross_entropy(S, y, sample_weight=sample_weight, xp=xp)
    return data + 0.5 * reg * _penalty(W1, W2, xp)


def net_loss_gradient(X, y, W1, b1, W2, b2, *, reg=0.0, sample_weight=None, xp):
    """``(loss, dW1, db1, dW2, db2)`` of the two-layer network -- backprop by hand.

    Forward::

        hidden = relu(X @ W1 + b1)
        scores = hidden @ W2 + b2

    Backward, layer by layer (the top is the linear model's backprop with
    ``hidden`` in place of ``X``)::

        dscores = c_i (P - onehot(y))               cross_entropy_gradient
        dW2     = hidden.T @ dscores + reg W2       db2 = sum_i dscores_i
        dhidden = dscores @ W2.T
        dhidden = 0 where hidden <= 0               the ReLU gate
        dW1     = X.T @ dhidden + reg W1            db1 = sum_i dhidden_i
    """
    hidden = net_hidden(X, W1, b1, xp=xp)
    S = hidden @ W2 + b2
    data, dscores = cross_entropy_gradient(S, y, sample_weight=sample_weight, xp=xp)
    loss_value = data + 0.5 * reg * _penalty(W1, W2, xp)

    dW2 = _tmatmul(hidden, dscores, xp) + reg * W2
    db2 = _sum_rows(dscores, xp, axis=0)
    dhidden = dscores @ xp.matrix_transpose(W2)
    # A unit that did not fire passes no gradient back (and, for NaN hidden
    # values, the comparison is false, so the NaN travels on).
    dhidden = xp.where(hidden <= 0, xp.zeros_like(dhidden), dhidden)
    dW1 = _tmatmul(X, dhidden, xp) + reg * W1
    db1 = _sum_rows(dhidden, xp, axis=0)
    return loss_value, dW1, db1, dW2, db2
