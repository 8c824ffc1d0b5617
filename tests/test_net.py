"""The two-layer network: its hand-derived backprop against PyTorch autograd and the
naive loops on every backend, the fused Numba kernel against the reference, and
``TwoLayerNet`` (the case study's 97%+, SGD, partial_fit, persistence, diagnostics)."""

import copy
import pickle
import re

import numpy as np
import pytest

import fastsoftmax as fs
from fastsoftmax.backends import _reference_net

import naive
from conftest import NO_DASK, assert_close

pytestmark = [pytest.mark.no_dask(NO_DASK), pytest.mark.usefixtures("torch_single_thread")]


def net_problem(n=40, d=3, h=7, k=4, seed=0, dtype=np.float64, margin=0.05):
    """``(X, y, (W1, b1, W2, b2), w)`` whose pre-activations all keep ``margin`` away
    from the ReLU's kink at 0: a float32 rounding or a finite-difference step then
    never flips a unit, so the comparisons measure the gradient, not the kink."""
    for s in range(seed, seed + 1000):
        rng = np.random.default_rng(s)
        X = rng.standard_normal((n, d))
        y = rng.integers(0, k, n)
        W1, b1 = rng.standard_normal((d, h)), rng.standard_normal(h)
        W2, b2 = rng.standard_normal((h, k)), rng.standard_normal(k)
        w = rng.uniform(0.2, 2.0, n)
        pre = X @ W1 + b1
        if np.min(np.abs(pre)) >= margin and np.any(pre > 0) and np.any(pre < 0):
            cast = lambda a: a.astype(dtype)  # noqa: E731
            return cast(X), y, tuple(map(cast, (W1, b1, W2, b2))), cast(w)
    raise AssertionError("no problem with that margin")  # pragma: no cover


def torch_net_loss_gradient(X, y, params, reg, w=None):
    """Loss and gradients by PyTorch autograd on the same weights (float64)."""
    torch = pytest.importorskip("torch", reason="PyTorch reference not installed")
    W1, b1, W2, b2 = (torch.tensor(np.asarray(p, np.float64), requires_grad=True)
                      for p in params)
    hidden = torch.relu(torch.tensor(np.asarray(X, np.float64)) @ W1 + b1)
    S = hidden @ W2 + b2
    rows = torch.nn.functional.cross_entropy(S, torch.tensor(y, dtype=torch.long),
                                             reduction="none")
    weights = torch.ones(len(y), dtype=torch.float64) if w is None else torch.tensor(
        np.asarray(w, np.float64))
    loss = (weights * rows).sum() / weights.sum() \
        + 0.5 * reg * ((W1 ** 2).sum() + (W2 ** 2).sum())
    loss.backward()
    return loss.item(), [p.grad.numpy() for p in (W1, b1, W2, b2)]


# -- the maths: every backend against autograd and the loops --------------------
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_net_gradient_matches_torch_autograd(backend, weighted):
    X, y, params, w = net_problem(seed=1)
    w = w if weighted else None
    want_loss, want = torch_net_loss_gradient(X, y, params, 0.1, w)
    loss, *grads = fs.net_loss_gradient(X, y, *params, reg=0.1, sample_weight=w,
                                        backend=backend)
    assert_close(loss, want_loss, np.float64)
    for got, ref in zip(grads, want):
        assert_close(got, ref, np.float64, scale=float(np.max(np.abs(ref))))


def test_net_gradient_matches_naive_loops(backend, dtype):
    X, y, params, w = net_problem(n=12, h=5, seed=2, dtype=dtype)
    want_loss, *want = naive.net_loss_gradient(X.astype(float), y,
                                               *(p.astype(float) for p in params),
                                               reg=0.3, sample_weight=w.astype(float))
    loss, *grads = fs.net_loss_gradient(X, y, *params, reg=0.3, sample_weight=w,
                                        backend=backend)
    assert fs.to_numpy(loss).shape == ()
    assert_close(loss, want_loss, dtype)
    for got, ref in zip(grads, want):
        assert fs.to_numpy(got).dtype == dtype
        assert_close(got, ref, dtype, scale=float(np.max(np.abs(ref))))


