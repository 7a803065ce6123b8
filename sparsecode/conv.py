r"""Convolutional sparse coding: the operator pair, its Lipschitz constant, and the batched lasso.

Images are ``(n, C, H, W)`` tensors, kernels ``D`` are ``(K, C, kh, kw)`` (``D[k]`` is the ``k``-th
multi-channel kernel) and codes are ``(n, K, H - kh + 1, W - kw + 1)`` "valid" feature maps. The
reconstruction is the full convolution of the maps with the kernels, back to the image size
(Kavukcuoglu et al., NIPS 2010; Zeiler et al., CVPR 2010):

.. math::
    (Az)_c = \sum_k D_{k,c} * z_k \quad (\texttt{conv\_transpose2d}), \qquad
    (A^T r)_k = \sum_c D_{k,c} \star r_c \quad (\texttt{conv2d}).

The convolutional lasso, optionally with per-pixel weights :math:`w` on the reconstruction error,

.. math::
    E(x, z) = \tfrac12 \big\| \sqrt{w} \odot (x - Az) \big\|_2^2 + \alpha \|z\|_1 ,

is solved by FISTA, :math:`z^{k+1} = h_{\alpha/L}\big(y^k - \tfrac1L A^T(w \odot (Ay^k - x))\big)`,
with :math:`L \ge \|\operatorname{diag}(\sqrt{w}) A\|_2^2`.

Two exact implementations of :math:`A` (:class:`ConvOperator`): ``conv_transpose2d`` ("direct"), or
products in the Fourier domain ("fft"). The full convolution of an :math:`h \times w` map with a
:math:`k_h \times k_w` kernel has exactly :math:`H \times W` samples, so the circular convolution on
the :math:`H \times W` grid of the zero-padded map has no wrap-around and equals it:

.. math::
    \widehat{(Az)}_c(f) = \sum_k \hat D_{k,c}(f)\, \hat z_k(f), \qquad f \in \text{the } H\times W
    \text{ DFT grid}.

Same boundary model, same problem; only the cost differs (the FFT is cheaper from 5x5 kernels up on
a CPU). :math:`A^T` stays ``conv2d`` (valid correlations), the cheaper of the two there.

Lipschitz constant: :math:`A` is the restriction, to maps supported on the valid
:math:`h \times w` window, of the circular operator on the :math:`H \times W` grid, which is
block-diagonal in frequency with blocks :math:`\hat D(f) \in \mathbb{C}^{C\times K}`. Hence

.. math::
    \|\operatorname{diag}(\sqrt{w})A\|_2^2 \le \max_p w_p \, \max_f
    \lambda_{\max}\big(\hat D(f)\hat D(f)^H\big)

("fft": exact for the circular model, no iterations, an upper bound for the valid one, typically
5-10% above it, more for maps barely larger than the kernels); the power method on
:math:`A^T w A` ("power") gives the tight value at the cost of operator applications.

Border weighting (ConvPSD, koraykv/unsup ``SpatialConvFistaL1.lua``): pixel :math:`p` gets
:math:`w_p = n_p / \max_q n_q`, where :math:`n_p` counts the kernel placements covering it, so the
borders, which fewer code units can explain, weigh less.

Smooth shrinkage (the ConvPSD encoder nonlinearity, per map :math:`\beta > 0`, :math:`b \ge 0`):

.. math::
    \operatorname{sh}_{\beta,b}(s) = \operatorname{sign}(s)\Big[\tfrac1\beta
    \log\big(e^{\beta b} + e^{\beta|s|} - 1\big) - b\Big],

:math:`\operatorname{sh}(0) = 0` and
:math:`0 \le |\operatorname{sh}(s)| - |h_b(s)| \le \log(2)/\beta`, so it tends to the soft
threshold :math:`h_b` as :math:`\beta \to \infty`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .prox import shrink
from .solvers import SolveResult
from .solvers.ista import prox_grad_loop

__all__ = [
    "ConvOperator",
    "CONV_METHODS",
    "conv_reconstruct",
    "conv_correlate",
    "code_size",
    "border_weights",
    "conv_lipschitz_constant",
    "conv_lasso_energy",
    "conv_fista",
    "conv_ista",
    "smooth_shrink",
]

CONV_METHODS = ("auto", "fft", "direct")

# Kernels with at least this many taps are reconstructed by FFT under ``method="auto"``: measured on
# a CPU (1 thread), conv_transpose2d is faster for 3x3 and 4x4 kernels and the FFT from 5x5 up (2-5x
# at 8x8 kernels on 64x64 images).
_FFT_MIN_TAPS = 25


def _images(X: torch.Tensor) -> torch.Tensor:
    """``(n, H, W)`` -> ``(n, 1, H, W)``; 4-D passes."""
    if X.ndim == 3:
        return X.unsqueeze(1)
    if X.ndim != 4:
        raise ValueError(f"images must be (n, H, W) or (n, C, H, W); got shape {tuple(X.shape)}.")
    return X


def _kernels(D: torch.Tensor) -> torch.Tensor:
    """``(K, kh, kw)`` -> ``(K, 1, kh, kw)``; 4-D passes."""
    if D.ndim == 3:
        return D.unsqueeze(1)
    if D.ndim != 4:
        raise ValueError(
            f"kernels must be (K, kh, kw) or (K, C, kh, kw); got shape {tuple(D.shape)}."
        )
    return D


def code_size(image_size: tuple[int, int], kernel_size: tuple[int, int]) -> tuple[int, int]:
    """Spatial size ``(H - kh + 1, W - kw + 1)`` of the "valid" feature maps.

    Examples
    --------
    >>> code_size((8, 8), (3, 3))
    (6, 6)
    """
    (H, W), (kh, kw) = image_size, kernel_size
    if kh > H or kw > W or min(kh, kw) < 1:
        raise ValueError(f"kernel_size={tuple(kernel_size)} does not fit images of size {(H, W)}.")
    return H - kh + 1, W - kw + 1


def conv_reconstruct(Z: torch.Tensor, D: torch.Tensor) -> torch.Tensor:
    """Images :math:`\\sum_k D_k * z_k` from maps ``Z (n, K, h, w)``, shape ``(n, C, H, W)``.

    Examples
    --------
    >>> Z = torch.zeros(1, 1, 3, 3); Z[0, 0, 1, 1] = 1.0
    >>> conv_reconstruct(Z, torch.ones(1, 1, 2, 2))[0, 0]
    tensor([[0., 0., 0., 0.],
            [0., 1., 1., 0.],
            [0., 1., 1., 0.],
            [0., 0., 0., 0.]])
    """
    return F.conv_transpose2d(Z, _kernels(D))


def conv_correlate(X: torch.Tensor, D: torch.Tensor) -> torch.Tensor:
    """The adjoint of :func:`conv_reconstruct`: valid correlations ``(n, K, H-kh+1, W-kw+1)``."""
    return F.conv2d(_images(X), _kernels(D))


class ConvOperator:
    """The pair :math:`A` (maps to images) and :math:`A^T` for fixed kernels and one image size.

    Parameters
    ----------
    D : torch.Tensor, shape (K, C, kh, kw) or (K, kh, kw)
        Kernels; gradients flow through both methods.
    image_size : (int, int)
        ``(H, W)`` of the images.
    method : {"auto", "fft", "direct"}, default="auto"
        How :meth:`reconstruct` computes :math:`\\sum_k D_k * z_k`: Fourier-domain products on the
        ``H x W`` grid ("fft", exact: see the module doc) or ``conv_transpose2d`` ("direct");
        "auto" takes "fft" for kernels of at least 25 taps. :meth:`correlate` is ``conv2d`` in both.

    Examples
    --------
    >>> D = torch.randn(4, 1, 5, 5, generator=torch.Generator().manual_seed(0))
    >>> Z = torch.randn(2, 4, 12, 12, generator=torch.Generator().manual_seed(1))
    >>> op = ConvOperator(D, (16, 16))
    >>> op.method, bool(torch.allclose(op.reconstruct(Z), conv_reconstruct(Z, D), atol=1e-5))
    ('fft', True)
    """

    def __init__(self, D: torch.Tensor, image_size: tuple[int, int], method: str = "auto"):
        if method not in CONV_METHODS:
            raise ValueError(f"method={method!r} is not one of {CONV_METHODS}.")
        self.D = _kernels(D)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.code_size = code_size(self.image_size, self.D.shape[-2:])
        if method == "auto":
            taps = self.D.shape[-2] * self.D.shape[-1]
            method = "fft" if taps >= _FFT_MIN_TAPS else "direct"
        self.method = method
        self._spectrum = torch.fft.rfft2(self.D, s=self.image_size) if method == "fft" else None

    def reconstruct(self, Z: torch.Tensor) -> torch.Tensor:
        """:math:`Az = \\sum_k D_k * z_k`: maps ``(n, K, h, w)`` -> images ``(n, C, H, W)``."""
        if self._spectrum is None:
            return F.conv_transpose2d(Z, self.D)
        Zh = torch.fft.rfft2(Z, s=self.image_size)
        Rh = torch.stack([(Zh * Dc).sum(1) for Dc in self._spectrum.unbind(1)], 1)
        return torch.fft.irfft2(Rh, s=self.image_size)

    def correlate(self, R: torch.Tensor) -> torch.Tensor:
        """:math:`A^T r`: images ``(n, C, H, W)`` -> valid correlations ``(n, K, h, w)``."""
        return F.conv2d(R, self.D)

    def spectral_bound(self) -> float:
        """:math:`\\max_f \\lambda_{\\max}(\\hat D(f)\\hat D(f)^H)`: :math:`\\|A\\|_2^2` of the
        circular operator on the ``H x W`` grid, an upper bound for this one (module doc)."""
        Dh = self._spectrum if self._spectrum is not None else torch.fft.rfft2(
            self.D, s=self.image_size
        )
        Dh = Dh.detach()
        K, C = Dh.shape[:2]
        if min(K, C) == 1:
            return float((Dh.abs() ** 2).sum(0 if C == 1 else 1).amax())
        # the smaller of the two Grams per frequency: D^H D (K x K) or D D^H (C x C)
        spec = "kchw,kdhw->hwcd" if C <= K else "kchw,jchw->hwkj"
        gram = torch.einsum(spec, Dh, Dh.conj())
        return float(torch.linalg.eigvalsh(gram).amax())


def border_weights(
    image_size: tuple[int, int], kernel_size: tuple[int, int], *, like=None
) -> torch.Tensor:
    """Per-pixel weights ``(H, W)``: kernel placements covering each pixel over their maximum.

    Parameters
    ----------
    image_size, kernel_size : (int, int)
    like : torch.Tensor, optional
        The result takes its device and dtype (float32 on the CPU by default).

    Examples
    --------
    >>> border_weights((3, 4), (2, 2))
    tensor([[0.2500, 0.5000, 0.5000, 0.2500],
            [0.5000, 1.0000, 1.0000, 0.5000],
            [0.2500, 0.5000, 0.5000, 0.2500]])
    """
    h, w = code_size(image_size, kernel_size)
    options = dict(device=like.device, dtype=like.dtype) if like is not None else {}
    ones = torch.ones(1, 1, h, w, **options)
    count = F.conv_transpose2d(ones, torch.ones(1, 1, *kernel_size, **options))[0, 0]
    return count / count.max()


@torch.no_grad()
def conv_lipschitz_constant(
    D: torch.Tensor,
    image_size: tuple[int, int],
    *,
    weights: torch.Tensor | None = None,
    method: str = "fft",
    max_iter: int = 200,
    tol: float = 1e-4,
) -> float:
    """A Lipschitz constant :math:`L \\ge \\|\\operatorname{diag}(\\sqrt{w})A\\|_2^2` of the gradient.

    ``method="fft"``: :math:`\\max_p w_p \\max_f \\lambda_{\\max}(\\hat D(f)\\hat D(f)^H)` over the
    ``H x W`` DFT grid (:meth:`ConvOperator.spectral_bound`): exact for the circular model, a
    guaranteed upper bound for the valid one, without iterations. ``method="power"``: the power method
    on :math:`A^T w A` from a fixed pseudo-random map (seed 0 on a private CPU generator, so the result
    is deterministic); the Rayleigh quotient approaches :math:`L` from below and, on the dense
    spectrum of a convolution, slowly: it is inflated by ``100*tol``, which puts it within about 1%
    above the tight :math:`L`.

    Parameters
    ----------
    D : torch.Tensor, shape (K, C, kh, kw) or (K, kh, kw)
    image_size : (int, int)
        ``(H, W)`` of the images the operator reconstructs.
    weights : torch.Tensor, shape (H, W), optional
        Per-pixel (non-negative) weights of the reconstruction error.
    method : {"fft", "power"}, default="fft"
    max_iter : int
        Power iterations at most.
    tol : float
        Relative change of the power estimate at which to stop.

    Examples
    --------
    >>> conv_lipschitz_constant(2 * torch.ones(1, 1, 1, 1), (5, 5))
    4.0
    >>> round(conv_lipschitz_constant(2 * torch.ones(1, 1, 1, 1), (5, 5), method="power"), 3)
    4.04
    """
    if method not in ("fft", "power"):
        raise ValueError(f"method={method!r} is not one of ('fft', 'power').")
    op = ConvOperator(D, image_size)
    if method == "fft":
        scale = 1.0 if weights is None else float(weights.amax())
        return scale * op.spectral_bound()
    start = torch.randn(
        (1, op.D.shape[0], *op.code_size),
        generator=torch.Generator().manual_seed(0),
        dtype=torch.float64,
    )
    v = start.to(op.D)
    v = v / torch.linalg.vector_norm(v)
    lam = 0.0
    for _ in range(max_iter):
        r = op.reconstruct(v)
        u = op.correlate(r if weights is None else weights * r)
        new = float((u * v).sum())
        norm = torch.linalg.vector_norm(u)
        if float(norm) == 0.0:
            return 0.0
        v = u / norm
        converged = abs(new - lam) <= tol * abs(new)
        lam = new
        if converged:
            break
    return lam * (1 + 100 * tol)


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
    X = _images(X)
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
    X, D = _images(X), _kernels(D).to(X)
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


def smooth_shrink(s: torch.Tensor, beta, b) -> torch.Tensor:
    """Smooth shrinkage ``sign(s)*((1/beta)*log(exp(beta*b) + exp(beta*|s|) - 1) - b)``.

    Computed without overflow as
    :math:`\\tfrac1\\beta\\big(\\ell + \\log(1 - e^{-\\ell})\\big) - b` with
    :math:`\\ell = \\operatorname{logaddexp}(\\beta b, \\beta|s|) \\ge \\log 2`.

    Parameters
    ----------
    s : torch.Tensor
    beta : float or torch.Tensor
        Sharpness, positive; broadcast against ``s`` (e.g. ``(K, 1, 1)`` per map).
    b : float or torch.Tensor
        Threshold, non-negative; broadcast like ``beta``.

    Examples
    --------
    >>> smooth_shrink(torch.tensor([-3.0, 0.0, 0.5, 3.0]), 50.0, 1.0)
    tensor([-2.,  0.,  0.,  2.])
    """
    beta = torch.as_tensor(beta, dtype=s.dtype, device=s.device)
    b = torch.as_tensor(b, dtype=s.dtype, device=s.device)
    ell = torch.logaddexp(beta * b, beta * s.abs())
    magnitude = (ell + torch.log1p(-torch.exp(-ell))) / beta - b
    return torch.sign(s) * magnitude.clamp(min=0)
