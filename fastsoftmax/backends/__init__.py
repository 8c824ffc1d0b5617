"""The backend registry: one name per backend, loaded lazily on first use.

``import fastsoftmax`` imports none of the optional libraries (nor Numba, whose
import alone takes half a second): a backend module is imported the first time
its name is asked for, and one that cannot load raises
``BackendUnavailableError`` saying why and how to fix it. Both outcomes are cached.
"""

from __future__ import annotations

import importlib
import os

from ._base import Backend, BackendUnavailableError, to_numpy

ENV_VAR = "FASTSOFTMAX_BACKEND"

# name -> module under fastsoftmax.backends that defines ``load() -> Backend``.
# The order is the order of listings (fastest general-purpose CPU choice first).
_MODULES = {
    "numba": "_numba_net",  # numba.py's backend plus the network's kernels
    "numpy": "numpy",
    "cupy": "cupy",
    "torch": "torch",
    "jax": "jax",
    "array_api_strict": "array_api_strict",
    "dask": "dask",
}

_loaded: dict[str, Backend] = {}
_failed: dict[str, BackendUnavailableError] = {}


def list_backends():
    """Every backend fastsoftmax knows, usable here or not.

    Returns
    -------
    list of str

    Examples
    --------
    >>> import fastsoftmax as fs
    >>> "numpy" in fs.list_backends()
    True
    """
    return list(_MODULES)


def available_backends():
    """The backends usable on this machine now (loading each to find out).

    Examples
    --------
    >>> import fastsoftmax as fs
    >>> "numpy" in fs.available_backends()
    True
    """
    out = []
    for name in _MODULES:
        try:
            _load(name)
        except BackendUnavailableError:
            continue
        out.append(name)
    return out


def backend_info(name):
    """``{name, available, version, device, reason}`` for one known backend."""
    try:
        return _load(name).info()
    except BackendUnavailableError as exc:
        return {"name": name, "available": False, "version": "", "device": "",
                "reason": str(exc)}


def _load(name):
    if name in _loaded:
        return _loaded[name]
    if name in _failed:
        raise _failed[name]
    module = importlib.import_module(f"{__name__}.{_MODULES[name]}")
    try:
        backend = module.load()
    except BackendUnavailableError as exc:
        _failed[name] = exc
        raise
    _loaded[name] = backend
    if name == "numba":
        from ._first_use import install_notice

        install_notice()  # a compile the user waits for says so on stderr, once
    return backend


def _check_name(name, source):
    if not isinstance(name, str):
        raise TypeError(f"backend must be a string or a Backend, got {type(name).__name__}")
    if name != "auto" and name not in _MODULES:
        known = ", ".join(["auto", *_MODULES])
        raise ValueError(f"unknown backend {name!r}{source}; known backends: {known}")


def _auto_for(array, work=None):
    """The backend an input array's type (and, for NumPy, the work) calls for under ``"auto"``."""
    import array_api_compat as compat

    if compat.is_dask_array(array):
        return "dask"
    if compat.is_cupy_array(array):
        return "cupy"
    if compat.is_torch_array(array):
        return "torch"
    if compat.is_jax_array(array):  # concrete or traced (inside jax.jit)
        return "jax"
    if type(array).__module__.startswith("array_api_strict"):
        return "array_api_strict"
    return _auto_numpy(array, work)


# NumPy's time for ``loss_gradient`` on the reference machine: ~70 µs a call plus
# ~60 ns per score entry (N x K) -- measured from N = 30 to 3e5, K = 3 to 100
# (docs/benchmarks.md, "Where auto switches to numba").
_NUMPY_CALL_S = 70e-6
_NUMPY_ENTRY_S = 60e-9
_auto_numpy_s = 0.0  # estimated NumPy time of the work "auto" has sent to numpy so far


def _auto_numpy(array=None, work=None):
    """``"numba"`` or ``"numpy"`` for NumPy inputs: whichever finishes the work first.

    Once Numba's kernels are in this process, ``numba`` is faster per call at
    every size measured (30 rows and up). Before that, it first costs a
    one-off load (~0.7 s with its kernels in the disk cache) or compile
    (~6 s): ``numpy`` keeps the work until the NumPy time "auto" has spent,
    this call included, reaches that cost -- then the kernels are worth
    loading (the ski-rental rule: never worse than twice the better choice).
    ``work`` is the caller's estimate of score entries it will compute
    (``N * K`` per call, times the calls); by default the input's size.
    """
    global _auto_numpy_s
    from . import _first_use

    if "numba" in _failed:
        return "numpy"
    if _first_use.kernels_ready():
        return "numba"
    if work is None:
        work = getattr(array, "size", 0) or 0
    _auto_numpy_s += _NUMPY_CALL_S + _NUMPY_ENTRY_S * float(work)
    if _auto_numpy_s < _first_use.one_off_s(loaded="numba" in _loaded):
        return "numpy"
    try:
        return _load("numba").name
    except BackendUnavailableError:
        return "numpy"


def get_backend(name=None, *, like=None, work=None):
    """Resolve a backend by name.

    Parameters
    ----------
    name : str, Backend or None
        ``None`` reads ``$FASTSOFTMAX_BACKEND``, else means ``"auto"``.
        ``"auto"`` picks by the type of ``like`` (CuPy arrays: ``cupy``, torch
        tensors: ``torch``, JAX arrays: ``jax``,
        Dask arrays: ``dask``, ...). For NumPy inputs (or none)
        it picks whichever of ``numba`` and ``numpy`` finishes the work first:
        ``numba`` once its kernels are loaded in this process; before that
        ``numpy``, until the NumPy time spent under ``"auto"`` would have paid
        for loading (or compiling) the Numba kernels (see docs/backends.md).
    like : array, optional
        The input whose type decides ``"auto"``.
    work : int, optional
        For ``"auto"``: the score entries the caller will compute (``N * K``
        per call, times the calls; a fit passes its steps). By default the
        size of ``like``, for one call.

    Returns
    -------
    Backend

    Raises
    ------
    ValueError
        Unknown name; the message lists the known ones.
    BackendUnavailableError
        Known but not usable here (e.g. no CuPy or no GPU); says why.

    Examples
    --------
    >>> import fastsoftmax as fs
    >>> fs.get_backend("numpy").name
    'numpy'
    """
    if isinstance(name, Backend):
        return name
    source = ""
    if name is None:
        name = os.environ.get(ENV_VAR) or "auto"
        source = f" (from ${ENV_VAR})"
    _check_name(name, source)
    if name == "auto":
        name = _auto_for(like, work)
    return _load(name)


def _reduce_backend(backend):
    # A Backend holds modules, which do not pickle; it travels by its name and is
    # loaded again on the other side (an estimator with backend=<Backend> pickles).
    return get_backend, (backend.name,)


Backend.__reduce__ = _reduce_backend

__all__ = [
    "Backend",
    "BackendUnavailableError",
    "ENV_VAR",
    "available_backends",
    "backend_info",
    "get_backend",
    "list_backends",
    "to_numpy",
]
