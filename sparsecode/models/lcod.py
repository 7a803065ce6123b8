r"""LCoD: learned coordinate descent (Gregor & LeCun, ICML 2010, Alg. 5).

Rows are atoms and codes are rows. :math:`T` steps of the encoder are

.. math::
    B = X W^T,\ Z = 0; \quad \text{repeat } T \text{ times: }
    \bar Z = h_\theta(B)/g,\ k = \arg\max_j |Z_j - \bar Z_j|,\
    B \leftarrow B + (\bar Z_k - Z_k)\, S_{k,:},\ Z_k \leftarrow \bar Z_k; \qquad
    \text{output } h_\theta(B)/g,

one greedy coordinate step each (:func:`sparsecode.solvers.cd.cd_step`), with the learned
:math:`W \in \mathbb R^{m\times n}`, :math:`S \in \mathbb R^{m\times m}`, :math:`\theta \in \mathbb R^m`
and the fixed squared atom norms :math:`g`. The chosen coordinate :math:`k` is computed without gradient
(the paper's Alg. 6 keeps it constant in the backward pass). At the CoD values :math:`W = D`,
:math:`S = \operatorname{diag}(DD^T) - DD^T`, :math:`\theta = \alpha` the encoder is exactly :math:`T`
steps of coordinate descent followed by the paper's final :math:`Z = h_\alpha(B)`. A step costs
:math:`O(m)` against :math:`O(m^2)` for a LISTA step.
"""

from __future__ import annotations

import torch
from torch import nn

from ..prox import shrink
from ..solvers.cd import cd_step

__all__ = ["LCoD"]


class LCoD(nn.Module):
    """Learned coordinate descent encoder, initialised at coordinate descent for ``dictionary``.

    Parameters
    ----------
    dictionary : torch.Tensor, shape (n_components, n_features)
        Rows are atoms; sets the initial values, the device and the dtype, and is kept as a buffer.
    alpha : float, default=1.0
    n_layers : int, default=10
        Coordinate steps ``T``.
    positive : bool, default=False

    Examples
    --------
    One coordinate step on an orthonormal dictionary already gives the lasso code of the largest entry:

    >>> enc = LCoD(torch.eye(3), alpha=0.5, n_layers=1, positive=True)
    >>> enc(torch.tensor([[2.0, -0.2, 1.0]])).detach()
    tensor([[1.5000, 0.0000, 0.5000]])
    """

    def __init__(self, dictionary: torch.Tensor, alpha: float = 1.0, n_layers: int = 10, *,
                 positive: bool = False):
        super().__init__()
        if n_layers < 0:
            raise ValueError(f"n_layers must be >= 0, got {n_layers}.")
        D = dictionary.detach()
        G = D @ D.T
        norms = torch.diagonal(G).clone()
        self.n_layers, self.alpha, self.positive = int(n_layers), float(alpha), bool(positive)
        self.register_buffer("dictionary", D.clone())
        self.register_buffer("diag", torch.where(norms > 0, norms, torch.ones_like(norms)))
        self.weight = nn.Parameter(D.clone())
        self.inhibition = nn.Parameter(torch.diag(norms) - G)
        self.threshold = nn.Parameter(D.new_full((D.shape[0],), self.alpha))

    def forward_state(self, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, Z)`` after the ``T`` coordinate steps (``Z`` holds only the updated coordinates)."""
        B = X @ self.weight.T
        Z = B.new_zeros(B.shape)
        for _ in range(self.n_layers):
            B, Z = cd_step(B, Z, self.inhibition, self.diag, self.threshold, self.positive)
        return B, Z

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """Codes of ``X`` (n_samples, n_features) -> (n_samples, n_components)."""
        B, _ = self.forward_state(X)
        return shrink(B, self.threshold, self.positive) / self.diag

    @torch.no_grad()
    def project_(self) -> None:
        """Keep the thresholds non-negative (run after every optimizer step)."""
        self.threshold.clamp_(min=0)

    def extra_repr(self) -> str:
        m, n = self.dictionary.shape
        return f"n_components={m}, n_features={n}, n_layers={self.n_layers}"
