r"""The lasso homotopy (LARS-lasso, Osborne et al. 2000; Efron et al. 2004), batched over samples.

For one sample, the solution path :math:`z(\lambda)` of :math:`\min_z \tfrac12\|x - zD\|^2 + \lambda\|z\|_1`
is piecewise linear in :math:`\lambda`. With the correlations :math:`c = xD^T - zG` (:math:`G = DD^T`),
the active set :math:`A` and its signs :math:`s_A`, the path keeps :math:`c_A = \lambda s_A` and
:math:`|c_j| \le \lambda` elsewhere, so as :math:`\lambda` decreases by :math:`\gamma`,

.. math::
    z_A \leftarrow z_A + \gamma\, d_A, \quad d_A = G_{AA}^{-1} s_A, \qquad
    c \leftarrow c - \gamma\, a, \quad a = d_A G_{A\cdot},

until the next event: an inactive atom's correlation reaches :math:`\pm(\lambda - \gamma)` (it joins),
an active coefficient reaches zero (it leaves), or :math:`\lambda - \gamma = \alpha` (the path has
arrived). Starting from :math:`z = 0` at :math:`\lambda_0 = \|xD^T\|_\infty`, a sample needs about as
many steps as its code has non-zeros, where proximal-gradient methods need hundreds of iterations to
settle the support of codes in a coherent dictionary. An atom that has just left sits at the level on the
side of its old sign; in the next step it may only join on the other side, which it can reach within the
step (dense codes). An atom that the active ones (nearly) span would make :math:`G_{AA}` singular
(duplicate atoms, a rank-deficient dictionary): it stays out of the path, as scikit-learn's ``lars_path``
drops a degenerate regressor, and the duality gap at the end tells whether the code is optimal all the same.

On the CPU each sample follows its path in compiled code (``sparsecode/kernels/homotopy.cpp``, samples in
parallel over torch's threads), in float64 whatever the data's dtype (a float32 path loses digits in
proportion to the conditioning of the active Gram matrix), at :math:`O(k^2)` per step for :math:`G_{AA}^{-1}`
(bordering on a join, a rank-one downdate on a leave; ``d`` follows in :math:`O(k)`) and :math:`O(k(m - k))`
for the correlations of the inactive atoms (:math:`c_A = \lambda s_A` holds by construction; the entries of
:math:`G` they read, active rows and inactive columns, are kept in a compact copy that follows the events, in
cache where :math:`G` is not; for float32 data, in float32 where a float64 copy would outgrow that cache, a path
followed again with the float64 copy where that rounding cost its code the tolerance), and measures each code's
duality gap as it arrives, from the Gram form.
Elsewhere, or where that cannot be built, the batch takes its steps together in torch, also in float64: ``a`` is
a weighted sum of the active rows of ``G`` (``embedding_bag``), and each sample's inverse Gram matrix
:math:`G_{AA}^{-1}` is updated by the same rank-one formulas, held in slots padded to the largest active set so
that joins and leaves are masked updates; samples that have arrived leave the batch. A sample whose path ran out
of steps or whose gap is above ``tol`` (rounding accumulates along the path; an atom left out) is finished from
where the path left it by coordinate descent, whose exact active-set solve (compiled, or its torch twin) settles
the codes where paths break.
"""

from __future__ import annotations

import torch

from .._extension import compiled_kernels
from ..objectives import duality_gap, relative_residual
from ..penalties import L1
from ._common import SolveResult, check_problem, default_chunk_size, in_chunks, zero_result
from .cd import cyclic_coordinate_descent

__all__ = ["homotopy", "lars"]


