"""The base of every trained estimator: the shared training parameters (documented in
:mod:`estimators._training_doc`), and the call into the one training loop (:func:`sparsecode.training.fit_module`).

A trained estimator derives from :class:`TrainedEstimator`, lists all its parameters in ``__init__``
(scikit-learn requires it) and passes the shared ones to ``super().__init__``, extends
:attr:`TrainedEstimator._parameter_constraints`, writes ``{training}`` in its docstring where the
shared entries go (filled with the defaults of its own ``__init__``) and trains through
:meth:`TrainedEstimator._train`.

Every ``_fit`` a subclass defines runs inside one fit session (wrapped when the class is created): its
calls of :meth:`TrainedEstimator._train` share one :class:`~sparsecode.training.checkpoint.Checkpoint`
(they are its stages), and in a distributed fit the ranks meet before training
(:class:`~sparsecode.training.faults.RankAgreement`), so that a rank whose shard fails validation stops
the others with its message instead of leaving them waiting.
"""

from __future__ import annotations

import functools
import os
import warnings
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from sparsecode.training import STRATEGIES, Distributed, TrainResult, fit_module
from sparsecode.training.checkpoint import Checkpoint, describe_params
from sparsecode.training.distributed import check_process_group, sum_over_ranks
from sparsecode.training.faults import RankAgreement
from sparsecode.training.optim import OPTIMIZERS

from ._base import DEVICE_CONSTRAINT, FitMixin, FloatTransformerMixin, TorchEstimatorMixin
from ._training_doc import training_parameters_doc
from ._validation import check_input

__all__ = ["TrainedEstimator", "TrainedTransformer", "training_parameters_doc", "data_scale", "ALPHA_FRACTION",
           "estimator_checkpoint"]

ALPHA_FRACTION = 0.1
"""``alpha=None`` resolves to this fraction of :func:`data_scale` (``alpha_``)."""


def data_scale(X: np.ndarray, atom_size: int | None = None, distributed=None) -> float:
    """The root-mean-square norm of the pieces of ``X`` an atom sees: ``sqrt(mean(X**2) * atom_size)``.

    It bounds the typical correlation of a sample with a unit-norm atom, so a penalty or an input
    scaling relative to it makes a model's defaults independent of the data's scale.

    Parameters
    ----------
    X : ndarray of shape (n_samples, ...)
        Training data.
    atom_size : int, optional
        Values per atom (a patch for convolutional models); all of a sample's values when None.
    distributed : str or Distributed, optional
        The fit's strategy: when given, the mean is over every rank's shard, so that all ranks share
        one scale (and one default ``alpha``).

    Returns
    -------
    float
        Positive (1 for all-zero data).
    """
    atom_size = int(np.prod(X.shape[1:])) if atom_size is None else int(atom_size)
    total = torch.tensor([np.sum(np.square(X, dtype=np.float64)), X.size], dtype=torch.float64, device="cpu")
    if distributed is not None:
        check_process_group(str(distributed))
        (total,) = sum_over_ranks([total])
    scale = float(torch.sqrt(total[0] / total[1] * atom_size)) if total[1] > 0 else 0.0
    return scale if scale > 0 else 1.0


def data_mean(X: np.ndarray, distributed=None) -> np.ndarray:
    """The mean of the rows of ``X`` (float64), over every rank's shard when ``distributed`` is given (as
    :func:`data_scale`), so that all ranks share it."""
    total = torch.from_numpy(np.append(np.sum(X, axis=0, dtype=np.float64).reshape(-1), X.shape[0]))
    if distributed is not None:
        check_process_group(str(distributed))
        (total,) = sum_over_ranks([total])
    return (total[:-1] / total[-1].clamp(min=1)).numpy().reshape(X.shape[1:])


_NOT_IDENTIFYING = frozenset({"max_iter", "verbose", "checkpoint"})


def estimator_checkpoint(estimator, ignored=_NOT_IDENTIFYING) -> Checkpoint | None:
    """The checkpoint of a fit of ``estimator``: its file ``checkpoint`` (None: none), identified by the
    class and the parameters, less the ``ignored`` ones (those a resumed fit may change)."""
    if estimator.checkpoint is None:
        return None
    params = describe_params({k: v for k, v in estimator.get_params(deep=False).items() if k not in ignored})
    cls = type(estimator)
    return Checkpoint(estimator.checkpoint, {"class": f"{cls.__module__}.{cls.__qualname__}", **params})


def _fit_session(fit):
    """``fit`` (a ``_fit``) with its :meth:`TrainedEstimator._train` calls in one session: one checkpoint,
    and one meeting of the ranks before training (a failure before it is passed on to the others)."""
    @functools.wraps(fit)
    def wrapper(self, *args, **kwargs):
        if "_session" in vars(self):  # a subclass's _fit calling its base's
            return fit(self, *args, **kwargs)
        with RankAgreement(self.distributed is not None) as agreement:
            self._session = (agreement, estimator_checkpoint(self))
            try:
                return fit(self, *args, **kwargs)
            finally:
                del self._session
    return wrapper


