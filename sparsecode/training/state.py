"""What :func:`sparsecode.training.fit_module` keeps between calls and reports: state, result, divergence."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

__all__ = ["DivergenceError", "TrainState", "TrainResult"]


class DivergenceError(ValueError):
    """The loss became non-finite or grew far beyond its starting value.

    The message says what is to blame: the data (they overflow their dtype; it names float64 or
    rescaling) or the rate (it names the rate used and the power-method rate).

    Attributes
    ----------
    learning_rate : float
    suggested_learning_rate : float or None
        What :func:`sparsecode.training.optim.estimate_max_learning_rate` gives at the restored parameters
        (None when it could not be computed or the data are to blame).
    cause : {"data", "learning_rate"}
    """

    def __init__(self, message: str, learning_rate: float, suggested_learning_rate: float | None,
                 cause: str = "learning_rate"):
        super().__init__(message)
        self.learning_rate = learning_rate
        self.suggested_learning_rate = suggested_learning_rate
        self.cause = cause


@dataclass
class TrainState:
    """Everything needed to continue a fit (``warm_start``, ``partial_fit``); picklable.

    The rate schedule needs nothing more: its base rates are the ``"initial_lr"`` of the
    optimizer's parameter groups and its clock is :attr:`n_samples_seen`
    (:class:`sparsecode.training.schedules.InverseDecayLR`).

    Attributes
    ----------
    optimizer : torch.optim.Optimizer or None
        None until the first pass of a fit with ``max_iter > 0``.
    epoch : int
        Passes done in all calls.
    n_steps : int
        Optimizer steps done in all calls.
    loss_curve : list of float
        Mean training loss of every pass.
    validation_scores : list of float
        Minus the validation loss of every pass (early stopping).
    best_loss : float
        Best training loss, or best validation loss with early stopping.
    no_improvement_count : int
    learning_rate : float or None
        The resolved base rate.
    best_params : list of tensors or None
        Parameters at the best validation loss (early stopping).
    n_samples_seen : int
        Training samples seen by all the optimizer steps (the clock of ``lr_decay``).
    """

    optimizer: torch.optim.Optimizer | None = None
    epoch: int = 0
    n_steps: int = 0
    loss_curve: list[float] = field(default_factory=list)
    validation_scores: list[float] = field(default_factory=list)
    best_loss: float = math.inf
    no_improvement_count: int = 0
    learning_rate: float | None = None
    best_params: list[torch.Tensor] | None = None
    n_samples_seen: int = 0


@dataclass
class TrainResult:
    """What one call of :func:`sparsecode.training.fit_module` did.

    Attributes
    ----------
    loss_curve : list of float
        Mean training loss per pass of this call.
    validation_scores : list of float
        Minus the validation loss per pass of this call when early stopping, else ``[]``.
    n_iter : int
        Passes done in this call.
    learning_rate : float
        The resolved rate (after ``"auto"``).
    converged : bool
        Stopped by ``tol`` / ``n_iter_no_change``.
    interrupted : bool
        Stopped by Ctrl-C.
    state : TrainState
    """

    loss_curve: list[float]
    validation_scores: list[float]
    n_iter: int
    learning_rate: float
    converged: bool
    interrupted: bool
    state: TrainState
