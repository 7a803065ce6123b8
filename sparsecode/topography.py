r"""Pools of code units: disjoint groups and the topographic map of Kavukcuoglu et al. (CVPR 2009).

A pool :math:`P_i` is a set of code units with fixed weights :math:`w_{ij} > 0`; its value is

.. math::
    v_i(z) = \Big(\sum_{j \in P_i} w_{ij} z_j^2\Big)^{1/2}, \qquad \Omega(z) = \alpha \sum_i v_i(z).

*Disjoint groups* (every unit in one pool, weight 1) give the group lasso, whose proximal map is the
block soft threshold :func:`sparsecode.prox.group_soft_threshold`. On the *topographic map* the
``m = rows * cols`` units sit on a 2-D torus and there is one pool per unit: the ``ph x pw`` window
around it, wrapping around the edges, with Gaussian weights :math:`w_{ij} = \exp(-d_{ij}^2 / 2\sigma^2)`
(:math:`d_{ij}` the distance to the window centre). The pools overlap, so the prox of :math:`\Omega` has
no closed form. The *latent group lasso* (Jacob, Obozinski & Vert 2009) restores one: every pool gets
its own copy of its units,

.. math::
    z = \sum_i \bar u_i, \qquad \Omega_{lat}(z) = \alpha \min_{z = \sum_i \bar u_i} \sum_i v_i(\bar u_i),

and with :math:`u_{ij} = \sqrt{w_{ij}}\,\bar u_{ij}` the penalty is the plain group lasso on the disjoint
blocks :math:`u_i`. Written as :math:`z = uA` with :math:`A_{(i,j),j} = w_{ij}^{-1/2}`, the lasso
:math:`\tfrac12\|x - zD\|^2 + \Omega_{lat}(z)` becomes a group lasso in :math:`u` with the lifted
dictionary :math:`AD`, solved by FISTA and the block soft threshold
(:class:`sparsecode.penalties.LatentGroupL1`). It is the tightest convex penalty that selects unions of
pools. The invariant features of the paper are the pooled values :math:`v_i(z)` of the final code
(:meth:`Pools.pool`).
"""

from __future__ import annotations

import math
from numbers import Integral

import torch

__all__ = ["Pools"]


