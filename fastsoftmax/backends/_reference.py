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
* The row maximum ``m`` is subtracted before ``exp`` so no finite score overflows.
* ``logsumexp = m + log1p(r)`` with ``r`` the sum of ``exp(S - m)`` over every
  entry but one maximal one (SciPy's fix of its gh-18295): when one score
  dominates, ``r`` is tiny and ``log(1 + r)`` would round it away, so
  ``logsumexp([0, -40])`` is ``4.2e-18``, not 0; the same holds for
  ``log_softmax`` and for the cross-entropy of a confident, correct row.
* Non-finite rows give ``scipy.special``'s answers (SciPy 1.15+):
  ``logsumexp`` is ``+inf`` for a row holding ``+inf``, ``-inf`` for a fully
  masked row (all ``-inf``) and NaN for a row holding NaN; ``softmax`` is NaN on
  the whole of any such row (the distribution is undefined, and NaN says so);
  ``log_softmax`` is ``S - logsumexp`` (so ``-inf`` beside a ``+inf``).
  ``logsumexp`` and ``log_softmax`` shift such rows by 0 instead of the
  maximum; ``softmax`` shifts by it (``inf - inf`` is the NaN wanted).
* Cross-entropy is ``log1p(r) - (S_y - m)``: computed from the log-softmax,
  never as ``log(softmax)``, so it stays exact when ``p_y`` underflows and keeps
  its relative accuracy when it is tiny. Its ``dscores`` are ``c (softmax - onehot)``
  with the softmax above (NaN rows where the scores overflowed to ``+inf``).
* float32 in, float32 out; but the sums over the N rows (the loss, ``db``, the
  weights) and ``X.T @ dscores`` accumulate in float64, since N reaches 1e8. The
  weights are normalised in float64 (``w / sum(w)``), so a float32 weight sum
  that overflows float32 changes nothing (weights are scale-invariant); the
  penalty ``0.5 reg |W|^2`` and ``reg W`` are computed in float64 too.
"""

from __future__ import annotations


def scores(X, W, b, *, xp):
    """Class scores ``S = X @ W + b``."""
    return X @ W + b


def _shifted(S, axis, xp):
    """``(S - m, m, finite)`` with ``m`` the max along ``axis`` (0 where not
    finite) and ``finite`` whether it was."""
    m = xp.max(S, axis=axis, keepdims=True)
    finite = xp.isfinite(m)
    m = xp.where(finite, m, xp.zeros_like(m))
    return S - m, m, finite


def _log_sum(Z, E, finite, axis, xp):
    """``(log(sum(E)), sum(E))`` along ``axis`` (kept) for ``E = exp(Z)``, ``Z = S - m``.

    The log is ``log1p(r + ties - 1)``: ``r`` sums the entries below the maximum
    (``Z != 0``) and each maximal entry is exactly 1, so ``ties = sum(E) - r``
    rounded is their count, exactly. Rows shifted by 0 (no finite maximum) take
    ``log(sum(E))``: ``-inf`` when all ``-inf``, ``+inf`` with a ``+inf``, NaN with
    a NaN -- SciPy's answers.
    """
    s = xp.sum(E, axis=axis, keepdims=True)
    r = xp.sum(xp.where(Z == 0, xp.zeros_like(E), E), axis=axis, keepdims=True)
    ties = xp.round(s - r)
    return xp.where(finite, xp.log1p(r + (ties - 1)), xp.log(s)), s


def logsumexp(S, axis=-1, *, xp):
    """``log(sum(exp(S), axis))``, stable for any finite or ``-inf`` scores."""
    Z, m, finite = _shifted(S, axis, xp)
    out = _log_sum(Z, xp.exp(Z), finite, axis, xp)[0] + m
    return xp.squeeze(out, axis=axis)


def softmax(S, axis=-1, *, xp):
    """``exp(S) / sum(exp(S), axis)`` without overflow; NaN rows where the max is
    not finite (``+inf`` present, or fully masked), as ``scipy.special.softmax``."""
    E = xp.exp(S - xp.max(S, axis=axis, keepdims=True))
    return E / xp.sum(E, axis=axis, keepdims=True)


def log_softmax(S, axis=-1, *, xp):
    """``S - logsumexp(S, axis)``, computed as ``(S - m) - log1p(r)``."""
    Z, _, finite = _shifted(S, axis, xp)
    return Z - _log_sum(Z, xp.exp(Z), finite, axis, xp)[0]


def _wide(xp, dtype):
    """The accumulation dtype: float64 for float32 data (N reaches 1e8, and a
    float32 running sum down a column loses digits long before that)."""
    return xp.float64 if dtype == xp.float32 else dtype


def _sum_rows(a, xp, axis=None):
    """A sum over the N rows, accumulated in ``_wide`` and returned in ``a``'s dtype."""
    if a.dtype == xp.float32:
        return xp.astype(xp.sum(a, axis=axis, dtype=xp.float64), xp.float32)
    return xp.sum(a, axis=axis)


def _onehot(y, n_classes, dtype, xp):
    # Compare in the default index dtype: arange(K) in a narrow label dtype
    # (uint8 with K > 256) would wrap around. Labels are in [0, K) by now.
    if xp.iinfo(y.dtype).max >= n_classes - 1:
        classes = xp.arange(n_classes, dtype=y.dtype)
    else:
        classes = xp.arange(n_classes)
        y = xp.astype(y, classes.dtype)
    return xp.astype(y[:, None] == classes[None, :], dtype)


def _row_scale(sample_weight, n, reduction, xp):
    """Per-row factor ``c`` such that the reduced loss is ``sum_i c_i * l_i``.

    ``mean``: ``w_i / sum(w)`` (normalised in the wide dtype: a float32 sum of
    float32 weights may overflow, the weights' scale must not matter), or the
    Python float ``1/N`` unweighted; ``sum`` and ``none``: ``w_i``, or ``1.0``.
    """
    if sample_weight is None:
        return 1.0 / n if reduction == "mean" else 1.0
    if reduction == "mean":
        w = xp.astype(sample_weight, _wide(xp, sample_weight.dtype), copy=False)
        return xp.astype(w / xp.sum(w), sample_weight.dtype)
    return sample_weight


def _scale_rows(c, A):
    """``c_i * A_i`` for a per-row factor ``c`` (a float or an (N,) array)."""
    if isinstance(c, float):
        return A if c == 1.0 else A * c
    return c[:, None] * A if A.ndim == 2 else c * A


def _cross_entropy_rows(S, y, xp):
    """Per-row loss ``l_i = lse_i - S_iy`` and the softmax ``probs``, and one-hot."""
    Z, _, finite = _shifted(S, 1, xp)
    E = xp.exp(Z)
    Y = _onehot(y, S.shape[1], S.dtype, xp)
    # Z_iy picked with the one-hot mask; where() keeps the -inf of masked classes out.
    z_y = xp.sum(xp.where(Y > 0, Z, xp.zeros_like(Z)), axis=1)
    lse, s = _log_sum(Z, E, finite, 1, xp)
    rows = xp.squeeze(lse, axis=1) - z_y
    # softmax(S): NaN rows where the max is not finite (see softmax()).
    probs = E / xp.where(finite, s, xp.full_like(s, xp.nan))
    return rows, probs, Y


def _reduce(rows, c, reduction, xp):
    weighted = _scale_rows(c, rows)
    return weighted if reduction == "none" else _sum_rows(weighted, xp)


def cross_entropy(S, y, *, reduction="mean", sample_weight=None, xp):
    """Cross-entropy of the softmax of ``S`` against labels ``y``."""
    rows, _, _ = _cross_entropy_rows(S, y, xp)
    c = _row_scale(sample_weight, S.shape[0], reduction, xp)
    return _reduce(rows, c, reduction, xp)


def cross_entropy_gradient(S, y, *, reduction="mean", sample_weight=None, xp):
    """``(loss, dscores)``: the cross-entropy and its gradient ``c_i (P - onehot(y))``.

    For ``reduction="none"`` the loss is a vector and row ``i`` of ``dscores`` is
    the gradient of ``loss[i]`` (the Jacobian is block-diagonal).
    """
    rows, probs, Y = _cross_entropy_rows(S, y, xp)
    c = _row_scale(sample_weight, S.shape[0], reduction, xp)
    return _reduce(rows, c, reduction, xp), _scale_rows(c, probs - Y)


def _penalty(W, reg, xp):
    """``0.5 reg |W|^2`` in the wide dtype (``reg`` up to 1e308 must not overflow a
    float32 intermediate before the product is formed); exactly 0 for ``reg=0``,
    even where ``|W|^2`` overflows (``0 * inf`` would turn an infinite loss into NaN)."""
    if reg == 0:
        return xp.zeros((), dtype=W.dtype)
    W2 = xp.astype(W, _wide(xp, W.dtype), copy=False)
    return xp.astype(0.5 * reg * xp.sum(W2 * W2), W.dtype)


def loss(X, y, W, b, *, reg=0.0, sample_weight=None, xp):
    """Mean (or weighted-mean) cross-entropy of the linear model plus ``0.5 reg |W|^2``."""
    S = scores(X, W, b, xp=xp)
    data = cross_entropy(S, y, sample_weight=sample_weight, xp=xp)
    return data + _penalty(W, reg, xp)


def loss_gradient(X, y, W, b, *, reg=0.0, sample_weight=None, xp):
    """``(loss, dW, db)`` of the linear softmax classifier -- the backprop in full.

    ``dscores = c_i (P - onehot(y))``; ``dW = X.T @ dscores + reg W``;
    ``db = sum_i dscores_i`` (``b`` is not regularised).
    """
    S = scores(X, W, b, xp=xp)
    data, dscores = cross_entropy_gradient(S, y, sample_weight=sample_weight, xp=xp)
    loss_value = data + _penalty(W, reg, xp)
    wide = _wide(xp, X.dtype)
    # a float32 GEMM sums N products per entry in float32: accumulate wide.
    X2, G2, W2 = (xp.astype(a, wide, copy=False) for a in (X, dscores, W))
    dW = xp.astype(xp.matrix_transpose(X2) @ G2 + reg * W2, X.dtype)
    db = _sum_rows(dscores, xp, axis=0)
    return loss_value, dW, db
