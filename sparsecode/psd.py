r"""Predictive sparse decomposition (Kavukcuoglu, Ranzato & LeCun 2008): inference and loss.

The energy of an input :math:`x` and a code :math:`z` couples a sparse decoder and a feed-forward
encoder :math:`F`,

.. math::
    E(x, z) = \tfrac12\|x - zD\|^2 + \Omega(z) + \beta\|z - F(x)\|^2 ,

with :math:`\Omega = \alpha\|\cdot\|_1`, a group lasso or the topographic latent group lasso
(:mod:`sparsecode.topography`; Kavukcuoglu et al. CVPR 2009). The prediction term is a quadratic, so
with :math:`p = F(x)` and :math:`c = \sqrt{2\beta}` the minimisation over :math:`z` is a lasso with
the
augmented input and dictionary

.. math::
    \tilde x = [x,\ c\,p], \qquad \tilde D = [D,\ c\,I], \qquad
    \tfrac12\|\tilde x - z\tilde D\|^2 = \tfrac12\|x - zD\|^2 + \beta\|z - p\|^2 ,

solved by the library's FISTA warm-started at :math:`z = p` (:func:`psd_inference`). Training (the
authors' ``psd.lua``): predict :math:`p = F(x)`, infer :math:`z^\star` with :math:`D, F` fixed, then
one
optimizer step on :math:`E(x, z^\star)`: its gradient moves :math:`D` by the reconstruction error
and
:math:`F` toward :math:`z^\star` (:func:`psd_loss`); after each step the atoms are renormalised to
unit
norm (:func:`normalize_atoms`). At test time :math:`F(x)` alone approximates :math:`z^\star`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from .penalties import make_penalty
from .solvers import fista
from .topography import Pools, latent_group_lasso

__all__ = ["PSDCode", "psd_inference", "psd_energy", "psd_loss", "normalize_atoms"]


class PSDCode(NamedTuple):
    """Result of :func:`psd_inference`.

    Attributes
    ----------
    code : torch.Tensor, shape (n_samples, n_components)
        :math:`z^\\star`.
    penalty : torch.Tensor, shape (n_samples,)
        :math:`\\Omega(z^\\star)` (the latent norm for overlapping pools).
    n_iter : int
    converged : torch.BoolTensor, shape (n_samples,)
    """

    code: torch.Tensor
    penalty: torch.Tensor
    n_iter: int
    converged: torch.Tensor


def _augment(X: torch.Tensor, D: torch.Tensor, P: torch.Tensor, beta: float):
    c = math.sqrt(2.0 * beta)
    eye = torch.eye(D.shape[0], dtype=D.dtype, device=D.device)
    return torch.cat([X, c * P], dim=1), torch.cat([D, c * eye], dim=1)


@torch.no_grad()
def psd_inference(
    X: torch.Tensor,
    D: torch.Tensor,
    P: torch.Tensor,
    alpha: float,
    beta: float,
    *,
    pools: Pools | None = None,
    positive: bool = False,
    max_iter: int = 100,
    tol: float = 1e-4,
) -> PSDCode:
    """Minimise the PSD energy over the codes, from the prediction ``P = F(X)``.

    Parameters
    ----------
    X : torch.Tensor, shape (n_samples, n_features)
    D : torch.Tensor, shape (n_components, n_features)
    P : torch.Tensor, shape (n_samples, n_components)
        Encoder prediction, also the warm start.
    alpha, beta : float
        Sparsity and prediction weights.
    pools : Pools, optional
        Group structure: None is the L1 penalty; a partition the group lasso; overlapping pools the
        latent group lasso.
    positive : bool
        Non-negative codes.
    max_iter, tol
        FISTA's budget and relative duality-gap tolerance.

    Returns
    -------
    PSDCode

    Examples
    --------
    With ``D = I`` and ``P = 0`` the code is ``shrink(x, alpha) / (1 + 2*beta)``:

    >>> X = torch.tensor([[3.0, 0.0]]); P = torch.zeros(1, 2)
    >>> psd_inference(X, torch.eye(2), P, alpha=1.0, beta=0.5).code.round(decimals=4)
    tensor([[1., 0.]])
    """
    Xa, Da = _augment(X, D, P.to(X), beta)
    options = dict(z0=P.to(X), max_iter=max_iter, tol=tol, positive=positive)
    if pools is not None and not pools.is_partition:
        res, U = latent_group_lasso(Xa, Da, alpha, pools, return_latent=True, **options)
        value = make_penalty(alpha, groups=pools.latent_groups(X.device)).value(U)
        return PSDCode(res.code, value, res.n_iter, res.converged)
    groups = None if pools is None else pools.groups(X.device)
    penalty = make_penalty(alpha, positive, groups)
    res = fista(Xa, Da, penalty, **options)
    return PSDCode(res.code, penalty.value(res.code), res.n_iter, res.converged)


def psd_energy(
    X: torch.Tensor,
    Z: torch.Tensor,
    D: torch.Tensor,
    P: torch.Tensor,
    penalty: torch.Tensor,
    beta: float,
) -> torch.Tensor:
    """Per-sample energy :math:`\\tfrac12\\|x - zD\\|^2 + \\Omega(z) + \\beta\\|z - p\\|^2`.

    ``penalty`` is the per-sample :math:`\\Omega(z)` (as returned in :class:`PSDCode`).
    """
    R = X - Z @ D
    return 0.5 * (R * R).sum(-1) + penalty + beta * ((Z - P) ** 2).sum(-1)


def psd_loss(
    model: torch.nn.Module,
    X: torch.Tensor,
    *,
    alpha: float,
    beta: float,
    pools: Pools | None = None,
    positive: bool = False,
    max_iter: int = 100,
    tol: float = 1e-4,
) -> torch.Tensor:
    """Mean energy at the inferred codes: the loss of one PSD training step.

    ``model`` has an ``encoder`` (the module :math:`F`) and a ``dictionary`` parameter :math:`D`, as
    :class:`sparsecode.modules.PSD`. :math:`z^\\star` is computed without gradient, so the decoder
    gets
    the reconstruction gradient and the encoder the prediction gradient
    :math:`2\\beta(F(x) - z^\\star)\\,\\partial F`.
    """
    P = model.encoder(X)
    inf = psd_inference(
        X,
        model.dictionary.detach(),
        P.detach(),
        alpha,
        beta,
        pools=pools,
        positive=positive,
        max_iter=max_iter,
        tol=tol,
    )
    return psd_energy(X, inf.code, model.dictionary, P, inf.penalty, beta).mean()


@torch.no_grad()
def normalize_atoms(D: torch.Tensor) -> torch.Tensor:
    """In place: every row of ``D`` scaled to unit norm (rows of zero norm are left as they are)."""
    norms = torch.linalg.vector_norm(D, dim=1, keepdim=True)
    D.div_(torch.where(norms > 0, norms, torch.ones_like(norms)))
    return D