def test_net_scores_and_active_counts(backend, dtype):
    X, _, (W1, b1, W2, b2), _ = net_problem(seed=3, dtype=dtype)
    hidden = np.maximum(X.astype(float) @ W1 + b1, 0)
    assert_close(fs.net_scores(X, W1, b1, W2, b2, backend=backend), hidden @ W2 + b2, dtype)
    be = fs.get_backend(backend)
    counts = be.net_active_counts(*(be.asarray(a) for a in (X, W1, b1)))
    np.testing.assert_array_equal(fs.to_numpy(counts), np.sum(hidden > 0, axis=0))


def test_relu_gate_at_exactly_zero_passes_no_gradient(backend):
    # pre-activation exactly 0 on every row: relu'(0) = 0, as PyTorch has it.
    X = np.array([[1.0, -1.0], [2.0, -2.0]])
    W1, b1 = np.array([[1.0], [1.0]]), np.zeros(1)
    W2, b2 = np.array([[1.0, -1.0]]), np.zeros(2)
    _, want = torch_net_loss_gradient(X, [0, 1], (W1, b1, W2, b2), 0.0)
    _, dW1, db1, dW2, _ = fs.net_loss_gradient(X, [0, 1], W1, b1, W2, b2, backend=backend)
    for got, ref in zip((dW1, db1, dW2), (want[0], want[1], want[2])):
        np.testing.assert_array_equal(fs.to_numpy(got), ref)
    assert float(np.max(np.abs(want[0]))) == 0.0


def test_net_inputs_are_not_modified(backend):
    X, y, params, w = net_problem(seed=4)
    arrays = [X, y, *params, w]
    for a in arrays:
        a.flags.writeable = False
    before = [a.copy() for a in arrays]
    fs.net_loss_gradient(X, y, *params, reg=0.1, sample_weight=w, backend=backend)
    for a, b in zip(arrays, before):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("change, exc, words", [
    (lambda a: a.update(W1=a["W1"][:2]), ValueError, "W1 has 2 rows"),
    (lambda a: a.update(b1=a["b1"][:3]), ValueError, "b1 has 3 entries"),
    (lambda a: a.update(W2=a["W2"][:3]), ValueError, "W2 has 3 rows"),
    (lambda a: a.update(b2=a["b2"][:1]), ValueError, "b2 has 1 entries"),
    (lambda a: a.update(y=a["y"] + 4), ValueError, "outside [0, 4)"),
    (lambda a: a.update(y=a["y"].astype(float)), TypeError, "integer class labels"),
    (lambda a: a["W2"].__setitem__((0, 0), np.nan), ValueError, "W2 contains NaN"),
    (lambda a: a["b1"].__setitem__(0, np.inf), ValueError, "b1 contains NaN"),
    (lambda a: a["X"].__setitem__((0, 0), np.nan), ValueError, "X contains NaN"),
    (lambda a: a.update(reg=-1.0), ValueError, "reg must be"),
    (lambda a: a.update(W1="W1"), TypeError, "W1 must be an array"),
], ids=["W1-rows", "b1-len", "W2-rows", "b2-len", "label", "float-labels", "nan-W2",
        "inf-b1", "nan-X", "reg", "str"])
def test_net_bad_input_names_the_argument(backend, change, exc, words):
    X, y, (W1, b1, W2, b2), _ = net_problem(seed=5)
    args = {"X": X.copy(), "y": y, "W1": W1.copy(), "b1": b1.copy(), "W2": W2.copy(),
            "b2": b2.copy(), "reg": 0.0}
    change(args)
    with pytest.raises(exc, match=re.escape(words)):
        fs.net_loss_gradient(args["X"], args["y"], args["W1"], args["b1"], args["W2"],
                             args["b2"], reg=args["reg"], backend=backend)


# -- the fused Numba kernel against the reference --------------------------------
nb_net = pytest.importorskip("fastsoftmax.backends._numba_net")


