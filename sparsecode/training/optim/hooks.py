r"""The calls :func:`sparsecode.training.fit_module` makes into an optimizer besides ``step``.

An optimizer that needs the training loop's help derives from :class:`TrainingHooks` and overrides
what it needs; every hook is a no-op by default, and the loop treats an optimizer that does not
derive from it (torch's own) as having only the defaults. The loop calls them in this order:

``prepare(context, options)`` (classmethod)
    Once, before the loop builds the optimizer from a name or a class (not for an instance passed
    in): returns the constructor options, with the defaults that depend on the data filled in
    (ASGD: ``t0`` = one pass), and the diagonal preconditioner under which ``learning_rate="auto"``
    measures the curvature (SDLM: ``1 / (h + mu)`` from the Gauss-Newton diagonal ``h`` it estimates
    and hands to the constructor), or None for the plain Hessian. ``"auto"`` is resolved after it and
    the optimizer is built once, with its real rates.
``use_average(False)``
    At the start of every call: the iterates go back into the parameters before training continues.
``before_step(n_batch, context)``
    Before every optimizer step on a minibatch of ``n_batch`` samples (SDLM: re-estimates ``h``
    every ``hessian_interval`` samples).
``use_average(True)``
    Around each validation (then ``use_average(False)``) and at the end of every call: the weights
    the fit keeps (ASGD: the averaged iterates) go into the parameters.

The hooks see the call's data through a :class:`TrainContext`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .._common import random_rows

__all__ = ["TrainContext", "TrainingHooks", "hooks_of"]


@dataclass(frozen=True)
class TrainContext:
    """What one call of :func:`sparsecode.training.fit_module` trains on.

    Attributes
    ----------
    module : torch.nn.Module
    loss_fn : callable
        ``loss_fn(module, *batch) -> scalar`` mean loss.
    residual_fn : callable or None
        ``residual_fn(module, *batch) -> (n, k)`` residuals of the loss (SDLM's Gauss-Newton diagonal).
    train : tuple of tensors
        The training data (without the validation rows), sharing dim 0.
    params : list of tensors
        The parameters trained, in parameter-group order.
    generator : torch.Generator or None
        The fit's random numbers.
    steps_per_pass : int
        Optimizer steps in one pass over ``train``.
    """

    module: torch.nn.Module
    loss_fn: Callable[..., torch.Tensor]
    residual_fn: Callable[..., torch.Tensor] | None
    train: tuple[torch.Tensor, ...]
    params: list[torch.Tensor]
    generator: torch.Generator | None
    steps_per_pass: int

    @property
    def n_train(self) -> int:
        """Training samples in one pass."""
        return self.train[0].shape[0]

    def sample(self, n_samples: int) -> tuple[torch.Tensor, ...]:
        """``n_samples`` training rows drawn at random with ``generator`` (all of them when fewer)."""
        rows = random_rows(self.n_train, self.generator, self.train[0])[:n_samples]
        return tuple(t[rows] for t in self.train)


class TrainingHooks:
    """Mixin of an optimizer class: the loop's calls into it (module doc), all no-ops here."""

    @classmethod
    def prepare(cls, context: TrainContext, options: dict) -> tuple[dict, list[torch.Tensor] | None]:
        """Constructor options for this fit and the preconditioner of ``learning_rate="auto"``.

        Parameters
        ----------
        context : TrainContext
        options : dict
            The user's options (not modified).

        Returns
        -------
        options : dict
        preconditioner : list of tensors shaped like ``context.params``, or None
        """
        return options, None

    def before_step(self, n_batch: int, context: TrainContext) -> None:
        """Called before every step on a minibatch of ``n_batch`` samples."""

    def use_average(self, flag: bool) -> None:
        """True: put the weights the fit keeps into the parameters; False: put the iterates back."""


_NO_HOOKS = TrainingHooks()


def hooks_of(optimizer) -> TrainingHooks | type[TrainingHooks]:
    """The hooks of an optimizer instance, class or factory (the no-op defaults for any other).

    Examples
    --------
    >>> hooks_of(torch.optim.SGD).prepare(None, {"momentum": 0.5})
    ({'momentum': 0.5}, None)
    """
    cls = optimizer if isinstance(optimizer, type) else type(optimizer)
    return optimizer if issubclass(cls, TrainingHooks) else _NO_HOOKS
