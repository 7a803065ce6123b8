"""The scikit-learn side of the one training loop (:func:`sparsecode.training.fit_module`).

Every trainable estimator declares the shared parameters below, adds
:data:`TRAINING_PARAMETER_CONSTRAINTS` to its ``_parameter_constraints``, pastes
:data:`TRAINING_PARAMETERS_DOC` into its docstring and trains through :meth:`TrainingMixin._train`.
"""

from __future__ import annotations

import warnings
from numbers import Integral, Real

import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import Interval, StrOptions

from sparsecode.training import DivergenceError, TrainResult, fit_module
from sparsecode.training.optim import OPTIMIZERS

__all__ = ["TRAINING_PARAMETER_CONSTRAINTS", "TRAINING_PARAMETERS_DOC", "TrainingMixin"]

TRAINING_PARAMETER_CONSTRAINTS: dict = {
    "optimizer": [StrOptions(set(OPTIMIZERS)), torch.optim.Optimizer, callable],
    "learning_rate": [Interval(Real, 0, None, closed="neither"), StrOptions({"auto"})],
    "max_iter": [Interval(Integral, 0, None, closed="left")],
    "batch_size": [Interval(Integral, 1, None, closed="left"), None],
    "tol": [Interval(Real, 0, None, closed="left")],
    "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
    "early_stopping": ["boolean"],
    "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
    "warm_start": ["boolean"],
    "verbose": ["verbose"],
}

_TRAINING_DOC_TEMPLATE = """\
    optimizer : {"sgd", "momentum", "nesterov", "asgd", "rmsprop", "adam", "sdlm", "lbfgs"} \
or torch.optim.Optimizer subclass, default="adam"
        Optimizer of the training loop (:data:`sparsecode.training.optim.OPTIMIZERS`). "momentum" and
        "nesterov" use momentum 0.9; "asgd" keeps the averaged weights; "sdlm" scales each
        weight's rate by its Gauss-Newton curvature; "lbfgs" uses a strong-Wolfe line search.
    learning_rate : float or "auto", default=@LEARNING_RATE@
        Base rate. "auto" derives it from the largest Hessian eigenvalue (power method):
        1/lambda_max for "sgd" and "asgd", (1 - 0.9)/lambda_max for "momentum"/"nesterov",
        1/lambda_max of the preconditioned Hessian for "sdlm", RMS gradient/lambda_max for
        "adam"/"rmsprop", and 1 for "lbfgs". The resolved value is ``learning_rate_``.
    max_iter : int, default=100
        Maximum number of passes over the training data (0 is allowed).
    batch_size : int or None, default=256
        Minibatch size; None uses the whole training set per step.
    tol : float, default=1e-4
        Training stops when the loss (the validation loss with ``early_stopping``) has not
        improved by at least ``tol`` for more than ``n_iter_no_change`` passes.
    n_iter_no_change : int, default=10
        Passes without improvement tolerated before stopping.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the training data, stop on its loss and keep the
        parameters of the best pass.
    validation_fraction : float, default=0.1
        Fraction held out when ``early_stopping`` is True.
    warm_start : bool, default=False
        Continue the previous fit (same optimizer, counters and curves) instead of restarting.
    verbose : int, default=0
        1 prints a line per pass, 2 also a progress bar.
"""


def training_parameters_doc(learning_rate: str = "1e-3") -> str:
    """The numpydoc entries of the shared training parameters, with the estimator's default rate."""
    return _TRAINING_DOC_TEMPLATE.replace("@LEARNING_RATE@", learning_rate)


TRAINING_PARAMETERS_DOC = training_parameters_doc()


class TrainingMixin:
    """Mixin that trains a torch module with the estimator's shared training parameters.

    Fitted attributes set by :meth:`_train`: ``loss_curve_`` (mean training loss per pass, all
    calls), ``n_iter_`` (passes, all calls), ``learning_rate_`` (the resolved rate),
    ``best_loss_`` and, with ``early_stopping``, ``validation_scores_`` (minus the validation
    loss per pass). The loop state lives in ``self._train_state`` (plain tensors and an
    optimizer; pickled with the estimator).
    """

    def _train(
        self,
        module: torch.nn.Module,
        loss_fn,
        data: tuple[torch.Tensor, ...],
        *,
        projection=None,
        param_groups=None,
        residual_fn=None,
        optimizer_params: dict | None = None,
        generator: torch.Generator | None = None,
        max_iter: int | None = None,
        max_steps: int | None = None,
        reset: bool = True,
        lr_decay: float = 0.0,
    ) -> TrainResult:
        """Run :func:`sparsecode.training.fit_module` with this estimator's parameters.

        Parameters
        ----------
        module, loss_fn, data, projection, param_groups, residual_fn, optimizer_params, \
generator, max_steps
            As in :func:`sparsecode.training.fit_module`.
        max_iter : int, optional
            Overrides ``self.max_iter`` (``partial_fit`` passes 1).
        reset : bool, default=True
            Start a new optimizer unless ``warm_start`` is set; False (``partial_fit``) always
            continues the stored state.
        lr_decay : float, default=0.0
            Torch7's ``learningRateDecay`` counted in samples seen (see
            :func:`sparsecode.training.fit_module`); each estimator chooses its own value.

        Returns
        -------
        TrainResult

        Raises
        ------
        DivergenceError
            From the loop; the module keeps its last finite parameters and the stored state is
            dropped so that a new fit starts afresh.
        """
        continue_ = not reset or self.warm_start
        state = getattr(self, "_train_state", None) if continue_ else None
        max_iter = self.max_iter if max_iter is None else max_iter
        try:
            result = fit_module(
                module,
                loss_fn,
                data,
                optimizer=self.optimizer,
                learning_rate=self.learning_rate,
                max_iter=max_iter,
                batch_size=self.batch_size,
                tol=self.tol,
                n_iter_no_change=self.n_iter_no_change,
                early_stopping=self.early_stopping,
                validation_fraction=self.validation_fraction,
                projection=projection,
                param_groups=param_groups,
                optimizer_params=optimizer_params,
                residual_fn=residual_fn,
                generator=generator,
                verbose=int(self.verbose),
                state=state,
                max_steps=max_steps,
                lr_decay=lr_decay,
            )
        except DivergenceError:
            self._train_state = None
            raise
        state = result.state
        self._train_state = state
        self.loss_curve_ = list(state.loss_curve)
        self.n_iter_ = state.epoch
        self.learning_rate_ = result.learning_rate
        self.best_loss_ = state.best_loss
        if self.early_stopping:
            self.validation_scores_ = list(state.validation_scores)
        ran_out = max_steps is None and max_iter > 0 and result.n_iter == max_iter
        if ran_out and self.tol > 0 and not result.converged and not result.interrupted:
            warnings.warn(
                f"{type(self).__name__}: the training loop reached max_iter={max_iter} passes "
                f"without converging (tol={self.tol}). Increase max_iter or adjust the learning rate.",
                ConvergenceWarning,
            )
        return result
