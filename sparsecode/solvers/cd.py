r"""Coordinate descent for the lasso, batched over samples: cyclic (the ``"cd"`` solver) and greedy (CoD).

Cyclic coordinate descent on the Gram matrix, the algorithm of scikit-learn's
``enet_coordinate_descent_gram``: with :math:`G = DD^T` and the residual's correlations
:math:`q = xD^T - zG`, every sweep visits the coordinates in order and moves each to its exact minimiser
:math:`z_j \leftarrow \operatorname{prox}(q_j + G_{jj}z_j)/G_{jj}`, then :math:`q \leftarrow q - \delta
G_{j\cdot}`: :math:`O(m)` per coordinate that moves, nothing for one that stays at zero. The duality gap
comes from the Gram form (:math:`\|x - zD\|^2 = \|x\|^2 - z\cdot xD^T - z\cdot q`). On the CPU each
sample runs in compiled code (``sparsecode/kernels/cd.cpp``, samples in parallel over torch's threads):
gap-safe screening (Fercoq, Gramfort & Salmon 2015: atom :math:`j` is zero at the optimum when
:math:`s|q_j| + \|d_j\|\sqrt{2G} < \alpha`, :math:`G` the duality gap and :math:`s(x - zD)/\alpha` the
dual point), working sets (glmnet, Celer: sweeps over the non-zeros and the atoms nearest to entering,
with a full check in between), Anderson extrapolation of the sweeps (Bertrand & Massias 2021) and, from
the sweeps' codes, the exact solution on the working set by an active-set method (the feature-sign search
of Lee, Battle, Raina & Ng 2007; ``sparsecode/kernels/cd_active_set.h``): plain sweeps need thousands on
dense codes in coherent atoms. Elsewhere the torch twin sweeps the batch together, with the same screening and
the same active-set method (:mod:`sparsecode.solvers.active_set`), batched.

Greedy coordinate descent (Li & Osher 2009; Gregor & LeCun 2010, Alg. 2), the reference of LCoD: with
:math:`S = \operatorname{diag}(G) - G` and :math:`B = XD^T + ZS`, the exact minimiser of coordinate
:math:`j` is :math:`\bar z_j = \operatorname{prox}(B_j)/G_{jj}`. Each step, every sample updates the one
coordinate that would move most, :math:`k = \arg\max_j |z_j - \bar z_j|`, then
:math:`B \leftarrow B + S_{:,k}(\bar z_k - z_k)`. With unit-norm atoms this is exactly the paper's
:math:`S = I - D^TD` recursion. Every step costs :math:`O(m)` per sample, moving or not, so it is far
slower than the cyclic sweep as a solver.
"""

from __future__ import annotations

import functools

import torch

from .._extension import compiled_kernels
from ..objectives import duality_gap
from ..penalties import L1
from ..prox import shrink
from ._common import SolveResult, check_problem, chunked_gap, default_chunk_size, in_chunks, zero_result
from .active_set import active_set

