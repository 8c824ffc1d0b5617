"""The estimators: models (``_linear``, ...) apart from the solvers (``_solvers``)
and what they share (``_base``)."""

from ._base import ConvergenceWarning, DataConversionWarning, NotFittedError
from ._linear import SoftmaxClassifier
from ._solvers import TrainingDivergedError

__all__ = ["ConvergenceWarning", "DataConversionWarning", "NotFittedError",
           "SoftmaxClassifier", "TrainingDivergedError"]
