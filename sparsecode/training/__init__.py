"""Training: the one loop (:func:`fit_module`), its state (:mod:`.state`), its rate schedule
(:mod:`.schedules`), the optimizer registry with its training hooks (:mod:`sparsecode.training.optim`), the
strategies on several processes (:mod:`.distributed`), checkpoints (:mod:`.checkpoint`) and the errors a
failed rank raises on the others (:mod:`.faults`)."""

from .checkpoint import Checkpoint
from .distributed import (
    EAMSGD,
    EASGD,
    STRATEGIES,
    AllReduce,
    AsyncEAMSGD,
    AsyncEASGD,
    Distributed,
    Downpour,
    make_distributed,
)
from .divergence import DIVERGENCE_GROWTH, data_overflow
from .faults import PeerFailedError, PeerLostError
from .loop import fit_module
from .optim import OPTIMIZERS, estimate_max_learning_rate, make_optimizer
from .schedules import InverseDecayLR
from .state import DivergenceError, TrainResult, TrainState

__all__ = [
    "fit_module", "DIVERGENCE_GROWTH", "data_overflow",
    "TrainState", "TrainResult", "DivergenceError", "InverseDecayLR",
    "OPTIMIZERS", "make_optimizer", "estimate_max_learning_rate",
    "STRATEGIES", "Distributed", "make_distributed", "AllReduce", "EASGD", "EAMSGD", "AsyncEASGD", "AsyncEAMSGD",
    "Downpour", "Checkpoint", "PeerFailedError", "PeerLostError",
]
