r"""Predictive sparse decomposition (Kavukcuoglu, Ranzato & LeCun 2008; ``LinearPsd.lua``).

The energy of an input :math:`x` and a code :math:`z` couples a sparse decoder and a feed-forward
encoder :math:`F`,

.. math::
    E(x, z) = \tfrac12\|x - zD\|^2 + \Omega(z) + \beta\|z - F(x)\|^2 ,

with :math:`\Omega = \alpha\|\cdot\|_1`, a group lasso or the topographic latent group lasso
(:mod:`sparsecode.topography`; Kavukcuoglu et al. CVPR 2009). The prediction term is a quadratic, so
with :math:`p = F(x)` and :math:`c = \sqrt{2\beta}` the minimisation over :math:`z` is a lasso with
the augmented input and dictionary

.. math::
    \tilde x = [x,\ c\,p], \qquad \tilde D = [D,\ c\,I], \qquad
    \tfrac12\|\tilde x - z\tilde D\|^2 = \tfrac12\|x - zD\|^2 + \beta\|z - p\|^2 ,

solved by the library's FISTA warm-started at :math:`z = p` (:func:`psd_inference`). Training (the
authors' ``psd.lua``): predict :math:`p = F(x)`, infer :math:`z^\star` with :math:`D, F` fixed, then
one optimizer step on :math:`E(x, z^\star)`: its gradient moves :math:`D` by the reconstruction error
and :math:`F` toward :math:`z^\star` (:func:`psd_loss`); after each step the atoms are renormalised
to unit norm (:meth:`PSD.project_`). At test time :math:`F(x)` alone approximates :math:`z^\star`.

The feed-forward predictors of the sparse code, with filters :math:`W \in \mathbb R^{m\times n}`
(rows, like atoms), bias :math:`b` and a diagonal gain :math:`g`:

.. math::
    F_{tanh}(x) = g \odot \tanh(xW^T + b), \qquad
    F_{shrink}(x) = g \odot h_\theta(xW^T + b), \qquad
    F_{linear}(x) = xW^T + b ,

with :math:`h_\theta` the soft threshold (learned per-unit :math:`\theta`; non-negative with
``positive``). Each is initialised from a dictionary :math:`D` as one ISTA step from zero:
:math:`W = D / L` with :math:`L = \|D\|_2^2`, :math:`b = 0` (without an offset, below), :math:`g = 1` (and
:math:`\theta = \alpha / L`),
so :math:`F_{shrink}` starts as ISTA's first iterate, and the others as its linear part (through a
``tanh``). Its codes then rebuild :math:`x` by a contraction, :math:`xD^TD/L`. With :math:`W = D` (unit step)
an overcomplete dictionary's codes rebuilt :math:`x` magnified by up to :math:`L`; on a few hundred digits
(one step a pass), 100 passes left the encoder's codes rebuilding them ten times worse than their mean.
:class:`PSD` holds an encoder and the decoder :math:`D` trained together by :func:`psd_loss`.

Each encoder may see its inputs shifted by a fixed ``offset`` :math:`\mu` (the training data's mean),
:math:`(x - \mu)W^T + b` with :math:`b = \mu W^T` at first: the same functions, but gradient descent on
:math:`W` and :math:`b` is well conditioned only for inputs of zero mean (the lectures' "to avoid ill
conditioning: normalize the inputs, zero mean"; LeCun, Bottou, Orr & Muller, "Efficient BackProp", 1998).
On data far from zero mean (pixel values, unit-norm rows) an encoder trained on the raw inputs predicted
codes that reconstructed the data worse than its mean does, after 100 passes.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from ..penalties import make_penalty
from ..prox import normalize_rows_, shrink
from ..solvers import fista
from ..topography import Pools

__all__ = [
    "TanhEncoder", "ShrinkEncoder", "LinearEncoder", "ENCODERS", "PSD",
    "PSDCode", "psd_inference", "psd_energy", "psd_loss",
]


def _ista_step(D: torch.Tensor) -> float:
    """ISTA's step ``1 / L`` for the dictionary ``D``, ``L = ||D||_2^2``."""
    return 1 / max(float(torch.linalg.matrix_norm(D.detach(), ord=2)) ** 2, torch.finfo(D.dtype).tiny)


class LinearEncoder(nn.Module):
    """:math:`F(x) = (x - \\mu)W^T + b`, initialised at ``W = dictionary / L``, ``b = \\mu W^T`` (module doc).

    Parameters
    ----------
    dictionary : torch.Tensor, shape (n_components, n_features)
        Sets the initial filters, the device and the dtype.
    offset : torch.Tensor, shape (n_features,), optional
        The fixed input shift :math:`\\mu` (a buffer; module description); zero when None.
    """

    def __init__(self, dictionary: torch.Tensor, offset: torch.Tensor | None = None, **_):
        super().__init__()
        D = dictionary.detach()
        self.weight = nn.Parameter(D * _ista_step(D))
        mu = D.new_zeros(D.shape[1]) if offset is None else offset.detach().to(D)
        self.register_buffer("offset", mu.clone())
        self.bias = nn.Parameter(mu @ self.weight.detach().T)

    def linear(self, X: torch.Tensor) -> torch.Tensor:
        return (X - self.offset) @ self.weight.T + self.bias

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return self.linear(X)


