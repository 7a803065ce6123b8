"""The optimizer registry shared by every trainable estimator.

``OPTIMIZERS`` maps a name to a factory ``factory(params, lr, **options) -> Optimizer``:

===============  ====================================================================
``"sgd"``        :class:`torch.optim.SGD`
``"momentum"``   :class:`torch.optim.SGD` with ``momentum=0.9``
``"nesterov"``   :class:`torch.optim.SGD` with ``momentum=0.9, nesterov=True``
``"asgd"``       :class:`~sparsecode.training.optim.asgd.ASGD` (Bottou's averaged SGD)
``"rmsprop"``    :class:`torch.optim.RMSprop`
``"adam"``       :class:`torch.optim.Adam`
``"sdlm"``       :class:`~sparsecode.training.optim.sdlm.SDLM` (stochastic diagonal Levenberg-Marquardt)
``"lbfgs"``      :class:`torch.optim.LBFGS` with ``line_search_fn="strong_wolfe"``
===============  ====================================================================

New optimizers register here. ``learning_rate="auto"`` is explained in :mod:`sparsecode.training.optim.lr`.

Training hooks. The loop (:func:`sparsecode.training.fit_module`) never names an optimizer: what an
optimizer needs from it beyond ``step`` it asks through the methods of
:class:`~sparsecode.training.optim.hooks.TrainingHooks`, a mixin with no-op defaults (torch's own
optimizers get the defaults):

- ``prepare(context, options)`` (classmethod), before the optimizer is built: options that depend
  on the data and the preconditioner of ``learning_rate="auto"`` (ASGD: ``t0`` = one pass; SDLM:
  estimates its Gauss-Newton diagonal, hands it to the constructor and preconditions ``"auto"``);
- ``before_step(n_batch, context)``, before every step (SDLM: re-estimates the diagonal every
  ``hessian_interval`` samples);
- ``use_average(flag)``, True around validation and at the end of a call, False before training
  continues (ASGD: swaps its averaged weights in and out).

``context`` is a :class:`~sparsecode.training.optim.hooks.TrainContext`: the module, ``loss_fn``,
``residual_fn``, the training data, the parameters trained, the generator and the steps per pass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

from .asgd import ASGD, asgd, asgd_schedule
from .hooks import TrainContext, TrainingHooks, hooks_of
from .lr import (
    MaxLearningRate,
    estimate_max_learning_rate,
    hessian_vector_product,
    learning_rate_from_eigenvalue,
    online_max_eigenvalue,
    power_iteration,
)
from .sdlm import SDLM, gauss_newton_diagonal, sdlm, softmax_residuals

__all__ = [
    "OPTIMIZERS",
    "make_optimizer",
    "optimizer_factory",
    "TrainContext",
    "TrainingHooks",
    "hooks_of",
    "ASGD",
    "asgd",
    "asgd_schedule",
    "SDLM",
    "sdlm",
    "gauss_newton_diagonal",
    "softmax_residuals",
    "MaxLearningRate",
    "estimate_max_learning_rate",
    "hessian_vector_product",
    "learning_rate_from_eigenvalue",
    "online_max_eigenvalue",
    "power_iteration",
]


def _sgd_with(**fixed) -> Callable[..., torch.optim.Optimizer]:
    def factory(params, lr, **options):
        return torch.optim.SGD(params, lr=lr, **{**fixed, **options})

    return factory


def _lbfgs(params, lr, **options):
    return torch.optim.LBFGS(params, lr=lr, **{"line_search_fn": "strong_wolfe", **options})


OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "sgd": _sgd_with(),
    "momentum": _sgd_with(momentum=0.9),
    "nesterov": _sgd_with(momentum=0.9, nesterov=True),
    "asgd": ASGD,
    "rmsprop": torch.optim.RMSprop,
    "adam": torch.optim.Adam,
    "sdlm": SDLM,
    "lbfgs": _lbfgs,
}


def optimizer_factory(
    optimizer: str | type[torch.optim.Optimizer],
) -> Callable[..., torch.optim.Optimizer]:
    """What builds ``optimizer``: its :data:`OPTIMIZERS` entry, or the class itself.

    Parameters
    ----------
    optimizer : str or torch.optim.Optimizer subclass

    Returns
    -------
    callable
        ``factory(params, lr, **options) -> Optimizer``.

    Raises
    ------
    ValueError
        For an unknown name (the message lists the valid ones) or anything else.

    Examples
    --------
    >>> optimizer_factory("sdlm").__name__
    'SDLM'
    """
    if isinstance(optimizer, str):
        if optimizer not in OPTIMIZERS:
            raise ValueError(
                f"optimizer={optimizer!r} is not known; valid names are "
                f"{', '.join(repr(k) for k in OPTIMIZERS)}, or a torch.optim.Optimizer subclass."
            )
        return OPTIMIZERS[optimizer]
    if isinstance(optimizer, type) and issubclass(optimizer, torch.optim.Optimizer):
        return optimizer
    raise ValueError(
        f"optimizer={optimizer!r} must be one of {', '.join(repr(k) for k in OPTIMIZERS)}, "
        "a torch.optim.Optimizer subclass or an instance."
    )


def make_optimizer(
    optimizer: str | type[torch.optim.Optimizer] | torch.optim.Optimizer,
    params: Iterable,
    learning_rate: float,
    **options,
) -> torch.optim.Optimizer:
    """Build an optimizer from a registry name, a class, or return an instance as is.

    Parameters
    ----------
    optimizer : str, torch.optim.Optimizer subclass or instance
        A key of :data:`OPTIMIZERS`; a class is called as ``cls(params, lr=learning_rate,
        **options)``; an instance (already holding its parameters) is returned unchanged.
    params : iterable of tensors or of dicts (parameter groups)
    learning_rate : float
        Must be positive.
    **options
        Extra keyword arguments of the optimizer (``momentum``, ``betas``, ``mu``, ``t0``, ...).

    Returns
    -------
    torch.optim.Optimizer

    Raises
    ------
    ValueError
        For an unknown name (the message lists the valid ones), a non-positive rate or an
        option the optimizer does not take.

    Examples
    --------
    >>> w = torch.nn.Parameter(torch.zeros(2))
    >>> type(make_optimizer("nesterov", [w], 0.1)).__name__
    'SGD'
    """
    if isinstance(optimizer, torch.optim.Optimizer):
        return optimizer
    factory = optimizer_factory(optimizer)
    if not (isinstance(learning_rate, (int, float)) and learning_rate > 0):
        raise ValueError(f"learning_rate={learning_rate!r} must be a positive float.")
    try:
        return factory(params, lr=float(learning_rate), **options)
    except TypeError as exc:
        raise ValueError(f"optimizer={optimizer!r} does not accept the options {options}: {exc}")
