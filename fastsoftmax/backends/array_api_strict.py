"""The ``array_api_strict`` backend: the reference on the strict namespace.

It exists to prove that ``_reference`` uses nothing outside the Array API
standard: ``array_api_strict`` rejects every NumPy-ism. It is slow and meant for
tests, not for work.
"""

from __future__ import annotations

import numpy as np

from ._base import Backend, BackendUnavailableError, to_numpy


class StrictBackend(Backend):
    def owns(self, a):
        return type(a).__module__.startswith("array_api_strict")

    def asarray(self, a):
        if self.owns(a):
            return a
        a = to_numpy(a)
        if a.dtype == np.float16:
            # The standard has no float16: compute and return float32 here (the
            # other backends compute float16 in float32 too, and round back).
            a = a.astype(np.float32)
        return self.xp.asarray(a)


def load():
    try:
        import array_api_strict as xp
    except ImportError:
        raise BackendUnavailableError(
            "array_api_strict is not installed; install it with "
            "'pip install array-api-strict' (it is in the 'test' extra)"
        ) from None
    return StrictBackend("array_api_strict", xp, version=xp.__version__, device="cpu")
