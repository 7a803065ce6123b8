r"""Convolutional predictive sparse decomposition (ConvPSD; Kavukcuoglu et al., NIPS 2010).

Energy of an image :math:`x` (``C`` channels) with feature maps :math:`z_k` ("valid" size):

.. math::
    L(x, z) = \tfrac12 \Big\|\sqrt{w}\odot\big(x - \textstyle\sum_k D_k * z_k\big)\Big\|_2^2
    + \alpha \|z\|_1 + \gamma \sum_k \big\|z_k - f_k(W_k \star x)\big\|_2^2 ,

with unit-norm decoder kernels :math:`D_k`, encoder kernels :math:`W_k` and, per map, either the
smooth shrinkage :math:`f_k = \operatorname{sh}_{\beta_k, b_k}` (learned :math:`\beta_k, b_k`) or
:math:`f_k = g_k \tanh` (learned gain). :math:`w` is the border weighting of
:func:`sparsecode.convolution.border_weights` (or 1), :math:`\gamma` the prediction weight (the author code
has no 1/2 on that term).

Training step (author code, ``psd.lua``): predict :math:`z^0 = f(W \star x)`; infer :math:`z^*` as
the minimizer of the decoder's part, the weighted convolutional lasso (reconstruction + sparsity),
by FISTA started from :math:`z^0`; take a gradient step on :math:`L(x, z^*)` in
:math:`D, W, \beta, b, g`; renormalize every :math:`D_k` to unit norm. Test-time inference is the
encoder alone.
"""

from __future__ import annotations

import torch
from torch import nn

from ..convolution import ConvOperator, border_weights, conv_correlate, conv_lipschitz_constant
from ..device import draw_device
from ..dictionary import init_dictionary
from ..prox import normalize_rows_, smooth_shrink
from ..solvers.conv import conv_fista

__all__ = ["ConvPSD", "CONV_ENCODERS", "PLAIN_GRADIENT_OPTIMIZERS", "patch_kernels"]

CONV_ENCODERS = ("shrink", "tanh")

PLAIN_GRADIENT_OPTIMIZERS = frozenset({"sgd", "momentum", "nesterov", "asgd"})
"""Optimizers whose step is the base rate times the gradient (see :meth:`ConvPSD.param_groups`)."""


