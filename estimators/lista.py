"""LISTA and LCoD: learned fast approximations of sparse codes (Gregor & LeCun, ICML 2010)."""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _fit_context,
    clone,
)
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_array, check_is_fitted

from sparsecode.models import LISTA as LISTAModule
from sparsecode.models import LCoD as LCoDModule
from sparsecode.models import make_loss
from sparsecode.models.lista import LOSSES, PARAMETRIZATIONS
from sparsecode.objectives import lasso_energy
from sparsecode.solvers.encode import solve_lasso

from ._base import DEVICE_CONSTRAINT, TorchEstimatorMixin
from ._training import TRAINING_PARAMETER_CONSTRAINTS, TrainingMixin, training_parameters_doc
from ._validation import check_dictionary, check_input

__all__ = ["LISTA", "LCoD"]

# The exact codes the encoders learn to match (loss="code"): FISTA with support polishing, run until
# the relative duality gap is 1e-6 (about the float32 floor; the codes then agree to ~1e-10 relative).
TARGET_TOL = 1e-6
TARGET_MAX_ITER = 10_000

_COMMON_DOC = """dictionary : None, array-like of shape (n_components, n_features) or estimator, default=None
        The dictionary whose lasso codes are approximated (rows are atoms). None learns one first
        with :class:`estimators.DictionaryLearning` (``n_components``, ``alpha``, ``random_state``,
        ``device``); an unfitted estimator exposing ``components_`` after ``fit`` (e.g. a configured
        ``DictionaryLearning``) is cloned and fitted on ``X``.
    n_components : int, default=None
        Atoms learned when ``dictionary`` is None (``n_features`` when None); else ignored.
    alpha : float, default=1.0
        Lasso penalty ``0.5*||x - z D||^2 + alpha*||z||_1`` of the codes approximated.
    n_layers : int, default={n_layers}
        {layers}
    loss : {{"code", "energy"}}, default="code"
        ``"code"``: mean ``0.5*||f(x) - z*||^2`` against the exact codes ``z*`` (the paper's; computed
        by FISTA with support polishing to a relative duality gap of 1e-6). ``"energy"``: the mean
        lasso energy of ``f(x)`` itself, with no teacher (Ablin et al. 2019).
    positive_code : bool, default=False
        Non-negative codes (one-sided shrinkage)."""

# Torch7's learningRateDecay in training samples: the rate is learning_rate / (1 + LR_DECAY * n_seen),
# a third of the base rate after a million patches (chosen on bench_lista.py's 10x10 patches).
LR_DECAY = 2e-6

_TRAINING_DEFAULTS_DOC = """
    Default training: Adam at ``learning_rate=3e-3`` on minibatches of 256, at most 100 passes, the
    rate decayed as ``learning_rate / (1 + 2e-6 * samples seen)`` (Torch7's ``learningRateDecay``);
    ``benchmarks/bench_lista.py`` reports what it reaches on 10x10 natural-image patches."""

_TRAINING_DOC = training_parameters_doc(learning_rate="3e-3")

_LISTA_LAYERS_DOC = (
    "Steps ``T`` after the first shrinkage (``T + 1`` shrinkages; 0 is a one-layer encoder)."
)

_ATTRIBUTES_DOC = """
    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
        The dictionary (given or learned).
    loss_curve_ : list of float
        Mean training loss of every pass.
    n_iter_ : int
        Passes over the data.
    learning_rate_ : float
        The resolved learning rate.
    best_loss_ : float
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Only when ``X`` has string feature names."""


