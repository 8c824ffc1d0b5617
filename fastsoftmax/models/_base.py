"""What every fastsoftmax estimator shares: scikit-learn's protocol, input
checks, label encoding, the solvers, prediction and persistence.

A model subclasses ``BaseClassifier`` and supplies four things:

``_param_names``
    the names of its fitted parameter arrays, e.g. ``("W_", "b_")``;
``_init_params(be, n_features, n_classes, dtype, rng)``
    the starting parameters, a tuple of backend arrays;
``_objective(be, X, labels, sample_weight)``
    ``fun(params) -> (loss, grads)`` for the solvers in ``_solvers``;
``_scores(be, X)``
    the class scores ``(N, K)`` of the fitted model.

scikit-learn is optional: the protocol (``get_params``, ``set_params``, tags,
``classes_``, ``n_features_in_``) is implemented here without importing it,
and ``__sklearn_tags__`` imports it only when scikit-learn itself asks.
"""

from __future__ import annotations

import functools
import inspect
import sys
import warnings

import numpy as np

from .. import _validate
from ..backends import BackendUnavailableError, get_backend, to_numpy
from . import _solvers

SOLVERS = ("lbfgs", "gd")


class NotFittedError(ValueError, AttributeError):
    """The estimator is used before ``fit`` (as in scikit-learn)."""


class ConvergenceWarning(UserWarning):
    """The solver stopped at ``max_iter`` before reaching ``tol``."""


class DataConversionWarning(UserWarning):
    """The input had to be reshaped (a column-vector ``y``), as in scikit-learn."""


class InputTypeError(TypeError, ValueError):
    """Input of a type the estimator cannot use (complex, sparse).

    Both a ``TypeError`` (fastsoftmax's contract for unsuitable types) and a
    ``ValueError`` (what scikit-learn's estimators raise for the same inputs).
    """


def _also_sklearns(cls):
    """``cls``, or a subclass of it and of scikit-learn's class of the same name when
    scikit-learn is already imported -- so ``except`` clauses and warning filters
    written for either catch it, without fastsoftmax importing scikit-learn."""
    return _combined(cls, sys.modules.get("sklearn.exceptions"))


@functools.cache
def _combined(cls, sklearn_exceptions):
    if sklearn_exceptions is None:
        return cls
    return type(cls.__name__, (cls, getattr(sklearn_exceptions, cls.__name__)),
                {"__module__": cls.__module__, "__doc__": cls.__doc__})


def _is_sparse(a):
    return type(a).__module__.startswith("scipy.sparse")


def _rng(random_state):
    if isinstance(random_state, (np.random.Generator, np.random.RandomState)):
        return random_state
    if random_state is not None:
        _validate.int_param(random_state, "random_state", 0)
    return np.random.default_rng(random_state)


