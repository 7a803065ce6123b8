r"""Asynchronous strategies: a parameter server on rank 0, exchanges by point-to-point messages.

Rank 0 holds the center variable (EASGD) or the server's parameters (DOWNPOUR) and serves them from a
thread while its main thread trains like every other rank: with :math:`p` processes there are
:math:`p` workers. Every ``tau`` local steps (at the steps :math:`t` that ``tau`` divides, as in the
synchronous strategies) a worker sends one message to rank 0 (:func:`torch.distributed.send`; rank 0's
own exchanges are local) and waits for the reply only: no collective over the workers happens while
they train, so a slow worker delays nobody but itself. The server's thread receives from any rank
(gloo's receive from any source: the process group's backend must serve CPU tensors with gloo, e.g.
``"gloo"`` or ``"cpu:gloo,cuda:nccl"``) and applies one exchange at a time, under a lock shared with
rank 0's own exchanges.

``"async_easgd"`` (:class:`AsyncEASGD`, Algorithm 1 of Zhang, Choromanska & LeCun 2015)
    Worker :math:`i` sends :math:`x_i`; the server replies with the center :math:`\tilde x` and moves it,
    :math:`\tilde x \leftarrow \tilde x + \alpha (x_i - \tilde x)`; the worker moves
    :math:`x_i \leftarrow x_i - \alpha (x_i - \tilde x)` before its gradient step (the gradient taken at
    the :math:`x_i` it sent). :math:`\alpha = \beta / p`, :math:`\beta = 0.9` unless given.
``"async_eamsgd"`` (:class:`AsyncEAMSGD`)
    The same with local Nesterov momentum (the fit's optimizer ``"sgd"`` or ``"nesterov"``).
``"downpour"`` (:class:`Downpour`, Dean et al., NIPS 2012)
    Worker :math:`i` sends the change of its parameters since its last pull (the sum of its local
    optimizer steps); the server adds it to its parameters and replies with them; the worker continues
    from them (its next step uses the gradient it has just computed, one exchange stale).

Passes and decisions. The largest shard does not set the steps: every worker runs its own passes on
its own shard (no padding) and decides alone when it has converged (its own loss curve, its own
validation loss), then reports done and waits for the final model. When every worker has reported,
rank 0 sends each one the center (the server's parameters for DOWNPOUR), so that after ``fit`` every
rank holds the same model, projected by the loop on every rank alike. A divergence on one worker
stops all: that worker raises the loop's :class:`~sparsecode.training.DivergenceError` and leaves; the
server answers every later exchange with an abort flag, upon which each other worker raises a
:class:`~sparsecode.training.DivergenceError` naming the cause at the end of its pass (keeping its own
sane parameters); a worker already done learns it with the final model and raises too. A worker that
dies or hangs makes the server's receive fail within the process group's timeout, which is therefore
also the longest a worker may go between two messages.
"""

from __future__ import annotations

import dataclasses
import threading

import torch
import torch.distributed as dist

from ._process_group import (
    Distributed,
    Elastic,
    Periodic,
    _flat,
    _unflat_copy_,
    broadcast_,
    check_period,
    check_process_group,
    nesterov_locally,
)
from .state import DivergenceError

__all__ = ["ParameterServer", "AsyncEASGD", "AsyncEAMSGD", "Downpour"]

# the first entry of every message: what a worker sends, and the server's reply status
_EXCHANGE, _DONE, _LEAVE = 0.0, 1.0, 2.0
_OK, _ABORT = 0.0, 1.0


