"""What every ``torch.distributed`` strategy builds on: the no-op protocol :class:`Distributed` (documented in
:mod:`sparsecode.training.distributed`), flat messages and the checks of the process group and parameters."""

from __future__ import annotations

import dataclasses
import os
import time

import torch
import torch.distributed as dist

__all__ = ["Distributed", "Periodic", "check_process_group", "pad_rows", "broadcast_", "sum_over_ranks",
           "all_reduce_", "check_period", "check_moving_rate", "Elastic", "nesterov_locally"]

# Seconds a rank polls for a CPU collective to finish before it blocks (see _finish).
SPIN = 0.02


def _flat(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.detach().reshape(-1) for t in tensors])


def _unflat_copy_(tensors: list[torch.Tensor], flat: torch.Tensor) -> None:
    """Copy ``flat`` (as made by :func:`_flat`) into ``tensors``."""
    pieces = torch.split(flat, [t.numel() for t in tensors])
    with torch.no_grad():
        torch._foreach_copy_(tensors, [piece.view_as(t) for piece, t in zip(pieces, tensors)])


def check_process_group(name: str) -> None:
    """Raise a clear error when no ``torch.distributed`` process group is initialized."""
    if not dist.is_available() or not dist.is_initialized():
        raise RuntimeError(
            f"distributed={name!r} needs a torch.distributed process group: launch with torchrun and call "
            "torch.distributed.init_process_group() first.")


def pad_rows(data: tuple[torch.Tensor, ...], group=None) -> tuple[torch.Tensor, ...]:
    """Every rank's ``data`` as long as the largest rank's, its rows repeated cyclically (as
    :class:`torch.utils.data.DistributedSampler` pads), so that all ranks take the same steps."""
    n = data[0].new_tensor([data[0].shape[0]], dtype=torch.int64)
    dist.all_reduce(n, dist.ReduceOp.MAX, group=group)
    if int(n) == data[0].shape[0]:
        return data
    rows = torch.arange(int(n), device=data[0].device) % data[0].shape[0]
    return tuple(t[rows] for t in data)


def _finish(work, tensor: torch.Tensor) -> None:
    """Wait for the collective ``work`` on ``tensor``. On the CPU (gloo) the rank first polls for up to
    :data:`SPIN` seconds, yielding the processor to the transport's threads, then blocks: a blocked
    process's idle virtual CPU can take milliseconds to wake when the peer's bytes arrive (one all-reduce
    in ten took 4-8 ms instead of 0.7 on the 2-core CI machine), and the training steps wait for every
    exchange. Errors and time-outs are those of the blocking wait."""
    if tensor.device.type == "cpu":
        end = time.perf_counter() + SPIN
        while not work.is_completed() and time.perf_counter() < end:
            os.sched_yield()
    work.wait()


def all_reduce_(tensor: torch.Tensor, group=None) -> None:
    """Sum ``tensor`` over the ranks, in place: the all-reduce of the training steps (see :func:`_finish`)."""
    _finish(dist.all_reduce(tensor, group=group, async_op=True), tensor)


def broadcast_(tensors: list[torch.Tensor], group=None) -> None:
    """Give every rank rank 0's ``tensors`` (in place, one message)."""
    flat = _flat(tensors)
    _finish(dist.broadcast(flat, 0, group=group, async_op=True), flat)
    _unflat_copy_(tensors, flat)


def sum_over_ranks(tensors: list[torch.Tensor], group=None) -> list[torch.Tensor]:
    """The sums over the ranks of ``tensors`` (one message), shaped as them."""
    flat = _flat(tensors).clone()
    all_reduce_(flat, group)
    return [piece.view_as(t) for piece, t in zip(torch.split(flat, [t.numel() for t in tensors]), tensors)]


