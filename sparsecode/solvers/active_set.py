r"""The exact lasso solution by a primal active-set method, batched over samples: the torch twin of
``sparsecode/kernels/cd_active_set.h`` (GPUs, and the CPU where the compiled kernels do not load).

The feature-sign search of Lee, Battle, Raina & Ng (2007), warm-started from codes that another solver reached.
On a support :math:`S` with signs :math:`\sigma`, the solution :math:`y` of
:math:`G_{SS}\,y = c^0_S - a_S\sigma_S` (:math:`c^0 = xD^T`, :math:`G = DD^T`, :math:`a` the thresholds) minimises
the energy on the orthant of :math:`\sigma`; the step from :math:`z` toward :math:`y` stops where a code first
reaches zero (the energy falls all along it) and that atom leaves :math:`S`. Once :math:`z = y`, the violators of
:math:`|c_j| \le a_j` (:math:`c = c^0 - zG`) join with the signs of their :math:`c_j`, all at once until a
batch of them leaves without :math:`z` moving, one at a time from then on (a lone violator's solution keeps its
sign). An atom that the support spans up to rounding (its Cholesky pivot below :math:`\sqrt{\epsilon}G_{jj}`)
does not join; where it is the lone violator, :math:`z` moves along the direction that keeps the fit until an
atom of :math:`S` reaches zero and leaves for it (the support spans the features). An atom of the start support
that the others span leaves it at zero. The energy falls at every step that moves :math:`z`, so no support
repeats.

Every step solves each sample's support afresh: one batched Cholesky factorisation of the Gram blocks, padded
to the largest support with identity rows, so that a step is a fixed number of batched operations whatever the
batch (the compiled kernel updates one factor per sample instead). Samples that are done leave the batch.
"""

from __future__ import annotations

import torch

__all__ = ["active_set"]


