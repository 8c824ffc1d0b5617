"""The ``torch`` backend: the Array-API reference on PyTorch tensors.

No kernels of its own: it shows the one implementation running on a third
library, and lets ``"auto"`` keep torch tensors as torch tensors (on whatever
device they are).
"""

from __future__ import annotations

import numpy as np

from ._base import Backend, BackendUnavailableError, to_numpy


class TorchBackend(Backend):
    def owns(self, a):
        import torch

        return isinstance(a, torch.Tensor)

    def asarray(self, a):
        if self.owns(a):
            return a
        a = to_numpy(a)
        if a.dtype.kind == "u" and a.dtype.itemsize > 1:
            # torch has no min/max/compare kernels for uint16..uint64: widen labels,
            # saturating uint64 (a label >= 2**63 must stay out of range, not wrap).
            if a.dtype.itemsize == 8:
                a = np.minimum(a, np.iinfo(np.int64).max)
            a = a.astype(np.int64)
        elif not a.flags.writeable or any(st < 0 for st in a.strides):
            a = a.copy()  # torch cannot wrap read-only memory nor negative strides
        return self.xp.asarray(a)


def load():
    try:
        import array_api_compat.torch as xp
        import torch
    except ImportError:
        raise BackendUnavailableError(
            "PyTorch is not installed; install it with 'pip install torch' "
            "(the 'test' and 'bench' extras pin a CPU build)"
        ) from None
    return TorchBackend("torch", xp, version=torch.__version__, device="cpu")
