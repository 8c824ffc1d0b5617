"""The spiral data set of the cs231n notebook, vectorised and scalable."""

from __future__ import annotations

import math
import numbers
import sys

import numpy as np

from . import _validate
from .backends import get_backend

_DTYPES = ("float32", "float64")
# |e| of a standard normal draw stays far below this (P(|e| > 38) < 1e-300), so
# noise * e cannot overflow the dtype while noise <= finfo(dtype).max / _MAX_DRAW.
_MAX_DRAW = 64.0


def make_spiral(n_per_class=100, n_classes=3, *, n_features=2, noise=0.2, shuffle=True,
                seed=None, dtype="float64", backend=None, chunks=None):
    """The notebook's spiral: ``n_classes`` interleaved arms of ``n_per_class`` points.

    Point ``i`` of class ``j`` has radius ``r = i / (n_per_class - 1)`` and angle
    ``t = 4 (j + r) + noise * e`` with ``e ~ N(0, 1)``, at ``(r sin t, r cos t)``
    -- exactly the notebook's loop, computed for all points at once in the
    backend's namespace (on the GPU for ``cupy``).

    With ``n_features = D > 2`` the plane of the spiral is embedded isometrically
    in ``R^D``: ``X = [x1, x2] @ Q`` where the two rows of ``Q`` are
    ``sqrt(2/D) cos(pi d / D)`` and ``sqrt(2/D) sin(pi d / D)``, ``d = 0..D-1``.
    They are orthonormal for every ``D >= 2``, so distances, the classification
    problem and its difficulty are unchanged, while every feature carries signal.

    Parameters
    ----------
    n_per_class : int, default 100
    n_classes : int, default 3
    n_features : int, default 2
        At least 2.
    noise : float, default 0.2
        Standard deviation of the angular noise: finite, ``>= 0`` and at most
        ``finfo(dtype).max / 64`` (about 2.8e306 in float64, 5.3e36 in
        float32), so that every angle, and so every point, is finite.
    shuffle : bool, default True
        Shuffle the rows (``X`` and ``y`` alike), as scikit-learn's generators
        do, so that cross-validation folds hold every class. The points are the
        same either way; ``shuffle=False`` keeps the notebook's class-major
        order. The permutation comes from its own stream of ``seed``, so it
        leaves the noise draws unchanged.
    seed : int or None
        Fixes the noise. CPU backends (numpy, numba, torch, array_api_strict)
        draw it with NumPy's ``default_rng(seed)`` and so agree exactly; ``cupy``
        draws on the device with its own generator.
    dtype : {"float64", "float32"}
    backend : str, Backend or None
    chunks : int, sequence of int or None
        ``backend="dask"`` only: rows per block (or the block sizes). Each block
        is generated on the worker that needs it, each point's noise from
        ``(seed, point)`` alone, and ``shuffle`` is a permutation every block
        computes alone; see ``fastsoftmax._dask_data`` for how this relates to
        the one-process spiral.

    Raises
    ------
    ValueError
        A parameter that cannot give finite points or an array NumPy can
        index: ``n_per_class * n_classes >= 2**31``, ``X`` larger than the
        address space, ``noise`` above the dtype's limit. The message names
        the parameter.

    Returns
    -------
    X : array, shape (n_per_class * n_classes, n_features)
    y : array of int32, shape (n_per_class * n_classes,)
        Class labels; with ``shuffle=False`` class-major (the first
        ``n_per_class`` rows are class 0).

    Examples
    --------
    >>> import fastsoftmax as fs
    >>> X, y = fs.make_spiral(seed=0, backend="numpy")
    >>> X.shape, y.shape, int(y.max())
    ((300, 2), (300,), 2)
    """
    n_per_class = _validate.int_param(n_per_class, "n_per_class", 1)
    n_classes = _validate.int_param(n_classes, "n_classes", 1)
    n_features = _validate.int_param(n_features, "n_features", 2)
    noise = _validate.real_param(noise, "noise")
    dtype = str(dtype)
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {_DTYPES}, got {dtype!r}")
    max_noise = float(np.finfo(dtype).max) / _MAX_DRAW
    if noise > max_noise:
        raise ValueError(f"noise must be at most {max_noise:.3g} for {dtype} (a larger one "
                         f"overflows the angles to inf and the points to NaN), got {noise:g}")
    if not isinstance(shuffle, (bool, np.bool_)):
        raise TypeError(f"shuffle must be True or False, got {shuffle!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
        raise TypeError(f"seed must be an integer or None, got {type(seed).__name__}")

    n = n_per_class * n_classes
    if n >= 2**31:
        raise ValueError(f"n_per_class * n_classes must be < 2**31, got {n}")
    if n * n_features * np.dtype(dtype).itemsize > sys.maxsize:
        raise ValueError(f"n_features={n_features} is too large: X would hold "
                         f"{n:,} x {n_features:,} values, more than an array can address")

    be = get_backend(backend)
    if be.name == "dask":  # lazy blocks, each generated on a worker
        from ._dask_data import make_spiral_dask

        Q = _embedding(np, n_features, np.dtype(dtype)) if n_features > 2 else None
        return make_spiral_dask(n_per_class, n_classes, n_features=n_features, noise=noise,
                                shuffle=bool(shuffle), seed=seed, dtype=dtype, chunks=chunks,
                                embedding=Q)
    if chunks is not None:
        raise ValueError(f"chunks is for backend='dask' only, not {be.name!r}")
    xp = be.xp
    fdtype = getattr(xp, dtype)
    made = str(xp.zeros((), dtype=fdtype).dtype).rsplit(".", 1)[-1]
    if made != dtype:  # JAX without 64-bit mode makes float32 when asked for float64
        raise ValueError(f"dtype={dtype!r}: backend {be.name!r} makes {made} arrays instead "
                         f"(for JAX, enable 64-bit mode: jax.config.update('jax_enable_x64', "
                         f"True))")

    y = xp.arange(n, dtype=xp.int32) // n_per_class
    r = xp.tile(xp.linspace(0.0, 1.0, n_per_class, dtype=fdtype), (n_classes,))
    t = 4.0 * (xp.astype(y, fdtype) + r)
    if noise > 0:
        t = t + noise * be.standard_normal((n,), seed=seed, dtype=dtype)
    X = xp.stack([r * xp.sin(t), r * xp.cos(t)], axis=1)
    if n_features > 2:
        X = X @ _embedding(xp, n_features, fdtype)
    if shuffle:
        # A stream of its own ([seed, 1]), so the noise above is the same either way.
        rng = np.random.default_rng(None if seed is None else [seed, 1])
        order = be.asarray(rng.permutation(n))
        X, y = xp.take(X, order, axis=0), xp.take(y, order, axis=0)
    return X, y


def _embedding(xp, n_features, dtype):
    """The (2, D) matrix with orthonormal rows that embeds the spiral's plane."""
    theta = xp.arange(n_features, dtype=xp.float64) * (math.pi / n_features)
    scale = math.sqrt(2.0 / n_features)
    Q = xp.stack([scale * xp.cos(theta), scale * xp.sin(theta)], axis=0)
    return xp.astype(Q, dtype)


# Re-exported here, beside make_spiral; _dask_data imports Dask/Zarr only when called.
from ._dask_data import load_zarr, save_zarr  # noqa: E402, F401
