"""``TwoLayerNet``: the case study's two-layer ReLU network, on the same estimator surface."""

from __future__ import annotations

import numpy as np

from .. import _validate
from ..backends import get_backend
from . import _solvers
from ._base import BaseClassifier, _rng

DIAGNOSTICS = ("dead_fraction", "grad_norm_W1", "grad_norm_W2", "update_ratio_W1",
               "update_ratio_W2")


def _norm(xp, a):
    return float(xp.sqrt(xp.sum(a * a)))


class _Recorder:
    """Training diagnostics, one entry per evaluation of the objective.

    ``update_ratio_*`` of evaluation ``i`` is ``|p_{i+1} - p_i| / |p_i|``, the
    relative size of the step taken after it, so it is filled in when the next
    parameters arrive (and by ``finish`` for the last step).
    """

    def __init__(self, be):
        self.be = be
        self.data = {key: [] for key in DIAGNOSTICS}
        self._last = None

    def record(self, X, params, grads):
        xp = self.be.xp
        W1, b1, W2, _ = params
        counts = self.be.net_active_counts(X, W1, b1)
        self.data["dead_fraction"].append(float(xp.mean(xp.astype(counts == 0, xp.float64))))
        self.data["grad_norm_W1"].append(_norm(xp, grads[0]))
        self.data["grad_norm_W2"].append(_norm(xp, grads[2]))
        self._step_to(W1, W2)
        self._last = (W1, W2)

    def _step_to(self, W1, W2):
        if self._last is None:
            return
        xp = self.be.xp
        for key, old, new in (("update_ratio_W1", self._last[0], W1),
                              ("update_ratio_W2", self._last[1], W2)):
            size = _norm(xp, old)
            self.data[key].append(_norm(xp, new - old) / size if size > 0 else float("inf"))

    def finish(self, params):
        self._step_to(params[0], params[2])
        self._last = None
        return self.data


