"""make_spiral: the notebook's data, vectorised, deterministic, on every backend."""

import math

import numpy as np
import pytest

import fastsoftmax as fs


def _notebook_spiral(N, K, noise_draws):
    """The notebook's own loop (cell 39), with its noise supplied."""
    X = np.zeros((N * K, 2))
    Y = np.zeros(N * K, dtype="uint8")
    for j in range(K):
        ix = range(N * j, N * (j + 1))
        r = np.linspace(0.0, 1, N)
        t = np.linspace(j * 4, (j + 1) * 4, N) + noise_draws[N * j:N * (j + 1)] * 0.2
        X[ix] = np.c_[r * np.sin(t), r * np.cos(t)]
        Y[ix] = j
    return X, Y


def test_matches_the_notebook_loop():
    X, y = fs.make_spiral(100, 3, shuffle=False, seed=7, backend="numpy")
    draws = np.random.default_rng(7).standard_normal(300)
    X_nb, y_nb = _notebook_spiral(100, 3, draws)
    np.testing.assert_allclose(X, X_nb, rtol=0, atol=1e-14)
    np.testing.assert_array_equal(y, y_nb)


def test_shapes_dtypes_and_labels(backend, dtype):
    X, y = fs.make_spiral(50, 4, seed=0, dtype=dtype.name, backend=backend)
    X, y = fs.to_numpy(X), fs.to_numpy(y)
    assert X.shape == (200, 2) and X.dtype == dtype
    assert y.shape == (200,) and y.dtype == np.int32
    np.testing.assert_array_equal(np.bincount(y), [50] * 4)
    assert np.all(np.linalg.norm(X, axis=1) <= 1 + 1e-6)


def test_deterministic_for_a_seed_and_random_without(backend):
    a = fs.to_numpy(fs.make_spiral(20, 3, seed=5, backend=backend)[0])
    b = fs.to_numpy(fs.make_spiral(20, 3, seed=5, backend=backend)[0])
    c = fs.to_numpy(fs.make_spiral(20, 3, seed=6, backend=backend)[0])
    d = fs.to_numpy(fs.make_spiral(20, 3, backend=backend)[0])
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c) and not np.array_equal(a, d)


def test_cpu_backends_agree_for_a_seed(backend):
    if backend.name == "cupy":
        pytest.skip("cupy draws its noise on the device with its own generator (documented)")
    if backend.name == "dask":
        pytest.skip("dask draws each point's noise from (seed, point), not one NumPy stream "
                    "(documented in docs/dask.md; its own tests are in test_dask.py)")
    ref = fs.make_spiral(30, 3, seed=11, backend="numpy")
    got = fs.make_spiral(30, 3, seed=11, backend=backend)
    np.testing.assert_allclose(fs.to_numpy(got[0]), ref[0], rtol=1e-14, atol=1e-15)
    np.testing.assert_array_equal(fs.to_numpy(got[1]), ref[1])


def test_no_noise_is_exact_geometry():
    X, y = fs.make_spiral(5, 2, noise=0.0, shuffle=False, backend="numpy")
    r = np.tile(np.linspace(0, 1, 5), 2)
    t = 4 * (y + r)
    np.testing.assert_allclose(X, np.c_[r * np.sin(t), r * np.cos(t)], atol=1e-15)


@pytest.mark.parametrize("d", [3, 4, 16, 64])
def test_embedding_is_an_isometry_of_the_2d_spiral(d):
    X2, y2 = fs.make_spiral(40, 3, seed=3, backend="numpy")
    Xd, yd = fs.make_spiral(40, 3, n_features=d, seed=3, backend="numpy")
    assert Xd.shape == (120, d)
    np.testing.assert_array_equal(y2, yd)
    # Same pairwise distances, so the same classification problem.
    dist = lambda A: np.linalg.norm(A[:, None, :] - A[None, :, :], axis=-1)
    np.testing.assert_allclose(dist(Xd), dist(X2), atol=1e-12)
    # ... and every feature carries part of it.
    assert np.all(Xd.std(axis=0) > 0.01)


def test_one_point_per_class():
    X, y = fs.make_spiral(1, 3, noise=0.0, shuffle=False, backend="numpy")
    np.testing.assert_array_equal(X, np.zeros((3, 2)))
    np.testing.assert_array_equal(y, [0, 1, 2])


