"""The ``numba`` backend: fused, parallel CPU kernels (NumPy in, NumPy out).

The hot path is ``loss_gradient``. Two regimes, picked by the size of ``W``:

* **narrow** (``D*K <= NARROW_MAX_DK``, the spiral's D=2, K=3): the cost is the
  exponentials. ``_loss_gradient_narrow_kernel`` streams ``X`` once in blocks of
  ``BLOCK`` rows, keeps everything of a block in small ``(K, BLOCK)`` buffers
  laid out *across rows*, so every inner loop runs over rows with unit stride
  and LLVM vectorises it (AVX2/AVX-512) -- including ``_exp``/``_log``, written
  here as inlined polynomials because libm's are scalar calls. No N x K array
  ever exists; extra memory is O(threads x BLOCK x (D*K + K)).
* **wide** (larger ``D*K``): the cost is the two matrix products, so the driver
  walks ``X`` in row tiles: ``S_tile = X_tile @ W`` (BLAS), a parallel row kernel
  turns the tile into ``dscores`` in place (stable softmax, loss, validation),
  then ``dW += X_tile.T @ dscores`` (BLAS). Extra memory is one tile.

Determinism: the narrow kernel splits the rows into a number of chunks that
depends on N only; each chunk sums into its own per-lane float64 accumulators
(one lane per row slot of a block, so no reassociation is needed to vectorise),
and the chunks are added in a fixed order. Results are bit-identical for any
thread count. The wide path's reductions are per-row and then NumPy sums.

Floating point: ``fastmath`` is limited to FMA contraction (``contract``). Not
``nnan``/``ninf`` (inf, NaN and masked ``-inf`` scores keep their meaning) and
not ``reassoc`` either: LLVM then folds ``(s + b) - (s + b)`` to 0, which blinds
the finiteness probe -- the narrow kernel vectorises its sums without it by
keeping them lane-wise.
float32 inputs compute in float32 (twice the SIMD width) and accumulate in
float64.

Value checks are fused: the kernels flag non-finite ``X``, labels outside
``[0, K)`` and bad weights while they compute; on a flag the generic
``check_values`` words the error. Kernels are compiled with ``cache=True``.
"""

from __future__ import annotations

import math

import array_api_compat.numpy as _npx
import numpy as np

from ._base import Backend, BackendUnavailableError
from ._reference import _penalty

BLOCK = 256  # rows per block in the narrow kernel: its buffers stay in L1/L2
MAX_CHUNKS = 256  # the narrow kernel's parallel work items (fixed -> deterministic)
MIN_CHUNK_ROWS = 4 * BLOCK
SERIAL_MAX_ROWS = 32_768  # below, one thread: a pool wake-up costs more than the rows
FLUSH_BLOCKS = 16  # blocks between flushes of the lane accumulators into float64
NARROW_MAX_DK = 2048  # measured crossover to the BLAS-tiled path (docs/benchmarks.md)
TILE_BYTES = 8 << 20  # the wide path's score tile (and its dscores twin): 8 MiB

try:  # Numba is a core dependency, but load() must still say why it cannot run.
    import numba
    from numba import njit, prange
    from numba.core import types
    from numba.extending import overload

    _IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - exercised only without numba
    _IMPORT_ERROR = exc


def load():
    if _IMPORT_ERROR is not None:
        raise BackendUnavailableError(
            f"Numba cannot be imported ({_IMPORT_ERROR}); install it with "
            "'pip install numba'")
    if numba.config.DISABLE_JIT:
        # The kernels would run as Python loops (thousands of times slower), and
        # the vectorised exp/log exist only as compiled overloads.
        raise BackendUnavailableError(
            "NUMBA_DISABLE_JIT is set, so Numba compiles nothing and the numba "
            "kernels cannot run; unset it (or pick backend='numpy')")
    import array_api_compat.numpy as xp

    return NumbaBackend("numba", xp, version=numba.__version__,
                        device=f"cpu ({numba.get_num_threads()} threads)")


