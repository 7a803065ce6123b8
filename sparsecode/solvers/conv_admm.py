r"""The convolutional lasso by ADMM in the Fourier domain (Wohlberg, IEEE TIP 2016), batched over images.

Kernels ``D (K, C, kh, kw)`` act as convolution kernels (``conv_transpose2d``, the same orientation as
:mod:`sparsecode.convolution`; SPORCO's ``D[..., k]`` is ``D[k, 0]`` here, without a flip. A flip is
needed only to hand the kernels to ``torch.nn.functional.conv2d``, which correlates). On the
:math:`H \times W` grid of the images, with :math:`\hat D(f) \in \mathbb{C}^{C\times K}` the kernels'
spectrum at frequency :math:`f`, ADMM splits :math:`z = y`:

.. math::
    z^{k+1} &= \arg\min_z \tfrac12\|x - Az\|^2 + \tfrac\rho2\|z - y^k + u^k\|^2 \;\Leftrightarrow\;
       (\hat D^H\hat D + \rho I)\,\hat z(f) = \hat D^H\hat x(f) + \rho\,(\hat y - \hat u)(f), \\
    y^{k+1} &= \operatorname{prox}_{\alpha\Omega/\rho}\big(\beta z^{k+1} + (1-\beta)y^k + u^k\big), \qquad
    u^{k+1} = u^k + \beta z^{k+1} + (1-\beta)y^k - y^{k+1},

with over-relaxation :math:`\beta` (``relax``). The :math:`K\times K` system per frequency is solved
without factorisation: for one channel :math:`\hat D(f)` is a row :math:`d^T` and Sherman-Morrison gives
:math:`\hat z = \big(b - \bar d\, d^Tb / (\rho + \|d\|^2)\big)/\rho`; for :math:`C` channels its
multi-channel form (Woodbury) solves a :math:`C\times C` system instead,
:math:`\hat z = \big(b - \hat D^H(\rho I + \hat D\hat D^H)^{-1}\hat D b\big)/\rho`. The penalty
:math:`\rho` is per image and adapted every ``check_every`` iterations by balancing the relative primal
and dual residuals (Wohlberg 2017, "ADMM penalty parameter selection by residual balancing").

Boundaries (``boundary=``):

* ``"circular"`` (SPORCO's ``ConvBPDN``): maps on the whole :math:`H\times W` grid, circular
  convolution; codes ``(n, K, H, W)``.
* ``"valid"`` (the model of :func:`~sparsecode.solvers.conv.conv_fista` and the estimators): maps of
  ``(H-kh+1, W-kw+1)`` and the full convolution back to the image. That is the circular model with
  the maps supported on the top-left window (the full convolution of such maps does not wrap), so it is
  the same ADMM with the support constraint in the :math:`y`-step (prox, then zero outside the window).
* per-pixel ``weights`` (e.g. :func:`~sparsecode.convolution.border_weights`) make the data term
  :math:`\tfrac12\|\sqrt w\odot(x - Az)\|^2` non-diagonal in frequency; it is split off as a second
  ADMM block :math:`r = Az` (mask decoupling, Heide et al. 2015; Wohlberg, ICIP 2016): the
  :math:`z`-step solves :math:`(\hat D^H\hat D + I)\hat z = \hat D^H(\widehat{r - u_r}) + \widehat{y - u_y}`
  with the same Sherman-Morrison/Woodbury solve, the :math:`r`-step is elementwise,
  :math:`r = (w\odot x + \rho v)/(w + \rho)`.

Images stop at their own duality gap (:func:`~sparsecode.objectives.relative_gap` at the sparse
iterate :math:`y`, which is feasible), checked every ``check_every`` iterations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..convolution import FourierKernels, code_size
from ..objectives import relative_gap
from ..penalties import LatentGroupL1, Penalty
from ._common import SolveResult, check_conv_problem, default_chunk_size, in_chunks, zero_result

__all__ = ["BOUNDARIES", "ADMMState", "FourierKernels", "conv_admm"]

BOUNDARIES = ("valid", "circular")

# Residual balancing: rho changes when the relative residuals differ by more than this ratio, by the
# square root of their ratio, at most by _MAX_SCALING.
_BALANCE_RATIO = 1.2
_MAX_SCALING = 100.0


def _norms(*parts: torch.Tensor) -> torch.Tensor:
    """Per-image Euclidean norm of all ``parts`` together."""
    return torch.stack([(P * P).flatten(1).sum(1) for P in parts]).sum(0).sqrt()


class _ADMM:
    """The iterations on one chunk of images: state tensors indexed by image, compacted as images converge.

    The maps' grid is large (``n*K*H*W``): an iteration reuses two work tensors of that size (a real
    one, a complex one) and updates the state in place, since fresh tensors of that size cost page
    faults on the CPU comparable to the FFTs. The data term is kept as :math:`\\hat D^H\\hat x/\\rho`,
    so the right-hand side of the linear step is one addition.
    """

    def __init__(self, fk, X, Y, U, weights, alpha, penalty, support, rho, relax):
        self.fk, self.alpha, self.penalty, self.support, self.relax = fk, alpha, penalty, support, relax
        self.X, self.weights = X, weights
        grid = (*Y.shape[:2], *fk.image_size)
        full = X.new_zeros(grid)
        full[..., : support[0], : support[1]] = Y
        self.Y, self.U = full, torch.zeros_like(full) if U is None else U.clone()
        self.rho = rho.clone()
        self._work: dict[str, torch.Tensor] = {}
        if weights is None:
            self.DtXr = fk.adjoint(fk.rfft(X)).div_(rho.view(-1, 1, 1, 1))
        else:  # the second block r = Az and its dual
            self.Y0, self.U0 = fk.reconstruct(full), torch.zeros_like(X)
            self.WX = weights * X
            self.ones = X.new_ones(X.shape[0])

    def _state_names(self):
        return ("X", "Y", "U", "rho") + (("DtXr",) if self.weights is None else ("Y0", "U0", "WX", "ones"))

    def keep(self, mask: torch.Tensor) -> None:
        for name in self._state_names():
            setattr(self, name, getattr(self, name)[mask])
        self._work = {}

    def _buffer(self, name: str, like: torch.Tensor | None = None) -> torch.Tensor:
        """A work tensor of the maps' grid (``like``: the spectrum's shape and dtype), reused across iterations."""
        if name not in self._work:
            self._work[name] = torch.empty_like(self.Y if like is None else like)
        return self._work[name]

    def codes(self) -> torch.Tensor:
        return self.Y[..., : self.support[0], : self.support[1]]

    def _relax_(self, Z: torch.Tensor) -> torch.Tensor:
        """Over-relaxation in place: :math:`\\beta z + (1-\\beta)y`."""
        return Z if self.relax == 1.0 else Z.lerp_(self.Y, 1.0 - self.relax)

    def _sparse_step(self, V: torch.Tensor) -> torch.Tensor:
        """:math:`\\operatorname{prox}_{\\alpha\\Omega/\\rho}` on the window, zero outside it."""
        h, w = self.support
        tau = (self.alpha / self.rho).view(-1, 1)
        if (h, w) == tuple(V.shape[-2:]):  # circular: the whole grid
            return self.penalty.prox(V.flatten(1), tau).view_as(V)
        inner = V[..., :h, :w]
        Y = torch.zeros_like(V)
        Y[..., :h, :w] = self.penalty.prox(inner.flatten(1), tau).view_as(inner)
        return Y

    def step(self, balance: bool) -> None:
        """One ADMM iteration; with ``balance``, adapt ``rho`` from this iteration's residuals."""
        fk, Yprev = self.fk, self.Y
        if self.weights is None:
            grid = self._buffer("grid")
            Bh = fk.rfft(torch.sub(self.Y, self.U, out=grid), out=self._buffer("spectrum", self.DtXr))
            Zh = fk.solve_(Bh.add_(self.DtXr), self.rho, self._buffer("product", Bh))
            Z = fk.irfft(Zh, out=grid)
            Zkeep = Z.clone() if balance else None  # the relaxation below overwrites Z
            self.U.add_(self._relax_(Z))
            self.Y = self._sparse_step(self.U)
            self.U.sub_(self.Y)
            if balance:
                self._balance((Zkeep - self.Y,), (self.Y - Yprev,), (Zkeep, self.Y), (self.U,))
            return
        rho = self.rho.view(-1, 1, 1, 1)
        Bh = fk.adjoint(fk.rfft(self.Y0 - self.U0)).add_(fk.rfft(self.Y - self.U))
        Zh = fk.solve_(Bh, self.ones)
        Z, AZ = fk.irfft(Zh), fk.irfft(fk.forward(Zh))
        Y0prev = self.Y0
        Zkeep, AZkeep = (Z.clone(), AZ.clone()) if balance else (None, None)
        Zr, AZr = self._relax_(Z), AZ if self.relax == 1.0 else AZ.lerp_(self.Y0, 1.0 - self.relax)
        self.Y0 = (self.WX + rho * (AZr + self.U0)) / (self.weights + rho)
        self.U.add_(Zr)
        self.Y = self._sparse_step(self.U)
        self.U.sub_(self.Y)
        self.U0.add_(AZr).sub_(self.Y0)
        if balance:
            self._balance((Zkeep - self.Y, AZkeep - self.Y0), (self.Y - Yprev, self.Y0 - Y0prev),
                          (Zkeep, self.Y, AZkeep, self.Y0), (self.U, self.U0))

    def _balance(self, primal, dual, sizes, duals) -> None:
        """Residual balancing: scale ``rho`` (and the scaled duals inversely) per image."""
        tiny = torch.finfo(self.X.dtype).tiny
        size = torch.stack([_norms(S) for S in sizes]).amax(0).clamp(min=tiny)
        r = _norms(*primal) / size
        s = _norms(*dual) / _norms(*duals).clamp(min=tiny)
        ratio = r / s.clamp(min=tiny)
        factor = ratio.sqrt().clamp(1 / _MAX_SCALING, _MAX_SCALING)
        factor = torch.where((ratio > _BALANCE_RATIO) | (ratio < 1 / _BALANCE_RATIO), factor, 1.0)
        factor = torch.where(torch.isfinite(factor) & (s > 0), factor, 1.0)
        self.rho = self.rho * factor
        inverse = (1 / factor).view(-1, 1, 1, 1)
        self.U.mul_(inverse)
        if self.weights is None:
            self.DtXr.mul_(inverse)
        else:
            self.U0.mul_(inverse)

    def gap(self) -> torch.Tensor:
        Z = self.codes()
        R = self.X - self.fk.reconstruct(Z)
        return relative_gap(self.X, Z, R, lambda V: self.fk.correlate(V, self.support), self.alpha, self.penalty,
                            self.weights)


