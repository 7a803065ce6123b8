r"""FISTA on working sets with gap-safe screening: the L1 path of :func:`~sparsecode.solvers.fista`.

Each outer round measures every sample's duality gap on the full problem (the only stopping rule), then

1. screens (Fercoq, Gramfort & Salmon 2015). With the residual :math:`r = x - zD`, its correlations
   :math:`c = rD^T`, the dual scaling :math:`s = \min(1, \alpha/\Omega^*(c))` and the duality gap :math:`g`
   of :func:`~sparsecode.objectives.relative_gap` (un-normalised), :math:`\theta = s r/\alpha` is dual
   feasible and the dual objective :math:`\tfrac12\|x\|^2 - \tfrac12\|x - \alpha\theta\|^2` is
   :math:`\alpha^2`-strongly concave, so the dual optimum lies within :math:`\sqrt{2g}/\alpha` of
   :math:`\theta`; unit :math:`j` (weight :math:`w_j`) is zero at the optimum when
   :math:`s|c_j| + \|d_j\|\sqrt{2g} < \alpha w_j` (with :math:`z \ge 0` the constraint
   :math:`d_j\cdot\theta \le w_j` is one-sided: :math:`s c_j` in place of :math:`s|c_j|`). :math:`2g` is raised
   by ``16 eps ||x||^2`` against rounding. Screened units are zero from then on;
2. polishes: the exact solution of the lasso restricted to the current support (:func:`polish_support`: the
   active-set method of :mod:`~sparsecode.solvers.active_set`, units may leave the support, none joins),
   kept where it lowers the gap (:func:`polish_where_better`, which plain FISTA's ``polish`` uses too; the
   float32 iterates of coherent atoms stall near ``1e-6`` without it);
3. grows the sample's working set :math:`W` (never shrinking but for screened units): its non-zeros and up
   to ``max(nnz, 8)`` more units, those violating their optimality condition :math:`|c_j| \le \alpha w_j`
   most (glmnet's strong set, Celer's working sets: Massias, Gramfort & Salmon 2018);
4. runs FISTA on the problem restricted to :math:`W`, gathered per sample into small dense blocks
   (:math:`G_{WW}`, :math:`(XD^T)_W`): every operation of the inner loop costs :math:`|W|^2` or :math:`|W|`
   per sample instead of ``n_components^2``, and its step is :math:`1/L_W` with :math:`L_W` the
   :func:`~sparsecode.solvers.lipschitz.restricted_lipschitz` bound of :math:`\lambda_{\max}(G_{WW})`, a
   valid step of the problem it solves (FISTA's guarantee holds within each round). The inner loop stops
   a sample when the gap of its restricted problem falls below ``0.3`` of its full gap (or ``tol``), or
   after 2 checks in the first round and 3 later (the next round screens and grows :math:`W` again).

A restricted optimum with no violator outside :math:`W` is the full optimum, and :math:`W` only grows,
so the rounds end; the codes returned are those whose full gap was measured last. A sample leaves the rounds
when its working set outgrows ``n_components/4`` or ``n_features/2`` units (dense codes, where per-sample
blocks cost more than shared products) or when :math:`L_W > L/4` (the step would not grow enough to pay for
the rounds). It is then finished from its current codes by the active-set method, joins allowed
(:func:`solve_exactly`, its steps counted against the iterations left), and by plain FISTA (polished) where
that stops short.

On the CPU the same rounds run per sample in compiled code (:func:`compiled_working_set_fista`,
``sparsecode/kernels/fista.cpp``, whose header has the details): there a sample's block costs nothing to
dispatch, so no sample leaves; the inner gradient is summed over the iterate's non-zeros; FISTA's momentum
carries over rounds that change neither :math:`W` nor the codes; and the polishing is the exact solution of
the lasso restricted to the iterate's support (the active-set method of ``cd_active_set.h`` on the support
only: units may leave it, none joins, ``n_support/4 + 16`` steps at most), tried at every round and every
inner check where the signs changed since the last polish and kept where the energy falls. On dense codes
in strongly coherent atoms (supports with condition numbers near :math:`10^5`) FISTA alone needs about
:math:`10^4` iterations (its signs are all right only after 3000-10000), and a sign-fixed solve fails while a
few signs are still wrong: the kernel converges there in 100-200 iterations, the torch path by the
active-set finish above.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..objectives import relative_gap
from ..penalties import L1
from ..prox import shrink
from .active_set import active_set
from .lipschitz import restricted_lipschitz
from .proxgrad import prox_grad_loop

__all__ = ["working_set_fista", "compiled_working_set_fista", "gap_safe_screen", "solve_exactly", "polish_support",
           "polish_where_better"]


def gap_safe_screen(X: torch.Tensor, C: torch.Tensor, rel: torch.Tensor, norms: torch.Tensor, alpha: float,
                    penalty: L1) -> torch.Tensor:
    """The units that the duality gap proves zero at the optimum (rule 1 of the module docstring).

    Parameters
    ----------
    X : torch.Tensor, shape (n, n_features)
    C : torch.Tensor, shape (n, n_components)
        Correlations :math:`(x - zD)D^T` of the current codes.
    rel : torch.Tensor, shape (n,)
        Their relative duality gaps (:func:`~sparsecode.objectives.relative_gap` with these ``C``).
    norms : torch.Tensor, shape (n_components,)
        Atom norms :math:`\\|d_j\\|`.
    alpha : float
    penalty : L1

    Returns
    -------
    torch.BoolTensor, shape (n, n_components)
    """
    s = (alpha / penalty.dual_norm(C).clamp(min=torch.finfo(C.dtype).tiny)).clamp(max=1).unsqueeze(1)
    # sqrt(2 g) with g = rel * ||x||^2 / 2, raised against rounding
    radius = torch.sqrt((rel.unsqueeze(1) + 16 * torch.finfo(X.dtype).eps) * (X * X).sum(1, keepdim=True))
    return s * (C if penalty.positive else C.abs()) + norms * radius < alpha * penalty.scaled(1.0)


def solve_exactly(X: torch.Tensor, D: torch.Tensor, Z: torch.Tensor, a, positive: bool = False, *,
                  join: bool = True, max_steps: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`~sparsecode.solvers.active_set.active_set` on the problem ``(X, D)`` from the codes ``Z`` in float64.

    float32's rounding of ``G`` and ``XD^T`` alone moves the solution of coherent supports by more than ``tol``.
    ``a`` is the L1 threshold, scalar or per unit. Returns the codes in ``Z``'s dtype and the exact mask.
    """
    D64 = D.double()
    Z64 = Z.double()
    a = a.double() if isinstance(a, torch.Tensor) else a
    exact = active_set(X.double() @ D64.T, D64 @ D64.T, Z64, a, positive, join=join, max_steps=max_steps,
                       rank=min(D.shape))
    return Z64.to(Z.dtype), exact


