r"""Averaged stochastic gradient descent (Bottou, "Stochastic Gradient Descent Tricks", 2012; Xu 2011).

With ``t = 0, 1, 2, ...`` the number of updates done before the current one:

.. math::

    \eta_t = \frac{\eta_0}{(1 + \lambda \eta_0 t)^{0.75}}, \qquad
    w \leftarrow w - \eta_t \nabla E(w),

    \mu_t = \begin{cases} 1 & t \le t_0 \\ 1 / (1 + t - t_0) & t > t_0 \end{cases}, \qquad
    a \leftarrow a + \mu_t (w - a).

So ``a`` equals ``w`` up to update ``t_0`` and is then the running mean of the iterates from update
``t_0`` on (Polyak-Ruppert averaging). The averaged weights ``a`` are the model that is kept:
:meth:`ASGD.swap_average` exchanges them with the iterates. Through its training hooks
(:mod:`sparsecode.training.optim.hooks`), :func:`sparsecode.training.fit_module` starts the average
after one pass unless ``t0`` is given, and swaps the average in for validation and at the end of a
fit (and out again before it continues one).

``lambda`` only shapes the schedule here (Bottou also uses it as the L2 constant; put an
``lambda/2 ||w||^2`` term in the loss to get his regularized objective). torch's own
:class:`torch.optim.ASGD` uses ``mu = 1/max(1, t - t0)`` on a 1-based counter and never swaps the
average in, hence this class.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

from ._checks import check_options
from .hooks import TrainContext, TrainingHooks

__all__ = ["ASGD", "asgd", "asgd_schedule"]


def asgd_schedule(
    t: int, lr: float, lambd: float, t0: int, power: float = 0.75
) -> tuple[float, float]:
    """Step size and averaging weight of update ``t`` (0-based).

    Parameters
    ----------
    t : int
        Number of updates done before this one.
    lr : float
        Initial rate ``eta_0``.
    lambd : float
        Decay constant ``lambda`` of the schedule.
    t0 : int
        Update from which the average starts (``mu_t = 1`` while ``t <= t0``).
    power : float, default=0.75
        Exponent of the decay.

    Returns
    -------
    eta_t, mu_t : float

    Examples
    --------
    >>> asgd_schedule(0, 0.5, 1e-2, 0)
    (0.5, 1.0)
    >>> asgd_schedule(3, 0.5, 1e-2, 1)[1]
    0.3333333333333333
    """
    eta = lr / (1.0 + lambd * lr * t) ** power
    mu = 1.0 if t <= t0 else 1.0 / (1.0 + t - t0)
    return eta, mu


def asgd(params: list[torch.Tensor], grads: list[torch.Tensor], averages: list[torch.Tensor], *, t: int,
         lr: float, lambd: float, t0: int, power: float = 0.75) -> None:
    """Functional ASGD: one update of ``params`` and ``averages`` in place (see the module doc)."""
    eta, mu = asgd_schedule(t, lr, lambd, t0, power)
    torch._foreach_add_(params, grads, alpha=-eta)
    if mu == 1.0:
        torch._foreach_copy_(averages, params)
    else:
        torch._foreach_lerp_(averages, params, mu)


class ASGD(TrainingHooks, torch.optim.Optimizer):
    """Averaged SGD with Bottou's ``eta_0 / (1 + lambda eta_0 t)^0.75`` schedule.

    Parameters
    ----------
    params : iterable of tensors or of dicts
        Parameters or parameter groups.
    lr : float, default=1e-2
        Initial rate ``eta_0``.
    lambd : float, default=1e-4
        Decay constant of the schedule.
    t0 : int, default=0
        Update from which the average starts (Bottou: one pass, which :meth:`prepare` makes the
        default of :func:`sparsecode.training.fit_module`).
    power : float, default=0.75
        Exponent of the decay.

    Examples
    --------
    >>> w = torch.nn.Parameter(torch.tensor([1.0]))
    >>> opt = ASGD([w], lr=0.5, lambd=0.0)
    >>> for _ in range(2):
    ...     opt.zero_grad(); (0.5 * w ** 2).sum().backward(); opt.step()
    >>> w.item(), opt.state[w]["average"].item()
    (0.25, 0.375)
    """

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-2,
        lambd: float = 1e-4,
        t0: int = 0,
        power: float = 0.75,
    ) -> None:
        check_options({"learning rate": lr, "power": power}, {"lambd": lambd, "t0": t0})
        super().__init__(params, {"lr": lr, "lambd": lambd, "t0": int(t0), "power": power})
        for group in self.param_groups:
            group["swapped"] = False

    @classmethod
    def prepare(cls, context: TrainContext, options: dict) -> tuple[dict, None]:
        """Bottou's ``t0``: the average starts after one pass unless ``options`` sets it."""
        return {"t0": context.steps_per_pass, **options}, None

    def use_average(self, flag: bool) -> None:
        """Put the averages (True) or the iterates (False) into the parameters."""
        if self.swapped != flag:
            self.swap_average()

    @property
    def swapped(self) -> bool:
        """True while the averaged weights sit in the parameters."""
        return bool(self.param_groups[0]["swapped"])

    @torch.no_grad()
    def swap_average(self) -> None:
        """Exchange the parameters with their averages (call twice to undo)."""
        for group in self.param_groups:
            for p in group["params"]:
                avg = self.state[p].get("average")
                if avg is not None:
                    tmp = p.detach().clone()
                    p.copy_(avg)
                    avg.copy_(tmp)
            group["swapped"] = not group["swapped"]

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        """One ASGD update; swaps the iterates back in first when the averages are in."""
        loss = None
        if self.swapped:
            self.swap_average()
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            for p in params:
                st = self.state[p]
                if not st:
                    st["step"] = 0
                    st["average"] = p.detach().clone()
            t = self.state[params[0]]["step"]
            asgd(
                params,
                [p.grad for p in params],
                [self.state[p]["average"] for p in params],
                t=t,
                lr=group["lr"],
                lambd=group["lambd"],
                t0=group["t0"],
                power=group["power"],
            )
            for p in params:
                self.state[p]["step"] = t + 1
        return loss
