r"""Greedy and one-step sparse codes: batch OMP (Rubinstein, Zibulevsky & Elad 2008) and thresholding.

Batch OMP works on the Gram matrix :math:`G = DD^T` and the correlations :math:`c^0 = xD^T` only. With the
selected atoms :math:`I` and the Cholesky factor :math:`L` of :math:`G_{II}`, it keeps
:math:`B = G_{\cdot I} L^{-T}` and :math:`y = L^{-1} c^0_I`, so that the correlations of the residual are
:math:`r = c^0 - By`. Each step picks :math:`j = \arg\max |r|`; row :math:`j` of :math:`B` is
:math:`w = L^{-1} G_{Ij}`, the new row of the factor (diagonal :math:`\sqrt{G_{jj} - w^Tw}`), so that bordering
it is a gather, and :math:`B` gains the column :math:`b = (G_{\cdot j} - Bw)/L_{tt}`, :math:`r` the update
:math:`-y_t b`: :math:`O(tm)` per step and no triangular solve, the codes :math:`L^T\gamma_I = y` solved once
at the end. A sample stops early, as scikit-learn's ``orthogonal_mp_gram`` does, when its best atom is already
selected or its correlation is negligible, or when the new atom depends linearly on the selected ones. On the
CPU each sample runs in compiled code (``sparsecode/kernels/omp.cpp``, which also forms the residual from
the chosen atoms); elsewhere the chunk steps together in torch.
"""

from __future__ import annotations

import torch

from .._extension import compiled_kernels
from ..objectives import relative_residual
from ..prox import shrink
from ._common import SolveResult, check_problem, default_chunk_size, in_chunks, zero_result

__all__ = ["omp", "threshold", "least_squares"]


def _omp_chunk(C0: torch.Tensor, G: torch.Tensor, k: int):
    """Batch OMP on the correlations ``C0`` (n, m) for ``k`` steps at most; returns (codes, steps).

    The steps of the compiled kernel, every sample of the chunk at once: ``B`` (here ``L^{-1} G_{I:}``, a row
    a step) and ``r = c0 - y B`` grow by one rank a step; a sample that stops keeps identity rows in ``L``
    and zeros in ``y`` and ``B``, so that the final solve ``L^T gamma = y`` gives it zeros past its last step.
    """
    n, m = C0.shape
    eps = torch.finfo(C0.dtype).eps
    rows = torch.arange(n, device=C0.device)
    idx = torch.zeros((n, k), dtype=torch.long, device=C0.device)
    chosen = torch.zeros((n, m), dtype=torch.bool, device=C0.device)
    L = C0.new_zeros((n, k, k))
    B = C0.new_zeros((n, k - 1, m))
    y = C0.new_zeros((n, k))
    running = torch.ones(n, dtype=torch.bool, device=C0.device)
    r = C0
    steps = 0
    for t in range(k):
        best, j = r.abs().max(1)
        w = B[rows, :t, j]
        schur = G[j, j] - (w * w).sum(1)
        running &= ~chosen[rows, j] & (best * best >= eps) & (schur > eps)
        if not bool(running.any()):
            break
        steps = t + 1
        diag = torch.where(running, schur, 1.0).sqrt()
        yt = torch.where(running, r[rows, j] / diag, 0.0)
        L[:, t, :t] = torch.where(running.unsqueeze(1), w, 0.0)
        L[:, t, t] = diag
        y[:, t] = yt
        idx[:, t] = torch.where(running, j, 0)
        chosen[rows, j] |= running
        if t + 1 < k:
            b = torch.baddbmm(G[j].unsqueeze(1), w.unsqueeze(1), B[:, :t], alpha=-1).squeeze(1)
            B[:, t] = b * torch.where(running, 1 / diag, 0.0).unsqueeze(1)  # zeros once stopped
            r = torch.addcmul(r, yt.unsqueeze(1), B[:, t], value=-1)
    gamma = torch.linalg.solve_triangular(L[:, :steps, :steps].mT, y[:, :steps].unsqueeze(2), upper=True)
    return C0.new_zeros((n, m)).scatter_add_(1, idx[:, :steps], gamma.squeeze(2)), steps


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
        Samples per chunk (off the compiled CPU kernel, memory grows with
        ``chunk_size * n_nonzero_coefs * n_components``).

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
    D = D.contiguous()
    G = D @ D.T
    k = int(n_nonzero_coefs)
    compiled = compiled_kernels() if X.device.type == "cpu" else None
    # the compiled kernel holds two (chunk, m) arrays, the torch twin a (chunk, k, m) one
    chunk = chunk_size or default_chunk_size(m if compiled else k * m, X.device, min_rows=256)

    def solve(Xc):
        if compiled is None:
            code, steps = _omp_chunk(Xc @ D.T, G, k)
            return code, relative_residual(Xc, code, D), steps
        Xc = Xc.contiguous()
        code, steps, residual = compiled.batch_omp(Xc, D, Xc @ D.T, G, k)
        return code, residual, int(steps.max())

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
