r"""The convolutional lasso, batched over images (Kavukcuoglu et al., NIPS 2010; Zeiler et al., CVPR 2010).

With the operator pair of :mod:`sparsecode.convolution` and optional per-pixel weights :math:`w` on the
reconstruction error,

.. math::
    E(x, z) = \tfrac12 \big\| \sqrt{w} \odot (x - Az) \big\|_2^2 + \alpha\,\Omega(z) ,

is solved by FISTA, :math:`z^{k+1} = \operatorname{prox}_{\alpha\Omega/L}\big(y^k - \tfrac1L A^T(w \odot
(Ay^k - x))\big)`, with :math:`L \ge \|\operatorname{diag}(\sqrt{w}) A\|_2^2`. The penalty :math:`\Omega`
(:class:`~sparsecode.penalties.L1` by default) sees each image's codes as one vector of ``K*h*w`` units.

:func:`solve_conv_lasso` picks the solver: the Fourier-domain ADMM of :mod:`.conv_admm` for kernels of
6x6 taps and more, FISTA (with restart) for smaller ones (``benchmarks/README.md``).
"""

from __future__ import annotations

import torch

from ..convolution import ConvOperator, as_images, conv_lipschitz_constant
from ..objectives import relative_gap
from ..penalties import L1, Penalty, check_alpha
from ._common import SolveResult, check_conv_problem, default_chunk_size, in_chunks, zero_result
from .conv_admm import conv_admm
from .proxgrad import prox_grad_loop

__all__ = ["CONV_ALGORITHMS", "conv_lasso_energy", "conv_fista", "conv_ista", "solve_conv_lasso"]

CONV_ALGORITHMS = ("auto", "admm", "fista", "ista")

# "auto" takes ADMM for kernels with at least this many taps. Measured on a CPU (1 thread, float64, time
# to relative duality gaps 1e-3 and 1e-4/1e-5): with 8x8 kernels ADMM is 1.6-4x faster than FISTA (natural
# image crops of 32x32 to 96x96, with or without border weights); with 5x5 kernels the two tie on 24x24 to
# 64x64 crops and FISTA is 1.5-2x faster on 8x8 digits; with 3x3 kernels FISTA is 1.4-2x faster (its
# reconstruction is a direct convolution there, while an ADMM iteration costs two FFTs of all maps).
_ADMM_MIN_TAPS = 36


def conv_lasso_energy(
    X: torch.Tensor,
    Z: torch.Tensor,
    D: torch.Tensor,
    alpha: float,
    weights: torch.Tensor | None = None,
    penalty: Penalty | None = None,
) -> torch.Tensor:
    """Per-image energy ``0.5*||sqrt(w)(x - sum_k D_k * z_k)||^2 + alpha*Omega(z)``, shape ``(n,)``.

    Examples
    --------
    >>> X = torch.ones(1, 1, 2, 2); Z = torch.ones(1, 1, 2, 2)
    >>> conv_lasso_energy(X, Z, torch.ones(1, 1, 1, 1), 0.5)
    tensor([2.])
    """
    X, alpha = as_images(X), check_alpha(alpha)
    penalty = L1() if penalty is None else penalty
    R = X - ConvOperator(D, X.shape[-2:]).reconstruct(Z)
    WR = R if weights is None else weights * R
    return 0.5 * (R * WR).flatten(1).sum(1) + penalty.value(Z.flatten(1), alpha)


def _conv_chunk(X, Z, op, weights, alpha, penalty, step, max_iter, tol, momentum, restart, check_every):
    """ISTA/FISTA on one chunk of images; converged images leave the batch at each check.

    The gradient step is :math:`y - \\tfrac1L A^T(w \\odot (Ay - x))`, computed in place.
    """
    tau = alpha * step

    def gradient_step(Y, batch):
        R = op.reconstruct(Y).sub_(batch[0])
        if weights is not None:
            R.mul_(weights)
        return penalty.prox(torch.add(Y, op.correlate(R), alpha=-step).flatten(1), tau).view_as(Y)

    def gap(Za, batch):
        Xa = batch[0]
        return relative_gap(Xa, Za, Xa - op.reconstruct(Za), op.correlate, alpha, penalty, weights)

    return prox_grad_loop(Z, [X], gradient_step, gap, max_iter=max_iter, tol=tol, momentum=momentum,
                          restart=restart, check_every=check_every)