def active_set(C0: torch.Tensor, G: torch.Tensor, Z: torch.Tensor, alpha, positive: bool = False, *,
               join: bool = True, max_steps: int | None = None, rank: int | None = None) -> torch.Tensor:
    """The exact lasso solution from the warm start ``Z`` (updated in place) by the active-set method above.

    Parameters
    ----------
    C0 : torch.Tensor, shape (n, m)
        Correlations :math:`XD^T`.
    G : torch.Tensor, shape (m, m)
        Gram matrix :math:`DD^T`.
    Z : torch.Tensor, shape (n, m)
        Warm start, zero off its support (non-negative with ``positive``); overwritten by the result.
        float64 is advised: the solve's accuracy follows the supports' conditioning.
    alpha : float or torch.Tensor
        Threshold, or thresholds per unit (shape (m,) or (n, m)).
    positive : bool
        Non-negative codes: only positive correlations violate.
    join : bool
        Whether violators join. Without, the polishing of the compiled kernels: the step toward the solution on
        the start support's orthant, units leaving it where their codes reach zero, none joining.
    max_steps : int, optional
        Steps at most, ``2*m + 16`` by default.
    rank : int, optional
        The rank of ``G`` (the atoms' span): the start supports' largest ``rank`` codes at most are kept, the
        others set to zero, and no more violators join than the support has room for below it. More atoms are
        linearly dependent, and each would otherwise take a step to leave.

    Returns
    -------
    torch.BoolTensor, shape (n,)
        Where the result is exact (without ``join``: on its support's orthant) within the steps.
        Elsewhere (steps spent, or rounding stopped the progress) ``Z`` is the last iterate, whose energy is no
        higher than the start's, except for atoms of a linearly dependent start support set to zero.
    """
    n, m = Z.shape
    dev, dt = Z.device, Z.dtype
    steps = 2 * m + 16 if max_steps is None else max_steps
    thresholds = torch.as_tensor(alpha, dtype=dt, device=dev).expand(n, m)
    pivot_floor = torch.finfo(dt).eps ** 0.5
    max_support = m if rank is None else rank
    pos_m = torch.arange(m, device=dev)
    if rank is not None and rank < m and Z.numel():
        big = torch.nonzero((Z != 0).sum(1) > rank).squeeze(1)
        keep = torch.zeros_like(Z[big], dtype=torch.bool).scatter_(1, Z[big].abs().topk(rank, dim=1).indices, True)
        Z[big] = Z[big] * keep
    S = Z != 0
    sign = torch.sign(Z)
    exact = torch.zeros(n, dtype=torch.bool, device=dev)
    single = torch.zeros(n, dtype=torch.bool, device=dev)  # one violator joins at a time
    moved = torch.ones(n, dtype=torch.bool, device=dev)  # z moved since the last violators joined
    priority = torch.zeros_like(Z)  # the joiners' order: their violations, scaled into (0.25, 0.75]
    taken = torch.zeros(n, dtype=torch.long, device=dev)
    queue = torch.arange(n if steps > 0 else 0, device=dev)
    # padded Gram-block entries per step at most, the batch windowed beyond: 128 MB of float64 on the CPU, 512 MB
    # elsewhere (GPUs), where fewer, larger steps pay: each operation is a kernel launch
    budget = 1 << 24 if dev.type == "cpu" else 1 << 26
    while queue.numel():
        # a window of the samples left, so that the padded Gram blocks stay within the budget
        k = max(int(S[queue].sum(1).max()), 1)
        window = max(1, budget // (k * k))
        live, queue = queue[:window], queue[window:]
        z, s, sg, a = Z[live], S[live], sign[live], thresholds[live]
        # the support first: its codes largest first, then the atoms that joined at zero, largest violation first
        zmax = z.abs().amax(1, keepdim=True).clamp(min=torch.finfo(dt).tiny)
        order = torch.where(s, torch.where(z != 0, 1 + z.abs() / zmax, priority[live]), 0.0).argsort(
            dim=1, descending=True, stable=True)[:, :k]
        valid, zs, ss = s.gather(1, order), z.gather(1, order), sg.gather(1, order)
        eye = torch.eye(k, dtype=dt, device=dev)
        block = G[order.unsqueeze(2), order.unsqueeze(1)]
        L, info = torch.linalg.cholesky_ex(torch.where(valid.unsqueeze(2) & valid.unsqueeze(1), block, eye))
        pos = torch.arange(k, device=dev)
        pivots = torch.diagonal(L, dim1=1, dim2=2) ** 2
        dependent = valid & ~(pivots > pivot_floor * torch.diagonal(block, dim1=1, dim2=2))
        dependent |= (info > 0).unsqueeze(1) & (pos == (info - 1).unsqueeze(1))
        first = torch.where(dependent, pos, k).amin(1)
        has_dep = first < k
        stop = torch.zeros_like(has_dep)
        joiners = valid & (zs == 0)
        if bool(has_dep.any()):
            stop |= _drop_dependent(C0, G, Z, S, sign, live, has_dep, first, order, valid, zs, joiners,
                                    thresholds, positive)
        ok = ~has_dep
        rhs = torch.where(valid, C0[live].gather(1, order) - a.gather(1, order) * ss, 0)
        y = torch.where(valid, torch.cholesky_solve(rhs.unsqueeze(2), L).squeeze(2), 0)
        # the atoms that joined at zero and whose solution has the wrong sign leave first (z unchanged)
        wrong = joiners & (ss * y <= 0) & ok.unsqueeze(1)
        dropped = wrong.any(1)
        if bool(dropped.any()):
            S[live.unsqueeze(1).expand_as(order)[wrong], order[wrong]] = False
            stuck = dropped & ~(joiners & ~wrong).any(1) & ~moved[live]
            stop |= stuck & single[live]
            single[live[stuck]] = True
        step = ok & ~dropped
        # the step toward y, up to the first code reaching zero (codes of the wrong sign are non-zero here)
        t = torch.where(valid & (ss * y <= 0), zs / (zs - y), torch.inf)
        t_min, leave = t.min(1)
        reach = t_min >= 1
        znew = torch.where(reach.unsqueeze(1), y, zs + t_min.clamp(max=1).unsqueeze(1) * (y - zs))
        znew = torch.where(reach.unsqueeze(1) | (pos != leave.unsqueeze(1)), znew, 0) * valid
        rows = live[step]
        Z[rows] = torch.zeros_like(z[step]).scatter_(1, order[step], znew[step])
        left = step & ~reach
        S[live[left], order[left].gather(1, leave[left].unsqueeze(1)).squeeze(1)] = False
        moved[rows] = True
        done = step & reach
        if join and bool(done.any()):
            # the violators of |c_j| <= a_j join with the signs of their c_j
            rows = live[done]
            q = C0[rows] - Z[rows] @ G
            excess = (q if positive else q.abs()) - thresholds[rows]
            # violations within rounding of the correlations are none (a copy of an atom of the support would
            # swap with it back and forth)
            noise = 64 * torch.finfo(dt).eps * (C0[rows].abs().amax(1, keepdim=True) + thresholds[rows])
            viol = ~S[rows] & (excess > noise)
            # the largest, as many as the support has room for below the rank (one at a time in single mode)
            room = torch.where(single[rows], 1, (max_support - S[rows].sum(1)).clamp(min=1))
            top, idx = excess.masked_fill(~viol, -torch.inf).topk(min(int(room.max()), m), dim=1)
            viol = torch.zeros_like(viol).scatter_(1, idx, (top > 0) & (pos_m[:top.shape[1]] < room.unsqueeze(1)))
            top = excess.masked_fill(~viol, 0).amax(1, keepdim=True).clamp(min=torch.finfo(dt).tiny)
            priority[rows] = torch.where(viol, 0.25 + 0.5 * excess / top, priority[rows])
            none = ~viol.any(1)
            exact[rows[none]] = True
            S[rows] |= viol
            sign[rows] = torch.where(viol, torch.sign(q) if not positive else 1.0, sign[rows])
            moved[rows] = False
            stop[done.nonzero().squeeze(1)[none]] = True
        elif bool(done.any()):
            exact[live[done]] = True
            stop |= done
        taken[live] += 1
        stop |= taken[live] >= steps
        queue = torch.cat([queue, live[~stop]])
    return exact


def _drop_dependent(C0, G, Z, S, sign, live, has_dep, first, order, valid, zs, joiners, thresholds,
                    positive) -> torch.Tensor:
    """The samples whose support holds an atom that the atoms before it span (position ``first``).

    An atom of the start support leaves at zero. A joiner does not join, nor do the joiners after it; where it
    is the first (no violator could join), it takes the ray (module docstring). Returns which samples stop: a ray
    that no atom of the support leaves for.
    """
    idx = has_dep.nonzero().squeeze(1)
    rows, p_pos, order, joiners = live[idx], first[idx], order[idx], joiners[idx]
    p = order.gather(1, p_pos.unsqueeze(1)).squeeze(1)
    joining = joiners.gather(1, p_pos.unsqueeze(1)).squeeze(1)
    after = torch.arange(order.shape[1], device=order.device) >= p_pos.unsqueeze(1)
    ray = joining & ~(joiners & ~after).any(1)
    # the joiners from the dependent one on leave (the ray's own stays), or the dependent atom of the start
    out = torch.where(joining.unsqueeze(1), joiners & after & (order != torch.where(ray, p, -1).unsqueeze(1)),
                      order == p.unsqueeze(1))
    S[rows.unsqueeze(1).expand_as(order)[out], order[out]] = False
    Z[rows[~joining], p[~joining]] = 0
    stop = torch.zeros_like(has_dep)
    if bool(ray.any()):
        stop[idx[ray]] = ~_ray(C0, G, Z, S, sign, rows[ray], p[ray], order[ray],
                               valid[idx[ray]] & (order[ray] != p[ray].unsqueeze(1)) & ~joiners[ray], zs[idx[ray]],
                               thresholds, positive)
    return stop


def _ray(C0, G, Z, S, sign, rows, p, order, valid, zs, thresholds, positive) -> torch.Tensor:
    """The lone violator ``p`` within the span of the support: ``z_p = s tau``, ``z_S -= s tau G_SS^-1 G_Sp``.

    The fit all but unchanged (by the pivot ``d``), the energy falls by ``excess tau - d tau^2 / 2`` up to
    ``tau = excess / d`` or the first atom of ``S`` reaching zero, which leaves ``S`` for ``p``. Returns where one
    left (elsewhere ``z`` moved all the same and the sample stops).
    """
    k = order.shape[1]
    eye = torch.eye(k, dtype=Z.dtype, device=Z.device)
    both = valid.unsqueeze(2) & valid.unsqueeze(1)
    L, _ = torch.linalg.cholesky_ex(torch.where(both, G[order.unsqueeze(2), order.unsqueeze(1)], eye))
    g = torch.where(valid, G[order, p.unsqueeze(1)], 0)
    y = torch.where(valid, torch.cholesky_solve(g.unsqueeze(2), L).squeeze(2), 0)
    d = (G[p, p] - (g * y).sum(1)).clamp(min=0)
    q = C0[rows].gather(1, p.unsqueeze(1)).squeeze(1) - (Z[rows] * G[p]).sum(1)
    s = torch.ones_like(q) if positive else torch.sign(q)
    excess = q * s - thresholds[rows].gather(1, p.unsqueeze(1)).squeeze(1)
    tau = torch.where(d > 0, excess / d.clamp(min=torch.finfo(d.dtype).tiny), torch.inf)
    tau = torch.where(excess > 0, tau, torch.nan)  # rounding made it no violator: no move
    rate = -s.unsqueeze(1) * y
    t = torch.where(valid & (zs * rate < 0), -zs / rate, torch.inf)
    t_min, leave = t.min(1)
    leaves = t_min < tau
    tau = torch.minimum(tau, t_min)
    moves = torch.isfinite(tau)
    znew = torch.where(valid, zs - (s * tau).unsqueeze(1) * y, 0)
    r, zn, o = rows[moves], znew[moves], order[moves]
    Z[r] = torch.zeros_like(Z[r]).scatter_(1, o, zn)
    Z[r, p[moves]] = (s * tau)[moves]
    sign[r, p[moves]] = s[moves]
    out = moves & leaves
    gone = order[out].gather(1, leave[out].unsqueeze(1)).squeeze(1)
    Z[rows[out], gone] = 0
    S[rows[out], gone] = False
    return out