@pytest.mark.parametrize("n", [1, 63, 64, 65, 3000, 20_011])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_fused_kernel_matches_reference(dtype, n, weighted):
    """Both the serial (small N) and the parallel (N > SERIAL_MAX_ROWS) drivers, a
    partial last block, and weights; float32 accumulates in float64 as the reference."""
    rng = np.random.default_rng(n)
    X = rng.standard_normal((n, 2)).astype(dtype)
    y = rng.integers(0, 3, n)
    W1, b1 = rng.standard_normal((2, 50)).astype(dtype), rng.standard_normal(50).astype(dtype)
    W2, b2 = rng.standard_normal((50, 3)).astype(dtype), rng.standard_normal(3).astype(dtype)
    w = rng.uniform(0, 2, n).astype(dtype) if weighted else None
    be = fs.get_backend("numba")
    assert isinstance(be, nb_net.NumbaNetBackend)
    got = be.net_loss_gradient(X, y, W1, b1, W2, b2, reg=0.01, sample_weight=w)
    args64 = [a.astype(np.float64) for a in (X, W1, b1, W2, b2)]
    want = _reference_net.net_loss_gradient(
        args64[0], y, *args64[1:], reg=0.01,
        sample_weight=None if w is None else w.astype(np.float64), xp=np)
    for g, ref in zip(got, want):
        assert fs.to_numpy(g).dtype == dtype
        # Sums over N rows: the absolute floor is the size of what was summed.
        assert_close(g, ref, dtype, scale=max(1.0, float(np.max(np.abs(ref)))))


def test_fused_kernel_is_bit_identical_for_any_thread_count():
    numba = pytest.importorskip("numba")
    rng = np.random.default_rng(0)
    n = 50_000
    X = rng.standard_normal((n, 2))
    y = rng.integers(0, 3, n)
    params = (rng.standard_normal((2, 30)), rng.standard_normal(30),
              rng.standard_normal((30, 3)), rng.standard_normal(3))
    args = (X, y, *params, np.ones(1), False, True, nb_net._n_chunks(n))
    serial = nb_net._net_loss_gradient_serial_kernel(*args)
    before = numba.get_num_threads()
    try:
        results = []
        for threads in sorted({1, before}):
            numba.set_num_threads(threads)
            results.append(nb_net._net_loss_gradient_kernel(*args))
    finally:
        numba.set_num_threads(before)
    for r in results:
        np.testing.assert_array_equal(r, serial)


def test_wide_layers_fall_back_to_the_reference():
    rng = np.random.default_rng(1)
    d, h, k = 40, 400, 10  # H (D + K) = 20,000 > FUSED_MAX_PARAMS
    assert h * (d + k) > nb_net.FUSED_MAX_PARAMS
    X, y = rng.standard_normal((100, d)), rng.integers(0, k, 100)
    params = (0.1 * rng.standard_normal((d, h)), rng.standard_normal(h),
              0.1 * rng.standard_normal((h, k)), rng.standard_normal(k))
    got = fs.net_loss_gradient(X, y, *params, reg=0.1, backend="numba")
    want = fs.net_loss_gradient(X, y, *params, reg=0.1, backend="numpy")
    for g, ref in zip(got, want):
        np.testing.assert_array_equal(g, ref)


# -- TwoLayerNet -----------------------------------------------------------------------
SPIRAL = fs.make_spiral(100, 3, seed=0, backend="numpy")


@pytest.mark.slow
def test_case_study_reaches_97_percent(backend):
    """The cs231n case study: 300 spiral points, 100 hidden units, 10,000 steps of 1.0,
    reg 1e-3 -- where the linear classifier stops near 50%. The data and seed of
    ``fastsoftmax train --model mlp --seed 0`` (see test_cli_train_mlp_is_the_estimator)."""
    X, y = fs.make_spiral(100, 3, seed=0, shuffle=False, backend=backend.name)
    net = fs.TwoLayerNet(hidden=100, lr=1.0, reg=1e-3, max_iter=10_000, random_state=0,
                         backend=backend.name).fit(X, y)
    assert net.score(X, y) >= 0.97
    linear = fs.SoftmaxClassifier(backend="numpy").fit(X, y)
    assert linear.score(X, y) < 0.6
    assert net.n_iter_ == 10_000 and len(net.loss_history_) == 10_000
    assert net.loss_history_[-1] < 0.3 < net.loss_history_[0]


