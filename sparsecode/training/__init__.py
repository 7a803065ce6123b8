"""Training: the one loop (:func:`fit_module`) and the optimizer registry (:mod:`sparsecode.training.optim`)."""

from .loop import DivergenceError, TrainResult, TrainState, fit_module
from .optim import OPTIMIZERS, estimate_max_learning_rate, make_optimizer

__all__ = [
    "fit_module", "TrainState", "TrainResult", "DivergenceError",
    "OPTIMIZERS", "make_optimizer", "estimate_max_learning_rate",
]
