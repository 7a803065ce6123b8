r"""Energies and the duality gap shared by solvers, encoders and estimators.

Lasso energy per sample (rows are atoms, scikit-learn's convention):

.. math::
    E(x, z) = \tfrac12 \|x - z D\|_2^2 + \alpha\,\Omega(z), \qquad \Omega(z) = \|z\|_1 \text{ by default.}
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .penalties import L1, Penalty, check_alpha

__all__ = ["lasso_energy", "relative_gap", "duality_gap", "relative_residual"]


def lasso_energy(
    X: torch.Tensor, Z: torch.Tensor, D: torch.Tensor, alpha: float, penalty: Penalty | None = None
) -> torch.Tensor:
    """Per-sample lasso energy ``0.5*||x - z D||^2 + alpha*Omega(z)``, shape ``(n_samples,)``.

    ``penalty`` is a penalty from :mod:`sparsecode.penalties` (:class:`~sparsecode.penalties.L1` when
    omitted).

    Examples
    --------
    >>> D = torch.eye(2); X = torch.tensor([[1.0, 0.0]]); Z = torch.tensor([[0.5, 0.0]])
    >>> lasso_energy(X, Z, D, 1.0)
    tensor([0.6250])
    """
    alpha = check_alpha(alpha)
    penalty = L1() if penalty is None else penalty
    R = X - Z @ D
    return 0.5 * (R * R).sum(-1) + penalty.value(Z, alpha)


def relative_gap(
    X: torch.Tensor,
    Z: torch.Tensor,
    R: torch.Tensor,
    correlate: Callable[[torch.Tensor], torch.Tensor],
    alpha: float,
    penalty: Penalty,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""Relative duality gap per sample of the (weighted) lasso with any linear operator :math:`A`.

    With the residual :math:`r = x - Az`, the metric :math:`\langle a, b\rangle_w = \sum w\,a\,b`
    (:math:`w = 1` without ``weights``), the correlations :math:`c = A^T(w \odot r)` and the dual point
    :math:`\nu = s r`, :math:`s = \min(1, \alpha / \Omega^*(c))`, the gap equals
    :math:`\tfrac12(1 - s)^2\|r\|_w^2 + (\alpha\Omega(z) - s\,z\cdot c)`: a sum of two non-negative terms
    that are both small near the optimum, so a relative gap of ``1e-6`` stays measurable in float32
    (the textbook primal-minus-dual form subtracts two numbers of size ``||x||^2``). The gap is divided
    by :math:`\tfrac12\|x\|_w^2`.

    Parameters
    ----------
    X : torch.Tensor, shape (n, ...)
    Z : torch.Tensor, shape (n, ...)
        Codes; the penalty sees each sample's codes flattened.
    R : torch.Tensor, shape of ``X``
        The residual :math:`x - Az`, computed by the caller (its rounding is the caller's).
    correlate : callable
        :math:`A^T`: maps a (weighted) residual to correlations of the codes' shape.
    alpha : float
    penalty : Penalty
    weights : torch.Tensor, optional
        Weights of the reconstruction error, broadcast against ``X``.
    """
    tiny = torch.finfo(X.dtype).tiny
    WR, WX = (R, X) if weights is None else (weights * R, weights * X)
    Z, C = Z.flatten(1), correlate(WR).flatten(1)
    s = (alpha / penalty.dual_norm(C).clamp(min=tiny)).clamp(max=1)
    gap = 0.5 * (1 - s) ** 2 * (R * WR).flatten(1).sum(1) + penalty.value(Z, alpha) - s * (Z * C).sum(1)
    return gap.clamp(min=0) / (0.5 * (X * WX).flatten(1).sum(1)).clamp(min=tiny)


def duality_gap(
    X: torch.Tensor, Z: torch.Tensor, D: torch.Tensor, alpha: float, penalty: Penalty | None = None
) -> torch.Tensor:
    """Relative duality gap per sample of the dense lasso at ``Z`` (:func:`relative_gap` with :math:`A = D^T`).

    Examples
    --------
    >>> duality_gap(torch.tensor([[2.0, 0.0]]), torch.tensor([[1.0, 0.0]]), torch.eye(2), 1.0)
    tensor([0.])
    """
    R = torch.addmm(X, Z, D, alpha=-1)
    return relative_gap(X, Z, R, lambda V: V @ D.T, alpha, L1() if penalty is None else penalty)


def relative_residual(X: torch.Tensor, Z: torch.Tensor, D: torch.Tensor) -> torch.Tensor:
    """Per-sample ``||x - zD||^2 / ||x||^2``: what the greedy solvers (OMP, LARS) report as their gap.

    Examples
    --------
    >>> relative_residual(torch.tensor([[2.0, 0.0]]), torch.tensor([[1.0, 0.0]]), torch.eye(2))
    tensor([0.2500])
    """
    R = torch.addmm(X, Z, D, alpha=-1)
    tiny = torch.finfo(X.dtype).tiny
    return (R * R).sum(1) / (X * X).sum(1).clamp(min=tiny)