def test_backends_train_to_the_same_weights(backend, dtype):
    """Same init on the host, same steps: every backend follows the same path."""
    X, y = SPIRAL
    kwargs = {"hidden": 20, "max_iter": 30, "random_state": 3, "dtype": str(np.dtype(dtype))}
    ref = fs.TwoLayerNet(backend="numpy", **kwargs).fit(X, y)
    net = fs.TwoLayerNet(backend=backend, **kwargs).fit(X, y)
    for name in ("W1_", "b1_", "W2_", "b2_"):
        got = fs.to_numpy(getattr(net, name))
        assert got.dtype == dtype
        assert_close(got, getattr(ref, name), dtype, scale=1.0)
    np.testing.assert_allclose(net.loss_history_, ref.loss_history_,
                               rtol=100 * np.finfo(dtype).eps)


def test_initialisation_is_the_case_studys():
    X, y = SPIRAL
    net = fs.TwoLayerNet(hidden=100, max_iter=1, lr=1e-12, random_state=7,
                         backend="numpy").fit(X, y)
    rng = np.random.default_rng(7)
    W1, W2 = 0.01 * rng.standard_normal((2, 100)), 0.01 * rng.standard_normal((100, 3))
    np.testing.assert_allclose(net.W1_, W1, rtol=1e-9)
    np.testing.assert_allclose(net.W2_, W2, rtol=1e-9)
    assert abs(net.loss_history_[0] - np.log(3)) < 1e-3


def test_sgd_with_momentum_learns_the_spiral():
    X, y = SPIRAL
    net = fs.TwoLayerNet(solver="sgd", lr=0.1, momentum=0.9, batch_size=32, max_iter=300,
                         random_state=0, backend="numba").fit(X, y)
    assert net.n_iter_ == 300
    assert net.n_evals_ == 300 * 10  # ceil(300 / 32) mini-batches an epoch
    assert net.score(X, y) >= 0.9


def test_partial_fit_epochs_equal_fit(backend):
    X, y = SPIRAL
    kwargs = {"solver": "sgd", "lr": 0.1, "batch_size": 64, "hidden": 16, "random_state": 1,
              "backend": backend}
    fitted = fs.TwoLayerNet(max_iter=4, **kwargs).fit(X, y)
    stepped = fs.TwoLayerNet(**kwargs)
    for _ in range(4):
        stepped.partial_fit(X, y, classes=np.arange(3))
    assert stepped.n_iter_ == 4
    assert stepped.loss_history_ == fitted.loss_history_
    for name in ("W1_", "b1_", "W2_", "b2_"):
        np.testing.assert_array_equal(fs.to_numpy(getattr(stepped, name)),
                                      fs.to_numpy(getattr(fitted, name)))


def test_partial_fit_classes_and_errors():
    X, y = SPIRAL
    net = fs.TwoLayerNet(solver="sgd", lr=0.1, hidden=8, backend="numpy")
    net.partial_fit(X[y < 2], y[y < 2], classes=[0, 1, 2])  # class 2 announced, unseen
    assert list(net.classes_) == [0, 1, 2]
    net.partial_fit(X, y)
    with pytest.raises(ValueError, match="not among the classes"):
        net.partial_fit(X, y + 1)
    assert not hasattr(fs.TwoLayerNet(solver="gd"), "partial_fit")  # as MLPClassifier
    with pytest.raises(AttributeError, match="needs solver='sgd'"):
        fs.TwoLayerNet(solver="gd").partial_fit(X, y)