def conv_fista(X: torch.Tensor, D: torch.Tensor, alpha: float = 1.0, *, penalty: Penalty | None = None,
               z0: torch.Tensor | None = None, max_iter: int = 1000, tol: float = 1e-5, L: float | None = None,
               weights: torch.Tensor | None = None, restart: bool = True, check_every: int = 10,
               chunk_size: int | None = None, method: str = "auto", momentum: bool = True) -> SolveResult:
    """FISTA for the convolutional lasso, batched over images (see the module doc).

    Parameters
    ----------
    X : torch.Tensor, shape (n, C, H, W) or (n, H, W)
    D : torch.Tensor, shape (K, C, kh, kw) or (K, kh, kw)
        Kernels; moved to ``X``'s device and dtype.
    alpha : float
        Strength of the penalty, >= 0.
    penalty : Penalty, optional
        :math:`\\Omega` and the sign constraint (:mod:`sparsecode.penalties`) on each image's flattened
        codes; :class:`~sparsecode.penalties.L1` by default, :class:`~sparsecode.penalties.MapGroupL1`
        for groups of maps at each position.
    z0 : torch.Tensor, shape (n, K, H-kh+1, W-kw+1), optional
        Warm start (e.g. an encoder's prediction).
    max_iter : int
        Iterations at most; 0 returns ``z0``.
    tol : float
        Stop an image when its duality gap is below ``tol * 0.5*||sqrt(w) x||^2``; 0 runs ``max_iter``.
    L : float, optional
        Lipschitz constant; :func:`conv_lipschitz_constant` (the FFT bound) when omitted.
    weights : torch.Tensor, shape (H, W), optional
        Per-pixel weights of the reconstruction error (e.g. :func:`border_weights`).
    restart : bool
        Adaptive momentum restart (O'Donoghue & Candès 2015), per image.
    check_every : int
        Iterations between duality-gap checks.
    chunk_size : int, optional
        Images per chunk (bounded memory); :func:`~sparsecode.solvers._common.default_chunk_size` by default.
    method : {"auto", "fft", "direct"}, default="auto"
        How the reconstruction :math:`Az` is computed (:class:`ConvOperator`): both are exact for the same
        ("valid" maps, full reconstruction) model and differ only in speed.
    momentum : bool
        FISTA's extrapolation; without it, ISTA (:func:`conv_ista`).

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
    X, D, alpha, penalty = check_conv_problem(X, D, alpha, penalty)
    op = ConvOperator(D, X.shape[-2:], method)
    n, K = X.shape[0], D.shape[0]
    h, w = op.code_size
    if z0 is not None and tuple(z0.shape) != (n, K, h, w):
        raise ValueError(f"z0 must have shape {(n, K, h, w)}, got {tuple(z0.shape)}.")
    if weights is not None:
        weights = weights.to(X)
    L = conv_lipschitz_constant(D, X.shape[-2:], weights=weights) if L is None else L
    if n == 0 or float(L) <= 0:  # no image, or all-zero kernels: the zero code is optimal
        return zero_result(X.new_zeros((n, K, h, w)))
    Z0 = X.new_zeros((n, K, h, w)) if z0 is None else z0.to(X)
    chunk = chunk_size or default_chunk_size(max(K * h * w, X[0].numel()), X.device, cache_sized=False)
    step = 1.0 / float(L)

    def solve(Xc, Zc):
        return _conv_chunk(Xc, Zc, op, weights, alpha, penalty, step, max_iter, tol, momentum, restart,
                           check_every)

    return SolveResult(*in_chunks(solve, chunk, X, Z0))


def conv_ista(X: torch.Tensor, D: torch.Tensor, alpha: float = 1.0, *, penalty: Penalty | None = None,
              z0: torch.Tensor | None = None, max_iter: int = 1000, tol: float = 1e-5, L: float | None = None,
              weights: torch.Tensor | None = None, check_every: int = 10, chunk_size: int | None = None,
              method: str = "auto") -> SolveResult:
    """ISTA for the convolutional lasso (monotone energy): :func:`conv_fista` without momentum."""
    return conv_fista(X, D, alpha, penalty=penalty, z0=z0, max_iter=max_iter, tol=tol, L=L, weights=weights,
                      check_every=check_every, chunk_size=chunk_size, method=method, momentum=False)


def solve_conv_lasso(X: torch.Tensor, D: torch.Tensor, alpha: float = 1.0, *, algorithm: str = "auto",
                     penalty: Penalty | None = None, z0: torch.Tensor | None = None, max_iter: int = 1000,
                     tol: float = 1e-5, weights: torch.Tensor | None = None,
                     boundary: str = "valid") -> SolveResult:
    """The convolutional lasso by ``algorithm``; "auto" chooses by the kernels' size (module doc).

    Parameters
    ----------
    X, D, alpha, penalty, z0, max_iter, tol, weights
        As in :func:`conv_fista` and :func:`conv_admm`.
    algorithm : {"auto", "admm", "fista", "ista"}, default="auto"
        "auto": "admm" for kernels of at least 36 taps (6x6), "fista" for smaller ones; "auto" with
        ``boundary="circular"`` is "admm" (the only solver of that model).
    boundary : {"valid", "circular"}, default="valid"
        The boundary model (:mod:`.conv_admm`); "circular" only with "admm" (or "auto").

    Returns
    -------
    SolveResult

    Examples
    --------
    >>> X = torch.tensor([[[2.0, 0.5, 3.0]]])
    >>> solve_conv_lasso(X, torch.ones(1, 1, 1), 1.0, algorithm="fista").code.round(decimals=4)
    tensor([[[[1., 0., 2.]]]])
    """
    if algorithm not in CONV_ALGORITHMS:
        raise ValueError(f"algorithm={algorithm!r} is not one of {CONV_ALGORITHMS}.")
    if algorithm == "auto":
        taps = D.shape[-2] * D.shape[-1]
        algorithm = "admm" if taps >= _ADMM_MIN_TAPS or boundary != "valid" else "fista"
    if algorithm == "admm":
        return conv_admm(X, D, alpha, penalty=penalty, z0=z0, max_iter=max_iter, tol=tol, weights=weights,
                         boundary=boundary)
    if boundary != "valid":
        raise ValueError(f"conv {algorithm} solves the valid model only; use algorithm='admm' for {boundary!r}.")
    return conv_fista(X, D, alpha, penalty=penalty, z0=z0, max_iter=max_iter, tol=tol, weights=weights,
                      momentum=algorithm == "fista")
