"""``SoftmaxClassifier``: the notebook's full-batch gradient descent, on any backend."""

from __future__ import annotations

import math
import warnings

import numpy as np

from . import _validate
from .backends import get_backend, to_numpy


class NotFittedError(ValueError, AttributeError):
    """The estimator is used before ``fit`` (as in scikit-learn)."""


class SoftmaxClassifier:
    """Linear softmax classifier trained by full-batch gradient descent.

    Exactly the notebook's loop: ``W = 0.01 * randn(D, K)``, ``b = 0``, then
    ``max_iter`` steps of ``W -= lr * dW``, ``b -= lr * db`` with the gradient of
    the mean cross-entropy plus ``0.5 * reg * |W|^2``. Every array stays on the
    backend during the loop; on a GPU nothing syncs unless ``verbose`` prints or
    a ``callback`` converts the loss.

    Parameters
    ----------
    lr : float, default 1.0
        Step size.
    reg : float, default 1e-3
        L2 regularisation strength (``b`` is not regularised).
    max_iter : int, default 200
        Number of gradient steps.
    backend : str, Backend or None
        As for every op; ``None`` follows ``$FASTSOFTMAX_BACKEND`` / ``"auto"``.
    dtype : {None, "float32", "float64"}
        Compute dtype; ``None`` keeps ``X``'s floating dtype.
    seed : int or None
        Seeds the initial ``W`` (drawn with NumPy, so every backend starts alike).
    verbose : int, default 0
        If positive, print ``iteration N: loss X`` every 10 steps, as the notebook.

    Attributes
    ----------
    W_ : array, shape (D, K)
    b_ : array, shape (K,)
    classes_ : ndarray, shape (K,)
        The sorted distinct labels seen in ``fit``.
    n_features_in_ : int
    n_iter_ : int
    loss_history_ : list of float
        The loss before each step (one float a step).

    Examples
    --------
    >>> import fastsoftmax as fs
    >>> X, y = fs.make_spiral(seed=0, backend="numpy")
    >>> clf = fs.SoftmaxClassifier(seed=0, backend="numpy").fit(X, y)
    >>> len(clf.loss_history_), clf.loss_history_[-1] < clf.loss_history_[0]
    (200, True)
    """

    _params = ("lr", "reg", "max_iter", "backend", "dtype", "seed", "verbose")

    def __init__(self, *, lr=1.0, reg=1e-3, max_iter=200, backend=None, dtype=None,
                 seed=None, verbose=0):
        self.lr = lr
        self.reg = reg
        self.max_iter = max_iter
        self.backend = backend
        self.dtype = dtype
        self.seed = seed
        self.verbose = verbose

    # -- scikit-learn's estimator protocol ---------------------------------
    def get_params(self, deep=True):
        return {name: getattr(self, name) for name in self._params}

    def set_params(self, **params):
        for name, value in params.items():
            if name not in self._params:
                raise ValueError(f"invalid parameter {name!r} for SoftmaxClassifier; "
                                 f"valid ones: {', '.join(self._params)}")
            setattr(self, name, value)
        return self

    _estimator_type = "classifier"  # scikit-learn < 1.6

    def __sklearn_tags__(self):
        # Only scikit-learn calls this, so importing it here adds no dependency.
        from sklearn.utils import ClassifierTags, InputTags, Tags, TargetTags

        return Tags(estimator_type="classifier", target_tags=TargetTags(required=True),
                    classifier_tags=ClassifierTags(), input_tags=InputTags(),
                    array_api_support=True)

    def __repr__(self):
        changed = [f"{k}={v!r}" for k, v in self.get_params().items()
                   if v != type(self)().get_params()[k]]
        return f"SoftmaxClassifier({', '.join(changed)})"

    # -- fitting -------------------------------------------------------------
    def _check_params(self):
        lr = _validate.real_param(self.lr, "lr", positive=True)
        reg = _validate.real_param(self.reg, "reg")
        max_iter = _validate.int_param(self.max_iter, "max_iter", 1)
        _validate.int_param(self.verbose, "verbose", 0)
        if self.dtype not in (None, "float32", "float64"):
            raise ValueError(f"dtype must be None, 'float32' or 'float64', got {self.dtype!r}")
        if self.seed is not None:
            _validate.int_param(self.seed, "seed", 0)
        return lr, reg, max_iter

    def _features(self, be, X):
        X = _validate.float_array(be, X, "X", ndim=2)
        if X.shape[0] == 0 or X.shape[1] == 0:
            raise ValueError(f"X is empty: shape {tuple(X.shape)}")
        if self.dtype is not None:
            X = be.xp.astype(X, getattr(be.xp, self.dtype), copy=False)
        return X

    def _encode_labels(self, be, y, n):
        """``classes_`` (host) and labels as indices ``0..K-1`` on the backend."""
        y_host = np.asarray(to_numpy(y))
        if y_host.ndim != 1:
            raise ValueError(f"y must be 1-dimensional, got shape {y_host.shape}")
        if y_host.shape[0] != n:
            raise ValueError(f"y has {y_host.shape[0]} labels but X has {n} samples")
        if y_host.dtype.kind == "f" and not np.all(np.isfinite(y_host)):
            raise ValueError("y contains NaN or infinity")
        classes, indices = np.unique(y_host, return_inverse=True)
        if y_host.dtype.kind in "iu" and np.array_equal(classes, np.arange(len(classes))):
            return classes, be.asarray(y)  # already 0..K-1: no re-encoding, no transfer
        return classes, be.asarray(indices.astype(np.int32))

    def fit(self, X, y, *, sample_weight=None, callback=None):
        """Train on ``(X, y)``.

        Parameters
        ----------
        X : array_like, shape (N, D)
        y : array_like, shape (N,)
            Any labels ``np.unique`` can sort (ints, strings, ...).
        sample_weight : array_like, shape (N,), optional
        callback : callable, optional
            ``callback(iteration, loss)`` after each step's loss is computed;
            ``loss`` is a 0-d backend array (converting it syncs a GPU).

        Returns
        -------
        self
        """
        lr, reg, max_iter = self._check_params()
        be = get_backend(self.backend, like=X)
        xp = be.xp
        X = self._features(be, X)
        n, d = X.shape
        self.classes_, labels = self._encode_labels(be, y, n)
        w = _validate.weight_array(be, sample_weight, n, X.dtype)
        be.check_values(X=X, sample_weight=w)  # once; the loop below skips the checks

        k = len(self.classes_)
        dtype = str(X.dtype).rsplit(".", 1)[-1]
        # Drawn on the host with NumPy, so every backend (a GPU too) starts alike.
        W0 = np.random.default_rng(self.seed).standard_normal((d, k)).astype(dtype)
        W = be.asarray(0.01 * W0)
        b = xp.zeros((k,), dtype=X.dtype)
        losses = []
        for i in range(max_iter):
            loss, dW, db = be.loss_gradient(X, labels, W, b, reg=reg, sample_weight=w,
                                            check=False)
            losses.append(loss)
            if callback is not None:
                callback(i, loss)
            if self.verbose and i % 10 == 0:
                print(f"iteration {i}: loss {float(loss):f}")
            W = W - lr * dW
            b = b - lr * db

        self.W_, self.b_ = W, b
        self.n_features_in_ = d
        self.n_iter_ = max_iter
        self.loss_history_ = [float(v) for v in to_numpy(xp.stack(losses))]
        self._backend = be
        if not math.isfinite(self.loss_history_[-1]):
            warnings.warn(f"training diverged (loss {self.loss_history_[-1]}); "
                          f"try a smaller lr than {lr}", RuntimeWarning, stacklevel=2)
        return self

    # -- prediction ----------------------------------------------------------
    def _fitted_scores(self, X):
        if not hasattr(self, "W_"):
            raise NotFittedError("this SoftmaxClassifier is not fitted yet; call fit first")
        be = self._backend
        X = _validate.float_array(be, X, "X", ndim=2)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features but the classifier was fitted "
                             f"with {self.n_features_in_}")
        X = be.xp.astype(X, self.W_.dtype, copy=False)
        return be, be.scores(X, self.W_, self.b_)

    def decision_function(self, X):
        """Class scores ``X @ W_ + b_``, shape (N, K), on the backend."""
        return self._fitted_scores(X)[1]

    def predict_proba(self, X):
        """Class probabilities, shape (N, K), on the backend."""
        be, S = self._fitted_scores(X)
        return be.softmax(S, 1)

    def predict(self, X):
        """Predicted labels, shape (N,): on the backend for numeric ``classes_``."""
        be, S = self._fitted_scores(X)
        index = be.xp.argmax(S, axis=1)
        if self.classes_.dtype.kind in "iufb":
            return be.xp.take(be.asarray(self.classes_), index)
        return self.classes_[to_numpy(index)]

    def score(self, X, y):
        """Mean accuracy on ``(X, y)``, a Python float."""
        predicted = np.asarray(to_numpy(self.predict(X)))
        return float(np.mean(predicted == np.asarray(to_numpy(y))))
