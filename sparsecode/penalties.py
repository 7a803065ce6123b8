r"""Sparsity penalties as small objects: structure and sign constraint, apart from the strength ``alpha``.

A penalty :math:`\alpha\,\Omega` splits into a scalar strength :math:`\alpha \ge 0`, passed to every solver
as a number, and the penalty object :math:`\Omega`. A solver needs three things from it: its value (for the
energy), its proximal map (for ISTA/FISTA) and its dual norm (for the duality gap). For the lasso
:math:`\Omega(z) = \|z\|_1` the dual norm is :math:`\|c\|_\infty`; with non-negative codes it is
:math:`\max(\max_j c_j, 0)`; for the group lasso :math:`\Omega(z) = \sum_g\|z_g\|_2` it is
:math:`\max_g\|c_g\|_2`. The latent group lasso of overlapping pools has no closed-form prox: it lifts the
problem to a group lasso (:meth:`Penalty.lift`), which the proximal-gradient solvers then solve.
"""

from __future__ import annotations

from numbers import Real
from typing import TYPE_CHECKING

import torch

from .prox import group_soft_threshold, shrink

if TYPE_CHECKING:
    from .solvers import SolveResult
    from .topography import Pools

__all__ = ["Penalty", "L1", "GroupL1", "MapGroupL1", "LatentGroupL1", "make_penalty", "check_alpha"]


def check_alpha(alpha) -> float:
    """``alpha`` as a float; a ValueError unless it is a non-negative real number.

    Examples
    --------
    >>> check_alpha(1)
    1.0
    """
    if isinstance(alpha, bool) or not isinstance(alpha, Real) or not alpha >= 0:
        raise ValueError(
            f"alpha must be a non-negative number, got {alpha!r}; per-unit weights and structure go in "
            "penalty= (sparsecode.penalties)."
        )
    return float(alpha)


class Penalty:
    """What every penalty shares: the sign constraint and the (identity) lifting of the problem.

    Parameters
    ----------
    positive : bool
        Constrain the codes to be non-negative.
    """

    def __init__(self, positive: bool = False):
        self.positive = positive

    def value(self, Z: torch.Tensor, alpha: float) -> torch.Tensor:
        """Per-sample penalty :math:`\\alpha\\,\\Omega(z)`, shape ``(n_samples,)``."""
        raise NotImplementedError

    def solution_value(self, res: SolveResult, alpha: float) -> torch.Tensor:
        """Per-sample penalty of a solver's result, as the energies count it: the value of its code."""
        return self.value(res.code, alpha)

    def lift(self, D: torch.Tensor, z0: torch.Tensor | None) -> tuple[torch.Tensor, Penalty, torch.Tensor | None]:
        """The problem the proximal-gradient solvers see: ``(dictionary, penalty, warm start)``; here itself."""
        return D, self, z0

    def unlift(self, res: SolveResult) -> SolveResult:
        """The result of the lifted problem in the codes' space; here unchanged."""
        return res

    def to(self, like: torch.Tensor) -> Penalty:
        """The same penalty with its tensors on ``like``'s device (and dtype for weights)."""
        return self


class L1(Penalty):
    """:math:`\\sum_j w_j |z_j|`, optionally with :math:`z \\ge 0`.

    Parameters
    ----------
    positive : bool
    weights : torch.Tensor, shape (n_components,), optional
        Non-negative weight of each unit (all 1 by default); ``alpha`` scales them.

    Examples
    --------
    >>> L1().value(torch.tensor([[1.0, -2.0]]), 0.5)
    tensor([1.5000])
    """

    def __init__(self, positive: bool = False, weights: torch.Tensor | None = None):
        super().__init__(positive)
        self.weights = weights

    def scaled(self, alpha: float):
        """Threshold of every unit: ``alpha``, or ``alpha * weights``."""
        return alpha if self.weights is None else alpha * self.weights

    def value(self, Z: torch.Tensor, alpha: float) -> torch.Tensor:
        """Per-sample penalty, shape ``(n_samples,)``."""
        return (Z.abs() * self.scaled(alpha)).sum(-1)

    def prox(self, V: torch.Tensor, tau: float) -> torch.Tensor:
        """Proximal map of ``tau * Omega``."""
        return shrink(V, self.scaled(tau), self.positive)

    def dual_norm(self, C: torch.Tensor) -> torch.Tensor:
        """Per-sample dual norm of the correlations ``C`` (divided by the weights)."""
        scaled = C if self.weights is None else C / self.weights
        if self.positive:
            return scaled.amax(-1).clamp(min=0)
        return scaled.abs().amax(-1)

    def to(self, like: torch.Tensor) -> L1:
        return self if self.weights is None else L1(self.positive, self.weights.to(like))


