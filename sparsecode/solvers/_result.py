"""The result type shared by every solver."""

from __future__ import annotations

from typing import NamedTuple

import torch


class SolveResult(NamedTuple):
    """What every lasso solver returns.

    Attributes
    ----------
    code : torch.Tensor, shape (n_samples, n_components)
    n_iter : int
        Iterations run by the slowest sample (coordinate updates for coordinate descent).
    converged : torch.BoolTensor, shape (n_samples,)
        Whether each sample met the stopping rule.
    gap : torch.Tensor, shape (n_samples,)
        Relative duality gap of each sample at exit (gap divided by ``0.5*||x||^2``).
    """

    code: torch.Tensor
    n_iter: int
    converged: torch.Tensor
    gap: torch.Tensor
