"""The ``dask`` backend: Dask arrays chunked along the rows, each block on the
fastest local kernel, the blocks' partial sums added in a tree.

How an op runs
--------------
``X (N, D)``, ``y (N,)`` and ``sample_weight (N,)`` are Dask arrays split into
blocks of whole rows (a chunking across the columns of ``X`` or ``S`` is
rechunked to one column block: the kernels need whole rows, and ``D``/``K`` are
small). Every block is handed to the fastest backend for its own array type --
``numba`` for NumPy blocks, ``cupy`` for CuPy blocks -- inside the task, on the
worker that holds the block.

* **Reductions** (``loss``, ``loss_gradient``, ``cross_entropy`` with
  ``"mean"``/``"sum"``): each block returns its *unnormalised* float64 sums
  ``(sum_i w_i l_i, sum_i w_i, X_b.T @ G_b, sum_i G_i)`` with
  ``G_i = w_i (p_i - onehot(y_i))`` -- the Numba kernel's own float64
  accumulators, never a mean multiplied back by a count, so nothing is rounded
  to the input dtype before the end. Dask's tree reduction
  (``dask.array.sum``, fan-in ``TREE_BYTES`` of partials) adds the blocks'
  rows in a fixed grouping and order, whatever order the workers finish in; the
  division by the weight sum and ``reg`` are applied once, on the client.
  Same data and same chunks therefore give the same bits, run after run and on
  any number of workers. These ops **compute** and return host NumPy: a 0-d
  array for a loss, ``(D, K)`` and ``(K,)`` arrays for ``dW`` and ``db`` -- the
  small parameters live on the client and are sent to the workers with the
  next task graph.
* **Row-wise ops** (``scores``, ``softmax``/``log_softmax``/``logsumexp`` over
  the last axis, ``cross_entropy(reduction="none")``, the ``dscores`` of
  ``cross_entropy_gradient``) stay **lazy** Dask arrays with ``X``'s row blocks.

Validation happens in the blocks, with the same wording as in one process: a
bad label in the seventh block raises the same ``ValueError`` when that block
runs (on the client, re-raised by the scheduler). The one global check, that
the weights have a positive sum, is made on the client after the reduction.
``W`` and ``b`` are checked on the client.

NumPy input given to this backend is split into blocks of at most
``CHUNK_ROWS`` rows, and into at least as many blocks as the connected cluster
has worker threads.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from .. import _validate
from ._base import Backend, BackendUnavailableError, to_numpy
from ._reference import _penalty

CHUNK_ROWS = 1 << 20  # rows per block when NumPy input is split (8 MiB of X per feature)
TREE_BYTES = 4 << 20  # partial sums one combine task of the tree adds (its fan-in)
BROADCAST_INLINE = 64 << 10  # W or b up to this size travel inside every block's task

try:  # dask is an optional extra; load() says how to get it
    import dask
    import dask.array as da

    _IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - exercised only without dask
    _IMPORT_ERROR = exc


def load():
    if _IMPORT_ERROR is not None:
        raise BackendUnavailableError(
            f"Dask cannot be imported ({_IMPORT_ERROR}); install it with "
            "'pip install \"fastsoftmax[dask]\"'")
    import array_api_compat.dask.array as xp

    return DaskBackend("dask", xp, version=dask.__version__,
                       device="cpu: NumPy row blocks on the Dask scheduler in use")


# -- helpers that run inside the tasks (module level: workers import them) ----
def _quiet(task):
    """Run a task with NumPy's floating-point warnings off.

    A task runs in a scheduler thread or a worker process, where the caller's
    ``np.errstate`` and warning filters do not reach; an overflow there would
    print NumPy's warning on a console the caller cannot silence. The values
    say it all (inf/NaN in the result, as the fused kernels return without a
    warning), and the caller's checks turn them into the one clear error.
    """
    @functools.wraps(task)
    def quiet(*args, **kwargs):
        with np.errstate(all="ignore"):
            return task(*args, **kwargs)
    return quiet


def _quiet_sum(x, axis=None, keepdims=False, dtype=None, **kwargs):
    """``np.sum`` in a task, without warnings (the tree reduction's every level)."""
    with np.errstate(all="ignore"):
        return np.sum(x, axis=axis, keepdims=keepdims, dtype=dtype)


def _sum_rows(a, split_every=None):
    """Dask's tree reduction of ``a`` over its first axis, as ``da.sum`` builds it
    (same grouping, same order, same bits), with quiet tasks."""
    return da.reduction(a, _quiet_sum, _quiet_sum, axis=0, dtype=np.float64,
                        split_every=split_every, concatenate=True)


def _block_backend(block):
    """The fastest local backend for a block's array type: ``numba`` for NumPy
    (``numpy`` where Numba is unavailable), never ``"auto"``'s first-use rule,
    which depends on what the process ran before -- every worker and the client
    must pick the same kernel, or the same data would not give the same bits."""
    from . import get_backend

    if isinstance(block, np.ndarray):
        try:
            return get_backend("numba")
        except BackendUnavailableError:
            return get_backend("numpy")
    return get_backend("auto", like=block)


def _check_block(be, *, X=None, y=None, n_classes=None, w=None):
    """One block's value checks, worded exactly as in one process.

    The weights' positive *sum* is a property of the whole data set (a block of
    zero weights is fine), so it is left to the client; everything else is
    checked here, and ``check_values`` words the error once a weight is bad.
    """
    if X is not None or y is not None:
        be.check_values(X=X, y=y, n_classes=n_classes)
    if w is not None and not _good_weights(be.xp, w):
        be.check_values(sample_weight=w)


def _good_weights(xp, w):
    return bool(xp.all(xp.isfinite(w))) and bool(xp.all(w >= 0))


def _sums_generic(be, X, y, W, b, w, need_grad):
    """Float64 block sums through the backend's own ops (NumPy, CuPy, others):
    the rows' unweighted losses and ``dscores``, weighted and summed in float64
    (a huge or subnormal float32 weight is then as good as any other)."""
    xp = be.xp
    S = be.scores(X, W, b, check=False)
    rows, dscores = be.cross_entropy_gradient(S, y, reduction="none", check=False)
    w64 = xp.astype(w, xp.float64) if w is not None else xp.ones(X.shape[0], dtype=xp.float64)
    loss_sum, wsum = float(xp.sum(w64 * xp.astype(rows, xp.float64))), float(xp.sum(w64))
    if not need_grad:
        return loss_sum, None, None, wsum
    G = xp.astype(dscores, xp.float64) * w64[:, None]
    return loss_sum, to_numpy(xp.astype(X, xp.float64).T @ G), to_numpy(xp.sum(G, axis=0)), wsum


@_quiet
def _loss_block(X, y, W, b, w=None, *, need_grad, check):
    """One row block's partial sums as a ``(1, P)`` float64 row:
    ``[sum w_i l_i, sum w_i, dW_sum (D*K, row-major), db_sum (K)]``."""
    n, d = X.shape
    k = W.shape[1]
    out = np.zeros((1, 2 + (d * k + k if need_grad else 0)), np.float64)
    if n == 0:
        return out
    be = _block_backend(X)
    W, b = be.asarray(W), be.asarray(b)
    if hasattr(be, "loss_gradient_sums"):  # the fused kernel: one pass, float64 sums
        loss_sum, dW, db, wsum, suspect = be.loss_gradient_sums(
            X, y, W, b, sample_weight=w, need_grad=need_grad, stop_on_suspect=check)
        # The kernel flags what it saw; the weights are checked here as well (a
        # pass over one vector), so no kernel's blind spot lets a bad one through.
        if check and (suspect or (w is not None and not _good_weights(be.xp, w))):
            _check_block(be, X=X, y=y, n_classes=k, w=w)
    else:
        if check:
            _check_block(be, X=X, y=y, n_classes=k, w=w)
        loss_sum, dW, db, wsum = _sums_generic(be, X, y, W, b, w, need_grad)
    out[0, 0], out[0, 1] = loss_sum, wsum
    if need_grad:
        out[0, 2:2 + d * k] = np.asarray(dW).ravel()
        out[0, 2 + d * k:] = db
    return out


@_quiet
def _ce_block(S, y, w=None, *, check):
    """One block's ``[sum w_i l_i, sum w_i]`` of the cross-entropy from scores."""
    n = S.shape[0]
    out = np.zeros((1, 2), np.float64)
    if n == 0:
        return out
    be = _block_backend(S)
    if check:
        _check_block(be, y=y, n_classes=S.shape[1], w=w)
    if w is None:
        out[0, 0] = float(be.cross_entropy(S, y, reduction="sum", check=False))
        out[0, 1] = n
        return out
    # w_i l_i summed in float64: a float32 sum of huge weights would overflow,
    # of subnormal ones lose its digits (the one-process ops normalise first).
    xp = be.xp
    rows = xp.astype(be.cross_entropy(S, y, reduction="none", check=False), xp.float64)
    w64 = xp.astype(w, xp.float64)
    out[0, 0] = float(xp.sum(w64 * rows))
    out[0, 1] = float(xp.sum(w64))
    return out


@_quiet
def _ce_rows_block(S, y, w=None, *, scale, need_grad, check):
    """One block's ``w_i l_i`` (``need_grad=False``) or ``dscores`` (True)."""
    be = _block_backend(S)
    if S.shape[0] == 0:
        return be.xp.zeros(S.shape if need_grad else (0,), dtype=S.dtype)
    if check:
        _check_block(be, y=y, n_classes=S.shape[1], w=w)
    if not need_grad:
        return be.cross_entropy(S, y, reduction="none", sample_weight=w, check=False)
    # "mean" scales every row by 1/sum(w); folding the scale into the weights
    # gives the very products the one-process kernels form (c_i = w_i * scale).
    if scale != 1.0:  # formed in float64, as the one-process kernels do
        xp = be.xp
        w = (xp.full((S.shape[0],), S.dtype.type(scale), dtype=S.dtype) if w is None
             else xp.astype(xp.astype(w, xp.float64) * scale, S.dtype))
    return be.cross_entropy_gradient(S, y, reduction="sum", sample_weight=w, check=False)[1]


@_quiet
def _scores_block(X, W, b, *, check):
    be = _block_backend(X)
    return be.scores(X, be.asarray(W), be.asarray(b), check=check)


@_quiet
def _rows_op_block(S, *, op, axis):
    return getattr(_block_backend(S), op)(S, axis)


def _weight_sum_block(*blocks, names, n_classes):
    """The value checks of one block of ``X``/``y``/``sample_weight``; returns the
    block's weight sum (its row count unweighted) as a ``(1,)`` float64 array."""
    arrays = dict(zip(names, blocks))
    w = arrays.get("sample_weight")
    first = blocks[0]
    if first.shape[0] == 0:
        return np.zeros(1, np.float64)
    be = _block_backend(first)
    _check_block(be, X=arrays.get("X"), y=arrays.get("y"), n_classes=n_classes, w=w)
    total = float(np.sum(to_numpy(w), dtype=np.float64)) if w is not None else first.shape[0]
    return np.full(1, total, np.float64)


def _block_classes(y):
    """The distinct labels of one block: a bincount for integers (no sort)."""
    y = np.asarray(to_numpy(y))
    if y.size and y.dtype.kind in "iu":
        lo, hi = int(y.min()), int(y.max())
        if hi - lo < max(4 * y.size, 1 << 16):
            present = np.bincount(y.astype(np.intp) - lo, minlength=hi - lo + 1) > 0
            return (lo + np.flatnonzero(present)).astype(y.dtype)
    return np.unique(y)


def _union(parts):
    return np.unique(np.concatenate(parts))


def _label_codes(y, classes):
    return np.searchsorted(classes, np.asarray(to_numpy(y))).astype(np.int32)


def _raise_zero_weight_sum():
    # check_values holds the one wording of this error; an all-zero weight
    # vector makes it say it.
    import array_api_compat.numpy as npx

    _validate.check_values(npx, sample_weight=np.zeros(1))


class DaskBackend(Backend):
    """Dask arrays in; reductions computed to host NumPy, row-wise ops lazy."""

    # -- arrays in and out -------------------------------------------------
    def owns(self, a):
        return isinstance(a, da.Array)

    def asarray(self, a):
        """A Dask array of ``a``, split along its first axis (see ``CHUNK_ROWS``).

        Dask arrays pass through; CuPy arrays keep CuPy blocks; anything else is
        converted to NumPy first.
        """
        if self.owns(a):
            if a.ndim and any(math.isnan(c) for c in a.chunks[0]):
                # The public ops word this "X must be a numeric array: ..." (a TypeError).
                raise TypeError("a Dask array with unknown chunk sizes along the rows (after "
                                "a filter?) cannot be split into row blocks; call "
                                ".compute_chunk_sizes() on it first")
            return a
        import array_api_compat as compat

        if not compat.is_cupy_array(a):
            a = np.asarray(to_numpy(a))
        if a.ndim == 0:
            return da.from_array(a)
        rows = _rows_per_block(a.shape[0])
        return da.from_array(a, chunks=(rows,) + tuple(-1 for _ in a.shape[1:]))

    def to_numpy(self, a):
        if self.owns(a):
            a = a.compute()
        return to_numpy(a)

    def param_array(self, a):
        """Where a model's small parameters live: host NumPy on the client,
        sent to the workers inside each evaluation's task graph."""
        return np.asarray(self.to_numpy(a))

    def encode_labels(self, y, n):
        """``(classes_, labels)`` for the estimators without gathering ``y``.

        One pass finds each block's distinct labels (a count for integers, no
        sort); the classes are their union, on the client. Labels already
        ``0..K-1`` are used as they are; others are re-coded block by block,
        lazily.
        """
        y = self.asarray(y)
        if y.ndim != 1:
            raise ValueError(f"y must be 1-dimensional, got shape {tuple(y.shape)}")
        if y.shape[0] != n:
            raise ValueError(f"y has {y.shape[0]} labels but X has {n} samples")
        kind = np.dtype(y.dtype).kind
        if kind == "c":
            raise ValueError(f"Unknown label type: complex labels (dtype {y.dtype})")
        parts = [dask.delayed(_block_classes)(block) for block in y.to_delayed().ravel()]
        classes = dask.delayed(_union)(parts).compute()
        if kind == "f":
            if not np.all(np.isfinite(classes)):
                raise ValueError("y contains NaN or infinity")
            if np.any(classes != np.round(classes)):
                raise ValueError("Unknown label type: continuous. A classifier needs "
                                 "discrete class labels, not real-valued targets")
        if kind in "iu" and np.array_equal(classes, np.arange(classes.size)):
            return classes, y
        return classes, y.map_blocks(_label_codes, classes, dtype=np.int32,
                                     meta=np.empty((0,), np.int32))

    # -- checks: one pass over the row arrays, one global sum ----------------
    def check_values(self, *, X=None, W=None, b=None, y=None, n_classes=None,
                     sample_weight=None):
        import array_api_compat.numpy as npx

        small = {name: np.asarray(self.to_numpy(a)) for name, a in (("W", W), ("b", b))
                 if a is not None}
        if small:
            _validate.check_values(npx, **small)
        rows = [(name, a) for name, a in (("X", X), ("y", y), ("sample_weight", sample_weight))
                if a is not None]
        if not rows:
            return
        rows = [(name, self.asarray(a)) for name, a in rows]
        if rows[0][0] == "X":
            rows[0] = ("X", _whole_rows(rows[0][1], "X"))
        chunks = rows[0][1].chunks[0]
        args = []
        for _, a in rows:
            a = _aligned(a, chunks)
            args += [a, "ij" if a.ndim == 2 else "i"]
        totals = da.blockwise(
            _weight_sum_block, "i", *args, names=tuple(name for name, _ in rows),
            n_classes=n_classes, adjust_chunks={"i": 1}, concatenate=True,
            dtype=np.float64, meta=np.empty((0,), np.float64))
        total = float(_tree_sum(totals))
        if sample_weight is not None and not total > 0:
            _raise_zero_weight_sum()

    # -- the linear model: block sums, tree-reduced, computed ----------------
    def _block_sums(self, X, y, W, b, sample_weight, need_grad, check):
        """Compute the tree-reduced float64 sums of every block; host NumPy."""
        import array_api_compat.numpy as npx

        X = _whole_rows(self.asarray(X), "X")
        chunks = X.chunks[0]
        dtype = X.dtype
        W = np.asarray(self.to_numpy(W)).astype(dtype, copy=False)
        b = np.asarray(self.to_numpy(b)).astype(dtype, copy=False)
        if check:
            _validate.check_values(npx, W=W, b=b)
        args = [X, "ij", _aligned(self.asarray(y), chunks), "i", *_broadcast(W, "jk"),
                *_broadcast(b, "k")]
        if sample_weight is not None:
            args += [_aligned(self.asarray(sample_weight), chunks), "i"]
        d, k = W.shape
        width = 2 + (d * k + k if need_grad else 0)
        parts = da.blockwise(
            _loss_block, "ip", *args, need_grad=need_grad, check=check, name=_fresh("loss"),
            new_axes={"p": width}, adjust_chunks={"i": 1}, concatenate=True,
            dtype=np.float64, meta=np.empty((0, 0), np.float64))
        total = _tree_sum(parts)
        wsum = float(total[1])
        if check and not wsum > 0:
            _raise_zero_weight_sum()
        return total, W, wsum

    def loss(self, X, y, W, b, *, reg=0.0, sample_weight=None, check=True):
        total, W, wsum = self._block_sums(X, y, W, b, sample_weight, False, check)
        return np.asarray(total[0] / wsum + _penalty64(W, reg), dtype=W.dtype)

    def loss_gradient(self, X, y, W, b, *, reg=0.0, sample_weight=None, check=True):
        """``(loss, dW, db)`` computed: one tree reduction over all the blocks.

        Host NumPy out (a 0-d ``loss``), as the estimator's solvers need them.
        """
        total, W, wsum = self._block_sums(X, y, W, b, sample_weight, True, check)
        d, k = W.shape
        W64 = W.astype(np.float64, copy=False)
        loss = np.asarray(total[0] / wsum + _penalty64(W, reg), dtype=W.dtype)
        dW = (total[2:2 + d * k].reshape(d, k) / wsum + reg * W64).astype(W.dtype)
        db = (total[2 + d * k:] / wsum).astype(W.dtype)
        return loss, dW, db

    # -- row-wise: lazy ----------------------------------------------------
    def scores(self, X, W, b, *, check=True):
        """Lazy scores; ``W`` and ``b`` are checked now, ``X`` in its blocks."""
        import array_api_compat.numpy as npx

        X = _whole_rows(self.asarray(X), "X")
        W, b = (np.asarray(self.to_numpy(a)).astype(X.dtype, copy=False) for a in (W, b))
        if check:
            _validate.check_values(npx, W=W, b=b)
        return da.blockwise(
            _scores_block, "ik", X, "ij", da.from_array(W, chunks=W.shape), "jk",
            *_broadcast(b, "k"), check=check, concatenate=True,
            dtype=X.dtype, meta=np.empty((0, 0), X.dtype))

    def _rows_op(self, op, S, axis):
        if S.numblocks[axis] != 1:
            if S.ndim == 2 and axis == 1:
                S = S.rechunk({1: -1})
            else:  # along the rows: the Array-API reference, lazily, on the whole array
                return self._reference(op, S, axis)
        if op == "logsumexp":
            return S.map_blocks(_rows_op_block, op=op, axis=axis, drop_axis=axis,
                                dtype=S.dtype, meta=np.empty((0,) * (S.ndim - 1), S.dtype))
        return S.map_blocks(_rows_op_block, op=op, axis=axis, dtype=S.dtype,
                            meta=np.empty((0,) * S.ndim, S.dtype))

    def softmax(self, S, axis=-1):
        return self._rows_op("softmax", S, axis % S.ndim)

    def log_softmax(self, S, axis=-1):
        return self._rows_op("log_softmax", S, axis % S.ndim)

    def logsumexp(self, S, axis=-1):
        return self._rows_op("logsumexp", S, axis % S.ndim)

    # -- cross-entropy from scores ------------------------------------------
    def _score_args(self, S, y, sample_weight):
        S = _whole_rows(self.asarray(S), "S")
        args = [S, "ik", _aligned(self.asarray(y), S.chunks[0]), "i"]
        if sample_weight is not None:
            args += [_aligned(self.asarray(sample_weight), S.chunks[0]), "i"]
        return S, args

    def _ce_total(self, S, y, sample_weight, check):
        S, args = self._score_args(S, y, sample_weight)
        parts = da.blockwise(_ce_block, "ip", *args, check=check, new_axes={"p": 2},
                             adjust_chunks={"i": 1}, concatenate=True, dtype=np.float64,
                             meta=np.empty((0, 0), np.float64))
        total = _tree_sum(parts)
        if check and not total[1] > 0:
            _raise_zero_weight_sum()
        return total

    def _weight_total(self, S, sample_weight, check):
        if sample_weight is None:
            return float(S.shape[0])
        total = float(_compute_one(_sum_rows(self.asarray(sample_weight))))
        if check and not total > 0:  # a bad weight, or none positive: the checks say which
            self.check_values(sample_weight=sample_weight)
            _raise_zero_weight_sum()
        return total

    def _ce_rows(self, S, y, sample_weight, scale, need_grad, check):
        S, args = self._score_args(S, y, sample_weight)
        if need_grad:
            return da.blockwise(_ce_rows_block, "ik", *args, scale=scale, need_grad=True,
                                check=check, concatenate=True, dtype=S.dtype,
                                meta=np.empty((0, 0), S.dtype))
        return da.blockwise(_ce_rows_block, "i", *args, scale=scale, need_grad=False,
                            check=check, concatenate=True, dtype=S.dtype,
                            meta=np.empty((0,), S.dtype))

    def cross_entropy(self, S, y, *, reduction="mean", sample_weight=None, check=True):
        """``"mean"``/``"sum"``: computed 0-d NumPy; ``"none"``: a lazy ``(N,)`` array."""
        if reduction == "none":
            if check and sample_weight is not None:
                self._weight_total(S, sample_weight, check)
            return self._ce_rows(S, y, sample_weight, 1.0, False, check)
        total = self._ce_total(S, y, sample_weight, check)
        value = total[0] / total[1] if reduction == "mean" else total[0]
        return np.asarray(value, dtype=S.dtype)

    def cross_entropy_gradient(self, S, y, *, reduction="mean", sample_weight=None,
                               check=True):
        """The loss as :meth:`cross_entropy`; ``dscores`` a lazy ``(N, K)`` array."""
        value = self.cross_entropy(S, y, reduction=reduction, sample_weight=sample_weight,
                                   check=check)
        scale = 1.0
        if reduction == "mean":
            scale = 1.0 / self._weight_total(S, sample_weight, False)
        dscores = self._ce_rows(S, y, sample_weight, scale, True, False)
        return value, dscores


def _penalty64(W, reg):
    """``0.5 reg |W|^2`` in float64, exactly 0 for ``reg=0`` (as every backend)."""
    import array_api_compat.numpy as npx

    return float(_penalty(W.astype(np.float64, copy=False), reg, npx))


def _tree_sum(parts):
    """The column sums of the blocks' partial rows, computed: Dask's tree reduction.

    The grouping is fixed by the block index and the fan-in, never by the order
    the workers finish in, and every combine adds its rows in order: the same
    data and chunks give the same bits. The fan-in is as large as keeps one
    combine's inputs within ``TREE_BYTES`` (every task costs the scheduler time,
    so the spiral's 11 numbers a block need one level; wide models' big ``dW``
    partials get a deeper tree), and at least 8.
    """
    width = int(np.prod(parts.shape[1:], dtype=np.int64)) or 1
    blocks = parts.numblocks[0]
    split_every = min(max(8, TREE_BYTES // (8 * width)), max(2, blocks))
    return np.asarray(_compute_one(_sum_rows(parts, split_every)))


def _fresh(what):
    """A new graph name for each evaluation: two evaluations at the same ``W``
    would otherwise share keys, and the second could ask for a result the
    scheduler is just forgetting."""
    import uuid

    return f"fastsoftmax-{what}-{uuid.uuid4().hex}"


def _compute_one(a):
    """The one block of a small Dask array, run on the scheduler in use.

    The graph goes straight to the scheduler's ``get`` (the default client's, or
    Dask's threads): ``dask.compute``'s per-call collection passes cost several
    times these few tasks (measured: 12-60 ms against 280-490 ms a call on a
    busy 2-core machine), and an evaluation of the loss is exactly such a call.
    """
    from dask.base import get_scheduler

    get = get_scheduler(collections=[a]) or dask.threaded.get
    out = get(a.__dask_graph__(), a.__dask_keys__())
    while isinstance(out, (list, tuple)):
        (out,) = out
    return out


def _broadcast(a, index):
    """``a`` (a small host array) as an argument of every block's task.

    Up to ``BROADCAST_INLINE`` bytes it is written into each task (no task of
    its own, no extra round trip: what a few floats of ``W`` and ``b`` want);
    larger, it becomes one Dask key that the workers fetch once each.
    """
    if a.nbytes <= BROADCAST_INLINE:
        return a, None
    return da.from_array(a, chunks=a.shape), index


def _whole_rows(a, name):
    """``a`` with one block across its columns and known row-block sizes."""
    if any(math.isnan(c) for c in a.chunks[0]):
        raise ValueError(f"{name} has unknown chunk sizes (after a filter?); call "
                         f"{name}.compute_chunk_sizes() first")
    if a.ndim == 2 and a.numblocks[1] != 1:
        a = a.rechunk({1: -1})
    return a


def _aligned(a, chunks):
    """A 1-d ``y``/``sample_weight`` split like ``X``'s rows."""
    return a if a.chunks[0] == chunks else a.rechunk((chunks,))


def _rows_per_block(n):
    """Rows per block for NumPy input: at most ``CHUNK_ROWS``, and at least one
    block per worker thread of the connected cluster (so every worker works)."""
    threads = 1
    try:
        from distributed import default_client

        threads = sum(default_client().nthreads().values()) or 1
    except (ImportError, ValueError):
        pass
    return max(1, min(CHUNK_ROWS, -(-n // threads)))
