r"""Learning rates from the largest Hessian eigenvalue (LeCun, Simard & Pearlmutter, NIPS 1993;
"Efficient BackProp" §9.2).

Batch gradient descent ``W <- W - eta grad E(W)`` on a quadratic with Hessian ``H`` converges iff
``eta < 2 / lambda_max(H)``; ``eta_opt = 1 / lambda_max`` is the fastest rate along the stiffest
direction. ``lambda_max`` comes from the power method

.. math::

    \Psi \leftarrow H \frac{\Psi}{\|\Psi\|}, \qquad \|\Psi\| \to \lambda_{max},

with the Hessian-vector product either by double backward (Pearlmutter's R-operator,
``H v = d/dW (grad E(W) . v)``, ``method="autograd"``) or by the lectures' finite difference
(``method="finite_difference"``)

.. math::

    H v \approx \frac{1}{a}\big(\nabla E(W + a v) - \nabla E(W)\big), \quad \|v\| = 1,

or on line, one sample ``p`` (or minibatch) at a time (``method="online"``):

.. math::

    \Psi \leftarrow (1 - \gamma) \Psi + \frac{\gamma}{a}\Big(\nabla E_p\big(W + a\frac{\Psi}{\|\Psi\|}\big)
    - \nabla E_p(W)\Big).

``learning_rate="auto"`` maps ``lambda_max`` to a rate per optimizer
(:func:`learning_rate_from_eigenvalue`):

========================  =============================================================
``sgd``, ``asgd``          ``1 / lambda_max`` (``asgd``: the initial rate ``eta_0``)
``momentum``, ``nesterov`` ``(1 - beta) / lambda_max``: the effective step
                           ``lr / (1 - beta)`` of the heavy ball equals ``1 / lambda_max``
``sdlm``                   ``1 / lambda_max`` of the preconditioned Hessian
                           ``P^{1/2} H P^{1/2}``, ``P = 1 / (h + mu)``
``adam``, ``rmsprop``      ``g_rms / lambda_max``, ``g_rms`` the root-mean-square gradient
                           entry at the start: the first normalized step (about ``lr`` per
                           entry) then moves as far, in RMS, as an optimal SGD step
``lbfgs``                  ``1`` (the line search sets the step)
a user's class             ``1 / lambda_max``
========================  =============================================================
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ...device import draw_device
from .._common import random_rows, trainable

__all__ = [
    "MaxLearningRate",
    "hessian_vector_product",
    "power_iteration",
    "online_max_eigenvalue",
    "learning_rate_from_eigenvalue",
    "estimate_max_learning_rate",
]

Vector = list[torch.Tensor]
METHODS = ("autograd", "finite_difference", "online")


@dataclass
class MaxLearningRate:
    """Result of :func:`estimate_max_learning_rate`.

    Attributes
    ----------
    lambda_max : float
        Estimated largest Hessian eigenvalue (in the preconditioned metric when one was given).
    learning_rate : float
        The rate suggested for the optimizer (see the module doc).
    n_iter : int
        Power iterations (or on-line presentations) done.
    method : str
    """

    lambda_max: float
    learning_rate: float
    n_iter: int
    method: str


def _norm(v: Vector) -> torch.Tensor:
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(x) for x in v]))


def _chunks(data: tuple, batch_size: int):
    n = data[0].shape[0]
    for start in range(0, n, batch_size):
        batch = tuple(t[start : start + batch_size] for t in data)
        yield batch[0].shape[0] / n, batch


def _gradient(module, loss_fn, data, params, batch_size) -> Vector:
    total = [torch.zeros_like(p) for p in params]
    with torch.enable_grad():
        for weight, batch in _chunks(data, batch_size):
            grads = torch.autograd.grad(loss_fn(module, *batch), params, allow_unused=True)
            for acc, g in zip(total, grads):
                if g is not None:
                    acc.add_(g, alpha=weight)
    return total


def hessian_vector_product(
    module: torch.nn.Module,
    loss_fn: Callable[..., torch.Tensor],
    data: tuple[torch.Tensor, ...],
    vector: Sequence[torch.Tensor],
    *,
    params: Sequence[torch.Tensor] | None = None,
    method: str = "autograd",
    fd_step: float = 1e-3,
    batch_size: int = 1024,
    gradient: Sequence[torch.Tensor] | None = None,
) -> Vector:
    """``H v`` for the mean loss over ``data`` (computed in chunks of ``batch_size``).

    Parameters
    ----------
    module, loss_fn, data
        As in :func:`sparsecode.training.fit_module`.
    vector : sequence of tensors shaped like ``params``
    params : sequence of tensors, optional
        Defaults to the module's parameters that require grad.
    method : {"autograd", "finite_difference"}
    fd_step : float, default=1e-3
        ``a`` of the finite difference, taken along ``v / ||v||``.
    batch_size : int, default=1024
    gradient : sequence of tensors, optional
        ``grad E(W)`` when already known (saves a pass for the finite difference).

    Returns
    -------
    list of tensors
    """
    params = trainable(module, params)
    vector = list(vector)
    if method == "autograd":
        total = [torch.zeros_like(p) for p in params]
        with torch.enable_grad():
            for weight, batch in _chunks(data, batch_size):
                grads = torch.autograd.grad(loss_fn(module, *batch), params, create_graph=True)
                dot = sum((g * v).sum() for g, v in zip(grads, vector))
                for acc, h in zip(total, torch.autograd.grad(dot, params, allow_unused=True)):
                    if h is not None:
                        acc.add_(h.detach(), alpha=weight)
        return total
    if method == "finite_difference":
        base = _gradient(module, loss_fn, data, params, batch_size) if gradient is None else gradient
        norm = float(_norm(vector))
        saved = [p.detach().clone() for p in params]
        with torch.no_grad():
            torch._foreach_add_(params, vector, alpha=fd_step / norm)
        try:
            shifted = _gradient(module, loss_fn, data, params, batch_size)
        finally:
            with torch.no_grad():
                torch._foreach_copy_(params, saved)
        return [(s - b) * (norm / fd_step) for s, b in zip(shifted, base)]
    raise ValueError(f"method={method!r} is not one of 'autograd', 'finite_difference'.")


def _random_like(params: Vector, generator: torch.Generator | None) -> Vector:
    return [torch.randn(p.shape, generator=generator, device=draw_device(generator, p), dtype=p.dtype).to(p.device)
            for p in params]


def power_iteration(
    hvp: Callable[[Vector], Vector],
    start: Vector,
    *,
    n_iter: int = 100,
    tol: float = 1e-4,
) -> tuple[float, int]:
    """Power method ``Psi <- H Psi / ||Psi||`` on a Hessian-vector product.

    Parameters
    ----------
    hvp : callable
        ``hvp(v) -> H v`` on lists of tensors.
    start : list of tensors
        Initial ``Psi`` (random).
    n_iter : int, default=100
    tol : float, default=1e-4
        Stop when ``||Psi||`` changes by less than ``tol`` relatively.

    Returns
    -------
    lambda_max : float
        ``||Psi||``: the magnitude of the dominant eigenvalue.
    n_iter : int

    Examples
    --------
    >>> H = torch.diag(torch.tensor([3.0, 1.0]))
    >>> lam, _ = power_iteration(lambda v: [H @ v[0]], [torch.ones(2)], tol=1e-8)
    >>> round(lam, 4)
    3.0
    """
    psi, lam = start, 0.0
    for it in range(1, n_iter + 1):
        norm = _norm(psi)
        psi = hvp([x / norm for x in psi])
        new = float(_norm(psi))
        if abs(new - lam) <= tol * new:
            return new, it
        lam = new
    return lam, n_iter


def online_max_eigenvalue(
    module: torch.nn.Module,
    loss_fn: Callable[..., torch.Tensor],
    data: tuple[torch.Tensor, ...],
    *,
    params: Sequence[torch.Tensor] | None = None,
    n_presentations: int = 500,
    batch_size: int = 1,
    gamma: float = 0.02,
    fd_step: float = 1e-3,
    generator: torch.Generator | None = None,
) -> float:
    """The lectures' on-line estimate of ``lambda_max`` of the average Hessian.

    Parameters
    ----------
    module, loss_fn, data
        As in :func:`sparsecode.training.fit_module`.
    params : sequence of tensors, optional
    n_presentations : int, default=500
        Samples (or minibatches) presented, drawn at random with ``generator``.
    batch_size : int, default=1
        Samples per presentation (1: the lectures' per-pattern rule).
    gamma : float, default=0.02
        Averaging constant.
    fd_step : float, default=1e-3
        ``a`` in the module doc.
    generator : torch.Generator, optional

    Returns
    -------
    float
        ``||Psi||``.
    """
    params = trainable(module, params)
    n = data[0].shape[0]
    device = draw_device(generator, data[0])
    idx = torch.randint(0, n, (n_presentations, batch_size), generator=generator, device=device)
    psi = _random_like(params, generator)
    for rows in idx.to(data[0].device):
        batch = tuple(t[rows] for t in data)
        base = _gradient(module, loss_fn, batch, params, batch_size)
        hv = hessian_vector_product(
            module, loss_fn, batch, psi, params=params, method="finite_difference",
            fd_step=fd_step, batch_size=batch_size, gradient=base,
        )
        norm = _norm(psi)
        psi = [(1 - gamma) * x + gamma * h / norm for x, h in zip(psi, hv)]
    return float(_norm(psi))


def learning_rate_from_eigenvalue(
    optimizer, lambda_max: float, *, momentum: float = 0.9, gradient_rms: float | None = None
) -> float:
    """The rate ``learning_rate="auto"`` uses for ``optimizer`` (table in the module doc).

    Parameters
    ----------
    optimizer : str or torch.optim.Optimizer subclass
    lambda_max : float
    momentum : float, default=0.9
        ``beta`` of ``"momentum"`` / ``"nesterov"``.
    gradient_rms : float, optional
        Needed by ``"adam"`` and ``"rmsprop"``.

    Returns
    -------
    float

    Examples
    --------
    >>> learning_rate_from_eigenvalue("sgd", 4.0), learning_rate_from_eigenvalue("momentum", 2.0, momentum=0.5)
    (0.25, 0.25)
    """
    if optimizer == "lbfgs":
        return 1.0
    if not lambda_max > 0.0:
        raise ValueError(f"lambda_max={lambda_max} is not positive: no rate can be derived from it.")
    if optimizer in ("momentum", "nesterov"):
        return (1.0 - momentum) / lambda_max
    if optimizer in ("adam", "rmsprop"):
        if gradient_rms is None:
            raise ValueError(f"optimizer={optimizer!r} needs gradient_rms.")
        return gradient_rms / lambda_max
    return 1.0 / lambda_max


def estimate_max_learning_rate(
    module: torch.nn.Module,
    loss_fn: Callable[..., torch.Tensor],
    data: tuple[torch.Tensor, ...],
    *,
    optimizer="sgd",
    method: str = "autograd",
    n_iter: int = 100,
    tol: float = 1e-4,
    n_samples: int | None = 4096,
    batch_size: int = 1024,
    fd_step: float = 1e-3,
    gamma: float = 0.02,
    momentum: float = 0.9,
    preconditioner: Sequence[torch.Tensor] | None = None,
    params: Sequence[torch.Tensor] | None = None,
    generator: torch.Generator | None = None,
) -> MaxLearningRate:
    """Largest Hessian eigenvalue of the mean loss, and the rate it suggests.

    Parameters
    ----------
    module : torch.nn.Module
    loss_fn : callable
        ``loss_fn(module, *batch) -> scalar`` mean loss.
    data : tuple of tensors sharing dim 0
    optimizer : str or torch.optim.Optimizer subclass, default="sgd"
        Selects the mapping to a rate (module doc).
    method : {"autograd", "finite_difference", "online"}, default="autograd"
    n_iter : int, default=100
        Power iterations (``"online"``: presentations).
    tol : float, default=1e-4
        Relative change of the estimate that stops the power method.
    n_samples : int or None, default=4096
        Random subset of ``data`` used (None: all of it).
    batch_size : int, default=1024
        Chunk size of the full-batch passes (``"online"``: 1 sample per presentation).
    fd_step : float, default=1e-3
        ``a`` of the finite differences.
    gamma : float, default=0.02
        ``"online"`` averaging constant.
    momentum : float, default=0.9
        For the ``"momentum"``/``"nesterov"`` mapping.
    preconditioner : sequence of tensors, optional
        Diagonal ``P``: the eigenvalue is that of ``P^{1/2} H P^{1/2}`` (SDLM's metric).
    params : sequence of tensors, optional
        Defaults to the module's parameters that require grad.
    generator : torch.Generator, optional
        For the subset and the start vector.

    Returns
    -------
    MaxLearningRate

    Examples
    --------
    >>> X = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    >>> lin = torch.nn.Linear(2, 1, bias=False)
    >>> loss = lambda m, x: 0.5 * (m(x) ** 2).sum(1).mean()
    >>> est = estimate_max_learning_rate(lin, loss, (X,), tol=1e-8)  # H = X^T X / 2
    >>> round(est.lambda_max, 4), round(est.learning_rate, 4)
    (2.0, 0.5)
    """
    if method not in METHODS:
        raise ValueError(f"method={method!r} is not one of {', '.join(METHODS)}.")
    params = trainable(module, params)
    n = data[0].shape[0]
    if n_samples is not None and n_samples < n:
        rows = random_rows(n, generator, data[0])[:n_samples]
        data = tuple(t[rows.to(t.device)] for t in data)
    gradient = _gradient(module, loss_fn, data, params, batch_size)
    if method == "online":
        lam = online_max_eigenvalue(
            module, loss_fn, data, params=params, n_presentations=n_iter, gamma=gamma,
            fd_step=fd_step, generator=generator,
        )
        done = n_iter
    else:
        root = None if preconditioner is None else [p.sqrt() for p in preconditioner]

        def hvp(v: Vector) -> Vector:
            if root is not None:
                v = [r * x for r, x in zip(root, v)]
            hv = hessian_vector_product(
                module, loss_fn, data, v, params=params, method=method, fd_step=fd_step,
                batch_size=batch_size, gradient=gradient,
            )
            return hv if root is None else [r * x for r, x in zip(root, hv)]

        lam, done = power_iteration(hvp, _random_like(params, generator), n_iter=n_iter, tol=tol)
    numel = sum(g.numel() for g in gradient)
    rms = float(_norm(gradient)) / max(numel, 1) ** 0.5
    rate = learning_rate_from_eigenvalue(optimizer, lam, momentum=momentum, gradient_rms=rms)
    return MaxLearningRate(lambda_max=lam, learning_rate=rate, n_iter=done, method=method)
