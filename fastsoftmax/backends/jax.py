"""The ``jax`` backend: the Array-API reference on ``jax.numpy``.

No kernels of its own: ``jax.numpy`` is an Array-API namespace, so the one
implementation in ``_reference`` runs on it unchanged. Arrays stay JAX arrays
(on whatever device they are), and every op works on traced arrays, so the
public functions can be called inside ``jax.jit``, ``jax.vmap`` or ``jax.grad``.

Two rules are JAX's own (docs/backends.md):

* **64-bit.** fastsoftmax enables nothing global. With JAX's 64-bit mode off
  (``jax_enable_x64``, JAX's default) JAX arrays are 32-bit: a NumPy float64
  input is a ``TypeError`` naming the argument (JAX would silently compute it
  in float32), while Python numbers and integer inputs become float32 (JAX's
  default float, where the other backends promote integers to float64), and
  float32 sums accumulate in float32 (XLA's pairwise reductions) for want of a
  float64. With 64-bit mode on, float64 works as on every other backend.
* **Under ``jax.jit``** the value checks (finite ``X``/``W``/``b``, labels in
  range, weights) cannot raise, since the values are not known while tracing:
  there, invalid values turn every output of the call into NaN instead. The
  structural checks (types, shapes, dtypes) still raise. ``reg`` must be a
  concrete number (close over it, or mark it static).
"""

from __future__ import annotations

import numpy as np

from ._base import Backend, BackendUnavailableError, to_numpy

_INT32 = np.iinfo(np.int32)


class _Namespace32:
    """``jax.numpy`` as seen with 64-bit mode off: asking for float64 (int64)
    means JAX's default float32 (int32), as JAX itself would give, without the
    warning JAX prints when a 64-bit dtype is requested explicitly."""

    def __init__(self, xp):
        self._xp = xp
        self.float64 = xp.float32
        self.int64 = xp.int32

    def __getattr__(self, name):
        return getattr(self._xp, name)


class JaxBackend(Backend):
    def __init__(self, name, xp, *, version, device):
        import jax

        self._jax = jax
        self._xp64 = xp
        self._xp32 = _Namespace32(xp)
        self.name = name
        self.version = version
        self.device = device

    @property
    def xp(self):
        # Read at every call: the 64-bit flag may be switched after loading.
        return self._xp64 if self._x64() else self._xp32

    def _x64(self):
        return bool(self._jax.config.read("jax_enable_x64"))

    # -- arrays in and out -------------------------------------------------
    def owns(self, a):
        return isinstance(a, self._jax.Array)

    def asarray(self, a):
        if self.owns(a):
            return a
        return self._xp64.asarray(to_numpy(a))

    def check_input(self, a, name):
        if self._x64() or not isinstance(a, (np.ndarray, np.generic)):
            return
        if a.dtype == np.float64:
            raise TypeError(
                f"{name} is float64, but JAX's 64-bit mode is off, so JAX would compute "
                f"it in float32; pass float32 arrays, or enable 64-bit mode first "
                f"(jax.config.update('jax_enable_x64', True))")
        if a.dtype.kind in "iu" and a.dtype.itemsize >= 4 and a.size \
                and (a.min() < _INT32.min or a.max() > _INT32.max):
            raise ValueError(
                f"{name} holds integers outside the int32 range, which JAX without "
                f"64-bit mode cannot hold (it would wrap them)")

    def info(self):
        info = super().info()
        info["device"] = f"{self.device} (64-bit mode {'on' if self._x64() else 'off'})"
        return info

    # -- ops: the reference; under tracing, bad values give NaN -------------
    def _traced(self, *arrays):
        tracer = self._jax.core.Tracer
        return any(isinstance(a, tracer) for a in arrays)

    def _poisoned(self, outs, *, X=None, W=None, b=None, y=None, n_classes=None,
                  sample_weight=None):
        """``outs`` with every entry NaN where the value checks fail (traced)."""
        xp = self._xp64
        ok = xp.asarray(True)
        for a in (X, W, b, sample_weight):
            if a is not None:
                ok = ok & xp.all(xp.isfinite(a))
        if y is not None:
            ok = ok & (xp.min(y) >= 0) & (xp.max(y) < n_classes)
        if sample_weight is not None:
            ok = ok & xp.all(sample_weight >= 0) & (xp.sum(sample_weight) > 0)
        single = not isinstance(outs, tuple)
        outs = (outs,) if single else outs
        outs = tuple(xp.where(ok, o, xp.asarray(xp.nan, dtype=o.dtype)) for o in outs)
        return outs[0] if single else outs

    def scores(self, X, W, b, *, check=True):
        if check and self._traced(X, W, b):
            return self._poisoned(super().scores(X, W, b, check=False), X=X, W=W, b=b)
        return super().scores(X, W, b, check=check)

    def cross_entropy(self, S, y, *, reduction="mean", sample_weight=None, check=True):
        out = super().cross_entropy(S, y, reduction=reduction, sample_weight=sample_weight,
                                    check=check and not self._traced(y, sample_weight))
        if check and self._traced(y, sample_weight):
            out = self._poisoned(out, y=y, n_classes=S.shape[1], sample_weight=sample_weight)
        return out

    def cross_entropy_gradient(self, S, y, *, reduction="mean", sample_weight=None,
                               check=True):
        traced = check and self._traced(y, sample_weight)
        out = super().cross_entropy_gradient(S, y, reduction=reduction,
                                             sample_weight=sample_weight,
                                             check=check and not traced)
        if traced:
            out = self._poisoned(out, y=y, n_classes=S.shape[1], sample_weight=sample_weight)
        return out

    def loss(self, X, y, W, b, *, reg=0.0, sample_weight=None, check=True):
        traced = check and self._traced(X, y, W, b, sample_weight)
        out = super().loss(X, y, W, b, reg=reg, sample_weight=sample_weight,
                           check=check and not traced)
        if traced:
            out = self._poisoned(out, X=X, W=W, b=b, y=y, n_classes=W.shape[1],
                                 sample_weight=sample_weight)
        return out

    def loss_gradient(self, X, y, W, b, *, reg=0.0, sample_weight=None, check=True):
        traced = check and self._traced(X, y, W, b, sample_weight)
        out = super().loss_gradient(X, y, W, b, reg=reg, sample_weight=sample_weight,
                                    check=check and not traced)
        if traced:
            out = self._poisoned(out, X=X, W=W, b=b, y=y, n_classes=W.shape[1],
                                 sample_weight=sample_weight)
        return out


def load():
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        raise BackendUnavailableError(
            "JAX is not installed; install it with 'pip install \"jax[cpu]\"' "
            "(the 'test' and 'bench' extras include it)"
        ) from None
    devices = jax.devices()
    device = f"{devices[0].platform} ({len(devices)} device{'s' if len(devices) > 1 else ''})"
    return JaxBackend("jax", jnp, version=jax.__version__, device=device)
