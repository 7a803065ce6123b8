r"""Energies shared by solvers, encoders and estimators.

Lasso energy per sample (rows are atoms, scikit-learn's convention):

.. math::
    E(x, z) = \tfrac12 \|x - z D\|_2^2 + \Omega(z), \qquad \Omega(z) = \alpha \|z\|_1 .
"""

from __future__ import annotations

import torch

from .penalties import make_penalty

__all__ = ["lasso_energy", "duality_gap"]


def lasso_energy(X: torch.Tensor, Z: torch.Tensor, D: torch.Tensor, alpha) -> torch.Tensor:
    """Per-sample lasso energy ``0.5*||x - z D||^2 + alpha*||z||_1``, shape ``(n_samples,)``.

    ``alpha`` is a float, a tensor of per-unit weights, or a penalty from :mod:`sparsecode.penalties`.

    Examples
    --------
    >>> D = torch.eye(2); X = torch.tensor([[1.0, 0.0]]); Z = torch.tensor([[0.5, 0.0]])
    >>> lasso_energy(X, Z, D, 1.0)
    tensor([0.6250])
    """
    penalty = make_penalty(alpha)
    R = X - Z @ D
    return 0.5 * (R * R).sum(-1) + penalty.value(Z)


def duality_gap(X: torch.Tensor, Z: torch.Tensor, D: torch.Tensor, penalty) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample duality gap and primal energy of the lasso at ``Z``.

    The dual point is the residual scaled into the dual-feasible set,
    :math:`\\nu = r \\min(1, \\alpha / \\Omega^*(r D^T))`, and the dual value is
    :math:`\\tfrac12\\|x\\|^2 - \\tfrac12\\|x - \\nu\\|^2`.

    Returns
    -------
    gap, primal : torch.Tensor, shape (n_samples,)
    """
    penalty = make_penalty(penalty)
    R = X - Z @ D
    primal = 0.5 * (R * R).sum(-1) + penalty.value(Z)
    dnorm = penalty.dual_norm(R @ D.T)
    w = penalty.max_weight()
    scale = torch.where(dnorm > w, w / dnorm.clamp(min=torch.finfo(X.dtype).tiny), torch.ones_like(dnorm))
    nu = R * scale.unsqueeze(-1)
    dual = 0.5 * (X * X).sum(-1) - 0.5 * ((X - nu) ** 2).sum(-1)
    return primal - dual, primal
