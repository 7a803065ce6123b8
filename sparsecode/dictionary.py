r"""Online dictionary learning (Mairal, Bach, Ponce & Sapiro 2010), rows are atoms.

For a minibatch :math:`X_t` with codes :math:`Z_t`, the sufficient statistics are updated with a
forgetting factor :math:`\beta_t`,

.. math::
    A \leftarrow \beta_t A + \tfrac1b Z_t^T Z_t, \qquad B \leftarrow \beta_t B + \tfrac1b Z_t^T X_t,

and one sweep of block coordinate descent updates each atom in turn,

.. math::
    d_k \leftarrow \Pi\big(d_k + (B_k - A_k D) / A_{kk}\big),

where :math:`\Pi` projects onto the unit ball (and the non-negative orthant with ``positive``). An atom
whose :math:`A_{kk}` vanishes is unused: it is redrawn from the minibatch.

:math:`\beta_t` is Mairal et al.'s mini-batch factor :math:`(\theta + 1 - b) / (\theta + 1)`
(:math:`\theta = t b` for :math:`t < b`, else :math:`b^2 + t - b`; section 3.4), scikit-learn's
``MiniBatchDictionaryLearning``'s, raised to the power ``forgetting`` (:math:`\rho`, their "scaling the
past data", section 3.4): in the first :math:`b` steps minibatch :math:`i` keeps a weight of about
:math:`(i/t)^\rho` at step :math:`t`, so the statistics of the first minibatches, coded with a poor
dictionary, fade out. Each step runs ``n_sweeps`` sweeps on the new statistics.

:func:`learn_dictionary_online` is the loop over minibatches: online dictionary learning's own loop,
beside :func:`sparsecode.training.fit_module` (the gradient-step loop of the other models), because its
steps are closed-form statistics updates and coordinate sweeps, not optimizer steps on a loss.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from ._extension import compiled_kernels
from .device import draw_device
from .penalties import make_penalty
from .prox import normalize_rows_, project_rows_to_ball
from .solvers.encode import solve_lasso
from .training.distributed import broadcast_, check_process_group, pad_rows, sum_over_ranks

# Defaults of online_dictionary_step, measured by benchmarks/bench_dictionary.py --scalings (see there).
FORGETTING = 4.0
N_SWEEPS = 3
# Steps between two broadcasts of rank 0's dictionary in a distributed fit (see online_dictionary_step).
RESYNC_EVERY = 100

__all__ = [
    "OnlineDictionaryState",
    "OnlineLearningResult",
    "init_dictionary",
    "update_dictionary",
    "online_dictionary_step",
    "learn_dictionary_online",
]


@dataclass
class OnlineDictionaryState:
    """Running state of online dictionary learning: the statistics ``A = sum Z^T Z`` and ``B = sum Z^T X``,
    the steps taken, and the running values of :func:`learn_dictionary_online`'s stopping rules (the
    smoothed minibatch cost, its minimum, and the steps since that minimum), so that a fit resumed from
    a saved state stops where the uninterrupted one would."""

    A: torch.Tensor
    B: torch.Tensor
    n_steps: int = 0
    ewa_cost: float | None = None
    ewa_cost_min: float | None = None
    no_improvement: int = 0

    @classmethod
    def zeros(cls, D: torch.Tensor) -> OnlineDictionaryState:
        m, p = D.shape
        return cls(D.new_zeros((m, m)), D.new_zeros((m, p)), 0)


def init_dictionary(X: torch.Tensor, n_components: int, generator: torch.Generator | None = None,
                    positive: bool = False) -> torch.Tensor:
    """Atoms drawn from the rows of ``X`` (with repetition only if there are too few), unit norm.

    A little Gaussian noise is added to every atom, so that zero rows and repeated draws still give
    distinct atoms (with ``positive``, an atom clamped to zero stays zero).

    Parameters
    ----------
    X : torch.Tensor, shape (n_samples, n_features)
    n_components : int
    generator : torch.Generator, optional
        Draws on its device (see :func:`sparsecode.device.draw_device`).
    positive : bool, default=False
        Zero the negative entries before normalising.

    Returns
    -------
    torch.Tensor, shape (n_components, n_features)
    """
    n = X.shape[0]
    gen_device = draw_device(generator, X)
    if n >= n_components:
        idx = torch.randperm(n, generator=generator, device=gen_device)[:n_components]
    else:
        idx = torch.randint(n, (n_components,), generator=generator, device=gen_device)
    D = X[idx.to(X.device)].clone()
    noise = torch.randn(D.shape, generator=generator, device=gen_device)
    D = D + 1e-3 * noise.to(D) * D.abs().amax().clamp(min=1.0)
    if positive:
        D.clamp_(min=0)
    return normalize_rows_(D)


def _unused(A: torch.Tensor, dead_tol: float = 1e-6) -> torch.Tensor:
    """Mask of the atoms whose statistic ``A_kk`` vanishes next to the largest: unused, to be redrawn."""
    diag = torch.diagonal(A)
    return diag < dead_tol * diag.amax().clamp(min=torch.finfo(A.dtype).tiny)


def _sweep(D: torch.Tensor, A: torch.Tensor, B: torch.Tensor, positive: bool) -> None:
    """The sweep in torch operations, in place: ``d_k <- proj(c_k - D^T a_k / A_kk)`` atom after atom.

    ``c_k = d_k + b_k / A_kk`` is formed for every atom at once (row ``k`` changes only at its own turn), so
    that an atom costs one ``addmv`` and the projection written into its row (four operations in all), and no
    host synchronisation: on a GPU each operation is a kernel launch, whose cost sets the time. An unused atom
    (``A_kk = 0``, so ``A_jk = 0``: the others do not read it) is swept with ``1/A_kk`` taken as 0 and gets its
    row back at the end.
    """
    diag = torch.diagonal(A)
    used = (diag > 0).unsqueeze(1)
    inv = torch.where(used.squeeze(1), 1 / diag.clamp(min=torch.finfo(A.dtype).tiny), 0.0).unsqueeze(1)
    before = D.clone()
    c_rows, a_rows = torch.addcmul(D, B, inv).unbind(0), (A * inv).unbind(0)
    rows, Dt = D.unbind(0), D.T
    for k in range(D.shape[0]):
        project_rows_to_ball(torch.addmv(c_rows[k], Dt, a_rows[k], alpha=-1), 1.0, positive, out=rows[k])
    D.copy_(torch.where(used, D, before))


@torch.no_grad()
def update_dictionary(D: torch.Tensor, A: torch.Tensor, B: torch.Tensor, *, positive: bool = False,
                      X: torch.Tensor | None = None, generator: torch.Generator | None = None,
                      dead_tol: float = 1e-6) -> int:
    """One block-coordinate sweep over the atoms, in place. Returns the number of atoms redrawn.

    Parameters
    ----------
    D : torch.Tensor, shape (n_components, n_features)
    A, B : torch.Tensor
        Statistics, shapes (n_components, n_components) and (n_components, n_features).
    positive : bool
        Keep atoms non-negative.
    X : torch.Tensor, optional
        Samples to redraw unused atoms from.
    """
    dead_idx = torch.nonzero(_unused(A, dead_tol)).squeeze(1).tolist() if X is not None else []
    compiled = compiled_kernels() if D.device.type == "cpu" and D.is_contiguous() else None
    if compiled is not None:
        compiled.bcd_sweep(D, A.contiguous(), B.contiguous(), positive)
    else:
        _sweep(D, A, B, positive)
    if dead_idx:
        pick = torch.randint(X.shape[0], (len(dead_idx),), generator=generator,
                             device=draw_device(generator, X)).to(X.device)
        new = X[pick].clone()
        if positive:
            new.clamp_(min=0)
        drawn = torch.linalg.vector_norm(new, dim=1, keepdim=True) > 0  # a zero sample keeps the old atom
        D[dead_idx] = torch.where(drawn, normalize_rows_(new), D[dead_idx])
    return len(dead_idx)


def online_dictionary_step(D: torch.Tensor, state: OnlineDictionaryState, X: torch.Tensor, alpha, *,
                           batch_size: int, algorithm: str = "auto", positive_code: bool = False,
                           positive_dict: bool = False, max_iter: int = 1000, tol: float = 1e-4,
                           generator: torch.Generator | None = None, groups=None,
                           pools=None, distributed: bool = False, forgetting: float = FORGETTING,
                           n_sweeps: int = N_SWEEPS) -> torch.Tensor:
    """Code one minibatch, update the statistics and the dictionary (in place).

    ``alpha`` is the penalty's strength; ``groups`` (group index per atom) gives the group lasso, and
    ``pools`` (a :class:`sparsecode.topography.Pools`, possibly overlapping) the latent group lasso of
    topographic maps (:func:`sparsecode.penalties.make_penalty`).

    ``forgetting`` (at least 0) is the exponent of the forgetting factor (1: scikit-learn's
    ``MiniBatchDictionaryLearning``; larger forgets the first minibatches sooner) and ``n_sweeps`` the
    number of block-coordinate sweeps over the atoms per step (see the module's description).

    Returns the minibatch's mean lasso energy (a 0-d tensor) at the codes found before the update (for
    the latent group lasso, with the latent norm of the lifted solution).

    With ``distributed`` (a ``torch.distributed`` process group, every rank calling with its own
    minibatch of nominal size ``batch_size``), the statistics and the cost are summed over the ranks and
    every rank applies the same update: one process on the union of the minibatches (rank after rank),
    unused atoms included, which are redrawn from that union. The dictionary is rank 0's before the
    first step; the summed statistics are the same on every rank, so the updates keep the dictionaries
    equal, and one collective per step suffices. Rank 0's dictionary is sent again every
    :data:`RESYNC_EVERY` steps, so that ranks whose arithmetic differs (other processors) cannot drift apart.
    """
    if not forgetting >= 0 or int(n_sweeps) != n_sweeps or n_sweeps < 1:
        raise ValueError(f"forgetting must be a number >= 0 and n_sweeps an integer >= 1, got forgetting="
                         f"{forgetting!r}, n_sweeps={n_sweeps!r}.")
    if distributed and state.n_steps % RESYNC_EVERY == 0:
        broadcast_([D])
    penalty = make_penalty(positive=positive_code, groups=groups, pools=pools).to(X)
    res = solve_lasso(X, D, alpha, penalty=penalty, algorithm=algorithm, max_iter=max_iter, tol=tol)
    Z = res.code
    R = X - Z @ D
    n = X.shape[0]
    cost = (0.5 * (R * R).sum(-1) + penalty.solution_value(res, alpha)).sum()
    ZZ, ZX = Z.T @ Z, Z.T @ X
    if distributed:
        ZZ, ZX, cost, n = sum_over_ranks([ZZ, ZX, cost, cost.new_tensor(float(n))])
        batch_size *= dist.get_world_size()
    cost = cost / n
    step = state.n_steps
    # Mairal et al.'s mini-batch factor (scikit-learn's MiniBatchDictionaryLearning._update_inner_stats).
    theta = (step + 1) * batch_size if step < batch_size - 1 else batch_size**2 + step + 1 - batch_size
    beta = ((theta + 1 - batch_size) / (theta + 1)) ** forgetting
    state.A.mul_(beta).add_(ZZ / n)
    state.B.mul_(beta).add_(ZX / n)
    state.n_steps += 1
    redraw = distributed and bool(_unused(state.A).any())
    if redraw:
        # the statistics, so the unused atoms, are the same on every rank: redraw from the union of the
        # minibatches (rank after rank), as one process coding that union would
        parts = [torch.empty_like(X) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, X.contiguous())
        X = torch.cat(parts)
    for sweep in range(int(n_sweeps)):  # unused atoms are redrawn once, after the last sweep
        update_dictionary(D, state.A, state.B, positive=positive_dict, generator=generator,
                          X=X if sweep == n_sweeps - 1 else None)
    if redraw:  # the draws follow each rank's generator (unseeded ones differ): rank 0's atoms for all
        broadcast_([D])
    return cost


@dataclass
class OnlineLearningResult:
    """What one call of :func:`learn_dictionary_online` did.

    Attributes
    ----------
    n_steps : int
        Minibatch steps completed.
    n_passes : int
        Passes over the data begun (an unfinished pass counts).
    interrupted : bool
        Stopped by Ctrl-C.
    """

    n_steps: int
    n_passes: int
    interrupted: bool


@dataclass
class _StoppingRules:
    """scikit-learn's ``MiniBatchDictionaryLearning`` stopping rules, checked after a warm-up.

    Stop when the dictionary moves by at most ``tol`` in a step, or after ``max_no_improvement``
    steps without a new minimum of the exponentially weighted average of the minibatch cost. The
    running values live in ``state`` (:class:`OnlineDictionaryState`), and the warm-up counts its steps.
    """

    n_samples: int
    batch_size: int
    tol: float
    max_no_improvement: int | None
    state: OnlineDictionaryState

    def converged(self, batch_cost: float, dict_diff: float) -> bool:
        s = self.state
        if s.n_steps <= min(100, self.n_samples / self.batch_size):
            return False
        weight = min(self.batch_size / (self.n_samples + 1), 1)
        s.ewa_cost = batch_cost if s.ewa_cost is None else s.ewa_cost * (1 - weight) + batch_cost * weight
        if self.tol > 0 and dict_diff <= self.tol:
            return True
        if s.ewa_cost_min is None or s.ewa_cost < s.ewa_cost_min:
            s.no_improvement, s.ewa_cost_min = 0, s.ewa_cost
        else:
            s.no_improvement += 1
        return self.max_no_improvement is not None and s.no_improvement >= self.max_no_improvement


def learn_dictionary_online(
    X: torch.Tensor,
    D: torch.Tensor,
    state: OnlineDictionaryState,
    alpha,
    *,
    batch_size: int = 256,
    max_iter: int = 1000,
    shuffle: bool = True,
    tol: float = 1e-3,
    max_no_improvement: int | None = 10,
    generator: torch.Generator | None = None,
    callback: Callable[[dict], bool] | None = None,
    verbose: bool | int = False,
    step_options: Mapping[str, Any] | None = None,
) -> OnlineLearningResult:
    """Online dictionary learning's own training loop: passes of :func:`online_dictionary_step`.

    Not :func:`sparsecode.training.fit_module`: that loop takes optimizer steps on the gradient of a
    loss, while a step here codes a minibatch, folds its codes into the sufficient statistics and
    sweeps block coordinate descent over the atoms (Mairal et al. 2010), with scikit-learn's
    ``MiniBatchDictionaryLearning`` stopping rules. ``D`` and ``state`` are updated in place.

    The fit stops after ``max_iter`` passes, when the dictionary moves by at most ``tol`` (Frobenius
    norm / n_components) in a step, after ``max_no_improvement`` steps without improvement of the
    smoothed minibatch cost (both rules only after a warm-up of ``min(100, n_samples / batch_size)``
    of ``state``'s steps; their running values are kept in ``state``, so a call continuing a saved
    state stops where one uninterrupted call would), when ``callback`` returns True, or on Ctrl-C,
    which keeps ``D`` as the last step left it.

    Parameters
    ----------
    X : torch.Tensor, shape (n_samples, n_features)
        The data, on ``D``'s device.
    D : torch.Tensor, shape (n_components, n_features)
        Initial atoms (see :func:`init_dictionary`), learned in place.
    state : OnlineDictionaryState
        The statistics, for example ``OnlineDictionaryState.zeros(D)``; updated in place.
    alpha : float or penalty
        As in :func:`online_dictionary_step`.
    batch_size : int, default=256
        Samples per minibatch (at most ``n_samples``).
    max_iter : int, default=1000
        Passes over the data at most.
    shuffle : bool, default=True
        Draw a new order of the samples before each pass.
    tol : float, default=1e-3
        Dictionary change that counts as converged; 0 turns the rule off.
    max_no_improvement : int or None, default=10
        Steps without improvement of the smoothed cost before stopping; None turns the rule off.
    generator : torch.Generator, optional
        Shuffling and the redraws of unused atoms.
    callback : callable, optional
        Called after every step with a dict (``step``, ``n_steps``, ``batch_cost``, ``dictionary``: ``D``
        itself, not to be modified); returning True stops the loop.
    verbose : bool or int, default=False
        Print one line per pass (cost and time) and one when stopping early.
    step_options : mapping, optional
        Further keyword arguments of :func:`online_dictionary_step` (solver, positivity, penalty
        structure); ``batch_size`` and ``generator`` are set here. ``distributed=True`` learns with
        the other ranks of the ``torch.distributed`` process group, each on its own ``X`` (padded to the
        largest by repeating rows): one process on the concatenated minibatches.

    Returns
    -------
    OnlineLearningResult

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> X = torch.randn(200, 8, generator=g, dtype=torch.float64)
    >>> D = init_dictionary(X, 6, g)
    >>> res = learn_dictionary_online(X, D, OnlineDictionaryState.zeros(D), 0.1, batch_size=50, max_iter=2,
    ...                               generator=g)
    >>> res.n_steps, res.n_passes, bool((D.norm(dim=1) <= 1 + 1e-12).all())
    (8, 2, True)
    """
    options = step_options or {}
    if options.get("distributed"):
        check_process_group("allreduce")
        (X,) = pad_rows((X,))
    n = X.shape[0]
    batch_size = min(batch_size, n)
    steps_per_pass = math.ceil(n / batch_size)
    n_steps = max_iter * steps_per_pass
    world = dist.get_world_size() if options.get("distributed") else 1
    rules = _StoppingRules(n * world, batch_size * world, tol, max_no_improvement, state)
    start, done, interrupted, order = time.perf_counter(), 0, False, None
    try:
        for step in range(n_steps):
            i = step % steps_per_pass
            if i == 0:
                pass_cost = 0.0
                order = (torch.randperm(n, generator=generator, device=draw_device(generator, X)).to(X.device)
                         if shuffle else torch.arange(n, device=X.device))
            old = D.clone()
            batch = X[order[i * batch_size:(i + 1) * batch_size]]
            cost = float(online_dictionary_step(D, state, batch, alpha, batch_size=batch_size, generator=generator,
                                                **options))
            done = step + 1
            diff = float(torch.linalg.vector_norm(D - old)) / D.shape[0]
            # the pass's mean cost: its minibatches' costs (each at the codes before its update), by size
            pass_cost += cost * batch.shape[0]
            if verbose and i == steps_per_pass - 1:
                print(f"[DictionaryLearning] pass {step // steps_per_pass + 1}/{max_iter}, "
                      f"step {done}: mean minibatch cost {pass_cost / n:.5f}, {time.perf_counter() - start:.1f} s")
            converged = rules.converged(cost, diff)  # first: a checkpoint the callback saves includes this step
            stop = callback is not None and callback(
                {"step": done, "n_steps": n_steps, "batch_cost": cost, "dictionary": D})
            if stop or converged:
                if verbose:
                    print(f"[DictionaryLearning] converged after {done} steps")
                break
    except KeyboardInterrupt:
        interrupted = True
        if verbose:
            print(f"[DictionaryLearning] interrupted after {done} steps; keeping that state")
    return OnlineLearningResult(done, math.ceil(done / steps_per_pass), interrupted)