@dataclass
class ADMMState:
    """Where :func:`conv_admm` stopped, to resume from (``resume=``): per image, the scaled dual on the
    ``H x W`` grid and the penalty. Alternating methods (dictionary learning) pass the same object to
    each coding of the same images, so that a few iterations continue the previous ones.

    Attributes
    ----------
    dual : torch.Tensor, shape (n, K, H, W), or None
    rho : torch.Tensor, shape (n,), or None
    """

    dual: torch.Tensor | None = None
    rho: torch.Tensor | None = None


def _admm_chunk(X, Z0, U0, rho0, fk, weights, alpha, penalty, support, relax, adaptive, max_iter, tol,
                check_every, callback, track):
    """ADMM on one chunk; converged images leave the batch at each check. Returns the result's fields,
    then (with ``track``) each image's final scaled dual and ``rho``."""
    state = _ADMM(fk, X, Z0, U0, weights, alpha, penalty, support, rho0, relax)
    n = X.shape[0]
    out, rhos = Z0.clone(), rho0.clone()
    duals = state.U.clone() if track else None
    gaps = state.gap() if max_iter == 0 else X.new_full((n,), float("inf"))
    converged = gaps <= tol
    active = torch.arange(n, device=X.device)
    n_iter = 0
    for it in range(1, max_iter + 1):
        check = it == max_iter or it % check_every == 0
        state.step(balance=adaptive and check)
        n_iter = it
        if callback is not None:
            callback(it, state.codes())
        if not check or (tol <= 0 and it < max_iter):
            continue
        rel = state.gap()
        done = rel <= tol
        out[active], gaps[active], converged[active], rhos[active] = state.codes(), rel, done, state.rho
        if track:
            duals[active] = state.U
        if it == max_iter or bool(done.all()):
            break
        if bool(done.any()):
            active = active[~done]
            state.keep(~done)
    return (out, n_iter, converged, gaps) + ((duals, rhos) if track else ())