class _AmortizedEncoder(
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    TrainingMixin,
    TorchEstimatorMixin,
    BaseEstimator,
):
    """What LISTA and LCoD share: the dictionary, the targets, the training call, transform and score.

    Subclasses set the defaults in ``__init__`` and build their module in :meth:`_make_module`.
    """

    _parameter_constraints: dict = {
        "dictionary": ["array-like", HasMethods(["fit"]), None],
        "n_components": [Interval(Integral, 1, None, closed="left"), None],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "n_layers": [Interval(Integral, 0, None, closed="left")],
        "loss": [StrOptions(set(LOSSES))],
        "positive_code": ["boolean"],
        **TRAINING_PARAMETER_CONSTRAINTS,
        "random_state": ["random_state"],
        "device": DEVICE_CONSTRAINT,
    }

    def _make_module(self, D: torch.Tensor) -> torch.nn.Module:
        raise NotImplementedError

    def _fit_dictionary(self, X: np.ndarray, random_state) -> np.ndarray:
        if self.dictionary is None:
            from .dict_learning import DictionaryLearning

            learner = DictionaryLearning(
                n_components=self.n_components,
                alpha=self.alpha,
                positive_code=self.positive_code,
                device=self._device,
                random_state=random_state,
            )
        elif hasattr(self.dictionary, "fit"):
            learner = clone(self.dictionary)
        else:
            D = check_dictionary(self.dictionary, dtype=X.dtype)
            if D.shape[1] != X.shape[1]:
                raise ValueError(
                    f"dictionary has {D.shape[1]} features per atom but X has {X.shape[1]}."
                )
            return D
        return np.asarray(learner.fit(X).components_, dtype=X.dtype)

    def _targets(self, Xt: torch.Tensor, Dt: torch.Tensor) -> torch.Tensor:
        return solve_lasso(
            Xt,
            Dt,
            self.alpha,
            positive=self.positive_code,
            tol=TARGET_TOL,
            max_iter=TARGET_MAX_ITER,
        ).code

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Learn the dictionary if needed, then train the encoder on ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : Ignored

        Returns
        -------
        self
        """
        X = check_input(self, X, reset=True)
        random_state = check_random_state(self.random_state)
        self._resolve_device()
        keep = (
            self.warm_start and hasattr(self, "_module") and self.components_.shape[1] == X.shape[1]
        )
        D = self.components_.astype(X.dtype) if keep else self._fit_dictionary(X, random_state)
        Xt, Dt = self._tensor(X), self._tensor(D, dtype=X.dtype)
        module = self._module.to(Xt) if keep else self._make_module(Dt)
        loss_fn, residual_fn = make_loss(self.loss, Dt, self.alpha)
        data = (Xt, self._targets(Xt, Dt)) if self.loss == "code" else (Xt,)
        self._module = module
        self._train(
            module,
            loss_fn,
            data,
            projection=type(module).project_,
            residual_fn=residual_fn,
            generator=self._generator(random_state),
            reset=not keep,
            lr_decay=LR_DECAY,
        )
        self.components_ = D
        return self

    def _encode(self, X) -> tuple[torch.Tensor, torch.Tensor]:
        """``(X, codes)`` as tensors in ``X``'s float dtype (the encoder runs in its own dtype)."""
        check_is_fitted(self)
        Xt = self._tensor(check_input(self, X, reset=False))
        param = next(self._module.parameters())
        with torch.no_grad():
            return Xt, self._module(Xt.to(param)).to(Xt)

    def transform(self, X):
        """The encoder's codes of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        code : ndarray of shape (n_samples, n_components)
        """
        return self._numpy(self._encode(X)[1])

    def inverse_transform(self, X):
        """Reconstruction ``code @ components_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_components)

        Returns
        -------
        X_original : ndarray of shape (n_samples, n_features)
        """
        check_is_fitted(self)
        code = check_array(X, dtype=[np.float64, np.float32])
        if code.shape[1] != self.components_.shape[0]:
            raise ValueError(
                f"X has {code.shape[1]} columns but the encoder has "
                f"{self.components_.shape[0]} components."
            )
        return code @ self.components_.astype(code.dtype, copy=False)

    def score(self, X, y=None):
        """Minus the mean lasso energy of the encoder's codes of ``X`` (higher is better).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : Ignored

        Returns
        -------
        score : float
        """
        Xt, Z = self._encode(X)
        Dt = self._tensor(self.components_, dtype=Xt.dtype)
        return -float(lasso_energy(Xt, Z, Dt, self.alpha).mean())

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    @property
    def _n_features_out(self):
        return self.components_.shape[0]


