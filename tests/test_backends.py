"""The registry: names, availability, ``auto``, the environment variable,
conversions, and the promise that ``import fastsoftmax`` imports nothing optional."""

import json
import subprocess
import sys

import numpy as np
import pytest

import fastsoftmax as fs
from fastsoftmax.backends import backend_info


def test_list_backends_knows_every_backend():
    assert fs.list_backends() == ["numba", "numpy", "cupy", "torch", "jax", "array_api_strict",
                                  "dask"]


def test_available_backends_is_a_subset_and_includes_numpy():
    available = fs.available_backends()
    assert "numpy" in available and set(available) <= set(fs.list_backends())


def test_get_backend_by_name_and_passthrough():
    be = fs.get_backend("numpy")
    assert be.name == "numpy" and fs.get_backend(be) is be


def test_unknown_name_lists_known_backends():
    with pytest.raises(ValueError) as info:
        fs.get_backend("tpu")
    for name in fs.list_backends():
        assert name in str(info.value)


def test_non_string_name_is_a_type_error():
    with pytest.raises(TypeError, match="backend must be a string"):
        fs.get_backend(3)


def test_env_var_selects_and_is_validated(monkeypatch):
    monkeypatch.setenv("FASTSOFTMAX_BACKEND", "numpy")
    assert fs.get_backend().name == "numpy"
    monkeypatch.setenv("FASTSOFTMAX_BACKEND", "nope")
    with pytest.raises(ValueError, match=r"unknown backend 'nope' \(from \$FASTSOFTMAX_BACKEND\)"):
        fs.get_backend()


def test_explicit_name_beats_env_var(monkeypatch):
    monkeypatch.setenv("FASTSOFTMAX_BACKEND", "array_api_strict")
    assert fs.get_backend("numpy").name == "numpy"


def _fresh(code, tmp_path, **env):
    """Run ``code`` in a new process (auto's state is per process) with an empty
    Numba disk cache unless ``NUMBA_CACHE_DIR`` is given; returns its stdout and stderr."""
    import os

    env = {"NUMBA_CACHE_DIR": str(tmp_path / "numba-cache"), **env}
    full = {k: v for k, v in os.environ.items() if k != "FASTSOFTMAX_BACKEND"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**full, **env}, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout, out.stderr


needs_numba = pytest.mark.skipif(not backend_info("numba")["available"],
                                 reason="auto only chooses between numpy and numba with Numba")


@needs_numba
def test_auto_small_work_stays_on_numpy_without_importing_numba(tmp_path):
    """The README's first run: 300 points x 200 steps go to numpy, no compile, no import."""
    out, err = _fresh(
        "import sys, numpy as np, fastsoftmax as fs\n"
        "print(fs.get_backend('auto', like=np.zeros((300, 2))).name)\n"
        "print(fs.get_backend(work=200 * 300 * 3).name)\n"
        "print(fs.softmax(np.zeros((4, 3))).sum() == 4, 'numba' in sys.modules)\n", tmp_path)
    assert out.split() == ["numpy", "numpy", "True", "False"] and err == ""


@needs_numba
def test_auto_large_work_goes_to_numba(tmp_path):
    # 200 steps on 3e6 points: NumPy ~70 s, numba ~3 s even with the compile.
    out, _ = _fresh("import fastsoftmax as fs\n"
                    "print(fs.get_backend(None, work=200 * 3_000_000 * 3).name)", tmp_path)
    assert out.split() == ["numba"]


@needs_numba
def test_auto_repeated_small_calls_switch_to_numba_once_it_pays(tmp_path):
    """Many small calls add up: auto switches once their NumPy time would have paid
    for the kernels, and stays there."""
    out, _ = _fresh(
        "import numpy as np, fastsoftmax as fs\n"
        "S = np.zeros((20_000, 3))\n"
        "names = [fs.get_backend(like=S).name for _ in range(20_000)]\n"
        "first = names.index('numba')\n"
        "print(first, set(names[first:]))", tmp_path)
    first, rest = out.split(maxsplit=1)
    assert 10 < int(first) < 20_000 and rest.strip() == "{'numba'}"


@needs_numba
def test_a_compile_says_so_once_and_auto_then_picks_numba(tmp_path):
    code = ("import numpy as np, fastsoftmax as fs\n"
            "S = np.zeros((4, 3))\n"
            "print(fs.get_backend(like=S).name)\n"
            "fs.softmax(S, backend='numba'); fs.log_softmax(S, backend='numba')\n"
            "print(fs.get_backend(like=S).name)\n")
    cache = str(tmp_path / "cache")
    out, err = _fresh(code, tmp_path, NUMBA_CACHE_DIR=cache)
    assert out.split() == ["numpy", "numba"]  # numba's kernels are in: faster at any size
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("fastsoftmax: compiling the numba kernels once, ~")
    _, err = _fresh(code, tmp_path, NUMBA_CACHE_DIR=cache)  # loaded from the cache: silent
    assert err == ""