class TrainedEstimator(TorchEstimatorMixin, BaseEstimator):
    """Base of the estimators that train a torch module with the shared training parameters.

    The placeholder "training" in braces in a subclass's docstring becomes the entries of
    :func:`training_parameters_doc` for its own defaults, plus its class attribute ``_training_notes``
    (parameter name -> extra sentences).

    Fitted attributes set by :meth:`_train`: ``loss_curve_`` (mean training loss per pass, all
    calls), ``n_iter_`` (passes, all calls), ``learning_rate_`` (the resolved rate),
    ``best_loss_`` and, with ``early_stopping``, ``validation_scores_`` (minus the validation
    loss per pass). The loop state lives in ``self._train_state`` (plain tensors and an
    optimizer; pickled with the estimator).
    """

    _parameter_constraints: dict = {
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
        "random_state": ["random_state"],
        "device": DEVICE_CONSTRAINT,
        "distributed": [StrOptions(set(STRATEGIES)), Distributed, None],
        "checkpoint": [str, os.PathLike, None],
    }

    _training_notes: dict[str, str] = {}

    _shared_docs = {
        "scaled_attributes": """\
    alpha_ : float
        The penalty used: ``alpha``, or its default relative to ``input_scale_``.
    input_scale_ : float
        The scale the model divides its input by (the data's root-mean-square norm per atom).
    interrupted_ : bool
        Whether Ctrl-C stopped the last fit (it kept the last sane state).""",
    }

    @classmethod
    def _doc_sections(cls) -> dict[str, str]:
        return {**super()._doc_sections(), "training": training_parameters_doc(cls.__init__, cls._training_notes)}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "_fit" in vars(cls):
            cls._fit = _fit_session(vars(cls)["_fit"])

    def __init__(self, optimizer, learning_rate, max_iter, batch_size, tol, n_iter_no_change, early_stopping,
                 validation_fraction, warm_start, verbose, random_state, device, distributed=None,
                 checkpoint=None):
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.warm_start = warm_start
        self.verbose = verbose
        self.random_state = random_state
        self.device = device
        self.distributed = distributed
        self.checkpoint = checkpoint

    def _resolve_alpha(self, scale: float) -> float:
        """Set and return ``alpha_``: ``self.alpha``, or ``ALPHA_FRACTION * scale`` when it is None.

        ``scale`` is the data's (:func:`data_scale`), so the default penalty follows the data's scale.
        """
        self.alpha_ = ALPHA_FRACTION * scale if self.alpha is None else float(self.alpha)
        return self.alpha_

    def _agree(self) -> None:
        """Meet the other ranks (once per fit): every rank has validated its shard. Before any collective."""
        agreement, _ = getattr(self, "_session", (None, None))
        if agreement is not None:
            agreement.agree()

    def _data_scale(self, X: np.ndarray, atom_size: int | None = None) -> float:
        """:func:`data_scale` of the training data, over every rank's shard in a distributed fit."""
        if self.distributed is not None:
            self._agree()
        return data_scale(X, atom_size, distributed=self.distributed)

    def _data_mean(self, X: np.ndarray) -> np.ndarray:
        """:func:`data_mean` of the training data, over every rank's shard in a distributed fit."""
        if self.distributed is not None:
            self._agree()
        return data_mean(X, distributed=self.distributed)

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
        stage: str = "",
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
        stage : str, default=""
            Named after the class in the lines of ``verbose`` (a fit in stages: which one).

        Returns
        -------
        TrainResult

        Raises
        ------
        DivergenceError
            From the loop (the fits restore the estimator as it was before the call).

        Notes
        -----
        A continued fit whose ``optimizer`` or ``learning_rate`` changed since the state was built
        (``set_params``) builds a new optimizer with them; curves and counters go on. ``interrupted_``
        records whether Ctrl-C stopped this call.
        """
        continue_ = not reset or self.warm_start
        state = getattr(self, "_train_state", None) if continue_ else None
        settings = (self.optimizer, self.learning_rate)
        changed = getattr(self, "_train_settings", settings) != settings
        if state is not None and state.optimizer is not None and changed:
            state.optimizer = None  # set_params changed them: rebuild the optimizer with the new ones
        max_iter = self.max_iter if max_iter is None else max_iter
        agreement, checkpoint = getattr(self, "_session", (None, None))
        if agreement is not None:
            self._agree()
        elif self.checkpoint is not None:  # a fit outside a session: this call alone
            checkpoint = estimator_checkpoint(self)
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
            label=" ".join(filter(None, (type(self).__name__, stage))),
            state=state,
            max_steps=max_steps,
            lr_decay=lr_decay,
            distributed=self.distributed,
            checkpoint=checkpoint,
        )
        state = result.state
        self._train_state, self._train_settings = state, settings
        self.interrupted_ = result.interrupted
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


class TrainedTransformer(FitMixin, ClassNamePrefixFeaturesOutMixin, FloatTransformerMixin, TrainedEstimator):
    """A trained estimator whose ``transform`` runs its module ``self._module`` on validated input.

    An unsupervised one learns in :meth:`FitMixin._fit`; a supervised one writes its own ``fit``.

    Subclasses compute their features in :meth:`_features_of`; the input reaches it as a tensor in the
    module's dtype and the output leaves in the dtype of ``X``. One feature per row of ``components_``
    unless a subclass says otherwise.
    """

    def _input(self, X) -> tuple[torch.Tensor, np.dtype]:
        """``X`` validated, as a tensor in the module's dtype, and the dtype ``X`` had."""
        check_is_fitted(self)
        X = check_input(self, X, reset=False)
        return self._tensor(X, dtype=next(self._module.parameters()).dtype), X.dtype

    def _features_of(self, Xt: torch.Tensor) -> torch.Tensor:
        """The features ``transform`` returns, of an input tensor from :meth:`_input`."""
        raise NotImplementedError

    def transform(self, X):
        """The learned features of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features_in_)
            Samples in the layout ``fit`` took.

        Returns
        -------
        features : ndarray of shape (n_samples, n_features_out)
            In the float dtype of ``X``.
        """
        Xt, dtype = self._input(X)
        with torch.no_grad():
            return self._numpy(self._features_of(Xt), dtype)

    @property
    def _n_features_out(self):
        return self.components_.shape[0]
