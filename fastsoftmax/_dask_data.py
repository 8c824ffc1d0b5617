"""Spiral data that never sits in one process: generated block by block on the
Dask workers, written to and read from Zarr stores.

Nothing here is imported by ``import fastsoftmax``; Dask and Zarr are imported
when a function runs.

How a Dask spiral relates to the one-process spiral
---------------------------------------------------
Point ``i`` (class ``j = i // n_per_class``, radius ``r = (i mod n_per_class) /
(n_per_class - 1)``) is computed with the very formulas of
:func:`fastsoftmax.make_spiral`; only its angular noise comes from elsewhere.
One process draws the noise as one stream of ``default_rng(seed)``, which no
block can enter in the middle (the normal sampler uses a variable number of
draws per value). Here the noise of point ``i`` is a function of ``(seed, i)``
alone: two uniforms from the SplitMix64 counter-based generator (counters
``2i`` and ``2i + 1`` of the stream keyed by the seed) and the Box-Muller
transform, an exact standard normal. So:

* the data depend on the seed only -- not on the chunks, the cluster, the
  order the blocks run in, nor how often a block is recomputed (which is what
  lets the scheduler redo a lost block);
* the distribution is the one-process spiral's; the noise draws are not.

``shuffle=True`` cannot use NumPy's permutation of all N rows (it would sit in
one process); row ``k`` holds instead point ``(a k + c) mod N``, an affine
permutation with ``a`` coprime to N and ``a, c`` drawn from the seed's shuffle
stream ``default_rng([seed, 1])``. Every block computes its own points from
that rule alone, each block mixes all the classes, and the points (noise
included) are the same with or without the shuffle, as in one process.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from . import _validate


def _row_chunks(chunks, n):
    """``chunks`` (rows per block, a tuple of block sizes, or None) as a tuple."""
    if chunks is None:
        from .backends.dask import _rows_per_block

        chunks = _rows_per_block(n)
    if isinstance(chunks, numbers.Integral) and not isinstance(chunks, bool):
        rows = _validate.int_param(chunks, "chunks", 1)
        return (rows,) * (n // rows) + ((n % rows,) if n % rows else ())
    try:
        sizes = tuple(_validate.int_param(c, "chunks", 1) for c in chunks)
    except TypeError:
        raise TypeError(f"chunks must be an integer (rows per block), a sequence of "
                        f"block sizes or None, got {type(chunks).__name__}") from None
    if sum(sizes) != n:
        raise ValueError(f"chunks add up to {sum(sizes)} rows but the spiral has {n}")
    return sizes


def _points(lo, hi, order):
    """The spiral's point numbers held by rows ``lo..hi-1`` (class-major numbering)."""
    k = np.arange(lo, hi, dtype=np.int64)
    if order is None:
        return k
    a, c, n = order  # a, k < 2**31: a * k fits in int64
    return (a * k + c) % n


def _shuffle_order(n, seed):
    """``(a, c, n)`` of the affine permutation ``k -> (a k + c) mod n``."""
    rng = np.random.default_rng([seed, 1])  # make_spiral's shuffle stream
    while True:
        a = int(rng.integers(1, n)) if n > 1 else 1
        if math.gcd(a, n) == 1:
            return a, int(rng.integers(0, n)), n


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # SplitMix64's increment (2^64 / phi)


def _splitmix64(counter, key):
    """Output ``counter`` of the SplitMix64 stream keyed by ``key`` (uint64, wrapping)."""
    with np.errstate(over="ignore"):  # arithmetic modulo 2^64 is the point
        z = key + counter * _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _point_noise(i, seed):
    """Standard normal noise of points ``i`` (int64 array), a function of (seed, i)."""
    key = np.uint64(_splitmix64(np.uint64(seed % 2**64), np.uint64(0)))
    i = i.astype(np.uint64)
    to_unit = 2.0 ** -53  # the top 53 bits: uniforms on [0, 1)
    u1 = 1.0 - (_splitmix64(2 * i, key) >> np.uint64(11)) * to_unit  # (0, 1]: log is finite
    u2 = (_splitmix64(2 * i + np.uint64(1), key) >> np.uint64(11)) * to_unit
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)  # Box-Muller