def test_auto_follows_the_input_array_type(monkeypatch):
    monkeypatch.delenv("FASTSOFTMAX_BACKEND", raising=False)
    strict = pytest.importorskip("array_api_strict", reason="array_api_strict not installed")
    S = strict.asarray([[1.0, 2.0]])
    out = fs.softmax(S)
    assert type(out).__module__.startswith("array_api_strict")
    torch = pytest.importorskip("torch", reason="PyTorch not installed")
    out = fs.softmax(torch.tensor([[1.0, 2.0]]))
    assert isinstance(out, torch.Tensor)


def test_auto_picks_jax_for_jax_arrays_also_inside_jit(monkeypatch):
    monkeypatch.delenv("FASTSOFTMAX_BACKEND", raising=False)
    if not backend_info("jax")["available"]:
        pytest.skip(f"jax backend unavailable: {backend_info('jax')['reason']}")
    import jax
    import jax.numpy as jnp

    S = jnp.asarray([[1.0, 2.0, 3.0]], dtype=jnp.float32)
    out = fs.softmax(S)
    assert isinstance(out, jax.Array) and out.dtype == jnp.float32
    seen = []

    @jax.jit
    def f(S):
        seen.append(fs.get_backend(None, like=S).name)
        return fs.softmax(S)

    np.testing.assert_allclose(np.asarray(f(S)), np.asarray(out), rtol=1e-6)
    assert seen == ["jax"]


def _jax_problem(jnp, dtype):
    X, y = fs.make_spiral(20, 3, seed=0, dtype="float32", backend="numpy")
    rng = np.random.default_rng(0)
    W, b = rng.standard_normal((2, 3)), rng.standard_normal(3)
    return (jnp.asarray(X, dtype=dtype), jnp.asarray(y), jnp.asarray(W, dtype=dtype),
            jnp.asarray(b, dtype=dtype))


def test_jax_loss_gradient_inside_jit_matches_eager_and_numpy():
    if not backend_info("jax")["available"]:
        pytest.skip(f"jax backend unavailable: {backend_info('jax')['reason']}")
    import jax
    import jax.numpy as jnp

    X, y, W, b = _jax_problem(jnp, jnp.float32)

    @jax.jit
    def step(X, y, W, b):
        loss, dW, db = fs.loss_gradient(X, y, W, b, reg=1e-3, backend="jax")
        return loss, W - 0.5 * dW, b - 0.5 * db

    traced = step(X, y, W, b)
    eager = fs.loss_gradient(X, y, W, b, reg=1e-3, backend="jax")
    ref = fs.loss_gradient(*(np.asarray(a) for a in (X, y, W, b)), reg=1e-3, backend="numpy")
    assert all(isinstance(a, jax.Array) and a.dtype == jnp.float32 for a in traced)
    np.testing.assert_allclose(np.asarray(traced[0]), ref[0], rtol=1e-5)
    np.testing.assert_allclose(np.asarray(eager[1]), ref[1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(traced[1]), np.asarray(W) - 0.5 * ref[1],
                               rtol=1e-5, atol=1e-6)
    # Traced values cannot raise: a bad label makes every output NaN instead;
    # eagerly, the same call raises the contract's ValueError.
    y_bad = y.at[0].set(7)
    assert all(bool(jnp.all(jnp.isnan(a))) for a in step(X, y_bad, W, b))
    with pytest.raises(ValueError, match="y holds label 7"):
        fs.loss_gradient(X, y_bad, W, b, backend="jax")
    # Gradients through the op work too (jax.grad of the loss matches dW).
    g = jax.grad(lambda W_: fs.loss(X, y, W_, b, reg=1e-3, backend="jax"))(W)
    np.testing.assert_allclose(np.asarray(g), ref[1], rtol=1e-4, atol=1e-6)


def _run_code(code, **env):
    import os

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, **env}, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_jax_without_64_bit_mode_refuses_float64_and_computes_float32():
    """fastsoftmax enables nothing global: with JAX's default 32-bit mode, NumPy
    float64 input is a TypeError naming the argument, and integer input becomes
    JAX's default float32 (tested in a fresh process: the suite runs with x64 on)."""
    if not backend_info("jax")["available"]:
        pytest.skip(f"jax backend unavailable: {backend_info('jax')['reason']}")
    code = """
import json, numpy as np, fastsoftmax as fs, jax
out = {"x64": bool(jax.config.read("jax_enable_x64"))}
try:
    fs.loss(np.ones((2, 2)), [0, 1], np.ones((2, 2), np.float32), np.zeros(2, np.float32),
            backend="jax")
except TypeError as exc:
    out["float64"] = str(exc)
out["int"] = str(fs.softmax(np.array([1, 2]), backend="jax").dtype)
out["float32"] = str(fs.loss(np.ones((2, 2), np.float32), [0, 1], np.ones((2, 2), np.float32),
                             np.zeros(2, np.float32), backend="jax").dtype)
try:
    fs.cross_entropy(np.zeros((2, 3), np.float32), np.array([0, 2**40]), backend="jax")
except ValueError as exc:
    out["labels"] = str(exc)
out["x64_after"] = bool(jax.config.read("jax_enable_x64"))
print(json.dumps(out))
"""
    out = _run_code(code, JAX_ENABLE_X64="0")
    assert out["x64"] is False and out["x64_after"] is False
    assert out["float64"].startswith("X is float64, but JAX's 64-bit mode is off")
    assert out["int"] == "float32" and out["float32"] == "float32"
    assert out["labels"].startswith("y holds integers outside the int32 range")


