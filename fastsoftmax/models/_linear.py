"""``SoftmaxClassifier``: multinomial logistic regression on the fused kernels."""

from __future__ import annotations

import numpy as np

from ._base import BaseClassifier


class SoftmaxClassifier(BaseClassifier):
    """Linear softmax classifier (multinomial logistic regression).

    Minimises the mean cross-entropy of ``softmax(X @ W + b)`` plus
    ``0.5 * reg * |W|^2`` (``b`` is not regularised), with one fused
    ``loss_gradient`` per evaluation on the chosen backend.

    Parameters
    ----------
    solver : {"lbfgs", "gd"}, default "lbfgs"
        ``"lbfgs"``: SciPy's L-BFGS-B, started at ``W = 0, b = 0`` as
        scikit-learn's ``LogisticRegression`` does; the default, because the
        objective is smooth and convex, where a quasi-Newton method reaches the
        optimum in tens of evaluations and needs no step size (scikit-learn's
        reasoning for its own default). ``"gd"``: the notebook's full-batch
        gradient descent, ``W = 0.01 * randn(D, K)``, ``b = 0``, then steps of
        ``W -= lr * dW``, ``b -= lr * db`` -- what ``fastsoftmax train`` runs.
    lr : float, default 1.0
        Step size of ``"gd"`` (unused by ``"lbfgs"``).
    reg : float, default 1e-3
        L2 regularisation strength. ``LogisticRegression(C=C)`` on N samples is
        ``reg = 1 / (C * N)``.
    max_iter : int, default 200
        Most iterations: gradient steps for ``"gd"``, L-BFGS iterations.
    tol : float, default 1e-4
        Stop when the largest absolute entry of the gradient is at most ``tol``
        (L-BFGS-B's ``gtol``, scikit-learn's meaning); ``0`` runs all
        ``max_iter`` steps. Stopping at ``max_iter`` first warns
        ``ConvergenceWarning``.
    warm_start : bool, default False
        Start from the previous fit's ``W_``, ``b_`` (same classes, features and
        dtype), as scikit-learn does.
    backend : str, Backend or None
        As for every op; ``None`` follows ``$FASTSOFTMAX_BACKEND`` / ``"auto"``.
    dtype : {None, "float32", "float64"}
        Compute dtype; ``None`` keeps ``X``'s floating dtype.
    random_state : int, numpy Generator or RandomState, or None
        Seeds ``"gd"``'s initial ``W`` (drawn with NumPy on the host, so every
        backend starts alike).
    verbose : int, default 0
        If positive, print ``iteration N: loss X`` (every 10 steps for ``"gd"``,
        every iteration for ``"lbfgs"``).

    Attributes
    ----------
    W_ : array, shape (D, K)
    b_ : array, shape (K,)
    classes_ : ndarray, shape (K,)
        The sorted distinct labels seen in ``fit``.
    n_features_in_ : int
    n_iter_ : int
        Iterations run (gradient steps taken, or L-BFGS iterations).
    n_evals_ : int
        Evaluations of the loss and gradient.
    converged_ : bool
        Whether ``tol`` was reached (always False for ``tol=0``).
    loss_history_ : list of float
        The loss at each evaluation: before each step for ``"gd"``; every
        L-BFGS evaluation, line-search trials included.
    backend_ : str
        The backend the model was fitted on (and is restored on after pickling).

    Examples
    --------
    >>> import fastsoftmax as fs
    >>> X, y = fs.make_spiral(seed=0, backend="numpy")
    >>> clf = fs.SoftmaxClassifier(backend="numpy").fit(X, y)
    >>> clf.converged_, round(clf.score(X, y), 2)
    (True, 0.54)
    >>> gd = fs.SoftmaxClassifier(solver="gd", tol=0, random_state=0, backend="numpy")
    >>> len(gd.fit(X, y).loss_history_)
    200
    """

    _param_names = ("W_", "b_")

    def __init__(self, *, solver="lbfgs", lr=1.0, reg=1e-3, max_iter=200, tol=1e-4,
                 warm_start=False, backend=None, dtype=None, random_state=None, verbose=0):
        self.solver = solver
        self.lr = lr
        self.reg = reg
        self.max_iter = max_iter
        self.tol = tol
        self.warm_start = warm_start
        self.backend = backend
        self.dtype = dtype
        self.random_state = random_state
        self.verbose = verbose

    def _init_params(self, n_features, n_classes, dtype, rng):
        b = np.zeros(n_classes, dtype=dtype)
        if self.solver == "lbfgs":
            return np.zeros((n_features, n_classes), dtype=dtype), b
        # The notebook's 0.01 * randn, drawn in float64 and cast, then scaled in the dtype.
        W = rng.standard_normal((n_features, n_classes)).astype(dtype)
        return 0.01 * W, b

    def _objective(self, be, X, labels, sample_weight, reg):
        def fun(params):
            W, b = params
            loss, dW, db = be.loss_gradient(X, labels, W, b, reg=reg,
                                            sample_weight=sample_weight, check=False)
            return loss, (dW, db)
        return fun

    def _scores(self, be, X):
        return be.scores(X, self.W_, self.b_)