class TanhEncoder(LinearEncoder):
    """:math:`F(x) = g \\odot \\tanh(xW^T + b)` with a learned diagonal gain ``g`` (initially 1).

    Examples
    --------
    >>> enc = TanhEncoder(torch.eye(2))
    >>> enc(torch.tensor([[0.0, 1.0]]))
    tensor([[0.0000, 0.7616]], grad_fn=<MulBackward0>)
    """

    def __init__(self, dictionary: torch.Tensor, offset: torch.Tensor | None = None, **_):
        super().__init__(dictionary, offset)
        self.gain = nn.Parameter(dictionary.new_ones(dictionary.shape[0]))

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return self.gain * torch.tanh(self.linear(X))


class ShrinkEncoder(TanhEncoder):
    """:math:`F(x) = g \\odot h_\\theta(xW^T + b)`, learned thresholds (initially ``alpha / L``).

    Parameters
    ----------
    dictionary : torch.Tensor, shape (n_components, n_features)
    alpha : float
        The lasso's penalty: the initial threshold is ``alpha / L``.
    positive : bool
        Non-negative shrinkage.
    """

    def __init__(self, dictionary: torch.Tensor, alpha: float = 1.0, positive: bool = False,
                 offset: torch.Tensor | None = None, **_):
        super().__init__(dictionary, offset)
        initial = float(alpha) * _ista_step(dictionary)
        self.threshold = nn.Parameter(dictionary.new_full((dictionary.shape[0],), initial))
        self.positive = positive

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return self.gain * shrink(self.linear(X), self.threshold, self.positive)


ENCODERS = {"tanh": TanhEncoder, "shrink": ShrinkEncoder, "linear": LinearEncoder}


class PSD(nn.Module):
    """An encoder :math:`F` and a decoder :math:`D` (rows are atoms) trained jointly.

    Parameters
    ----------
    dictionary : torch.Tensor, shape (n_components, n_features)
        Initial decoder; also initialises the encoder's filters.
    encoder : {"tanh", "shrink", "linear"}, default="tanh"
    alpha : float, default=1.0
        The penalty: the shrinkage encoder's initial threshold is ``alpha / L``.
    positive : bool, default=False
        Non-negative shrinkage encoder.
    offset : torch.Tensor, shape (n_features,), optional
        The encoder's fixed input shift (module description), the training data's mean; zero when None.

    Examples
    --------
    >>> model = PSD(torch.eye(3), encoder="linear")
    >>> model.decode(model(torch.ones(1, 3))).shape
    torch.Size([1, 3])
    """

    def __init__(
        self,
        dictionary: torch.Tensor,
        encoder: str = "tanh",
        alpha: float = 1.0,
        positive: bool = False,
        offset: torch.Tensor | None = None,
    ):
        super().__init__()
        if encoder not in ENCODERS:
            raise ValueError(f"encoder={encoder!r} is not one of {sorted(ENCODERS)}.")
        self.dictionary = nn.Parameter(dictionary.detach().clone())
        self.encoder = ENCODERS[encoder](dictionary, alpha=alpha, positive=positive, offset=offset)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """The predicted codes :math:`F(x)`."""
        return self.encoder(X)

    def decode(self, Z: torch.Tensor) -> torch.Tensor:
        """Reconstruction :math:`zD`."""
        return Z @ self.dictionary

    @torch.no_grad()
    def project_(self) -> None:
        """Unit-norm atoms (zero atoms stay zero); run after every optimizer step."""
        normalize_rows_(self.dictionary)


class PSDCode(NamedTuple):
    """Result of :func:`psd_inference`.

    Attributes
    ----------
    code : torch.Tensor, shape (n_samples, n_components)
        :math:`z^\\star`.
    penalty : torch.Tensor, shape (n_samples,)
        :math:`\\Omega(z^\\star)` (for overlapping pools, the latent norm of the lifted solution).
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
def psd_inference(X: torch.Tensor, D: torch.Tensor, P: torch.Tensor, alpha: float, beta: float, *,
                  pools: Pools | None = None, positive: bool = False, max_iter: int = 100,
                  tol: float = 1e-4) -> PSDCode:
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
    penalty = make_penalty(positive=positive, pools=pools).to(X)
    res = fista(Xa, Da, alpha, penalty=penalty, z0=P.to(X), max_iter=max_iter, tol=tol)
    return PSDCode(res.code, penalty.solution_value(res, alpha), res.n_iter, res.converged)


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


def psd_loss(model: torch.nn.Module, X: torch.Tensor, *, alpha: float, beta: float, pools: Pools | None = None,
             positive: bool = False, max_iter: int = 100, tol: float = 1e-4) -> torch.Tensor:
    """Mean energy at the inferred codes: the loss of one PSD training step.

    ``model`` has an ``encoder`` (the module :math:`F`) and a ``dictionary`` parameter :math:`D`, as
    :class:`PSD`. :math:`z^\\star` is computed without gradient, so the decoder gets the
    reconstruction gradient and the encoder the prediction gradient
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
