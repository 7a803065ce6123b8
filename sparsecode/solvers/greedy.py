r"""Greedy and one-step sparse codes: batch OMP (Rubinstein, Zibulevsky & Elad 2008) and thresholding.

Batch OMP works on the Gram matrix :math:`G = DD^T` and the correlations :math:`c^0 = xD^T` only. With the
selected atoms :math:`I` and the Cholesky factor :math:`L` of :math:`G_{II}`, each step picks
:math:`j = \arg\max |c^0 - \gamma_I G_{I\cdot}|`, borders the factor with :math:`w = L^{-1} G_{Ij}` and
:math:`\sqrt{G_{jj} - w^Tw}`, and solves :math:`LL^T\gamma_I = c^0_I`: :math:`O(k^2)` per step for the
factor, :math:`O(km)` for the correlations, with every sample of a chunk stepping together. A sample stops
early, as scikit-learn's ``orthogonal_mp_gram`` does, when its best atom is already selected or its
correlation is negligible, or when the new atom depends linearly on the selected ones. On the CPU each
sample runs in compiled code (``sparsecode/kernels/omp.cpp``); elsewhere the batch steps together in torch.
"""

from __future__ import annotations

import torch

from .._extension import compiled_kernels
from ..objectives import relative_residual
from ..prox import shrink
from ._common import SolveResult, check_problem, default_chunk_size, in_chunks, zero_result

__all__ = ["omp", "threshold", "least_squares"]


def _omp_chunk(C0: torch.Tensor, G: torch.Tensor, k: int):
    """Batch OMP on the correlations ``C0`` (n, m) for ``k`` steps at most; returns (codes, steps)."""
    n, m = C0.shape
    eps = torch.finfo(C0.dtype).eps
    rows = torch.arange(n, device=C0.device)
    idx = torch.zeros((n, k), dtype=torch.long, device=C0.device)
    chosen = torch.zeros((n, m), dtype=torch.bool, device=C0.device)
    L = torch.eye(k, dtype=C0.dtype, device=C0.device).expand(n, k, k).clone()
    gamma = C0.new_zeros((n, k))
    running = torch.ones(n, dtype=torch.bool, device=C0.device)
    residual = C0
    steps = 0
    for t in range(k):
        best, j = residual.abs().max(1)
        running &= ~chosen[rows, j] & (best * best >= eps)
        if t:
            w = torch.linalg.solve_triangular(L[:, :t, :t], G[idx[:, :t], j.unsqueeze(1)].unsqueeze(2),
                                              upper=False).squeeze(2)
            schur = G[j, j] - (w * w).sum(1)
            running &= schur > eps
            L[:, t, :t] = torch.where(running.unsqueeze(1), w, 0.0)
        else:
            schur = G[j, j]
        if not bool(running.any()):
            break
        steps = t + 1
        L[:, t, t] = torch.where(running, schur.clamp(min=eps).sqrt(), 1.0)
        idx[:, t] = torch.where(running, j, 0)
        chosen[rows, j] |= running
        new = torch.cholesky_solve(C0.gather(1, idx[:, :t + 1]).unsqueeze(2), L[:, :t + 1, :t + 1],
                                   upper=False).squeeze(2)
        gamma[:, :t + 1] = torch.where(running.unsqueeze(1), new, gamma[:, :t + 1])
        residual = C0 - torch.bmm(gamma[:, :t + 1].unsqueeze(1), G[idx[:, :t + 1]]).squeeze(1)
    return C0.new_zeros((n, m)).scatter_add_(1, idx, gamma), steps


def omp(X: torch.Tensor, D: torch.Tensor, n_nonzero_coefs: int, *, chunk_size: int | None = None) -> SolveResult:
    """Orthogonal matching pursuit with ``n_nonzero_coefs`` atoms per sample (batch OMP), batched.

    The codes of scikit-learn's ``orthogonal_mp_gram(G, XD^T, n_nonzero_coefs=k)``
    (``sparse_encode(algorithm="omp")``): same selection rule and the same early stops.

    Parameters
    ----------
    X : torch.Tensor, shape (n_samples, n_features)
    D : torch.Tensor, shape (n_components, n_features)
        Dictionary, rows are atoms (OMP selects by plain correlation: give unit-norm atoms).
    n_nonzero_coefs : int
        Atoms per sample at most, between 1 and ``n_components``.
    chunk_size : int, optional
        Samples per chunk (memory grows with ``chunk_size * n_nonzero_coefs**2``).

    Returns
    -------
    SolveResult
        ``n_iter`` counts selection steps; ``gap`` holds the relative residual ``||x - zD||^2 / ||x||^2``.

    Examples
    --------
    >>> omp(torch.tensor([[2.0, 0.5, -3.0]]), torch.eye(3), 2).code
    tensor([[ 2.,  0., -3.]])
    """
    check_problem(X, D, 0.0, None, None)
    n, m = X.shape[0], D.shape[0]
    if not 1 <= n_nonzero_coefs <= m:
        raise ValueError(f"n_nonzero_coefs must be between 1 and n_components={m}, got {n_nonzero_coefs}.")
    if n == 0:
        return zero_result(X.new_zeros((n, m)))
    G = (D @ D.T).contiguous()
    k = int(n_nonzero_coefs)
    chunk = chunk_size or default_chunk_size(max(m, k * k), X.device, min_rows=256)
    compiled = compiled_kernels() if X.device.type == "cpu" else None

    def solve(Xc):
        if compiled is None:
            code, steps = _omp_chunk(Xc @ D.T, G, k)
        else:
            code, steps = compiled.batch_omp((Xc @ D.T).contiguous(), G, k)
            steps = int(steps.max())
        return code, relative_residual(Xc, code, D), steps

    code, residual, steps = in_chunks(solve, chunk, X)
    return SolveResult(code, steps, torch.ones(n, dtype=torch.bool, device=X.device), residual)


def threshold(X: torch.Tensor, D: torch.Tensor, alpha: float = 1.0, *, positive: bool = False) -> SolveResult:
    """Soft-thresholded correlations ``shrink(x D^T, alpha)``: scikit-learn's ``algorithm="threshold"``.

    One step, no optimisation: the lasso solution only for an orthogonal dictionary.

    Examples
    --------
    >>> threshold(torch.tensor([[2.0, 0.5, -3.0]]), torch.eye(3), 1.0).code
    tensor([[ 1.,  0., -2.]])
    """
    alpha, _ = check_problem(X, D, alpha, None, None)
    code = shrink(X @ D.T, alpha, positive)
    n = X.shape[0]
    return SolveResult(code, 1, torch.ones(n, dtype=torch.bool, device=X.device), relative_residual(X, code, D))


def least_squares(X: torch.Tensor, D: torch.Tensor) -> SolveResult:
    """The lasso at ``alpha=0``: minimum-norm least-squares codes ``X pinv(D)``, by a direct solve.

    ``gap`` is zero: the relative duality gap of :func:`~sparsecode.objectives.duality_gap` measures the
    residual itself at ``alpha=0``, not the distance to the optimum.

    Examples
    --------
    >>> least_squares(torch.tensor([[2.0, 0.5]]), 2 * torch.eye(2)).code
    tensor([[1.0000, 0.2500]])
    """
    n = X.shape[0]
    code = X @ torch.linalg.pinv(D)
    return SolveResult(code, 1, torch.ones(n, dtype=torch.bool, device=X.device), X.new_zeros(n))