class GroupL1(Penalty):
    """Group lasso :math:`\\sum_g \\|z_g\\|_2` over disjoint groups of code units.

    Parameters
    ----------
    groups : torch.LongTensor, shape (n_components,)
        Group index of each unit, values in ``0..n_groups-1``.
    positive : bool
    """

    def __init__(self, groups: torch.Tensor, positive: bool = False):
        super().__init__(positive)
        self.groups = groups
        self.n_groups = int(groups.max()) + 1 if groups.numel() else 0

    def _group_norms(self, Z: torch.Tensor) -> torch.Tensor:
        sq = Z.new_zeros(Z.shape[:-1] + (self.n_groups,)).index_add_(-1, self.groups, Z * Z)
        return sq.sqrt()

    def value(self, Z: torch.Tensor, alpha: float) -> torch.Tensor:
        """Per-sample penalty, shape ``(n_samples,)``."""
        return alpha * self._group_norms(Z).sum(-1)

    def prox(self, V: torch.Tensor, tau: float) -> torch.Tensor:
        """Block soft threshold with threshold ``tau``."""
        return group_soft_threshold(V, tau, self.groups, self.positive)

    def dual_norm(self, C: torch.Tensor) -> torch.Tensor:
        """Per-sample :math:`\\max_g \\|c_g\\|_2` (of the positive part when ``positive``)."""
        if self.positive:
            C = C.clamp(min=0)
        return self._group_norms(C).amax(-1)

    def to(self, like: torch.Tensor) -> GroupL1:
        return GroupL1(self.groups.to(like.device), self.positive)


class MapGroupL1(GroupL1):
    """Group lasso across feature maps, :math:`\\sum_g \\sum_p \\|z_{g,p}\\|_2`: groups of maps at each position.

    For convolutional codes ``(K, h, w)``, seen flattened (``K*h*w`` units, map by map): the units of the
    maps of group ``g`` at the same position ``p`` form one group (the group-sparse / topographic
    convolutional model). Any map size works: the positions are ``n_units / K``.

    Parameters
    ----------
    groups : torch.LongTensor, shape (K,)
        Group index of each map, values in ``0..n_groups-1``.
    positive : bool

    Examples
    --------
    >>> penalty = MapGroupL1(torch.tensor([0, 0]))  # two maps of two positions, grouped
    >>> penalty.value(torch.tensor([[3.0, 0.0, 4.0, 1.0]]), 1.0)
    tensor([6.])
    """

    def _by_position(self, Z: torch.Tensor) -> torch.Tensor:
        """``(..., K*P)`` -> ``(..., P, K)``: the maps on the last axis, one row per position."""
        return Z.unflatten(-1, (self.groups.numel(), -1)).transpose(-1, -2)

    def value(self, Z: torch.Tensor, alpha: float) -> torch.Tensor:
        """Per-sample penalty, shape ``(n_samples,)``."""
        return super().value(self._by_position(Z), alpha).sum(-1)

    def prox(self, V: torch.Tensor, tau) -> torch.Tensor:
        """Block soft threshold of each group of maps at each position; ``tau`` a number or ``(n, 1)``."""
        tau = tau.unsqueeze(-1) if torch.is_tensor(tau) and tau.dim() else tau
        return super().prox(self._by_position(V), tau).transpose(-1, -2).flatten(-2)

    def dual_norm(self, C: torch.Tensor) -> torch.Tensor:
        """Per-sample maximum over groups and positions of the groups' norms."""
        return super().dual_norm(self._by_position(C)).amax(-1)

    def to(self, like: torch.Tensor) -> MapGroupL1:
        return MapGroupL1(self.groups.to(like.device), self.positive)