def _spiral_X_block(*, n_per_class, noise, seed, float_dtype, embedding, order,
                    block_info=None):
    """The rows of one block of ``X``, from the seed and the rows' positions alone."""
    lo, hi = block_info[None]["array-location"][0]
    fdtype = np.dtype(float_dtype)
    i = _points(lo, hi, order)
    j = i // n_per_class
    within = i - j * n_per_class
    # np.linspace(0, 1, n_per_class) as make_spiral builds it: i * (1 / (n-1)),
    # the last point exactly 1, computed in float64 and then cast.
    if n_per_class > 1:
        r = within * (1.0 / (n_per_class - 1))
        r[within == n_per_class - 1] = 1.0
    else:
        r = np.zeros(hi - lo)
    r = r.astype(fdtype)
    t = 4.0 * (j.astype(np.int32).astype(fdtype) + r)
    if noise > 0:
        t = t + noise * _point_noise(i, seed).astype(fdtype)
    X = np.stack([r * np.sin(t), r * np.cos(t)], axis=1)
    if embedding is not None:
        X = X @ embedding
    return X


def _spiral_y_block(*, n_per_class, order, block_info=None):
    lo, hi = block_info[None]["array-location"][0]
    return (_points(lo, hi, order) // n_per_class).astype(np.int32)


def make_spiral_dask(n_per_class, n_classes, *, n_features, noise, shuffle, seed, dtype,
                     chunks, embedding):
    """The spiral as lazy Dask arrays, each block generated where it is needed.

    Called by :func:`fastsoftmax.make_spiral` with ``backend="dask"`` after its
    checks; ``embedding`` is its ``(2, D)`` matrix (None for ``D = 2``).
    """
    import dask.array as da

    n = n_per_class * n_classes
    rows = _row_chunks(chunks, n)
    if seed is None:  # one fresh seed for all the blocks, so they still fit together
        seed = np.random.SeedSequence().entropy
    order = _shuffle_order(n, seed) if shuffle else None
    fdtype = np.dtype(dtype)
    X = da.map_blocks(
        _spiral_X_block, chunks=(rows, (n_features,)), dtype=fdtype,
        meta=np.empty((0, 0), fdtype), n_per_class=n_per_class, noise=noise, seed=seed,
        float_dtype=fdtype.name, order=order,
        embedding=None if embedding is None else np.asarray(embedding),
        name="spiral-X-" + _token(n_per_class, n_classes, n_features, noise, seed, dtype, rows,
                                  order))
    y = da.map_blocks(
        _spiral_y_block, chunks=(rows,), dtype=np.int32, meta=np.empty((0,), np.int32),
        n_per_class=n_per_class, order=order,
        name=f"spiral-y-{_token(n_per_class, n_classes, rows, order)}")
    return X, y


def _token(*args):
    from dask.base import tokenize

    return tokenize(*args)


# -- Zarr stores ---------------------------------------------------------------
def save_zarr(path, X, y, *, attrs=None, overwrite=False):
    """Write ``(X, y)`` to a Zarr v3 store at ``path``, block by block.

    Each Dask block of ``X``/``y`` becomes one Zarr chunk (whole rows), written
    by the task that computes it -- on the workers when a ``distributed``
    client is connected -- so a data set of any size is written without ever
    being in one process. Chunks are stored uncompressed: the spiral's floats
    do not compress, and raw chunks are read back fastest.

    Parameters
    ----------
    path : str or os.PathLike
        A directory (``PATH.zarr`` by convention).
    X : array, shape (N, D)
        Dask or NumPy; NumPy is split as the ``dask`` backend splits it.
    y : array of int, shape (N,)
    attrs : dict, optional
        JSON-serialisable metadata stored with the group (e.g. how it was made).
    overwrite : bool, default False
        Replace an existing store; otherwise an existing path is a ``ValueError``.

    Examples
    --------
    >>> import tempfile, os, fastsoftmax as fs
    >>> X, y = fs.make_spiral(50, 3, seed=0, backend="dask", chunks=60)
    >>> path = os.path.join(tempfile.mkdtemp(), "spiral.zarr")
    >>> fs.save_zarr(path, X, y)
    >>> X2, y2 = fs.load_zarr(path)
    >>> X2.shape, X2.chunks[0], bool((X2 == X).all().compute())
    ((150, 2), (60, 60, 30), True)
    """
    import os

    import dask.array as da
    import zarr

    from .backends import get_backend

    be = get_backend("dask")
    X = _validate.float_array(be, X, "X", ndim=2)
    y = _validate.label_array(be, y, X.shape[0])
    X = X.rechunk({1: -1})
    y = y.rechunk((X.chunks[0],))
    rows = X.chunks[0]
    if len(set(rows[:-1])) > 1 or (len(rows) > 1 and rows[-1] > rows[0]):
        raise ValueError(f"X's row blocks must be regular (all alike but a smaller last one) "
                         f"to be Zarr chunks; got {rows[:4]}...; rechunk X first")
    if os.path.exists(path) and not overwrite:
        raise ValueError(f"path {os.fspath(path)!r} exists; pass overwrite=True "
                         "(--overwrite) to replace it")
    group = zarr.open_group(path, mode="w", zarr_format=3)
    group.attrs.update({"fastsoftmax": dict(attrs or {})})
    Xz = group.create_array("X", shape=X.shape, chunks=(rows[0], X.shape[1]), dtype=X.dtype,
                            compressors=None, fill_value=0)
    yz = group.create_array("y", shape=y.shape, chunks=(rows[0],), dtype=y.dtype,
                            compressors=None, fill_value=0)
    da.store([X, y], [Xz, yz], lock=False)


def load_zarr(path, *, chunks=None):
    """``(X, y)`` of a store written by :func:`save_zarr`, as lazy Dask arrays.

    Nothing is read until a computation needs a block; then each task reads its
    own chunk, so training streams the store from disk on every pass unless you
    ``persist()`` the arrays on the workers.

    Parameters
    ----------
    path : str or os.PathLike
    chunks : int, optional
        Rows per block; default: the store's chunks. A multiple of them avoids
        reading a chunk twice.

    Returns
    -------
    X : dask.array.Array, shape (N, D)
    y : dask.array.Array of int, shape (N,)
    """
    import os

    import dask.array as da
    import zarr

    if not os.path.isdir(path):
        raise ValueError(f"path {os.fspath(path)!r} is not a Zarr store (no such directory)")
    try:
        group = zarr.open_group(path, mode="r")
        Xz, yz = group["X"], group["y"]
    except (KeyError, FileNotFoundError, zarr.errors.GroupNotFoundError) as exc:
        raise ValueError(f"path {os.fspath(path)!r} is not a fastsoftmax Zarr store "
                         f"(a group with arrays X and y): {exc}") from None
    X = da.from_zarr(Xz)
    y = da.from_zarr(yz)
    if chunks is not None:
        rows = _validate.int_param(chunks, "chunks", 1)
        X, y = X.rechunk((rows, -1)), y.rechunk((rows,))
    return X, y


def zarr_attrs(path):
    """The metadata :func:`save_zarr` stored with ``path`` (a dict)."""
    import zarr

    return dict(zarr.open_group(path, mode="r").attrs.get("fastsoftmax", {}))


# -- for the command line ---------------------------------------------------------
MAKE_DATA_CHUNK_ROWS = 4 << 20  # rows per Zarr chunk: 32 MiB of float32 X at D=2