def test_pickle_joblib_deepcopy_round_trip(backend, tmp_path):
    X, y = SPIRAL
    net = fs.TwoLayerNet(hidden=12, solver="sgd", lr=0.1, max_iter=2, random_state=0,
                         backend=backend.name).fit(X, y)
    want = fs.to_numpy(net.predict_proba(X))
    copies = [pickle.loads(pickle.dumps(net)), copy.deepcopy(net)]
    joblib = pytest.importorskip("joblib")
    joblib.dump(net, tmp_path / "net.joblib")
    copies.append(joblib.load(tmp_path / "net.joblib"))
    for other in copies:
        assert other.backend_ == backend.name
        np.testing.assert_array_equal(fs.to_numpy(other.predict_proba(X)), want)
    # The momentum travels too: one more epoch from the copy = one more from the original.
    a = copies[0].partial_fit(X, y)
    b = net.partial_fit(X, y)
    np.testing.assert_array_equal(fs.to_numpy(a.W1_), fs.to_numpy(b.W1_))


def test_lbfgs_solver_fits_the_net():
    X, y = SPIRAL
    net = fs.TwoLayerNet(solver="lbfgs", hidden=50, max_iter=300, random_state=0,
                         backend="numba").fit(X, y)
    assert net.score(X, y) >= 0.97


@pytest.mark.slow
def test_sklearn_check_estimator():
    checks = pytest.importorskip("sklearn.utils.estimator_checks")
    net = fs.TwoLayerNet(hidden=10, max_iter=200, random_state=0, backend="numpy")
    results = checks.check_estimator(net, on_fail=None)
    failed = [f"{r['check_name']}: {r['exception']}" for r in results if r["status"] == "failed"]
    assert not failed


def test_sklearn_protocol():
    sklearn_base = pytest.importorskip("sklearn.base")
    net = fs.TwoLayerNet(hidden=7, lr=0.5)
    assert net.get_params()["hidden"] == 7
    clone = sklearn_base.clone(net)
    assert clone.get_params() == net.get_params() and clone is not net
    assert repr(net) == "TwoLayerNet(hidden=7, lr=0.5)"
    with pytest.raises(fs.NotFittedError):
        net.predict(SPIRAL[0])


@pytest.mark.parametrize("params, exc, words", [
    ({"hidden": 0}, ValueError, "hidden must be >= 1"),
    ({"hidden": 2.5}, TypeError, "hidden must be an integer"),
    ({"batch_size": 0}, ValueError, "batch_size must be >= 1"),
    ({"momentum": 1.0}, ValueError, "momentum must be in"),
    ({"init_scale": 0.0}, ValueError, "init_scale must be"),
    ({"diagnostics": "yes"}, TypeError, "diagnostics must be True or False"),
    ({"solver": "adam"}, ValueError, "solver must be one of"),
])
def test_bad_parameters_fail_in_fit(params, exc, words):
    with pytest.raises(exc, match=words):
        fs.TwoLayerNet(**params).fit(*SPIRAL)


# -- diagnostics ----------------------------------------------------------------------
def test_diagnostics_off_records_nothing():
    net = fs.TwoLayerNet(hidden=8, max_iter=5, backend="numpy").fit(*SPIRAL)
    assert not hasattr(net, "diagnostics_")


def test_diagnostics_are_what_they_say(backend):
    X, y = SPIRAL
    lr = 0.5
    net = fs.TwoLayerNet(hidden=10, lr=lr, max_iter=6, diagnostics=True, random_state=2,
                         backend=backend).fit(X, y)
    d = net.diagnostics_
    assert all(len(v) == 6 for v in d.values())
    # Step 0 by hand: the initial weights are known, the gradient is the library's.
    rng = np.random.default_rng(2)
    W1 = 0.01 * rng.standard_normal((2, 10))
    W2 = 0.01 * rng.standard_normal((10, 3))
    _, dW1, db1, dW2, _ = fs.net_loss_gradient(X, y, W1, np.zeros(10), W2, np.zeros(3),
                                               reg=1e-3, backend="numpy")
    np.testing.assert_allclose(d["grad_norm_W1"][0], np.linalg.norm(dW1), rtol=1e-9)
    np.testing.assert_allclose(d["grad_norm_W2"][0], np.linalg.norm(dW2), rtol=1e-9)
    np.testing.assert_allclose(d["update_ratio_W1"][0],
                               lr * np.linalg.norm(dW1) / np.linalg.norm(W1), rtol=1e-9)
    np.testing.assert_allclose(d["dead_fraction"][0],
                               np.mean(np.all(X @ W1 <= 0, axis=0)), rtol=0)
    # The last ratio is the last step, to the fitted weights.
    assert d["update_ratio_W2"][-1] > 0


