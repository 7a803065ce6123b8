"""DictionaryLearning: online (minibatch) dictionary learning on the torch engine."""

from __future__ import annotations

import os
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions

from sparsecode.dictionary import (
    OnlineDictionaryState,
    init_dictionary,
    learn_dictionary_online,
    online_dictionary_step,
)
from sparsecode.training import TrainResult, TrainState, make_distributed
from sparsecode.training.checkpoint import as_checkpoint
from sparsecode.training.faults import RankAgreement

from ._base import EnergyScoreMixin, unchanged_on_failure
from ._sparse_coding import TORCH_ALGORITHMS, TRANSFORM_PARAMETER_CONSTRAINTS, SparseCodingMixin, group_index
from ._training import estimator_checkpoint
from ._validation import check_dictionary, check_input

__all__ = ["DictionaryLearning"]

_NOT_IDENTIFYING = frozenset({"max_iter", "verbose", "checkpoint", "callback", "n_jobs"})


class _Statistics:
    """The atoms, the statistics and the stopping rules' running values, as a checkpoint saves and
    restores a module's (``state_dict``)."""

    def __init__(self, D: torch.Tensor, stats: OnlineDictionaryState):
        self._tensors, self._stats = {"D": D, "A": stats.A, "B": stats.B}, stats

    def state_dict(self) -> dict[str, torch.Tensor]:
        s = self._stats
        nan = float("nan")
        rules = [nan if s.ewa_cost is None else s.ewa_cost, nan if s.ewa_cost_min is None else s.ewa_cost_min,
                 s.no_improvement]
        return {**self._tensors, "stopping": torch.tensor(rules, dtype=torch.float64, device="cpu")}

    def load_state_dict(self, saved: dict[str, torch.Tensor]) -> None:
        for name, tensor in self._tensors.items():
            tensor.copy_(saved[name])
        ewa, ewa_min, no_improvement = saved["stopping"].tolist()
        self._stats.ewa_cost = None if np.isnan(ewa) else ewa
        self._stats.ewa_cost_min = None if np.isnan(ewa_min) else ewa_min
        self._stats.no_improvement = int(no_improvement)


