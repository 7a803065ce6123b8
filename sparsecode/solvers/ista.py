r"""ISTA and FISTA for batched lasso problems (Beck & Teboulle 2009).

For every sample (row of :math:`X`), with :math:`L = \|DD^T\|_2`:

.. math::
    z^{k+1} = \operatorname{prox}_{\Omega/L}\big(y^k - \tfrac1L (y^k D - x) D^T\big), \qquad
    t_{k+1} = \tfrac12\big(1 + \sqrt{1 + 4t_k^2}\big), \qquad
    y^{k+1} = z^{k+1} + \tfrac{t_k - 1}{t_{k+1}} (z^{k+1} - z^k).

ISTA is the same with :math:`y^k = z^k`. FISTA restarts a sample's momentum (``t = 1``) when the step
and the momentum disagree, :math:`(y^k - z^{k+1})\cdot(z^{k+1} - z^k) > 0` (O'Donoghue & Candès 2015).

Each sample stops when its duality gap falls below ``tol * 0.5*||x||^2`` (checked every
``check_every`` iterations); converged samples leave the batch, and the batch is processed in chunks so
memory stays bounded whatever the number of samples. Optionally (``polish=True``) each check also solves
the problem restricted to the current support and sign pattern exactly, which ends the iterations as soon
as the support is found.
"""

from __future__ import annotations

import torch

from ..penalties import L1, make_penalty
from ._common import SolveResult, check_inputs, default_chunk_size, relative_gap
from .lipschitz import lipschitz_constant
from .proxgrad import prox_grad_loop

__all__ = ["ista", "fista"]


def _polish(X, D, XDt, G, Z, penalty, rows):
    """Exact lasso solution on the current support and signs of the samples ``rows`` (L1 only).

    Solves :math:`G_{SS} z_S = (XD^T)_S - \\alpha s_S` by batched Cholesky, on supports padded to the
    largest one with identity rows, then refines with one Newton step whose right-hand side comes from
    the explicit residual :math:`(x - zD)D^T`: in float32 the rounded ``G`` and ``XD^T`` alone leave
    errors (amplified by coherent atoms) that keep the duality gap above ``tol``. A sample keeps its code
    where the factorisation fails or the solution flips a sign; the caller keeps the candidate only where
    it lowers the duality gap.
    """
    Zr = Z[rows]
    support = Zr != 0
    k = int(support.sum(1).max())
    n, m = Zr.shape
    order = torch.argsort(support.to(torch.int8), dim=1, descending=True, stable=True)[:, :k]
    valid = torch.gather(support, 1, order)
    both = valid.unsqueeze(2) & valid.unsqueeze(1)
    eye = torch.eye(k, dtype=Z.dtype, device=Z.device)
    Gs = torch.where(both, G[order.unsqueeze(2), order.unsqueeze(1)], eye)
    signs = torch.sign(torch.gather(Zr, 1, order))
    alpha = penalty.alpha
    a = torch.gather(alpha.expand(n, m), 1, order) if isinstance(alpha, torch.Tensor) else alpha
    rhs = torch.where(valid, torch.gather(XDt[rows], 1, order) - a * signs, torch.zeros_like(signs))
    chol, info = torch.linalg.cholesky_ex(Gs)
    sol = torch.cholesky_solve(rhs.unsqueeze(-1), chol).squeeze(-1)
    sol = torch.where(valid, sol, torch.zeros_like(sol))
    # One Newton step on the explicit residual: its correlations are what the duality gap measures.
    Xr = X[rows]
    C = torch.addmm(Xr, torch.zeros_like(Zr).scatter_(1, order, sol), D, alpha=-1) @ D.T
    res = torch.where(valid, torch.gather(C, 1, order) - a * signs, torch.zeros_like(signs))
    sol = sol + torch.cholesky_solve(res.unsqueeze(-1), chol).squeeze(-1)
    ok = (info == 0) & ((sol * signs > 0) | ~valid).all(1) & torch.isfinite(sol).all(1)
    out = torch.zeros_like(Zr).scatter_(1, order, torch.where(valid, sol, torch.zeros_like(sol)))
    return torch.where(ok.unsqueeze(1), out, Zr)


def _prox_grad_chunk(X, D, G, penalty, Z, step, max_iter, tol, momentum, restart, check_every, polish):
    """Run ISTA/FISTA on one chunk; returns codes, iterations, converged mask and relative gaps.

    The gradient step is one fused product: :math:`y(I - G/L) + XD^T/L` in Gram form, or
    :math:`y - \tfrac1L (yD - x)D^T` in residual form (cheaper when ``n_components > 2*n_features``).
    Host synchronisations happen only at the checks.
    """
    XDt = X @ D.T
    Dt = D.T
    if G is not None:
        A = torch.eye(G.shape[0], dtype=G.dtype, device=G.device).sub_(G, alpha=step)

    def gradient_step(Y, batch):
        Xa, _, Ba, _ = batch
        if G is not None:
            V = torch.addmm(Ba, Y, A)
        else:
            V = torch.addmm(Y, torch.addmm(Xa, Y, D, beta=-1), Dt, alpha=-step)
        return penalty.prox(V, step)

    def gap(Za, batch):
        return relative_gap(batch[0], Za, D, penalty)

    max_support = min(D.shape)

    def polish_stable_supports(Za, rel, batch):
        """The exact solution on each support whose signs held since the last check, where it is better."""
        Xa, XDta, Ba, signs = batch
        new_signs = torch.sign(Za).to(torch.int8)
        size = (new_signs != 0).sum(1)
        stable = torch.nonzero((new_signs == signs).all(1) & (size > 0) & (size <= max_support)).squeeze(1)
        accepted = stable[:0]
        if stable.numel():
            cand = _polish(Xa, D, XDta, G if G is not None else D @ Dt, Za, penalty, stable)
            rel_c = relative_gap(Xa[stable], cand, D, penalty)
            better = rel_c < rel[stable]
            accepted = stable[better]
            Za = Za.index_put((accepted,), cand[better])
            rel = rel.index_put((accepted,), rel_c[better])
        return Za, rel, accepted, [Xa, XDta, Ba, new_signs]

    batch = [X, XDt, XDt * step if G is not None else None, torch.sign(Z).to(torch.int8)]
    return prox_grad_loop(Z, batch, gradient_step, gap, max_iter=max_iter, tol=tol, momentum=momentum,
                          restart=restart, check_every=check_every,
                          refine=polish_stable_supports if polish and tol > 0 else None)


