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
    assert fs.list_backends() == ["numba", "numpy", "cupy", "torch", "array_api_strict", "dask"]


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


def test_auto_for_numpy_inputs_prefers_numba_when_usable(monkeypatch):
    monkeypatch.delenv("FASTSOFTMAX_BACKEND", raising=False)
    expected = "numba" if backend_info("numba")["available"] else "numpy"
    assert fs.get_backend("auto").name == expected
    assert fs.get_backend(None, like=np.zeros(2)).name == expected


def test_auto_follows_the_input_array_type(monkeypatch):
    monkeypatch.delenv("FASTSOFTMAX_BACKEND", raising=False)
    strict = pytest.importorskip("array_api_strict", reason="array_api_strict not installed")
    S = strict.asarray([[1.0, 2.0]])
    out = fs.softmax(S)
    assert type(out).__module__.startswith("array_api_strict")
    torch = pytest.importorskip("torch", reason="PyTorch not installed")
    out = fs.softmax(torch.tensor([[1.0, 2.0]]))
    assert isinstance(out, torch.Tensor)


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
