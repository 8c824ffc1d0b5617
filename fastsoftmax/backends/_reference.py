"""THE reference implementation: the maths of fastsoftmax, once, on the Array API.

Every function takes the array namespace as the keyword ``xp`` and uses only
functions of the Array API standard (2023.12), so the same code runs on NumPy,
CuPy, PyTorch and ``array_api_strict`` (which proves it). Fast kernels elsewhere
are optimisations of these functions and are tested against them.

Inputs are validated by the caller (``fastsoftmax._validate``); nothing here
writes to an input (JAX-style immutability), and nothing here syncs a device.

Conventions
-----------
X : (N, D) real floating       y : (N,) integer labels in [0, K)
W : (D, K)                     b : (K,)
S : (N, K) scores ``X @ W + b``; ``sample_weight`` : (N,) non-negative or None

Numerics
--------
* The row maximum is subtracted before ``exp`` so no finite score overflows.
* A row whose maximum is not finite (all ``-inf``: fully masked, or holding
  ``+inf``) is shifted by 0 instead, which gives ``scipy.special``'s answers:
  ``logsumexp = -inf`` and ``softmax = log_softmax = nan`` for a fully masked
  row -- the distribution over no allowed class is undefined, and NaN says so.
* Cross-entropy is ``log(sum exp(S - m)) - (S_y - m)``: computed from the
  log-softmax, never as ``log(softmax)``, so it stays exact when ``p_y`` underflows.
* float32 in, float32 out; but the sums over the N rows (the loss, ``db``, the
  weights) and ``X.T @ dscores`` accumulate in float64, since N reaches 1e8.
"""

from __future__ import annotations


def scores(X, W, b, *, xp):
    """Class scores ``S = X @ W + b``."""
    return X @ W + b


def _shifted(S, axis, xp):
    """``(S - m, m)`` with ``m`` the max along ``axis`` (0 where not finite)."""
    m = xp.max(S, axis=axis, keepdims=True)
    m = xp.where(xp.isfinite(m), m, xp.zeros_like(m))
    return S - m, m


def logsumexp(S, axis=-1, *, xp):
    """``log(sum(exp(S), axis))``, stable for any finite or ``-inf`` scores."""
    Z, m = _shifted(S, axis, xp)
    out = xp.log(xp.sum(xp.exp(Z), axis=axis, keepdims=True)) + m
    return xp.squeeze(out, axis=axis)


def softmax(S, axis=-1, *, xp):
    """``exp(S) / sum(exp(S), axis)`` without overflow."""
    Z, _ = _shifted(S, axis, xp)
    E = xp.exp(Z)
    return E / xp.sum(E, axis=axis, keepdims=True)


def log_softmax(S, axis=-1, *, xp):
    """``S - logsumexp(S, axis)``, computed as ``(S - m) - log(sum(exp(S - m)))``."""
    Z, _ = _shifted(S, axis, xp)
    return Z - xp.log(xp.sum(xp.exp(Z), axis=axis, keepdims=True))


def _sum_rows(a, xp, axis=None):
    """A sum over the N rows; float32 data accumulates in float64 (N reaches 1e8,
    and a float32 running sum down a column loses digits long before that)."""
    if a.dtype == xp.float32:
        return xp.astype(xp.sum(a, axis=axis, dtype=xp.float64), xp.float32)
    return xp.sum(a, axis=axis)


def _onehot(y, n_classes, dtype, xp):
    classes = xp.arange(n_classes, dtype=y.dtype)
    return xp.astype(y[:, None] == classes[None, :], dtype)


def _row_scale(sample_weight, n, reduction, xp):
    """Per-row factor ``c`` such that the reduced loss is ``sum_i c_i * l_i``.

    ``mean``: ``w_i / sum(w)``, or the Python float ``1/N`` unweighted;
    ``sum`` and ``none``: ``w_i``, or ``1.0`` unweighted.
    """
    if sample_weight is None:
        return 1.0 / n if reduction == "mean" else 1.0
    if reduction == "mean":
        return sample_weight / _sum_rows(sample_weight, xp)
    return sample_weight


def _scale_rows(c, A):
    """``c_i * A_i`` for a per-row factor ``c`` (a float or an (N,) array)."""
    if isinstance(c, float):
        return A if c == 1.0 else A * c
    return c[:, None] * A if A.ndim == 2 else c * A


def _cross_entropy_rows(S, y, xp):
    """Per-row loss ``l_i = lse_i - S_iy``, with ``exp(S - m)``, its row sums and one-hot."""
    Z, _ = _shifted(S, 1, xp)
    E = xp.exp(Z)
    s = xp.sum(E, axis=1)
    Y = _onehot(y, S.shape[1], S.dtype, xp)
    # Z_iy picked with the one-hot mask; where() keeps the -inf of masked classes out.
    z_y = xp.sum(xp.where(Y > 0, Z, xp.zeros_like(Z)), axis=1)
    return xp.log(s) - z_y, E, s, Y


def _reduce(rows, c, reduction, xp):
    weighted = _scale_rows(c, rows)
    return weighted if reduction == "none" else _sum_rows(weighted, xp)


def cross_entropy(S, y, *, reduction="mean", sample_weight=None, xp):
    """Cross-entropy of the softmax of ``S`` against labels ``y``."""
    rows, _, _, _ = _cross_entropy_rows(S, y, xp)
    c = _row_scale(sample_weight, S.shape[0], reduction, xp)
    return _reduce(rows, c, reduction, xp)


def cross_entropy_gradient(S, y, *, reduction="mean", sample_weight=None, xp):
    """``(loss, dscores)``: the cross-entropy and its gradient ``c_i (P - onehot(y))``.

    For ``reduction="none"`` the loss is a vector and row ``i`` of ``dscores`` is
    the gradient of ``loss[i]`` (the Jacobian is block-diagonal).
    """
    rows, E, s, Y = _cross_entropy_rows(S, y, xp)
    c = _row_scale(sample_weight, S.shape[0], reduction, xp)
    probs = E / s[:, None]
    return _reduce(rows, c, reduction, xp), _scale_rows(c, probs - Y)


def loss(X, y, W, b, *, reg=0.0, sample_weight=None, xp):
    """Mean (or weighted-mean) cross-entropy of the linear model plus ``0.5 reg |W|^2``."""
    S = scores(X, W, b, xp=xp)
    data = cross_entropy(S, y, sample_weight=sample_weight, xp=xp)
    return data + 0.5 * reg * xp.sum(W * W)


def loss_gradient(X, y, W, b, *, reg=0.0, sample_weight=None, xp):
    """``(loss, dW, db)`` of the linear softmax classifier -- the backprop in full.

    ``dscores = c_i (P - onehot(y))``; ``dW = X.T @ dscores + reg W``;
    ``db = sum_i dscores_i`` (``b`` is not regularised).
    """
    S = scores(X, W, b, xp=xp)
    data, dscores = cross_entropy_gradient(S, y, sample_weight=sample_weight, xp=xp)
    loss_value = data + 0.5 * reg * xp.sum(W * W)
    if X.dtype == xp.float32:  # a float32 GEMM sums N products per entry in float32
        X64, G64 = xp.astype(X, xp.float64), xp.astype(dscores, xp.float64)
        dW = xp.astype(xp.matrix_transpose(X64) @ G64, xp.float32) + reg * W
    else:
        dW = xp.matrix_transpose(X) @ dscores + reg * W
    db = _sum_rows(dscores, xp, axis=0)
    return loss_value, dW, db