__all__ = ["cyclic_coordinate_descent", "coordinate_descent", "cd_step"]


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

    The solver ``"cod"``, and the reference of LCoD; :func:`cyclic_coordinate_descent` (``"cd"``) is the
    faster solver. Parameters are those of :func:`sparsecode.solvers.fista`; ``max_iter`` counts sweeps of
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
        theta = torch.as_tensor(theta, dtype=diag.dtype, device=diag.device)
        theta = torch.where(dead, torch.full_like(diag, float("inf")), theta)
    total = max_iter * m
    chunk = chunk_size or default_chunk_size(max(m, D.shape[1]), X.device, min_rows=256)

    def solve(Xc, Zc):
        return _cd_chunk(Xc, Zc, D, S, diag, theta, alpha, penalty, total, check_every or m, tol)

    code, steps, converged, gap = in_chunks(solve, chunk, X, Z0)
    return SolveResult(code, -(-steps // m), converged, gap)


def _gram_gap(C0: torch.Tensor, Q: torch.Tensor, Z: torch.Tensor, xx: torch.Tensor, alpha: float,
              positive: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Absolute duality gaps from the Gram form, and the dual scalings ``s`` (dual point ``s(x - zD)/alpha``).

    :func:`sparsecode.objectives.relative_gap` without ``x - zD``, before the division by ``0.5*||x||^2``.
    """
    zq = (Z * Q).sum(1)
    dual = (Q.amax(1).clamp(min=0) if positive else Q.abs().amax(1))
    s = torch.where(dual > alpha, alpha / dual, 1.0)
    r2 = (xx - (Z * C0).sum(1) - zq).clamp(min=0)
    return (0.5 * (1 - s) ** 2 * r2 + alpha * Z.abs().sum(1) - s * zq).clamp(min=0), s


def _energy(C0: torch.Tensor, G: torch.Tensor, Z: torch.Tensor, alpha: float) -> torch.Tensor:
    """The lasso energy less ``0.5*||x||^2``, from the Gram form: ``-z.c0 + 0.5 zGz + alpha ||z||_1``."""
    return (Z * (0.5 * (Z @ G) - C0)).sum(1) + alpha * Z.abs().sum(1)


def _cyclic_cd_torch(C0: torch.Tensor, G: torch.Tensor, xx: torch.Tensor, Z: torch.Tensor, alpha: float,
                     positive: bool, max_sweeps: int, tol: float, rank: int | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """The torch twin of the compiled ``cyclic_cd``: same arguments, ``Z`` updated in place (``rank``: that of
    the active-set solve, ``n_features``).

    Returns the sweeps run and the converged flags per sample. The batch sweeps together; with ``tol > 0``,
    after every sweep the correlations are recomputed exactly, the samples below ``tol`` leave, and the
    gap-safe rule of the compiled kernel screens atoms per sample (held at zero; an atom screened in every
    remaining sample is skipped). After the first sweep, then every 4 for the samples whose signs changed, the
    exact solution by the active-set method (:func:`~sparsecode.solvers.active_set.active_set`, the twin of the
    kernel's) from the sweeps' codes, kept where it lowers the energy: plain sweeps need thousands on dense codes
    in coherent atoms. The kernel's working sets and extrapolation are sequential per sample and left out here;
    with ``tol <= 0`` both run the same plain sweeps.
    """
    n = C0.shape[0]
    diag = torch.diagonal(G)
    norms = diag.clamp(min=0).sqrt()
    diag_list = diag.tolist()
    live = [j for j, g in enumerate(diag_list) if g > 0]
    sweeps = torch.zeros(n, dtype=torch.long, device=C0.device)
    converged = torch.zeros(n, dtype=torch.int8, device=C0.device)
    active = torch.arange(n, device=C0.device)
    Za, C0a, xxa = Z.clone(), C0, xx
    free = torch.ones_like(Za, dtype=torch.bool)  # not screened
    inv = torch.where(diag > 0, 1 / diag.clamp(min=torch.finfo(G.dtype).tiny), 0.0)
    # coordinates are rows here (contiguous); W[j] = free[:, j] / G_jj, so that a coordinate costs six
    # batched operations (one kernel launch each on a GPU, where their count, not their size, sets the time)
    ZT, QT, W = Za.T.contiguous(), (C0a - Za @ G).T.contiguous(), inv.unsqueeze(1).expand(-1, n)
    signs = torch.sign(Za)
    for sweep in range(1, max_sweeps + 1):
        for j in live:
            v = shrink(torch.add(QT[j], ZT[j], alpha=diag_list[j]), alpha, positive).mul_(W[j])
            QT.addr_(G[j], v - ZT[j], alpha=-1)
            ZT[j] = v
        sweeps[active] = sweep
        if tol <= 0:
            continue
        Za = ZT.T.contiguous()
        if (sweep - 1) % 4 == 0:  # the active-set solution where the signs changed, kept where it is better
            new_signs = torch.sign(Za)
            rows = torch.nonzero((new_signs != signs).any(1) if sweep > 1 else new_signs.any(1)).squeeze(1)
            cand, c0 = Za[rows], C0a[rows]
            active_set(c0, G, cand, alpha, positive, rank=rank)
            better = _energy(c0, G, cand, alpha) <= _energy(c0, G, Za[rows], alpha)
            Za[rows[better]] = cand[better]
            signs = torch.sign(Za)
        Q = C0a - Za @ G
        gap, s = _gram_gap(C0a, Q, Za, xxa, alpha, positive)
        done = gap <= tol * (0.5 * xxa).clamp(min=torch.finfo(xxa.dtype).tiny)
        Z[active] = Za
        converged[active[done]] = 1
        if bool(done.all()):
            return sweeps, converged
        corr = s.unsqueeze(1) * (Q if positive else Q.abs())
        free &= corr + norms * (2 * gap).sqrt().unsqueeze(1) >= alpha
        keep = ~done
        active, Za, C0a, xxa, Q, free, signs = (a[keep] for a in (active, Za, C0a, xxa, Q, free, signs))
        if bool((Za != 0).logical_and_(~free).any()):  # a screened atom still non-zero: zero it now
            Za = Za * free
            Q = C0a - Za @ G
        ZT, QT = Za.T.contiguous(), Q.T.contiguous()
        W = (free * inv).T.contiguous()
        alive = free.any(0).tolist()
        live = [j for j in live if alive[j]]
    Z[active] = ZT.T
    return sweeps, converged


def cyclic_coordinate_descent(X: torch.Tensor, D: torch.Tensor, alpha: float = 1.0, *, penalty: L1 | None = None,
                              z0: torch.Tensor | None = None, max_iter: int = 1000, tol: float = 1e-5,
                              chunk_size: int | None = None) -> SolveResult:
    """Cyclic coordinate descent on the Gram matrix for ``min_z 0.5*||x - z D||^2 + alpha*||z||_1``.

    The algorithm of scikit-learn's ``lasso_cd`` (``enet_coordinate_descent_gram``), batched over samples:
    every sweep minimises the energy exactly in each coordinate in turn, from ``z0`` (warm start) or zero.
    ``X``, ``D``, ``alpha``, ``penalty`` (an :class:`~sparsecode.penalties.L1` without weights: its sign
    constraint), ``tol`` (on the relative duality gap; 0 runs every sweep) and ``chunk_size`` are those of
    :func:`~sparsecode.solvers.fista`; ``max_iter`` counts sweeps over the coordinates.

    Returns
    -------
    SolveResult
        ``n_iter`` counts sweeps; ``gap`` is recomputed from the residual :math:`x - zD`.

    Examples
    --------
    >>> X = torch.tensor([[2.0, 0.5, -3.0]])
    >>> cyclic_coordinate_descent(X, torch.eye(3), alpha=1.0).code
    tensor([[ 1.,  0., -2.]])
    """
    alpha, penalty = check_problem(X, D, alpha, penalty, z0, kinds=(L1,))
    if penalty.weights is not None:
        raise ValueError("cyclic coordinate descent takes an L1 penalty without weights; use fista for per-unit "
                         "weights.")
    n, m = X.shape[0], D.shape[0]
    Z = X.new_zeros((n, m)) if z0 is None else z0.to(X).clone().contiguous()
    if n == 0:
        return zero_result(Z)
    compiled = compiled_kernels() if X.device.type == "cpu" else None
    kernel = functools.partial(_cyclic_cd_torch, rank=D.shape[1]) if compiled is None else compiled.cyclic_cd
    chunk = chunk_size or default_chunk_size(max(m, D.shape[1]), X.device, min_rows=256)

    # float32 data are swept in float64: float32's rounding of the Gram-form gap alone exceeds tol=1e-6 with dense
    # codes, and the sweeps would run to max_iter without knowing they had converged. The Gram matrix too: in
    # float32, atoms that are linearly dependent (more atoms than features) are not, to the support solve
    work = torch.float64 if tol > 0 else X.dtype
    DTw = D.T.to(work)
    Gw = (DTw.T @ DTw).contiguous()

    def solve(Xc, Zc):  # Zc: contiguous rows of Z, updated in place
        Xw, Zw = Xc.to(work), Zc.to(work).contiguous()
        sweeps, converged = kernel((Xw @ DTw).contiguous(), Gw, (Xw * Xw).sum(1), Zw, alpha,
                                   penalty.positive, max_iter, tol)
        if Zw.data_ptr() != Zc.data_ptr():
            Zc.copy_(Zw)
        return converged.bool(), int(sweeps.max())

    converged, sweeps = in_chunks(solve, chunk, X, Z)
    gap = chunked_gap(X, Z, D, alpha, penalty)
    # the kernel's gap and this one round differently: a sample is converged by either
    return SolveResult(Z, sweeps, converged | (gap <= tol), gap)
