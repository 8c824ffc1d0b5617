"""The numba backend's own promises: accurate vectorised exp/log, determinism for
any thread count, both regimes, chunk/block/tile edges, the on-disk cache, and
bounded extra memory. (It also runs every cross-backend test via the fixture.)"""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastsoftmax as fs
from fastsoftmax.backends import backend_info

from conftest import assert_close, random_problem

if not backend_info("numba")["available"]:
    pytest.skip(f"numba backend unavailable: {backend_info('numba')['reason']}",
                allow_module_level=True)

import numba  # noqa: E402

from fastsoftmax.backends import numba as nb  # noqa: E402


@numba.njit(error_model="numpy")
def _vexp(x, out):
    for i in range(x.shape[0]):  # a vectorised loop, as in the kernels
        out[i] = nb._exp(x[i])


@numba.njit(error_model="numpy")
def _vlog(x, out):
    for i in range(x.shape[0]):
        out[i] = nb._log(x[i])


def _ulp_error(got, want):
    want = want.astype(np.float64)
    return np.abs(got.astype(np.float64) - want) / np.spacing(np.abs(want).astype(got.dtype))


@pytest.mark.parametrize("dtype,lo,hi", [(np.float64, -745.0, 709.7), (np.float32, -103.0, 88.7)])
def test_exp_is_accurate_to_about_an_ulp(dtype, lo, hi):
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(lo, hi, 200_000), rng.uniform(-1, 1, 100_000),
                        -np.logspace(-300 if dtype == np.float64 else -30, 2.8, 50_000)])
    x = x.astype(dtype)
    got = np.empty_like(x)
    _vexp(x, got)
    with np.errstate(under="ignore"):
        want = np.exp(x.astype(np.float64))
    normal = want >= np.finfo(dtype).tiny
    assert np.max(_ulp_error(got[normal], want[normal])) <= 2.0
    # Gradual underflow: subnormal results within one subnormal step.
    tiny = ~normal
    smallest = np.finfo(dtype).smallest_subnormal
    assert np.all(np.abs(got[tiny].astype(np.float64) - want[tiny]) <= 1.01 * smallest)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_exp_special_values(dtype):
    x = np.array([0.0, -0.0, -np.inf, np.inf, np.nan, -1e4, 1e4, -2000.0], dtype=dtype)
    got = np.empty_like(x)
    _vexp(x, got)
    np.testing.assert_array_equal(got[:4], [1.0, 1.0, 0.0, np.inf])
    assert np.isnan(got[4])
    np.testing.assert_array_equal(got[5:], [0.0, np.inf, 0.0])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_log_is_accurate_to_about_an_ulp(dtype):
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.uniform(1, 1000, 200_000), np.logspace(-30, 30, 100_000),
                        rng.uniform(0.5, 2, 100_000)]).astype(dtype)
    got = np.empty_like(x)
    _vlog(x, got)
    want = np.log(x.astype(np.float64))
    away_from_one = np.abs(want) > 1e-3  # near log(1) = 0 compare absolutely
    assert np.max(_ulp_error(got[away_from_one], want[away_from_one])) <= 2.0
    eps = np.finfo(dtype).eps
    assert np.max(np.abs(got[~away_from_one] - want[~away_from_one])) <= eps


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_log_special_values(dtype):
    x = np.array([1.0, 0.0, np.inf, np.nan, 2.0], dtype=dtype)
    got = np.empty_like(x)
    _vlog(x, got)
    np.testing.assert_array_equal(got[:3], [0.0, -np.inf, np.inf])
    assert np.isnan(got[3])
    assert got[4] == pytest.approx(np.log(2.0), rel=float(np.finfo(dtype).eps))


