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
the lasso restricted to the current support exactly (where its signs held since the last check), which ends
the iterations as soon as the support is found. Under L1 penalties (``screen=True``, the default) FISTA
runs on growing working sets with gap-safe screening (:mod:`sparsecode.solvers.working_set`): its step is
that of the few units that can still be non-zero, not of the whole dictionary, which in coherent
dictionaries is many times larger. On the CPU, where the compiled kernels load (not with
``SPARSECODE_EXTENSION=0``), that path runs per sample in compiled code (``sparsecode/kernels/fista.cpp``: no
torch dispatch per small step, no sample handed to plain FISTA, the support polished by the exact lasso
solution restricted to it, which ends dense codes in coherent atoms within a few hundred iterations where
FISTA alone needs about :math:`10^4`); the torch path is its twin elsewhere (GPUs), where the samples that
leave the working sets (dense codes) are finished by the batched active-set method
(:mod:`sparsecode.solvers.active_set`).
"""

from __future__ import annotations

import torch

from .._extension import compiled_kernels
from ..objectives import duality_gap
from ..penalties import L1, Penalty
from ._common import SolveResult, check_problem, chunked_gap, default_chunk_size, in_chunks, zero_result
from .lipschitz import lipschitz_constant
from .proxgrad import prox_grad_loop
from .working_set import compiled_working_set_fista, polish_where_better, working_set_fista

__all__ = ["ista", "fista"]


def _prox_grad_chunk(X, Z, D, G, alpha, penalty, step, max_iter, tol, momentum, restart, check_every, polish):
    """Run ISTA/FISTA on one chunk; returns codes, iterations, converged mask and relative gaps.

    The gradient step is one fused product: :math:`y(I - G/L) + XD^T/L` in Gram form, or
    :math:`y - \\tfrac1L (yD - x)D^T` in residual form (cheaper when ``n_components > 2*n_features``).
    With ``polish``, the supports whose signs held since the last check are polished. Host synchronisations
    happen only at the checks.
    """
    Dt = D.T
    tau = alpha * step
    if G is not None:
        A = torch.eye(G.shape[0], dtype=G.dtype, device=G.device).sub_(G, alpha=step)

    def gradient_step(Y, batch):
        Xa, Ba, _ = batch
        if G is not None:
            V = torch.addmm(Ba, Y, A)
        else:
            V = torch.addmm(Y, torch.addmm(Xa, Y, D, beta=-1), Dt, alpha=-step)
        return penalty.prox(V, tau)

    def gap(Za, batch):
        return duality_gap(batch[0], Za, D, alpha, penalty)

    def polish_stable_supports(Za, rel, batch):
        """The exact solution on each support whose signs held since the last check, where it is better."""
        Xa, Ba, signs = batch
        new_signs = torch.sign(Za).to(torch.int8)
        size = (new_signs != 0).sum(1)
        stable = torch.nonzero((new_signs == signs).all(1) & (size > 0)).squeeze(1)
        Za, rel, accepted, _ = polish_where_better(Xa, Za, rel, D, alpha, penalty, stable)
        return Za, rel, accepted, [Xa, Ba, new_signs]

    batch = [X, X @ D.T * step if G is not None else None, torch.sign(Z).to(torch.int8)]
    return prox_grad_loop(Z, batch, gradient_step, gap, max_iter=max_iter, tol=tol, momentum=momentum,
                          restart=restart, check_every=check_every,
                          refine=polish_stable_supports if polish and tol > 0 else None)


def fista(X: torch.Tensor, D: torch.Tensor, alpha: float = 1.0, *, penalty: Penalty | None = None,
          z0: torch.Tensor | None = None, max_iter: int = 1000, tol: float = 1e-5, L: float | None = None,
          restart: bool = True, check_every: int = 10, chunk_size: int | None = None, polish: bool = False,
          momentum: bool = True, screen: bool = True) -> SolveResult:
    """FISTA for ``min_z 0.5*||x - z D||^2 + alpha*Omega(z)``, batched over the rows of ``X``.

    Parameters
    ----------
    X : torch.Tensor, shape (n_samples, n_features)
    D : torch.Tensor, shape (n_components, n_features)
        Dictionary, rows are atoms.
    alpha : float
        Strength of the penalty, >= 0.
    penalty : Penalty, optional
        :math:`\\Omega` and the sign constraint (:mod:`sparsecode.penalties`); :class:`L1` by default. A
        :class:`LatentGroupL1` is solved as the group lasso of its lifted problem.
    z0 : torch.Tensor, shape (n_samples, n_components), optional
        Warm start.
    max_iter : int
        Iterations at most; 0 returns ``z0``.
    tol : float
        Stop a sample when its duality gap is below ``tol * 0.5*||x||^2``; ``tol=0`` runs ``max_iter``.
    L : float, optional
        Lipschitz constant; computed by :func:`lipschitz_constant` when omitted.
    restart : bool
        Adaptive momentum restart.
    check_every : int
        Iterations between duality-gap checks.
    chunk_size : int, optional
        Samples per chunk (bounded memory); :func:`default_chunk_size` by default.
    polish : bool
        At every check, also try the exact solution on the current support (L1 only).
    momentum : bool
        FISTA's extrapolation; without it, ISTA (:func:`ista`).
    screen : bool
        Gap-safe screening and working sets (:mod:`~sparsecode.solvers.working_set`) when the penalty is
        :class:`L1`, ``alpha > 0``, ``tol > 0``, ``max_iter > 0``, ``n_components <= 2048`` and ``L`` at least
        4 times the largest squared atom norm (below, no working set can take a step 4 times larger). The
        exact solution on the support is then tried at every round, and the samples that leave the working
        sets (dense codes) are finished by the exact active-set method, then polished FISTA where its steps
        run out. Iterations are counted within the working sets; a warm start that is already optimal takes
        none. On the CPU the compiled kernel runs these working sets
        (:func:`~sparsecode.solvers.working_set.compiled_working_set_fista`, without the condition on ``L``,
        weights positive): every sample stays in its working sets, and the lasso restricted to the
        iterate's support is solved exactly at every round and every check where the signs changed (kept
        where the energy falls), ``polish`` or not.

    Returns
    -------
    SolveResult

    Examples
    --------
    >>> D = torch.eye(3); X = torch.tensor([[2.0, 0.5, -3.0]])
    >>> fista(X, D, alpha=1.0).code
    tensor([[ 1.,  0., -2.]])
    """
    alpha, outer = check_problem(X, D, alpha, penalty, z0)
    D, penalty, z0 = outer.lift(D, z0)
    penalty = penalty.to(X)
    n, m = X.shape[0], D.shape[0]
    if n == 0 or (L is not None and float(L) <= 0):  # no sample, or an all-zero dictionary: zero codes
        return outer.unlift(zero_result(X.new_zeros((n, m))))
    polish = polish and isinstance(penalty, L1)
    screen = screen and isinstance(penalty, L1) and alpha > 0 and tol > 0 and max_iter > 0 and m <= 2048
    chunk = chunk_size or default_chunk_size(max(m, D.shape[1]), X.device, min_rows=256)
    # the compiled kernel on the CPU, where it loads (per-unit weights: positive ones, see the kernel's wrapper)
    compiled = screen and X.device.type == "cpu" and (penalty.weights is None or bool((penalty.weights > 0).all()))
    kernel = compiled_kernels() if compiled else None
    if kernel is not None:
        return outer.unlift(_compiled(kernel, X, D, alpha, penalty, z0, L, max_iter, tol, momentum, restart,
                                      check_every, chunk))
    L = lipschitz_constant(D) if L is None else float(L)
    if L <= 0:  # an all-zero dictionary: the zero code is optimal
        return outer.unlift(zero_result(X.new_zeros((n, m))))
    step = 1.0 / L
    G = D @ D.T if screen or m < 2 * D.shape[1] else None
    # a working set's step (1/L_W, L_W >= max ||d_j||^2) cannot pay where it is not 4x the full step
    screen = screen and L >= 4 * float(torch.diagonal(G).max())

    def solve(Xc, Zc=None):  # without a warm start, each chunk starts from its own zeros
        Zc = Xc.new_zeros((Xc.shape[0], m)) if Zc is None else Zc
        if screen:
            return working_set_fista(Xc, Zc, D, G, alpha, penalty, L, max_iter=max_iter, tol=tol,
                                     momentum=momentum, restart=restart, check_every=check_every,
                                     fallback=lambda Xs, Zs, budget: plain(Xs, Zs, budget, True))
        return plain(Xc, Zc, max_iter, False)

    def plain(Xc, Zc, budget, handed):
        # samples handed over by the working sets are polished
        return _prox_grad_chunk(Xc, Zc, D, G if m < 2 * D.shape[1] else None, alpha, penalty, step, budget, tol,
                                momentum, restart, check_every, polish or handed)

    starts = (X,) if z0 is None else (X, z0.to(X))
    return outer.unlift(SolveResult(*in_chunks(solve, chunk, *starts)))


def _compiled(kernel, X, D, alpha, penalty, z0, L, max_iter, tol, momentum, restart, check_every, chunk):
    """The working sets of :func:`fista` in the compiled kernel, chunk by chunk; the gaps measured in float64."""
    Z = X.new_zeros((X.shape[0], D.shape[0])) if z0 is None else z0.to(X).clone().contiguous()
    cap = float("inf") if L is None else float(L)

    def solve(Xc, Zc):  # Zc: contiguous rows of Z, updated in place
        return compiled_working_set_fista(kernel, Xc, Zc, D, alpha, penalty, cap, max_iter=max_iter, tol=tol,
                                          momentum=momentum, restart=restart, check_every=check_every)

    converged, n_iter = in_chunks(solve, chunk, X, Z)
    gap = chunked_gap(X, Z, D, alpha, penalty)
    # the kernel's gap and this one round differently: a sample is converged by either
    return SolveResult(Z, n_iter, converged | (gap <= tol), gap)


def ista(X: torch.Tensor, D: torch.Tensor, alpha: float = 1.0, *, penalty: Penalty | None = None,
         z0: torch.Tensor | None = None, max_iter: int = 1000, tol: float = 1e-5, L: float | None = None,
         check_every: int = 10, chunk_size: int | None = None) -> SolveResult:
    """ISTA (proximal gradient with step ``1/L``): :func:`fista` without momentum; same parameters and result.

    Examples
    --------
    >>> D = torch.eye(2); X = torch.tensor([[2.0, -0.5]])
    >>> torch.allclose(ista(X, D, alpha=1.0).code, torch.tensor([[1.0, 0.0]]))
    True
    """
    return fista(X, D, alpha, penalty=penalty, z0=z0, max_iter=max_iter, tol=tol, L=L, check_every=check_every,
                 chunk_size=chunk_size, momentum=False)
