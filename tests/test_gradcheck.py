"""``gradcheck`` on every backend and dtype: the hand-derived gradients of the linear
model and of the network pass; deliberately wrong gradients are caught, and where."""

import numpy as np
import pytest
from test_net import net_problem

import fastsoftmax as fs

from conftest import NO_DASK

pytestmark = pytest.mark.usefixtures("torch_single_thread")

# The largest relative error a correct gradient may show. float64: the 1e-7
# (measured ~1e-8 and below on these problems). float32: the centred difference's
# rounding error is ~eps32 * |L| / h ~ 2e-5 absolute at h ~ cbrt(eps32) = 5e-3, i.e.
# ~1e-3 relative on gradient entries of ~1e-2 (measured up to 1e-3): 1e-2 keeps
# a 10x margin, while a wrong gradient shows errors of order 1.
GRADCHECK_TOL = {np.dtype(np.float64): 1e-7, np.dtype(np.float32): 1e-2}
NAMES = ("W1", "b1", "W2", "b2")


def _on(be, arrays):
    return tuple(be.asarray(a) for a in arrays)


@pytest.mark.no_dask(NO_DASK)
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_network_gradient_passes_gradcheck(backend, dtype, weighted):
    X, y, params, w = net_problem(n=20, h=6, seed=3, dtype=dtype)
    Xb, yb = _on(backend, (X, y))
    wb = backend.asarray(w) if weighted else None

    def f(p):
        loss, *grads = fs.net_loss_gradient(Xb, yb, *p, reg=0.1, sample_weight=wb,
                                            backend=backend)
        return loss, grads

    result = fs.gradcheck(f, _on(backend, params), names=NAMES, backend=backend)
    assert result.max_rel_error < GRADCHECK_TOL[dtype], str(result)
    assert result.n_checked == sum(p.size for p in params)
    assert set(result.per_param) == set(NAMES)


def test_linear_gradient_passes_gradcheck(backend, dtype):
    X, y, (W1, b1, _, _), w = net_problem(n=20, h=6, seed=3, dtype=dtype)
    Xb, yb, wb = _on(backend, (X, y, w))

    def f(p):
        loss, dW, db = fs.loss_gradient(Xb, yb, *p, reg=0.1, sample_weight=wb,
                                        backend=backend)
        return loss, (dW, db)

    result = fs.gradcheck(f, _on(backend, (W1, b1)), names=("W", "b"), backend=backend)
    assert result.max_rel_error < GRADCHECK_TOL[dtype], str(result)


@pytest.mark.no_dask(NO_DASK)
def test_estimators_pass_gradcheck(backend):
    """``gradcheck(model, X, y)``: an estimator's own objective at its parameters."""
    X, y, _, w = net_problem(n=30, seed=3)
    net = fs.TwoLayerNet(hidden=6, init_scale=1.0, max_iter=5, lr=0.1, random_state=0,
                         backend=backend.name)
    before = fs.gradcheck(net, X, y, sample_weight=w)  # unfitted: where fit starts
    net.fit(X, y, sample_weight=w)
    after = fs.gradcheck(net, X, y, sample_weight=w)  # fitted
    linear = fs.gradcheck(fs.SoftmaxClassifier(solver="gd", random_state=0,
                                               backend=backend.name), X, y)
    for result in (before, after):
        assert result.max_rel_error < 1e-7, str(result)
        assert set(result.per_param) == set(NAMES)
    assert linear.max_rel_error < 1e-7 and set(linear.per_param) == {"W", "b"}


# Each row: a plausible backprop bug, and the parameter gradcheck must blame.
BUGS = {
    "forgot reg on W1": (lambda X, y, p, g: g[0] - 0.1 * p[0], "W1"),
    "regularised b2": (lambda X, y, p, g: g[3] + 0.1 * p[3], "b2"),
    "no ReLU gate": (lambda X, y, p, g: _ungated_dW1(X, y, p), "W1"),
    "dW2 off by 1%": (lambda X, y, p, g: 1.01 * g[2], "W2"),
}


def _ungated_dW1(X, y, params):
    """``dW1`` with ``dhidden`` not gated by the ReLU: the classic backprop bug."""
    W1, b1, W2, b2 = params
    hidden = np.maximum(X @ W1 + b1, 0)
    _, dscores = fs.cross_entropy_gradient(hidden @ W2 + b2, y, backend="numpy")
    return X.T @ (dscores @ W2.T) + 0.1 * W1


@pytest.mark.parametrize("bug", BUGS, ids=list(BUGS))
def test_gradcheck_catches_wrong_gradients(bug):
    X, y, params, _ = net_problem(n=20, h=6, seed=3)
    index = NAMES.index(BUGS[bug][1])
    wrong = BUGS[bug][0]

    def f(p):
        loss, *grads = fs.net_loss_gradient(X, y, *p, reg=0.1, backend="numpy")
        grads[index] = wrong(X, y, p, grads)
        return loss, grads

    result = fs.gradcheck(f, params, names=NAMES)
    assert result.max_rel_error > 1e-3, str(result)
    assert result.param == BUGS[bug][1]
    assert result.per_param[result.param] == result.max_rel_error
    others = [v for k, v in result.per_param.items() if k != BUGS[bug][1]]
    assert max(others) < 1e-7


def test_rel_error_is_the_case_studys():
    assert fs.rel_error(0.0, 0.0) == 0.0
    np.testing.assert_allclose(fs.rel_error(1.0, 1.1), 0.1 / 2.1)
    np.testing.assert_allclose(fs.rel_error(1e-12, 2e-12), 1e-12 / 1e-8)  # the 1e-8 floor
    np.testing.assert_allclose(fs.rel_error([1.0, -1.0], [1.0, 1.0]), [0.0, 1.0])


def test_sampled_entries_and_the_report():
    X, y, params, _ = net_problem(n=20, h=6, seed=3)

    def f(p):
        loss, *grads = fs.net_loss_gradient(X, y, *p, reg=0.1, backend="numpy")
        return loss, grads

    result = fs.gradcheck(f, params, n_checks=3, seed=1)
    assert result.n_checked == 3 * 4  # of W1 (18 entries), b1 (6), W2 (24), b2 (4)
    assert tuple(result.per_param) == ("p0", "p1", "p2", "p3")
    text = str(result)
    assert "max relative error" in text and result.param in text
    assert 0 < result.step["p0"] < 1e-4  # cbrt(eps) * max(1, |p|)


def test_gradcheck_bad_arguments():
    X, y, params, _ = net_problem(n=10, h=3, seed=3)
    f = lambda p: (0.0, p)  # noqa: E731
    with pytest.raises(TypeError, match="callable"):
        fs.gradcheck(42, params)
    with pytest.raises(TypeError, match="tuple of arrays"):
        fs.gradcheck(f, ())
    with pytest.raises(ValueError, match="names has 1 entries for 4 parameters"):
        fs.gradcheck(f, params, names=("W",))
    with pytest.raises(ValueError, match="h must be"):
        fs.gradcheck(f, params, h=-1.0)
    with pytest.raises(TypeError, match="needs the data"):
        fs.gradcheck(fs.TwoLayerNet(), X)