def _spiral(n, dtype=np.float64, seed=0):
    X, y = fs.make_spiral(n // 3, 3, seed=seed, dtype=np.dtype(dtype).name, backend="numpy")
    W = 0.5 * np.random.default_rng(seed).standard_normal((2, 3)).astype(dtype)
    return X, y, W, np.array([0.1, -0.2, 0.3], dtype=dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_narrow_kernel_matches_reference_across_blocks_and_chunks(dtype):
    # N not a multiple of the block, many chunks, weights and reg: at the dtype's tolerance.
    X, y, W, b = _spiral(300_007, dtype)
    w = np.random.default_rng(2).uniform(0, 2, len(y)).astype(dtype)
    want = fs.loss_gradient(X.astype(float), y, W.astype(float), b.astype(float), reg=0.01,
                            sample_weight=w.astype(float), backend="numpy")
    got = fs.loss_gradient(X, y, W, b, reg=0.01, sample_weight=w, backend="numba")
    for g, v in zip(got, want):
        assert g.dtype == dtype
        assert_close(g, v, dtype, scale=1.0)


def test_results_are_identical_for_any_thread_count():
    X, y, W, b = _spiral(200_000)
    Xw, yw, Ww, bw = random_problem(30_000, 64, 40, seed=3)  # the wide regime
    before = numba.get_num_threads()
    try:
        runs = []
        for threads in (1, numba.config.NUMBA_NUM_THREADS):
            numba.set_num_threads(threads)
            runs.append([fs.loss_gradient(X, y, W, b, reg=1e-3, backend="numba"),
                         fs.loss_gradient(Xw, yw, Ww, bw, reg=1e-3, backend="numba")])
            runs.append([fs.loss_gradient(X, y, W, b, reg=1e-3, backend="numba"),
                         fs.loss_gradient(Xw, yw, Ww, bw, reg=1e-3, backend="numba")])
    finally:
        numba.set_num_threads(before)
    for run in runs[1:]:
        for case, ref in zip(run, runs[0]):
            for a, c in zip(case, ref):
                np.testing.assert_array_equal(a, c)  # bit for bit


def test_serial_and_parallel_narrow_kernels_are_bit_identical():
    X, y, W, b = _spiral(50_000)
    w = np.random.default_rng(7).uniform(0, 1, len(y))
    chunks = nb._n_chunks(len(y))
    for weights, use_w, wscale in ((np.ones(1), False, 1.0), (w, True, 1 / w.sum())):
        par = nb._loss_gradient_narrow_kernel(X, y, W, b, weights, use_w, wscale, True, chunks)
        ser = nb._loss_gradient_narrow_serial_kernel(X, y, W, b, weights, use_w, wscale, True,
                                                     chunks)
        np.testing.assert_array_equal(par[0], ser[0])
        assert par[1] == ser[1] == 0


def test_regime_switch_and_both_paths_agree_with_reference():
    assert nb._regime(2, 3) == "narrow"
    assert nb._regime(1, nb.NARROW_MAX_DK) == "narrow"
    assert nb._regime(1, nb.NARROW_MAX_DK + 1) == "wide"
    assert nb._regime(64, 100) == "wide"
    for d, k in [(1, nb.NARROW_MAX_DK), (1, nb.NARROW_MAX_DK + 1), (8, 12), (64, 40)]:
        X, y, W, b = random_problem(3_003, d, k, seed=d * k)
        w = np.random.default_rng(k).uniform(0, 1, 3_003)
        want = fs.loss_gradient(X, y, W, b, reg=0.1, sample_weight=w, backend="numpy")
        got = fs.loss_gradient(X, y, W, b, reg=0.1, sample_weight=w, backend="numba")
        for g, v in zip(got, want):
            assert_close(g, v, np.float64, scale=10.0)


def test_wide_path_spans_several_tiles():
    d, k = 48, 64
    assert nb._regime(d, k) == "wide"
    n = 3 * (nb.TILE_BYTES // (k * 8)) + 17
    X, y, W, b = random_problem(n, d, k, seed=4)
    want = fs.loss_gradient(X, y, W, b, reg=0.01, backend="numpy")
    got = fs.loss_gradient(X, y, W, b, reg=0.01, backend="numba")
    for g, v in zip(got, want):
        assert_close(g, v, np.float64, scale=10.0)


@pytest.mark.parametrize("d,k", [(2, 3), (64, 40)], ids=["narrow", "wide"])
def test_fused_checks_word_the_error(d, k):
    X, y, W, b = random_problem(3_000, d, k, seed=5)
    X[1234, 1] = np.inf
    with pytest.raises(ValueError, match="X contains NaN or infinity"):
        fs.loss_gradient(X, y, W, b, backend="numba")
    X[1234, 1] = 0.0
    y[2999] = k
    with pytest.raises(ValueError, match=f"y holds label {k}, outside"):
        fs.loss_gradient(X, y, W, b, backend="numba")


def test_loss_only_matches_loss_gradient():
    for d, k in [(2, 3), (64, 40)]:
        X, y, W, b = random_problem(2_000, d, k, seed=6)
        a = fs.loss(X, y, W, b, reg=0.2, backend="numba")
        c = fs.loss_gradient(X, y, W, b, reg=0.2, backend="numba")[0]
        assert a == c


def _run(code):
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_kernels_load_from_the_on_disk_cache_in_a_new_process():
    code = """
        import json, numpy as np, fastsoftmax as fs
        from fastsoftmax.backends import numba as nb
        X, y = fs.make_spiral(50, 3, seed=0, backend="numpy")
        fs.loss_gradient(X, y, np.zeros((2, 3)), np.zeros(3), backend="numba")
        stats = nb._loss_gradient_narrow_serial_kernel.stats  # small N: the serial twin
        print(json.dumps({"hits": sum(stats.cache_hits.values()),
                          "misses": sum(stats.cache_misses.values())}))
    """
    _run(code)  # compiles (or loads) and writes the cache
    second = _run(code)
    assert second["hits"] >= 1 and second["misses"] == 0


@pytest.mark.slow
def test_extra_peak_memory_is_bounded_at_ten_million_rows():
    """One call at N=1e7, D=2, K=3 float64 needs far less than the N x K arrays
    of the reference (>1 GB): at most 64 MB over the resident set before it."""
    code = """
        import json, numpy as np, fastsoftmax as fs

        def rss_peak_kb():
            for line in open("/proc/self/status"):
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])

        X, y = fs.make_spiral(10_000_000 // 3, 3, seed=0, backend="numpy")
        W, b = np.full((2, 3), 0.01), np.zeros(3)
        fs.loss_gradient(X[:1000], y[:1000], W, b, backend="numba")  # compile first
        with open("/proc/self/clear_refs", "w") as f:  # reset the peak to the current RSS
            f.write("5")
        before = rss_peak_kb()
        fs.loss_gradient(X, y, W, b, backend="numba")
        print(json.dumps({"extra_mb": (rss_peak_kb() - before) / 1024}))
    """
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError as exc:
        pytest.skip(f"cannot reset the peak RSS here (/proc/self/clear_refs: {exc})")
    assert _run(code)["extra_mb"] <= 64


# -- sizes at and around every block, chunk, flush, serial and tile boundary ---------
def _narrow_sizes():
    B, C = nb.BLOCK, nb.MIN_CHUNK_ROWS
    flush = nb.FLUSH_BLOCKS * B * nb.MAX_CHUNKS  # from here a chunk flushes mid-way
    sizes = {1, 2, B - 1, B, B + 1, 2 * B, 2 * B + 1, C - 1, C, C + 1, 2 * C, 2 * C + 1,
             nb.SERIAL_MAX_ROWS - 1, nb.SERIAL_MAX_ROWS, nb.SERIAL_MAX_ROWS + 1,
             C * nb.MAX_CHUNKS - 1, C * nb.MAX_CHUNKS, C * nb.MAX_CHUNKS + 1,
             flush, flush + B * nb.MAX_CHUNKS + 1}
    return sorted(sizes)


_BIG = random_problem(max(_narrow_sizes()), 2, 3, seed=21)
_BIG_W = np.random.default_rng(22).uniform(0, 2, _BIG[0].shape[0])


@pytest.mark.parametrize("n", _narrow_sizes())
def test_narrow_kernel_at_block_chunk_and_flush_boundaries(n):
    """Every N around a multiple of the block (256 rows), the chunk, the serial
    threshold and the flush interval: a dropped or doubled block shows here."""
    X, y, W, b = (a[:n] if a.ndim and a.shape[0] == _BIG[0].shape[0] else a for a in _BIG)
    for w in ((None, _BIG_W[:n]) if n < 100_000 else (_BIG_W[:n],)):  # big N: lean
        want = fs.loss_gradient(X, y, W, b, reg=0.1, sample_weight=w, backend="numpy")
        got = fs.loss_gradient(X, y, W, b, reg=0.1, sample_weight=w, backend="numba")
        for g, v in zip(got, want):
            assert_close(g, v, np.float64, scale=1.0)
    X32, W32, b32 = X.astype(np.float32), W.astype(np.float32), b.astype(np.float32)
    want = fs.loss_gradient(X, y, W32.astype(float), b32.astype(float), backend="numpy")
    for g, v in zip(fs.loss_gradient(X32, y, W32, b32, backend="numba"), want):
        assert_close(g, v, np.float32, scale=1.0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_wide_path_at_tile_boundaries(dtype):
    d, k = 40, 64
    assert nb._regime(d, k) == "wide"
    tile = nb.TILE_BYTES // (k * np.dtype(dtype).itemsize)
    X, y, W, b = random_problem(tile + 1, d, k, dtype, seed=23)
    for n in (tile - 1, tile, tile + 1):
        want = fs.loss_gradient(X[:n].astype(float), y[:n], W.astype(float), b.astype(float),
                                reg=0.1, backend="numpy")
        got = fs.loss_gradient(X[:n], y[:n], W, b, reg=0.1, backend="numba")
        for g, v in zip(got, want):
            assert g.dtype == dtype
            assert_close(g, v, dtype, scale=10.0)


@pytest.mark.parametrize("n", [1, nb.ROWS_PER_TASK - 1, nb.ROWS_PER_TASK,
                               nb.ROWS_PER_TASK + 1, 2 * nb.ROWS_PER_TASK + 1])
def test_row_kernels_at_task_boundaries(n):
    S = 5 * np.random.default_rng(n).standard_normal((n, 7))
    y = np.random.default_rng(n).integers(0, 7, n)
    for op in ("softmax", "log_softmax", "logsumexp"):
        assert_close(getattr(fs, op)(S, backend="numba"), getattr(fs, op)(S, backend="numpy"),
                     np.float64)
    for red in ("mean", "sum", "none"):
        got = fs.cross_entropy_gradient(S, y, reduction=red, backend="numba")
        want = fs.cross_entropy_gradient(S, y, reduction=red, backend="numpy")
        for g, v in zip(got, want):
            assert_close(g, v, np.float64, scale=float(n))


def test_public_call_down_the_serial_and_the_parallel_driver_is_bit_identical(monkeypatch):
    """The public loss_gradient forced down each narrow driver gives the same bits."""
    for n in (2_049, 50_000):
        X, y, W, b = _spiral(n)
        w = np.random.default_rng(n).uniform(0, 1, len(y))
        runs = []
        for threshold in (0, 10**12):  # 0: every N parallel; huge: every N serial
            monkeypatch.setattr(nb, "SERIAL_MAX_ROWS", threshold)
            runs.append([fs.loss_gradient(X, y, W, b, reg=1e-3, sample_weight=sw,
                                          backend="numba") for sw in (None, w)])
        for par, ser in zip(*runs):
            for a, c in zip(par, ser):
                np.testing.assert_array_equal(a, c)


def test_uncentred_float32_accumulates_dW_in_float64():
    """float32 X far from 0 (X + 100): the N products behind each dW entry cancel
    to a small number, which a float32 sum cannot resolve. Both regimes and the
    reference must match a float64 computation at float32 tolerance."""
    # Class-major rows (shuffle=False): long runs of one class, where the cancellation
    # is worst -- the data this test was calibrated on.
    X, y = fs.make_spiral(20_000, 3, shuffle=False, seed=0, dtype="float32", backend="numpy")
    X = X + np.float32(100)
    W = np.array([[3, -2, 1], [-1, 4, 2]], np.float32) * np.float32(1e-3)
    b = np.zeros(3, np.float32)
    Xw = np.hstack([X] * 24)  # D*K = 48 * 50 > NARROW_MAX_DK: the wide regime
    Ww = np.vstack([np.pad(W, ((0, 0), (0, 47)))] * 24) / np.float32(24)
    bw = np.zeros(50, np.float32)
    assert nb._regime(*Ww.shape) == "wide"
    for Xc, Wc, bc in ((X, W, b), (Xw, Ww, bw)):
        want = fs.loss_gradient(Xc.astype(float), y, Wc.astype(float), bc.astype(float),
                                backend="numpy")
        for name in ("numba", "numpy"):
            got = fs.loss_gradient(Xc, y, Wc, bc, backend=name)
            for g, v in zip(got, want):
                assert g.dtype == np.float32
                assert_close(g, v, np.float32)
    # The test can fail: a float32 product X.T @ dscores misses by far more.
    _, G = fs.cross_entropy_gradient(X @ W + b, y, backend="numpy")
    want_dW = fs.loss_gradient(X.astype(float), y, W.astype(float), b.astype(float),
                               backend="numpy")[1]
    with pytest.raises(AssertionError):
        assert_close(X.T @ G, want_dW, np.float32)


def test_float16_and_big_endian_inputs_compute_on_numba():
    """float16 computes in float32 and rounds back, as on every backend; big-endian
    arrays are converted at the boundary (no Numba typing errors)."""
    X, y, W, b = random_problem(100, 2, 3, seed=24)
    got = fs.loss_gradient(X.astype(np.float16), y.astype(">i8"), W.astype(np.float16),
                           b.astype(np.float16), backend="numba")
    want = fs.loss_gradient(X.astype(np.float16).astype(np.float32), y,
                            W.astype(np.float16).astype(np.float32),
                            b.astype(np.float16).astype(np.float32), backend="numpy")
    for g, v in zip(got, want):
        assert g.dtype == np.float16
        np.testing.assert_array_equal(g, v.astype(np.float16))
    S = X.astype(">f8") @ W
    for op in ("softmax", "log_softmax", "logsumexp"):
        np.testing.assert_array_equal(getattr(fs, op)(S, backend="numba"),
                                      getattr(fs, op)(S.astype("<f8"), backend="numba"))