def _argmax_rows_(h: torch.Tensor, descending: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Row maxima of ``h`` and the first column attaining each; ``h`` may be overwritten.

    ``torch.max(h, 1)`` is several times slower than a plain ``amax`` on the CPU; there the index comes from
    float ops in place: ``sign(h - max) + 1`` is 1 exactly at the maxima, and ``descending`` (n_columns
    down to 1) makes the first of them the largest. Elsewhere one reduction launches one kernel, not six.
    """
    if h.device.type != "cpu":
        return h.max(1)
    top = h.amax(1, keepdim=True)
    first = h.sub_(top).sign_().add_(1).mul_(descending).amax(1)
    return top.squeeze(1), (h.shape[1] - first).long()


class _Path:
    """The path state of a batch of samples; slot ``q`` of a sample holds atom ``idx[:, q]``.

    ``free`` is 1 on the inactive atoms and 0 on the active ones (float: boolean tensors are slow on the
    CPU). Free slots point at the dummy atom ``m`` (a zero row and column of the padded Gram matrix) and
    hold zero code, sign and direction, and zero rows and columns of ``M``, the inverse of the active
    Gram matrix.
    """

    fields = ("c", "lam", "free", "idx", "size", "s", "z", "d", "M", "banned", "side", "rows", "running")

    # ``M * g`` for the join, kept between steps: a fresh tensor of that size per step costs page faults
    _work: torch.Tensor | None = None

    def __init__(self, C: torch.Tensor, lam: torch.Tensor, rows: torch.Tensor, slots: int, m: int):
        n = C.shape[0]
        self.m = m
        self.c, self.lam, self.rows = C, lam, rows
        self.free = torch.ones_like(C)
        self.idx = torch.full((n, slots), m, dtype=torch.long, device=C.device)
        self.size = torch.zeros(n, dtype=torch.long, device=C.device)
        self.s, self.z, self.d = (C.new_zeros((n, slots)) for _ in range(3))
        self.M = C.new_zeros((n, slots, slots))
        self.banned = torch.full((n,), -1, dtype=torch.long, device=C.device)  # the atom that just left
        self.side = C.new_zeros(n)  # its sign (0: banned on both sides)
        self.running = torch.ones(n, dtype=torch.bool, device=C.device)

    def keep(self, mask: torch.Tensor) -> None:
        for f in self.fields:
            setattr(self, f, getattr(self, f)[mask])

    def grow(self, slots: int) -> None:
        """Pad the slot dimension to ``slots``."""
        extra = slots - self.idx.shape[1]
        self.idx = torch.nn.functional.pad(self.idx, (0, extra), value=self.m)
        self.s, self.z, self.d = (torch.nn.functional.pad(t, (0, extra)) for t in (self.s, self.z, self.d))
        self.M = torch.nn.functional.pad(self.M, (0, extra, 0, extra))

    def join(self, who: torch.Tensor, atom: torch.Tensor, sign: torch.Tensor, Gpad: torch.Tensor) -> torch.Tensor:
        """Add ``atom`` with ``sign`` in the first free slot of the samples ``who``; returns the failures.

        Bordering: with ``b = M g`` (``g`` the new atom's Gram column on the active set) and the Schur
        complement ``sigma = G_jj - g.b``, the new inverse is ``M + bb^T/sigma`` where ``b`` carries
        ``-1`` in the new slot, and the direction ``d = M s`` moves by ``b (b.s)/sigma``.
        """
        q = torch.argmax((self.idx == self.m).to(torch.int8), 1, keepdim=True)
        g = Gpad.view(-1).take(atom.unsqueeze(1) * Gpad.shape[1] + self.idx)
        if self._work is None or self._work.shape != self.M.shape:
            self._work = torch.empty_like(self.M)
        # M is symmetric: summing over dim 1 is cache-friendlier
        b = torch.mul(self.M, g.unsqueeze(2), out=self._work).sum(1)
        gjj = Gpad.view(-1).take(atom * (Gpad.shape[1] + 1))
        schur = gjj - (g * b).sum(1)
        ok = schur > torch.finfo(schur.dtype).eps ** 0.5 * gjj  # as the compiled path's pivot
        apply = who & ok
        bs = (b * self.s).sum(1) - sign
        b.scatter_(1, q, -1.0)
        f = torch.where(apply, 1 / torch.where(ok, schur, 1.0), 0.0)
        self.M.addcmul_(b.unsqueeze(2), (b * f.unsqueeze(1)).unsqueeze(1))
        self.d.addcmul_(b, (bs * f).unsqueeze(1))
        here = apply.unsqueeze(1)
        self.idx.scatter_(1, q, torch.where(here, atom.unsqueeze(1), self.idx.gather(1, q)))
        self.s.scatter_(1, q, torch.where(here, sign.unsqueeze(1), 0.0))
        self.free.scatter_(1, atom.unsqueeze(1), torch.where(here, 0.0, self.free.gather(1, atom.unsqueeze(1))))
        self.size += apply.long()
        return who & ~ok

    def leave(self, who: torch.Tensor, q: torch.Tensor) -> None:
        """Remove slot ``q`` from the samples ``who``: ``M - M_q M_q^T / M_qq`` and ``d - M_q d_q / M_qq``.

        Masked updates throughout: the indices of ``who`` would make the host wait for the device.
        """
        qq = q.unsqueeze(1)
        k = self.M.shape[1]
        slots = torch.arange(k, device=q.device)
        col = self.M.view(-1, k * k).gather(1, qq * k + slots)  # row q = column q
        f = torch.where(who, 1 / torch.where(who, col.gather(1, qq).squeeze(1), 1.0), 0.0)
        self.d.addcmul_(col, (self.d.gather(1, qq).squeeze(1) * f).unsqueeze(1), value=-1)
        self.M.addcmul_(col.unsqueeze(2), (col * f.unsqueeze(1)).unsqueeze(1), value=-1)
        atom = self.idx.gather(1, qq).clamp_(max=self.m - 1)  # (the dummy atom m where no slot leaves)
        self.free.scatter_(1, atom, torch.where(who.unsqueeze(1), 1.0, self.free.gather(1, atom)))
        self.banned = torch.where(who, atom.squeeze(1), self.banned)
        self.side = torch.where(who, self.s.gather(1, qq).squeeze(1), self.side)
        gone = (slots == qq) & who.unsqueeze(1)  # slot q of the samples who; the updates leave rounding there
        kept = (~gone).to(self.M.dtype)
        self.M.mul_(kept.unsqueeze(2)).mul_(kept.unsqueeze(1))
        for t in (self.d, self.z, self.s):
            t.mul_(kept)
        self.idx.masked_fill_(gone, self.m)
        self.size -= who.long()


def _path_chunk(X: torch.Tensor, D: torch.Tensor, G: torch.Tensor, alpha: float, positive: bool,
                max_steps: int, max_active: int | None = None):
    """Follow the path of every sample of ``X`` down to ``alpha``; returns (codes, steps, arrived mask).

    With ``max_active``, the LARS path of ``max_active`` steps as scikit-learn's ``lars_path(method="lar")``
    takes it: no atom leaves; a coefficient that crosses zero flips its sign and the step's join is skipped.
    """
    n, m = X.shape[0], D.shape[0]
    max_slots = min(m, D.shape[1])
    Gpad = torch.nn.functional.pad(G, (0, 1, 0, 1))  # the dummy atom m: zero Gram row and column
    Gbag = Gpad[:, :m].contiguous()
    C = X @ D.T
    lam0, first = (C if positive else C.abs()).max(1)
    out = X.new_zeros((n, m + 1))
    arrived = lam0 <= alpha
    start = ~arrived
    p = _Path(C[start], lam0[start], torch.nonzero(start).squeeze(1), min(8, max_slots), m)
    failed = torch.zeros(n, dtype=torch.bool, device=X.device)
    tiny = torch.finfo(X.dtype).tiny
    descending = torch.arange(m, 0, -1, dtype=X.dtype, device=X.device)
    buffers = [torch.empty_like(p.c) for _ in range(3)]  # (n, m) scratch: fresh tensors cost page faults
    if p.rows.numel():
        atom = first[start]
        p.join(p.running, atom, torch.sign(p.c.gather(1, atom.unsqueeze(1)).squeeze(1)), Gpad)
    steps = 0
    for step in range(1, max_steps + 1):
        if not p.rows.numel():
            break
        steps = step
        h, t1, t2 = (b[:p.c.shape[0]] for b in buffers)
        # a = d_A G_A: a weighted sum of the active rows of G, formed without touching the inactive ones
        a = torch.nn.functional.embedding_bag(p.idx, Gbag, per_sample_weights=p.d, mode="sum")
        # the first atom to join maximises the inverse join time (1 -+ a) / (lam -+ c); the atom that just left
        # may not join on its own side in this step (its correlation is at the level there), only on the other
        lam = p.lam.unsqueeze(1)
        banned = p.banned.clamp(min=0).unsqueeze(1)
        torch.sub(a, 1, out=h).div_(torch.sub(p.c, lam, out=t1).clamp_(max=-tiny))
        other = torch.where(p.side.unsqueeze(1) < 0, h.gather(1, banned), 0.0)
        if not positive:
            torch.add(a, 1, out=t2).div_(torch.add(p.c, lam, out=t1).clamp_(min=tiny))
            other = torch.where(p.side.unsqueeze(1) > 0, t2.gather(1, banned), other)
            torch.maximum(h, t2, out=h)
        h.mul_(p.free)
        h.scatter_(1, banned, torch.where(p.banned.unsqueeze(1) >= 0, other, h.gather(1, banned)))
        h_join, j = _argmax_rows_(h, descending)
        g_join = torch.where(h_join > 0, 1 / h_join, float("inf"))
        ratio = torch.where(p.z * p.d < 0, -p.z / p.d, float("inf"))
        g_leave, q = ratio.min(1)
        g_stop = p.lam - alpha
        if max_active is not None:  # LARS: the crossing coefficients flip their signs
            flipped = p.running & (g_leave < torch.minimum(g_join, g_stop))
            p.s = torch.where(flipped.unsqueeze(1) & (ratio == g_leave.unsqueeze(1)), -p.s, p.s)
            g_leave = torch.full_like(g_leave, float("inf"))
        gamma = torch.minimum(torch.minimum(g_join, g_leave), g_stop).masked_fill_(~p.running, 0)
        p.z.addcmul_(p.d, gamma.unsqueeze(1))
        p.c.addcmul_(a, gamma.unsqueeze(1), value=-1)
        p.lam = p.lam - gamma
        if max_active is not None and bool(flipped.any()):  # the next direction follows the new signs
            p.d = (p.M @ p.s.unsqueeze(2)).squeeze(2)
        stop = p.running & (g_stop <= torch.minimum(g_join, g_leave))
        go = p.running & ~stop
        leave = go & (g_leave < g_join)
        join = go & ~leave
        p.banned.fill_(-1)
        p.side.zero_()
        if max_active is not None:  # LARS (no atom leaves): max_active steps; after a flip the joining atom waits
            if step >= max_active:
                stop, go = p.running, torch.zeros_like(go)
            join = join & go
            p.banned = torch.where(join & flipped, j, p.banned)
            join = join & ~flipped
            # the largest inactive correlation joins and sets the level (it may have passed it while banned)
            top, j = torch.where(p.free > 0, p.c if positive else p.c.abs(), -1.0).max(1)
            p.lam = torch.where(join, top, p.lam)
        # what the host needs of this step, in one transfer: a device waits for nothing else
        n_leave, n_join, n_full, n_running = torch.stack(
            (leave, join, join & (p.size == p.idx.shape[1]), go)).sum(1).tolist()
        if n_leave:
            p.leave(leave, q)
        if n_join:
            if n_full and p.idx.shape[1] < max_slots:
                p.grow(min(p.idx.shape[1] + 8, max_slots))
            full = join & (p.size == p.idx.shape[1])
            sign = torch.ones_like(gamma) if positive else torch.sign(p.c.gather(1, j.unsqueeze(1)).squeeze(1))
            broke = p.join(join & ~full, j, sign, Gpad) | full
            if max_active is None:  # an atom (nearly) spanned by the active ones stays out (module docstring)
                out_j = p.free.gather(1, j.unsqueeze(1))
                p.free.scatter_(1, j.unsqueeze(1), torch.where(broke.unsqueeze(1), 0.0, out_j))
            else:
                failed[p.rows] |= broke
                stop = stop | broke
        p.running &= ~stop
        if n_running <= 0.75 * p.rows.numel():  # drop the samples that have arrived (LARS: or broke, next step)
            done = ~p.running
            arrived[p.rows[done]] = True
            out[p.rows[done]] = out.new_zeros((int(done.sum()), m + 1)).scatter_(1, p.idx[done], p.z[done])
            p.keep(p.running)
    arrived[p.rows[~p.running]] = True
    arrived &= ~failed
    out[p.rows] = out.new_zeros((p.rows.numel(), m + 1)).scatter_(1, p.idx, p.z)
    return out[:, :m], steps, arrived


def _follow_paths(X: torch.Tensor, D: torch.Tensor, alpha: float, positive: bool, max_steps: int,
                  chunk_size: int | None, max_active: int | None = None, tol: float = 0.0):
    """Every sample's path, compiled on the CPU and :func:`_path_chunk` elsewhere: (codes, steps, converged, gap).

    ``converged``: the path arrived at ``alpha`` (after ``max_active`` steps for LARS) with a relative duality
    gap of at most ``tol`` (any with ``tol=0``); ``gap``: the relative duality gaps of the codes as returned,
    in ``X``'s dtype (None for LARS). Both paths run in float64 whatever the data (but for the float32 copy of
    the Gram entries the compiled one's correlation updates read, see the module's description): in float32
    a path loses digits in proportion to the conditioning of the active Gram matrix (relative gaps of 1e-4 on
    dense codes in coherent atoms, which the finishing FISTA in float32 then runs to ``max_iter``). Both hold
    ``tol`` to the float64 code (float32's rounding of it is not something the finishing solver in float32
    could improve) and return the gap of the code rounded to ``X``'s dtype; the compiled path measures each
    gap from the Gram form as it finishes.
    """
    m, kmax, lar = D.shape[0], min(D.shape), max_active is not None
    # the path's (n, m) work arrays are few, and its per-step overhead is amortised over larger chunks
    chunk = chunk_size or 2 * default_chunk_size(max(m, D.shape[1]), X.device, min_rows=256)
    compiled = compiled_kernels() if X.device.type == "cpu" else None
    D64 = D.double()
    G = D64 @ D64.T
    if compiled is None:  # in float64 too, and tol on the float64 code, as the compiled path
        if chunk_size is None and X.dtype != torch.float64:
            chunk //= 2  # the bytes of the float32 chunk: its slots of inverse Gram matrices take the most

        def follow_batch(Xc):
            X64 = Xc.double()
            Z64, steps, arrived = _path_chunk(X64, D64, G, alpha, positive, max_steps, max_active)
            Zc = Z64.to(X.dtype)
            if lar:
                return Zc, steps, arrived
            gap = duality_gap(X64, Zc.double(), D64, alpha, L1(positive))  # of the codes as returned
            if tol > 0:
                exact = gap if Zc.dtype == torch.float64 else duality_gap(X64, Z64, D64, alpha, L1(positive))
                arrived &= exact <= tol
            return Zc, steps, arrived, gap.to(X.dtype)

        paths = in_chunks(follow_batch, chunk, X)
        return (*paths, None) if lar else paths

    def follow_path(Xc):
        X64 = Xc.double()
        Zc, it, status, gap = compiled.lasso_path(X64 @ D64.T, G, X64, alpha, positive, max_steps, kmax, lar,
                                                  max_active if lar else kmax, tol, X.dtype == torch.float32)
        return Zc.to(X.dtype), int(it.max()), status == 1, gap.to(X.dtype)  # (no-ops for float32 and float64)

    Z, steps, converged, gap = in_chunks(follow_path, chunk, X)
    return Z, steps, converged, None if lar else gap


def homotopy(X: torch.Tensor, D: torch.Tensor, alpha: float = 1.0, *, penalty: L1 | None = None,
             z0: torch.Tensor | None = None, max_iter: int = 1000, tol: float = 1e-5,
             chunk_size: int | None = None) -> SolveResult:
    """Lasso codes by the homotopy (LARS-lasso) path, batched over the rows of ``X``.

    Parameters
    ----------
    X, D
        Samples (rows) and dictionary (rows are atoms), as in :func:`~sparsecode.solvers.fista`.
    alpha : float
        Weight of the L1 penalty, > 0.
    penalty : L1, optional
        An :class:`~sparsecode.penalties.L1` penalty without weights (its sign constraint); per-unit
        weights and groups: use :func:`fista`.
    z0 : torch.Tensor, optional
        Ignored (the path starts at zero); accepted so that the solvers are interchangeable.
    max_iter : int
        Path steps at most (each adds or removes one atom), and the finishing solver's iterations at most.
    tol : float
        Relative duality gap a code must reach; codes above it are finished from where the path left them,
        by coordinate descent (:func:`~sparsecode.solvers.cd.cyclic_coordinate_descent`). With ``tol=0`` the path
        is trusted wherever it arrives.
    chunk_size : int, optional
        Samples per chunk (bounded memory); twice the cache-sized FISTA chunk on the CPU by default.

    Returns
    -------
    SolveResult
        ``n_iter`` counts path steps (plus the finishing solver's iterations where it had to finish codes).

    Examples
    --------
    >>> D = torch.eye(3); X = torch.tensor([[2.0, 0.5, -3.0]])
    >>> homotopy(X, D, alpha=1.0).code
    tensor([[ 1.,  0., -2.]])
    """
    alpha, penalty = check_problem(X, D, alpha, penalty, z0, kinds=(L1,))
    if penalty.weights is not None:
        raise ValueError("homotopy takes an L1 penalty without weights; use fista for per-unit weights and "
                         "other penalties.")
    if alpha <= 0:
        raise ValueError(f"homotopy needs alpha > 0, got {alpha}; use fista for alpha=0.")
    n, m = X.shape[0], D.shape[0]
    if n == 0:
        return zero_result(X.new_zeros((n, m)))
    Z, steps, converged, gap = _follow_paths(X, D, alpha, penalty.positive, max_iter, chunk_size, tol=tol)
    rest = torch.nonzero(~converged).squeeze(1)
    if rest.numel():  # a broken path, too few steps, or rounding: finished from where it stopped
        start = torch.nan_to_num(Z[rest], nan=0.0, posinf=0.0, neginf=0.0)
        # by coordinate descent (its exact active-set solve settles the dense, coherent codes where paths break)
        res = cyclic_coordinate_descent(X[rest], D, alpha, penalty=penalty, z0=start, max_iter=max_iter, tol=tol,
                                        chunk_size=chunk_size)
        Z[rest], gap[rest], converged[rest] = res.code, res.gap, res.converged
        steps += res.n_iter
    return SolveResult(Z, steps, converged, gap)


def lars(X: torch.Tensor, D: torch.Tensor, n_nonzero_coefs: int, *, chunk_size: int | None = None) -> SolveResult:
    """Least angle regression (LARS, Efron et al. 2004) stopped at ``n_nonzero_coefs`` atoms, batched.

    The homotopy's path without its one lasso rule (an active coefficient that reaches zero leaves): every
    sample moves along the equiangular direction of its active atoms until ``n_nonzero_coefs`` are active
    and the next one would join, or down to the least-squares solution on them. These are the codes of
    scikit-learn's ``Lars(n_nonzero_coefs=k, fit_intercept=False)`` (``sparse_encode(algorithm="lars")``).

    Parameters
    ----------
    X, D
        Samples (rows) and dictionary (rows are atoms), as in :func:`homotopy`.
    n_nonzero_coefs : int
        Active atoms at most, >= 1 (and at most ``min(n_components, n_features)`` take part).
    chunk_size : int, optional
        Samples per chunk, as in :func:`homotopy`.

    Returns
    -------
    SolveResult
        ``converged`` is False where a path broke down (linearly dependent atoms); ``gap`` holds the
        relative residual ``||x - zD||^2 / ||x||^2``, the quantity LARS reduces.

    Examples
    --------
    >>> lars(torch.tensor([[2.0, 0.5, -3.0]]), torch.eye(3), 2).code
    tensor([[ 1.5000,  0.0000, -2.5000]])
    """
    check_problem(X, D, 0.0, None, None)
    if n_nonzero_coefs < 1:
        raise ValueError(f"n_nonzero_coefs must be at least 1, got {n_nonzero_coefs}.")
    n, m = X.shape[0], D.shape[0]
    if n == 0:
        return zero_result(X.new_zeros((n, m)))
    Z, steps, arrived, _ = _follow_paths(X, D, 0.0, False, n_nonzero_coefs + 1, chunk_size, int(n_nonzero_coefs))
    return SolveResult(Z, steps, arrived, relative_residual(X, Z, D))
