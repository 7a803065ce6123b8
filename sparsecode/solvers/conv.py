r"""The convolutional lasso, batched over images (Kavukcuoglu et al., NIPS 2010; Zeiler et al., CVPR 2010).

With the operator pair of :mod:`sparsecode.convolution` and optional per-pixel weights :math:`w` on the
reconstruction error,

.. math::
    E(x, z) = \tfrac12 \big\| \sqrt{w} \odot (x - Az) \big\|_2^2 + \alpha \|z\|_1 ,

is solved by FISTA, :math:`z^{k+1} = h_{\alpha/L}\big(y^k - \tfrac1L A^T(w \odot (Ay^k - x))\big)`,
with :math:`L \ge \|\operatorname{diag}(\sqrt{w}) A\|_2^2`.
"""

from __future__ import annotations

import torch

from ..convolution import ConvOperator, as_images, as_kernels, conv_lipschitz_constant
from ..prox import shrink
from ._common import SolveResult
from .proxgrad import prox_grad_loop

__all__ = ["conv_lasso_energy", "conv_fista", "conv_ista"]


def _weighted_residual(X, Z, op, weights):
    R = X - op.reconstruct(Z)
    return R, (R if weights is None else weights * R)


def conv_lasso_energy(
    X: torch.Tensor,
    Z: torch.Tensor,
    D: torch.Tensor,
    alpha: float,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-image energy ``0.5*||sqrt(w)(x - sum_k D_k * z_k)||^2 + alpha*||z||_1``, shape ``(n,)``.

    Examples
    --------
    >>> X = torch.ones(1, 1, 2, 2); Z = torch.ones(1, 1, 2, 2)
    >>> conv_lasso_energy(X, Z, torch.ones(1, 1, 1, 1), 0.5)
    tensor([2.])
    """
    X = as_images(X)
    R, WR = _weighted_residual(X, Z, ConvOperator(D, X.shape[-2:]), weights)
    return 0.5 * (R * WR).flatten(1).sum(1) + alpha * Z.abs().flatten(1).sum(1)


def _relative_gap(X, Z, op, alpha, positive, weights):
    """Duality gap of the (weighted) convolutional lasso over ``0.5*||sqrt(w) x||^2``, per image.

    With :math:`x' = \\sqrt{w}x` and :math:`A' = \\sqrt{w}A` it is the lasso gap of
    :func:`duality_gap`:
    the dual point is :math:`\\nu = r'\\min(1, \\alpha/\\|A'^Tr'\\|_\\infty)`.
    """
    R, WR = _weighted_residual(X, Z, op, weights)
    WX = X if weights is None else weights * X
    C = op.correlate(WR).flatten(1)
    dnorm = C.amax(1).clamp(min=0) if positive else C.abs().amax(1)
    scale = torch.where(
        dnorm > alpha, alpha / dnorm.clamp(min=torch.finfo(X.dtype).tiny), torch.ones_like(dnorm)
    )
    primal = 0.5 * (R * WR).flatten(1).sum(1) + alpha * Z.abs().flatten(1).sum(1)
    xx = (X * WX).flatten(1).sum(1)
    # 0.5||x'||^2 - 0.5||x' - s r'||^2 = s <x', r'> - 0.5 s^2 ||r'||^2 (all in the weighted metric)
    dual = scale * (X * WR).flatten(1).sum(1) - 0.5 * scale**2 * (R * WR).flatten(1).sum(1)
    return (primal - dual) / (0.5 * xx).clamp(min=torch.finfo(X.dtype).tiny)


def _chunk(X, op, Z, weights, alpha, positive, step, max_iter, tol, momentum, restart, check_every):
    """ISTA/FISTA on one chunk of images; converged images leave the batch at each check.

    The gradient step is :math:`y - \\tfrac1L A^T(w \\odot (Ay - x))`, computed in place.
    """

    def gradient_step(Y, batch):
        R = op.reconstruct(Y).sub_(batch[0])
        if weights is not None:
            R.mul_(weights)
        return shrink(torch.add(Y, op.correlate(R), alpha=-step), alpha * step, positive)

    def gap(Za, batch):
        return _relative_gap(batch[0], Za, op, alpha, positive, weights)

    return prox_grad_loop(Z, [X], gradient_step, gap, max_iter=max_iter, tol=tol, momentum=momentum,
                          restart=restart, check_every=check_every)


def _solve(
    X,
    D,
    alpha,
    *,
    z0,
    max_iter,
    tol,
    positive,
    L,
    weights,
    momentum,
    restart,
    check_every,
    chunk_size,
    method,
):
    X, D = as_images(X), as_kernels(D).to(X)
    if X.shape[1] != D.shape[1]:
        raise ValueError(f"images have {X.shape[1]} channel(s) but the kernels {D.shape[1]}.")
    op = ConvOperator(D, X.shape[-2:], method)
    n, K = X.shape[0], D.shape[0]
    h, w = op.code_size
    if z0 is not None and tuple(z0.shape) != (n, K, h, w):
        raise ValueError(f"z0 must have shape {(n, K, h, w)}, got {tuple(z0.shape)}.")
    if weights is not None:
        weights = weights.to(X)
    Z0 = X.new_zeros((n, K, h, w)) if z0 is None else z0.to(X)
    if L is None:
        L = conv_lipschitz_constant(D, X.shape[-2:], weights=weights)
    if n == 0 or float(L) <= 0:  # no image, or all-zero kernels: the zero code is optimal
        zeros = X.new_zeros((n, K, h, w))
        return SolveResult(
            zeros, 0, torch.ones(n, dtype=torch.bool, device=X.device), X.new_zeros(n)
        )
    chunk = chunk_size or max(1, (1 << 23) // max(K * h * w, X[0].numel(), 1))
    parts = [
        _chunk(
            X[s : s + chunk],
            op,
            Z0[s : s + chunk],
            weights,
            float(alpha),
            positive,
            1.0 / float(L),
            max_iter,
            tol,
            momentum,
            restart,
            check_every,
        )
        for s in range(0, n, chunk)
    ]
    codes, iters, conv, gaps = zip(*parts)
    return SolveResult(torch.cat(codes), max(iters), torch.cat(conv), torch.cat(gaps))


def conv_fista(
    X: torch.Tensor,
    D: torch.Tensor,
    alpha: float = 1.0,
    *,
    z0: torch.Tensor | None = None,
    max_iter: int = 1000,
    tol: float = 1e-5,
    positive: bool = False,
    L: float | None = None,
    weights: torch.Tensor | None = None,
    restart: bool = True,
    check_every: int = 10,
    chunk_size: int | None = None,
    method: str = "auto",
) -> SolveResult:
    """FISTA for the convolutional lasso, batched over images (see the module doc).

    Parameters
    ----------
    X : torch.Tensor, shape (n, C, H, W) or (n, H, W)
    D : torch.Tensor, shape (K, C, kh, kw) or (K, kh, kw)
        Kernels; moved to ``X``'s device and dtype.
    alpha : float
    z0 : torch.Tensor, shape (n, K, H-kh+1, W-kw+1), optional
        Warm start (e.g. an encoder's prediction).
    max_iter : int
        Iterations at most; 0 returns ``z0``.
    tol : float
        Stop an image when its duality gap is below ``tol * 0.5*||sqrt(w) x||^2``; 0 runs
        ``max_iter``.
    positive : bool
        Constrain the codes to be non-negative.
    L : float, optional
        Lipschitz constant; :func:`conv_lipschitz_constant` (the FFT bound) when omitted.
    weights : torch.Tensor, shape (H, W), optional
        Per-pixel weights of the reconstruction error (e.g. :func:`border_weights`).
    restart : bool
        Adaptive momentum restart (O'Donoghue & Candès 2015), per image.
    check_every : int
        Iterations between duality-gap checks.
    chunk_size : int, optional
        Images per chunk (bounded memory).
    method : {"auto", "fft", "direct"}, default="auto"
        How the reconstruction :math:`Az` is computed (:class:`ConvOperator`): both are exact for
        the same ("valid" maps, full reconstruction) model and differ only in speed.

    Returns
    -------
    SolveResult
        ``code`` has shape ``(n, K, H-kh+1, W-kw+1)``; ``gap`` is the relative duality gap.

    Examples
    --------
    >>> X = torch.tensor([[[2.0, 0.5, 3.0]]])
    >>> conv_fista(X, torch.ones(1, 1, 1), alpha=1.0).code.round(decimals=4)
    tensor([[[[1., 0., 2.]]]])
    """
    return _solve(
        X,
        D,
        alpha,
        z0=z0,
        max_iter=max_iter,
        tol=tol,
        positive=positive,
        L=L,
        weights=weights,
        momentum=True,
        restart=restart,
        check_every=check_every,
        chunk_size=chunk_size,
        method=method,
    )


def conv_ista(
    X: torch.Tensor,
    D: torch.Tensor,
    alpha: float = 1.0,
    *,
    z0: torch.Tensor | None = None,
    max_iter: int = 1000,
    tol: float = 1e-5,
    positive: bool = False,
    L: float | None = None,
    weights: torch.Tensor | None = None,
    check_every: int = 10,
    chunk_size: int | None = None,
    method: str = "auto",
) -> SolveResult:
    """ISTA for the convolutional lasso (monotone energy); same parameters as :func:`conv_fista`."""
    return _solve(
        X,
        D,
        alpha,
        z0=z0,
        max_iter=max_iter,
        tol=tol,
        positive=positive,
        L=L,
        weights=weights,
        momentum=False,
        restart=False,
        check_every=check_every,
        chunk_size=chunk_size,
        method=method,
    )