class BaseClassifier:
    """Base class of the fastsoftmax estimators (not public on its own)."""

    _param_names: tuple = ()
    _estimator_type = "classifier"  # scikit-learn < 1.6

    # -- scikit-learn's estimator protocol ---------------------------------
    @classmethod
    def _get_param_names(cls):
        signature = inspect.signature(cls.__init__)
        return sorted(p.name for p in signature.parameters.values()
                      if p.name != "self" and p.kind != p.VAR_KEYWORD)

    def get_params(self, deep=True):
        """The constructor's parameters, as scikit-learn's ``get_params``."""
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params):
        """Set constructor parameters; returns ``self``."""
        valid = self._get_param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"invalid parameter {name!r} for {type(self).__name__}; "
                                 f"valid ones: {', '.join(valid)}")
            setattr(self, name, value)
        return self

    def __sklearn_tags__(self):
        # Only scikit-learn calls this, so importing it here adds no dependency.
        from sklearn.utils import ClassifierTags, InputTags, Tags, TargetTags

        return Tags(estimator_type="classifier", target_tags=TargetTags(required=True),
                    classifier_tags=ClassifierTags(), input_tags=InputTags(),
                    array_api_support=False)

    def __sklearn_is_fitted__(self):
        return hasattr(self, "classes_")

    def __repr__(self):
        defaults = {name: p.default
                    for name, p in inspect.signature(type(self).__init__).parameters.items()}
        changed = [f"{k}={v!r}" for k, v in sorted(self.get_params().items())
                   if not (v is defaults.get(k) or (type(v) is type(defaults.get(k))
                                                    and v == defaults.get(k)))]
        return f"{type(self).__name__}({', '.join(changed)})"

    # -- persistence -----------------------------------------------------------
    def __getstate__(self):
        state = self.__dict__.copy()
        be = state.pop("_backend", None)
        if be is not None:  # device arrays travel as NumPy; the backend by its name
            for name in self._param_names:
                state[name] = np.array(be.to_numpy(state[name]))
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        if "backend_" in state:
            self._restore_backend()

    def _restore_backend(self):
        try:
            be = get_backend(self.backend_)
        except BackendUnavailableError as exc:
            be = get_backend("numpy")
            warnings.warn(f"this {type(self).__name__} was fitted on backend "
                          f"{self.backend_!r}, which is unavailable here ({exc}); its "
                          f"parameters were restored on the 'numpy' backend", UserWarning,
                          stacklevel=3)
        for name in self._param_names:
            setattr(self, name, be.param_array(np.asarray(getattr(self, name))))
        self._backend = be

    # -- input checks ------------------------------------------------------------
    def _check_params(self):
        """Validate the shared parameters; returns ``(reg, max_iter, tol)``."""
        if self.solver not in self._solvers:
            raise ValueError(f"solver must be one of {self._solvers}, got {self.solver!r}")
        _validate.real_param(self.lr, "lr", positive=True)
        reg = _validate.real_param(self.reg, "reg")
        max_iter = _validate.int_param(self.max_iter, "max_iter", 1)
        tol = _validate.real_param(self.tol, "tol")
        _validate.int_param(self.verbose, "verbose", 0)
        if not isinstance(self.warm_start, (bool, np.bool_)):
            raise TypeError(f"warm_start must be True or False, got {self.warm_start!r}")
        if self.dtype not in (None, "float32", "float64"):
            raise ValueError(f"dtype must be None, 'float32' or 'float64', got {self.dtype!r}")
        _rng(self.random_state)
        return reg, max_iter, tol

    def _check_X(self, be, X, *, fitting):
        if _is_sparse(X):
            raise InputTypeError(f"X is a sparse matrix ({type(X).__name__}); "
                                 f"{type(self).__name__} needs dense data: X.toarray()")
        if isinstance(X, np.ndarray) and X.dtype.kind == "c":
            raise InputTypeError(f"X has complex dtype {X.dtype}: Complex data not supported")
        if isinstance(X, (list, tuple)) or (isinstance(X, np.ndarray) and X.dtype == object):
            X = np.asarray(X, dtype=np.float64)  # a bad element raises float()'s TypeError
        X = _validate.float_array(be, X, "X")
        if X.ndim != 2:
            raise ValueError(f"X must be 2-dimensional, got shape {tuple(X.shape)}; Reshape "
                             f"your data with X.reshape(-1, 1) if it has a single feature or "
                             f"X.reshape(1, -1) if it holds a single sample")
        n, d = X.shape
        if n == 0:
            raise ValueError(f"X has 0 sample(s) (shape={tuple(X.shape)}) while a minimum "
                             f"of 1 is required")
        if d == 0:
            raise ValueError(f"0 feature(s) (shape={tuple(X.shape)}) while a minimum of 1 "
                             f"is required.")
        if not fitting and d != self.n_features_in_:
            raise ValueError(f"X has {d} features, but {type(self).__name__} is expecting "
                             f"{self.n_features_in_} features as input")
        dtype = self.dtype if fitting else None
        if dtype is None and not fitting:
            dtype = str(self._dtype)
        if dtype is not None:
            X = be.xp.astype(X, getattr(be.xp, dtype), copy=False)
        return X

    def _encode_labels(self, be, y, n):
        """``classes_`` (host) and the labels as indices ``0..K-1`` on the backend."""
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the "
                             f"target y is None")
        if hasattr(be, "encode_labels") and be.owns(y):  # labels that stay distributed (dask)
            return be.encode_labels(y, n)
        y_host = np.asarray(to_numpy(y))
        if y_host.ndim == 2 and y_host.shape[1] == 1:
            warnings.warn("A column-vector y was passed when a 1d array was expected. "
                          "Please change the shape of y to (n_samples,), for example "
                          "using ravel().", _also_sklearns(DataConversionWarning),
                          stacklevel=3)
            y_host = y_host.ravel()
        if y_host.ndim != 1:
            raise ValueError(f"y must be 1-dimensional, got shape {y_host.shape}")
        if y_host.shape[0] != n:
            raise ValueError(f"y has {y_host.shape[0]} labels but X has {n} samples")
        if y_host.dtype.kind == "c":
            raise ValueError(f"Unknown label type: complex labels (dtype {y_host.dtype})")
        if y_host.dtype.kind == "f":
            if not np.all(np.isfinite(y_host)):
                raise ValueError("y contains NaN or infinity")
            if np.any(y_host != np.round(y_host)):
                raise ValueError("Unknown label type: continuous. A classifier needs "
                                 "discrete class labels, not real-valued targets")
        if y_host.dtype.kind in "iu" and n > 0:
            # Integer labels: O(N) counting instead of np.unique's sort (10x at N = 1e7).
            lo, hi = int(y_host.min()), int(y_host.max())
            if hi - lo < max(4 * n, 1 << 16):
                present = np.bincount((y_host - lo).astype(np.intp), minlength=hi - lo + 1) > 0
                classes = (lo + np.flatnonzero(present)).astype(y_host.dtype)
                if lo == 0 and classes.size == hi + 1:
                    if be.owns(y) and y.ndim == 1:
                        return classes, y  # already 0..K-1 on the backend: no copy
                    return classes, be.asarray(y_host.astype(np.int32, copy=False))
                code = (np.cumsum(present) - 1).astype(np.int32)
                return classes, be.asarray(code[y_host - lo])
        classes, indices = np.unique(y_host, return_inverse=True)
        return classes, be.asarray(indices.astype(np.int32))

    # -- fitting -------------------------------------------------------------------
    _solvers = SOLVERS

    def fit(self, X, y, *, sample_weight=None, callback=None):
        """Train on ``(X, y)``.

        Parameters
        ----------
        X : array_like, shape (N, D)
        y : array_like, shape (N,)
            Any labels ``np.unique`` can sort (ints, strings, ...).
        sample_weight : array_like, shape (N,), optional
            Non-negative weights; the loss is their weighted mean.
        callback : callable, optional
            ``callback(evaluation, loss)`` after each evaluation of the loss;
            ``loss`` is a 0-d backend array (converting it syncs a GPU).

        Returns
        -------
        self
        """
        reg, max_iter, tol = self._check_params()
        # For "auto": the score entries the fit will compute (N x K, K >= 2, per
        # evaluation; L-BFGS needs some tens of evaluations, gradient descent max_iter).
        evals = max_iter if self.solver != "lbfgs" else min(max_iter, 50)
        rows = X.shape[0] if getattr(X, "ndim", 0) else len(X) if isinstance(X, list) else 1
        be = get_backend(self.backend, like=X, work=evals * 2 * max(1, int(rows or 1)))
        X = self._check_X(be, X, fitting=True)
        n, d = X.shape
        classes, labels = self._encode_labels(be, y, n)
        w = _validate.weight_array(be, sample_weight, n, X.dtype)
        be.check_values(X=X, sample_weight=w)  # once; the solvers' loops skip the checks

        warm = (self.warm_start and hasattr(self, "classes_")
                and np.array_equal(classes, self.classes_) and d == self.n_features_in_
                and str(self._dtype) == str(X.dtype).rsplit(".", 1)[-1])
        if warm:
            params = tuple(be.param_array(np.asarray(be.to_numpy(getattr(self, name)),
                                                     dtype=str(self._dtype)))
                           for name in self._param_names)
        else:
            dtype = str(X.dtype).rsplit(".", 1)[-1]
            params = tuple(be.param_array(p) for p in self._init_params(
                d, len(classes), dtype, _rng(self.random_state)))
        fun = self._objective(be, X, labels, w, reg)
        result = self._solve(be, fun, params, max_iter, tol, callback)

        for name, value in zip(self._param_names, result.params):
            setattr(self, name, value)
        self.classes_ = classes
        self.n_features_in_ = d
        self.n_iter_ = result.n_iter
        self.n_evals_ = result.n_evals
        self.converged_ = result.converged
        self.loss_history_ = result.loss_history
        self.backend_ = be.name
        self._backend = be
        self._dtype = np.dtype(str(X.dtype).rsplit(".", 1)[-1])
        if not result.converged and tol > 0:
            warnings.warn(f"{type(self).__name__} (solver={self.solver!r}) did not converge "
                          f"in max_iter={max_iter} iterations (tol={tol:g}); increase "
                          f"max_iter or scale the data", _also_sklearns(ConvergenceWarning),
                          stacklevel=2)
        return self

    def _solve(self, be, fun, params, max_iter, tol, callback):
        if self.solver == "lbfgs":
            return _solvers.lbfgs(fun, params, be=be, max_iter=max_iter, tol=tol,
                                  callback=callback, verbose=self.verbose)
        return _solvers.gradient_descent(fun, params, lr=float(self.lr), max_iter=max_iter,
                                         tol=tol, callback=callback, verbose=self.verbose,
                                         to_numpy=be.to_numpy)

    # -- prediction ----------------------------------------------------------------
    def _fitted(self):
        if not hasattr(self, "classes_"):
            raise _also_sklearns(NotFittedError)(
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' with "
                f"appropriate arguments before using this estimator.")
        return self._backend

    def _fitted_scores(self, X):
        be = self._fitted()
        return be, self._scores(be, self._check_X(be, X, fitting=False))

    def decision_function(self, X):
        """Class scores, shape (N, K), on the backend; for two classes, shape (N,):
        the second class's score minus the first's (scikit-learn's convention)."""
        be, S = self._fitted_scores(X)
        if S.shape[1] == 2:
            return S[:, 1] - S[:, 0]
        return S

    def predict_proba(self, X):
        """Class probabilities, shape (N, K), on the backend."""
        be, S = self._fitted_scores(X)
        return be.softmax(S, 1)

    def predict_log_proba(self, X):
        """Log class probabilities, shape (N, K), on the backend."""
        be, S = self._fitted_scores(X)
        return be.log_softmax(S, 1)

    def predict(self, X):
        """Predicted labels, shape (N,): on the backend for numeric ``classes_``."""
        be, S = self._fitted_scores(X)
        index = be.xp.argmax(S, axis=1)
        if self.classes_.dtype.kind in "iufb":
            return be.xp.take(be.asarray(self.classes_), index)
        return self.classes_[to_numpy(index)]

    def score(self, X, y, sample_weight=None):
        """(Weighted) mean accuracy on ``(X, y)``, a Python float."""
        be = self._fitted()
        if hasattr(be, "encode_labels") and be.owns(y) and sample_weight is None:
            # Labels that stay distributed (dask): one reduction, nothing gathered.
            return float(be.xp.mean(be.xp.astype(self.predict(X) == y, be.xp.float64)))
        predicted = np.asarray(to_numpy(self.predict(X)))
        correct = predicted == np.asarray(to_numpy(y)).reshape(predicted.shape)
        if sample_weight is None:
            return float(np.mean(correct))
        return float(np.average(correct, weights=np.asarray(to_numpy(sample_weight))))

