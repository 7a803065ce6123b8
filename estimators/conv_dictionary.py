"""ConvDictionaryLearning: convolutional dictionary learning with exact convolutional coding.

The image layouts and the features are those of :mod:`estimators._conv_images`; the learning step is
:func:`sparsecode.conv_dictionary.conv_dictionary_step`.
"""

from __future__ import annotations

import time
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from sparsecode import conv_lasso_energy, solve_conv_lasso
from sparsecode.conv_dictionary import ConvDictionaryState, conv_dictionary_step, init_conv_dictionary
from sparsecode.solvers.conv_admm import ADMMState

from ._base import EnergyScoreMixin, FitMixin, TorchEstimatorMixin, unchanged_on_failure
from ._conv_images import ConvCodingMixin, pair
from ._sparse_coding import SparseCodingMixin
from ._training import data_scale

__all__ = ["ConvDictionaryLearning"]

# the default alpha's fraction of the patches' root-mean-square norm: the former fixed default, 0.1, on
# photographs in [0, 1] with 8x8 kernels (whose patches' norm is about 5)
ALPHA_FRACTION = 0.02


class ConvDictionaryLearning(FitMixin, EnergyScoreMixin, ConvCodingMixin, TorchEstimatorMixin, BaseEstimator):
    __doc__ = """Convolutional dictionary learning (Zeiler et al. 2010's model; CBPDN-DL, online CDL).

    Learns kernels ``D_k`` of norm at most 1 (in practice 1) minimising the mean over images of
    ``0.5*||x - sum_k D_k * z_k||^2 + alpha*||z||_1`` with "valid" maps ``z_k`` (the model of
    :class:`ConvSparseCoder`), by alternating exact convolutional coding (Fourier-domain ADMM to a
    relative duality gap of ``coding_tol``) and a Fourier-domain dictionary update
    (:mod:`sparsecode.conv_dictionary`). With ``batch_size=None`` every step codes all the images and the
    update minimises over the kernels at those codes (CBPDN-DL's alternation); with minibatches, and in
    ``partial_fit``, the codes enter frequency-domain statistics with a forgetting factor (Liu et al.
    2018's online convolutional dictionary learning), for data that does not fit in memory.

    Parameters
    ----------
    n_components : int, default=8
        Number of kernels / feature maps.
    kernel_size : int or (int, int), default=8
        Kernel height and width, clipped to the image size (the fitted size is ``kernel_size_``).
    alpha : float, default=None
        Sparsity penalty of the learning; None uses ``0.02`` times the root-mean-square norm of the training
        images' ``C x kh x kw`` patches (the resolved value is ``alpha_``, fixed by the first ``fit`` or
        ``partial_fit``): about 0.1, the former fixed default, on photographs in [0, 1] with 8x8 kernels, and
        as much relative to the data on any other scaling. The fixed 0.1 gave dense codes that ADMM did not
        settle within ``transform_max_iter`` on pixel values in [0, 255], and codes of little use on images
        of unit norm.
    max_iter : int, default=10
        Passes over the data.
    batch_size : int, default=None
        Images per step; None codes all of them in each step.
    positive_code : bool, default=False
        Non-negative maps, in learning and in ``transform``.
{groups}    coding_tol : float, default=1e-3
        Relative duality gap of the coding in each learning step.
    coding_max_iter : int, default=500
        ADMM iterations of the coding in each learning step, at most.
    dictionary_max_iter : int, default=10
        ADMM iterations of each dictionary update.
{shape}{pooling}    transform_algorithm : {"auto", "admm", "fista", "ista"}, default="auto"
        Solver of :meth:`transform` (:func:`sparsecode.solvers.solve_conv_lasso`).
    transform_alpha : float, default=None
        Penalty of :meth:`transform`; ``alpha_`` when None.
    transform_max_iter : int, default=1000
    transform_tol : float, default=1e-5
        Relative duality gap of :meth:`transform`; an image that does not get there raises a
        ``ConvergenceWarning``.
    random_state : int, RandomState instance or None, default=None
        The draw of the initial kernels (image patches) and the order of the minibatches.
    verbose : bool or int, default=False
        Print one line per pass of ``fit`` (mean energy, time).
    device : {"auto", "cpu", "cuda", "cuda:N"}, default="auto"

    Attributes
    ----------
    components_ : ndarray of shape (n_components, C, kh, kw)
        The kernels.
    alpha_ : float
        The penalty used: ``alpha``, or its default relative to the training images' scale.
    input_scale_ : float
        The largest pixel magnitude of the first training images. The solvers see the images divided by it
        (and the penalty): their rules for ADMM's penalty parameter, SPORCO's, assume images of about unit
        range, so that pixel values in [0, 255] converged more slowly than the same images in [0, 1]. The
        codes, energies and ``loss_curve_`` are in the data's units.
    image_shape_ : tuple (H, W, C)
    kernel_size_ : tuple (kh, kw)
    n_iter_ : int
        Passes completed (``fit``).
    n_steps_ : int
        Learning steps run, ``partial_fit`` calls included.
    interrupted_ : bool
        Whether Ctrl-C stopped the last ``fit``; the kernels are those of its last completed step.
    loss_curve_ : list of float
        Mean energy of the images at their codes (before each update), per pass of ``fit``.
{input_attributes}

    Examples
    --------
    >>> import numpy as np
    >>> from estimators import ConvDictionaryLearning
    >>> X = np.random.RandomState(0).randn(4, 12, 12)
    >>> cdl = ConvDictionaryLearning(n_components=3, kernel_size=4, max_iter=2, random_state=0,
    ...                              device="cpu").fit(X)
    >>> cdl.components_.shape, cdl.transform(X).shape
    ((3, 1, 4, 4), (4, 243))
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "kernel_size": [Interval(Integral, 1, None, closed="left"), tuple, list],
        "alpha": [Interval(Real, 0, None, closed="left"), None],
        "max_iter": [Interval(Integral, 0, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left"), None],
        "positive_code": ["boolean"],
        "groups": [Interval(Integral, 1, None, closed="left"), "array-like", None],
        "coding_tol": [Interval(Real, 0, None, closed="left")],
        "coding_max_iter": [Interval(Integral, 1, None, closed="left")],
        "dictionary_max_iter": [Interval(Integral, 1, None, closed="left")],
        **ConvCodingMixin._parameter_constraints,
        "transform_algorithm": [StrOptions({"auto", "admm", "fista", "ista"})],
        "transform_alpha": [Interval(Real, 0, None, closed="left"), None],
        "transform_max_iter": [Interval(Integral, 0, None, closed="left")],
        "transform_tol": [Interval(Real, 0, None, closed="left")],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        n_components=8,
        *,
        kernel_size=8,
        alpha=None,
        max_iter=10,
        batch_size=None,
        positive_code=False,
        groups=None,
        coding_tol=1e-3,
        coding_max_iter=500,
        dictionary_max_iter=10,
        image_shape=None,
        pooling=None,
        pool_size=2,
        transform_algorithm="auto",
        transform_alpha=None,
        transform_max_iter=1000,
        transform_tol=1e-5,
        random_state=None,
        verbose=False,
        device="auto",
    ):
        self.n_components = n_components
        self.kernel_size = kernel_size
        self.alpha = alpha
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.positive_code = positive_code
        self.groups = groups
        self.coding_tol = coding_tol
        self.coding_max_iter = coding_max_iter
        self.dictionary_max_iter = dictionary_max_iter
        self.image_shape = image_shape
        self.pooling = pooling
        self.pool_size = pool_size
        self.transform_algorithm = transform_algorithm
        self.transform_alpha = transform_alpha
        self.transform_max_iter = transform_max_iter
        self.transform_tol = transform_tol
        self.random_state = random_state
        self.verbose = verbose
        self.device = device

    def _start(self, X: np.ndarray, shape, random_state: np.random.RandomState) -> torch.Tensor:
        """Fresh kernels drawn from the images ``X`` and empty statistics; returns the images as a tensor."""
        self._resolve_device()
        self.image_shape_ = shape
        kh, kw = pair(self.kernel_size, "kernel_size")
        self.kernel_size_ = (min(kh, shape[0]), min(kw, shape[1]))
        self.alpha_ = (ALPHA_FRACTION * data_scale(X, shape[2] * self.kernel_size_[0] * self.kernel_size_[1])
                       if self.alpha is None else float(self.alpha))
        self.input_scale_ = float(np.abs(X).max(initial=0.0)) or 1.0
        Xt = self._to_images(X, shape) / self.input_scale_
        generator = self._generator(random_state)
        self._kernels = init_conv_dictionary(Xt, self.n_components, self.kernel_size_, generator)
        self._state = ConvDictionaryState.empty(self._kernels, shape[:2])
        self.n_steps_ = 0
        return Xt

    def _step(self, Xt: torch.Tensor, full_batch: bool, z0=None, resume=None) -> tuple[float, torch.Tensor]:
        """One learning step on images ``Xt`` (in the model's units): the mean energy at their codes (before the
        update, in the data's units), the codes (in the model's)."""
        D, penalty, alpha = self._kernels, self._map_penalty(self.n_components), self.alpha_ / self.input_scale_
        D_new, res = conv_dictionary_step(
            Xt, D, self._state, alpha, penalty=penalty, full_batch=full_batch, z0=z0, resume=resume,
            coding_tol=self.coding_tol, coding_max_iter=self.coding_max_iter,
            dictionary_max_iter=self.dictionary_max_iter,
        )
        self._kernels = D_new
        self.n_steps_ += 1
        energy = conv_lasso_energy(Xt, res.code, D, alpha, penalty=penalty) * self.input_scale_**2
        return float(energy.mean()), res.code

    def _fit(self, X) -> None:
        """Learn the kernels from images ``X``."""
        X, shape = self._validated_images(X, reset=True)
        random_state = check_random_state(self.random_state)
        Xt = self._start(X, shape, random_state)
        n = len(Xt)
        batch = n if self.batch_size is None else min(self.batch_size, n)
        self.loss_curve_ = []
        # with all images in each step, each coding continues the previous one (codes, ADMM dual and rho)
        codes, resume = None, ADMMState()
        start = time.perf_counter()
        self.n_iter_, self.interrupted_ = 0, False
        try:
            for i in range(self.max_iter):
                if batch == n:
                    loss, codes = self._step(Xt, full_batch=True, z0=codes, resume=resume)
                    self.loss_curve_.append(loss)
                else:
                    order = torch.as_tensor(random_state.permutation(n), device=Xt.device)
                    losses = [self._step(Xt[order[s:s + batch]], full_batch=False)[0] for s in range(0, n, batch)]
                    self.loss_curve_.append(float(np.mean(losses)))
                self.n_iter_ = i + 1
                if self.verbose:
                    print(f"[ConvDictionaryLearning] pass {i + 1}/{self.max_iter}: mean energy "
                          f"{self.loss_curve_[-1]:.6g}, {time.perf_counter() - start:.1f} s")
        except KeyboardInterrupt:
            self.interrupted_ = True
            if self.verbose:
                print(f"[ConvDictionaryLearning] interrupted after {self.n_steps_} steps; keeping that state")
        self.components_ = self._numpy(self._kernels)

    def partial_fit(self, X, y=None):
        """One learning step on the images ``X`` (the first call also draws the initial kernels from them).

        Parameters
        ----------
        X : array-like of shape (n_samples, H*W*C), (n_samples, H, W) or (n_samples, C, H, W)
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        self : object
        """
        self._validate_params()
        first = not hasattr(self, "_state")
        with unchanged_on_failure(self):
            X, shape = self._validated_images(X, reset=first)
            if first:
                Xt = self._start(X, shape, check_random_state(self.random_state))
            else:
                Xt = self._images(X, shape)
            self._step(Xt, full_batch=False)
            self.components_ = self._numpy(self._kernels)
        return self

    def _images(self, X: np.ndarray, shape) -> torch.Tensor:
        """Images ``X`` in the model's units (over ``input_scale_``)."""
        if shape != self.image_shape_:
            raise ValueError(
                f"X holds images of shape (H, W, C)={shape}; this model was fitted on {self.image_shape_}."
            )
        return self._to_images(X, shape, dtype=self._kernels.dtype) / self.input_scale_

    def _codes(self, X) -> tuple[torch.Tensor, torch.Tensor, np.dtype]:
        """Validated images, their maps (``transform``'s solve, scaled back) and the input dtype."""
        check_is_fitted(self, "components_")
        X, shape = self._validated_images(X, reset=False)
        Xt = self._images(X, shape)
        alpha = self.alpha_ if self.transform_alpha is None else float(self.transform_alpha)
        res = solve_conv_lasso(Xt, self._kernels, alpha / self.input_scale_, algorithm=self.transform_algorithm,
                               penalty=self._map_penalty(self.n_components), max_iter=self.transform_max_iter,
                               tol=self.transform_tol)
        SparseCodingMixin._warn_not_converged(self, res)
        return Xt * self.input_scale_, res.code * self.input_scale_, X.dtype

    def _energies(self, X):
        Xt, Z, _ = self._codes(X)
        alpha = self.alpha_ if self.transform_alpha is None else float(self.transform_alpha)
        return conv_lasso_energy(Xt, Z, self._kernels, alpha, penalty=self._map_penalty(self.n_components))

    def _decoder_kernels(self) -> torch.Tensor:
        return self._kernels
