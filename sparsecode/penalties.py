r"""Sparsity penalties as small objects: value, proximal map and dual norm.

A solver needs three things from a penalty :math:`\Omega`: its value (for the energy), its proximal map
(for ISTA/FISTA) and its dual norm (for the duality gap). For the lasso
:math:`\Omega(z) = \alpha\|z\|_1`, the dual norm is :math:`\|c\|_\infty`; with non-negative codes it is
:math:`\max(\max_j c_j, 0)`; for the group lasso :math:`\alpha\sum_g\|z_g\|_2` it is :math:`\max_g\|c_g\|_2`.
"""

from __future__ import annotations

import torch

from .prox import group_soft_threshold, shrink

__all__ = ["L1", "GroupL1", "make_penalty"]


class L1:
    """:math:`\\alpha\\|z\\|_1`, optionally with :math:`z \\ge 0`.

    Parameters
    ----------
    alpha : float or torch.Tensor
        Scalar or one weight per code unit.
    positive : bool
    """

    def __init__(self, alpha, positive: bool = False):
        self.alpha = alpha
        self.positive = positive

    def value(self, Z: torch.Tensor) -> torch.Tensor:
        """Per-sample penalty, shape ``(n_samples,)``."""
        return (Z.abs() * self.alpha).sum(-1)

    def prox(self, V: torch.Tensor, step) -> torch.Tensor:
        """Proximal map of ``step * penalty``."""
        return shrink(V, self.alpha * step, self.positive)

    def dual_norm(self, C: torch.Tensor) -> torch.Tensor:
        """Per-sample dual norm of the correlations ``C`` (divided by the weights)."""
        scaled = C / self.alpha if isinstance(self.alpha, torch.Tensor) else C
        if self.positive:
            return scaled.amax(-1).clamp(min=0)
        return scaled.abs().amax(-1)

    def max_weight(self) -> float:
        """Scalar equivalent used to scale the dual point: ``alpha`` or its weights' factor."""
        return 1.0 if isinstance(self.alpha, torch.Tensor) else float(self.alpha)

    def to(self, like: torch.Tensor) -> L1:
        """The same penalty with tensor weights moved to ``like``'s device and dtype."""
        alpha = self.alpha.to(like) if isinstance(self.alpha, torch.Tensor) else self.alpha
        return L1(alpha, self.positive)


class GroupL1:
    """Group lasso :math:`\\alpha\\sum_g \\|z_g\\|_2` over disjoint groups of code units.

    Parameters
    ----------
    alpha : float
    groups : torch.LongTensor, shape (n_components,)
        Group index of each unit.
    positive : bool
    """

    def __init__(self, alpha: float, groups: torch.Tensor, positive: bool = False):
        self.alpha = alpha
        self.groups = groups
        self.positive = positive
        self.n_groups = int(groups.max()) + 1 if groups.numel() else 0

    def _group_norms(self, Z: torch.Tensor) -> torch.Tensor:
        sq = Z.new_zeros(Z.shape[:-1] + (self.n_groups,)).index_add_(-1, self.groups, Z * Z)
        return sq.sqrt()

    def value(self, Z: torch.Tensor) -> torch.Tensor:
        """Per-sample penalty, shape ``(n_samples,)``."""
        return self.alpha * self._group_norms(Z).sum(-1)

    def prox(self, V: torch.Tensor, step) -> torch.Tensor:
        """Block soft threshold with threshold ``alpha * step``."""
        return group_soft_threshold(V, self.alpha * step, self.groups, self.positive)

    def dual_norm(self, C: torch.Tensor) -> torch.Tensor:
        """Per-sample :math:`\\max_g \\|c_g\\|_2` (of the positive part when ``positive``)."""
        if self.positive:
            C = C.clamp(min=0)
        return self._group_norms(C).amax(-1)

    def max_weight(self) -> float:
        return float(self.alpha)

    def to(self, like: torch.Tensor) -> GroupL1:
        return GroupL1(self.alpha, self.groups.to(like.device), self.positive)


def make_penalty(alpha, positive: bool = False, groups=None):
    """Build the penalty for ``alpha`` (float, tensor of weights, or an existing penalty).

    ``groups`` (a LongTensor of group indices) gives the group lasso.
    """
    if isinstance(alpha, (L1, GroupL1)):
        return alpha
    if groups is not None:
        return GroupL1(float(alpha), torch.as_tensor(groups, dtype=torch.long), positive)
    return L1(alpha, positive)