class LatentGroupL1(Penalty):
    """Latent group lasso of (possibly overlapping) :class:`~sparsecode.topography.Pools`.

    With the lift :math:`z = uA` (:meth:`Pools.lift_matrix`) it is the group lasso on the pools' copies
    :math:`u`: :meth:`lift` hands the solvers the dictionary :math:`AD` and that group lasso, and
    :meth:`unlift` maps the solution back, keeping :math:`u` as the result's ``latent``.

    Parameters
    ----------
    pools : Pools
    positive : bool

    Examples
    --------
    >>> from sparsecode.solvers import solve_lasso
    >>> from sparsecode.topography import Pools
    >>> penalty = LatentGroupL1(Pools.torus((1, 3), (1, 1)))  # singleton pools: the lasso
    >>> solve_lasso(torch.tensor([[2.0, 0.5, -3.0]]), torch.eye(3), 1.0, penalty=penalty).code
    tensor([[ 1.,  0., -2.]])
    """

    def __init__(self, pools: Pools, positive: bool = False):
        super().__init__(positive)
        self.pools = pools

    def value(self, Z: torch.Tensor, alpha: float) -> torch.Tensor:
        """:math:`\\alpha\\sum_i v_i(z)`, the pooled values' sum (:meth:`Pools.pool`)."""
        return alpha * self.pools.pool(Z).sum(-1)

    def solution_value(self, res: SolveResult, alpha: float) -> torch.Tensor:
        """The latent norm of the lifted solution: the group lasso of ``res.latent``."""
        return self._latent(res.latent.device).value(res.latent, alpha)

    def _latent(self, device) -> GroupL1:
        return GroupL1(self.pools.latent_groups(device), self.positive)

    def lift(self, D: torch.Tensor, z0: torch.Tensor | None) -> tuple[torch.Tensor, GroupL1, torch.Tensor | None]:
        """The lifted dictionary :math:`AD`, the group lasso on the pools' copies, ``z0`` split evenly."""
        u0 = None if z0 is None else self.pools.split(z0.to(D))
        return self.pools.lift_matrix(D) @ D, self._latent(D.device), u0

    def unlift(self, res: SolveResult) -> SolveResult:
        """Codes :math:`z = uA`; ``latent`` keeps :math:`u` (its group norms are the penalty's terms)."""
        return res._replace(code=res.code @ self.pools.lift_matrix(res.code), latent=res.code)


def make_penalty(
    *, positive: bool = False, groups: torch.Tensor | None = None, pools: Pools | None = None
) -> Penalty:
    """The penalty of a code structure, with the sign constraint ``positive``.

    :class:`L1` by default, :class:`GroupL1` for ``groups`` (a group index per unit) or for ``pools`` that
    partition the units, :class:`LatentGroupL1` for overlapping ``pools``.

    Examples
    --------
    >>> type(make_penalty(groups=torch.tensor([0, 0, 1]))).__name__
    'GroupL1'
    """
    if groups is not None and pools is not None:
        raise ValueError("Give either groups or pools, not both.")
    if pools is not None and not pools.is_partition:
        return LatentGroupL1(pools, positive)
    if pools is not None:
        groups = pools.groups()
    if groups is not None:
        where = groups.device if isinstance(groups, torch.Tensor) else "cpu"
        return GroupL1(torch.as_tensor(groups, dtype=torch.long, device=where), positive)
    return L1(positive)