def polish_support(X: torch.Tensor, D: torch.Tensor, Z: torch.Tensor, a, rows: torch.Tensor) -> torch.Tensor:
    """The exact lasso solution restricted to the supports of the samples ``rows`` (L1 only), their candidates.

    :func:`solve_exactly` with no unit joining, from the codes ``Z[rows]``: units whose solution changes sign
    leave, at the first crossing. ``a`` is the L1 threshold, scalar or per unit; at most ``k/4 + 16`` steps for
    supports of up to ``k`` units (the compiled kernel's budget). The caller keeps a candidate only where it
    lowers the duality gap.
    """
    k = int((Z[rows] != 0).sum(1).max()) if rows.numel() else 0
    return solve_exactly(X[rows], D, Z[rows], a, join=False, max_steps=k // 4 + 16)[0]


def _full_gap(X, Z, D, alpha, penalty):
    """Relative duality gaps of the full problem and the correlations :math:`(x - zD)D^T` they used."""
    kept = []

    def correlate(R):
        kept.append(R @ D.T)
        return kept[0]

    rel = relative_gap(X, Z, torch.addmm(X, Z, D, alpha=-1), correlate, alpha, penalty)
    return rel, kept[0]


def _restricted(D, G, XDt, W, weights):
    """The problems restricted to the working sets ``W``, gathered per sample and padded with zero atoms.

    Returns ``order`` (n, k) (the units of each working set first), ``valid`` (which of them are in it) and
    the batch of the inner loop: atoms (n, k, n_features), Gram blocks (n, k, k), ``(XD^T)_W`` (n, k) and
    the weights (n, k) or None.
    """
    k = max(int(W.sum(1).max()), 1)
    order = torch.argsort(W.to(torch.int8), dim=1, descending=True, stable=True)[:, :k]
    valid = torch.gather(W, 1, order)
    DW = D[order] * valid.unsqueeze(2)
    GW = G[order.unsqueeze(2), order.unsqueeze(1)] * (valid.unsqueeze(2) & valid.unsqueeze(1))
    BW = torch.gather(XDt, 1, order) * valid
    wW = weights.expand(W.shape[0], -1).gather(1, order) if isinstance(weights, torch.Tensor) else None
    return order, valid, [DW, GW, BW, wW]


def working_set_fista(X: torch.Tensor, Z: torch.Tensor, D: torch.Tensor, G: torch.Tensor, alpha: float,
                      penalty: L1, L: float, *, max_iter: int, tol: float, momentum: bool, restart: bool,
                      check_every: int, fallback: Callable):
    """FISTA with gap-safe screening on growing working sets (module docstring), ``alpha > 0``, ``tol > 0``.

    ``G`` is :math:`DD^T` and ``L`` its largest eigenvalue; ``fallback(X, Z, max_iter)`` is plain FISTA from
    the codes ``Z``, for the samples that leave. Returns codes, iterations (inner iterations summed over the
    rounds), converged mask and relative gaps, as :func:`prox_grad_loop`.
    """
    n, m = Z.shape
    Z = Z.clone()
    XDt = X @ D.T
    weights = penalty.scaled(1.0)
    norms = torch.diagonal(G).clamp(min=0).sqrt()
    gaps = X.new_full((n,), float("inf"))
    screened = torch.zeros((n, m), dtype=torch.bool, device=X.device)
    W = Z != 0
    active = torch.arange(n, device=X.device)
    used = first = 0
    handed = []  # samples left to plain FISTA, all in one call at the end
    while True:
        Xa, Za = X[active], Z[active]
        rel, C = _full_gap(Xa, Za, D, alpha, penalty)
        rows = torch.nonzero((Za != 0).any(1) & ((Za != 0).sum(1) <= min(D.shape))).squeeze(1)
        Za, rel, _, C = polish_where_better(Xa, Za, rel, D, alpha, penalty, rows, C)
        Z[active] = Za
        gaps[active] = rel
        if used >= max_iter:
            break
        keep = rel > tol
        active, Xa, Za, rel, C = (a[keep] for a in (active, Xa, Za, rel, C))
        if not active.numel():
            break
        sc = screened[active] | gap_safe_screen(Xa, C, rel, norms, alpha, penalty)
        screened[active] = sc
        Za = Za.masked_fill(sc, 0)
        # the working sets grow by the worst violators
        Wa = (W[active] | (Za != 0)) & ~sc
        nnz = (Za != 0).sum(1, keepdim=True).clamp(min=8)
        prio = ((C if penalty.positive else C.abs()) - alpha * weights).masked_fill(Wa | sc, 0)
        val, idx = prio.topk(min(int(nnz.max()), m), dim=1)
        Wa = Wa.scatter(1, idx, ((val > 0) & (torch.arange(idx.shape[1], device=X.device) < nnz))
                        | torch.gather(Wa, 1, idx))
        W[active] = Wa
        order, valid, batch = _restricted(D, G, XDt[active], Wa, weights)
        steps = 1 / restricted_lipschitz(batch[1].abs(), valid).clamp(max=L).clamp(min=torch.finfo(X.dtype).tiny)
        # samples leave where working sets do not pay: large blocks, or a step under 4 times the full one
        big = (Wa.sum(1) > min(m // 4, D.shape[1] // 2)) | (steps * L < 4)
        if bool(big.any()):
            Z[active[big]] = Za[big]
            handed.append(active[big])
            first = used if len(handed) == 1 else first
            small = ~big
            active, Xa, Za, Wa, rel, order, valid, steps = (
                a[small] for a in (active, Xa, Za, Wa, rel, order, valid, steps))
            batch = [None if b is None else b[small] for b in batch]
            if not active.numel():
                break
        target = torch.clamp(0.3 * rel, min=tol)
        batch += [Xa, steps.unsqueeze(1), target]
        codes, n_inner, _, _ = prox_grad_loop(
            torch.gather(Za, 1, order) * valid, batch,
            lambda U, b: _inner_step(U, b, alpha, penalty.positive),
            lambda U, b: _inner_gap(U, b, alpha, penalty.positive),
            max_iter=min(max_iter - used, (3 if used else 2) * check_every), tol=1.0, momentum=momentum,
            restart=restart, check_every=check_every)
        used += n_inner
        Z[active] = torch.zeros_like(Za).scatter_(1, order, codes)
    n_iter = used
    if handed:
        # dense codes: the exact solution by the active-set method from their codes (its steps within the
        # iterations left), FISTA where it stops short
        rows = torch.cat(handed)
        Z[rows] = solve_exactly(X[rows], D, Z[rows], penalty.scaled(alpha), penalty.positive,
                                max_steps=min(max_iter - first, 2 * m + 16))[0]
        gaps[rows] = _full_gap(X[rows], Z[rows], D, alpha, penalty)[0]
        rows = rows[gaps[rows] > tol]
        if rows.numel():
            Z[rows], n_fb, _, gaps[rows] = fallback(X[rows], Z[rows], max_iter - first)
            n_iter = max(n_iter, first + n_fb)
    return Z, n_iter, gaps <= tol, gaps


def compiled_working_set_fista(kernel, X: torch.Tensor, Z: torch.Tensor, D: torch.Tensor, alpha: float,
                               penalty: L1, L: float, *, max_iter: int, tol: float, momentum: bool, restart: bool,
                               check_every: int):
    """:func:`working_set_fista` per sample in compiled code (``sparsecode/kernels/fista.cpp``), on the CPU.

    The same rounds in the Gram form, in float64 whatever the data's dtype (float32's rounding of the
    Gram-form gap alone exceeds ``tol=1e-6`` on dense codes), with no sample handed to plain FISTA, polished
    by the exact solution on the support (the kernel's header). Per-unit weights :math:`w_j > 0` are a change
    of variables: the lasso in the atoms :math:`d_j/w_j` with unit weights, whose codes are :math:`w_j z_j`
    (same energy, same duality gap). ``Z`` (contiguous rows, weights positive) is updated in place; ``L``
    caps the restricted bounds (``inf`` when unknown: with weights it applies to the unweighted atoms).
    Returns the converged mask and the iterations of the slowest sample.
    """
    w = None if penalty.weights is None else penalty.weights.double()
    D64 = D.double() if w is None else D.double() / w.unsqueeze(1)
    Xw, Zw = X.double(), Z.double() if w is None else Z.double() * w
    Zw = Zw.contiguous()
    cap = L if w is None else float("inf")
    iters, converged = kernel.fista_working_sets(
        (Xw @ D64.T).contiguous(), (D64 @ D64.T).contiguous(), (Xw * Xw).sum(1), Zw, alpha, penalty.positive, cap,
        max_iter, tol, check_every, momentum, restart)
    if w is not None:
        Zw = Zw / w
    if Zw.data_ptr() != Z.data_ptr():
        Z.copy_(Zw)
    return converged.bool(), int(iters.max()) if iters.numel() else 0


def _inner_step(U, batch, alpha, positive):
    """The proximal gradient step of the restricted problems: :math:`u + \\eta(b - uG_W)`, shrunk."""
    _, GW, BW, wW, _, steps, _ = batch
    V = torch.baddbmm(BW.unsqueeze(1), U.unsqueeze(1), GW, alpha=-1).squeeze(1)
    tau = alpha * steps if wW is None else alpha * steps * wW
    return shrink(torch.addcmul(U, V, steps), tau, positive)


def _inner_gap(U, batch, alpha, positive):
    """Gaps of the restricted problems relative to their targets (below 1: the round is done)."""
    DW, _, _, wW, Xa, _, target = batch
    R = Xa - torch.bmm(U.unsqueeze(1), DW).squeeze(1)
    rel = relative_gap(Xa, U, R, lambda V: torch.bmm(DW, V.unsqueeze(2)).squeeze(2), alpha, L1(positive, wW))
    return rel / target


def polish_where_better(X, Z, rel, D, alpha, penalty, rows, C=None):
    """:func:`polish_support` on the samples ``rows``, kept where it lowers the full duality gap.

    Returns the codes, their relative gaps, the rows whose candidate was kept and, where the correlations
    ``C`` of the codes are given, ``C`` updated on those rows (else None).
    """
    if not rows.numel():
        return Z, rel, rows, C
    cand = polish_support(X, D, Z, penalty.scaled(alpha), rows)
    rel_c, C_c = _full_gap(X[rows], cand, D, alpha, penalty)
    better = rel_c < rel[rows]
    acc = rows[better]
    Z, rel = Z.index_put((acc,), cand[better]), rel.index_put((acc,), rel_c[better])
    return Z, rel, acc, None if C is None else C.index_put((acc,), C_c[better])
