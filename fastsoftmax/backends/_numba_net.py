"""Fused Numba kernels for the two-layer network, and the ``numba`` backend that uses them.

``net_loss_gradient`` of ``_reference_net`` materialises ``hidden`` and
``dhidden``, two N x H arrays, and sweeps them half a dozen times: at N = 3e5,
H = 100 that is over 2 GB of memory traffic per step. The fused kernel here
makes **one pass over X per step and keeps nothing N x H**: it walks the rows
in blocks of ``BLOCK``; for a block it holds the hidden activations in an
``(H, BLOCK)`` scratch buffer (L1/L2-resident), runs the forward pass, the
softmax and the whole backward pass, and adds the block's contributions to
``dW1, db1, dW2, db2`` into float64 partial sums before moving on.

Layout: the scratch buffers are laid out *across rows* (unit or class first,
row last), so every inner loop runs over the rows of a block with unit stride
and LLVM vectorises it, the exps included (``_exp``/``_log`` from ``numba.py``).
The weight gradients are dot products over a block's rows, ``sum_r h[j, r] *
g[k, r]``; vectorising them needs reassociation, so these kernels are compiled
with ``fastmath={"contract", "reassoc"}`` -- allowed here because, unlike the
linear kernel, they do not probe for non-finite inputs (the backend checks the
values once, before the kernel, when ``check=True``).

Determinism: the rows are split into a number of chunks that depends on N only;
each chunk sums into its own float64 partials and the chunks are added in
order, so the result is bit-identical for any thread count (tested).

Regimes: the fused kernel pays for small layers (the spiral's D=2, H=100, K=3:
per row ~2H(D+K) multiply-adds, all in cache). For wide layers
(``H * (D + K) > FUSED_MAX_PARAMS``) the matrix products dominate and BLAS wins:
the backend runs the Array-API reference on NumPy instead.

Imports flow one way: this module imports ``numba.py`` (its jit options and
vectorisable ``_exp``/``_log``); ``numba.py`` does not know this module. The
registry (``backends/__init__.py``) loads the ``numba`` backend from here.
"""

from __future__ import annotations

import numpy as np

from . import numba as _nb

BLOCK = 64  # rows per block: the (H, BLOCK) scratch stays in L1/L2 for H in the hundreds
MAX_CHUNKS = 256  # parallel work items, fixed by N only -> deterministic sums
MIN_CHUNK_ROWS = 512
SERIAL_MAX_ROWS = 4096  # below, one thread: ~1,500 flops a row, a pool wake-up costs more
FUSED_MAX_PARAMS = 16_384  # H * (D + K) above which the BLAS reference wins (measured)


def load():
    """The ``numba`` backend, with the network's fused kernels."""
    base = _nb.load()  # raises BackendUnavailableError with the reason
    return NumbaNetBackend(base.name, base.xp, version=base.version, device=base.device)


