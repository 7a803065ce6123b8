r"""Training on several processes with ``torch.distributed``: the strategies :func:`fit_module` calls.

Every process (rank) of a process group (gloo on CPUs, NCCL on GPUs; started by ``torchrun``, which
sets the environment :func:`torch.distributed.init_process_group` reads) calls
:func:`~sparsecode.training.fit_module` on its own shard of the data with the same arguments and
``distributed=`` one of :data:`STRATEGIES` (or an instance). The loop names no strategy: it calls

``begin(train, params)``
    At the start of every call: checks the process group, gives every rank rank 0's parameters and
    pads every shard to the largest one by repeating its rows (as
    :class:`torch.utils.data.DistributedSampler` does), so that every rank takes the same number of
    steps per pass.
``local_optimizer(optimizer, options)`` and ``agree(learning_rate)``
    Before the optimizer is built: the optimizer each rank runs locally, and one rate for all
    (``"auto"`` is resolved on each shard; the smallest wins).
``after_backward(params, n_batch)``
    In the closure, after every backward pass (the gradients are those of the current iterate).
``after_step(params)``
    After every optimizer step and projection.
``end_pass(loss_sum, n_seen)`` and ``all_true(checks)``
    At the end of a pass: the loss summed over all ranks, and the loop's sanity checks true on every
    rank, so that all ranks take the same decision (converge, diverge, go on). ``average(value)``
    does the same for the validation loss.
``finish(params)``
    At the end of the call: every rank holds the same model; True when it is not the iterate that
    was projected last (EASGD's center), which the loop then projects.
``state_dict()`` and ``load_state_dict(state)``
    What a checkpoint (:mod:`sparsecode.training.checkpoint`) keeps of a rank's strategy besides its
    parameters and optimizer (EASGD's center and exchange schedule), restored after ``begin``.

The strategies, with :math:`p` ranks:

``"allreduce"`` (:class:`AllReduce`)
    Synchronous data parallel, as :class:`torch.nn.parallel.DistributedDataParallel`: after every
    backward pass the gradients are summed across ranks weighted by the minibatch sizes,
    :math:`g = \sum_i m_i g_i / \sum_i m_i`, the gradient of the mean loss on the union of the
    minibatches. With :math:`p` ranks of minibatch :math:`b` it is one process with minibatch
    :math:`p b` on that union.
``"easgd"`` (:class:`EASGD`)
    Synchronous Elastic Averaging SGD (Zhang, Choromanska & LeCun, NIPS 2015, arXiv:1412.6651). A
    center variable :math:`\tilde x` is kept on every rank; at the steps :math:`t` that ``tau``
    divides, worker :math:`i` and the center move toward each other (eqs. 5-6 of the paper), the
    gradient being taken at :math:`x_i^t`:

    .. math::

        x_i^{t+1} = x_i^t - \eta g_i(x_i^t) - \alpha (x_i^t - \tilde x^t), \qquad
        \tilde x^{t+1} = \tilde x^t + \alpha \sum_{i=1}^p (x_i^t - \tilde x^t),

    and :math:`x_i^{t+1} = x_i^t - \eta g_i(x_i^t)` at the other steps. The moving rate is
    :math:`\alpha = \beta / p` with :math:`\beta = 0.9` unless given. After the fit every rank holds
    the center. With one process there is no other worker to average with: no exchange takes place,
    the center is the worker, and EASGD is plain SGD (EAMSGD: SGD with Nesterov momentum), so that a
    script runs unchanged on one process. (The paper's equations with :math:`p = 1`, a center that is a
    moving average of its single worker and pulls it back, are not what runs.)
``"eamsgd"`` (:class:`EAMSGD`)
    EASGD whose local steps use Nesterov momentum :math:`\delta` (Algorithm 2 of the paper): the fit's
    optimizer must be ``"sgd"`` or ``"nesterov"``, and runs as ``"nesterov"`` with momentum
    :math:`\delta`; the elastic force moves the parameters, not the velocity.

``"async_easgd"``, ``"async_eamsgd"`` and ``"downpour"`` (:mod:`sparsecode.training.parameter_server`)
    Asynchronous EASGD, EAMSGD and DOWNPOUR: rank 0 serves the center (the server's parameters) from a
    thread while it trains too, and each worker exchanges with it every ``tau`` steps by point-to-point
    messages, waiting for no other worker. ``end_pass``, ``all_true`` and ``average`` stay local: each
    worker runs its own passes on its own (unpadded) shard and decides alone when it has converged; a
    divergence on any worker stops all. After the fit every rank holds the center. On one process the
    elastic ones are plain SGD, as ``"easgd"``.

Quadratic case (the paper's section 5; the seed's "Analysis" slide). On :math:`f(x) = h x^2 / 2` with
identical workers, the mean worker :math:`y` and the center follow, over one period of ``tau`` steps,
the linear map :func:`easgd_quadratic_map`; EASGD is stable when its spectral radius is below 1.
"""