if _IMPORT_ERROR is None:
    _CONTRACT = {"contract"}
    # error_model="numpy": no ZeroDivisionError branches, which stop vectorisation.
    _OPTIONS = {"cache": True, "nogil": True, "error_model": "numpy"}
    jit = njit(**_OPTIONS, fastmath=_CONTRACT)
    pjit = njit(**_OPTIONS, parallel=True, fastmath=_CONTRACT)

    # -- exp and log that LLVM can vectorise ------------------------------
    # Both are branch-free (selects only) so they inline into vector loops.
    # exp: x = n ln2 + r, |r| <= ln2/2 (Cody-Waite split of ln2), a Taylor
    # polynomial for exp(r) to below half an ulp, and 2^n built from exponent
    # bits in two halves so gradual underflow comes out right.
    # log: s = 2^e m with m in [sqrt(1/2), sqrt(2)), then log(m) = log1p(m - 1).
    # Accuracy is tested against np.exp/np.log in tests/test_numba.py.

    def _exp(x):  # pragma: no cover - replaced by the overload in jitted code
        raise NotImplementedError

    def _log(x):  # pragma: no cover
        raise NotImplementedError

    def _exp64(x):
        # NaN-safe clamps: a comparison with NaN is false, so NaN reaches the end.
        xs = x if x >= -1400.0 else -1400.0  # below ~-745 the result is 0 anyway
        xs = xs if xs <= 709.79 else 709.79  # n <= 1024: p * 2^512 * 2^512 is finite
        n = np.floor(xs * 1.4426950408889634 + 0.5)
        r = (xs - n * 6.93147180369123816490e-01) - n * 1.90821492927058770002e-10
        p = 1.6059043836821613e-10  # 1/13!: Taylor to degree 13, < 0.5 ulp on |r| <= ln2/2
        p = p * r + 2.08767569878681e-09
        p = p * r + 2.505210838544172e-08
        p = p * r + 2.755731922398589e-07
        p = p * r + 2.7557319223985893e-06
        p = p * r + 2.48015873015873e-05
        p = p * r + 1.984126984126984e-04
        p = p * r + 1.388888888888889e-03
        p = p * r + 8.333333333333333e-03
        p = p * r + 0.041666666666666664
        p = p * r + 0.16666666666666666
        p = p * r + 0.5
        p = p * r + 1.0
        p = p * r + 1.0
        ni = np.int64(n)
        h = ni >> 1  # 2^n = 2^h * 2^(n-h), both halves normal for n >= -2044
        s1 = np.int64((h + 1023) << 52).view(np.float64)
        s2 = np.int64((ni - h + 1023) << 52).view(np.float64)
        e = p * s1 * s2
        e = e if x <= 709.782712893384 else np.inf
        return e if x == x else x

    def _exp32(x):
        lo, hi = np.float32(-170.0), np.float32(88.73)
        xs = x if x >= lo else lo  # 2^n halves stay normal for n >= -252
        xs = xs if xs <= hi else hi
        n = np.floor(xs * np.float32(1.442695) + np.float32(0.5))
        r = (xs - n * np.float32(0.693359375)) - n * np.float32(-2.12194440e-4)
        p = np.float32(1.9841270e-4)  # 1/7!: Taylor to degree 7 for float32
        p = p * r + np.float32(1.3888889e-3)
        p = p * r + np.float32(8.3333333e-3)
        p = p * r + np.float32(4.1666668e-2)
        p = p * r + np.float32(0.16666667)
        p = p * r + np.float32(0.5)
        p = p * r + np.float32(1.0)
        p = p * r + np.float32(1.0)
        ni = np.int32(n)
        h = ni >> 1
        s1 = np.int32((h + 127) << 23).view(np.float32)
        s2 = np.int32((ni - h + 127) << 23).view(np.float32)
        e = p * s1 * s2
        e = e if x <= np.float32(88.72283) else np.float32(np.inf)
        return e if x == x else x

    def _log64(x):
        # For normal x > 0 and the special values 0, inf, NaN (sums of exps are
        # >= 1, 0 or inf, never subnormal).
        bits = np.float64(x).view(np.int64)
        e = np.float64((bits >> 52) - 1023)
        m = np.int64((bits & 0x000FFFFFFFFFFFFF) | 0x3FF0000000000000).view(np.float64)
        big = m > 1.4142135623730951
        m = m * 0.5 if big else m
        e = e + 1.0 if big else e
        # log(1 + f), f = m - 1 (exact), as in fdlibm: s = f / (2 + f), a minimax
        # polynomial R in s^2, and the final sum ordered to keep the error < 1 ulp.
        f = m - 1.0
        sf = f / (2.0 + f)
        z = sf * sf
        R = 1.479819860511658591e-01
        R = R * z + 1.531383769920937332e-01
        R = R * z + 1.818357216161805012e-01
        R = R * z + 2.222219843214978396e-01
        R = R * z + 2.857142874366239149e-01
        R = R * z + 3.999999999940941908e-01
        R = R * z + 6.666666666666735130e-01
        R = R * z
        hfsq = 0.5 * f * f
        out = e * 6.93147180369123816490e-01 - (
            (hfsq - (sf * (hfsq + R) + e * 1.90821492927058770002e-10)) - f)
        out = out if x > 0.0 else -np.inf
        out = out if x < np.inf else np.inf
        return out if x == x else x

    def _log32(x):
        bits = np.float32(x).view(np.int32)
        e = np.float32((bits >> 23) - 127)
        m = np.int32((bits & 0x007FFFFF) | 0x3F800000).view(np.float32)
        big = m > np.float32(1.4142135)
        m = m * np.float32(0.5) if big else m
        e = e + np.float32(1.0) if big else e
        f = m - np.float32(1.0)
        sf = f / (np.float32(2.0) + f)
        z = sf * sf
        R = np.float32(0.24279079)  # float32 minimax coefficients (as fdlibm's logf)
        R = R * z + np.float32(0.28498787)
        R = R * z + np.float32(0.40000972)
        R = R * z + np.float32(0.6666666)
        R = R * z
        hfsq = np.float32(0.5) * f * f
        out = e * np.float32(6.9313812256e-01) - (
            (hfsq - (sf * (hfsq + R) + e * np.float32(9.0580006145e-06))) - f)
        out = out if x > np.float32(0.0) else np.float32(-np.inf)
        out = out if x < np.float32(np.inf) else np.float32(np.inf)
        return out if x == x else x

    @overload(_exp, jit_options={"fastmath": _CONTRACT, "error_model": "numpy"})
    def _exp_impl(x):
        if x == types.float64:
            return _exp64
        if x == types.float32:
            return _exp32
        return None

    @overload(_log, jit_options={"fastmath": _CONTRACT, "error_model": "numpy"})
    def _log_impl(x):
        if x == types.float64:
            return _log64
        if x == types.float32:
            return _log32
        return None

    # -- the narrow fused kernel: one pass over X, no N x K array -------------
    @jit
    def _flush_lanes(acc, acc_loss, acc_w, total):
        """Add the lane accumulators into the float64 ``total`` and zero them."""
        n_grad, lanes = acc.shape
        for a in range(n_grad):
            t = 0.0
            for r in range(lanes):
                t += np.float64(acc[a, r])
                acc[a, r] = 0
            total[a] += t
        t_loss = 0.0
        t_w = 0.0
        for r in range(lanes):
            t_loss += np.float64(acc_loss[r])
            t_w += np.float64(acc_w[r])
            acc_loss[r] = 0
            acc_w[r] = 0
        total[n_grad] += t_loss
        total[n_grad + 1] += t_w

    @jit
    def _narrow_chunk(X, y, W, b, w, use_w, wscale, need_grad, c, per_chunk, partial,
                      suspects):
        """Chunk ``c`` (rows ``c*per_chunk`` on) of the narrow kernel, into
        ``partial[c]`` and ``suspects[c]``."""
        n, d = X.shape
        k = W.shape[1]
        dk = d * k
        n_acc = dk + k + 2
        lo = c * per_chunk
        hi = min(n, lo + per_chunk)
        zero = X.dtype.type(0)
        one = X.dtype.type(1)
        inf = X.dtype.type(np.inf)
        nan = X.dtype.type(np.nan)
        # Block buffers, laid out (feature or class, row): inner loops run over rows.
        xt = np.empty((d, BLOCK), X.dtype)
        s = np.empty((k, BLOCK), X.dtype)
        mx = np.empty(BLOCK, X.dtype)
        tot = np.empty(BLOCK, X.dtype)
        tie = np.empty(BLOCK, X.dtype)
        zy = np.empty(BLOCK, X.dtype)
        cw = np.empty(BLOCK, X.dtype)
        yl = np.empty(BLOCK, np.int64)
        # One accumulator per (output, row slot): sums stay lane-wise, so they
        # vectorise without reassociation and are deterministic. They are in the
        # input dtype (float32 keeps its SIMD width) and are flushed into float64
        # every FLUSH_BLOCKS blocks: a float32 lane never sums more terms.
        acc = np.zeros((dk + k, BLOCK), X.dtype)
        acc_loss = np.zeros(BLOCK, X.dtype)
        acc_w = np.zeros(BLOCK, X.dtype)
        total = np.zeros(n_acc, np.float64)
        since_flush = 0
        lt = np.empty(BLOCK, X.dtype)
        probe = np.zeros(BLOCK, X.dtype)  # += v - v: NaN iff some v is inf/NaN
        bad = np.zeros(BLOCK, np.int64)
        for i0 in range(lo, hi, BLOCK):
            m = min(BLOCK, hi - i0)
            for t in range(d):
                for r in range(m):
                    v = X[i0 + r, t]
                    xt[t, r] = v
                    probe[r] += v - v
            for r in range(m):
                lab = np.int64(y[i0 + r])
                yl[r] = lab
                bad[r] |= np.int64(lab < 0) | np.int64(lab >= k)
            if use_w:
                for r in range(m):
                    v = w[i0 + r]
                    # w_i / sum(w), formed in float64: subnormal or huge float32
                    # weights keep their ratios (as the reference's float64 sum).
                    cw[r] = np.float64(v) * wscale
                    probe[r] += v - v
                    bad[r] |= np.int64(v < 0)
            else:
                for r in range(m):
                    cw[r] = one
            for j in range(k):
                bj = b[j]
                for r in range(m):
                    s[j, r] = bj
            for t in range(d):
                for j in range(k):
                    wtj = W[t, j]
                    for r in range(m):
                        s[j, r] += xt[t, r] * wtj
            for r in range(m):
                mx[r] = s[0, r]
            for j in range(1, k):
                for r in range(m):
                    v = s[j, r]
                    mx[r] = v if v > mx[r] else mx[r]
            for r in range(m):
                v = mx[r]
                mx[r] = v if v - v == 0 else zero  # overflowed scores: shift by 0
                tot[r] = zero
                tie[r] = zero
                zy[r] = zero
            # tot: the exps of all but the maximal entries (exp == 1); tie: how
            # many are maximal. lse - m = log1p(tot + tie - 1) keeps the relative
            # accuracy of a tiny loss (a confident, correct row).
            for j in range(k):
                for r in range(m):
                    z = s[j, r] - mx[r]
                    e = _exp(z)
                    s[j, r] = e
                    top = e == one
                    tot[r] += zero if top else e
                    tie[r] += one if top else zero
                    zy[r] = z if yl[r] == j else zy[r]
            for r in range(m):
                u = tot[r] + tie[r]
                iu = one / u
                lu = _log(u)
                fix = (tot[r] + (tie[r] - one) - (u - one)) * iu  # log1p's correction
                lt[r] = lu + fix if (u > zero and u < inf) else lu
                # 1/sum for the gradient; NaN where a score is +inf (softmax is NaN).
                tot[r] = iu if u < inf else nan
            for r in range(m):
                acc_loss[r] += cw[r] * (lt[r] - zy[r])
                acc_w[r] += cw[r]
            if need_grad:
                for r in range(m):
                    tot[r] = cw[r] * tot[r]
                for j in range(k):
                    for r in range(m):
                        g = s[j, r] * tot[r] - (cw[r] if yl[r] == j else zero)
                        s[j, r] = g
                        acc[dk + j, r] += g
                for t in range(d):
                    for j in range(k):
                        a = t * k + j
                        for r in range(m):
                            acc[a, r] += xt[t, r] * s[j, r]
            since_flush += 1
            if since_flush == FLUSH_BLOCKS or i0 + BLOCK >= hi:
                _flush_lanes(acc, acc_loss, acc_w, total)
                since_flush = 0
        for a in range(n_acc):
            partial[c, a] = total[a]
        flag = 0
        for r in range(BLOCK):
            flag |= bad[r] | np.int64(probe[r] != probe[r])
        suspects[c] = flag

    @jit
    def _narrow_outputs(X, W, n_chunks):
        """Per-chunk partial sums and flags, and the rows per chunk."""
        n_acc = X.shape[1] * W.shape[1] + W.shape[1] + 2
        per_chunk = (X.shape[0] + n_chunks - 1) // n_chunks
        return (np.zeros((n_chunks, n_acc), np.float64), np.zeros(n_chunks, np.int64),
                per_chunk)

    @jit
    def _narrow_sum(partial, suspects):
        """The chunks' partial sums, added in chunk order: deterministic."""
        n_chunks, n_acc = partial.shape
        out = np.zeros(n_acc, np.float64)
        suspect = 0
        for c in range(n_chunks):
            suspect |= suspects[c]
            for a in range(n_acc):
                out[a] += partial[c, a]
        return out, suspect

    @pjit
    def _loss_gradient_narrow_kernel(X, y, W, b, w, use_w, wscale, need_grad, n_chunks):
        """Unnormalised sums over rows, in float64, and a suspicion flag.

        Returns ``(acc, suspect)``: ``acc[:D*K]`` is ``sum_i c_i x_i (p_i - e_yi)``
        (row-major D x K), ``acc[D*K:D*K+K]`` is ``sum_i c_i (p_i - e_yi)``, then
        ``sum_i c_i l_i`` and ``sum_i c_i`` with ``c_i = w_i * wscale`` (1
        unweighted). ``suspect`` is non-zero when some ``X``/``w`` is not finite,
        a label is outside ``[0, K)`` or a weight is negative.
        """
        partial, suspects, per_chunk = _narrow_outputs(X, W, n_chunks)
        for c in prange(n_chunks):
            _narrow_chunk(X, y, W, b, w, use_w, wscale, need_grad, c, per_chunk, partial,
                          suspects)
        return _narrow_sum(partial, suspects)

    @jit
    def _loss_gradient_narrow_serial_kernel(X, y, W, b, w, use_w, wscale, need_grad,
                                            n_chunks):
        """The same chunks in one thread, for small N: waking a thread pool costs
        more than the work. Bit-identical to the parallel kernel."""
        partial, suspects, per_chunk = _narrow_outputs(X, W, n_chunks)
        for c in range(n_chunks):
            _narrow_chunk(X, y, W, b, w, use_w, wscale, need_grad, c, per_chunk, partial,
                          suspects)
        return _narrow_sum(partial, suspects)

    # -- row kernels: one row of K scores at a time ---------------------------
    # Without reassociation a sum or max along a row cannot be vectorised (and
    # reassociation is off limits: it folds the ``v - v`` finiteness probe to 0),
    # so each row does its exps in one vectorised elementwise loop into a
    # buffer, and the scalar sum in a second loop.
    ROWS_PER_TASK = 64

    @jit
    def _row_max(S, b, i):
        """Max of ``S[i] + b`` (NaN only when ``S[i, 0]`` is), and a NaN probe."""
        zero = S.dtype.type(0)
        mx = S[i, 0] + b[0]
        probe = zero
        for j in range(S.shape[1]):
            v = S[i, j] + b[j]
            probe += v - v
            mx = v if v > mx else mx
        return mx, probe

    @jit
    def _row_shift(S, b, i):
        """Max of ``S[i] + b``, or 0 when not finite; and a NaN probe of the row."""
        mx, probe = _row_max(S, b, i)
        return (mx if mx - mx == 0 else S.dtype.type(0)), probe

    @jit
    def _row_exp(S, b, i, mx, out):
        """``out[:] = exp(S[i] + b - mx)`` (vectorised). Returns ``(rest, total)``:
        the sum over all entries but one maximal one (``exp == 1``), and over all."""
        k = S.shape[1]
        for j in range(k):
            out[j] = _exp(S[i, j] + b[j] - mx)
        zero = S.dtype.type(0)
        one = S.dtype.type(1)
        tot = zero
        tie = zero
        for j in range(k):
            e = out[j]
            top = e == one
            tot += zero if top else e
            tie += one if top else zero
        return tot + (tie - one), tot + tie

    @jit
    def _log1p_sum(rest, u, one):
        """``log1p(rest)`` from ``u``, a sum equal to ``1 + rest`` up to rounding
        (``u - 1`` is exact): ``log(u)`` plus the first-order correction, as fdlibm's
        log1p. ``u`` is 0 (fully masked), ``inf`` or NaN in the special rows."""
        lu = _log(u)
        fix = (rest - (u - one)) / u
        return lu + fix if (u > 0 and u < np.inf) else lu

    @pjit
    def _softmax_rows_kernel(S, out, log):
        """``out[i] = softmax(S[i])`` (or ``log_softmax`` when ``log``), per row.

        softmax shifts by the raw maximum: a row without a finite one (``+inf``
        present, all ``-inf``) or holding NaN becomes all NaN, as SciPy's."""
        n, k = S.shape
        b = np.zeros(k, S.dtype)
        one = S.dtype.type(1)
        for i in prange(n):
            if log:
                mx, _ = _row_shift(S, b, i)
                rest, u = _row_exp(S, b, i, mx, out[i])
                lt = _log1p_sum(rest, u, one)
                for j in range(k):
                    out[i, j] = (S[i, j] - mx) - lt
            else:
                mx, _ = _row_max(S, b, i)
                rest, u = _row_exp(S, b, i, mx, out[i])
                inv = one / u
                for j in range(k):
                    out[i, j] *= inv

    @pjit
    def _logsumexp_rows_kernel(S, out):
        n, k = S.shape
        b = np.zeros(k, S.dtype)
        one = S.dtype.type(1)
        n_tasks = (n + ROWS_PER_TASK - 1) // ROWS_PER_TASK
        for t in prange(n_tasks):
            scratch = np.empty(k, S.dtype)
            for i in range(t * ROWS_PER_TASK, min(n, (t + 1) * ROWS_PER_TASK)):
                mx, _ = _row_shift(S, b, i)
                rest, u = _row_exp(S, b, i, mx, scratch)
                out[i] = mx + _log1p_sum(rest, u, one)

    @jit
    def _cross_entropy_rows(S, b, y, w, use_w, scale, probe_scores, need_grad, dS,
                            rowloss, suspect, lo, hi, scratch):
        """Rows ``lo:hi`` of scores ``s_i = S[i] + b``: ``rowloss[i] = c_i (lse_i -
        s_iy)`` and, if ``need_grad``, ``dS[i] = c_i (softmax(s_i) - e_yi)``, with
        ``c_i = scale * w_i`` (``scale`` unweighted). ``S`` is only read.
        ``suspect[i]`` flags a label outside ``[0, K)``, a negative or non-finite
        weight and, with ``probe_scores``, a non-finite score."""
        k = S.shape[1]
        one = S.dtype.type(1)
        for i in range(lo, hi):
            lab = np.int64(y[i])
            wi = w[i] if use_w else one
            c = scale * wi
            flag = (np.int64(lab < 0) | np.int64(lab >= k) | np.int64(wi < 0)
                    | np.int64(wi - wi != 0))
            mx, probe = _row_shift(S, b, i)
            zy = S[i, lab] + b[lab] - mx if flag == 0 else S.dtype.type(0)
            e = dS[i] if need_grad else scratch
            rest, u = _row_exp(S, b, i, mx, e)
            rowloss[i] = c * (_log1p_sum(rest, u, one) - zy)
            suspect[i] = flag | (np.int64(probe != probe) if probe_scores else 0)
            if need_grad:
                # softmax is NaN on a row holding +inf (u = inf), as the reference's.
                inv = c / u if u < np.inf else S.dtype.type(np.nan)
                for j in range(k):
                    e[j] *= inv
                if flag == 0:
                    e[lab] -= c

    @pjit
    def _cross_entropy_rows_kernel(S, b, y, w, use_w, scale, probe_scores, need_grad, dS,
                                   rowloss, suspect):
        """``_cross_entropy_rows`` over all rows, in parallel groups of rows."""
        n, k = S.shape
        n_tasks = (n + ROWS_PER_TASK - 1) // ROWS_PER_TASK
        for t in prange(n_tasks):
            _cross_entropy_rows(S, b, y, w, use_w, scale, probe_scores, need_grad, dS,
                                rowloss, suspect, t * ROWS_PER_TASK,
                                min(n, (t + 1) * ROWS_PER_TASK), np.empty(k, S.dtype))

    @jit
    def _cross_entropy_tile_kernel(S, b, y, w, use_w, need_grad, dS, rowloss, suspect):
        """The wide path's tile: serial on purpose. It alternates with BLAS calls,
        and Numba's spinning worker threads then starve OpenBLAS's on a small
        machine (measured: 5x slower than serial; docs/backends.md)."""
        n, k = S.shape
        _cross_entropy_rows(S, b, y, w, use_w, S.dtype.type(1.0), True, need_grad, dS,
                            rowloss, suspect, 0, n, np.empty(k, S.dtype))