class Distributed:
    """One process, no process group: every call is a no-op (the default of :func:`fit_module`)."""

    def local_optimizer(self, optimizer, options: dict) -> tuple[object, dict]:
        """The optimizer (name, class or instance) and options each rank runs locally."""
        return optimizer, options

    def begin(self, train: tuple[torch.Tensor, ...], params: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """Start of a call: returns the training data this rank trains on."""
        return train

    def agree(self, learning_rate: float) -> float:
        """The learning rate every rank uses."""
        return learning_rate

    def after_backward(self, params: list[torch.Tensor], n_batch: int) -> None:
        """After a backward pass on a minibatch of ``n_batch`` samples."""

    def after_step(self, params: list[torch.Tensor]) -> None:
        """After an optimizer step and the projection."""

    def end_pass(self, loss_sum: torch.Tensor, n_seen: int) -> tuple[torch.Tensor, int]:
        """The pass's loss sum and sample count over all ranks."""
        return loss_sum, n_seen

    def all_true(self, checks: list[bool]) -> list[bool]:
        """Each check true on every rank."""
        return checks

    def average(self, value: float) -> float:
        """The mean of ``value`` over the ranks."""
        return value

    def finish(self, params: list[torch.Tensor]) -> bool:
        """End of a call: put the model every rank keeps into ``params``; True when it was not projected."""
        return False

    def state_dict(self) -> dict | None:
        """What a checkpoint keeps of this rank's strategy, beyond its parameters and optimizer, to resume
        it exactly (None: nothing)."""
        return None

    def load_state_dict(self, state: dict | None) -> None:
        """Resume from a :meth:`state_dict`, after :meth:`begin`."""


def check_period(tau) -> None:
    """``tau``, the local steps between two exchanges, must be an integer >= 1."""
    if int(tau) != tau or tau < 1:
        raise ValueError(f"tau must be an integer >= 1, got {tau}.")


def check_moving_rate(moving_rate: float | None, beta: float) -> None:
    """The elastic force: ``moving_rate`` (None: ``beta / p``) and ``beta`` in (0, 1]."""
    if moving_rate is not None and not 0.0 < moving_rate <= 1.0:
        raise ValueError(f"moving_rate must be in (0, 1], got {moving_rate}.")
    if not 0.0 < beta <= 1.0:
        raise ValueError(f"beta must be in (0, 1], got {beta}.")


@dataclasses.dataclass
class Elastic:
    """The elastic averaging parameters the synchronous and asynchronous EASGD share.

    Parameters
    ----------
    tau : int, default=4
        Local steps between two elastic exchanges (the communication period).
    moving_rate : float, optional
        The elastic force :math:`\\alpha`; default ``beta / p``.
    beta : float, default=0.9
        :math:`\\beta = p \\alpha`, used when ``moving_rate`` is None.
    """

    tau: int = 4
    moving_rate: float | None = None
    beta: float = 0.9

    def __post_init__(self):
        check_period(self.tau)
        check_moving_rate(self.moving_rate, self.beta)

    @property
    def alpha(self) -> float:
        """The moving rate used with the current process group."""
        if self.moving_rate is not None:
            return self.moving_rate
        return self.beta / dist.get_world_size(getattr(self, "group", None))

    @property
    def _alone(self) -> bool:
        """One process: no other worker to average with, so no elastic exchange; the center is the worker."""
        return dist.get_world_size(getattr(self, "group", None)) == 1


def nesterov_locally(name: str, optimizer, options: dict, momentum: float) -> tuple[str, dict]:
    """EAMSGD's local optimizer: ``"sgd"`` or ``"nesterov"`` becomes Nesterov momentum ``momentum``."""
    if optimizer not in ("sgd", "nesterov"):
        raise ValueError(f"distributed={name!r} runs Nesterov momentum locally: optimizer must be 'sgd' or "
                         f"'nesterov', got {optimizer!r}.")
    return "nesterov", {"momentum": momentum, **options}


class Periodic:
    """The exchange schedule: at the steps ``t`` that ``self.tau`` divides, once per step however often a
    line search calls the closure (``_steps`` and ``_exchanged`` are reset by the strategy's ``begin``)."""

    _steps = 0
    _exchanged = False

    def _due(self) -> bool:
        if self._steps % self.tau or self._exchanged:
            return False
        self._exchanged = True
        return True

    def after_step(self, params: list[torch.Tensor]) -> None:
        self._steps += 1
        self._exchanged = False