from __future__ import annotations

import copy
import dataclasses

import torch
import torch.distributed as dist

from ._process_group import (
    Distributed,
    Elastic,
    Periodic,
    _flat,
    _unflat_copy_,
    all_reduce_,
    broadcast_,
    check_process_group,
    nesterov_locally,
    pad_rows,
    sum_over_ranks,
)
from .parameter_server import AsyncEAMSGD, AsyncEASGD, Downpour

__all__ = ["Distributed", "AllReduce", "EASGD", "EAMSGD", "AsyncEASGD", "AsyncEAMSGD", "Downpour", "STRATEGIES",
           "make_distributed", "easgd_quadratic_map", "check_process_group", "pad_rows", "broadcast_",
           "sum_over_ranks", "all_reduce_"]


class _Collective(Distributed):
    """What every multi-process strategy shares: the process group, padding, agreement, the end."""

    group = None

    @property
    def world_size(self) -> int:
        return dist.get_world_size(self.group)

    def begin(self, train, params):
        check_process_group(type(self).__name__.lower())
        train = pad_rows(train, self.group)
        broadcast_(params, self.group)
        return train

    def agree(self, learning_rate):
        rate = torch.tensor([learning_rate], dtype=torch.float64, device=self._device)
        dist.all_reduce(rate, dist.ReduceOp.MIN, group=self.group)
        return float(rate)

    @property
    def _device(self) -> torch.device:
        return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend(self.group) == "nccl" \
            else torch.device("cpu")

    def end_pass(self, loss_sum, n_seen):
        total, n = sum_over_ranks([loss_sum, loss_sum.new_tensor(float(n_seen))], self.group)
        return total, int(n)

    def all_true(self, checks):
        flags = torch.tensor([float(c) for c in checks], device=self._device)
        dist.all_reduce(flags, dist.ReduceOp.MIN, group=self.group)
        return [bool(f) for f in flags.tolist()]

    def average(self, value):
        total = torch.tensor([value], dtype=torch.float64, device=self._device)
        dist.all_reduce(total, group=self.group)
        return float(total) / self.world_size

    def finish(self, params):
        broadcast_(params, self.group)  # the same bits on every rank
        return False


@dataclasses.dataclass
class AllReduce(_Collective):
    """Gradients averaged over the ranks at every step (module doc)."""

    def after_backward(self, params, n_batch):
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([_flat(grads) * n_batch, grads[0].new_tensor([float(n_batch)])])
        all_reduce_(flat, self.group)
        _unflat_copy_(grads, flat[:-1] / flat[-1])
        for p, g in zip(params, grads):
            p.grad = g