if _nb._IMPORT_ERROR is None:
    from numba import njit, prange

    _exp, _log = _nb._exp, _nb._log
    _FASTMATH = _nb._CONTRACT | {"reassoc"}
    jit = njit(**_nb._OPTIONS, fastmath=_FASTMATH)
    pjit = njit(**_nb._OPTIONS, parallel=True, fastmath=_FASTMATH)

    @jit
    def _net_chunk(X, y, W1, b1, W2, b2, w, use_w, need_grad, c, per_chunk, partial):
        """Rows ``c*per_chunk`` on of the fused forward + backward, into ``partial[c]``.

        ``partial[c]`` holds, unnormalised, in float64: ``sum_i x_i dh_i``
        (D*H, row-major), ``sum_i dh_i`` (H), ``sum_i h_i g_i`` (H*K, row-major),
        ``sum_i g_i`` (K), ``sum_i c_i l_i``, ``sum_i c_i``; ``c_i = w_i`` (1
        unweighted), ``g_i = c_i (p_i - e_yi)`` and ``dh_i = W2 g_i`` gated by
        ``h_i > 0``.
        """
        n, d = X.shape
        hdim = W1.shape[1]
        k = W2.shape[1]
        o_db1 = d * hdim
        o_dW2 = o_db1 + hdim
        o_db2 = o_dW2 + hdim * k
        o_loss = o_db2 + k
        lo = c * per_chunk
        hi = min(n, lo + per_chunk)
        dt = X.dtype
        zero = dt.type(0.0)
        xt = np.empty((d, BLOCK), dt)
        hb = np.empty((hdim, BLOCK), dt)  # hidden activations of the block
        s = np.empty((k, BLOCK), dt)  # scores, then exp, then dscores
        dh = np.empty(BLOCK, dt)
        mx = np.empty(BLOCK, dt)
        tot = np.empty(BLOCK, dt)
        zy = np.empty(BLOCK, dt)
        cw = np.empty(BLOCK, dt)
        yl = np.empty(BLOCK, np.int64)
        acc = np.zeros(o_loss + 2, np.float64)
        for i0 in range(lo, hi, BLOCK):
            m = min(BLOCK, hi - i0)
            # Every loop below runs over all BLOCK rows (a constant trip count:
            # LLVM unrolls it, no remainder loops); the rows past ``m`` of the last
            # block are padding with x = 0, weight 0, so they add exactly 0.
            for t in range(d):
                for r in range(m):
                    xt[t, r] = X[i0 + r, t]
                for r in range(m, BLOCK):
                    xt[t, r] = zero
            for r in range(m):
                yl[r] = np.int64(y[i0 + r])
                cw[r] = w[i0 + r] if use_w else 1.0
            for r in range(m, BLOCK):
                yl[r] = 0
                cw[r] = zero
            # forward: hidden = relu(X W1 + b1); scores = hidden W2 + b2
            for j in range(k):
                bj = b2[j]
                for r in range(BLOCK):
                    s[j, r] = bj
            for u in range(hdim):
                bu = b1[u]
                for r in range(BLOCK):
                    hb[u, r] = bu
                for t in range(d):
                    wtu = W1[t, u]
                    for r in range(BLOCK):
                        hb[u, r] += xt[t, r] * wtu
                for r in range(BLOCK):
                    v = hb[u, r]
                    hb[u, r] = zero if v <= zero else v  # ReLU; NaN kept
                for j in range(k):
                    wuj = W2[u, j]
                    for r in range(BLOCK):
                        s[j, r] += hb[u, r] * wuj
            # softmax and cross-entropy, per row, shifted by the row max
            for r in range(BLOCK):
                mx[r] = s[0, r]
            for j in range(1, k):
                for r in range(BLOCK):
                    v = s[j, r]
                    mx[r] = v if v > mx[r] else mx[r]
            for r in range(BLOCK):
                v = mx[r]
                mx[r] = v if v - v == 0 else zero  # overflowed scores: shift by 0
                tot[r] = zero
                zy[r] = zero
            for j in range(k):
                for r in range(BLOCK):
                    z = s[j, r] - mx[r]
                    e = _exp(z)
                    s[j, r] = e
                    tot[r] += e
                    zy[r] = z if yl[r] == j else zy[r]
            part_loss = dt.type(0.0)
            part_w = dt.type(0.0)
            for r in range(BLOCK):
                part_loss += cw[r] * (_log(tot[r]) - zy[r])
                part_w += cw[r]
            acc[o_loss] += part_loss
            acc[o_loss + 1] += part_w
            if not need_grad:
                continue
            # backward: dscores, then layer 2's gradients, then through the ReLU gate
            for r in range(BLOCK):
                tot[r] = cw[r] / tot[r]
            for j in range(k):
                a = dt.type(0.0)
                for r in range(BLOCK):
                    g = s[j, r] * tot[r] - (cw[r] if yl[r] == j else zero)
                    s[j, r] = g
                    a += g
                acc[o_db2 + j] += a
            for u in range(hdim):
                for j in range(k):
                    a = dt.type(0.0)
                    for r in range(BLOCK):
                        a += hb[u, r] * s[j, r]
                    acc[o_dW2 + u * k + j] += a
                w0 = W2[u, 0]
                for r in range(BLOCK):
                    dh[r] = w0 * s[0, r]
                for j in range(1, k):
                    wuj = W2[u, j]
                    for r in range(BLOCK):
                        dh[r] += wuj * s[j, r]
                a = dt.type(0.0)
                for r in range(BLOCK):
                    v = zero if hb[u, r] <= zero else dh[r]  # the ReLU gate
                    dh[r] = v
                    a += v
                acc[o_db1 + u] += a
                for t in range(d):
                    a = dt.type(0.0)
                    for r in range(BLOCK):
                        a += xt[t, r] * dh[r]
                    acc[t * hdim + u] += a
        for a in range(o_loss + 2):
            partial[c, a] = acc[a]

    @jit
    def _chunk_sum(partial):
        """The chunks' partial sums, added in chunk order: deterministic."""
        n_chunks, n_acc = partial.shape
        out = np.zeros(n_acc, np.float64)
        for c in range(n_chunks):
            for a in range(n_acc):
                out[a] += partial[c, a]
        return out

    @pjit
    def _net_loss_gradient_kernel(X, y, W1, b1, W2, b2, w, use_w, need_grad, n_chunks):
        """Unnormalised float64 sums of the fused step (layout of ``_net_chunk``)."""
        n_acc = W1.shape[1] * (X.shape[1] + 1 + W2.shape[1]) + W2.shape[1] + 2
        per_chunk = (X.shape[0] + n_chunks - 1) // n_chunks
        partial = np.zeros((n_chunks, n_acc), np.float64)
        for c in prange(n_chunks):
            _net_chunk(X, y, W1, b1, W2, b2, w, use_w, need_grad, c, per_chunk, partial)
        return _chunk_sum(partial)

    @jit
    def _net_loss_gradient_serial_kernel(X, y, W1, b1, W2, b2, w, use_w, need_grad,
                                         n_chunks):
        """The same chunks in one thread (small N); bit-identical to the parallel one."""
        n_acc = W1.shape[1] * (X.shape[1] + 1 + W2.shape[1]) + W2.shape[1] + 2
        per_chunk = (X.shape[0] + n_chunks - 1) // n_chunks
        partial = np.zeros((n_chunks, n_acc), np.float64)
        for c in range(n_chunks):
            _net_chunk(X, y, W1, b1, W2, b2, w, use_w, need_grad, c, per_chunk, partial)
        return _chunk_sum(partial)

    @jit
    def _active_chunk(X, W1, b1, c, per_chunk, partial):
        n, d = X.shape
        pre = np.empty(BLOCK, X.dtype)
        hi = min(n, (c + 1) * per_chunk)
        for i0 in range(c * per_chunk, hi, BLOCK):
            m = min(BLOCK, hi - i0)
            for u in range(W1.shape[1]):
                for r in range(m):
                    pre[r] = b1[u]
                for t in range(d):
                    wtu = W1[t, u]
                    for r in range(m):
                        pre[r] += X[i0 + r, t] * wtu
                count = 0
                for r in range(m):
                    count += np.int64(pre[r] > 0)
                partial[c, u] += count

    @pjit
    def _net_active_counts_kernel(X, W1, b1, n_chunks):
        """Per hidden unit, the rows on which ``X W1 + b1 > 0``; no N x H array."""
        per_chunk = (X.shape[0] + n_chunks - 1) // n_chunks
        partial = np.zeros((n_chunks, W1.shape[1]), np.int64)
        for c in prange(n_chunks):
            _active_chunk(X, W1, b1, c, per_chunk, partial)
        return partial.sum(axis=0)

    @jit
    def _net_active_counts_serial_kernel(X, W1, b1, n_chunks):
        per_chunk = (X.shape[0] + n_chunks - 1) // n_chunks
        partial = np.zeros((n_chunks, W1.shape[1]), np.int64)
        for c in range(n_chunks):
            _active_chunk(X, W1, b1, c, per_chunk, partial)
        return partial.sum(axis=0)