def _as_rows(S, axis):
    """``S`` as a C-contiguous (M, K) array with ``axis`` last, and how to undo it."""
    moved = np.moveaxis(S, axis, -1)
    shape = moved.shape
    rows = np.ascontiguousarray(moved).reshape(-1, shape[-1])

    def restore(out):
        return np.moveaxis(out.reshape(shape[:-1] + out.shape[1:]), -1, axis) \
            if out.ndim == 2 else out.reshape(shape[:-1])

    return rows, restore


def _regime(d, k):
    """``"narrow"`` (fused streaming kernel) or ``"wide"`` (BLAS tiles) for D x K."""
    return "narrow" if d * k <= NARROW_MAX_DK else "wide"


def _n_chunks(n):
    return int(min(MAX_CHUNKS, max(1, -(-n // MIN_CHUNK_ROWS))))


class NumbaBackend(Backend):
    """NumPy arrays in and out; the ops below run jitted kernels."""

    # -- the softmax family ------------------------------------------------
    def softmax(self, S, axis=-1):
        rows, restore = _as_rows(S, axis)
        out = np.empty_like(rows)
        _softmax_rows_kernel(rows, out, False)
        return restore(out)

    def log_softmax(self, S, axis=-1):
        rows, restore = _as_rows(S, axis)
        out = np.empty_like(rows)
        _softmax_rows_kernel(rows, out, True)
        return restore(out)

    def logsumexp(self, S, axis=-1):
        rows, restore = _as_rows(S, axis)
        out = np.empty(rows.shape[0], rows.dtype)
        _logsumexp_rows_kernel(rows, out)
        return restore(out)

    # -- cross-entropy from scores ------------------------------------------
    def _cross_entropy(self, S, y, reduction, sample_weight, need_grad, check):
        S = np.ascontiguousarray(S)
        n, k = S.shape
        labels = _kernel_labels(y)
        use_w = sample_weight is not None
        if use_w:
            total = float(np.sum(sample_weight, dtype=np.float64))
            if check and not total > 0:  # NaN, or no positive weight: say which
                self.check_values(y=y, n_classes=k, sample_weight=sample_weight)
        scale = S.dtype.type(1.0)
        if not use_w:
            w = np.ones(1, S.dtype)
            if reduction == "mean":
                scale = S.dtype.type(1.0 / n)
        elif reduction == "mean":
            # w_i / sum(w) in float64, as the reference: the weights' scale is free.
            with np.errstate(invalid="ignore", divide="ignore"):
                w = (sample_weight.astype(np.float64) / total).astype(S.dtype)
        else:
            w = sample_weight
        rowloss = np.empty(n, S.dtype)
        suspect = np.empty(n, np.int8)
        dS = np.empty_like(S) if need_grad else np.empty((0, k), S.dtype)
        _cross_entropy_rows_kernel(S, np.zeros(k, S.dtype), labels, w, use_w, scale, False,
                                   need_grad, dS, rowloss, suspect)
        if check and suspect.any():
            self.check_values(y=y, n_classes=k, sample_weight=sample_weight)
        loss = rowloss if reduction == "none" else np.asarray(
            np.sum(rowloss, dtype=np.float64), dtype=S.dtype)
        return loss, (dS if need_grad else None)

    def cross_entropy(self, S, y, *, reduction="mean", sample_weight=None, check=True):
        return self._cross_entropy(S, y, reduction, sample_weight, False, check)[0]

    def cross_entropy_gradient(self, S, y, *, reduction="mean", sample_weight=None,
                               check=True):
        return self._cross_entropy(S, y, reduction, sample_weight, True, check)

    # -- the linear model: fused ---------------------------------------------
    def loss(self, X, y, W, b, *, reg=0.0, sample_weight=None, check=True):
        return self._loss_gradient(X, y, W, b, reg, sample_weight, False, check)[0]

    def loss_gradient(self, X, y, W, b, *, reg=0.0, sample_weight=None, check=True):
        return self._loss_gradient(X, y, W, b, reg, sample_weight, True, check)

    def _loss_gradient(self, X, y, W, b, reg, sample_weight, need_grad, check):
        if check:
            self.check_values(W=W, b=b)
        k = W.shape[1]
        wscale = 1.0
        if sample_weight is not None:
            total = float(np.sum(sample_weight, dtype=np.float64))
            if check and not total > 0:
                self.check_values(sample_weight=sample_weight)
            wscale = 1.0 / total if total > 0 else np.nan
        loss_sum, dW_sum, db_sum, wsum, suspect = _sums(
            X, _kernel_labels(y), W, b, sample_weight, wscale, need_grad, check)
        if check and (suspect or not wsum > 0):
            # The kernel saw something wrong; the generic check says what (and raises).
            self.check_values(X=X, y=y, n_classes=k, sample_weight=sample_weight)
        W64 = W.astype(np.float64, copy=False)
        loss = np.asarray(loss_sum / wsum + float(_penalty(W64, reg, _npx)), dtype=X.dtype)
        if not need_grad:
            return (loss,)
        dW = (dW_sum / wsum + reg * W64).astype(X.dtype)
        db = (db_sum / wsum).astype(X.dtype)
        return loss, dW, db

    def loss_gradient_sums(self, X, y, W, b, *, sample_weight=None, need_grad=True,
                           stop_on_suspect=False):
        """The unnormalised float64 sums of one pass over a block of rows.

        For the ``dask`` backend, which adds the blocks' sums in a tree and
        divides once: ``(loss_sum, dW_sum, db_sum, weight_sum, suspect)`` with
        ``loss_sum = sum_i w_i l_i``, ``dW_sum = X.T @ G``, ``db_sum = sum_i G_i``
        for ``G_i = w_i (p_i - onehot(y_i))``, ``weight_sum = sum_i w_i`` (N
        unweighted), and ``suspect`` true when the kernel saw a value to check
        (non-finite ``X``/weights, a label outside ``[0, K)``, a negative weight).
        No value is checked here and ``reg`` is not applied.

        The kernels see the weights scaled by a power of two that brings the
        largest into ``[0.5, 1)`` -- exact, and undone exactly on the sums -- so
        huge or subnormal weights neither overflow nor lose digits in the
        kernels' input-dtype lanes (as ``w_i / sum(w)`` serves the one-process ops).
        """
        wscale = 1.0
        if sample_weight is not None and sample_weight.size:
            top = float(np.max(sample_weight))
            if math.isfinite(top) and top > 0:
                wscale = math.ldexp(1.0, -min(max(math.frexp(top)[1], -1000), 1000))
        loss_sum, dW_sum, db_sum, wsum, suspect = _sums(
            X, _kernel_labels(y), W, b, sample_weight, wscale, need_grad, stop_on_suspect)
        undo = 1.0 / wscale
        return loss_sum * undo, dW_sum * undo, db_sum * undo, wsum * undo, suspect


def _sums(X, labels, W, b, sample_weight, wscale, need_grad, stop_on_suspect):
    """One fused pass: ``(loss_sum, dW_sum, db_sum, weight_sum, suspect)``, float64
    sums over the rows with row weights ``c_i = w_i * wscale`` (1 unweighted)."""
    n, d = X.shape
    k = W.shape[1]
    W = np.ascontiguousarray(W)
    use_w = sample_weight is not None
    w = sample_weight if use_w else np.ones(1, X.dtype)
    if _regime(d, k) == "narrow":
        kernel = (_loss_gradient_narrow_kernel if n > SERIAL_MAX_ROWS
                  else _loss_gradient_narrow_serial_kernel)
        acc, suspect = kernel(X, labels, W, b, w, use_w, wscale, need_grad, _n_chunks(n))
        return (float(acc[d * k + k]), acc[:d * k].reshape(d, k), acc[d * k:d * k + k],
                float(acc[d * k + k + 1]), bool(suspect))
    dW_sum, db_sum, loss_sum, wsum, suspect = _loss_gradient_tiled(
        X, labels, W, b, w, use_w, wscale, need_grad, stop_on_suspect=stop_on_suspect)
    return float(loss_sum), dW_sum, db_sum, float(wsum), bool(suspect)


def _kernel_labels(y):
    """Labels as the kernels take them: int32 and int64 as they are, every other
    integer dtype as int64 (one compiled specialisation per dtype costs seconds;
    uint64 labels >= 2**63 wrap to negative ones, which are out of range too)."""
    if y.dtype in (np.int32, np.int64):
        return y
    return y.astype(np.int64)


def _loss_gradient_tiled(X, y, W, b, w, use_w, wscale, need_grad, stop_on_suspect=False):
    """The wide regime: BLAS for the two products, a row kernel in between.

    Walks ``X`` in tiles of rows sized so one score tile is ``TILE_BYTES``;
    extra memory is that tile and its ``dscores`` twin, whatever N is.
    Returns unnormalised float64 sums as the narrow kernel does.
    """
    n, d = X.shape
    k = W.shape[1]
    dtype = X.dtype
    tile = int(max(64, min(n, TILE_BYTES // (k * dtype.itemsize))))
    scores = np.empty((tile, k), dtype)
    dscores = np.empty((tile, k), dtype)  # not in place: aliasing would stop vectorisation
    rowloss = np.empty(tile, dtype)
    suspect = np.empty(tile, np.int8)
    dW = np.zeros((d, k), np.float64)
    db = np.zeros(k, np.float64)
    loss = 0.0
    wsum = 0.0 if use_w else float(n)
    flagged = False
    b = b.astype(dtype, copy=False)
    for i0 in range(0, n, tile):
        i1 = min(n, i0 + tile)
        m = i1 - i0
        Xt, St, Gt = X[i0:i1], scores[:m], dscores[:m]
        np.matmul(Xt, W, out=St)
        wt = w
        if use_w:  # w_i / sum(w), formed in float64 as the narrow kernel does
            with np.errstate(invalid="ignore"):
                wt = (w[i0:i1].astype(np.float64) * wscale).astype(dtype)
            wsum += float(np.sum(wt, dtype=np.float64))
        _cross_entropy_tile_kernel(St, b, y[i0:i1], wt, use_w, need_grad, Gt, rowloss,
                                   suspect)
        loss += float(np.sum(rowloss[:m], dtype=np.float64))
        if suspect[:m].any():
            flagged = True
            if stop_on_suspect:  # the caller will raise; don't multiply NaNs further
                break
        if need_grad:
            dW += Xt.T @ Gt
            db += np.sum(Gt, axis=0, dtype=np.float64)
    return dW, db, loss, wsum, int(flagged)
