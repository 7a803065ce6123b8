r"""Learning-rate schedules of :func:`sparsecode.training.fit_module`, as torch
:class:`~torch.optim.lr_scheduler.LRScheduler` subclasses.

:class:`InverseDecayLR` is Torch7's ``learningRateDecay`` counted in training samples:

.. math::

    \eta_g = \frac{\eta\, s_g}{1 + \text{lr\_decay}\; n},

with :math:`\eta\, s_g` the base rate of group :math:`g` (its ``"initial_lr"``: the base rate times
the group's ``lr_scale``) and :math:`n` the training samples seen by the earlier steps.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch.optim.lr_scheduler import LRScheduler

__all__ = ["SampleClock", "InverseDecayLR"]


class SampleClock(Protocol):
    """Anything that counts the training samples seen, e.g. a :class:`sparsecode.training.TrainState`."""

    n_samples_seen: int


class InverseDecayLR(LRScheduler):
    """``lr = initial_lr / (1 + lr_decay * clock.n_samples_seen)`` in every parameter group.

    :class:`torch.optim.lr_scheduler.LambdaLR` with the factor ``1 / (1 + lr_decay n)``, except that
    its clock counts samples, not :meth:`step` calls: call :meth:`step` after every optimizer step,
    once ``clock`` has counted that step's samples. The base rates are the groups' ``"initial_lr"``,
    set from their ``"lr"`` by the first schedule built on the optimizer, so a new schedule on the
    same optimizer (or on its unpickled copy) and clock continues where the last one stopped.

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
    lr_decay : float
        Decay per sample (0 keeps the base rates).
    clock : SampleClock
        Read at every :meth:`step` (and when the schedule is built).

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> w = torch.nn.Parameter(torch.zeros(1))
    >>> opt, clock = torch.optim.SGD([w], lr=0.1), SimpleNamespace(n_samples_seen=0)
    >>> schedule = InverseDecayLR(opt, 0.01, clock)
    >>> opt.step(); clock.n_samples_seen += 100; schedule.step()
    >>> opt.param_groups[0]["lr"]
    0.05
    """

    def __init__(self, optimizer: torch.optim.Optimizer, lr_decay: float, clock: SampleClock) -> None:
        self.lr_decay, self.clock = float(lr_decay), clock
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        """The rates at the clock's current count."""
        return [base / (1.0 + self.lr_decay * self.clock.n_samples_seen) for base in self.base_lrs]
