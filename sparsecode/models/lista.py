r"""LISTA: learned ISTA (Gregor & LeCun, ICML 2010, Alg. 3) and its modern variants.

With rows as atoms (``D`` of shape ``(n_components, n_features)``, codes as rows), :math:`T` steps of
the tied encoder are

.. math::
    B = X W^T, \qquad Z^{(0)} = h_\theta(B), \qquad Z^{(t)} = h_\theta\big(B + Z^{(t-1)} S\big),
    \quad t = 1..T,

with :math:`h_\theta` the soft threshold (one threshold per code unit) and the learned
:math:`W \in \mathbb R^{m\times n}`, :math:`S \in \mathbb R^{m\times m}` and :math:`\theta \in \mathbb R^m`
shared by the steps. At the ISTA values :math:`W = D/L`, :math:`S = I - DD^T/L`, :math:`\theta = \alpha/L`
(:math:`L = \|DD^T\|_2`) the encoder is exactly :math:`T+1` ISTA iterations started from zero.

``parametrization`` selects the per-step update (each applies ``h`` to the bracket):

* ``"full"``: :math:`B + Z S` (the paper's LISTA; ``inhibition_fraction < 1`` keeps only that fraction of
  the entries of :math:`S`, those largest in magnitude at the ISTA values: the paper's *partial mutual
  inhibition*, a fixed mask);
* ``"coupled"``: :math:`Z + (X - ZD) W^T`, i.e. :math:`S = I - WD^T` (LISTA-CP, Chen et al. 2018);
* ``"step"``: :math:`Z + a (X - ZD) D^T` with threshold :math:`\alpha a`; only the step :math:`a` is learned
  (step-LISTA, Ablin et al. 2019).

``tied=False`` gives every step its own parameters (:math:`W^{(t)}, S^{(t)}, \theta^{(t)}` or :math:`a_t`).

The losses the encoders are trained on are here too: the code loss
:math:`\tfrac12\|f(x) - z^\star\|^2` against exact lasso codes (the paper's) and, without a teacher,
the lasso energy :math:`\tfrac12\|x - f(x)D\|^2 + \alpha\|f(x)\|_1` (Ablin et al.).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..objectives import lasso_energy
from ..prox import shrink
from ..solvers import lipschitz_constant

__all__ = [
    "LISTA", "PARAMETRIZATIONS", "LOSSES", "make_loss", "inhibition_mask", "LR_DECAY", "TARGET_TOL",
    "TARGET_MAX_ITER",
]

PARAMETRIZATIONS = ("full", "coupled", "step")
LOSSES = ("code", "energy")

LR_DECAY = 2e-6
"""Torch7's ``learningRateDecay`` in training samples for the amortized encoders: the rate is
``learning_rate / (1 + LR_DECAY * n_seen)``, a third of the base rate after a million patches (chosen
on ``benchmarks/bench_lista.py``'s 10x10 patches)."""

TARGET_TOL = 1e-6
"""Relative duality gap of the exact codes the encoders learn to match (``loss="code"``): FISTA with
support polishing run to about the float32 floor (the codes then agree to ~1e-10 relative)."""

TARGET_MAX_ITER = 10_000
"""FISTA iterations at most for those exact codes."""


def inhibition_mask(S: torch.Tensor, fraction: float) -> torch.Tensor:
    """Boolean mask keeping the ``fraction`` of the entries of ``S`` largest in magnitude (at least one).

    Examples
    --------
    >>> inhibition_mask(torch.tensor([[3.0, -1.0], [0.5, -4.0]]), 0.5)
    tensor([[ True, False],
            [False,  True]])
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"inhibition_fraction must be in (0, 1], got {fraction}.")
    n_keep = max(1, round(fraction * S.numel()))
    mask = torch.zeros(S.numel(), dtype=torch.bool, device=S.device)
    mask[S.abs().flatten().topk(n_keep).indices] = True
    return mask.view_as(S)


class LISTA(nn.Module):
    """Learned ISTA encoder, initialised at ISTA for ``dictionary`` and ``alpha``.

    Parameters
    ----------
    dictionary : torch.Tensor, shape (n_components, n_features)
        Rows are atoms; it sets the initial values, the device and the dtype, and is kept as a buffer.
    alpha : float, default=1.0
        Lasso penalty of the ISTA initialisation.
    n_layers : int, default=3
        Steps ``T`` after the first shrinkage (``T + 1`` shrinkages in all; 0 is a one-layer encoder).
    parametrization : {"full", "coupled", "step"}, default="full"
    tied : bool, default=True
        Share the parameters across steps.
    inhibition_fraction : float, default=1.0
        Fraction of the entries of ``S`` kept (``"full"`` only).
    positive : bool, default=False
        Non-negative codes (one-sided shrinkage).
    L : float, optional
        Lipschitz constant of the initialisation; :func:`~sparsecode.solvers.lipschitz_constant` by default.

    Examples
    --------
    >>> D = torch.eye(2); enc = LISTA(D, alpha=0.5, n_layers=2)
    >>> enc(torch.tensor([[2.0, -0.2]])).detach()
    tensor([[1.5000, -0.0000]])
    """

    def __init__(self, dictionary: torch.Tensor, alpha: float = 1.0, n_layers: int = 3, *,
                 parametrization: str = "full", tied: bool = True, inhibition_fraction: float = 1.0,
                 positive: bool = False, L: float | None = None):
        super().__init__()
        if parametrization not in PARAMETRIZATIONS:
            raise ValueError(
                f"parametrization={parametrization!r} is not one of {PARAMETRIZATIONS}."
            )
        if n_layers < 0:
            raise ValueError(f"n_layers must be >= 0, got {n_layers}.")
        if inhibition_fraction != 1.0 and parametrization != "full":
            raise ValueError(
                "inhibition_fraction < 1 needs parametrization='full' (the only one with S)."
            )
        D = dictionary.detach()
        m = D.shape[0]
        L = float(lipschitz_constant(D) if L is None else L)
        if L <= 0:
            raise ValueError("the dictionary is zero: LISTA needs a Lipschitz constant L > 0.")
        self.n_layers, self.parametrization, self.tied = int(n_layers), parametrization, bool(tied)
        self.alpha, self.positive, self.L = float(alpha), bool(positive), L
        self.register_buffer("dictionary", D.clone())
        n_w = 1 if tied else self.n_layers + 1
        if parametrization == "step":
            self.step = nn.Parameter(D.new_full((n_w,), 1.0 / L))
            return
        self.weight = nn.Parameter((D / L).expand(n_w, *D.shape).clone())
        self.threshold = nn.Parameter(D.new_full((n_w, m), self.alpha / L))
        if parametrization == "full":
            S = torch.eye(m, dtype=D.dtype, device=D.device) - D @ D.T / L
            self.register_buffer("mask", inhibition_mask(S, inhibition_fraction).to(D.dtype))
            n_s = 1 if tied else max(self.n_layers, 1)
            self.inhibition = nn.Parameter((S * self.mask).expand(n_s, m, m).clone())

    def _layer(self, t: int) -> int:
        return 0 if self.tied else t

    def _threshold(self, t: int):
        if self.parametrization == "step":
            return self.alpha * self.step[self._layer(t)]
        return self.threshold[self._layer(t)]

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """Codes of ``X`` (n_samples, n_features) -> (n_samples, n_components)."""
        D = self.dictionary
        if self.parametrization == "full":
            B = X @ self.weight[0].T
            Z = shrink(B, self._threshold(0), self.positive)
            S = self.inhibition * self.mask
            for t in range(1, self.n_layers + 1):
                if not self.tied:
                    B = X @ self.weight[t].T
                Z = shrink(B + Z @ S[0 if self.tied else t - 1], self._threshold(t), self.positive)
            return Z
        Z = None
        for t in range(self.n_layers + 1):
            R = X if Z is None else X - Z @ D
            if self.parametrization == "coupled":
                V = R @ self.weight[self._layer(t)].T
            else:
                V = self.step[self._layer(t)] * (R @ D.T)
            Z = shrink(V if Z is None else Z + V, self._threshold(t), self.positive)
        return Z

    @torch.no_grad()
    def project_(self) -> None:
        """Keep thresholds and steps non-negative (run after every optimizer step)."""
        for name in ("threshold", "step"):
            p = getattr(self, name, None)
            if p is not None:
                p.clamp_(min=0)

    def extra_repr(self) -> str:
        m, n = self.dictionary.shape
        return (
            f"n_components={m}, n_features={n}, n_layers={self.n_layers}, "
            f"parametrization={self.parametrization!r}, tied={self.tied}"
        )


def make_loss(
    kind: str, dictionary: torch.Tensor | None = None, alpha: float = 1.0
) -> tuple[Callable[..., torch.Tensor], Callable[..., torch.Tensor] | None]:
    """The training loss of an amortized encoder, as ``(loss_fn, residual_fn)`` for ``fit_module``.

    ``"code"``: ``loss_fn(module, X, Z_star)`` is the mean of :math:`\\tfrac12\\|f(x) - z^\\star\\|^2`, a
    sum of squares whose residual ``f(X) - Z_star`` is given for SDLM. ``"energy"``: ``loss_fn(module, X)``
    is the mean lasso energy of the codes in ``dictionary`` (no residual: the L1 term is not a square).

    Examples
    --------
    >>> loss, res = make_loss("code")
    >>> float(loss(nn.Identity(), torch.ones(2, 3), torch.zeros(2, 3)))
    1.5
    """
    if kind == "code":

        def residual(module, X, target):
            return module(X) - target

        def code_loss(module, X, target):
            return 0.5 * residual(module, X, target).pow(2).sum(1).mean()

        return code_loss, residual
    if kind == "energy":
        if dictionary is None:
            raise ValueError("loss='energy' needs the dictionary.")

        def energy_loss(module, X):
            return lasso_energy(X, module(X), dictionary, alpha).mean()

        return energy_loss, None
    raise ValueError(f"loss={kind!r} is not one of {LOSSES}.")
