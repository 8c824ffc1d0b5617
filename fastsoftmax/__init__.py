"""fastsoftmax: fast, trustworthy softmax-classifier kernels.

One Array-API implementation of the linear softmax classifier -- scores, a
stable softmax, cross-entropy with L2 regularisation and its gradient -- run on
NumPy, on fused Numba CPU kernels or on CuPy, picked by ``backend=``,
``--backend`` or ``$FASTSOFTMAX_BACKEND``; and the notebook's second half, the
two-layer ReLU network (``TwoLayerNet``, ``net_loss_gradient``) with its
hand-derived backprop, ``gradcheck`` and training diagnostics.

Importing this package imports no optional library; a backend is loaded the
first time it is used.
"""

from ._api import (
    cross_entropy,
    cross_entropy_gradient,
    log_softmax,
    logsumexp,
    loss,
    loss_gradient,
    scores,
    softmax,
)
from ._api_net import net_loss_gradient, net_scores
from ._gradcheck import GradcheckResult, gradcheck, rel_error
from .backends import (
    Backend,
    BackendUnavailableError,
    available_backends,
    get_backend,
    list_backends,
    to_numpy,
)
from .datasets import load_zarr, make_spiral, save_zarr
from .models import (
    ConvergenceWarning,
    NotFittedError,
    SoftmaxClassifier,
    TrainingDivergedError,
    TwoLayerNet,
)

__version__ = "0.1.0"

__all__ = [
    "Backend",
    "BackendUnavailableError",
    "ConvergenceWarning",
    "NotFittedError",
    "SoftmaxClassifier",
    "available_backends",
    "cross_entropy",
    "cross_entropy_gradient",
    "get_backend",
    "list_backends",
    "load_zarr",
    "log_softmax",
    "logsumexp",
    "loss",
    "loss_gradient",
    "make_spiral",
    "save_zarr",
    "scores",
    "softmax",
    "to_numpy",
    "TrainingDivergedError",
    # the two-layer network and the gradient check (issue 11)
    "GradcheckResult",
    "TwoLayerNet",
    "gradcheck",
    "net_loss_gradient",
    "net_scores",
    "rel_error",
]
