"""Small helpers shared by the loop, the optimizers' hooks and the power method."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from ..device import draw_device

__all__ = ["random_rows", "trainable"]


def random_rows(n: int, generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    """A random permutation of ``range(n)`` on ``like``'s device.

    Drawn on :func:`sparsecode.device.draw_device` (the generator's device), so that one seed gives
    the same rows wherever the data lives.
    """
    return torch.randperm(n, generator=generator, device=draw_device(generator, like)).to(like.device)


def trainable(module: torch.nn.Module, params: Iterable[torch.Tensor] | None = None) -> list[torch.Tensor]:
    """``params`` as a list; by default the parameters of ``module`` that require grad."""
    return [p for p in module.parameters() if p.requires_grad] if params is None else list(params)