def test_diagnostics_tell_a_dead_network_from_a_healthy_one():
    """A huge step kills the ReLUs: the dead fraction says so, and accuracy follows."""
    X, y = SPIRAL
    good = fs.TwoLayerNet(max_iter=2000, diagnostics=True, random_state=0,
                          backend="numba").fit(X, y)
    dead = fs.TwoLayerNet(lr=200.0, max_iter=2000, diagnostics=True, random_state=0,
                          backend="numba").fit(X, y)
    assert good.diagnostics_["dead_fraction"][-1] < 0.2
    assert dead.diagnostics_["dead_fraction"][-1] > 0.5
    assert good.score(X, y) > 0.9 > 0.6 > dead.score(X, y)
    assert max(dead.diagnostics_["update_ratio_W1"]) > 1 > max(
        good.diagnostics_["update_ratio_W1"][100:])


# -- the command line -------------------------------------------------------------------
def _cli_json(argv, capsys):
    import json

    from fastsoftmax.cli import main

    assert main(["train", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_cli_train_mlp_reaches_97_percent(capsys):
    """``fastsoftmax train --model mlp --hidden 100``: the case study by default."""
    result = _cli_json(["--model", "mlp", "--hidden", "100", "--seed", "0",
                        "--backend", "numba"], capsys)
    assert result["model"] == "mlp" and result["iters"] == 10_000
    assert result["accuracy"] >= 0.97


def test_cli_train_mlp_is_the_estimator(backend, capsys):
    """Every backend: the command trains exactly ``TwoLayerNet`` on the same data and
    seed (the same losses, bit for bit), so ``test_case_study_reaches_97_percent``
    on the estimator is the command's result too."""
    result = _cli_json(["--model", "mlp", "--hidden", "100", "--seed", "0", "--iters", "50",
                        "--backend", backend.name], capsys)
    # The command draws the spiral on its backend (sin/cos there), so the test does too.
    X, y = fs.make_spiral(100, 3, seed=0, shuffle=False, backend=backend.name)
    net = fs.TwoLayerNet(hidden=100, random_state=0, max_iter=50, backend=backend.name)
    assert result["loss_history"] == net.fit(X, y).loss_history_
    assert result["accuracy"] == net.score(X, y)


def test_cli_train_mlp_diagnostics_and_plot(tmp_path, capsys):
    from fastsoftmax.cli import main

    path = tmp_path / "net.png"
    assert main(["train", "--model", "mlp", "--hidden", "20", "--iters", "30", "--seed", "1",
                 "--backend", "numpy", "--diagnostics", "--print-every", "10",
                 "--plot", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    lines = [line for line in out if line.startswith("iteration")]
    assert [line.split(":")[0] for line in lines] == [
        "iteration 0", "iteration 10", "iteration 20"]
    assert all("dead ReLUs" in line and "update/weight W1" in line for line in lines)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("argv, words", [
    (["--hidden", "5"], "--hidden applies to --model mlp only"),
    (["--diagnostics"], "--diagnostics applies to --model mlp only"),
    (["--model", "mlp", "--hidden", "0"], "argument --hidden: must be >= 1"),
    (["--model", "mlp", "--init-scale", "0"], "argument --init-scale: must be a finite"),
    (["--model", "cnn"], "argument --model: invalid choice"),
])
def test_cli_mlp_usage_errors(argv, words, capsys):
    from fastsoftmax.cli import main

    assert main(["train", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fastsoftmax: error: ") and words in err and err.count("\n") == 1