def test_shuffle_permutes_the_same_points_rows_and_labels_together(backend):
    ordered = [fs.to_numpy(a) for a in fs.make_spiral(40, 3, shuffle=False, seed=2,
                                                      backend=backend)]
    shuffled = [fs.to_numpy(a) for a in fs.make_spiral(40, 3, seed=2, backend=backend)]
    again = fs.to_numpy(fs.make_spiral(40, 3, seed=2, backend=backend)[0])
    np.testing.assert_array_equal(shuffled[0], again)  # deterministic for a seed
    assert not np.array_equal(shuffled[1], ordered[1])  # really shuffled
    # The same (point, label) pairs: sort both by label, then by coordinates.
    key = lambda X, y: np.lexsort((X[:, 1], X[:, 0], y))
    i, j = key(*ordered), key(*shuffled)
    np.testing.assert_array_equal(ordered[0][i], shuffled[0][j])
    np.testing.assert_array_equal(ordered[1][i], shuffled[1][j])


def test_shuffled_classes_are_mixed_in_every_stretch():
    _, y = fs.make_spiral(100, 3, seed=0, backend="numpy")
    for part in np.array_split(y, 5):  # as unstratified K-fold would cut it
        assert set(part.tolist()) == {0, 1, 2}


@pytest.mark.parametrize("kwargs,exc,words", [
    ({"n_per_class": 0}, ValueError, "n_per_class must be >= 1"),
    ({"n_per_class": 2.5}, TypeError, "n_per_class must be an integer"),
    ({"n_classes": 0}, ValueError, "n_classes must be >= 1"),
    ({"n_features": 1}, ValueError, "n_features must be >= 2"),
    ({"noise": -0.1}, ValueError, "noise must be a finite number >= 0"),
    ({"noise": math.nan}, ValueError, "noise must be a finite number"),
    ({"dtype": "float16"}, ValueError, "dtype must be one of"),
    ({"seed": 1.5}, TypeError, "seed must be an integer"),
    ({"shuffle": "yes"}, TypeError, "shuffle must be True or False"),
    ({"backend": "gpu"}, ValueError, "unknown backend 'gpu'"),
    # parameters that pass the type checks but cannot give finite points
    ({"noise": 1e308}, ValueError, "noise must be at most 2.81e+306 for float64"),
    ({"noise": 1e37, "dtype": "float32"}, ValueError, "noise must be at most 5.32e+36"),
    ({"n_per_class": 2**31, "n_classes": 1}, ValueError, "n_per_class * n_classes"),
    ({"n_features": 2**62}, ValueError, "n_features=4611686018427387904 is too large"),
])
def test_bad_arguments(kwargs, exc, words):
    with pytest.raises(exc) as info:
        fs.make_spiral(**kwargs)
    assert words in str(info.value)


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_largest_noise_allowed_gives_finite_points(backend, dtype):
    """The noise limit is exact enough: at the limit every point is finite."""
    limit = float(np.finfo(dtype).max) / 64
    X, _ = fs.make_spiral(2000, 3, noise=limit, seed=0, dtype=dtype.name, backend=backend)
    assert np.all(np.isfinite(fs.to_numpy(X)))
    with pytest.raises(ValueError, match="noise must be at most"):
        fs.make_spiral(2000, 3, noise=limit * 1.01, seed=0, dtype=dtype.name, backend=backend)


def test_float64_spiral_on_jax_without_64_bit_mode_is_refused():
    """JAX without 64-bit mode would hand back float32 for "float64": an error instead."""
    pytest.importorskip("jax", reason="JAX not installed")
    import subprocess
    import sys

    code = ("import fastsoftmax as fs\n"
            "try:\n    fs.make_spiral(5, 3, backend='jax')\n"
            "except ValueError as exc:\n    print(exc)\n"
            "X, _ = fs.make_spiral(5, 3, dtype='float32', backend='jax')\n"
            "print(X.dtype)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, env={**__import__("os").environ, "JAX_ENABLE_X64": "0"})
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("dtype='float64': backend 'jax' makes float32 arrays")
    assert lines[1] == "float32"
