r"""Proximal operators: each shrinkage is written once here and used by every solver and encoder.

.. math::
    h_\theta(v)_i = \operatorname{sign}(v_i)\max(|v_i| - \theta_i, 0)
    \qquad
    h^+_\theta(v)_i = \max(v_i - \theta_i, 0)
    \qquad
    \operatorname{prox}_{\tau\|\cdot\|_2}(v)_g = \max(0, 1 - \tau / \|v_g\|_2)\, v_g
"""

from __future__ import annotations

import torch

__all__ = [
    "soft_threshold",
    "nonneg_soft_threshold",
    "shrink",
    "group_soft_threshold",
    "project_rows_to_ball",
    "normalize_rows_",
    "smooth_shrink",
]


def soft_threshold(v: torch.Tensor, theta) -> torch.Tensor:
    """Soft threshold :math:`\\operatorname{sign}(v)\\max(|v| - \\theta, 0)`.

    Parameters
    ----------
    v : torch.Tensor
    theta : float or torch.Tensor
        Scalar, or per-unit thresholds broadcast against the last axis of ``v``.

    Examples
    --------
    >>> soft_threshold(torch.tensor([-2.0, 0.5, 3.0]), 1.0)
    tensor([-1.,  0.,  2.])
    """
    if isinstance(theta, (int, float)) and theta >= 0:  # one fused kernel (the launches count on GPUs)
        return torch.nn.functional.softshrink(v, theta)
    return torch.sign(v) * torch.clamp(v.abs() - theta, min=0)


def nonneg_soft_threshold(v: torch.Tensor, theta) -> torch.Tensor:
    """Non-negative soft threshold :math:`\\max(v - \\theta, 0)` (the prox of
    :math:`\\theta\\|z\\|_1 + \\iota_{z\\ge 0}`)."""
    return torch.clamp(v - theta, min=0)


def shrink(v: torch.Tensor, theta, positive: bool = False) -> torch.Tensor:
    """Dispatch to :func:`nonneg_soft_threshold` or :func:`soft_threshold`."""
    return nonneg_soft_threshold(v, theta) if positive else soft_threshold(v, theta)


def group_soft_threshold(
    v: torch.Tensor, tau, groups: torch.Tensor, positive: bool = False, eps: float = 0.0
) -> torch.Tensor:
    """Block soft threshold over disjoint groups of the last axis.

    Parameters
    ----------
    v : torch.Tensor, shape (..., n_components)
    tau : float or torch.Tensor
        Threshold, scalar or one per group.
    groups : torch.LongTensor, shape (n_components,)
        Group index of every unit, values in ``0..n_groups-1``.
    positive : bool
        Project onto the non-negative orthant first (prox of the non-negative group lasso).

    Examples
    --------
    >>> v = torch.tensor([[3.0, 4.0, 1.0]])
    >>> group_soft_threshold(v, 1.0, torch.tensor([0, 0, 1]))
    tensor([[2.4000, 3.2000, 0.0000]])
    """
    if positive:
        v = torch.clamp(v, min=0)
    n_groups = int(groups.max()) + 1 if groups.numel() else 0
    sq = v.new_zeros(v.shape[:-1] + (n_groups,)).index_add_(-1, groups, v * v)
    norms = sq.sqrt()
    scale = torch.clamp(1 - tau / torch.clamp(norms, min=torch.finfo(v.dtype).tiny), min=0)
    return v * scale.index_select(-1, groups)


@torch.no_grad()
def project_rows_to_ball(W: torch.Tensor, radius: float = 1.0, positive: bool = False,
                         out: torch.Tensor | None = None) -> torch.Tensor:
    """In place, or into ``out``: rows of ``W`` with norm above ``radius`` are scaled back onto the ball.

    With ``positive=True`` negative entries of ``W`` are zeroed first. Returns ``W``, or ``out`` where given.
    Three operations for the unit ball (the norms, their clamp, the division): each is a kernel launch on a
    GPU, where the dictionary's sweep projects one atom at a time.
    """
    if positive:
        W.clamp_(min=0)
    scale = torch.linalg.vector_norm(W, dim=-1, keepdim=True).clamp_(min=radius)
    if radius != 1:
        scale.div_(radius)
    return W.div_(scale) if out is None else torch.div(W, scale, out=out)


@torch.no_grad()
def normalize_rows_(W: torch.Tensor) -> torch.Tensor:
    """In place: every row ``W[k]`` (flattened over its other axes) scaled to unit norm; returns ``W``.

    Rows of zero norm stay zero. The one unit-norm helper for atoms and convolution kernels.

    Examples
    --------
    >>> normalize_rows_(torch.tensor([[3.0, 4.0], [0.0, 0.0]]))
    tensor([[0.6000, 0.8000],
            [0.0000, 0.0000]])
    """
    norms = torch.linalg.vector_norm(W.flatten(1), dim=1).view(-1, *([1] * (W.ndim - 1)))
    return W.div_(norms.clamp(min=torch.finfo(W.dtype).tiny))


def smooth_shrink(s: torch.Tensor, beta, b) -> torch.Tensor:
    """Smooth shrinkage ``sign(s)*((1/beta)*log(exp(beta*b) + exp(beta*|s|) - 1) - b)``.

    The ConvPSD encoder nonlinearity (per map ``beta > 0``, ``b >= 0``): ``sh(0) = 0`` and
    ``0 <= |sh(s)| - |h_b(s)| <= log(2)/beta``, so it tends to the soft threshold ``h_b`` as
    ``beta -> inf``.

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
