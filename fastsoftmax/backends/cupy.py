"""The ``cupy`` backend: the Array-API reference on CuPy -- fused kernels pending."""

from __future__ import annotations

from ._base import BackendUnavailableError


def _import_cupy():
    """CuPy, or ``BackendUnavailableError`` saying why it cannot run here."""
    try:
        import cupy
    except ImportError:
        raise BackendUnavailableError(
            "CuPy is not installed; on a machine with an NVIDIA GPU install it with "
            "\"pip install 'fastsoftmax[cuda]'\""
        ) from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDARuntimeError: no driver, driver too old, ...
        raise BackendUnavailableError(
            f"CuPy {cupy.__version__} is installed but CUDA cannot start: {exc}"
        ) from None
    if count == 0:
        raise BackendUnavailableError(
            f"CuPy {cupy.__version__} is installed but there is no CUDA device"
        )
    return cupy


def load():
    _import_cupy()
    raise BackendUnavailableError("the cupy backend's kernels have not landed yet")