def conv_admm(X: torch.Tensor, D: torch.Tensor, alpha: float = 1.0, *, penalty: Penalty | None = None,
              z0: torch.Tensor | None = None, max_iter: int = 1000, tol: float = 1e-5, boundary: str = "valid",
              weights: torch.Tensor | None = None, rho: float | None = None, relax: float = 1.8,
              adaptive: bool = True, check_every: int = 10, chunk_size: int | None = None,
              callback: Callable[[int, torch.Tensor], None] | None = None,
              resume: ADMMState | None = None) -> SolveResult:
    """ADMM for the convolutional lasso in the Fourier domain, batched over images (see the module doc).

    Parameters
    ----------
    X : torch.Tensor, shape (n, C, H, W) or (n, H, W)
    D : torch.Tensor, shape (K, C, kh, kw) or (K, kh, kw)
        Convolution kernels (no flip: SPORCO's orientation); moved to ``X``'s device and dtype.
    alpha : float
        Strength of the penalty, >= 0.
    penalty : Penalty, optional
        :class:`~sparsecode.penalties.L1` (default; ``positive=True`` for non-negative maps),
        :class:`~sparsecode.penalties.GroupL1` over each image's flattened maps ``(K, h, w)``, or
        :class:`~sparsecode.penalties.MapGroupL1` (groups of maps at each position).
    z0 : torch.Tensor, optional
        Warm start, of the codes' shape.
    max_iter : int
        Iterations at most; 0 returns ``z0``.
    tol : float
        Stop an image when its relative duality gap is below ``tol``; 0 runs ``max_iter``.
    boundary : {"valid", "circular"}, default="valid"
        "valid": maps ``(H-kh+1, W-kw+1)`` and the full convolution (:func:`conv_fista`'s model);
        "circular": maps ``(H, W)`` and the circular convolution (SPORCO's ``ConvBPDN``).
    weights : torch.Tensor, shape (H, W), optional
        Per-pixel weights of the reconstruction error (e.g. :func:`~sparsecode.convolution.border_weights`);
        solved with a second ADMM block (mask decoupling).
    rho : float, optional
        Initial ADMM penalty, ``50*alpha + 1`` when omitted; adapted per image when ``adaptive``.
    relax : float
        Over-relaxation, in (0, 2); 1 is plain ADMM.
    adaptive : bool
        Residual balancing of ``rho`` every ``check_every`` iterations.
    check_every : int
        Iterations between duality-gap checks (and ``rho`` updates).
    chunk_size : int, optional
        Images per chunk (bounded memory).
    callback : callable, optional
        ``callback(n_iter, codes)`` after every iteration, with the codes of the chunk's images still
        iterating (monitoring, e.g. objective traces in the benchmarks).
    resume : ADMMState, optional
        Without ``weights``: start from its dual and ``rho`` when it holds those of these images (with
        ``z0``, the codes), and store the final ones in it.

    Returns
    -------
    SolveResult
        ``code`` of shape ``(n, K, H-kh+1, W-kw+1)`` ("valid") or ``(n, K, H, W)`` ("circular"); ``gap``
        is the relative duality gap.

    Examples
    --------
    With one 1x1 kernel it is the lasso of every pixel (here with non-negative codes):

    >>> from sparsecode.penalties import L1
    >>> images = torch.tensor([[[2.0, -0.5, 3.0]]])
    >>> conv_admm(images, torch.ones(1, 1, 1), 1.0, penalty=L1(positive=True)).code.round(decimals=4)
    tensor([[[[1., 0., 2.]]]])
    """
    X, D, alpha, penalty = check_conv_problem(X, D, alpha, penalty)
    if isinstance(penalty, LatentGroupL1):
        raise ValueError("conv_admm takes L1 and GroupL1 penalties; use conv_fista for LatentGroupL1.")
    if boundary not in BOUNDARIES:
        raise ValueError(f"boundary={boundary!r} is not one of {BOUNDARIES}.")
    if not 0 < relax < 2:
        raise ValueError(f"relax must be in (0, 2), got {relax}.")
    image_size = tuple(X.shape[-2:])
    support = code_size(image_size, D.shape[-2:]) if boundary == "valid" else image_size
    n, K = X.shape[0], D.shape[0]
    if z0 is not None and tuple(z0.shape) != (n, K, *support):
        raise ValueError(f"z0 must have shape {(n, K, *support)}, got {tuple(z0.shape)}.")
    Z0 = X.new_zeros((n, K, *support)) if z0 is None else z0.to(X)
    if n == 0 or not bool(D.any()):  # no image, or all-zero kernels: the zero code is optimal
        return zero_result(X.new_zeros((n, K, *support)))
    if weights is not None:
        weights = weights.to(X)
    if resume is not None and weights is not None:
        raise ValueError("resume= takes the unweighted problem only; pass weights=None or resume=None.")
    fk = FourierKernels(D, image_size)
    rho0 = X.new_full((n,), 50 * alpha + 1 if rho is None else float(rho))
    U0 = None
    if resume is not None:
        grid = (n, K, *image_size)
        if resume.dual is not None and tuple(resume.dual.shape) == grid:
            U0, rho0 = resume.dual.to(X), resume.rho.to(X)
        else:
            U0 = X.new_zeros(grid)
    chunk = chunk_size or default_chunk_size(K * image_size[0] * image_size[1], X.device, cache_sized=False)

    def solve(Xc, Zc, rc, Uc=None):
        return _admm_chunk(Xc, Zc, Uc, rc, fk, weights, alpha, penalty, support, relax, adaptive, max_iter, tol,
                           check_every, callback, resume is not None)

    if resume is None:
        return SolveResult(*in_chunks(solve, chunk, X, Z0, rho0))
    code, n_iter, converged, gap, resume.dual, resume.rho = in_chunks(solve, chunk, X, Z0, rho0, U0)
    return SolveResult(code, n_iter, converged, gap)
