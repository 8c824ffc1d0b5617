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
    "numba": "numba",
    "numpy": "numpy",
    "cupy": "cupy",
    "torch": "torch",
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
    return backend


def _check_name(name, source):
    if not isinstance(name, str):
        raise TypeError(f"backend must be a string or a Backend, got {type(name).__name__}")
    if name != "auto" and name not in _MODULES:
        known = ", ".join(["auto", *_MODULES])
        raise ValueError(f"unknown backend {name!r}{source}; known backends: {known}")


def _auto_for(array):
    """The backend an input array's type calls for under ``"auto"``."""
    import array_api_compat as compat

    if compat.is_dask_array(array):
        return "dask"
    if compat.is_cupy_array(array):
        return "cupy"
    if compat.is_torch_array(array):
        return "torch"
    if type(array).__module__.startswith("array_api_strict"):
        return "array_api_strict"
    try:
        return _load("numba").name
    except BackendUnavailableError:
        return "numpy"


def get_backend(name=None, *, like=None):
    """Resolve a backend by name.

    Parameters
    ----------
    name : str, Backend or None
        ``None`` reads ``$FASTSOFTMAX_BACKEND``, else means ``"auto"``.
        ``"auto"`` picks by the type of ``like`` (CuPy arrays: ``cupy``, torch
        tensors: ``torch``, Dask arrays: ``dask``, ...); NumPy inputs (or none) go
        to ``numba`` when it is usable, else ``numpy``.
    like : array, optional
        The input whose type decides ``"auto"``.

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
        name = _auto_for(like)
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
