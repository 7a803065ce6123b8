r"""Convolutional dictionary learning: exact convolutional coding alternated with a Fourier-domain update.

The model of :mod:`sparsecode.solvers.conv_admm` (Zeiler et al. 2010's deconvolutional model): images
``X (n, C, H, W)``, maps ``Z`` and kernels ``D (K, C, kh, kw)`` with :math:`\|d_k\|_2 \le 1`, minimising

.. math::
    \sum_i \tfrac12 \big\|x_i - \textstyle\sum_k d_k * z_{ik}\big\|^2 + \alpha\,\Omega(z_i) .

Each step (:func:`conv_dictionary_step`) codes a batch of images to a duality gap with
:func:`~sparsecode.solvers.conv_admm` from the current kernels, folds the codes into frequency-domain
statistics (Liu, Garcia-Cardona, Wohlberg & Yin 2018's online convolutional dictionary learning):

.. math::
    A(f) \leftarrow \lambda A(f) + \hat Z(f)^H\hat Z(f) \in \mathbb{C}^{K\times K}, \qquad
    B(f) \leftarrow \lambda B(f) + \hat Z(f)^H\hat X(f) \in \mathbb{C}^{K\times C},

with :math:`\hat Z(f)` the ``n x K`` matrix of the maps' spectra at frequency :math:`f` (maps zero-padded
to the image grid, so the "valid" model is exact), and updates the kernels by ADMM on the surrogate
:math:`\sum_f \tfrac12 \hat d^H A\hat d - \operatorname{Re}\hat d^H B` under the constraint set (support
``kh x kw``, unit ball), warm-started from the previous kernels and dual (CBPDN-DL's dictionary step,
Garcia-Cardona & Wohlberg 2018): the linear step solves :math:`(A(f) + \sigma I)\hat d = B(f) +
\sigma(\hat g - \hat h)(f)` with one Cholesky factorisation per frequency, the projection crops each
kernel to its support and scales it back into the unit ball. The forgetting factor is
:math:`\lambda = 0` for a batch of all the data (exact alternating minimisation, CBPDN-DL), else
:math:`(1 - 1/t)^{p}` at step :math:`t` (``p = 10``). For a full batch of :math:`n < K` images
:math:`A(f)` has rank :math:`n` and is kept as :math:`\hat Z(f)` (Woodbury: ``n x n`` factorisations).
Passing the coding's :class:`~sparsecode.solvers.conv_admm.ADMMState` from step to step (``resume``)
continues its ADMM instead of restarting it, so that steps of one or a few coding and dictionary
iterations interleave the two ADMMs as CBPDN-DL does (``benchmarks/bench_conv.py --versus dictionary``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .convolution import as_images, as_kernels, code_size
from .penalties import Penalty
from .prox import project_rows_to_ball
from .solvers import SolveResult, conv_admm
from .solvers.conv_admm import ADMMState

__all__ = ["ConvDictionaryState", "init_conv_dictionary", "update_conv_dictionary", "conv_dictionary_step"]

_FORGETTING = 10.0


@dataclass
class ConvDictionaryState:
    """Statistics and the dictionary ADMM's warm start, for one image size.

    Attributes
    ----------
    A : torch.Tensor, shape (H, W//2+1, K, K), complex
        Weighted sum of :math:`\\hat Z(f)^H \\hat Z(f)`.
    B : torch.Tensor, shape (H, W//2+1, K, C), complex
        Weighted sum of :math:`\\hat Z(f)^H \\hat X(f)`.
    dual : torch.Tensor, shape (K, C, H, W)
        Scaled dual of the dictionary ADMM.
    sigma : float
        Its penalty (the dual is scaled by it).
    n_steps : int
    codes : torch.Tensor, shape (H, W//2+1, n, K), complex, or None
        After a full batch of fewer images than kernels, the codes' spectra :math:`\\hat Z(f)` stand for
        ``A`` (of rank ``n``): the dictionary update solves its ``K x K`` systems through ``n x n`` ones
        (Woodbury, as CBPDN-DL's Sherman-Morrison solve); :meth:`gram` forms ``A`` when needed.
    """

    A: torch.Tensor
    B: torch.Tensor
    dual: torch.Tensor
    sigma: float = 0.0
    n_steps: int = 0
    codes: torch.Tensor | None = None

    def gram(self) -> torch.Tensor:
        """``A``, formed from ``codes`` (which it then replaces) when they stand for it."""
        if self.codes is not None:
            self.A, self.codes = self.codes.conj().transpose(-2, -1) @ self.codes, None
        return self.A

    @classmethod
    def empty(cls, D: torch.Tensor, image_size: tuple[int, int]) -> ConvDictionaryState:
        """Zero statistics for kernels ``D (K, C, kh, kw)`` on images of ``image_size``."""
        K, C = D.shape[:2]
        H, W = image_size
        cdtype = torch.promote_types(D.dtype, torch.complex64)
        spectrum = dict(dtype=cdtype, device=D.device)
        return cls(torch.zeros(H, W // 2 + 1, K, K, **spectrum), torch.zeros(H, W // 2 + 1, K, C, **spectrum),
                   D.new_zeros(K, C, H, W))


def init_conv_dictionary(X: torch.Tensor, n_components: int, kernel_size: tuple[int, int],
                         generator: torch.Generator | None = None) -> torch.Tensor:
    """Unit-norm kernels ``(K, C, kh, kw)``: random patches of the images, centred (plus noise if flat).

    Examples
    --------
    >>> D = init_conv_dictionary(torch.randn(2, 1, 9, 9), 3, (4, 4), torch.Generator().manual_seed(0))
    >>> D.shape, bool(torch.allclose(D.flatten(1).norm(dim=1), torch.ones(3)))
    (torch.Size([3, 1, 4, 4]), True)
    """
    X = as_images(X)
    n, C, H, W = X.shape
    kh, kw = kernel_size
    h, w = code_size((H, W), (kh, kw))
    where = getattr(generator, "device", None)
    draw = torch.randint(0, n * h * w, (n_components,), generator=generator, device=where).to(X.device)
    i, rest = draw // (h * w), draw % (h * w)
    r, c = rest // w, rest % w
    D = torch.stack([X[a, :, b:b + kh, e:e + kw] for a, b, e in zip(i.tolist(), r.tolist(), c.tolist())])
    D = D - D.mean(dim=(2, 3), keepdim=True)
    # drawn in one dtype, so that float32 and float64 data start from the same kernels (flat patches are noise)
    noise = torch.randn(D.shape, generator=generator, device=where).to(D)
    D = D + 1e-3 * noise * (D.flatten(1).norm(dim=1).amax() + 1)
    return D / torch.linalg.vector_norm(D.flatten(1), dim=1).view(-1, 1, 1, 1)


def _project(V: torch.Tensor, kernel_size: tuple[int, int]) -> torch.Tensor:
    """Kernels on the grid cropped to their ``kh x kw`` support and scaled into the unit ball."""
    kh, kw = kernel_size
    inner = V[..., :kh, :kw].flatten(1).clone()
    out = torch.zeros_like(V)
    out[..., :kh, :kw] = project_rows_to_ball(inner).view(V.shape[0], V.shape[1], kh, kw)
    return out


def update_conv_dictionary(D: torch.Tensor, state: ConvDictionaryState, *, max_iter: int = 10,
                           relax: float = 1.8) -> torch.Tensor:
    """Kernels minimising the statistics' surrogate over the constraint set, by ADMM (module doc).

    Parameters
    ----------
    D : torch.Tensor, shape (K, C, kh, kw)
        Current kernels (the warm start); not modified.
    state : ConvDictionaryState
        Statistics; its ``dual`` and ``sigma`` are updated in place.
    max_iter : int
        ADMM iterations.
    relax : float
        Over-relaxation.

    Returns
    -------
    torch.Tensor, shape (K, C, kh, kw)
        The new kernels, of norm at most 1.
    """
    K, C, kh, kw = D.shape
    size = tuple(state.dual.shape[-2:])
    Zh = state.codes
    if Zh is None:
        sigma = float(torch.diagonal(state.A, dim1=-2, dim2=-1).real.mean()) or 1.0
        eye = torch.eye(K, dtype=state.A.dtype, device=state.A.device)
        chol = torch.linalg.cholesky(state.A + sigma * eye)

        def solve(R):
            return torch.cholesky_solve(R, chol)
    else:  # (sigma I + Z^H Z)^{-1} r = (r - Z^H (sigma I + Z Z^H)^{-1} Z r) / sigma
        sigma = float((Zh.abs() ** 2).sum(-2).mean()) or 1.0
        ZhH = Zh.conj().transpose(-2, -1)
        eye = torch.eye(Zh.shape[-2], dtype=Zh.dtype, device=Zh.device)
        chol = torch.linalg.cholesky(Zh @ ZhH + sigma * eye)

        def solve(R):
            return (R - ZhH @ torch.cholesky_solve(Zh @ R, chol)) / sigma
    dual = state.dual * (state.sigma / sigma) if state.sigma else state.dual
    G = D.new_zeros(K, C, *size)
    G[..., :kh, :kw] = D
    for _ in range(max_iter):
        rhs = state.B + sigma * torch.fft.rfft2(G - dual, s=size).permute(2, 3, 0, 1)
        Dh = solve(rhs)
        Dfull = torch.fft.irfft2(Dh.permute(2, 3, 0, 1), s=size)
        Dr = torch.lerp(G, Dfull, relax)
        G = _project(Dr + dual, (kh, kw))
        dual = dual + Dr - G
    state.dual, state.sigma = dual, sigma
    return G[..., :kh, :kw].contiguous()


def conv_dictionary_step(X: torch.Tensor, D: torch.Tensor, state: ConvDictionaryState, alpha: float, *,
                         penalty: Penalty | None = None, boundary: str = "valid", full_batch: bool = False,
                         z0: torch.Tensor | None = None, resume: ADMMState | None = None,
                         coding_tol: float = 1e-3, coding_max_iter: int = 500,
                         dictionary_max_iter: int = 10) -> tuple[torch.Tensor, SolveResult]:
    """One step: code ``X`` exactly, fold the codes into ``state``, update the kernels (module doc).

    Parameters
    ----------
    X : torch.Tensor, shape (n, C, H, W) or (n, H, W)
    D : torch.Tensor, shape (K, C, kh, kw)
    state : ConvDictionaryState
        Updated in place.
    alpha : float
    penalty : Penalty, optional
        Of the codes (:func:`~sparsecode.solvers.conv_admm`'s): ``L1(positive=True)`` for non-negative
        maps, a :class:`~sparsecode.penalties.GroupL1` over the maps.
    boundary : {"valid", "circular"}
    full_batch : bool
        ``X`` is all the data: the statistics are replaced, not blended (exact alternation).
    z0 : torch.Tensor, optional
        Warm start of the coding (e.g. the previous step's codes of the same images).
    resume : ADMMState, optional
        The coding ADMM's dual and penalties of the same images, carried from step to step (with
        ``z0``): a few coding iterations per step then continue the previous ones (CBPDN-DL's
        interleaving of the two ADMMs, Garcia-Cardona & Wohlberg 2018).
    coding_tol, coding_max_iter : float, int
        Relative duality gap and iterations of the coding.
    dictionary_max_iter : int
        ADMM iterations of the dictionary update.

    Returns
    -------
    (torch.Tensor, SolveResult)
        The new kernels and the coding result (codes at the kernels before the update).
    """
    X = as_images(X)
    D = as_kernels(D).to(X)
    res = conv_admm(X, D, alpha, penalty=penalty, z0=z0, boundary=boundary, tol=coding_tol,
                    max_iter=coding_max_iter, resume=resume)
    size = tuple(X.shape[-2:])
    Zh = torch.fft.rfft2(res.code, s=size).permute(2, 3, 0, 1).contiguous()  # (H, Wf, n, K)
    Xh = torch.fft.rfft2(X, s=size).permute(2, 3, 0, 1).contiguous()  # (H, Wf, n, C)
    state.n_steps += 1
    ZhH = Zh.conj().transpose(-2, -1)
    if full_batch and Zh.shape[-2] < Zh.shape[-1]:  # A = Z^H Z stays implicit (low rank)
        state.codes, state.B = Zh, ZhH @ Xh
    else:
        forget = 0.0 if full_batch else (1 - 1 / state.n_steps) ** _FORGETTING
        state.A = forget * state.gram() + ZhH @ Zh
        state.B = forget * state.B + ZhH @ Xh
    return update_conv_dictionary(D, state, max_iter=dictionary_max_iter), res
