r"""Convolution operators of convolutional sparse coding: the pair, its Lipschitz constant, the border weights.

Images are ``(n, C, H, W)`` tensors, kernels ``D`` are ``(K, C, kh, kw)`` (``D[k]`` is the ``k``-th
multi-channel kernel) and codes are ``(n, K, H - kh + 1, W - kw + 1)`` "valid" feature maps. The
reconstruction is the full convolution of the maps with the kernels, back to the image size
(Kavukcuoglu et al., NIPS 2010; Zeiler et al., CVPR 2010):

.. math::
    (Az)_c = \sum_k D_{k,c} * z_k \quad (\texttt{conv\_transpose2d}), \qquad
    (A^T r)_k = \sum_c D_{k,c} \star r_c \quad (\texttt{conv2d}).

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

:class:`FourierKernels`: the circular operator on the :math:`H \times W` DFT grid itself (maps of the
whole grid) and the per-frequency linear solve of the ADMM of :mod:`sparsecode.solvers.conv_admm`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "ConvOperator",
    "FourierKernels",
    "as_images",
    "as_kernels",
    "CONV_METHODS",
    "conv_reconstruct",
    "conv_correlate",
    "code_size",
    "border_weights",
    "conv_lipschitz_constant",
]

CONV_METHODS = ("auto", "fft", "direct")

# Kernels with at least this many taps are reconstructed by FFT under ``method="auto"``: measured on
# a CPU (1 thread), conv_transpose2d is faster for 3x3 and 4x4 kernels and the FFT from 5x5 up (2-5x
# at 8x8 kernels on 64x64 images).
_FFT_MIN_TAPS = 25


def as_images(X: torch.Tensor) -> torch.Tensor:
    """``(n, H, W)`` -> ``(n, 1, H, W)``; 4-D passes."""
    if X.ndim == 3:
        return X.unsqueeze(1)
    if X.ndim != 4:
        raise ValueError(f"images must be (n, H, W) or (n, C, H, W); got shape {tuple(X.shape)}.")
    return X


def as_kernels(D: torch.Tensor) -> torch.Tensor:
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
    return F.conv_transpose2d(Z, as_kernels(D))


def conv_correlate(X: torch.Tensor, D: torch.Tensor) -> torch.Tensor:
    """The adjoint of :func:`conv_reconstruct`: valid correlations ``(n, K, H-kh+1, W-kw+1)``."""
    return F.conv2d(as_images(X), as_kernels(D))


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
        self.D = as_kernels(D)
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
    options = dict(device=like.device, dtype=like.dtype) if like is not None else dict(device="cpu")
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
        device="cpu",
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


class FourierKernels:
    """Kernels on the ``H x W`` DFT grid: the operator :math:`A`, its adjoint and the ADMM linear solve.

    Parameters
    ----------
    D : torch.Tensor, shape (K, C, kh, kw)
    image_size : (int, int)

    Examples
    --------
    >>> fk = FourierKernels(torch.ones(1, 1, 1, 1), (2, 3))
    >>> fk.reconstruct(torch.ones(1, 1, 2, 3))
    tensor([[[[1., 1., 1.],
              [1., 1., 1.]]]])
    """

    def __init__(self, D: torch.Tensor, image_size: tuple[int, int]):
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.spectrum = torch.fft.rfft2(D, s=self.image_size)  # (K, C, H, W//2+1)
        self._conj = self.spectrum.conj().resolve_conj()
        Dh = self.spectrum
        if Dh.shape[1] == 1:
            self.gram = (Dh.abs() ** 2).sum(0)[0]  # ||d(f)||^2, (H, Wf)
        else:
            self.gram = torch.einsum("kchw,kdhw->hwcd", Dh, Dh.conj())  # D D^H per frequency

    def rfft(self, V: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """Spectrum of maps or images on the grid (zero-padded from the top-left corner)."""
        return torch.fft.rfft2(V, s=self.image_size, out=out)

    def irfft(self, Vh: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        return torch.fft.irfft2(Vh, s=self.image_size, out=out)

    def forward(self, Zh: torch.Tensor, work: torch.Tensor | None = None) -> torch.Tensor:
        """:math:`\\hat D\\hat z` per frequency: ``(n, K, H, Wf)`` -> ``(n, C, H, Wf)``.

        ``work``, a tensor of ``Zh``'s shape, holds the products (no allocation of that size).
        """
        return torch.stack([torch.mul(Zh, Dc, out=work).sum(1) for Dc in self.spectrum.unbind(1)], 1)

    def adjoint(self, Rh: torch.Tensor) -> torch.Tensor:
        """:math:`\\hat D^H\\hat r` per frequency: ``(n, C, H, Wf)`` -> ``(n, K, H, Wf)``."""
        return (Rh.unsqueeze(1) * self._conj).sum(2)

    def reconstruct(self, Z: torch.Tensor) -> torch.Tensor:
        """Circular :math:`Az` of maps ``(n, K, h, w)`` (``h <= H``, ``w <= W``, from the corner)."""
        return self.irfft(self.forward(self.rfft(Z)))

    def correlate(self, R: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        """Circular :math:`A^T r`, cropped to the top-left ``size`` window (the whole grid by default)."""
        C = self.irfft(self.adjoint(self.rfft(R)))
        return C if size is None else C[..., : size[0], : size[1]]

    def solve_(self, Bh: torch.Tensor, rho: torch.Tensor, work: torch.Tensor | None = None) -> torch.Tensor:
        """In place, :math:`\\hat z = (\\hat D^H\\hat D + \\rho I)^{-1} b` per frequency, ``rho`` one per image.

        ``Bh`` holds :math:`b/\\rho` on entry and :math:`\\hat z` on return. Both solves are
        :math:`\\hat z = b/\\rho - \\hat D^H v`: Sherman-Morrison for one channel,
        :math:`v = \\hat d^T(b/\\rho) / (\\rho + \\|d\\|^2)`, its multi-channel form (Woodbury) for more,
        :math:`v = (\\rho I + \\hat D\\hat D^H)^{-1}\\hat D(b/\\rho)`. Only ``(n, C, H, Wf)`` tensors are
        allocated (the large passes are in place; ``work`` as in :meth:`forward`).
        """
        rho = rho.view(-1, 1, 1, 1)
        DB = self.forward(Bh, work)
        if self.spectrum.shape[1] == 1:
            V = DB / (rho + self.gram)
        else:
            C = self.gram.shape[-1]
            eye = torch.eye(C, dtype=self.gram.dtype, device=self.gram.device)
            M = self.gram + rho.view(-1, 1, 1, 1, 1) * eye  # (n, H, Wf, C, C)
            V = torch.linalg.solve(M, DB.permute(0, 2, 3, 1).unsqueeze(-1)).squeeze(-1).permute(0, 3, 1, 2)
        for c, Dc in enumerate(self._conj.unbind(1)):
            Bh.addcmul_(Dc, V[:, c : c + 1], value=-1)
        return Bh
