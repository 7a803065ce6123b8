"""LISTA and LCoD: learned fast approximations of sparse codes (Gregor & LeCun, ICML 2010)."""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import clone
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from sparsecode.models import LISTA as LISTAModule
from sparsecode.models import LCoD as LCoDModule
from sparsecode.models import make_loss
from sparsecode.models.lista import LOSSES, LR_DECAY, PARAMETRIZATIONS, TARGET_MAX_ITER, TARGET_TOL
from sparsecode.objectives import lasso_energy
from sparsecode.penalties import L1
from sparsecode.solvers.encode import solve_lasso

from ._base import EnergyScoreMixin, LinearDecoderMixin
from ._training import TrainedEstimator, TrainedTransformer
from ._validation import check_dictionary, check_input

__all__ = ["LISTA", "LCoD"]

_DICTIONARY_DOC = """\
    dictionary : None, array-like of shape (n_components, n_features) or estimator, default=None
        The dictionary whose lasso codes are approximated (rows are atoms). None learns one first
        with :class:`estimators.DictionaryLearning` (``n_components``, ``alpha``, ``random_state``,
        ``device``); an unfitted estimator exposing ``components_`` after ``fit`` (e.g. a configured
        ``DictionaryLearning``) is cloned and fitted on ``X``.
    n_components : int, default=None
        Atoms learned when ``dictionary`` is None (``n_features`` when None); else ignored.
    alpha : float, default=None
        Lasso penalty ``0.5*||x - z D||^2 + alpha*||z||_1`` of the codes approximated. None uses
        ``0.1 *`` the root-mean-square norm of the training rows (it bounds their typical correlation
        with a unit-norm atom), so the default follows the data's scale; the value used is ``alpha_``.
"""

_LOSS_DOC = """\
    loss : {"code", "energy"}, default="code"
        ``"code"``: mean ``0.5*||f(x) - z*||^2`` against the exact codes ``z*`` (the paper's; computed
        by FISTA with support polishing to a relative duality gap of 1e-6). ``"energy"``: the mean
        lasso energy of ``f(x)`` itself, with no teacher (Ablin et al. 2019).
    positive_code : bool, default=False
        Non-negative codes (one-sided shrinkage).
"""

_SCHEDULE_DOC = """\
    The rate decays as ``learning_rate / (1 + LR_DECAY * samples seen)`` (Torch7's
    ``learningRateDecay``, :data:`sparsecode.models.lista.LR_DECAY`);
    ``benchmarks/bench_lista.py`` reports what the default training reaches on 10x10 natural-image
    patches."""

_ATTRIBUTES_DOC = """\
    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
        The dictionary (given or learned).
    alpha_ : float
        The penalty used.
    interrupted_ : bool
        Whether Ctrl-C stopped the last fit: in the dictionary stage, the encoder keeps its ISTA start
        (no training); in training, the last sane state.
    loss_curve_ : list of float
        Mean training loss of every pass.
    n_iter_ : int
        Passes over the data.
    learning_rate_ : float
        The resolved learning rate.
    best_loss_ : float
{input_attributes}"""


