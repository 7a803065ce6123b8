r"""The Lipschitz constant of the lasso's smooth part, by power iteration on the device.

For :math:`f(z) = \tfrac12\|x - zD\|^2` (rows of :math:`D` are atoms) the gradient is
:math:`(zD - x)D^T` and its Lipschitz constant is :math:`L = \lambda_{\max}(DD^T) = \|D\|_2^2`.
"""

from __future__ import annotations

import torch

__all__ = ["lipschitz_constant", "restricted_lipschitz"]


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


@torch.no_grad()
def restricted_lipschitz(absG: torch.Tensor, keep: torch.Tensor, n_iter: int = 6) -> torch.Tensor:
    r"""Upper bounds of :math:`\lambda_{\max}(G_{SS})`, one per row of ``keep`` (the atoms :math:`S` kept).

    Collatz-Wielandt: for the non-negative matrix :math:`|G|_{SS}` and any positive vector :math:`v`,
    :math:`\lambda_{\max}(G_{SS}) \le \lambda_{\max}(|G|_{SS}) \le \max_{j \in S} (|G|_{SS} v)_j / v_j`.
    Starting from :math:`v = 1` (Gershgorin's bound) each power iteration tightens it; the smallest bound
    seen is returned, raised by a relative ``1e-3`` against rounding. The bound is tight when the atoms
    of :math:`S` correlate with one sign (coherent dictionaries, where the full :math:`L` is largest).
    Rows that keep no atom get 0.

    Parameters
    ----------
    absG : torch.Tensor, shape (n_components, n_components) or (n, n_components, n_components)
        :math:`|DD^T|` entrywise, or one such block per row of ``keep``.
    keep : torch.BoolTensor, shape (n, n_components)
    n_iter : int
        Power iterations.

    Examples
    --------
    >>> G = torch.tensor([[1.0, 0.9, 0.0], [0.9, 1.0, 0.0], [0.0, 0.0, 1.0]])
    >>> restricted_lipschitz(G, torch.tensor([[True, True, False], [False, True, True]]))
    tensor([1.9019, 1.0010])
    """
    M = keep.to(absG.dtype)
    v = M
    best = absG.new_full((keep.shape[0],), float("inf"))
    for _ in range(n_iter):
        w = torch.matmul(v.unsqueeze(-2), absG).squeeze(-2).mul_(M)
        best = torch.minimum(best, torch.where(keep, w / v.clamp(min=torch.finfo(v.dtype).tiny), 0).amax(1))
        # any positive v gives a bound: keep every kept entry away from zero
        v = (w / w.amax(1, keepdim=True).clamp(min=torch.finfo(v.dtype).tiny)).clamp_(min=1e-3).mul_(M)
    return best * (1 + 1e-3)