def _n_chunks(n):
    return int(min(MAX_CHUNKS, max(1, -(-n // MIN_CHUNK_ROWS))))


def _fused(d, hdim, k):
    return hdim * (d + k) <= FUSED_MAX_PARAMS


class NumbaNetBackend(_nb.NumbaBackend):
    """The ``numba`` backend plus the two-layer network's fused kernels."""

    def net_loss(self, X, y, W1, b1, W2, b2, *, reg=0.0, sample_weight=None, check=True):
        return self._net_fused(X, y, W1, b1, W2, b2, reg, sample_weight, False, check)[0]

    def net_loss_gradient(self, X, y, W1, b1, W2, b2, *, reg=0.0, sample_weight=None,
                          check=True):
        return self._net_fused(X, y, W1, b1, W2, b2, reg, sample_weight, True, check)

    def _net_fused(self, X, y, W1, b1, W2, b2, reg, sample_weight, need_grad, check):
        n, d = X.shape
        hdim, k = W2.shape
        if not _fused(d, hdim, k):
            if need_grad:
                return super().net_loss_gradient(X, y, W1, b1, W2, b2, reg=reg,
                                                 sample_weight=sample_weight, check=check)
            return (super().net_loss(X, y, W1, b1, W2, b2, reg=reg,
                                     sample_weight=sample_weight, check=check),)
        if check:
            # One pass over the data before the kernel (which does not probe values):
            # a bad label must never reach it, whatever the caller does later.
            self._check_net(X, W1, b1, W2, b2, y, sample_weight)
        dtype = X.dtype
        W1, b1, W2, b2 = (np.ascontiguousarray(a, dtype=dtype) for a in (W1, b1, W2, b2))
        use_w = sample_weight is not None
        w = sample_weight if use_w else np.ones(1, dtype)
        kernel = (_net_loss_gradient_kernel if n > SERIAL_MAX_ROWS
                  else _net_loss_gradient_serial_kernel)
        acc = kernel(X, y, W1, b1, W2, b2, w, use_w, need_grad, _n_chunks(n))
        o_db1 = d * hdim
        o_dW2 = o_db1 + hdim
        o_db2 = o_dW2 + hdim * k
        o_loss = o_db2 + k
        wsum = acc[o_loss + 1]
        W1_64 = W1.astype(np.float64, copy=False)
        W2_64 = W2.astype(np.float64, copy=False)
        penalty = float(np.sum(W1_64 * W1_64)) + float(np.sum(W2_64 * W2_64))
        loss = np.asarray(acc[o_loss] / wsum + 0.5 * reg * penalty, dtype=dtype)
        if not need_grad:
            return (loss,)
        # dh and g carry c_i; dividing by sum(w) once here gives the (weighted) mean.
        dW1 = (acc[:o_db1].reshape(d, hdim) / wsum + reg * W1_64).astype(dtype)
        db1 = (acc[o_db1:o_dW2] / wsum).astype(dtype)
        dW2 = (acc[o_dW2:o_db2].reshape(hdim, k) / wsum + reg * W2_64).astype(dtype)
        db2 = (acc[o_db2:o_loss] / wsum).astype(dtype)
        return loss, dW1, db1, dW2, db2

    def net_active_counts(self, X, W1, b1):
        W1 = np.ascontiguousarray(W1, dtype=X.dtype)
        b1 = np.ascontiguousarray(b1, dtype=X.dtype)
        n = X.shape[0]
        kernel = (_net_active_counts_kernel if n > 8 * SERIAL_MAX_ROWS
                  else _net_active_counts_serial_kernel)  # ~50x less work a row than a step
        return kernel(X, W1, b1, _n_chunks(n))
