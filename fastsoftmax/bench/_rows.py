"""The rows of a benchmark: fastsoftmax's backends and the peers people use instead.

A *row* is one way to compute the softmax classifier's ops. Every row has the
same small interface:

``available()``
    whether it can run here; ``reason`` says why not (the peer's library is not
    installed, the backend cannot load).
``prepare(op, data)``
    converts the cell's NumPy data to the row's own arrays -- torch tensors, JAX
    device arrays, scikit-learn's ``(K, D + 1)`` coefficient layout and float
    labels -- *outside* the timed region, and builds the call.
``run()``
    one call of the prepared op, synchronised (``block_until_ready`` for JAX, a
    stream sync for CuPy), returning its result.
``outputs(result)``
    the result as NumPy arrays (``loss``, ``dW``, ``db``, ...) for the
    correctness cross-check against the ``numpy`` backend.

Every row computes the same quantities (see ``DESIGN.md``): for ``loss_gradient``
the mean cross-entropy plus ``0.5 * reg * |W|^2`` and its gradients for ``W``
and ``b``; for ``cross_entropy_gradient`` the mean cross-entropy of the scores
and ``dscores``; for ``softmax`` the row-wise probabilities; for ``train`` a
full-batch gradient-descent fit of ``steps`` steps from the same initial
weights, reporting the loss before the last step and the final ``W`` and ``b``
(what ``SoftmaxClassifier`` reports); for ``fit`` a fit to the optimum with each
library's default tolerance -- ``SoftmaxClassifier(solver="lbfgs")``,
``LogisticRegression(solver="lbfgs", C=1/(N*reg))`` (the same objective) -- or
the notebook's ``steps`` gradient steps, reporting ``W``, ``b``, the number of
evaluations (or iterations) and the objective at ``W``, ``b`` (evaluated after
the timing, in float64 on the numpy backend). Rows without a ``_prepare_<op>``
(the torch and JAX peers have no ``fit``) are left out of that op.

The peer libraries are imported by ``available()``, never by importing this module.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np

OPS = ("loss_gradient", "softmax", "cross_entropy_gradient", "train", "fit")
FIT_MAX_ITER = 1000  # L-BFGS iterations allowed to the ``fit`` rows (all stop far sooner)
PEERS = ("notebook", "sklearn", "torch-autograd", "jax-jit")


@dataclass
class BenchData:
    """One cell's data as NumPy arrays; every row converts from these.

    ``W`` and ``b`` are drawn at scale 1 (not the notebook's 0.01) so the scores
    are O(1), the softmax is far from uniform and the regularisation term is
    large enough for the cross-check to see a row that drops it.
    """

    X: np.ndarray
    y: np.ndarray
    W: np.ndarray
    b: np.ndarray
    reg: float = 1e-3
    lr: float = 1.0
    steps: int = 200
    seed: int = 0
    _S: np.ndarray | None = field(default=None, repr=False)
    init: np.ndarray | None = field(default=None, repr=False)

    @property
    def n(self):
        return self.X.shape[0]

    @property
    def d(self):
        return self.X.shape[1]

    @property
    def k(self):
        return self.W.shape[1]

    @property
    def dtype(self):
        return self.X.dtype

    @property
    def S(self):
        """The scores ``X @ W + b`` (computed once, in the cell's dtype)."""
        if self._S is None:
            self._S = self.X @ self.W + self.b
        return self._S

    @property
    def W0(self):
        """The initial weights of ``train``: what
        ``SoftmaxClassifier(solver="gd", random_state=seed)`` draws."""
        if self.init is not None:
            return self.init
        # As SoftmaxClassifier.fit: float64 normals, cast, then scaled in the dtype.
        rng = np.random.default_rng(self.seed)
        return 0.01 * rng.standard_normal((self.d, self.k)).astype(self.dtype)


def points_per_class(n_points, n_classes):
    """The spiral's points per arm for a cell of about ``n_points`` points: at least one,
    so a cell has ``n_classes`` points or more (``--classes 100000 --sizes 1e3``: 1e5)."""
    return max(1, round(n_points / n_classes))


def make_data(n_points, n_classes, n_features, dtype, *, seed=0, reg=1e-3, steps=200):
    """The spiral of about ``n_points`` points (``n_classes`` arms) and weights to match."""
    from ..datasets import make_spiral

    n_per_class = points_per_class(n_points, n_classes)
    X, y = make_spiral(n_per_class, n_classes, n_features=n_features, shuffle=False,
                       seed=seed, dtype=dtype, backend="numpy")
    rng = np.random.default_rng(seed + 1)
    W = rng.standard_normal((n_features, n_classes)).astype(dtype)
    b = (0.1 * rng.standard_normal(n_classes)).astype(dtype)
    return BenchData(np.ascontiguousarray(X), y, W, b, reg=reg, steps=steps, seed=seed)


class Row:
    """Base of backends and peers: a name, availability, prepare/run/outputs."""

    kind = ""
    name = ""
    description = ""

    def __init__(self):
        self.reason = ""
        self.version = ""
        self.device = "cpu"
        self._loaded = None
        self._call = None
        self._op = None

    @property
    def label(self):
        return f"{self.name} ({self.kind})"

    def available(self):
        """Whether the row can run here; sets ``reason``, ``version`` and ``device``."""
        if self._loaded is None:
            try:
                self._load()
                self._loaded = True
            except ImportError as exc:
                self.reason = str(exc) or type(exc).__name__
                self._loaded = False
        return self._loaded

    def _load(self):
        raise NotImplementedError

    def supports(self, op):
        return hasattr(self, f"_prepare_{op}")

    def prepare(self, op, data):
        if op not in OPS:
            raise ValueError(f"unknown op {op!r}")
        self._op = op
        self._data = data
        self._call = getattr(self, f"_prepare_{op}")(data)

    def run(self):
        return self._call()

    def release(self):
        """Drop the prepared arrays (device memory, converted copies)."""
        self._call = self._data = None

    def outputs(self, result):
        """The result of ``run()`` as a dict of NumPy arrays, for the cross-check."""
        names = {"loss_gradient": ("loss", "dW", "db"), "softmax": ("probs",),
                 "cross_entropy_gradient": ("loss", "dscores"), "train": ("loss", "W", "b"),
                 "fit": ("W", "b", "evals", "iters")}
        values = result if isinstance(result, tuple) else (result,)
        out = {k: np.asarray(self._to_numpy(v)) for k, v in zip(names[self._op], values)
               if v is not None}
        if self._op == "fit":
            from ..backends import get_backend

            data, f8 = self._data, np.float64
            out["objective"] = np.asarray(get_backend("numpy").loss(
                data.X.astype(f8), data.y, out["W"].astype(f8), out["b"].astype(f8),
                reg=data.reg))
        return out

    def _to_numpy(self, value):
        from ..backends import to_numpy

        return to_numpy(value)

    def info(self):
        return {"name": self.name, "kind": self.kind, "label": self.label,
                "available": bool(self.available()), "reason": self.reason,
                "version": self.version, "device": self.device,
                "description": self.description}


# -- fastsoftmax's own backends ------------------------------------------------

class BackendRow(Row):
    """A fastsoftmax backend, called through the public API as a user calls it."""

    kind = "backend"

    def __init__(self, name):
        super().__init__()
        self.name = name
        self.description = f"fastsoftmax.<op>(..., backend={name!r})"

    def _load(self):
        from ..backends import BackendUnavailableError, get_backend

        if self.name == "jax":  # float64 cells need JAX's 64-bit mode, as the jax-jit peer
            try:
                import jax

                jax.config.update("jax_enable_x64", True)
            except ImportError:
                pass  # get_backend says why the row cannot run
        try:
            self._backend = get_backend(self.name)
        except BackendUnavailableError as exc:
            raise ImportError(str(exc)) from None
        self.version = self._backend.version
        self.device = self._backend.device

    def _sync(self, *values):
        # A device backend queues its work; wait for all of it, not only the loss.
        import array_api_compat as compat

        if any(compat.is_cupy_array(v) for v in values):
            import cupy

            cupy.cuda.get_current_stream().synchronize()
        if any(compat.is_jax_array(v) for v in values):  # JAX dispatches asynchronously
            import jax

            jax.block_until_ready(values)
        if any(compat.is_dask_array(v) for v in values):  # dask's row-wise ops are lazy
            import dask

            dask.compute(*values)

    def _prepare_loss_gradient(self, data):
        import fastsoftmax as fs

        be = self._backend
        X, y, W, b = (be.asarray(a) for a in (data.X, data.y, data.W, data.b))
        name, reg = self.name, data.reg

        def call():
            out = fs.loss_gradient(X, y, W, b, reg=reg, backend=name)
            self._sync(*out)
            return out
        return call

    def _prepare_softmax(self, data):
        import fastsoftmax as fs

        S, name = self._backend.asarray(data.S), self.name

        def call():
            probs = fs.softmax(S, backend=name)
            self._sync(probs)
            return probs
        return call

    def _prepare_cross_entropy_gradient(self, data):
        import fastsoftmax as fs

        S, y = self._backend.asarray(data.S), self._backend.asarray(data.y)
        name = self.name

        def call():
            out = fs.cross_entropy_gradient(S, y, backend=name)
            self._sync(*out)
            return out
        return call

    def _prepare_train(self, data):
        import fastsoftmax as fs

        X, y = self._backend.asarray(data.X), self._backend.asarray(data.y)
        params = dict(solver="gd", tol=0.0, lr=data.lr, reg=data.reg, max_iter=data.steps,
                      backend=self.name, random_state=data.seed)

        def call():
            model = fs.SoftmaxClassifier(**params).fit(X, y)
            self._sync(model.W_, model.b_)
            return model.loss_history_[-1], model.W_, model.b_
        return call

    def _prepare_fit(self, data):
        import fastsoftmax as fs

        X, y = self._backend.asarray(data.X), self._backend.asarray(data.y)
        params = dict(solver="lbfgs", reg=data.reg, max_iter=FIT_MAX_ITER, backend=self.name)

        def call():
            model = fs.SoftmaxClassifier(**params).fit(X, y)
            self._sync(model.W_, model.b_)
            return model.W_, model.b_, model.n_evals_, model.n_iter_
        return call


# -- peers: what people would use instead ---------------------------------------

def _notebook_probs(scores):
    # The notebook's softmax with the stability fix (subtract the row max).
    exp_scores = np.exp(scores - scores.max(axis=1, keepdims=True))
    return exp_scores / np.sum(exp_scores, axis=1, keepdims=True)


def _notebook_dscores(scores, y):
    """The notebook's loss and dscores, without its aliasing of ``probs``."""
    num_examples = scores.shape[0]
    probs = _notebook_probs(scores)
    rows = np.arange(num_examples)
    correct_logprobs = -np.log(probs[rows, y])
    data_loss = np.sum(correct_logprobs) / num_examples
    dscores = probs  # fresh array: mutating it harms no one
    dscores[rows, y] -= 1
    dscores /= num_examples
    return data_loss, dscores


def _notebook_loss_gradient(X, y, W, b, reg):
    scores = np.dot(X, W) + b
    data_loss, dscores = _notebook_dscores(scores, y)
    loss = data_loss + 0.5 * reg * np.sum(W * W)
    dW = np.dot(X.T, dscores)
    db = np.sum(dscores, axis=0)
    dW += reg * W
    return loss, dW, db


class NotebookPeer(Row):
    """The notebook's plain NumPy code, with the stability fix (subtract the row max).

    Exactly the cs231n cells -- ``scores``, ``exp_scores``, ``probs``,
    ``correct_logprobs``, ``dscores``, ``dW``, ``db`` -- with the row max
    subtracted and ``np.arange`` for the notebook's ``range`` index.
    """

    kind = "peer"
    name = "notebook"
    description = "the cs231n notebook's NumPy code, with the row max subtracted"

    def _load(self):
        self.version = f"numpy {np.__version__}"

    def _prepare_loss_gradient(self, data):
        X, y, W, b, reg = data.X, data.y, data.W, data.b, data.reg
        return lambda: _notebook_loss_gradient(X, y, W, b, reg)

    def _prepare_softmax(self, data):
        S = data.S
        return lambda: _notebook_probs(S)

    def _prepare_cross_entropy_gradient(self, data):
        S, y = data.S, data.y
        return lambda: _notebook_dscores(S, y)

    def _prepare_train(self, data):
        X, y, W0, reg, lr, steps = data.X, data.y, data.W0, data.reg, data.lr, data.steps

        def call():
            W = W0.copy()
            b = np.zeros(W.shape[1], dtype=W.dtype)
            for _ in range(steps):
                loss, dW, db = _notebook_loss_gradient(X, y, W, b, reg)
                W += -lr * dW
                b += -lr * db
            return loss, W, b
        return call

    def _prepare_fit(self, data):
        train = self._prepare_train(data)

        def call():
            _, W, b = train()
            return W, b, data.steps, data.steps
        return call


class SklearnPeer(Row):
    """scikit-learn's ``LinearModelLoss.loss_gradient`` on ``HalfMultinomialLoss``.

    The private machinery behind ``LogisticRegression``: a fused Cython/OpenMP
    loss-and-gradient of the raw predictions, wrapped with ``X @ coef.T`` and
    the L2 penalty. Coefficients in scikit-learn's layout ``(K, D + 1)``
    (intercept last) and labels as floats of ``X``'s dtype, converted outside
    the timing; OpenMP threads as scikit-learn would pick them.
    """

    kind = "peer"
    name = "sklearn"
    description = "sklearn LinearModelLoss(HalfMultinomialLoss).loss_gradient (Cython/OpenMP)"

    def _load(self):
        try:
            import sklearn
            from sklearn._loss.loss import HalfMultinomialLoss
            from sklearn.linear_model._linear_loss import LinearModelLoss
            from sklearn.utils.extmath import softmax
        except ImportError as exc:
            raise ImportError(f"scikit-learn is not installed or lacks LinearModelLoss "
                              f"({exc}); pip install 'fastsoftmax[bench]'") from None
        try:
            from sklearn.utils._openmp_helpers import _openmp_effective_n_threads

            self.n_threads = _openmp_effective_n_threads()
        except ImportError:
            self.n_threads = os.cpu_count() or 1
        self._loss_cls, self._model_cls, self._softmax = (
            HalfMultinomialLoss, LinearModelLoss, softmax)
        self.version = sklearn.__version__

    def _model(self, k):
        return self._model_cls(base_loss=self._loss_cls(n_classes=k), fit_intercept=True)

    @staticmethod
    def _coef(W, b):
        return np.ascontiguousarray(np.concatenate([W.T, b[:, None]], axis=1))

    @staticmethod
    def _split(grad, d):
        return np.ascontiguousarray(grad[:, :d].T), grad[:, d].copy()

    def _prepare_loss_gradient(self, data):
        model, nt, d = self._model(data.k), self.n_threads, data.d
        coef, X, yf, reg = self._coef(data.W, data.b), data.X, data.y.astype(data.dtype), data.reg

        def call():
            loss, grad = model.loss_gradient(coef, X, yf, l2_reg_strength=reg, n_threads=nt)
            return (loss, *self._split(grad, d))
        return call

    def _prepare_softmax(self, data):
        S, softmax = data.S, self._softmax
        return lambda: softmax(S, copy=True)

    def _prepare_cross_entropy_gradient(self, data):
        base, nt = self._loss_cls(n_classes=data.k), self.n_threads
        S, yf, n = data.S, data.y.astype(data.dtype), data.n

        def call():
            loss, grad = base.loss_gradient(y_true=yf, raw_prediction=S, n_threads=nt)
            grad /= n
            return loss.sum() / n, grad
        return call

    def _prepare_train(self, data):
        model, nt, d = self._model(data.k), self.n_threads, data.d
        X, yf, reg, lr, steps = data.X, data.y.astype(data.dtype), data.reg, data.lr, data.steps
        W0 = data.W0

        def call():
            coef = self._coef(W0, np.zeros(W0.shape[1], dtype=W0.dtype))
            for _ in range(steps):
                loss, grad = model.loss_gradient(coef, X, yf, l2_reg_strength=reg,
                                                 n_threads=nt)
                coef -= lr * grad
            W, b = self._split(coef, d)
            return loss, W, b
        return call

    def _prepare_fit(self, data):
        from sklearn.linear_model import LogisticRegression

        X, y = data.X, data.y
        params = dict(C=1.0 / (data.n * data.reg), solver="lbfgs", max_iter=FIT_MAX_ITER)

        def call():
            model = LogisticRegression(**params).fit(X, y)
            # scikit-learn reports iterations only; its evaluations are not exposed.
            return model.coef_.T, model.intercept_, None, int(np.max(model.n_iter_))
        return call


class TorchPeer(Row):
    """PyTorch on the CPU as people write it: ``F.cross_entropy`` and autograd.

    ``torch.from_numpy`` views of ``X`` (no copy), int64 labels, leaf tensors
    ``W`` and ``b`` with ``requires_grad``; ``train`` uses ``torch.optim.SGD``.
    """

    kind = "peer"
    name = "torch-autograd"
    description = "PyTorch CPU: F.cross_entropy + autograd (optim.SGD for train)"

    def _load(self):
        try:
            import torch
            import torch.nn.functional as F
        except ImportError:
            raise ImportError("PyTorch is not installed; pip install 'fastsoftmax[bench]' "
                              "(pins torch==2.13.0)") from None
        self._torch, self._F = torch, F
        self.version = torch.__version__
        self.device = f"cpu ({torch.get_num_threads()} threads)"

    def _tensors(self, data):
        t = self._torch
        return t.from_numpy(data.X), t.from_numpy(data.y.astype(np.int64))

    def _loss(self, X, y, W, b, reg):
        S = self._torch.addmm(b, X, W)
        return self._F.cross_entropy(S, y) + 0.5 * reg * (W * W).sum()

    def _prepare_loss_gradient(self, data):
        t = self._torch
        X, y = self._tensors(data)
        W = t.tensor(data.W, requires_grad=True)
        b = t.tensor(data.b, requires_grad=True)
        reg = data.reg

        def call():
            W.grad = b.grad = None
            loss = self._loss(X, y, W, b, reg)
            loss.backward()
            return loss.detach(), W.grad, b.grad
        return call

    def _prepare_softmax(self, data):
        t = self._torch
        S = t.from_numpy(data.S)
        return lambda: t.softmax(S, dim=1)

    def _prepare_cross_entropy_gradient(self, data):
        t = self._torch
        S = t.tensor(data.S, requires_grad=True)
        y = t.from_numpy(data.y.astype(np.int64))
        F = self._F

        def call():
            S.grad = None
            loss = F.cross_entropy(S, y)
            loss.backward()
            return loss.detach(), S.grad
        return call

    def _prepare_train(self, data):
        t = self._torch
        X, y = self._tensors(data)
        W0, reg, lr, steps = data.W0, data.reg, data.lr, data.steps

        def call():
            W = t.tensor(W0, requires_grad=True)
            b = t.zeros(W0.shape[1], dtype=W.dtype, requires_grad=True)
            opt = t.optim.SGD([W, b], lr=lr)
            for _ in range(steps):
                opt.zero_grad()
                loss = self._loss(X, y, W, b, reg)
                loss.backward()
                opt.step()
            return loss.detach(), W.detach(), b.detach()
        return call


class JaxPeer(Row):
    """JAX as people write it: ``jit(value_and_grad(loss))``.

    Float64 needs ``jax_enable_x64``, which this row turns on when it loads (it
    changes only JAX's defaults). Arrays are put on JAX's default device before
    timing; every call ends with ``block_until_ready``. ``train`` calls a jitted
    update step in a Python loop.
    """

    kind = "peer"
    name = "jax-jit"
    description = "JAX: jit(value_and_grad(loss)), block_until_ready"

    def _load(self):
        try:
            import jax
            import jax.numpy as jnp
        except ImportError:
            raise ImportError("JAX is not installed; pip install 'fastsoftmax[bench]'") from None
        jax.config.update("jax_enable_x64", True)
        self._jax, self._jnp = jax, jnp
        self.version = jax.__version__
        self.device = str(jax.devices()[0].platform)

        def data_loss(S, y):
            lse = jax.nn.logsumexp(S, axis=1)
            return jnp.mean(lse - jnp.take_along_axis(S, y[:, None], axis=1)[:, 0])

        def loss(W, b, X, y, reg):
            return data_loss(X @ W + b, y) + 0.5 * reg * jnp.sum(W * W)

        value_and_grad = jax.value_and_grad(loss, argnums=(0, 1))

        def loss_gradient(W, b, X, y, reg):
            value, (dW, db) = value_and_grad(W, b, X, y, reg)
            return value, dW, db

        def step(W, b, X, y, reg, lr):
            value, (dW, db) = value_and_grad(W, b, X, y, reg)
            return W - lr * dW, b - lr * db, value

        self._loss_gradient = jax.jit(loss_gradient)
        self._xent_gradient = jax.jit(jax.value_and_grad(data_loss))
        self._softmax = jax.jit(lambda S: jax.nn.softmax(S, axis=1))
        self._step = jax.jit(step)

    def _put(self, *arrays):
        return tuple(self._jax.device_put(a) for a in arrays)

    def _prepare_loss_gradient(self, data):
        X, y, W, b = self._put(data.X, data.y, data.W, data.b)
        f, reg, ready = self._loss_gradient, data.reg, self._jax.block_until_ready
        return lambda: ready(f(W, b, X, y, reg))

    def _prepare_softmax(self, data):
        (S,) = self._put(data.S)
        f, ready = self._softmax, self._jax.block_until_ready
        return lambda: ready(f(S))

    def _prepare_cross_entropy_gradient(self, data):
        S, y = self._put(data.S, data.y)
        f, ready = self._xent_gradient, self._jax.block_until_ready
        return lambda: ready(f(S, y))

    def _prepare_train(self, data):
        X, y, W0 = self._put(data.X, data.y, data.W0)
        b0 = self._jnp.zeros(data.k, dtype=data.dtype)
        step, reg, lr, steps = self._step, data.reg, data.lr, data.steps
        ready = self._jax.block_until_ready

        def call():
            W, b = W0, b0
            for _ in range(steps):
                W, b, loss = step(W, b, X, y, reg, lr)
            return ready((loss, W, b))
        return call


PEER_CLASSES = {cls.name: cls for cls in (NotebookPeer, SklearnPeer, TorchPeer, JaxPeer)}


def make_row(kind, name):
    """A fresh row: ``("backend", name)`` or ``("peer", name)``."""
    if kind == "backend":
        return BackendRow(name)
    if kind == "peer":
        return PEER_CLASSES[name]()
    raise ValueError(f"unknown row kind {kind!r}")


def rel_err(actual, expected):
    """``max |actual - expected| / max |expected|`` (absolute where ``expected`` is 0)."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if actual.shape != expected.shape:
        return math.inf
    if actual.size == 0:
        return 0.0
    diff = np.abs(actual - expected)
    if not np.all(np.isfinite(diff)):
        return math.inf
    scale = float(np.max(np.abs(expected)))
    return float(np.max(diff)) / (scale if scale > 0 else 1.0)


__all__ = ["OPS", "PEERS", "BenchData", "BackendRow", "Row", "make_data", "make_row",
           "rel_err", *[c.__name__ for c in PEER_CLASSES.values()]]
