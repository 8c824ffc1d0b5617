"""``gradcheck``: centred finite differences against an analytic gradient.

The cs231n way of trusting a hand-derived backprop: nudge one parameter entry
by ``+h`` and ``-h``, take ``(L(p + h) - L(p - h)) / 2h``, and compare it with
the analytic gradient entry through the relative error

    rel_error(a, n) = |a - n| / max(1e-8, |a| + |n|)

(the case study's ``rel_error``, entry by entry). In float64, a correct
gradient gives about 1e-9 or less; 1e-7 or more is suspect, 1e-2 is a bug.
A ReLU kink crossed by the nudge, or an entry whose gradient is ~0, can show
a large error on a correct gradient: the report says where, so it can be looked at.

Works for any ``fun(params) -> (loss, grads)`` (the solvers' contract, so any
model of fastsoftmax) and for the estimators themselves, on every backend: the
parameters are perturbed on the host and moved back with the backend's
``asarray``, so immutable arrays (``array_api_strict``, JAX) are fine.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import _validate
from .backends import get_backend


@dataclass
class GradcheckResult:
    """What ``gradcheck`` found.

    Attributes
    ----------
    max_rel_error : float
        The largest relative error over every checked entry.
    param : str
        The parameter where it occurs ...
    index : tuple of int
        ... and the entry.
    analytic, numeric : float
        The two gradient values at that entry.
    per_param : dict
        ``name -> max relative error`` over that parameter's checked entries.
    n_checked : int
        How many entries were checked (two loss evaluations each).
    step : dict
        ``name -> h``, the (largest) step used for that parameter.
    """

    max_rel_error: float
    param: str
    index: tuple
    analytic: float
    numeric: float
    per_param: dict = field(default_factory=dict)
    n_checked: int = 0
    step: dict = field(default_factory=dict)

    def __str__(self):
        parts = ", ".join(f"{k} {v:.2e}" for k, v in self.per_param.items())
        return (f"max relative error {self.max_rel_error:.3e} at {self.param}{list(self.index)} "
                f"(analytic {self.analytic:.6g}, numeric {self.numeric:.6g}); "
                f"per parameter: {parts}; {self.n_checked} entries checked")


def rel_error(a, n):
    """The case study's relative error, elementwise: ``|a - n| / max(1e-8, |a| + |n|)``.

    Examples
    --------
    >>> from fastsoftmax import rel_error
    >>> float(rel_error(1.0, 1.5))      # 0.5 / 2.5
    0.2
    """
    a = np.asarray(a, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    return np.abs(a - n) / np.maximum(1e-8, np.abs(a) + np.abs(n))


def _is_estimator(f):
    return hasattr(f, "_objective") and hasattr(f, "_param_names")


def _estimator_problem(model, X, y, sample_weight):
    """``(fun, params, names, backend)`` of an estimator on ``(X, y)``: its fitted
    parameters, or the ones ``fit`` would start from."""
    from .models._base import _rng

    model._check_params()
    fitted = hasattr(model, "classes_")
    be = model._backend if fitted else get_backend(model.backend, like=X)
    X = model._check_X(be, X, fitting=not fitted)  # fitted: its features, its dtype
    n, d = X.shape
    if fitted:
        y_host = np.asarray(be.to_numpy(be.asarray(y)) if not isinstance(y, np.ndarray) else y)
        classes = model.classes_
        index = np.minimum(np.searchsorted(classes, y_host), len(classes) - 1)
        if y_host.shape != (n,) or np.any(classes[index] != y_host):
            raise ValueError("y must hold one label per row of X, among the fitted "
                             "model's classes_")
        labels = be.asarray(index.astype(np.int32))
        params = tuple(getattr(model, name) for name in model._param_names)
    else:
        classes, labels = model._encode_labels(be, y, n)
        dtype = str(X.dtype).rsplit(".", 1)[-1]
        params = tuple(be.param_array(p) for p in model._init_params(
            d, len(classes), dtype, _rng(model.random_state)))
    w = _validate.weight_array(be, sample_weight, n, X.dtype)
    reg = _validate.real_param(model.reg, "reg")
    fun = model._objective(be, X, labels, w, reg)
    names = tuple(name.rstrip("_") for name in model._param_names)
    return fun, params, names, be


def gradcheck(f, params, y=None, *, sample_weight=None, names=None, h=None, n_checks=None,
              seed=0, backend=None):
    """Check an analytic gradient against centred finite differences.

    Parameters
    ----------
    f : callable or estimator
        Either ``f(params) -> (loss, grads)`` with ``grads`` a tuple shaped like
        ``params`` (what every model's objective and ``loss_gradient`` /
        ``net_loss_gradient`` give, wrapped in a lambda), or a fastsoftmax
        estimator (``SoftmaxClassifier``, ``TwoLayerNet``): then ``params`` is
        ``X`` and ``y`` the labels, and its objective is checked at its fitted
        parameters (unfitted: at the ones ``fit`` would start from).
    params : tuple of arrays, or X
    y : array_like, optional
        The labels, for an estimator.
    sample_weight : array_like, optional
        For an estimator.
    names : sequence of str, optional
        Parameter names for the report (an estimator's are its own: ``W1``, ...).
    h : float, optional
        The step. Default: ``cbrt(eps)`` of the dtype times ``max(1, |p|)`` for
        each entry -- about 6e-6 in float64 and 5e-3 in float32, where the
        truncation error ``~h^2`` and the rounding error ``~eps/h`` balance. The
        difference is divided by the step actually taken after rounding to the dtype.
    n_checks : int, optional
        Check this many entries of each parameter, drawn at random (``seed``);
        default: every entry.
    seed : int, default 0
    backend : str, Backend or None
        The backend whose arrays ``params`` are (default: from their type).

    Returns
    -------
    GradcheckResult
        ``max_rel_error`` and where it occurs (``param``, ``index``).

    Examples
    --------
    >>> import numpy as np, fastsoftmax as fs
    >>> rng = np.random.default_rng(3)
    >>> X, y = rng.standard_normal((20, 2)), rng.integers(0, 3, 20)
    >>> W1, b1 = rng.standard_normal((2, 8)), rng.standard_normal(8)
    >>> W2, b2 = rng.standard_normal((8, 3)), np.zeros(3)
    >>> def f(p):
    ...     loss, *grads = fs.net_loss_gradient(X, y, *p, reg=1e-3, backend="numpy")
    ...     return loss, grads
    >>> result = fs.gradcheck(f, (W1, b1, W2, b2), names=("W1", "b1", "W2", "b2"))
    >>> result.max_rel_error < 1e-7, result.n_checked
    (True, 51)
    >>> net = fs.TwoLayerNet(hidden=8, init_scale=1.0, random_state=0, backend="numpy")
    >>> fs.gradcheck(net, X, y).max_rel_error < 1e-7      # at fit's starting point
    True
    """
    if _is_estimator(f):
        if y is None:
            raise TypeError("gradcheck of an estimator needs the data: gradcheck(model, X, y)")
        fun, params, own_names, be = _estimator_problem(f, params, y, sample_weight)
        names = own_names if names is None else tuple(names)
    else:
        if not callable(f):
            raise TypeError(f"f must be a callable f(params) -> (loss, grads) or an "
                            f"estimator, got {type(f).__name__}")
        if y is not None or sample_weight is not None:
            raise TypeError("y and sample_weight are for an estimator; bind them into f")
        if not isinstance(params, (tuple, list)) or not params:
            raise TypeError("params must be a non-empty tuple of arrays")
        fun = f
        be = get_backend(backend, like=params[0])
        params = tuple(be.asarray(p) for p in params)
        names = tuple(f"p{i}" for i in range(len(params))) if names is None else tuple(names)
    if len(names) != len(params):
        raise ValueError(f"names has {len(names)} entries for {len(params)} parameters")
    if h is not None:
        h = _validate.real_param(h, "h", positive=True)
    if n_checks is not None:
        n_checks = _validate.int_param(n_checks, "n_checks", 1)

    host = [np.array(be.to_numpy(p)) for p in params]
    _, grads = fun(params)
    analytic = [np.asarray(be.to_numpy(g), dtype=np.float64) for g in grads]
    rng = np.random.default_rng(seed)

    def loss_at(i, value):
        moved = list(params)
        moved[i] = be.param_array(value)
        return float(fun(tuple(moved))[0])

    worst = None
    per_param, steps = {}, {}
    n_checked = 0
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for i, (name, p) in enumerate(zip(names, host)):
            if analytic[i].shape != p.shape:
                raise ValueError(f"the gradient of {name} has shape {analytic[i].shape}, "
                                 f"the parameter {p.shape}")
            flat_indices = np.arange(p.size)
            if n_checks is not None and n_checks < p.size:
                flat_indices = np.sort(rng.choice(p.size, n_checks, replace=False))
            eps = float(np.finfo(p.dtype).eps) if p.dtype.kind == "f" else 2.0**-52
            worst_here, step_here = 0.0, 0.0
            for flat in flat_indices:
                index = np.unravel_index(flat, p.shape)
                x = float(p[index])
                step = h if h is not None else np.cbrt(eps) * max(1.0, abs(x))
                plus, minus = p.copy(), p.copy()
                plus[index] = x + step
                minus[index] = x - step
                taken = float(plus[index]) - float(minus[index])  # after rounding to dtype
                numeric = (loss_at(i, plus) - loss_at(i, minus)) / taken
                a = float(analytic[i][index])
                err = float(rel_error(a, numeric))
                n_checked += 1
                step_here = max(step_here, taken / 2)
                if not err <= worst_here:  # NaN counts as worst
                    worst_here = err
                if worst is None or not err <= worst[0]:
                    worst = (err, name, tuple(int(j) for j in index), a, numeric)
            per_param[name] = worst_here
            steps[name] = step_here
    err, name, index, a, numeric = worst
    return GradcheckResult(err, name, index, a, numeric, per_param, n_checked, steps)
