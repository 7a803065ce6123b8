"""DrSAE: the discriminative recurrent sparse auto-encoder (Rolfe & LeCun, ICLR 2013) as a classifier."""

from __future__ import annotations

import warnings
from numbers import Integral, Real
from typing import TYPE_CHECKING

import numpy as np
import torch
from sklearn.base import ClassifierMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets

from sparsecode.models.drsae import DrSAE as DrSAEModule
from sparsecode.models.drsae import supervised_loss, unsupervised_loss
from sparsecode.training import OPTIMIZERS, TrainState

from ._base import ArrayLike, unchanged_on_failure
from ._training import TrainedEstimator, TrainedTransformer
from ._validation import check_input

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["DrSAE"]


class DrSAE(ClassifierMixin, TrainedTransformer):
    """Discriminative recurrent sparse auto-encoder: a classifier whose features are sparse codes.

    A recurrent ReLU encoder ``z_{t+1} = max(0, x E^T + z_t S^T - b)`` unrolled for ``n_layers``
    steps from ``z_0 = 0``, a linear decoder ``z_T D`` and a classifier ``C`` on ``z_T / ||z_T||``
    (:mod:`sparsecode.models.drsae`). It starts at non-negative ISTA for a dictionary whose atoms
    are, as in the author code, uniform noise in ``[-1/sqrt(n_components), 1/sqrt(n_components)]``
    plus a quarter of a random training sample, normalised to unit norm. It is pretrained for
    ``pretrain_iter`` passes on ``w * L^U``, ``L^U = 0.5*||x - z_T D||^2 + alpha*||z_T||_1`` with
    ``w = reconstruction_weight``, then trained for up to ``max_iter`` passes on ``w * L^U`` plus the
    softmax cross-entropy of the classifier. After every step the decoder atoms are kept in the unit
    ball, the rows of ``E`` in the ball of radius ``1.25/(n_layers - 1)`` and the rows of ``C`` in the
    ball of radius 5; each matrix's rate is divided by how often it repeats in the unrolled network,
    ``C``'s by 5 more, and every rate decays as ``eta / (1 + lr_decay * n)`` with ``n`` the samples
    seen since the start of pretraining (Torch7's ``learningRateDecay``; the clock runs on from
    pretraining into the supervised stage, as in the author code).

    The paper scales every input to unit L2 norm, and the author code's schedule (the defaults:
    plain SGD at 1e-2, ``lr_decay=5e-7``, ``alpha=0.018``) is tuned for it. With
    ``normalize_input=True`` (the default) the estimator does the same to every sample it sees (fit,
    transform, predict), so the defaults train on any scaling of the data (raw pixels, [0, 1],
    standardised, whitened); ``normalize_input=False`` feeds ``X`` as given, where the author schedule
    needs unit-norm rows (``alpha`` and the rate are relative to that scale).

    Parameters
    ----------
    n_components : int, default=400
        Hidden units (the paper's MNIST network has 400).
    n_layers : int, default=11
        Unrolled steps ``T`` (the paper's 11: ten nontrivial passes through ``S``).
    alpha : float, default=0.018
        Sparsity weight ``lambda``; 0.018 is the author code's L1 weight relative to
        ``0.5*||x - z D||^2`` for unit-norm inputs.
    reconstruction_weight : float, default=5.0
        The weight ``w`` of ``L^U`` against the cross-entropy: 5 in the author code (``rec_mag``;
        its L1 weight is ``0.09 = 5 * 0.018``), 1 in the paper's text.
    pretrain_iter : int, default=100
        Passes of unsupervised pretraining (0 skips it; the author code's 100). A fixed schedule:
        it stops early only on ``tol``, never warns.
    lr_decay : float, default=5e-7
        Rate decay per training sample seen (the author code's 5e-7); 0 keeps the rate constant.
    normalize_input : bool, default=True
        Scale every sample to unit L2 norm before the network (the paper's preprocessing; all-zero
        samples stay zero).
{training}
    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    components_ : ndarray of shape (n_components, n_features)
        Decoder atoms ``D`` (rows, norm at most 1).
    encoder_ : ndarray of shape (n_components, n_features)
        ``E``.
    explain_ : ndarray of shape (n_components, n_components)
        The explaining-away matrix ``S``.
    bias_ : ndarray of shape (n_components,)
        ``b``.
    coef_ : ndarray of shape (n_classes, n_components)
        The classification matrix ``C`` (it acts on normalised codes).
    step_ : float
        The ISTA step ``a`` of the initialisation.
    pretrain_loss_curve_ : list of float
        Mean unsupervised loss per pretraining pass.
    loss_curve_ : list of float
        Mean supervised loss per pass.
    n_iter_ : int
        Supervised passes (all calls with ``warm_start``).
    learning_rate_ : float
    interrupted_ : bool
        Whether Ctrl-C stopped the last fit; in pretraining, the supervised stage is skipped.
{input_attributes}

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.preprocessing import normalize
    >>> from estimators import DrSAE
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = DrSAE(n_components=32, n_layers=3, pretrain_iter=1, max_iter=3, tol=0, batch_size=32,
    ...             random_state=0, device="cpu").fit(normalize(X[:300]), y[:300])
    >>> clf.transform(normalize(X[:2])).shape
    (2, 32)
    """

    _training_notes = {
        "optimizer": """\
            The paper's: plain SGD. "lbfgs" is refused: it cannot take the per-matrix rates (parameter
            groups).""",
        "learning_rate": """\
            The author code's 1e-2 on the minibatch-mean loss, scaled per matrix as described
            above.""",
        "max_iter": "Here: passes of supervised training.",
        "batch_size": "The author code's.",
        "early_stopping": "It applies to the supervised stage (the paper's schedule).",
        "warm_start": "It continues the supervised stage of the previous fit without pretraining again.",
        "random_state": "Also seeds the initial dictionary.",
    }

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "n_layers": [Interval(Integral, 1, None, closed="left")],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "reconstruction_weight": [Interval(Real, 0, None, closed="left")],
        "lr_decay": [Interval(Real, 0, None, closed="left")],
        "pretrain_iter": [Interval(Integral, 0, None, closed="left")],
        "normalize_input": ["boolean"],
        **TrainedEstimator._parameter_constraints,
        "optimizer": [StrOptions(set(OPTIMIZERS) - {"lbfgs"}), torch.optim.Optimizer, callable],
    }

    def __init__(
        self,
        n_components=400,
        *,
        n_layers=11,
        alpha=0.018,
        reconstruction_weight=5.0,
        pretrain_iter=100,
        optimizer="sgd", learning_rate=0.01, lr_decay=5e-7, normalize_input=True, max_iter=100, batch_size=10,
        tol=1e-4, n_iter_no_change=10, early_stopping=False, validation_fraction=0.1, warm_start=False,
        verbose=0, random_state=None, device="auto", distributed=None,
        checkpoint=None,
    ):
        super().__init__(optimizer, learning_rate, max_iter, batch_size, tol, n_iter_no_change, early_stopping,
                         validation_fraction, warm_start, verbose, random_state, device, distributed,
                         checkpoint)
        self.n_components = n_components
        self.n_layers = n_layers
        self.alpha = alpha
        self.reconstruction_weight = reconstruction_weight
        self.pretrain_iter = pretrain_iter
        self.lr_decay = lr_decay
        self.normalize_input = normalize_input

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: ArrayLike, y: ArrayLike) -> Self:
        """Pretrain on the reconstruction loss, then train on reconstruction plus classification.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
            Class labels.

        Returns
        -------
        self
            Unchanged when the fit fails. Ctrl-C stops it with the last sane state and
            ``interrupted_=True``; in pretraining, the supervised stage is skipped.
        """
        with unchanged_on_failure(self):
            self._fit(X, y)
        return self

    def _fit(self, X, y) -> None:
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None.")
        continuing = self.warm_start and hasattr(self, "_module")
        X, y = check_input(self, X, y, reset=not continuing)
        check_classification_targets(y)
        classes, y_index = np.unique(y, return_inverse=True)
        if continuing and not np.array_equal(classes, self.classes_):
            raise ValueError(f"warm_start=True needs the classes of the first fit, {self.classes_}; "
                             f"got {classes}.")
        self.classes_ = classes
        self._resolve_device()
        generator = self._generator(check_random_state(self.random_state))
        Xt = self._prepared(self._tensor(X, dtype=next(self._module.parameters()).dtype if continuing else None))
        data = (Xt, torch.as_tensor(y_index, device=self._device))
        if not continuing:
            self._module = self._initial_module(Xt, len(classes), generator)
            self._train_state = None
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                pretrain = self._train(self._module, unsupervised_loss, data,
                                       max_iter=self.pretrain_iter, projection=DrSAEModule.project_,
                                       param_groups=self._module.param_groups(supervised=False),
                                       generator=generator, lr_decay=self.lr_decay, stage="pretraining")
            self.pretrain_loss_curve_ = list(getattr(self, "loss_curve_", []))
            # a fresh optimizer for the supervised stage; the decay clock runs on
            self._train_state = TrainState(n_samples_seen=pretrain.state.n_samples_seen)
            if pretrain.interrupted:  # Ctrl-C in pretraining: no supervised stage
                self.loss_curve_, self.n_iter_ = [], 0
                self._set_fitted_attributes()
                return
        self._train(self._module, supervised_loss, data, projection=DrSAEModule.project_,
                    param_groups=self._module.param_groups(supervised=True), generator=generator,
                    lr_decay=self.lr_decay, reset=False, stage="supervised")
        self._set_fitted_attributes()

    def _prepared(self, Xt: torch.Tensor) -> torch.Tensor:
        """``Xt`` as the network sees it: rows scaled to unit norm with ``normalize_input``."""
        if not self.normalize_input:
            return Xt
        return torch.nn.functional.normalize(Xt, dim=1, eps=torch.finfo(Xt.dtype).tiny)

    def _input(self, X) -> tuple[torch.Tensor, np.dtype]:
        Xt, dtype = super()._input(X)
        return self._prepared(Xt), dtype

    def _initial_module(self, X: torch.Tensor, n_classes: int, generator) -> DrSAEModule:
        module = DrSAEModule(X.shape[1], self.n_components, n_classes, self.n_layers, self.alpha,
                             reconstruction_weight=self.reconstruction_weight, device=X.device,
                             dtype=X.dtype)
        self.step_ = module.init_from_samples(X, generator)
        return module

    def _set_fitted_attributes(self) -> None:
        module = self._module
        self.components_ = self._numpy(module.decoder)
        self.encoder_ = self._numpy(module.encoder)
        self.explain_ = self._numpy(module.explain)
        self.bias_ = self._numpy(module.bias)
        self.coef_ = self._numpy(module.classifier)

    def _features_of(self, Xt: torch.Tensor) -> torch.Tensor:
        """The codes ``z_T`` of the recurrent encoder (non-negative)."""
        return self._module(Xt)

    @torch.no_grad()
    def _logits(self, X) -> tuple[np.dtype, torch.Tensor]:
        """The float dtype of ``X`` and the classifier logits ``C z_T / ||z_T||`` of its codes."""
        Xt, dtype = self._input(X)
        return dtype, self._module.logits(self._module(Xt))

    def _over_classes(self, X, normalise) -> np.ndarray:
        """``normalise`` (softmax or log-softmax) of the logits of ``X`` across the classes."""
        dtype, logits = self._logits(X)
        return self._numpy(normalise(logits, dim=1), dtype)

    def decision_function(self, X: ArrayLike) -> np.ndarray:
        """Classifier logits ``C z_T / ||z_T||``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The samples to score.

        Returns
        -------
        scores : ndarray of shape (n_samples, n_classes), or (n_samples,) for two classes
            With two classes, the logit of ``classes_[1]`` minus that of ``classes_[0]``.
        """
        dtype, logits = self._logits(X)
        if logits.shape[1] == 2:
            logits = logits[:, 1] - logits[:, 0]
        return self._numpy(logits, dtype)

    def predict_proba(self, X: ArrayLike) -> np.ndarray:
        """Softmax of the logits: the probability of each class of ``classes_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            In the float dtype of ``X``; each row sums to one.

        See Also
        --------
        predict_log_proba : Their logarithms, computed directly.
        """
        return self._over_classes(X, torch.softmax)

    def predict_log_proba(self, X: ArrayLike) -> np.ndarray:
        """Log-softmax of the logits, computed directly (more accurate than ``log(predict_proba(X))``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The samples whose class log-probabilities are wanted.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
            Columns in the order of ``classes_``.
        """
        return self._over_classes(X, torch.log_softmax)

    def predict(self, X: ArrayLike) -> np.ndarray:
        """The class of largest logit.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples to classify, scaled as the training samples were.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            Labels from ``classes_``.

        See Also
        --------
        decision_function : The logits compared.
        """
        _, logits = self._logits(X)
        return self.classes_[self._numpy(logits.argmax(1))]