class DictionaryLearning(EnergyScoreMixin, SparseCodingMixin, BaseEstimator):
    """Dictionary learning by online block coordinate descent (Mairal et al. 2010).

    Learns atoms ``D`` (rows, norm at most 1) and sparse codes minimising the mean over samples of
    ``0.5*||x - z D||^2 + alpha*||z||_1``, one minibatch at a time. It is the counterpart of
    scikit-learn's ``MiniBatchDictionaryLearning`` and takes its parameter names. It is not scikit-learn's
    batch ``DictionaryLearning`` (alternating full lasso and full dictionary solves): with
    ``batch_size >= n_samples`` every step sees the whole data set, and with ``tol=0,
    max_no_improvement=None`` and enough passes it reaches the same kind of stationary point, but its
    default stopping rules end much earlier than the batch solver's. ``fit`` runs
    online dictionary learning's own loop, :func:`sparsecode.dictionary.learn_dictionary_online`
    (statistics updates and coordinate sweeps, not the gradient-step loop of the other estimators).
    ``score`` is minus the mean of that energy at the codes of ``transform``, the penalty being the group
    norms with ``groups`` or the pooled values ``alpha * sum_i v_i(z)`` with ``topography``.

    Parameters
    ----------
    n_components : int, default=None
        Number of atoms; ``n_features`` when None.
    alpha : float, default=1.0
        Sparsity penalty.
    max_iter : int, default=1000
        Passes over the data at most (early stopping usually ends sooner).
    fit_algorithm : {"auto", "homotopy", "fista", "ista", "cd", "lars"}, default="auto"
        Solver for the codes during fit; ``"lars"`` (scikit-learn's default name) means ``"auto"``, the
        homotopy (LARS-lasso) for the plain lasso: every choice reaches the same lasso optimum.
    n_jobs : int, default=None
        Chunks of ``transform`` coded at the same time, as in :class:`estimators.SparseCoder`.
    batch_size : int, default=256
        Samples per minibatch. On a GPU a step is a long run of small operations (about 17,000 kernel
        launches for 256 atoms, nearly whatever the batch), so small batches leave it idle: one pass over
        20,000 8x8 patches with 256 atoms in batches of 256 took 17 s on an H200 against 0.6 s on two CPU
        threads (``device="cpu"``).
    shuffle : bool, default=True
        Shuffle the samples before each pass.
    dict_init : ndarray of shape (n_components, n_features), default=None
        Initial atoms; random samples of ``X`` when None. Atoms of norm above 1 are scaled onto the unit
        sphere before the first step (the constraint set of the atoms); atoms of norm at most 1 are used as
        given.
    transform_algorithm, transform_n_nonzero_coefs, transform_alpha, transform_max_iter, transform_tol,
    split_sign, positive_code, groups, topography, pool_size, device
        As in :class:`estimators.SparseCoder`; ``transform_alpha=None`` means ``alpha``, and the default
        transform solves the same problem as fit.
    verbose : bool or int, default=False
        Print one line per pass (cost, atoms redrawn, time).
    random_state : int, RandomState instance or None, default=None
    positive_dict : bool, default=False
        Keep atoms non-negative.
    callback : callable, default=None
        Called after every minibatch with a dict (``estimator``, ``step``, ``n_steps``, ``batch_cost``,
        ``dictionary``); returning True stops the fit.
    tol : float, default=1e-3
        Stop when the dictionary changes by less than this (Frobenius norm / n_components) in a step.
    max_no_improvement : int or None, default=10
        Stop after this many steps without improvement of the smoothed minibatch cost.
    distributed : {"allreduce"} or None, default=None
        Learn with the other ranks of a ``torch.distributed`` process group (started by ``torchrun``),
        each calling ``fit`` or ``partial_fit`` on its own shard: each rank codes its minibatch, the
        sufficient statistics are summed over the ranks and every rank applies the same update, as one
        process on the concatenated minibatches. None: this process alone. A rank whose shard fails
        validation makes the others raise ``PeerFailedError`` (:mod:`sparsecode.training.faults`).
    checkpoint : str, os.PathLike or None, default=None
        A file where ``fit`` saves the atoms, the statistics, the early-stopping rules' running values
        and the random generators at the end of every pass (atomically; rank 0 only in a distributed
        fit); ``fit`` with an existing file resumes from it, losing at most one pass, and ends as the
        uninterrupted fit would, early stopping included. The file must come from the same parameters
        (``max_iter``, ``verbose``, ``callback`` and ``n_jobs`` may change) and data, else ``fit``
        raises ValueError: delete it or pass another path; a finished fit's file returns it
        (:mod:`sparsecode.training.checkpoint`). ``partial_fit`` does not use it.

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
        The atoms.
    n_iter_ : int
        Passes over the data.
    n_steps_ : int
        Minibatches processed.
{input_attributes}

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from estimators import DictionaryLearning
    >>> X = load_digits().data[:200] / 16
    >>> dl = DictionaryLearning(n_components=16, alpha=0.5, max_iter=2, random_state=0, device="cpu")
    >>> dl.fit_transform(X).shape
    (200, 16)
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left"), None],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 0, None, closed="left")],
        "fit_algorithm": [StrOptions(set(TORCH_ALGORITHMS) | {"lars"})],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "dict_init": [np.ndarray, None],
        "verbose": ["verbose"],
        "random_state": ["random_state"],
        "positive_dict": ["boolean"],
        "callback": [callable, None],
        "tol": [Interval(Real, 0, None, closed="left")],
        "max_no_improvement": [Interval(Integral, 0, None, closed="left"), None],
        "distributed": [StrOptions({"allreduce"}), None],
        "checkpoint": [str, os.PathLike, None],
        **TRANSFORM_PARAMETER_CONSTRAINTS,
    }

    def __init__(
        self,
        n_components=None,
        *,
        alpha=1.0,
        max_iter=1000,
        fit_algorithm="auto",
        n_jobs=None,
        batch_size=256,
        shuffle=True,
        dict_init=None,
        transform_algorithm="auto",
        transform_n_nonzero_coefs=None,
        transform_alpha=None,
        verbose=False,
        split_sign=False,
        random_state=None,
        positive_code=False,
        positive_dict=False,
        transform_max_iter=1000,
        transform_tol=1e-5,
        callback=None,
        tol=1e-3,
        max_no_improvement=10,
        groups=None,
        topography=None,
        pool_size=3,
        device="auto",
        distributed=None,
        checkpoint=None,
    ):
        super().__init__(transform_algorithm, transform_n_nonzero_coefs, transform_alpha, split_sign, n_jobs,
                         positive_code, transform_max_iter, transform_tol, groups, topography, pool_size, device)
        self.n_components = n_components
        self.alpha = alpha
        self.max_iter = max_iter
        self.fit_algorithm = fit_algorithm
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.dict_init = dict_init
        self.verbose = verbose
        self.random_state = random_state
        self.positive_dict = positive_dict
        self.callback = callback
        self.tol = tol
        self.max_no_improvement = max_no_improvement
        self.distributed = distributed
        self.checkpoint = checkpoint

    # -- fitting -------------------------------------------------------------------------------------
    def _initialize(self, X: np.ndarray) -> torch.Tensor:
        """Fresh dictionary, statistics and random stream for ``X``; returns ``X`` as a tensor."""
        self._random_state = check_random_state(self.random_state)
        self._resolve_device()
        self._n_components = self.n_components or X.shape[1]
        # The penalty's structure is fixed for the fit: build it once, not at every minibatch.
        self._group_index = group_index(self.groups, self._n_components)
        self._pool_structure = self._pools(self._n_components)
        Xt = self._tensor(X)
        if self.dict_init is not None:
            D = check_dictionary(self.dict_init, "dict_init")
            if D.shape != (self._n_components, X.shape[1]):
                raise ValueError(
                    f"dict_init must have shape (n_components, n_features) = "
                    f"{(self._n_components, X.shape[1])}, got {D.shape}."
                )
            D = self._tensor(D, dtype=Xt.dtype).clone()
            D /= torch.linalg.vector_norm(D, dim=1, keepdim=True).clamp(min=1.0)
        else:
            D = init_dictionary(Xt, self._n_components, self._generator(self._random_state), self.positive_dict)
        self._dictionary = D
        self._inner_stats = OnlineDictionaryState.zeros(D)
        self.n_steps_ = 0
        return Xt

    def _step_options(self) -> dict:
        """Keyword arguments of :func:`sparsecode.dictionary.online_dictionary_step` from the parameters."""
        return dict(
            algorithm="auto" if self.fit_algorithm == "lars" else self.fit_algorithm,
            positive_code=self.positive_code, positive_dict=self.positive_dict,
            max_iter=self.transform_max_iter, tol=min(self.transform_tol, 1e-4),
            groups=self._group_index, pools=self._pool_structure, distributed=self.distributed is not None,
        )

    def _report(self, info: dict) -> bool:
        """The user's ``callback`` on one step's ``info`` from the engine, with this estimator added."""
        return self.callback({"estimator": self, **info, "dictionary": self._numpy(info["dictionary"])})

    def _fit(self, X) -> None:
        """Learn the dictionary from ``X`` with :func:`sparsecode.dictionary.learn_dictionary_online`.

        Stops early by ``tol`` / ``max_no_improvement``, after ``max_iter`` passes, when ``callback``
        returns True, or on Ctrl-C (keeping the dictionary as the last step left it).
        """
        with RankAgreement(self.distributed is not None) as agreement:  # a bad shard stops every rank
            X = check_input(self, X, reset=True)
            Xt = self._initialize(X)
            agreement.agree()
        generator = self._generator(self._random_state)
        statistics, progress = _Statistics(self._dictionary, self._inner_stats), TrainState()
        checkpoint, ranks = as_checkpoint(estimator_checkpoint(self, _NOT_IDENTIFYING),
                                          make_distributed(self.distributed))
        snap = None if checkpoint is None else checkpoint.restore(statistics, (Xt,), progress, generator, ranks,
                                                                  self.max_iter)
        if snap is not None:  # resume after the last pass saved (or return the finished fit)
            progress = snap["state"]
            self._inner_stats.n_steps = progress.n_steps
        passes, finished = progress.epoch, snap is not None and snap["finished"]
        saved = TrainResult([], [], passes, float("nan"), False, False, progress)

        def on_step(info: dict) -> bool:
            stop = self.callback is not None and self._report(info)
            per_pass = info["n_steps"] // (self.max_iter - passes)
            if checkpoint is not None and info["step"] % per_pass == 0:
                progress.epoch = saved.n_iter = passes + info["step"] // per_pass
                progress.n_steps = self._inner_stats.n_steps
                checkpoint.save(statistics, progress, saved, generator)
            return stop

        result = learn_dictionary_online(
            Xt, self._dictionary, self._inner_stats, self.alpha, batch_size=self.batch_size,
            max_iter=0 if finished else self.max_iter - passes, shuffle=self.shuffle, tol=self.tol,
            max_no_improvement=self.max_no_improvement, generator=generator,
            callback=on_step if self.callback is not None or checkpoint is not None else None,
            verbose=self.verbose, step_options=self._step_options(),
        )
        self.n_steps_, self.n_iter_ = self._inner_stats.n_steps, passes + result.n_passes
        self.interrupted_ = result.interrupted
        self.components_ = self._numpy(self._dictionary, X.dtype)
        if checkpoint is not None and not (result.interrupted or finished):
            progress.epoch = saved.n_iter = self.n_iter_
            progress.n_steps, saved.converged = self.n_steps_, self.n_iter_ < self.max_iter
            checkpoint.save(statistics, progress, saved, generator, finished=True)

    def fit_transform(self, X, y=None):
        """Fit, then return the codes of ``X``."""
        return self.fit(X).transform(X)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None):
        """One minibatch step on all of ``X``, as scikit-learn's ``MiniBatchDictionaryLearning``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            One minibatch of training data.
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        self : object
            The estimator, one step further; unchanged when the step fails. Later calls convert ``X`` to
            the dtype of the first.
        """
        with unchanged_on_failure(self):
            self._partial_fit(X)
        return self

    def _partial_fit(self, X) -> None:
        first = not hasattr(self, "components_")
        X = check_input(self, X, reset=first)
        if first:
            Xt = self._initialize(X)
            self.n_iter_ = 0
        else:
            Xt = self._tensor(X, dtype=self._dictionary.dtype)
        online_dictionary_step(self._dictionary, self._inner_stats, Xt, self.alpha, batch_size=X.shape[0],
                               generator=self._generator(self._random_state), **self._step_options())
        self.n_steps_ += 1
        self.n_iter_ += 1
        self.components_ = self._numpy(self._dictionary)

    # -- using the dictionary ------------------------------------------------------------------------
    def _energies(self, X) -> np.ndarray:
        """``0.5*||x - z D||^2`` plus the penalty: ``alpha*||z||_1``, the group norms with ``groups``,
        or the pooled values ``alpha * sum_i v_i(z)`` with ``topography``."""
        X, code = self._checked_codes(X)
        residual = X - self._inverse(code, self.components_)
        return 0.5 * (residual**2).sum(1) + self._penalty_value(code)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    @property
    def _n_features_out(self):
        return self.components_.shape[0] * (2 if self.split_sign else 1)
