"""The dask backend on a real LocalCluster: block sums against one process,
determinism, errors from the blocks, the generated spiral, Zarr stores, the
estimator's solvers, and the security of the local cluster.

The cross-backend tables (agreement, bad input, the notebook's experiment) run
on dask through the ``backend`` fixture; these are what only dask has.
"""

import math
import os

import numpy as np
import pytest

import fastsoftmax as fs

import naive
from conftest import assert_close, random_problem

da = pytest.importorskip("dask.array", reason="the dask tests need dask[array]")
dask = pytest.importorskip("dask")
pytest.importorskip("distributed", reason="the dask tests need dask.distributed")
pytest.importorskip("zarr", reason="the dask tests need zarr")

pytestmark = pytest.mark.usefixtures("dask_client")

DASK = "dask"
# Row blocks: many small, uneven with a one-row block, and a single block.
CHUNKINGS = [7, (40, 1, 59, 100), 200]


def _dask(a, chunks):
    return da.from_array(a, chunks=(chunks,) + (-1,) * (a.ndim - 1))


@pytest.mark.parametrize("chunks", CHUNKINGS, ids=["7", "uneven", "one"])
@pytest.mark.parametrize("shape", [(3, 4), (50, 50)], ids=["narrow", "wide"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_loss_gradient_block_sums_match_one_process(chunks, shape, weighted, dtype):
    d, k = shape
    X, y, W, b = random_problem(200, d, k, dtype=dtype, seed=1)
    w = np.random.default_rng(2).uniform(0, 2, 200).astype(dtype) if weighted else None
    got = fs.loss_gradient(_dask(X, chunks), _dask(y, chunks), W, b, reg=0.1,
                           sample_weight=None if w is None else _dask(w, chunks))
    ref = fs.loss_gradient(X, y, W, b, reg=0.1, sample_weight=w, backend="numba")
    naive_loss, naive_dW, naive_db = naive.loss_gradient(X, y, W, b, reg=0.1, sample_weight=w)
    for g, r, n in zip(got, ref, (naive_loss, naive_dW, naive_db)):
        assert isinstance(g, np.ndarray) and g.dtype == dtype and g.shape == np.shape(r)
        assert_close(g, n, dtype)
        assert_close(g, r, dtype)


@pytest.mark.parametrize("tree", ["flat", "deep"])
def test_same_data_and_chunks_give_the_same_bits_on_any_scheduler(tree, monkeypatch):
    from fastsoftmax.backends import dask as dask_backend

    if tree == "deep":  # fan-in 8: 136 blocks make a three-level tree
        monkeypatch.setattr(dask_backend, "TREE_BYTES", 8 * 8 * (2 + 4 * 5 + 5))
    X, y, W, b = random_problem(5000, 4, 5, seed=3)
    Xd, yd = _dask(X, 37), _dask(y, 37)  # 136 blocks
    on_cluster = [fs.loss_gradient(Xd, yd, W, b, reg=1e-3) for _ in range(3)]
    with dask.config.set(scheduler="threads"):
        threads = fs.loss_gradient(Xd, yd, W, b, reg=1e-3)
    with dask.config.set(scheduler="sync"):
        sync = fs.loss_gradient(Xd, yd, W, b, reg=1e-3)
    for other in (*on_cluster[1:], threads, sync):
        for a, c in zip(on_cluster[0], other):
            assert np.array_equal(a, c)


def test_column_chunks_are_rechunked_to_whole_rows():
    X, y, W, b = random_problem(300, 6, 3, seed=4)
    rows = fs.loss_gradient(da.from_array(X, chunks=(50, -1)), _dask(y, 50), W, b)
    cols = fs.loss_gradient(da.from_array(X, chunks=(50, 2)), _dask(y, 50), W, b)
    for a, c in zip(rows, cols):
        assert np.array_equal(a, c)


def test_unknown_chunk_sizes_are_a_type_error_naming_X():
    X, y, W, b = random_problem(100, 2, 3, seed=5)
    Xd = _dask(X, 10)
    Xf, yf = Xd[Xd[:, 0] > -10], _dask(y, 10)[Xd[:, 0] > -10]
    with pytest.raises(TypeError, match="X must be .*unknown chunk sizes.*compute_chunk_sizes"):
        fs.loss_gradient(Xf, yf, W, b, backend=DASK)


def test_auto_picks_dask_for_dask_arrays():
    assert fs.get_backend("auto", like=da.zeros(3)).name == DASK
    assert fs.get_backend("auto", like=np.zeros(3)).name != DASK


def test_row_wise_ops_stay_lazy_and_match_one_process(dtype):
    X, y, W, b = random_problem(150, 3, 4, dtype=dtype, seed=6)
    Xd, yd = _dask(X, 40), _dask(y, 40)
    S = fs.scores(Xd, W, b)
    assert isinstance(S, da.Array) and S.chunks[0] == Xd.chunks[0]
    Sn = fs.scores(X, W, b, backend="numba")
    assert_close(S.compute(), Sn, dtype)
    for op in (fs.softmax, fs.log_softmax, fs.logsumexp):
        out = op(S)
        assert isinstance(out, da.Array)
        assert_close(out.compute(), op(Sn, backend="numba"), dtype)
    rows = fs.cross_entropy(S, yd, reduction="none")
    assert isinstance(rows, da.Array)
    assert_close(rows.compute(), fs.cross_entropy(Sn, y, reduction="none", backend="numba"),
                 dtype)
    for reduction in ("mean", "sum"):
        loss, dS = fs.cross_entropy_gradient(S, yd, reduction=reduction)
        ref_loss, ref_dS = fs.cross_entropy_gradient(Sn, y, reduction=reduction,
                                                     backend="numba")
        assert isinstance(loss, np.ndarray) and isinstance(dS, da.Array)
        assert_close(loss, ref_loss, dtype)
        assert_close(dS.compute(), ref_dS, dtype)


def test_softmax_along_the_rows_uses_the_whole_column():
    S = np.random.default_rng(7).standard_normal((60, 3))
    out = fs.softmax(_dask(S, 7), axis=0)
    assert_close(out.compute(), fs.softmax(S, axis=0, backend="numpy"), np.float64)


def _reference_error(X, y, W, b, w):
    """The error the Array-API reference raises in one process."""
    with pytest.raises(ValueError) as info:
        fs.loss_gradient(X, y, W, b, sample_weight=w, backend="numpy")
    return str(info.value)


# (what to break, at a row of the 7th block of 10 rows)
BAD_BLOCK_VALUES = [
    ("y", "K"), ("y", -1), ("X", np.nan), ("X", np.inf), ("w", -0.5), ("w", np.inf),
]


@pytest.mark.parametrize("what, value", BAD_BLOCK_VALUES,
                         ids=[f"{w}={v}" for w, v in BAD_BLOCK_VALUES])
@pytest.mark.parametrize("shape", [(2, 3), (50, 50)], ids=["narrow", "wide"])
def test_a_bad_value_in_the_7th_block_raises_the_one_process_error(what, value, shape):
    X, y, W, b = random_problem(100, *shape, seed=8)
    w = np.ones(100)
    {"y": y, "X": X[:, 0], "w": w}[what][63] = shape[1] if value == "K" else value
    expected = _reference_error(X, y, W, b, w)
    with pytest.raises(ValueError) as info:
        fs.loss_gradient(_dask(X, 10), _dask(y, 10), W, b, sample_weight=_dask(w, 10))
    assert str(info.value) == expected
    with pytest.raises(ValueError) as info:  # the estimator's one pass of checks too
        fs.get_backend(DASK).check_values(X=_dask(X, 10), y=_dask(y, 10),
                                          n_classes=shape[1], sample_weight=_dask(w, 10))
    assert str(info.value) == expected


def test_weights_zero_in_a_block_are_fine_but_zero_everywhere_is_an_error():
    X, y, W, b = random_problem(100, 2, 3, seed=9)
    w = np.ones(100)
    w[:10] = 0
    got = fs.loss_gradient(_dask(X, 10), _dask(y, 10), W, b, sample_weight=_dask(w, 10))
    ref = fs.loss_gradient(X, y, W, b, sample_weight=w, backend="numba")
    for g, r in zip(got, ref):
        assert_close(g, r, np.float64)
    expected = _reference_error(X, y, W, b, np.zeros(100))
    with pytest.raises(ValueError) as info:
        fs.loss_gradient(_dask(X, 10), _dask(y, 10), W, b, sample_weight=da.zeros(100, chunks=10))
    assert str(info.value) == expected


# -- the spiral, generated per block ----------------------------------------------
@pytest.mark.parametrize("n_features", [2, 5])
def test_dask_spiral_is_the_one_process_geometry_with_noise_per_point(dtype, n_features):
    """Without noise the Dask spiral is make_spiral's bit for bit; with noise the
    same for any chunks (each point's noise depends on the seed and the point)."""
    kw = dict(n_features=n_features, seed=3, dtype=dtype.name, shuffle=False)
    X0, y0 = fs.make_spiral(100, 3, noise=0.0, backend="numpy", **kw)
    X1, y1 = fs.make_spiral(100, 3, noise=0.0, backend=DASK, chunks=70, **kw)
    assert np.array_equal(X1.compute(), X0) and np.array_equal(y1.compute(), y0)
    blocks = [fs.make_spiral(100, 3, backend=DASK, chunks=c, **kw)[0].compute()
              for c in (7, 70, 300)]
    assert all(np.array_equal(blocks[0], other) for other in blocks[1:])


def test_dask_spiral_is_deterministic_per_seed():
    a = fs.make_spiral(500, 4, seed=11, backend=DASK, chunks=300)
    b = fs.make_spiral(500, 4, seed=11, backend=DASK, chunks=300)
    c = fs.make_spiral(500, 4, seed=12, backend=DASK, chunks=300)
    assert a[0].name == b[0].name  # same graph keys: computed results are shared
    Xa, Xb, Xc = (t[0].compute() for t in (a, b, c))
    assert np.array_equal(Xa, Xb) and not np.array_equal(Xa, Xc)
    assert np.array_equal(a[1].compute(), b[1].compute())


def test_dask_spiral_noise_has_the_one_process_distribution():
    scipy_stats = pytest.importorskip("scipy.stats", reason="uses scipy's KS test")
    npc, k, noise = 20_000, 3, 0.2
    X, y = fs.make_spiral(npc, k, noise=noise, seed=5, shuffle=False, backend=DASK,
                          chunks=7_000)
    X, y = X.compute(), y.compute()
    i = np.arange(npc * k)
    r = (i % npc) / (npc - 1)
    keep = r > 0.05  # the angle of a point at the centre is not measurable
    t = np.arctan2(X[:, 0], X[:, 1])
    e = (t - 4 * (y + r)) / noise
    e = (e * noise + np.pi) % (2 * np.pi) / noise - np.pi / noise  # unwrap the angle
    assert np.array_equal(y, i // npc)
    np.testing.assert_allclose(np.hypot(X[:, 0], X[:, 1]), r, atol=1e-12)
    assert scipy_stats.kstest(e[keep], "norm").pvalue > 1e-3


def test_dask_shuffle_is_a_permutation_mixing_every_block():
    X0, y0 = fs.make_spiral(300, 3, noise=0.0, shuffle=False, seed=2, backend=DASK, chunks=90)
    X1, y1 = fs.make_spiral(300, 3, noise=0.0, seed=2, backend=DASK, chunks=90)
    X0, y0, X1, y1 = (a.compute() for a in (X0, y0, X1, y1))
    # Sorted by (label, x0, x1): the centre point (0, 0) is in every class.
    order0, order1 = np.lexsort((X0[:, 1], X0[:, 0], y0)), np.lexsort((X1[:, 1], X1[:, 0], y1))
    assert np.array_equal(X0[order0], X1[order1]) and np.array_equal(y0[order0], y1[order1])
    for block in range(10):
        assert set(y1[block * 90:(block + 1) * 90]) == {0, 1, 2}


@pytest.mark.parametrize("kwargs, exc, words", [
    ({"chunks": (100, 100)}, ValueError, "chunks add up to 200"),
    ({"chunks": 0}, ValueError, "chunks must be >= 1"),
    ({"chunks": "big"}, TypeError, "chunks must be an integer"),
    ({"chunks": 10, "backend": "numpy"}, ValueError, "chunks is for backend='dask' only"),
])
def test_spiral_chunks_bad_input(kwargs, exc, words):
    with pytest.raises(exc, match=words):
        fs.make_spiral(100, 3, **{"backend": DASK, **kwargs})


# -- Zarr stores ---------------------------------------------------------------------
def test_zarr_round_trip_chunk_by_chunk(tmp_path):
    zarr = pytest.importorskip("zarr")
    X, y = fs.make_spiral(100, 3, seed=0, dtype="float32", backend=DASK, chunks=64)
    path = tmp_path / "s.zarr"
    fs.save_zarr(path, X, y, attrs={"seed": 0})
    group = zarr.open_group(path, mode="r")
    assert group.metadata.zarr_format == 3 and group["X"].chunks == (64, 2)
    X2, y2 = fs.load_zarr(path)
    assert X2.chunks == X.chunks and X2.dtype == np.float32
    assert np.array_equal(X2.compute(), X.compute()) and np.array_equal(y2.compute(), y.compute())
    X3, _ = fs.load_zarr(path, chunks=128)
    assert X3.chunks[0] == (128, 128, 44)
    with pytest.raises(ValueError, match="exists; pass overwrite=True"):
        fs.save_zarr(path, X, y)
    fs.save_zarr(path, X[:10], y[:10], overwrite=True)
    assert fs.load_zarr(path)[0].shape == (10, 2)


def test_load_zarr_of_something_else_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="is not a Zarr store"):
        fs.load_zarr(tmp_path / "missing.zarr")
    (tmp_path / "empty.zarr").mkdir()
    with pytest.raises(ValueError, match="not a fastsoftmax Zarr store"):
        fs.load_zarr(tmp_path / "empty.zarr")


# -- the estimator on the cluster ------------------------------------------------------
@pytest.fixture(scope="module")
def spiral():
    X, y = fs.make_spiral(400, 3, seed=0, backend=DASK, chunks=250)
    return X, y, X.compute(), y.compute()


def test_200_gd_steps_on_the_cluster_follow_numba_in_one_process(spiral):
    X, y, Xh, yh = spiral
    kw = dict(solver="gd", tol=0, max_iter=200, random_state=0)
    got = fs.SoftmaxClassifier(backend=DASK, **kw).fit(X, y)
    ref = fs.SoftmaxClassifier(backend="numba", **kw).fit(Xh, yh)
    assert len(got.loss_history_) == 200
    np.testing.assert_allclose(got.loss_history_, ref.loss_history_, rtol=1e-12)
    for name in ("W_", "b_"):
        assert isinstance(getattr(got, name), np.ndarray)  # parameters live on the client
        assert_close(getattr(got, name), getattr(ref, name), np.float64)
    assert got.score(X, y) == ref.score(Xh, yh)


def test_lbfgs_on_the_cluster_reaches_the_numba_optimum(spiral):
    X, y, Xh, yh = spiral
    kw = dict(solver="lbfgs", tol=1e-8, max_iter=500)
    got = fs.SoftmaxClassifier(backend=DASK, **kw).fit(X, y)
    ref = fs.SoftmaxClassifier(backend="numba", **kw).fit(Xh, yh)
    assert got.converged_ and ref.converged_
    assert got.n_evals_ == ref.n_evals_
    np.testing.assert_allclose(got.loss_history_, ref.loss_history_, rtol=1e-10)
    np.testing.assert_allclose(got.W_, ref.W_, rtol=1e-7, atol=1e-9)


def test_string_labels_and_persisted_data(spiral, dask_client):
    X, y, Xh, yh = spiral
    names = np.array(["ant", "bee", "cat"])
    ys = y.map_blocks(lambda block: names[block], dtype=names.dtype)
    Xp, yp = dask_client.persist([X, ys])
    got = fs.SoftmaxClassifier(backend=DASK, max_iter=20, tol=0).fit(Xp, yp)
    ref = fs.SoftmaxClassifier(backend="numba", max_iter=20, tol=0).fit(Xh, names[yh])
    assert list(got.classes_) == list(names)
    np.testing.assert_allclose(got.loss_history_, ref.loss_history_, rtol=1e-12)


# -- the local cluster's security --------------------------------------------------------
def test_local_cluster_listens_on_loopback_only(dask_client):
    psutil = pytest.importorskip("psutil")
    pids = {os.getpid(), *dask_client.run(os.getpid).values()}
    listening = [c for pid in pids for c in psutil.Process(pid).net_connections("inet")
                 if c.status == psutil.CONN_LISTEN]
    assert listening and {c.laddr.ip for c in listening} == {"127.0.0.1"}
    assert all(addr.startswith("tcp://127.0.0.1:")
               for addr in [dask_client.scheduler.address, *dask_client.nthreads()])


def test_local_workers_run_single_threaded_kernels(dask_client):
    env = dask_client.run(lambda: {k: os.environ.get(k) for k in (
        "NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")})
    assert len(env) == 2 and all(set(e.values()) == {"1"} for e in env.values())
    assert set(dask_client.nthreads().values()) == {1}


def test_dask_client_refuses_bad_addresses_in_one_line():
    from fastsoftmax.distributed import dask_client

    with pytest.raises(ValueError, match="scheduler must be 'local'"), dask_client("8786"):
        pass
    with pytest.raises(ValueError, match="need a tls:// scheduler"), dask_client(
            "tcp://127.0.0.1:1", tls_ca_file="a", tls_cert="b", tls_key="c"):
        pass
    with pytest.raises(OSError, match=r"cannot reach the Dask scheduler at tcp://127\.0\.0\.1:9"):
        with dask_client("tcp://127.0.0.1:9", timeout=1):
            pass


def test_tls_scheduler_with_certificates(tmp_path):
    pytest.importorskip("cryptography", reason="Security.temporary needs cryptography")
    from distributed import LocalCluster
    from distributed.security import Security

    from fastsoftmax.distributed import dask_client

    sec = Security.temporary()
    files = {}
    for name in ("tls_ca_file", "tls_client_cert", "tls_client_key"):
        path = tmp_path / f"{name}.pem"
        path.write_text(getattr(sec, name))
        files[name] = str(path)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, security=sec,
                      protocol="tls://", host="127.0.0.1", dashboard_address="127.0.0.1:0") as c:
        assert c.scheduler_address.startswith("tls://127.0.0.1:")
        with dask_client(c.scheduler_address, tls_ca_file=files["tls_ca_file"],
                         tls_cert=files["tls_client_cert"],
                         tls_key=files["tls_client_key"]) as client:
            assert client.submit(math.sqrt, 4.0).result() == 2.0


# -- the command line ----------------------------------------------------------------------
def _cli(*args):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "fastsoftmax", *args], capture_output=True,
                          text=True, timeout=600)