class LISTA(_AmortizedEncoder):
    __doc__ = f"""Learned ISTA (Gregor & LeCun 2010): a fixed number of trained shrinkage steps.

    ``transform`` runs ``Z0 = h(x W^T)``, ``Z_t = h(x W^T + Z_(t-1) S)`` for ``t = 1..n_layers``, with
    ``W``, ``S`` and per-unit thresholds trained (through :func:`sparsecode.training.fit_module`) to
    approximate the lasso codes of a dictionary, starting from the ISTA values ``W = D/L``,
    ``S = I - D D^T/L``, ``theta = alpha/L``. Variants: ``tied=False`` (one set of weights per step),
    ``parametrization="coupled"`` (LISTA-CP, ``S = I - W D^T``), ``"step"`` (only a step size is learned,
    Ablin et al. 2019) and ``inhibition_fraction < 1`` (the paper's partial mutual inhibition).
{_TRAINING_DEFAULTS_DOC}

    Parameters
    ----------
    {_COMMON_DOC.format(n_layers=3, layers=_LISTA_LAYERS_DOC)}
    parametrization : {{"full", "coupled", "step"}}, default="full"
        See :class:`sparsecode.models.LISTA`.
    tied : bool, default=True
        Share the weights across steps.
    inhibition_fraction : float, default=1.0
        Fraction of the entries of ``S`` kept, the largest at the ISTA values (``"full"`` only).
{_TRAINING_DOC}    random_state : int, RandomState instance or None, default=None
        Seeds the dictionary learning and the minibatch order.
    device : {{"auto", "cpu", "cuda", "cuda:N"}}, default="auto"
        Where to compute; arrays come back as numpy.
{_ATTRIBUTES_DOC}

    Examples
    --------
    >>> import numpy as np
    >>> from estimators import LISTA
    >>> rng = np.random.RandomState(0)
    >>> D = rng.randn(8, 5); D /= np.linalg.norm(D, axis=1, keepdims=True)
    >>> X = rng.randn(200, 5)
    >>> enc = LISTA(dictionary=D, alpha=0.1, n_layers=2, max_iter=5, random_state=0, device="cpu").fit(X)
    >>> enc.transform(X).shape
    (200, 8)
    """

    _parameter_constraints: dict = {
        **_AmortizedEncoder._parameter_constraints,
        "parametrization": [StrOptions(set(PARAMETRIZATIONS))],
        "tied": ["boolean"],
        "inhibition_fraction": [Interval(Real, 0, 1, closed="right")],
    }

    def __init__(
        self,
        dictionary=None,
        *,
        n_components=None,
        alpha=1.0,
        n_layers=3,
        loss="code",
        parametrization="full",
        tied=True,
        inhibition_fraction=1.0,
        positive_code=False,
        optimizer="adam",
        learning_rate=3e-3,
        max_iter=100,
        batch_size=256,
        tol=1e-4,
        n_iter_no_change=10,
        early_stopping=False,
        validation_fraction=0.1,
        warm_start=False,
        verbose=0,
        random_state=None,
        device="auto",
    ):
        self.dictionary = dictionary
        self.n_components = n_components
        self.alpha = alpha
        self.n_layers = n_layers
        self.loss = loss
        self.parametrization = parametrization
        self.tied = tied
        self.inhibition_fraction = inhibition_fraction
        self.positive_code = positive_code
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

    def _make_module(self, D: torch.Tensor) -> LISTAModule:
        return LISTAModule(
            D,
            self.alpha,
            self.n_layers,
            parametrization=self.parametrization,
            tied=self.tied,
            inhibition_fraction=self.inhibition_fraction,
            positive=self.positive_code,
        )


class LCoD(_AmortizedEncoder):
    __doc__ = f"""Learned coordinate descent (Gregor & LeCun 2010): a fixed number of trained greedy
    coordinate steps.

    ``transform`` runs ``B = x W^T``, then ``n_layers`` times: ``Zbar = h(B)``, ``k = argmax |Z - Zbar|``,
    ``B += (Zbar_k - Z_k) S_k``, ``Z_k = Zbar_k``; and returns ``h(B)``. ``W``, ``S`` and per-unit
    thresholds start at the coordinate-descent values ``W = D``, ``S = diag(D D^T) - D D^T``,
    ``theta = alpha`` and are trained (the choice of ``k`` carries no gradient). A step costs
    ``O(n_components)``, against ``O(n_components^2)`` for a LISTA step.
{_TRAINING_DEFAULTS_DOC}

    Parameters
    ----------
    {_COMMON_DOC.format(n_layers=10, layers="Coordinate steps ``T``.")}
{_TRAINING_DOC}    random_state : int, RandomState instance or None, default=None
        Seeds the dictionary learning and the minibatch order.
    device : {{"auto", "cpu", "cuda", "cuda:N"}}, default="auto"
        Where to compute; arrays come back as numpy.
{_ATTRIBUTES_DOC}

    Examples
    --------
    >>> import numpy as np
    >>> from estimators import LCoD
    >>> rng = np.random.RandomState(0)
    >>> D = rng.randn(8, 5); D /= np.linalg.norm(D, axis=1, keepdims=True)
    >>> X = rng.randn(200, 5)
    >>> enc = LCoD(dictionary=D, alpha=0.1, n_layers=4, max_iter=5, random_state=0, device="cpu").fit(X)
    >>> enc.transform(X).shape
    (200, 8)
    """

    def __init__(
        self,
        dictionary=None,
        *,
        n_components=None,
        alpha=1.0,
        n_layers=10,
        loss="code",
        positive_code=False,
        optimizer="adam",
        learning_rate=3e-3,
        max_iter=100,
        batch_size=256,
        tol=1e-4,
        n_iter_no_change=10,
        early_stopping=False,
        validation_fraction=0.1,
        warm_start=False,
        verbose=0,
        random_state=None,
        device="auto",
    ):
        self.dictionary = dictionary
        self.n_components = n_components
        self.alpha = alpha
        self.n_layers = n_layers
        self.loss = loss
        self.positive_code = positive_code
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

    def _make_module(self, D: torch.Tensor) -> LCoDModule:
        return LCoDModule(D, self.alpha, self.n_layers, positive=self.positive_code)
