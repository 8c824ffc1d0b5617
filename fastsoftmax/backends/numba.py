"""The ``numba`` backend (fused CPU kernels) -- not yet implemented."""

from __future__ import annotations

from ._base import BackendUnavailableError


def load():
    raise BackendUnavailableError(
        "the numba backend's kernels have not landed yet; use backend='numpy'"
    )