class _AmortizedEncoder(EnergyScoreMixin, LinearDecoderMixin, TrainedTransformer):
    """What LISTA and LCoD share: the dictionary, the targets, the training call, transform and score.

    Subclasses set the defaults in ``__init__``, pass the shared parameters to this ``__init__`` and
    build their module in :meth:`_make_module`.
    """

    _shared_docs = {
        "dictionary": _DICTIONARY_DOC,
        "loss": _LOSS_DOC,
        "schedule": _SCHEDULE_DOC,
        "attributes": _ATTRIBUTES_DOC,
    }
    _training_notes = {"random_state": "Also seeds the dictionary learning."}

    _parameter_constraints: dict = {
        "dictionary": ["array-like", HasMethods(["fit"]), None],
        "n_components": [Interval(Integral, 1, None, closed="left"), None],
        "alpha": [Interval(Real, 0, None, closed="left"), None],
        "n_layers": [Interval(Integral, 0, None, closed="left")],
        "loss": [StrOptions(set(LOSSES))],
        "positive_code": ["boolean"],
        **TrainedEstimator._parameter_constraints,
    }

    def __init__(
        self,
        dictionary,
        n_components,
        alpha,
        n_layers,
        loss,
        positive_code,
        optimizer, learning_rate, max_iter, batch_size, tol, n_iter_no_change, early_stopping,
        validation_fraction, warm_start, verbose, random_state, device, distributed=None, checkpoint=None,
    ):
        super().__init__(optimizer, learning_rate, max_iter, batch_size, tol, n_iter_no_change, early_stopping,
                         validation_fraction, warm_start, verbose, random_state, device, distributed,
                         checkpoint)
        self.dictionary = dictionary
        self.n_components = n_components
        self.alpha = alpha
        self.n_layers = n_layers
        self.loss = loss
        self.positive_code = positive_code

    def _make_module(self, D: torch.Tensor) -> torch.nn.Module:
        raise NotImplementedError

    def _fit_dictionary(self, X: np.ndarray, random_state) -> np.ndarray:
        if self.dictionary is None:
            from .dict_learning import DictionaryLearning

            learner = DictionaryLearning(
                n_components=self.n_components,
                alpha=self.alpha_,
                positive_code=self.positive_code,
                device=self._device,
                random_state=random_state,
                # every rank learns the same dictionary: DictionaryLearning sums its statistics over ranks
                distributed=None if self.distributed is None else "allreduce",
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
        if self.distributed is not None:
            self._agree()  # before the learner's collectives
        learner.fit(X)
        self.interrupted_ = bool(getattr(learner, "interrupted_", False))
        return np.asarray(learner.components_, dtype=X.dtype)

    def _targets(self, Xt: torch.Tensor, Dt: torch.Tensor) -> torch.Tensor:
        return solve_lasso(
            Xt,
            Dt,
            self.alpha_,
            penalty=L1(self.positive_code),
            tol=TARGET_TOL,
            max_iter=TARGET_MAX_ITER,
        ).code

    def _fit(self, X) -> None:
        """Learn the dictionary if needed, then train the encoder on ``X``.

        A continued fit (``warm_start``) converts ``X`` to the fitted dtype, as scikit-learn does.
        """
        X = check_input(self, X, reset=True)
        random_state = check_random_state(self.random_state)
        self._resolve_device()
        keep = (
            self.warm_start and hasattr(self, "_module") and self.components_.shape[1] == X.shape[1]
        )
        if keep:
            X = X.astype(self.components_.dtype, copy=False)
        else:
            self._alpha_scale = self._data_scale(X)
        self._resolve_alpha(self._alpha_scale)
        self.interrupted_ = False
        D = self.components_ if keep else self._fit_dictionary(X, random_state)
        Xt, Dt = self._tensor(X), self._tensor(D, dtype=X.dtype)
        module = self._module if keep else self._make_module(Dt)
        self._module, self.components_ = module, D
        if self.interrupted_:  # Ctrl-C in the dictionary stage: no next stage
            self.loss_curve_, self.n_iter_ = [], 0
            self.learning_rate_, self.best_loss_ = float("nan"), float("inf")
            return
        loss_fn, residual_fn = make_loss(self.loss, Dt, self.alpha_)
        data = (Xt, self._targets(Xt, Dt)) if self.loss == "code" else (Xt,)
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

    def _encode(self, X) -> tuple[torch.Tensor, torch.Tensor]:
        """``(X, codes)`` as tensors in ``X``'s float dtype (the encoder runs in its own dtype)."""
        check_is_fitted(self)
        Xt = self._tensor(check_input(self, X, reset=False))
        param = next(self._module.parameters())
        with torch.no_grad():
            return Xt, self._module(Xt.to(param)).to(Xt)

    def _features_of(self, Xt: torch.Tensor) -> torch.Tensor:
        return self._module(Xt)

    def _energies(self, X) -> torch.Tensor:
        """The lasso energy of every sample of ``X`` at the encoder's codes."""
        Xt, Z = self._encode(X)
        Dt = self._tensor(self.components_, dtype=Xt.dtype)
        return lasso_energy(Xt, Z, Dt, self.alpha_)


class LISTA(_AmortizedEncoder):
    __doc__ = """Learned ISTA (Gregor & LeCun 2010): a fixed number of trained shrinkage steps.

    ``transform`` runs ``Z0 = h(x W^T)``, ``Z_t = h(x W^T + Z_(t-1) S)`` for ``t = 1..n_layers``, with
    ``W``, ``S`` and per-unit thresholds trained (through :func:`sparsecode.training.fit_module`) to
    approximate the lasso codes of a dictionary, starting from the ISTA values ``W = D/L``,
    ``S = I - D D^T/L``, ``theta = alpha/L``. Variants: ``tied=False`` (one set of weights per step),
    ``parametrization="coupled"`` (LISTA-CP, ``S = I - W D^T``), ``"step"`` (only a step size is learned,
    Ablin et al. 2019) and ``inhibition_fraction < 1`` (the paper's partial mutual inhibition).
{schedule}

    Parameters
    ----------
{dictionary}    n_layers : int, default=3
        Steps ``T`` after the first shrinkage (``T + 1`` shrinkages; 0 is a one-layer encoder).
{loss}    parametrization : {"full", "coupled", "step"}, default="full"
        See :class:`sparsecode.models.LISTA`.
    tied : bool, default=True
        Share the weights across steps.
    inhibition_fraction : float, default=1.0
        Fraction of the entries of ``S`` kept, the largest at the ISTA values (``"full"`` only).
{training}
{attributes}

    Examples
    --------
    >>> import numpy as np
    >>> from estimators import LISTA
    >>> rng = np.random.RandomState(0)
    >>> D = rng.randn(8, 5); D /= np.linalg.norm(D, axis=1, keepdims=True)
    >>> X = rng.randn(200, 5)
    >>> enc = LISTA(dictionary=D, alpha=0.1, n_layers=2, max_iter=5, tol=0, random_state=0, device="cpu").fit(X)
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
        alpha=None,
        n_layers=3,
        loss="code",
        parametrization="full",
        tied=True,
        inhibition_fraction=1.0,
        positive_code=False,
        optimizer="adam", learning_rate=3e-3, max_iter=100, batch_size=256, tol=1e-4, n_iter_no_change=10,
        early_stopping=False, validation_fraction=0.1, warm_start=False, verbose=0, random_state=None,
        device="auto", distributed=None, checkpoint=None,
    ):
        super().__init__(dictionary, n_components, alpha, n_layers, loss, positive_code, optimizer, learning_rate,
                         max_iter, batch_size, tol, n_iter_no_change, early_stopping, validation_fraction,
                         warm_start, verbose, random_state, device, distributed, checkpoint)
        self.parametrization = parametrization
        self.tied = tied
        self.inhibition_fraction = inhibition_fraction

    def _make_module(self, D: torch.Tensor) -> LISTAModule:
        return LISTAModule(
            D,
            self.alpha_,
            self.n_layers,
            parametrization=self.parametrization,
            tied=self.tied,
            inhibition_fraction=self.inhibition_fraction,
            positive=self.positive_code,
        )


class LCoD(_AmortizedEncoder):
    __doc__ = """Learned coordinate descent (Gregor & LeCun 2010): a fixed number of trained greedy
    coordinate steps.

    ``transform`` runs ``B = x W^T``, then ``n_layers`` times: ``Zbar = h(B)``, ``k = argmax |Z - Zbar|``,
    ``B += (Zbar_k - Z_k) S_k``, ``Z_k = Zbar_k``; and returns ``h(B)``. ``W``, ``S`` and per-unit
    thresholds start at the coordinate-descent values ``W = D``, ``S = diag(D D^T) - D D^T``,
    ``theta = alpha`` and are trained (the choice of ``k`` carries no gradient). A step costs
    ``O(n_components)``, against ``O(n_components^2)`` for a LISTA step.
{schedule}

    Parameters
    ----------
{dictionary}    n_layers : int, default=10
        Coordinate steps ``T``.
{loss}{training}
{attributes}

    Examples
    --------
    Without a dictionary, LCoD learns one first (:class:`estimators.DictionaryLearning`):

    >>> from sklearn.datasets import load_digits
    >>> from estimators import LCoD
    >>> X = load_digits().data[:300] / 16
    >>> enc = LCoD(n_components=16, alpha=0.5, n_layers=4, max_iter=3, tol=0, random_state=0, device="cpu")
    >>> enc.fit(X).components_.shape, enc.transform(X[:2]).shape
    ((16, 64), (2, 16))
    """

    def __init__(
        self,
        dictionary=None,
        *,
        n_components=None,
        alpha=None,
        n_layers=10,
        loss="code",
        positive_code=False,
        optimizer="adam", learning_rate=3e-3, max_iter=100, batch_size=256, tol=1e-4, n_iter_no_change=10,
        early_stopping=False, validation_fraction=0.1, warm_start=False, verbose=0, random_state=None,
        device="auto", distributed=None, checkpoint=None,
    ):
        super().__init__(dictionary, n_components, alpha, n_layers, loss, positive_code, optimizer, learning_rate,
                         max_iter, batch_size, tol, n_iter_no_change, early_stopping, validation_fraction,
                         warm_start, verbose, random_state, device, distributed, checkpoint)

    def _make_module(self, D: torch.Tensor) -> LCoDModule:
        return LCoDModule(D, self.alpha_, self.n_layers, positive=self.positive_code)
