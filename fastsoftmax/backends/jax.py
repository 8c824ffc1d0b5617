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

import functools

import numpy as np

from . import _reference
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
        self._cache = {}
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

    # -- ops: the reference, compiled once per signature -------------------
    # A repeated call is one jitted call: eager jax.numpy dispatches every small
    # op separately (~10 ms per training step at N=300, ~1 ms jitted). The first
    # call of a signature runs eagerly, since compiling costs more than one call
    # (~0.1-0.3 s): one-off calls stay cheap, loops compile once. The value
    # checks run in the same call as one boolean; when it is false the generic
    # check_values words the error. Traced (inside the caller's jax.jit) the op
    # joins the caller's trace, and nothing can raise: every output becomes NaN.
    def _compiled(self, op, check, args, **static):
        key = (op, check, self._x64(), tuple(sorted(static.items())),
               tuple(None if a is None else (a.shape, str(a.dtype)) for a in args))
        fn = self._cache.get(key)
        if fn is None:  # first call of this signature: run eagerly, compile next time
            self._cache[key] = False
            return functools.partial(_checked_op, op, check, self.xp, **static)
        if fn is False:
            fn = self._jax.jit(functools.partial(_checked_op, op, check, self.xp, **static))
            self._cache[key] = fn
        return fn

    def _run(self, op, args, check, checks, **static):
        traced = any(isinstance(a, self._jax.core.Tracer) for a in args)
        if traced:
            outs, ok = _checked_op(op, check, self.xp, *args, **static)
        else:
            outs, ok = self._compiled(op, check, args, **static)(*args)
        if check:
            if traced:
                xp = self._xp64
                nan = functools.partial(xp.asarray, xp.nan)
                poisoned = tuple(xp.where(ok, o, nan(dtype=o.dtype)) for o in outs)
                outs = poisoned
            elif not bool(ok):
                self.check_values(**checks)  # raises, naming the argument
        return outs[0] if len(outs) == 1 else outs

    def scores(self, X, W, b, *, check=True):
        return self._run("scores", (X, W, b), check, {"X": X, "W": W, "b": b})

    def softmax(self, S, axis=-1):
        return self._run("softmax", (S,), False, {}, axis=axis)

    def log_softmax(self, S, axis=-1):
        return self._run("log_softmax", (S,), False, {}, axis=axis)

    def logsumexp(self, S, axis=-1):
        return self._run("logsumexp", (S,), False, {}, axis=axis)

    def cross_entropy(self, S, y, *, reduction="mean", sample_weight=None, check=True):
        return self._run("cross_entropy", (S, y, sample_weight), check,
                         {"y": y, "n_classes": S.shape[1], "sample_weight": sample_weight},
                         reduction=reduction)

    def cross_entropy_gradient(self, S, y, *, reduction="mean", sample_weight=None,
                               check=True):
        return self._run("cross_entropy_gradient", (S, y, sample_weight), check,
                         {"y": y, "n_classes": S.shape[1], "sample_weight": sample_weight},
                         reduction=reduction)

    def loss(self, X, y, W, b, *, reg=0.0, sample_weight=None, check=True):
        return self._run("loss", (X, y, W, b, sample_weight), check,
                         {"X": X, "W": W, "b": b, "y": y, "n_classes": W.shape[1],
                          "sample_weight": sample_weight}, reg=reg)

    def loss_gradient(self, X, y, W, b, *, reg=0.0, sample_weight=None, check=True):
        return self._run("loss_gradient", (X, y, W, b, sample_weight), check,
                         {"X": X, "W": W, "b": b, "y": y, "n_classes": W.shape[1],
                          "sample_weight": sample_weight}, reg=reg)


_ARGS = {  # positional arrays of each op, in order
    "scores": ("X", "W", "b"), "softmax": ("S",), "log_softmax": ("S",),
    "logsumexp": ("S",), "cross_entropy": ("S", "y", "sample_weight"),
    "cross_entropy_gradient": ("S", "y", "sample_weight"),
    "loss": ("X", "y", "W", "b", "sample_weight"),
    "loss_gradient": ("X", "y", "W", "b", "sample_weight"),
}


def _checked_op(op, check, xp, *args, **static):
    """``(outputs, ok)``: the reference op and, with ``check``, whether the
    values pass ``check_values`` (finite X/W/b, labels in range, weights)."""
    named = dict(zip(_ARGS[op], args))
    if op in ("softmax", "log_softmax", "logsumexp"):
        outs = getattr(_reference, op)(named["S"], static["axis"], xp=xp)
    elif op == "scores":
        outs = _reference.scores(*args, xp=xp)
    else:
        outs = getattr(_reference, op)(*args[:-1], sample_weight=args[-1], xp=xp, **static)
    outs = outs if isinstance(outs, tuple) else (outs,)
    ok = xp.asarray(True)
    if check:
        for name in ("X", "W", "b", "sample_weight"):
            if named.get(name) is not None:
                ok = ok & xp.all(xp.isfinite(named[name]))
        if named.get("y") is not None:
            k = (named["W"] if "W" in named else named["S"]).shape[1]
            ok = ok & (xp.min(named["y"]) >= 0) & (xp.max(named["y"]) < k)
        w = named.get("sample_weight")
        if w is not None:
            ok = ok & xp.all(w >= 0) & (xp.sum(w) > 0)
    return outs, ok


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
