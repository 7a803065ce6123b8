r"""Online dictionary learning (Mairal, Bach, Ponce & Sapiro 2010), rows are atoms.

For a minibatch :math:`X_t` with codes :math:`Z_t`, the sufficient statistics are updated with a
forgetting factor :math:`\beta_t`,

.. math::
    A \leftarrow \beta_t A + \tfrac1b Z_t^T Z_t, \qquad B \leftarrow \beta_t B + \tfrac1b Z_t^T X_t,

and one sweep of block coordinate descent updates each atom in turn,

.. math::
    d_k \leftarrow \Pi\big(d_k + (B_k - A_k D) / A_{kk}\big),

where :math:`\Pi` projects onto the unit ball (and the non-negative orthant with ``positive``). An atom
whose :math:`A_{kk}` vanishes is unused: it is redrawn from the minibatch. :math:`\beta_t` follows
scikit-learn's ``MiniBatchDictionaryLearning`` so that both learn the same thing from the same data.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ._extension import compiled_kernels
from .objectives import lasso_energy
from .penalties import GroupL1, make_penalty
from .prox import project_rows_to_ball
from .solvers.encode import solve_lasso
from .topography import latent_group_lasso

__all__ = ["OnlineDictionaryState", "init_dictionary", "update_dictionary", "online_dictionary_step"]


@dataclass
class OnlineDictionaryState:
    """Running statistics of online dictionary learning: ``A = sum Z^T Z``, ``B = sum Z^T X``."""

    A: torch.Tensor
    B: torch.Tensor
    n_steps: int = 0

    @classmethod
    def zeros(cls, D: torch.Tensor) -> OnlineDictionaryState:
        m, p = D.shape
        return cls(D.new_zeros((m, m)), D.new_zeros((m, p)), 0)


def init_dictionary(X: torch.Tensor, n_components: int, generator: torch.Generator | None = None,
                    positive: bool = False) -> torch.Tensor:
    """Atoms drawn from the rows of ``X`` (with repetition only if there are too few), unit norm.

    Rows that are zero are replaced by Gaussian noise so every atom has unit norm.
    """
    n = X.shape[0]
    gen_device = generator.device if generator is not None else "cpu"
    if n >= n_components:
        idx = torch.randperm(n, generator=generator, device=gen_device)[:n_components]
    else:
        idx = torch.randint(n, (n_components,), generator=generator, device=gen_device)
    D = X[idx.to(X.device)].clone()
    noise = torch.randn(D.shape, generator=generator, device=gen_device)
    D = D + 1e-3 * noise.to(D) * D.abs().amax().clamp(min=1.0)
    if positive:
        D.clamp_(min=0)
    D /= torch.linalg.vector_norm(D, dim=1, keepdim=True).clamp(min=torch.finfo(D.dtype).tiny)
    return D


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
    tiny = torch.finfo(A.dtype).tiny
    diag = torch.diagonal(A)
    dead = diag < dead_tol * diag.amax().clamp(min=tiny)
    dead_idx = torch.nonzero(dead).squeeze(1).tolist() if X is not None else []
    compiled = compiled_kernels() if D.device.type == "cpu" and D.is_contiguous() else None
    if compiled is not None:
        compiled.bcd_sweep(D, A.contiguous(), B.contiguous(), positive)
    else:
        # d_k <- proj(d_k + (b_k - a_k D) / A_kk), atom after atom; row views and one addmv per atom
        # keep the per-atom op count (the cost of this loop on small problems) low
        rows, a_rows = D.unbind(0), A.unbind(0)
        b_rows = (B / diag.clamp(min=tiny)[:, None]).unbind(0)
        Dt = D.T
        inv = (1 / diag).tolist()
        for k in torch.nonzero(diag > 0).squeeze(1).tolist():
            new = torch.addmv(rows[k] + b_rows[k], Dt, a_rows[k], alpha=-inv[k])
            rows[k].copy_(project_rows_to_ball(new, 1.0, positive))
    if dead_idx:
        gen_dev = generator.device if generator is not None else "cpu"
        pick = torch.randint(X.shape[0], (len(dead_idx),), generator=generator, device=gen_dev).to(X.device)
        new = X[pick].clone()
        if positive:
            new.clamp_(min=0)
        norms = torch.linalg.vector_norm(new, dim=1, keepdim=True)
        new = torch.where(norms > 0, new / norms.clamp(min=torch.finfo(D.dtype).tiny), D[dead_idx])
        D[dead_idx] = new
    return len(dead_idx)


def online_dictionary_step(D: torch.Tensor, state: OnlineDictionaryState, X: torch.Tensor, alpha, *,
                           batch_size: int, algorithm: str = "auto", positive_code: bool = False,
                           positive_dict: bool = False, max_iter: int = 1000, tol: float = 1e-4,
                           generator: torch.Generator | None = None, groups=None,
                           pools=None) -> torch.Tensor:
    """Code one minibatch, update the statistics and the dictionary (in place).

    ``alpha`` is a float or a penalty; ``groups`` (group index per atom) gives the group lasso, and
    ``pools`` (a :class:`sparsecode.topography.Pools`, possibly overlapping) the latent group lasso of
    topographic maps.

    Returns the minibatch's mean lasso energy (a 0-d tensor) at the codes found before the update.
    """
    if pools is not None:
        res, U = latent_group_lasso(X, D, float(alpha), pools, positive=positive_code, max_iter=max_iter,
                                    tol=tol, return_latent=True)
        Z = res.code
        R = X - Z @ D
        cost = (0.5 * (R * R).sum(1) + GroupL1(float(alpha), pools.latent_groups(X.device)).value(U)).mean()
    else:
        penalty = make_penalty(alpha, positive_code, groups)
        Z = solve_lasso(X, D, penalty, algorithm=algorithm, positive=positive_code, max_iter=max_iter,
                        tol=tol).code
        cost = lasso_energy(X, Z, D, penalty).mean()
    step = state.n_steps
    # scikit-learn's forgetting factor (MiniBatchDictionaryLearning._update_inner_stats).
    theta = (step + 1) * batch_size if step < batch_size - 1 else batch_size**2 + step + 1 - batch_size
    beta = (theta + 1 - batch_size) / (theta + 1)
    n = X.shape[0]
    state.A.mul_(beta).add_(Z.T @ Z / n)
    state.B.mul_(beta).add_(Z.T @ X / n)
    state.n_steps += 1
    update_dictionary(D, state.A, state.B, positive=positive_dict, X=X, generator=generator)
    return cost