class Pools:
    """Pools of code units given by weights: ``weights[i, j] > 0`` puts unit ``j`` in pool ``i``.

    Built by :meth:`disjoint`, :meth:`torus` or :meth:`from_topography`; the tensors stay on the CPU and
    move to the codes' device when used.

    Parameters
    ----------
    weights : torch.Tensor, shape (n_pools, n_components)
        Non-negative; zero outside a pool. Every pool needs at least one unit.

    Examples
    --------
    >>> pools = Pools.disjoint(4, 2)
    >>> pools.pool(torch.tensor([[3.0, 4.0, 0.0, 1.0]]))
    tensor([[5., 1.]])
    """

    def __init__(self, weights: torch.Tensor):
        weights = torch.as_tensor(weights, dtype=torch.float64, device="cpu")
        if weights.ndim != 2:
            raise ValueError(f"weights must be (n_pools, n_components), got shape {tuple(weights.shape)}.")
        if bool((weights < 0).any()) or not bool(torch.isfinite(weights).all()):
            raise ValueError("pool weights must be finite and non-negative.")
        if bool((weights.sum(1) == 0).any()):
            raise ValueError("every pool needs at least one unit of positive weight.")
        self.weights = weights
        self._pool, self._unit = weights.nonzero(as_tuple=True)  # the (pool, unit) pairs, by pool

    @classmethod
    def disjoint(cls, n_components: int, group_size: int) -> Pools:
        """Consecutive groups of ``group_size`` units, weight 1 (the last group may be smaller)."""
        if group_size < 1 or n_components < 1:
            raise ValueError(f"group_size={group_size} and n_components={n_components} must be positive.")
        group = torch.arange(n_components, device="cpu") // group_size
        return cls(torch.nn.functional.one_hot(group).T.double())

    @classmethod
    def torus(cls, shape: tuple[int, int], pool_size, sigma: float | None = None) -> Pools:
        """One Gaussian-weighted window per unit of a ``rows x cols`` map that wraps around.

        Parameters
        ----------
        shape : (rows, cols)
            Unit ``j`` sits at ``(j // cols, j % cols)``; pool ``i`` is the window at unit ``i``.
        pool_size : int or (int, int)
            Window height and width, at most the map's.
        sigma : float, optional
            Width of the Gaussian (in units); default half the larger window side; ``inf`` gives weight 1.
        """
        rows, cols = (int(s) for s in shape)
        ph, pw = (pool_size, pool_size) if isinstance(pool_size, Integral) else (int(p) for p in pool_size)
        if not (1 <= ph <= rows and 1 <= pw <= cols):
            raise ValueError(f"pool_size {(ph, pw)} must be between 1 and the map shape {(rows, cols)}.")
        sigma = 0.5 * max(ph, pw) if sigma is None else float(sigma)
        if not sigma > 0:
            raise ValueError(f"sigma must be positive, got {sigma}.")
        host = dict(device="cpu")  # the pools live on the host; penalties move what they need to the codes' device
        oi, oj = torch.meshgrid(torch.arange(ph, **host) - (ph - 1) // 2, torch.arange(pw, **host) - (pw - 1) // 2,
                                indexing="ij")
        oi, oj = oi.reshape(-1), oj.reshape(-1)
        d2 = (oi - oi.double().mean()) ** 2 + (oj - oj.double().mean()) ** 2
        w = torch.exp(-d2 / (2 * sigma**2)) if math.isfinite(sigma) else torch.ones_like(d2)
        r, c = torch.meshgrid(torch.arange(rows, **host), torch.arange(cols, **host), indexing="ij")
        units = ((r.reshape(-1, 1) + oi) % rows) * cols + (c.reshape(-1, 1) + oj) % cols
        weights = torch.zeros(rows * cols, rows * cols, dtype=torch.float64, **host)
        weights.scatter_(1, units, (w / w.max()).expand(units.shape))
        return cls(weights)

    @classmethod
    def from_topography(cls, topography, pool_size, sigma: float | None = None,
                        n_components: int | None = None) -> Pools:
        """The torus pools of an estimator's ``topography=(rows, cols)`` and ``pool_size``.

        Parameters
        ----------
        topography : (rows, cols)
        pool_size : int or (int, int)
        sigma : float, optional
            See :meth:`torus`.
        n_components : int, optional
            The number of units expected; ``rows * cols`` must equal it.
        """
        if len(topography) != 2:
            raise ValueError(f"topography must be (rows, cols), got {topography!r}.")
        rows, cols = (int(s) for s in topography)
        if n_components is not None and n_components != rows * cols:
            raise ValueError(f"n_components={n_components} does not match topography {(rows, cols)} "
                             f"({rows * cols} units); make rows * cols equal n_components.")
        pool = pool_size if isinstance(pool_size, Integral) else tuple(pool_size)
        return cls.torus((rows, cols), pool, sigma)

    @property
    def n_pools(self) -> int:
        return self.weights.shape[0]

    @property
    def n_components(self) -> int:
        return self.weights.shape[1]

    @property
    def is_partition(self) -> bool:
        """Every unit in exactly one pool, all weights 1: the group lasso applies directly."""
        counts = torch.bincount(self._unit, minlength=self.n_components)
        return bool((counts == 1).all()) and bool((self.weights[self._pool, self._unit] == 1).all())

    def groups(self, device=None) -> torch.Tensor:
        """Group index of every unit, shape (n_components,); only for a partition."""
        if not self.is_partition:
            raise ValueError("groups() needs disjoint pools of weight 1; use LatentGroupL1 otherwise.")
        return self.weights.argmax(0).to(device)

    def pool(self, Z: torch.Tensor) -> torch.Tensor:
        """Pooled values :math:`v_i(z)`, shape (n_samples, n_pools)."""
        return ((Z * Z) @ self.weights.T.to(Z)).sqrt()

    def lift_matrix(self, like: torch.Tensor) -> torch.Tensor:
        """:math:`A`, shape (n_pairs, n_components), with :math:`z = uA` (a row per pool member)."""
        w = self.weights[self._pool, self._unit]
        A = w.new_zeros((w.numel(), self.n_components))  # on the host, with the weights
        A[torch.arange(w.numel(), device=w.device), self._unit] = w.rsqrt()
        return A.to(like)

    def latent_groups(self, device=None) -> torch.Tensor:
        """Pool of every lifted variable, shape (n_pairs,)."""
        return self._pool.to(device)

    def split(self, Z: torch.Tensor) -> torch.Tensor:
        """A lifted point :math:`u` with :math:`uA = z`: each unit shared evenly by its pools."""
        unit = self._unit.to(Z.device)
        share = self.weights[self._pool, self._unit].sqrt() / torch.bincount(self._unit)[self._unit]
        return Z[:, unit] * share.to(Z)