def test_cli_trains_on_a_local_cluster_as_the_library_does():
    import json

    out = _cli("train", "--backend", "dask", "--scheduler", "local", "--workers", "2",
               "--n-per-class", "100", "--solver", "gd", "--iters", "20", "--seed", "0",
               "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    # The CLI's blocks: 300 rows over 2 single-threaded workers = 2 blocks of 150.
    X, y = fs.make_spiral(100, 3, seed=0, shuffle=False, backend=DASK, chunks=150)
    ref = fs.SoftmaxClassifier(solver="gd", max_iter=20, tol=0, random_state=0,
                               backend="numba").fit(X.compute(), y.compute())
    assert result["backend"] == DASK and result["n_samples"] == 300
    np.testing.assert_allclose(result["loss_history"], ref.loss_history_, rtol=1e-12)
    assert result["accuracy"] == ref.score(X.compute(), y.compute())


def test_cli_make_data_then_train_on_the_store(tmp_path):
    import json

    store = str(tmp_path / "s.zarr")
    out = _cli("make-data", "--n-per-class", "500", "--features", "3", "--chunk-rows", "400",
               "--seed", "4", "--out", store, "--workers", "1")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("wrote 1,500 points (3 classes, 3 features, float32) in 4 blocks")
    again = _cli("make-data", "--out", store)
    assert again.returncode == 2 and again.stderr.count("\n") == 1
    assert again.stderr.startswith("fastsoftmax: error: --out") and "--overwrite" in again.stderr
    out = _cli("train", "--backend", "dask", "--data", store, "--persist", "--workers", "1",
               "--solver", "lbfgs", "--dtype", "float32", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    X, y = fs.load_zarr(store)
    ref = fs.SoftmaxClassifier(backend="numba").fit(X.compute(), y.compute())
    assert result["n_samples"] == 1500 and result["n_features"] == 3
    assert result["dtype"] == "float32" and result["converged"]
    np.testing.assert_allclose(result["loss_history"], ref.loss_history_, rtol=1e-6)


@pytest.mark.parametrize("args, words", [
    (["train", "--backend", "numpy", "--scheduler", "local"], "--scheduler needs --backend dask"),
    (["train", "--backend", "numpy", "--persist"], "--persist needs --backend dask"),
    (["train", "--backend", "dask", "--plot", "x.png"], "--plot is not available with --backend"),
    (["train", "--backend", "dask", "--scheduler", "localhost:8786"],
     "scheduler must be 'local', tcp://HOST:PORT or tls://HOST:PORT"),
    (["train", "--backend", "dask", "--scheduler", "tls://127.0.0.1:1", "--tls-cert", "c.pem"],
     "TLS needs a CA file, a certificate and a key"),
])
def test_cli_dask_mistakes_are_one_line(args, words):
    out = _cli(*args)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.startswith("fastsoftmax: error: ") and out.stderr.count("\n") == 1
    assert words in out.stderr
