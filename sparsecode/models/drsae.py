r"""Discriminative recurrent sparse auto-encoder (Rolfe & LeCun, ICLR 2013, arXiv 1301.3775).

A recurrent encoder of rectified linear units, unrolled for :math:`T` layers, with two linear
decoders: one reconstructs the input, one classifies the L2-normalised last state. With
scikit-learn's shapes (samples are rows; ``E`` and ``D`` are ``(n_components, n_features)``):

.. math::
    z_1 = \max(0, x E^T - b), \qquad
    z_{t+1} = \max(0, x E^T + z_t S^T - b), \quad t = 1, \dots, T-1,

    \hat x = z_T D, \qquad \text{logits} = \frac{z_T}{\|z_T\|_2} C^T .

:math:`z_1` is the first step from :math:`z_0 = 0`, so ``S`` is used :math:`T-1` times (the paper's
"ten nontrivial passes through S" for :math:`T = 11`). The losses, averaged over a minibatch, are

.. math::
    L^U = \tfrac12 \|x - z_T D\|_2^2 + \lambda \|z_T\|_1, \qquad
    L^S = -\log \operatorname{softmax}\Big(\frac{z_T}{\|z_T\|} C^T\Big)_y ,

pretraining minimizes :math:`w L^U` and fine-tuning :math:`w L^U + L^S`, where the reconstruction
weight :math:`w` is 1 in the paper's text and 5 in the author code (``rec_mag``, with the L1 weight
``0.09 = 5 * 0.018``). After every step the rows of
``D`` (the paper's decoder columns) are projected onto the unit ball, the rows of ``E`` onto the ball
of radius :math:`1.25/(T-1)` and the rows of ``C`` onto the ball of radius 5
(:meth:`DrSAE.project_`). Each parameter's rate is divided by the number of times it is repeated in
the unrolled network (``E`` and ``b``: :math:`T`; ``S``: :math:`T-1`; ``D`` and ``C``: once), and
``C``'s by 5 more (:meth:`DrSAE.param_groups`).

At the non-negative ISTA values (:meth:`DrSAE.init_from_dictionary`)

.. math::
    E = a D, \qquad S = I - a D D^T, \qquad b = a \lambda, \qquad a \le 1/L, \; L = \|D D^T\|_2,

the encoder computes exactly :math:`T` iterations of non-negative ISTA with step :math:`a` from zero.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..device import draw_device
from ..prox import normalize_rows_, project_rows_to_ball
from ..solvers.lipschitz import lipschitz_constant

__all__ = ["DrSAE", "unsupervised_loss", "supervised_loss", "ENCODER_BOUND", "CLASSIFIER_BOUND"]

ENCODER_BOUND = 1.25
"""Rows of ``E`` are bounded by ``ENCODER_BOUND / (T - 1)`` (the paper's heuristic)."""

CLASSIFIER_BOUND = 5.0
"""Rows of ``C`` are bounded by 5, and ``C``'s rate is divided by 5 (the paper's heuristic)."""


class DrSAE(nn.Module):
    """The DrSAE network: recurrent ReLU encoder, linear decoder, classifier on the normalised code.

    Parameters
    ----------
    n_features : int
        Input dimension ``m``.
    n_components : int
        Hidden units ``n``.
    n_classes : int
        Outputs ``l`` of the classifier.
    n_layers : int, default=11
        Unrolled layers ``T`` (>= 1).
    alpha : float, default=0.018
        Sparsity weight ``lambda`` of :math:`L^U`.
    reconstruction_weight : float, default=1.0
        The weight ``w`` of :math:`L^U` in both losses.
    device, dtype : optional
        Where and in which precision the parameters live.

    Attributes
    ----------
    encoder : Parameter, shape (n_components, n_features)
        ``E``.
    explain : Parameter, shape (n_components, n_components)
        The explaining-away matrix ``S``.
    bias : Parameter, shape (n_components,)
        ``b``.
    decoder : Parameter, shape (n_components, n_features)
        ``D``, rows are atoms (the paper's columns).
    classifier : Parameter, shape (n_classes, n_components)
        ``C``.

    Examples
    --------
    >>> net = DrSAE(4, 3, 2, n_layers=5)
    >>> _ = net.init_from_dictionary(torch.eye(3, 4))
    >>> net(torch.tensor([[1.0, 0.5, 0.0, 0.0]])).detach()  # 5 ISTA steps of size 1.25/4
    tensor([[0.8312, 0.4080, 0.0000]])
    """

    def __init__(self, n_features: int, n_components: int, n_classes: int, n_layers: int = 11,
                 alpha: float = 0.018, *, reconstruction_weight: float = 1.0, device=None, dtype=None):
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be at least 1, got {n_layers}.")
        options = dict(device=device, dtype=dtype)
        self.n_layers = int(n_layers)
        self.alpha = float(alpha)
        self.reconstruction_weight = float(reconstruction_weight)
        self.encoder = nn.Parameter(torch.zeros(n_components, n_features, **options))
        self.explain = nn.Parameter(torch.zeros(n_components, n_components, **options))
        self.bias = nn.Parameter(torch.zeros(n_components, **options))
        self.decoder = nn.Parameter(torch.zeros(n_components, n_features, **options))
        self.classifier = nn.Parameter(torch.zeros(n_classes, n_components, **options))

    @property
    def encoder_bound(self) -> float:
        """Radius of the rows of ``E``: ``1.25 / (T - 1)``, unbounded for ``T = 1``."""
        return ENCODER_BOUND / (self.n_layers - 1) if self.n_layers > 1 else float("inf")

    @torch.no_grad()
    def init_from_dictionary(self, dictionary: torch.Tensor, step: float | None = None) -> float:
        """Set the non-negative ISTA values from ``dictionary`` (rows are atoms) and a zero ``C``.

        Parameters
        ----------
        dictionary : Tensor, shape (n_components, n_features)
            Becomes ``D`` after projecting its rows onto the unit ball.
        step : float, optional
            The ISTA step ``a``. By default the largest step that is both a valid ISTA step,
            ``a <= 1/L``, and inside the encoder constraint, ``a * max_i ||D_i|| <= 1.25/(T-1)``, so the
            initial network already satisfies every constraint.

        Returns
        -------
        float
            The step ``a`` used.
        """
        D = project_rows_to_ball(dictionary.detach().to(self.decoder).clone())
        if step is None:
            L = lipschitz_constant(D)
            largest = float(torch.linalg.vector_norm(D, dim=1).max()) if D.numel() else 0.0
            candidates = [1.0 / L if L > 0 else 1.0]
            if largest > 0 and self.n_layers > 1:
                candidates.append(self.encoder_bound / largest)
            step = min(candidates)
        step = float(step)
        eye = torch.eye(D.shape[0], dtype=D.dtype, device=D.device)
        self.decoder.copy_(D)
        self.encoder.copy_(step * D)
        self.explain.copy_(eye - step * (D @ D.T))
        self.bias.fill_(step * self.alpha)
        self.classifier.zero_()
        return step

    @torch.no_grad()
    def init_from_samples(self, X: torch.Tensor, generator: torch.Generator | None = None) -> float:
        """The author code's start: :meth:`init_from_dictionary` on atoms made from training samples.

        Every atom is uniform noise in ``[-1/sqrt(n_components), 1/sqrt(n_components)]`` plus a
        quarter of a random row of ``X``, scaled to unit norm.

        Parameters
        ----------
        X : Tensor, shape (n_samples, n_features)
            Training samples; the atoms take their device and dtype.
        generator : torch.Generator, optional
            Draws the noise and the samples, on its own device.

        Returns
        -------
        float
            The ISTA step ``a`` of the initialisation.
        """
        n_components = self.decoder.shape[0]
        where = dict(generator=generator, device=draw_device(generator, X))
        noise = (2 * torch.rand(n_components, X.shape[1], dtype=X.dtype, **where) - 1) / n_components ** 0.5
        samples = torch.randint(0, X.shape[0], (n_components,), **where)
        atoms = noise.to(X.device) + 0.25 * X[samples.to(X.device)]
        return self.init_from_dictionary(normalize_rows_(atoms))

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """The codes ``z_T``, shape ``(n_samples, n_components)``."""
        if torch.is_grad_enabled():
            return _UnrolledEncoder.apply(X, self.encoder, self.explain, self.bias, self.n_layers)
        return _unroll(X, self.encoder, self.explain, self.bias, self.n_layers)[-1]

    def reconstruct(self, Z: torch.Tensor) -> torch.Tensor:
        """``Z D``, shape ``(n_samples, n_features)``."""
        return Z @ self.decoder

    def logits(self, Z: torch.Tensor) -> torch.Tensor:
        """``(Z / ||Z||) C^T``, shape ``(n_samples, n_classes)``; a zero code gives zero logits."""
        return F.normalize(Z, dim=1, eps=torch.finfo(Z.dtype).eps) @ self.classifier.T

    @torch.no_grad()
    def project_(self) -> None:
        """Project onto the constraints, in place: ``||D_i|| <= 1``, ``||E_i|| <= 1.25/(T-1)``,
        ``||C_k|| <= 5``."""
        project_rows_to_ball(self.decoder, 1.0)
        if self.n_layers > 1:
            project_rows_to_ball(self.encoder, self.encoder_bound)
        project_rows_to_ball(self.classifier, CLASSIFIER_BOUND)

    def param_groups(self, supervised: bool = True) -> list[dict]:
        """Parameter groups for :func:`sparsecode.training.fit_module` with the paper's rate multipliers.

        Each rate is divided by the parameter's repeat count in the unrolled network: ``E`` and ``b``
        by ``T``, ``S`` by ``T - 1``, ``D`` by 1 and ``C`` by 1 and then by 5. ``S`` is left out when
        ``T = 1`` (it is unused), ``C`` when ``supervised`` is False (pretraining).
        """
        T = self.n_layers
        groups = [
            {"params": [self.encoder], "lr_scale": 1.0 / T},
            {"params": [self.bias], "lr_scale": 1.0 / T},
            {"params": [self.decoder], "lr_scale": 1.0},
        ]
        if T > 1:
            groups.insert(1, {"params": [self.explain], "lr_scale": 1.0 / (T - 1)})
        if supervised:
            groups.append({"params": [self.classifier], "lr_scale": 1.0 / CLASSIFIER_BOUND})
        return groups


def _unroll(X, E, S, b, n_layers: int, keep: bool = False) -> list[torch.Tensor]:
    """The states ``[z_1, ..., z_T]`` with ``keep``, else ``[z_T]``; differentiable.

    The soft threshold of ``x E^T + z S^T`` by ``b`` is the ReLU of ``(x E^T - b) + z S^T``, so the
    shifted drive is formed once and each layer costs one ``addmm`` and one in-place ReLU.
    """
    shifted = torch.addmm(-b, X, E.T)
    states = [torch.relu(shifted)]
    for _ in range(n_layers - 1):
        Z = torch.addmm(shifted, states[-1], S.T).relu_()
        if keep:
            states.append(Z)
        else:
            states = [Z]
    return states


class _UnrolledEncoder(torch.autograd.Function):
    """``z_T`` with a hand-written backward through the ``T`` layers.

    On minibatches of ten, autograd's graph of the loop costs more than its small matrix products;
    the backward here is one masked product per layer and one product for ``S``'s gradient over all
    layers. Under ``create_graph=True`` (the power method's Hessian-vector products) it
    differentiates a recomputed autograd graph of the loop instead, so double backward is exact.
    """

    @staticmethod
    def forward(ctx, X, E, S, b, n_layers):
        states = _unroll(X, E, S, b, n_layers, keep=True)
        ctx.n_layers = n_layers
        ctx.save_for_backward(X, E, S, b, *states)
        return states[-1]

    @staticmethod
    def backward(ctx, G):
        X, E, S, b, *states = ctx.saved_tensors
        if torch.is_grad_enabled():
            wanted = [t for t, need in zip((X, E, S, b), ctx.needs_input_grad) if need]
            Z = _unroll(X, E, S, b, ctx.n_layers)[-1]
            grads = iter(torch.autograd.grad(Z, wanted, G, create_graph=True, allow_unused=True))
            return (*(next(grads) if need else None for need in ctx.needs_input_grad[:4]), None)
        # H_t: the gradient at layer t's pre-activation, zero where the ReLU is off
        H = [None] * len(states)
        for t in range(len(states) - 1, -1, -1):
            H[t] = torch.ops.aten.threshold_backward(G, states[t], 0)
            if t:
                G = H[t] @ S
        d_shifted = torch.stack(H).sum(0)  # x E^T - b feeds every layer
        dS = torch.cat(H[1:]).T @ torch.cat(states[:-1]) if len(states) > 1 else None
        dX = d_shifted @ E if ctx.needs_input_grad[0] else None
        return dX, d_shifted.T @ X, dS, -d_shifted.sum(0), None


def _reconstruction_terms(module: DrSAE, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The codes and ``w L^U`` per sample."""
    Z = module(X)
    R = X - module.reconstruct(Z)
    return Z, module.reconstruction_weight * (0.5 * (R * R).sum(1) + module.alpha * Z.sum(1))


def unsupervised_loss(module: DrSAE, X: torch.Tensor, *_) -> torch.Tensor:
    """Mean :math:`w L^U = w (\\tfrac12\\|x - z_T D\\|^2 + \\lambda\\|z_T\\|_1)` over the batch.

    Extra batch tensors (the labels) are ignored, so both stages can train on ``(X, y)``.
    """
    return _reconstruction_terms(module, X)[1].mean()


def supervised_loss(module: DrSAE, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean :math:`w L^U + L^S` over the batch; ``y`` holds class indices ``0..n_classes-1``."""
    Z, recon = _reconstruction_terms(module, X)
    return recon.mean() + F.cross_entropy(module.logits(Z), y)
