"""The ``Backend`` object: an array namespace plus the fastsoftmax ops on it.

A backend converts arrays in and out (``asarray``, ``to_numpy``), draws random
numbers (``standard_normal``), and runs the ops on arrays that
``fastsoftmax._validate`` has already checked for type and shape. The base class
runs the Array-API reference (``_reference``) on its namespace; a fast backend
overrides only the ops it has kernels for and inherits the rest.

Each op takes ``check=True``: the value checks (finite ``X``/``W``/``b``, labels
in range, non-negative weights) that read the data. Training loops pass
``check=False`` after validating once; a backend whose kernel checks values as
it computes may ignore the flag.
"""

from __future__ import annotations

import numpy as np

from .. import _validate
from . import _reference


class BackendUnavailableError(RuntimeError):
    """A known backend cannot be used here; the message says why and how to fix it."""


class Backend:
    """A named array backend and the fastsoftmax ops on it.

    Parameters
    ----------
    name : str
        The one name used by ``backend=``, ``--backend``, ``FASTSOFTMAX_BACKEND``,
        the test ids and the benchmark groups.
    xp : module
        An Array-API namespace (from ``array_api_compat`` where needed).
    version : str
        Version of the library behind the backend.
    device : str
        Where the arrays live, in words.
    """

    def __init__(self, name, xp, *, version, device="cpu"):
        self.name = name
        self.xp = xp
        self.version = version
        self.device = device

    def __repr__(self):
        return f"<fastsoftmax backend {self.name!r} ({self.version}, {self.device})>"

    # -- arrays in and out -------------------------------------------------
    def owns(self, a):
        """Whether ``a`` is already an array of this backend (no conversion needed)."""
        return isinstance(a, np.ndarray)

    def asarray(self, a):
        """``a`` as an array of this backend; native arrays pass through uncopied."""
        if self.owns(a):
            return a
        return self.xp.asarray(to_numpy(a))

    def to_numpy(self, a):
        return to_numpy(a)

    def param_array(self, a):
        """A model's small parameters (``W``, ``b``) where this backend keeps them.

        The backend's own arrays (on the device for a GPU); a distributed backend
        may keep them on the host and broadcast them with each evaluation.
        """
        return self.asarray(a)

    def standard_normal(self, shape, *, seed, dtype):
        """Standard normal draws of ``shape`` and ``dtype`` (a name), fixed by ``seed``.

        CPU backends draw with NumPy's ``default_rng(seed)``, so NumPy, Numba and
        ``array_api_strict`` see identical numbers for a seed.
        """
        rng = np.random.default_rng(seed)
        return self.asarray(rng.standard_normal(shape, dtype=np.dtype(dtype)))

    def info(self):
        return {"name": self.name, "available": True, "version": self.version,
                "device": self.device, "reason": ""}

    # -- checks ------------------------------------------------------------
    def check_values(self, **arrays):
        _validate.check_values(self.xp, **arrays)

    # -- ops: the reference unless a subclass has a kernel ------------------
    def _reference(self, op, *args, **kwargs):
        # 0/0 and log(0) of fully masked rows are deliberate (NaN, -inf): no warning.
        with np.errstate(divide="ignore", invalid="ignore"):
            return getattr(_reference, op)(*args, xp=self.xp, **kwargs)

    def scores(self, X, W, b, *, check=True):
        if check:
            self.check_values(X=X, W=W, b=b)
        return self._reference("scores", X, W, b)

    def softmax(self, S, axis=-1):
        return self._reference("softmax", S, axis)

    def log_softmax(self, S, axis=-1):
        return self._reference("log_softmax", S, axis)

    def logsumexp(self, S, axis=-1):
        return self._reference("logsumexp", S, axis)

    def cross_entropy(self, S, y, *, reduction="mean", sample_weight=None, check=True):
        if check:
            self.check_values(y=y, n_classes=S.shape[1], sample_weight=sample_weight)
        return self._zero_d(self._reference(
            "cross_entropy", S, y, reduction=reduction, sample_weight=sample_weight))

    def cross_entropy_gradient(self, S, y, *, reduction="mean", sample_weight=None,
                               check=True):
        if check:
            self.check_values(y=y, n_classes=S.shape[1], sample_weight=sample_weight)
        value, dscores = self._reference(
            "cross_entropy_gradient", S, y, reduction=reduction, sample_weight=sample_weight)
        return self._zero_d(value), dscores

    def loss(self, X, y, W, b, *, reg=0.0, sample_weight=None, check=True):
        if check:
            self._check_linear(X, y, W, b, sample_weight)
        return self._zero_d(self._reference(
            "loss", X, y, W, b, reg=reg, sample_weight=sample_weight))

    def loss_gradient(self, X, y, W, b, *, reg=0.0, sample_weight=None, check=True):
        if check:
            self._check_linear(X, y, W, b, sample_weight)
        value, dW, db = self._reference(
            "loss_gradient", X, y, W, b, reg=reg, sample_weight=sample_weight)
        return self._zero_d(value), dW, db

    def _check_linear(self, X, y, W, b, sample_weight):
        self.check_values(X=X, W=W, b=b, y=y, n_classes=W.shape[1],
                          sample_weight=sample_weight)

    def _zero_d(self, value):
        # NumPy reductions return scalars; the contract promises 0-d arrays.
        return self.xp.asarray(value) if isinstance(value, np.generic) else value


def to_numpy(a):
    """Any backend's array (or a nested sequence) as a NumPy array.

    Copies device arrays to the host; returns NumPy arrays unchanged.
    """
    import array_api_compat as compat

    if isinstance(a, np.ndarray):
        return a
    if compat.is_cupy_array(a):
        return a.get()
    if compat.is_torch_array(a):
        return a.detach().cpu().numpy()
    if hasattr(a, "__dlpack__") and not compat.is_jax_array(a):
        try:
            return np.from_dlpack(a)
        except (TypeError, RuntimeError, BufferError):
            pass
    return np.asarray(a)
