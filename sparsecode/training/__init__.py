"""Training: the one loop (:func:`fit_module`), its state (:mod:`.state`), its rate schedule
(:mod:`.schedules`) and the optimizer registry with its training hooks (:mod:`sparsecode.training.optim`)."""

from .distributed import STRATEGIES, Distributed, make_distributed
from .divergence import DIVERGENCE_GROWTH, data_overflow
from .loop import fit_module
from .optim import OPTIMIZERS, estimate_max_learning_rate, make_optimizer
from .schedules import InverseDecayLR
from .state import DivergenceError, TrainResult, TrainState

__all__ = [
    "fit_module", "DIVERGENCE_GROWTH", "data_overflow",
    "TrainState", "TrainResult", "DivergenceError", "InverseDecayLR",
    "OPTIMIZERS", "make_optimizer", "estimate_max_learning_rate",
    "STRATEGIES", "Distributed", "make_distributed",
]
