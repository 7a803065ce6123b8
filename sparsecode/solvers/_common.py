"""What every solver shares: the result type, the input check, the chunk size and the duality gap."""

from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = ["SolveResult", "check_inputs", "default_chunk_size", "relative_gap"]


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


def check_inputs(X: torch.Tensor, D: torch.Tensor, z0):
    if X.ndim != 2 or D.ndim != 2 or X.shape[1] != D.shape[1]:
        raise ValueError(
            f"X must be (n_samples, n_features) and D (n_components, n_features) with the same "
            f"n_features; got X {tuple(X.shape)} and D {tuple(D.shape)}."
        )
    if z0 is not None and tuple(z0.shape) != (X.shape[0], D.shape[0]):
        raise ValueError(f"z0 must have shape {(X.shape[0], D.shape[0])}, got {tuple(z0.shape)}.")


def default_chunk_size(n_components: int, n_features: int, device: torch.device | None = None) -> int:
    """Rows per chunk: cache-sized on the CPU, large on accelerators.

    On the CPU a chunk's ``(rows, max(n_components, n_features))`` work arrays are kept near 2 MB of float32
    (2048 rows for 256 atoms), where elementwise ops run several times faster per element than on
    arrays that spill out of cache; elsewhere near 256 MB, so that kernels stay large.
    """
    budget = 1 << 19 if device is None or torch.device(device).type == "cpu" else 1 << 23
    return max(256, budget // max(n_components, n_features, 1))


def relative_gap(X, Z, D, penalty):
    r"""Relative duality gap per sample, evaluated without cancellation.

    With the residual :math:`r = x - zD`, correlations :math:`c = rD^T` and the dual point
    :math:`\nu = s r`, :math:`s = \min(1, w / \Omega^*(c))`, the gap of :func:`objectives.duality_gap`
    equals :math:`\tfrac12(1 - s)^2\|r\|^2 + (\Omega(z) - s\,z\cdot c)`: a sum of two non-negative terms
    that are both small near the optimum, so a relative gap of ``1e-6`` stays measurable in float32
    (the textbook primal-minus-dual form subtracts two numbers of size ``||x||^2``).
    """
    R = torch.addmm(X, Z, D, alpha=-1)
    C = R @ D.T
    dnorm = penalty.dual_norm(C)
    s = (penalty.max_weight() / dnorm.clamp(min=torch.finfo(X.dtype).tiny)).clamp(max=1)
    gap = 0.5 * (1 - s) ** 2 * (R * R).sum(1) + penalty.value(Z) - s * (Z * C).sum(1)
    return gap.clamp(min=0) / (0.5 * (X * X).sum(1)).clamp(min=torch.finfo(X.dtype).tiny)
