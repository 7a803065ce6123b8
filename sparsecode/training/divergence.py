"""The divergence rule of :func:`sparsecode.training.fit_module`, and the error it raises.

A pass diverges when a minibatch loss is non-finite or more than :data:`DIVERGENCE_GROWTH` times the call's
starting loss, or a parameter is non-finite. The loop then restores the last sane parameters and raises
:class:`~sparsecode.training.DivergenceError`, whose ``cause`` says whether the data (values outside their
dtype's range: :func:`data_overflow`) or the learning rate is to blame.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .optim import estimate_max_learning_rate
from .state import DivergenceError

__all__ = ["DIVERGENCE_GROWTH", "sane", "data_overflow", "divergence_error"]

DIVERGENCE_GROWTH = 1e6
"""A loss this many times the starting loss of a call (or non-finite) counts as divergence."""


def sane(losses: list[torch.Tensor], params: list[torch.Tensor], limit: torch.Tensor) -> list[bool]:
    """For each loss: finite and at most ``limit``; and last, whether every parameter is finite (one sync)."""
    checks = [torch.isfinite(v) & (v <= limit) for v in losses]
    checks.append(torch.stack([torch.isfinite(p).all() for p in params]).all())
    return torch.stack(checks).tolist()


def data_overflow(data: Sequence[torch.Tensor]) -> str | None:
    """Why floating ``data`` cannot be trained on in their dtype (non-finite values, or a sum of squares
    beyond its range), or None.

    Parameters
    ----------
    data : sequence of tensors
        The training tensors (dim 0 samples); non-floating ones are skipped.

    Returns
    -------
    str or None
        A sentence naming the dtype and the remedy (float64 or rescaling), or None when they fit.
    """
    for t in data:
        if not t.is_floating_point() or t.numel() == 0:
            continue
        info = torch.finfo(t.dtype)
        peak = float(t.abs().max())
        if not math.isfinite(peak):
            return f"the data hold non-finite values in {t.dtype}"
        if peak > math.sqrt(info.max / t.numel()):
            return (f"the data reach {peak:.3g}: their sum of squares overflows {t.dtype} (max {info.max:.3g}); "
                    f"rescale them{' or pass float64' if t.dtype != torch.float64 else ''}")
    return None


def divergence_error(module: torch.nn.Module, loss_fn, train: Sequence[torch.Tensor], params: list[torch.Tensor],
                     optimizer, learning_rate: float, epoch: int,
                     generator: torch.Generator | None) -> DivergenceError:
    """The error for a pass that diverged: the data's overflow when :func:`data_overflow` finds one, else
    the learning rate, with the power method's suggestion at the restored parameters."""
    name = optimizer if isinstance(optimizer, str) else type(optimizer).__name__
    overflow = data_overflow(train)
    if overflow is not None:
        return DivergenceError(
            f"The training loss became non-finite in pass {epoch + 1}: {overflow}. The parameters were "
            f"restored to the last sane state.", learning_rate, None, cause="data")
    try:
        est = estimate_max_learning_rate(
            module, loss_fn, train, optimizer=name if isinstance(optimizer, str) else "sgd", params=params,
            n_iter=30, tol=1e-3, n_samples=1024, generator=generator,
        )
        suggested = est.learning_rate
        hint = f"the power method gives lambda_max={est.lambda_max:.4g}, i.e. learning_rate={suggested:.4g}"
    except (RuntimeError, ValueError) as exc:
        suggested = None
        hint = f"the power-method estimate failed ({exc})"
    message = (
        f"The training loss diverged (non-finite, or {DIVERGENCE_GROWTH:.0e} times its starting value) in "
        f"pass {epoch + 1} with optimizer={name!r} and learning_rate={learning_rate:.4g}; the parameters "
        f"were restored to the last sane state. At those parameters {hint}: lower learning_rate or use "
        f"learning_rate='auto'."
    )
    return DivergenceError(message, learning_rate, suggested, cause="learning_rate")