@dataclasses.dataclass
class EASGD(Elastic, Periodic, _Collective):
    """Synchronous Elastic Averaging SGD (module doc); the parameters are :class:`Elastic`'s (``tau``,
    ``moving_rate``, ``beta``)."""

    def __post_init__(self):
        super().__post_init__()
        self._center = None

    @property
    def center(self) -> torch.Tensor | None:
        """The center variable, flat (None before :meth:`begin`)."""
        return self._center

    def begin(self, train, params):
        train = super().begin(train, params)
        self._center = _flat(params).clone()
        self._steps, self._exchanged = 0, False
        return train

    def after_backward(self, params, n_batch):
        if self._alone or not self._due():
            return
        diff = _flat(params) - self._center
        pull = diff.clone()
        all_reduce_(pull, self.group)
        alpha = self.alpha
        _unflat_copy_(params, _flat(params) - alpha * diff)
        self._center.add_(pull, alpha=alpha)

    def after_step(self, params):
        super().after_step(params)
        if self._alone:  # plain SGD: the worker is the center, at every step
            self._center.copy_(_flat(params))

    def state_dict(self):
        return {"center": self._center.clone(), "steps": self._steps}

    def load_state_dict(self, state):
        self._center.copy_(state["center"])
        self._steps = state["steps"]

    def finish(self, params):
        if self._alone:  # the center followed the worker (after_step)
            return super().finish(params)
        _unflat_copy_(params, self._center)
        super().finish(params)
        return True


@dataclasses.dataclass
class EAMSGD(EASGD):
    """EASGD with local Nesterov momentum ``momentum`` (the paper's :math:`\\delta`; module doc)."""

    momentum: float = 0.9

    def local_optimizer(self, optimizer, options):
        return nesterov_locally("eamsgd", optimizer, options, self.momentum)


STRATEGIES: dict[str, type[Distributed]] = {"allreduce": AllReduce, "easgd": EASGD, "eamsgd": EAMSGD,
                                             "async_easgd": AsyncEASGD, "async_eamsgd": AsyncEAMSGD,
                                             "downpour": Downpour}


def make_distributed(spec) -> Distributed:
    """The strategy of ``spec`` for one call: a fresh one (an instance is copied, its state is per call).

    Parameters
    ----------
    spec : None, str or Distributed
        None: one process; a name of :data:`STRATEGIES` (its defaults); or an instance.

    Returns
    -------
    Distributed

    Examples
    --------
    >>> make_distributed("easgd")
    EASGD(tau=4, moving_rate=None, beta=0.9)
    """
    if spec is None:
        return Distributed()
    if isinstance(spec, Distributed):
        return copy.deepcopy(spec)
    if isinstance(spec, str) and spec in STRATEGIES:
        return STRATEGIES[spec]()
    raise ValueError(f"distributed must be None, one of {sorted(STRATEGIES)} or a Distributed, got {spec!r}.")


def easgd_quadratic_map(h: float, eta: float, alpha: float, p: int, tau: int) -> torch.Tensor:
    """EASGD's linear map over one period on :math:`f(x) = h x^2 / 2` with identical workers.

    The state is (mean worker, center); the period starts with the exchange step (gradient and
    elastic force at the same iterate) followed by ``tau - 1`` plain gradient steps.

    Parameters
    ----------
    h : float
        Curvature.
    eta : float
        Learning rate.
    alpha : float
        Moving rate (:math:`\\beta = p \\alpha`).
    p : int
        Workers.
    tau : int
        Communication period.

    Returns
    -------
    Tensor of shape (2, 2), float64
        Stable (the iterates go to 0) when its spectral radius is below 1.

    Examples
    --------
    >>> float(torch.linalg.eigvals(easgd_quadratic_map(1.0, 0.5, 0.45, 2, 1)).abs().max()) < 1
    True
    """
    exchange = torch.tensor([[1.0 - eta * h - alpha, alpha], [p * alpha, 1.0 - p * alpha]],
                            dtype=torch.float64, device="cpu")
    local = torch.diag(torch.tensor([(1.0 - eta * h) ** (tau - 1), 1.0], dtype=torch.float64, device="cpu"))
    return local @ exchange