class TwoLayerNet(BaseClassifier):
    """Two-layer neural network: a hidden layer of ReLU units, then a softmax classifier.

    The cs231n case study's network, with its backprop written by hand
    (``fastsoftmax.net_loss_gradient``; fused into one pass over ``X`` on
    ``numba``)::

        hidden = relu(X @ W1 + b1)          scores = hidden @ W2 + b2
        loss   = cross_entropy(scores, y) + 0.5 * reg * (|W1|^2 + |W2|^2)

    The defaults are the case study's: 100 hidden units, ``W = 0.01 * randn``,
    ``b = 0``, 10,000 full-batch gradient steps of size 1.0 with ``reg=1e-3``
    (the case study reports 98% training accuracy on the spiral; on
    ``make_spiral(seed=0)`` it is 0.99, where the linear classifier gets ~0.5).

    Parameters
    ----------
    hidden : int, default 100
        Number of hidden ReLU units H.
    solver : {"gd", "sgd", "lbfgs"}, default "gd"
        ``"gd"``: full-batch gradient descent, ``p -= lr * grad``. ``"sgd"``:
        mini-batch SGD with momentum, ``v = momentum * v - lr * grad; p += v``,
        over a fresh random order of the rows each epoch. ``"lbfgs"``: SciPy's
        L-BFGS-B (the loss is not convex here, but smooth almost everywhere).
    lr : float, default 1.0
        Step size of ``"gd"`` and ``"sgd"`` (with momentum 0.9, try 0.1).
    reg : float, default 1e-3
        L2 strength on ``W1`` and ``W2`` (the biases are not regularised).
    max_iter : int, default 10000
        Gradient steps for ``"gd"``, epochs for ``"sgd"``, iterations for ``"lbfgs"``.
    tol : float, default 0.0
        ``0`` runs all ``max_iter`` (the case study). ``"gd"``/``"lbfgs"``: stop when
        the largest absolute gradient entry is at most ``tol``; ``"sgd"``: stop when
        an epoch's mean loss has not improved by ``tol`` for 10 epochs.
    batch_size : int, default 200
        Rows per mini-batch of ``"sgd"`` (and ``partial_fit``).
    momentum : float, default 0.9
        Momentum of ``"sgd"``, in ``[0, 1)``.
    init_scale : float, default 0.01
        Standard deviation of the initial weights (``init_scale * randn``).
    diagnostics : bool, default False
        Record, at every evaluation, the fraction of dead ReLUs, the gradient
        norms and the update-to-weight ratios of both layers in ``diagnostics_``.
        Off, nothing is computed.
    warm_start : bool, default False
        Start from the previous fit's parameters (same classes, features, dtype).
    backend : str, Backend or None
    dtype : {None, "float32", "float64"}
    random_state : int, numpy Generator or RandomState, or None
        Seeds the initial weights (drawn with NumPy on the host, so every
        backend starts alike) and ``"sgd"``'s row order.
    verbose : int, default 0
        If positive, print ``iteration N: loss X`` every 10 evaluations.

    Attributes
    ----------
    W1_ : array, shape (D, H)
    b1_ : array, shape (H,)
    W2_ : array, shape (H, K)
    b2_ : array, shape (K,)
    classes_ : ndarray, shape (K,)
    n_features_in_ : int
    n_iter_ : int
        Gradient steps (``"gd"``), epochs (``"sgd"``) or L-BFGS iterations run.
    n_evals_ : int
        Evaluations of the loss and gradient (mini-batches for ``"sgd"``).
    converged_ : bool
    loss_history_ : list of float
        The loss at every evaluation (before each step; per mini-batch for ``"sgd"``).
    diagnostics_ : dict of lists of float
        With ``diagnostics=True``, one entry per evaluation: ``dead_fraction``
        (hidden units active on no row of the batch), ``grad_norm_W1``,
        ``grad_norm_W2`` (Frobenius norms of ``dW1``, ``dW2``), ``update_ratio_W1``,
        ``update_ratio_W2`` (``|step| / |W|`` of the update that followed; ~1e-3 is
        healthy, ~1 or more means the weights are being thrown around).
    backend_ : str

    Examples
    --------
    >>> import fastsoftmax as fs
    >>> X, y = fs.make_spiral(seed=0, backend="numpy")
    >>> net = fs.TwoLayerNet(random_state=0, backend="numpy").fit(X, y)   # the case study
    >>> net.score(X, y) >= 0.97
    True
    >>> small = fs.TwoLayerNet(hidden=10, max_iter=50, diagnostics=True, random_state=0,
    ...                        backend="numpy").fit(X, y)
    >>> sorted(small.diagnostics_), len(small.diagnostics_["dead_fraction"])
    (['dead_fraction', 'grad_norm_W1', 'grad_norm_W2', 'update_ratio_W1', 'update_ratio_W2'], 50)
    """

    _param_names = ("W1_", "b1_", "W2_", "b2_")
    _solvers = ("gd", "sgd", "lbfgs")

    def __init__(self, *, hidden=100, solver="gd", lr=1.0, reg=1e-3, max_iter=10_000,
                 tol=0.0, batch_size=200, momentum=0.9, init_scale=0.01, diagnostics=False,
                 warm_start=False, backend=None, dtype=None, random_state=None, verbose=0):
        self.hidden = hidden
        self.solver = solver
        self.lr = lr
        self.reg = reg
        self.max_iter = max_iter
        self.tol = tol
        self.batch_size = batch_size
        self.momentum = momentum
        self.init_scale = init_scale
        self.diagnostics = diagnostics
        self.warm_start = warm_start
        self.backend = backend
        self.dtype = dtype
        self.random_state = random_state
        self.verbose = verbose

    # -- the model's hooks --------------------------------------------------------
    def _check_params(self):
        out = super()._check_params()
        _validate.int_param(self.hidden, "hidden", 1)
        _validate.int_param(self.batch_size, "batch_size", 1)
        momentum = _validate.real_param(self.momentum, "momentum")
        if momentum >= 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        _validate.real_param(self.init_scale, "init_scale", positive=True)
        if not isinstance(self.diagnostics, (bool, np.bool_)):
            raise TypeError(f"diagnostics must be True or False, got {self.diagnostics!r}")
        return out

    def _init_params(self, n_features, n_classes, dtype, rng):
        # The case study's order of draws: W1, then W2; cast, then scaled in the dtype.
        W1 = rng.standard_normal((n_features, self.hidden)).astype(dtype)
        W2 = rng.standard_normal((self.hidden, n_classes)).astype(dtype)
        scale = np.dtype(dtype).type(self.init_scale)
        return (scale * W1, np.zeros(self.hidden, dtype), scale * W2,
                np.zeros(n_classes, dtype))

    def _objective(self, be, X, labels, sample_weight, reg):
        xp = be.xp
        recorder = getattr(self, "_recorder", None)

        def fun(params, rows=None):
            Xb, yb, wb = X, labels, sample_weight
            if rows is not None:  # a mini-batch of "sgd"
                index = be.asarray(rows)
                Xb, yb = xp.take(X, index, axis=0), xp.take(labels, index, axis=0)
                if sample_weight is not None:
                    wb = xp.take(sample_weight, index, axis=0)
            loss, *grads = be.net_loss_gradient(Xb, yb, *params, reg=reg, sample_weight=wb,
                                                check=False)
            if recorder is not None:
                recorder.record(Xb, params, grads)
            return loss, tuple(grads)

        fun.n_samples = X.shape[0]
        return fun

    def _scores(self, be, X):
        return be.net_scores(X, self.W1_, self.b1_, self.W2_, self.b2_)

    def _shuffle_rng(self):
        if isinstance(self.random_state, (np.random.Generator, np.random.RandomState)):
            return self.random_state
        # Not the stream the initial weights came from.
        seed = None if self.random_state is None else (int(self.random_state), 1)
        return np.random.default_rng(seed)

    def _solve(self, be, fun, params, max_iter, tol, callback):
        if self.solver != "sgd":
            return super()._solve(be, fun, params, max_iter, tol, callback)
        state = {}
        rng = self._shuffle_rng()
        result = _solvers.sgd(fun, params, n_samples=fun.n_samples,
                              batch_size=int(self.batch_size), lr=float(self.lr),
                              momentum=float(self.momentum), max_iter=max_iter,
                              rng=rng, tol=tol, state=state,
                              callback=callback, verbose=self.verbose)
        # partial_fit continues from here: the velocities and the row-order stream.
        self._velocity, self._partial_rng = state["velocity"], rng
        return result

    # -- fitting ------------------------------------------------------------------
    def fit(self, X, y, *, sample_weight=None, callback=None):
        """Train on ``(X, y)`` with ``solver``.

        Parameters
        ----------
        X : array_like, shape (N, D)
        y : array_like, shape (N,)
        sample_weight : array_like, shape (N,), optional
        callback : callable, optional
            ``callback(evaluation, loss)`` after each evaluation; ``loss`` is a
            0-d backend array.

        Returns
        -------
        self
        """
        self._check_params()
        self._velocity = self._partial_rng = None  # set again by "sgd"
        self._recorder = None
        if self.diagnostics:
            self._recorder = _Recorder(get_backend(self.backend, like=X))
        try:
            super().fit(X, y, sample_weight=sample_weight, callback=callback)
            if self._recorder is not None:
                self.diagnostics_ = self._recorder.finish(
                    tuple(getattr(self, name) for name in self._param_names))
        finally:
            del self._recorder
        return self

    def _partial_fit(self, X, y, classes=None, *, sample_weight=None):
        """One epoch of mini-batch SGD with momentum over ``(X, y)``.

        Continues from the current parameters and velocities (the first call
        initialises them as ``fit`` does). Needs ``solver="sgd"``.

        Parameters
        ----------
        X : array_like, shape (N, D)
        y : array_like, shape (N,)
        classes : array_like, optional
            Every class of the problem; needed on the first call when ``y`` does
            not hold them all (as in scikit-learn), ignored afterwards.
        sample_weight : array_like, shape (N,), optional

        Returns
        -------
        self

        Examples
        --------
        >>> import fastsoftmax as fs
        >>> X, y = fs.make_spiral(seed=0, backend="numpy")
        >>> net = fs.TwoLayerNet(solver="sgd", lr=0.1, batch_size=50, random_state=0,
        ...                      backend="numpy")
        >>> for epoch in range(3):
        ...     net = net.partial_fit(X, y, classes=[0, 1, 2])
        >>> net.n_iter_, len(net.loss_history_)
        (3, 18)
        """
        reg, _, _ = self._check_params()
        first = not hasattr(self, "classes_")
        be = get_backend(self.backend, like=X) if first else self._backend
        X = self._check_X(be, X, fitting=first)
        n, d = X.shape
        if first:
            if classes is None:
                classes, labels = self._encode_labels(be, y, n)
            else:
                classes = np.unique(np.asarray(classes))
                labels = self._labels_in(be, y, n, classes)
        else:
            labels = self._labels_in(be, y, n, self.classes_)
        w = _validate.weight_array(be, sample_weight, n, X.dtype)
        be.check_values(X=X, sample_weight=w)
        if first:
            dtype = str(X.dtype).rsplit(".", 1)[-1]
            params = tuple(be.param_array(p) for p in self._init_params(
                d, len(classes), dtype, _rng(self.random_state)))
            self._velocity = None
            self._partial_rng = self._shuffle_rng()
        else:
            params = tuple(getattr(self, name) for name in self._param_names)
            if getattr(self, "_partial_rng", None) is None:  # fitted by another solver
                self._velocity, self._partial_rng = None, self._shuffle_rng()
        self._recorder = _Recorder(be) if self.diagnostics else None
        try:
            fun = self._objective(be, X, labels, w, reg)
            state = {"velocity": self._velocity}
            result = _solvers.sgd(fun, params, n_samples=n, batch_size=int(self.batch_size),
                                  lr=float(self.lr), momentum=float(self.momentum),
                                  max_iter=1, rng=self._partial_rng, state=state,
                                  verbose=self.verbose)
            recorded = None if self._recorder is None else self._recorder.finish(result.params)
        finally:
            del self._recorder
        self._velocity = state["velocity"]
        for name, value in zip(self._param_names, result.params):
            setattr(self, name, value)
        if first:
            self.classes_ = classes
            self.n_features_in_ = d
            self.n_iter_, self.n_evals_, self.loss_history_ = 0, 0, []
            self.backend_ = be.name
            self._backend = be
            self._dtype = np.dtype(str(X.dtype).rsplit(".", 1)[-1])
            if self.diagnostics:
                self.diagnostics_ = {key: [] for key in DIAGNOSTICS}
        self.n_iter_ += result.n_iter
        self.n_evals_ += result.n_evals
        self.converged_ = False
        self.loss_history_ = self.loss_history_ + result.loss_history
        if recorded is not None:
            old = getattr(self, "diagnostics_", {key: [] for key in DIAGNOSTICS})
            self.diagnostics_ = {key: old.get(key, []) + recorded[key] for key in DIAGNOSTICS}
        return self

    def _sgd_partial_fit(self):
        # As scikit-learn's MLPClassifier: partial_fit exists only for the SGD solver
        # (hasattr is False otherwise, which is how scikit-learn's checks ask).
        if self.solver != "sgd":
            raise AttributeError(f"partial_fit runs mini-batch SGD: it needs solver='sgd', "
                                 f"not solver={self.solver!r}")
        return self._partial_fit

    partial_fit = property(_sgd_partial_fit, doc=_partial_fit.__doc__)

    def _labels_in(self, be, y, n, classes):
        """``y`` as indices into ``classes``; a label outside them is a ValueError."""
        y_host = np.asarray(be.to_numpy(y) if be.owns(y) else y)
        if y_host.ndim != 1 or y_host.shape[0] != n:
            raise ValueError(f"y must be 1-dimensional with {n} labels, got shape "
                             f"{y_host.shape}")
        index = np.searchsorted(classes, y_host)
        inside = index < len(classes)
        inside[inside] = classes[index[inside]] == y_host[inside]
        if not np.all(inside):
            raise ValueError(f"y holds label {y_host[~inside][0]!r}, not among the classes "
                             f"{list(classes)}")
        return be.asarray(index.astype(np.int32))

    # -- persistence: the momentum velocities travel as NumPy, like the parameters --
    def __getstate__(self):
        state = super().__getstate__()
        velocity = state.pop("_velocity", None)
        if velocity is not None and "_backend" in self.__dict__:
            state["_velocity"] = [np.array(self._backend.to_numpy(v)) for v in velocity]
        return state

    def __setstate__(self, state):
        velocity = state.pop("_velocity", None)
        super().__setstate__(state)
        if velocity is not None and hasattr(self, "_backend"):
            self._velocity = tuple(self._backend.param_array(np.asarray(v)) for v in velocity)
