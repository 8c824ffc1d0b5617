"""The optimisers behind the estimators, independent of any one model.

A solver minimises ``fun(params) -> (loss, grads)``, where ``params`` and
``grads`` are tuples of backend arrays of the same shapes and ``loss`` is a 0-d
backend array (what every backend's ``loss_gradient`` returns). A model supplies
``fun`` and the initial ``params``; the solver never looks inside them.

* ``gradient_descent`` is the notebook's loop: ``p -= lr * g``, the arrays
  staying on the backend (a GPU syncs only where ``tol``, ``verbose`` or a
  ``callback`` needs a number).
* ``lbfgs`` hands SciPy's L-BFGS-B one flat float64 host vector of all the
  parameters; each evaluation moves those few numbers to the backend and the
  loss and gradient back -- the data never leave it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


class TrainingDivergedError(ValueError):
    """The loss became NaN or infinite during training.

    Attributes
    ----------
    iteration : int
        The first iteration (0-based) whose loss was not finite.
    loss : float
        That loss.
    """

    def __init__(self, message, *, iteration, loss):
        super().__init__(message)
        self.iteration = iteration
        self.loss = loss


@dataclass
class SolverResult:
    """What a solver returns.

    ``loss_history`` holds one float per evaluation of ``fun``, in order: for
    gradient descent the loss before each step, for L-BFGS every evaluation
    (line-search trials included). ``n_iter`` counts iterations (gradient steps
    taken, or L-BFGS iterations); ``n_evals`` counts evaluations of ``fun``.
    """

    params: tuple
    n_iter: int
    n_evals: int
    converged: bool
    loss_history: list = field(default_factory=list)
    message: str = ""


def _max_abs(grads):
    return max(float(np.max(np.abs(np.asarray(g)))) if np.ndim(g) else abs(float(g))
               for g in grads)


def gradient_descent(fun, params, *, lr, max_iter, tol=0.0, callback=None, verbose=0,
                     print_every=10, to_numpy=np.asarray):
    """Full-batch gradient descent, ``max_iter`` steps of ``p = p - lr * g``.

    Stops early, converged, when the largest absolute gradient entry is at most
    ``tol`` (the same criterion as L-BFGS-B's ``gtol``; ``tol=0`` never stops
    early and never syncs a GPU for it). The loss of each step is kept on the
    backend until the end.

    Raises
    ------
    TrainingDivergedError
        If a loss is NaN or infinite, naming the first such iteration.
    """
    losses = []
    converged = False
    check = tol > 0
    n_iter = 0
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for i in range(max_iter):
            loss, grads = fun(params)
            losses.append(loss)
            if callback is not None:
                callback(i, loss)
            if verbose and print_every and i % print_every == 0:
                print(f"iteration {i}: loss {float(loss):f}")
            if check:
                if not math.isfinite(float(loss)):
                    break
                if _max_abs([to_numpy(g) for g in grads]) <= tol:
                    converged = True
                    break
            params = tuple(p - lr * g for p, g in zip(params, grads))
            n_iter += 1
    history = [float(v) for v in losses]
    _raise_if_diverged(history, f"try a smaller lr than {lr}")
    return SolverResult(params, n_iter, len(history), converged, history,
                        "converged" if converged else "max_iter reached")


def _raise_if_diverged(history, advice):
    for i, value in enumerate(history):
        if not math.isfinite(value):
            raise TrainingDivergedError(
                f"training diverged at iteration {i} (loss {value}); {advice}",
                iteration=i, loss=value)


def lbfgs(fun, params, *, be, max_iter, tol, callback=None, verbose=0):
    """SciPy's L-BFGS-B over the flattened parameters, scikit-learn's settings.

    ``tol`` is L-BFGS-B's ``gtol`` (stop when the largest absolute gradient entry
    is at most ``tol``), ``max_iter`` its ``maxiter``, ``ftol`` is
    ``64 * eps`` and the line search may take 50 steps -- exactly what
    scikit-learn's ``LogisticRegression(solver="lbfgs")`` passes.
    """
    from scipy.optimize import minimize

    host = [np.asarray(be.to_numpy(p)) for p in params]
    dtype = host[0].dtype
    shapes = [h.shape for h in host]
    splits = np.cumsum([h.size for h in host])[:-1]
    history = []

    def unpack(theta):
        return tuple(be.param_array(np.ascontiguousarray(part.reshape(shape), dtype=dtype))
                     for part, shape in zip(np.split(theta, splits), shapes))

    def objective(theta):
        loss, grads = fun(unpack(theta))
        value = float(loss)
        history.append(value)
        if callback is not None:
            callback(len(history) - 1, loss)
        if not math.isfinite(value):
            # L-BFGS-B's line search backs off from an infinite value; a NaN it cannot.
            return math.inf, np.zeros_like(theta)
        flat = np.concatenate([np.asarray(be.to_numpy(g), dtype=np.float64).ravel()
                               for g in grads])
        return value, flat

    def report(intermediate_result):
        if verbose:
            print(f"iteration {report.nit}: loss {float(intermediate_result.fun):f}")
        report.nit += 1

    report.nit = 1
    x0 = np.concatenate([h.astype(np.float64).ravel() for h in host])
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        result = minimize(objective, x0, jac=True, method="L-BFGS-B", callback=report,
                          options={"maxiter": max_iter, "maxls": 50, "gtol": tol,
                                   "ftol": 64 * np.finfo(float).eps})
    if not math.isfinite(result.fun):
        raise TrainingDivergedError(
            f"training diverged: L-BFGS ended at iteration {result.nit} with loss "
            f"{result.fun}; check the data's scale or raise reg",
            iteration=int(result.nit), loss=float(result.fun))
    message = result.message if isinstance(result.message, str) else result.message.decode()
    return SolverResult(unpack(result.x), int(result.nit), len(history),
                        bool(result.status == 0), history, message)
