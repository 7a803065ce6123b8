r"""The Lipschitz constant of the lasso's smooth part, by power iteration on the device.

For :math:`f(z) = \tfrac12\|x - zD\|^2` (rows of :math:`D` are atoms) the gradient is
:math:`(zD - x)D^T` and its Lipschitz constant is :math:`L = \lambda_{\max}(DD^T) = \|D\|_2^2`.
"""

from __future__ import annotations

import torch

__all__ = ["lipschitz_constant"]


@torch.no_grad()
def lipschitz_constant(D: torch.Tensor, max_iter: int = 200, tol: float = 1e-7) -> float:
    """Largest eigenvalue of ``D @ D.T`` by the power method.

    Iterates on the smaller of ``D D^T`` and ``D^T D`` (same non-zero spectrum) from a fixed start, so
    the result is deterministic. A relative safety margin of ``10*tol`` keeps ``1/L`` a valid step.

    Parameters
    ----------
    D : torch.Tensor, shape (n_components, n_features)
    max_iter : int
    tol : float
        Relative change of the estimate at which to stop.

    Examples
    --------
    >>> round(lipschitz_constant(torch.diag(torch.tensor([3.0, 1.0]))), 3)
    9.0
    """
    G = D @ D.T if D.shape[0] <= D.shape[1] else D.T @ D
    if G.numel() == 0:
        return 0.0
    # A start that is not orthogonal to the top eigenvector with probability one, without a global seed.
    v = torch.linspace(1.0, 2.0, G.shape[0], dtype=G.dtype, device=G.device)
    v = v / torch.linalg.vector_norm(v)
    lam = 0.0
    for _ in range(max_iter):
        w = G @ v
        new = float(torch.dot(v, w))
        norm = torch.linalg.vector_norm(w)
        if float(norm) == 0.0:
            return 0.0
        v = w / norm
        if abs(new - lam) <= tol * abs(new):
            lam = new
            break
        lam = new
    return lam * (1 + 10 * tol)