def patch_kernels(
    x: torch.Tensor,
    n_kernels: int,
    kernel_size: tuple[int, int],
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``n_kernels`` unit-norm kernels ``(K, C, kh, kw)``: patches of the images ``x`` at random places.

    As :func:`sparsecode.dictionary.init_dictionary` starts a patch dictionary from data rows: a
    decoder started from image structure learns clean oriented filters, one started from white noise
    keeps much of its noise within a short training budget.

    Parameters
    ----------
    x : torch.Tensor, shape (n, C, H, W)
    n_kernels : int
    kernel_size : (int, int)
        At most ``(H, W)``.
    generator : torch.Generator, optional
        Draws the places (on its own device) and the jitter of ``init_dictionary``.

    Returns
    -------
    torch.Tensor, shape (n_kernels, C, kh, kw)
    """
    (n, _, H, W), (kh, kw) = x.shape, kernel_size
    where = dict(generator=generator, device=draw_device(generator, x))
    img = torch.randint(n, (n_kernels,), **where).tolist()
    row = torch.randint(H - kh + 1, (n_kernels,), **where).tolist()
    col = torch.randint(W - kw + 1, (n_kernels,), **where).tolist()
    patches = torch.stack([x[i, :, r : r + kh, c : c + kw] for i, r, c in zip(img, row, col)])
    return init_dictionary(patches.flatten(1), n_kernels, generator).view(patches.shape)


class ConvPSD(nn.Module):
    """Convolutional PSD: encoder :math:`f(W \\star x)`, decoder :math:`\\sum_k D_k * z_k`.

    Initialised from kernels ``D``: the decoder is ``D`` renormalized, and the encoder one ISTA step
    from zero, ``W = D / L`` and ``b = alpha / L``, so that with ``beta -> inf`` the prediction is
    :math:`h_{\\alpha/L}(D \\star x / L)`, FISTA's first iterate. ``beta`` defaults to ``5 / b``:
    the smooth shrinkage is then within :math:`b\\log(2)/5` of that soft threshold. The tanh
    encoder starts with gain 1. :meth:`from_images` starts from patches of images.

    Parameters
    ----------
    kernels : torch.Tensor, shape (K, C, kh, kw)
        Initial decoder kernels; they set the device and the dtype.
    L : float
        Lipschitz constant of the decoder (:func:`sparsecode.convolution.conv_lipschitz_constant`).
    alpha : float, default=1.0
        Sparsity weight of the energy.
    encoder : {"shrink", "tanh"}, default="shrink"
    beta : float, optional
        Initial smooth-shrinkage sharpness (``encoder="shrink"``).
    prediction_weight : float, default=1.0
        Weight :math:`\\gamma` of the encoder prediction term.
    border_weighting : bool, default=True
        Weight the reconstruction error by kernel coverage.
    inference_max_iter : int, default=50
        FISTA iterations for :math:`z^*` in :meth:`training_loss`.
    inference_tol : float, default=1e-4
        Relative duality-gap tolerance of that FISTA.

    Attributes
    ----------
    decoder_weight : nn.Parameter, shape (K, C, kh, kw)
    encoder_weight : nn.Parameter, shape (K, C, kh, kw)
    beta, threshold : nn.Parameter, shape (K,)
        Smooth-shrinkage sharpness and threshold (``encoder="shrink"``).
    gain : nn.Parameter, shape (K,)
        Output gain (``encoder="tanh"``).

    Examples
    --------
    >>> m = ConvPSD(torch.randn(4, 1, 3, 3, generator=torch.Generator().manual_seed(0)), L=5.0)
    >>> m(torch.randn(2, 1, 8, 8)).shape
    torch.Size([2, 4, 6, 6])
    """

    def __init__(
        self,
        kernels: torch.Tensor,
        L: float,
        *,
        alpha: float = 1.0,
        encoder: str = "shrink",
        beta: float | None = None,
        prediction_weight: float = 1.0,
        border_weighting: bool = True,
        inference_max_iter: int = 50,
        inference_tol: float = 1e-4,
    ):
        super().__init__()
        if encoder not in CONV_ENCODERS:
            raise ValueError(f"encoder={encoder!r} is not one of {CONV_ENCODERS}.")
        if kernels.ndim != 4:
            raise ValueError(f"kernels must be (K, C, kh, kw); got shape {tuple(kernels.shape)}.")
        self.encoder = encoder
        self.alpha = float(alpha)
        self.prediction_weight = float(prediction_weight)
        self.border_weighting = border_weighting
        self.inference_max_iter = inference_max_iter
        self.inference_tol = inference_tol
        self.decoder_weight = nn.Parameter(normalize_rows_(kernels.detach().clone()))
        self.encoder_weight = nn.Parameter(self.decoder_weight.detach() / L)
        K = kernels.shape[0]
        if encoder == "shrink":
            b = self.alpha / L
            beta = beta if beta is not None else 5.0 / max(b, torch.finfo(kernels.dtype).tiny)
            self.beta = nn.Parameter(kernels.new_full((K,), beta))
            self.threshold = nn.Parameter(kernels.new_full((K,), b))
        else:
            self.gain = nn.Parameter(kernels.new_ones(K))

    @classmethod
    def from_images(
        cls,
        x: torch.Tensor,
        n_kernels: int,
        kernel_size: tuple[int, int],
        generator: torch.Generator | None = None,
        *,
        border_weighting: bool = True,
        **options,
    ) -> ConvPSD:
        """A ConvPSD started from :func:`patch_kernels` of the images ``x`` and their Lipschitz constant.

        Parameters
        ----------
        x : torch.Tensor, shape (n, C, H, W)
            Training images; they set the device and the dtype.
        n_kernels : int
        kernel_size : (int, int)
            At most ``(H, W)``.
        generator : torch.Generator, optional
        border_weighting : bool, default=True
        **options
            The other parameters of :class:`ConvPSD`.

        Returns
        -------
        ConvPSD
        """
        D = patch_kernels(x, n_kernels, kernel_size, generator)
        weights = border_weights(x.shape[-2:], kernel_size, like=x) if border_weighting else None
        L = conv_lipschitz_constant(D, x.shape[-2:], weights=weights)
        return cls(D, L, border_weighting=border_weighting, **options)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The encoder's prediction ``f(W * x)``, shape ``(n, K, H-kh+1, W-kw+1)``."""
        s = conv_correlate(x, self.encoder_weight)
        if self.encoder == "shrink":
            return smooth_shrink(s, self.beta.view(-1, 1, 1), self.threshold.view(-1, 1, 1))
        return self.gain.view(-1, 1, 1) * torch.tanh(s)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Reconstruction :math:`\\sum_k D_k * z_k`, shape ``(n, C, H, W)`` (differentiable)."""
        kh, kw = self.decoder_weight.shape[-2:]
        size = (z.shape[-2] + kh - 1, z.shape[-1] + kw - 1)
        return ConvOperator(self.decoder_weight, size).reconstruct(z)

    def reconstruction_weights(self, x: torch.Tensor) -> torch.Tensor | None:
        """Border weights ``(H, W)`` for images like ``x``, or None without border weighting."""
        if not self.border_weighting:
            return None
        return border_weights(x.shape[-2:], self.decoder_weight.shape[-2:], like=x)

    @torch.no_grad()
    def infer(
        self, x: torch.Tensor, *, max_iter: int | None = None, tol: float | None = None
    ) -> torch.Tensor:
        """:math:`z^*`: FISTA on the weighted convolutional lasso from the prediction.

        The step is one over the FFT bound of the Lipschitz constant
        (:func:`sparsecode.convolution.conv_lipschitz_constant`), which costs no operator application.
        """
        weights = self.reconstruction_weights(x)
        D = self.decoder_weight.detach()
        L = conv_lipschitz_constant(D, x.shape[-2:], weights=weights)
        return conv_fista(
            x,
            D,
            self.alpha,
            z0=self(x),
            weights=weights,
            L=L,
            max_iter=self.inference_max_iter if max_iter is None else max_iter,
            tol=self.inference_tol if tol is None else tol,
        ).code

    def residuals(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Residuals ``(n, C*H*W + K*h*w)``: half their squared norm is the energy's smooth part."""
        weights = self.reconstruction_weights(x)
        r = x - self.decode(z)
        if weights is not None:
            r = r * weights.sqrt()
        p = (2 * self.prediction_weight) ** 0.5 * (z - self(x))
        return torch.cat([r.flatten(1), p.flatten(1)], dim=1)

    def energy(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Per-image energy :math:`L(x, z)` (see the module doc), shape ``(n,)``."""
        r = self.residuals(x, z)
        return 0.5 * (r * r).sum(1) + self.alpha * z.abs().flatten(1).sum(1)

    def training_loss(self, x: torch.Tensor) -> torch.Tensor:
        """Mean energy at :math:`z^*` (inferred without gradient): the loss for ``fit_module``."""
        return self.energy(x, self.infer(x)).mean()

    def training_residuals(self, x: torch.Tensor) -> torch.Tensor:
        """Residuals at :math:`z^*`, for SDLM's Gauss-Newton diagonal."""
        return self.residuals(x, self.infer(x))

    @torch.no_grad()
    def project_(self) -> None:
        """Unit-norm decoder kernels; ``beta > 0`` and ``threshold >= 0``."""
        normalize_rows_(self.decoder_weight)
        if self.encoder == "shrink":
            self.beta.clamp_(min=torch.finfo(self.beta.dtype).eps)
            self.threshold.clamp_(min=0)

    def param_groups(self, x: torch.Tensor, optimizer) -> list[dict] | None:
        """Parameter groups for :func:`sparsecode.training.fit_module` on images like ``x``.

        For plain gradient steps (:data:`PLAIN_GRADIENT_OPTIMIZERS`): the decoder (and ``beta``,
        ``gain``) at the base rate, ``W`` and ``b`` at ``1 / L``; None (one rate) for the optimizers
        that scale their own steps.

        The encoder starts as one ISTA step, ``W = D / L`` and ``b = alpha / L``, so its parameters
        are ``L`` times smaller than the unit-norm kernels while its gradient is not (it is larger:
        every position of every map feeds it). With one SGD rate for both, the kernels stay near
        their initialisation or the encoder diverges; scaling the encoder's rate by ``1 / L`` (``L``
        of the current kernels) lets the kernels take large steps. Adam, RMSprop, SDLM and L-BFGS
        normalise each step by the gradient or the curvature already.
        """
        if not (isinstance(optimizer, str) and optimizer in PLAIN_GRADIENT_OPTIMIZERS):
            return None
        weights = self.reconstruction_weights(x)
        L = conv_lipschitz_constant(self.decoder_weight.detach(), x.shape[-2:], weights=weights)
        encoder = [self.encoder_weight]
        if self.encoder == "shrink":
            encoder.append(self.threshold)
        others = [p for p in self.parameters() if all(p is not q for q in encoder)]
        return [{"params": others, "lr_scale": 1.0}, {"params": encoder, "lr_scale": 1.0 / L}]