def test_numba_disable_jit_makes_numba_unavailable_and_auto_falls_back():
    """NUMBA_DISABLE_JIT=1 (set to debug) must not break "auto" or the numba
    backend with a foreign exception: numba reports itself unavailable, saying why."""
    code = """
import json, numpy as np, fastsoftmax as fs
from fastsoftmax.backends import backend_info
X, y = fs.make_spiral(2000, 3, seed=0, backend="numpy")
loss = fs.loss(X, y, np.zeros((2, 3)), np.zeros(3))
try:
    fs.loss(X, y, np.zeros((2, 3)), np.zeros(3), backend="numba")
    err = None
except fs.BackendUnavailableError as exc:
    err = str(exc)
print(json.dumps({"auto": fs.get_backend("auto", like=X).name, "loss": float(loss),
                  "info": backend_info("numba"), "err": err}))
"""
    out = _run_code(code, NUMBA_DISABLE_JIT="1", FASTSOFTMAX_BACKEND="")
    assert out["auto"] == "numpy"
    assert out["loss"] == pytest.approx(np.log(3.0), rel=1e-12)
    assert out["info"]["available"] is False
    assert "NUMBA_DISABLE_JIT" in out["info"]["reason"] and "NUMBA_DISABLE_JIT" in out["err"]


def test_unavailable_backend_raises_with_reason():
    for name in fs.list_backends():
        info = backend_info(name)
        if info["available"]:
            continue
        assert info["reason"]
        with pytest.raises(fs.BackendUnavailableError, match="."):
            fs.get_backend(name)
        assert issubclass(fs.BackendUnavailableError, RuntimeError)


def test_cupy_reports_why_it_is_unavailable_without_a_gpu():
    info = backend_info("cupy")
    if info["available"]:
        pytest.skip("a CUDA GPU is usable here, so cupy is available")
    assert any(w in info["reason"] for w in ("not installed", "CUDA", "no CUDA device"))


def test_results_are_the_backends_arrays_and_loss_is_0d(backend):
    X, y = fs.make_spiral(5, 3, seed=0, backend=backend)
    assert backend.owns(X) and backend.owns(y)
    loss, dW, db = fs.loss_gradient(X, y, np.zeros((2, 3)), np.zeros(3), backend=backend)
    # Parameter-sized results live where the backend keeps a model's parameters:
    # its own arrays (on the device), or host NumPy for dask, which computes them.
    home = type(backend.param_array(np.zeros(3)))
    assert all(isinstance(a, home) for a in (loss, dW, db))
    assert tuple(loss.shape) == () and isinstance(float(loss), float)


def test_to_numpy_round_trips_every_backend(backend):
    a = np.arange(6.0).reshape(2, 3)
    out = fs.to_numpy(backend.asarray(a))
    assert isinstance(out, np.ndarray)
    np.testing.assert_array_equal(out, a)


def test_to_numpy_of_nested_lists():
    np.testing.assert_array_equal(fs.to_numpy([[1, 2]]), np.array([[1, 2]]))


def test_info_fields(backend):
    info = backend.info()
    assert info["name"] == backend.name and info["available"] is True
    assert info["version"] and info["device"]


OPTIONAL = ["numba", "cupy", "torch", "jax", "array_api_strict", "scipy", "sklearn",
            "matplotlib", "tqdm", "dask"]


def test_import_fastsoftmax_imports_no_optional_library():
    code = ("import sys, json; import fastsoftmax; "
            f"print(json.dumps([m for m in {OPTIONAL!r} if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert json.loads(out.stdout) == []


def test_using_numpy_backend_does_not_import_numba():
    code = ("import sys; import fastsoftmax as fs; "
            "fs.softmax([1.0, 2.0], backend='numpy'); print('numba' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