class ParameterServer(Periodic, Distributed):
    """What the asynchronous strategies share: the server thread on rank 0, the messages, the end.

    Subclasses define ``name``, ``tau``, ``_push(x)`` (the message a worker sends from its flat
    parameters), ``_apply(payload)`` (the server's update, under the lock; returns the reply) and
    ``_pull(x, reply)`` (the worker's new flat parameters).

    Attributes
    ----------
    exchanges : list of int
        On rank 0, the exchanges the server applied from each rank.
    """

    name = "parameter server"
    _center = None

    @property
    def center(self) -> torch.Tensor | None:
        """On rank 0, a copy of the center (the server's parameters), flat, on the CPU; None elsewhere."""
        if self._center is None:
            return None
        with self._lock:
            return self._center.clone()

    def begin(self, train, params):
        check_process_group(self.name)
        if "gloo" not in str(dist.get_backend()):
            raise ValueError(f"distributed={self.name!r} receives from any rank, which needs gloo for CPU "
                             f"tensors: init_process_group('gloo') or 'cpu:gloo,cuda:nccl', not "
                             f"{dist.get_backend()!r}.")
        self._rank, self._world = dist.get_rank(), dist.get_world_size()
        broadcast_(params)  # every worker and the center start at rank 0's parameters
        self._last = _flat(params).cpu().clone()
        self._center = self._last.clone() if self._rank == 0 else None
        self.exchanges = [0] * self._world
        self._steps, self._exchanged, self._aborted = 0, False, False
        self._lock, self._thread, self._error, self._done = threading.Lock(), None, None, []
        self._learning_rate = float("nan")
        return train

    def agree(self, learning_rate):
        # before any step: the server is not running
        rate = torch.tensor([learning_rate], dtype=torch.float64, device="cpu")
        dist.all_reduce(rate, dist.ReduceOp.MIN)
        self._learning_rate = float(rate)
        return self._learning_rate

    def after_backward(self, params, n_batch):
        if not self._due():
            return
        x = _flat(params)
        reply, status = self._exchange(self._push(x.cpu()))
        self._aborted |= status == _ABORT
        _unflat_copy_(params, self._pull(x, reply.to(x.device)))

    def all_true(self, checks):
        self._check_server()
        if all(checks) and not self._aborted:
            return checks
        self._leave()
        if not all(checks):  # this rank diverged: the loop restores its parameters and raises
            return checks
        raise DivergenceError(f"distributed={self.name!r}: another worker diverged; this rank stopped at the end "
                              f"of its pass, with its own (sane) parameters.", self._learning_rate, None)

    def finish(self, params):
        if self._rank == 0:
            self._serve_in_background()
            self._thread.join()
            self._check_server()
            final, status = self._center, self._release()
        else:
            final, status = self._message(_DONE, _flat(params).cpu())
        _unflat_copy_(params, final.to(params[0].device))
        if status == _ABORT:
            raise DivergenceError(f"distributed={self.name!r}: a worker diverged after this rank had finished; "
                                  f"this rank holds the last center.", self._learning_rate, None)
        return True

    # --- messages -------------------------------------------------------------------------------------

    def _exchange(self, payload: torch.Tensor) -> tuple[torch.Tensor, float]:
        if self._rank:
            return self._message(_EXCHANGE, payload)
        self._serve_in_background()
        with self._lock:
            self.exchanges[0] += 1
            return self._apply(payload), _ABORT if self._aborted else _OK

    def _message(self, kind: float, payload: torch.Tensor) -> tuple[torch.Tensor, float]:
        """Send ``(kind, payload)`` to rank 0 and return its reply ``(value, status)``."""
        dist.send(torch.cat([payload.new_tensor([kind]), payload]), 0)
        reply = payload.new_empty(payload.numel() + 1)
        dist.recv(reply, 0)
        return reply[1:], float(reply[0])

    def _leave(self) -> None:
        """Stop training after a divergence here or elsewhere (rank 0 serves the others until they stop)."""
        if self._rank:
            dist.send(torch.cat([self._last.new_tensor([_LEAVE]), torch.zeros_like(self._last)]), 0)
            return
        self._aborted = True
        self._serve_in_background()
        self._thread.join()
        self._release()

    def _release(self) -> float:
        """Rank 0, the server's thread ended: send the final center to the workers waiting for it."""
        status = _ABORT if self._aborted else _OK
        reply = torch.cat([self._center.new_tensor([status]), self._center])
        for rank in self._done:
            dist.send(reply, rank)
        return status

    # --- the server's thread (rank 0) -----------------------------------------------------------------

    def _serve_in_background(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name=f"{self.name} server", daemon=True)
            self._thread.start()

    def _serve(self) -> None:
        """Until every other rank is done or has left: apply each exchange as it arrives."""
        try:
            active = set(range(1, self._world))
            message = self._center.new_empty(self._center.numel() + 1)
            while active:
                src = dist.recv(message)
                kind = float(message[0])
                if kind == _EXCHANGE:
                    with self._lock:
                        self.exchanges[src] += 1
                        reply = torch.cat([message.new_tensor([_ABORT if self._aborted else _OK]),
                                           self._apply(message[1:])])
                    dist.send(reply, src)
                    continue
                active.discard(src)
                if kind == _DONE:
                    self._done.append(src)
                else:
                    self._aborted = True
        except Exception as exc:  # noqa: BLE001 -- re-raised by the main thread at its next pass end or finish
            self._error = exc

    def _check_server(self) -> None:
        if self._error is not None:
            raise RuntimeError(f"distributed={self.name!r}: the parameter server on rank 0 failed: "
                               f"{self._error}") from self._error


@dataclasses.dataclass
class AsyncEASGD(Elastic, ParameterServer):
    """Asynchronous Elastic Averaging SGD (module doc); the parameters are :class:`Elastic`'s (``tau``: the
    local steps between two exchanges of a worker with the center, ``moving_rate``, ``beta``)."""

    name = "async_easgd"

    def after_backward(self, params, n_batch):
        if not self._alone:
            super().after_backward(params, n_batch)

    def after_step(self, params):
        super().after_step(params)
        if self._alone:  # plain SGD, as the synchronous EASGD on one process: the worker is the center
            self._center = _flat(params).cpu().clone()

    def finish(self, params):
        if self._alone:  # the center followed the worker (after_step)
            return False
        return super().finish(params)

    def _push(self, x):
        return x

    def _apply(self, x):
        center = self._center.clone()
        self._center.add_(x - center, alpha=self.alpha)
        return center

    def _pull(self, x, center):
        return x - self.alpha * (x - center)


@dataclasses.dataclass
class AsyncEAMSGD(AsyncEASGD):
    """Asynchronous EASGD with local Nesterov momentum ``momentum`` (module doc)."""

    name = "async_eamsgd"
    momentum: float = 0.9

    def local_optimizer(self, optimizer, options):
        return nesterov_locally(self.name, optimizer, options, self.momentum)


@dataclasses.dataclass
class Downpour(ParameterServer):
    """DOWNPOUR: workers push their parameter changes every ``tau`` steps and pull the server's (module doc).

    Parameters
    ----------
    tau : int, default=4
        Local steps between two push-and-pull exchanges.
    """

    name = "downpour"
    tau: int = 4

    def __post_init__(self):
        check_period(self.tau)

    def _push(self, x):
        return x - self._last

    def _apply(self, delta):
        self._center.add_(delta)
        return self._center.clone()

    def _pull(self, x, server):
        self._last = server.cpu().clone()
        return server
