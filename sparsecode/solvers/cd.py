r"""Greedy coordinate descent for the lasso (Li & Osher 2009; Gregor & LeCun 2010, Alg. 2), batched.

With :math:`G = DD^T`, :math:`S = \operatorname{diag}(G) - G` and :math:`B = XD^T + ZS`, the exact
minimiser of coordinate :math:`j` is :math:`\bar z_j = \operatorname{prox}(B_j)/G_{jj}`. Each step, every
sample updates the one coordinate that would move most, :math:`k = \arg\max_j |z_j - \bar z_j|`, then
:math:`B \leftarrow B + S_{:,k}(\bar z_k - z_k)`. With unit-norm atoms this is exactly the paper's
:math:`S = I - D^TD` recursion, the reference for LCoD. Every step costs :math:`O(m)` per sample.
"""

from __future__ import annotations

import torch

from ..objectives import duality_gap
from ..penalties import L1
from ..prox import shrink
from ._common import SolveResult, check_problem, default_chunk_size, in_chunks, zero_result

__all__ = ["coordinate_descent", "cd_step"]


def cd_step(B: torch.Tensor, Z: torch.Tensor, S: torch.Tensor, diag: torch.Tensor, theta, positive: bool):
    """One greedy coordinate step on every row; returns the new ``(B, Z)``.

    ``theta`` is the threshold (scalar or per unit) and ``diag`` the squared atom norms.
    The chosen coordinate is picked without gradient, so LCoD can backpropagate through the update.
    """
    Zbar = shrink(B, theta, positive) / diag
    with torch.no_grad():
        k = (Zbar - Z).abs().argmax(1, keepdim=True)
    delta = torch.gather(Zbar, 1, k) - torch.gather(Z, 1, k)
    B = B + delta * S[k.squeeze(1)]
    Z = Z.scatter(1, k, torch.gather(Zbar, 1, k))
    return B, Z


def _cd_chunk(X, Z, D, S, diag, theta, alpha, penalty, total, every, tol):
    """Coordinate descent on one chunk; converged samples leave it at each check.

    Returns codes, coordinate updates, converged mask and relative gaps.
    """
    out, g = Z.clone(), duality_gap(X, Z, D, alpha, penalty)
    done = g <= tol
    active = torch.nonzero(~done).squeeze(1)
    B = X[active] @ D.T + Z[active] @ S
    Za = Z[active]
    step = 0
    while active.numel() and step < total:
        B, Za = cd_step(B, Za, S, diag, theta, penalty.positive)
        step += 1
        if step % every and step != total:
            continue
        rel = duality_gap(X[active], Za, D, alpha, penalty)
        ok = rel <= tol
        out[active], g[active], done[active] = Za, rel, ok
        keep = ~ok
        active, B, Za = active[keep], B[keep], Za[keep]
    return out, step, done, g


def coordinate_descent(X: torch.Tensor, D: torch.Tensor, alpha: float = 1.0, *, penalty: L1 | None = None,
                       z0: torch.Tensor | None = None, max_iter: int = 1000, tol: float = 1e-5,
                       check_every: int | None = None, chunk_size: int | None = None) -> SolveResult:
    """Greedy coordinate descent (CoD) for ``min_z 0.5*||x - z D||^2 + alpha*Omega(z)``, ``Omega`` an L1 penalty.

    Parameters are those of :func:`sparsecode.solvers.fista`; ``max_iter`` counts sweeps of
    ``n_components`` coordinate updates each, and the duality gap is checked every ``check_every``
    coordinate updates (``n_components`` by default). ``n_iter`` in the result counts sweeps.

    Examples
    --------
    Non-negative codes in an orthonormal dictionary are the positive parts shrunk by ``alpha``:

    >>> X = torch.tensor([[2.0, 0.5, -3.0]])
    >>> coordinate_descent(X, torch.eye(3), alpha=1.0, penalty=L1(positive=True)).code
    tensor([[1., 0., 0.]])
    """
    alpha, penalty = check_problem(X, D, alpha, penalty, z0, kinds=(L1,))
    penalty = penalty.to(X)
    n, m = X.shape[0], D.shape[0]
    Z0 = X.new_zeros((n, m)) if z0 is None else z0.to(X).clone()
    if n == 0:
        return zero_result(Z0)
    G = D @ D.T
    diag = torch.diagonal(G).clone()
    dead = diag <= 0
    diag = torch.where(dead, torch.ones_like(diag), diag)
    S = torch.diagonal(G).diag() - G
    theta = penalty.scaled(alpha)
    if bool(dead.any()):  # zero atoms never get a non-zero code
        theta = torch.where(dead, torch.full_like(diag, float("inf")), torch.as_tensor(theta).to(diag))
    total = max_iter * m
    chunk = chunk_size or default_chunk_size(max(m, D.shape[1]), X.device, min_rows=256)

    def solve(Xc, Zc):
        return _cd_chunk(Xc, Zc, D, S, diag, theta, alpha, penalty, total, check_every or m, tol)

    code, steps, converged, gap = in_chunks(solve, chunk, X, Z0)
    return SolveResult(code, -(-steps // m), converged, gap)