def _solve(X, D, alpha, *, z0, max_iter, tol, positive, L, momentum, restart, check_every,
           chunk_size, polish, groups=None):
    check_inputs(X, D, z0)
    penalty = make_penalty(alpha, positive, groups).to(X)
    if L is None:
        L = lipschitz_constant(D)
    L = float(L)
    n, m = X.shape[0], D.shape[0]
    Z0 = X.new_zeros((n, m)) if z0 is None else z0.to(X)
    if L <= 0:  # all-zero dictionary: the zero code is optimal
        return SolveResult(X.new_zeros((n, m)), 0, torch.ones(n, dtype=torch.bool, device=X.device),
                           X.new_zeros(n))
    step = 1.0 / L
    G = D @ D.T if m < 2 * D.shape[1] else None
    polish = polish and isinstance(penalty, L1)
    chunk = chunk_size or default_chunk_size(m, D.shape[1], X.device)
    codes, conv, gaps, n_iter = [], [], [], 0
    for s in range(0, n, chunk):
        sl = slice(s, min(s + chunk, n))
        z, it, c, g = _prox_grad_chunk(X[sl], D, G, penalty, Z0[sl], step, max_iter, tol, momentum,
                                       restart, check_every, polish)
        codes.append(z)
        conv.append(c)
        gaps.append(g)
        n_iter = max(n_iter, it)
    if n == 0:
        return SolveResult(Z0, 0, torch.ones(0, dtype=torch.bool, device=X.device), X.new_zeros(0))
    return SolveResult(torch.cat(codes), n_iter, torch.cat(conv), torch.cat(gaps))


def fista(
    X: torch.Tensor,
    D: torch.Tensor,
    alpha=1.0,
    *,
    z0: torch.Tensor | None = None,
    max_iter: int = 1000,
    tol: float = 1e-5,
    positive: bool = False,
    L: float | None = None,
    restart: bool = True,
    check_every: int = 10,
    chunk_size: int | None = None,
    polish: bool = False,
    groups: torch.Tensor | None = None,
) -> SolveResult:
    """FISTA for ``min_z 0.5*||x - z D||^2 + alpha*||z||_1``, batched over the rows of ``X``.

    Parameters
    ----------
    X : torch.Tensor, shape (n_samples, n_features)
    D : torch.Tensor, shape (n_components, n_features)
        Dictionary, rows are atoms.
    alpha : float, torch.Tensor of per-unit weights, or a penalty from :mod:`sparsecode.penalties`
    z0 : torch.Tensor, shape (n_samples, n_components), optional
        Warm start.
    max_iter : int
        Iterations at most; 0 returns ``z0``.
    tol : float
        Stop a sample when its duality gap is below ``tol * 0.5*||x||^2``; ``tol=0`` runs ``max_iter``.
    positive : bool
        Constrain the codes to be non-negative.
    L : float, optional
        Lipschitz constant; computed by :func:`lipschitz_constant` when omitted.
    restart : bool
        Adaptive momentum restart.
    check_every : int
        Iterations between duality-gap checks.
    chunk_size : int, optional
        Samples per chunk (bounded memory); a size near 256 MB of float32 work arrays by default.
    polish : bool
        At every check, also try the exact solution on the current support (L1 only).
    groups : torch.LongTensor, optional
        Group index per unit: the group lasso ``alpha * sum_g ||z_g||_2``.

    Returns
    -------
    SolveResult

    Examples
    --------
    >>> D = torch.eye(3); X = torch.tensor([[2.0, 0.5, -3.0]])
    >>> fista(X, D, alpha=1.0).code
    tensor([[ 1.,  0., -2.]])
    """
    return _solve(X, D, alpha, z0=z0, max_iter=max_iter, tol=tol, positive=positive, L=L,
                  momentum=True, restart=restart, check_every=check_every, chunk_size=chunk_size,
                  polish=polish, groups=groups)


def ista(
    X: torch.Tensor,
    D: torch.Tensor,
    alpha=1.0,
    *,
    z0: torch.Tensor | None = None,
    max_iter: int = 1000,
    tol: float = 1e-5,
    positive: bool = False,
    L: float | None = None,
    check_every: int = 10,
    chunk_size: int | None = None,
    groups: torch.Tensor | None = None,
) -> SolveResult:
    """ISTA (proximal gradient with step ``1/L``); same parameters and result as :func:`fista`.

    Examples
    --------
    >>> D = torch.eye(2); X = torch.tensor([[2.0, -0.5]])
    >>> torch.allclose(ista(X, D, alpha=1.0).code, torch.tensor([[1.0, 0.0]]))
    True
    """
    return _solve(X, D, alpha, z0=z0, max_iter=max_iter, tol=tol, positive=positive, L=L,
                  momentum=False, restart=False, check_every=check_every, chunk_size=chunk_size,
                  polish=False, groups=groups)
