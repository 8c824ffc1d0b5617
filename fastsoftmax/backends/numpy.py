"""The ``numpy`` backend: the Array-API reference, run on NumPy."""

from __future__ import annotations

from ._base import Backend


def load():
    import array_api_compat.numpy as xp
    import numpy as np

    return Backend("numpy", xp, version=np.__version__, device="cpu")
