r"""Preprocessing of image patches: whitening and per-patch contrast normalisation.

Whitening (``Whitening``) with the covariance :math:`C = U\Lambda U^T` of the centred data and a
regulariser :math:`\epsilon = r\,\bar\lambda` (a fraction ``r`` of the mean eigenvalue):

.. math::
    W_{PCA} = (\Lambda + \epsilon)^{-1/2} U^T, \qquad W_{ZCA} = U(\Lambda + \epsilon)^{-1/2} U^T,
    \qquad x \mapsto (x - \mu) W^T .

ZCA keeps the result in pixel space (whitened patches still look like patches), PCA returns the
coordinates on the principal axes; both can keep only the ``k = n_components`` leading directions
(:math:`U, \Lambda` restricted to them). The regulariser keeps the low-variance (noisy) directions
from being amplified. Contrast normalisation (``ContrastNormalization``) centres every patch and
divides it by :math:`\sqrt{\operatorname{var}(x) + r}`, so all patches have comparable contrast.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, OneToOneFeatureMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ._base import ArrayLike, FitMixin, FloatTransformerMixin
from ._validation import check_codes, check_input

__all__ = ["Whitening", "ContrastNormalization"]


class Whitening(FitMixin, ClassNamePrefixFeaturesOutMixin, FloatTransformerMixin, BaseEstimator):
    """ZCA or PCA whitening with a regulariser.

    Parameters
    ----------
    method : {"zca", "pca"}, default="zca"
        ZCA rotates back to the input space; PCA returns the coordinates on the principal axes.
    n_components : int, default=None
        Principal directions kept (all when None). ``"pca"`` outputs that many features; ``"zca"``
        outputs ``n_features`` (the projection onto those directions, whitened).
    regularization : float, default=1e-2
        Added to the eigenvalues, as a fraction of their mean.

    Attributes
    ----------
    mean_ : ndarray of shape (n_features,)
    components_ : ndarray of shape (n_features_out, n_features)
        The whitening matrix ``W``: ``transform(X) = (X - mean_) @ components_.T``.
    explained_variance_ : ndarray of shape (n_components,)
        Eigenvalues of the covariance (decreasing) kept by the transform.
    epsilon_ : float
        The absolute regulariser.
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.RandomState(0).randn(500, 3) @ np.array([[2.0, 0, 0], [1, 1, 0], [0, 0, 0.1]])
    >>> Xw = Whitening(regularization=0.0).fit_transform(X)
    >>> np.allclose(np.cov(Xw.T, bias=True), np.eye(3), atol=1e-6)
    True
    """

    _parameter_constraints: dict = {
        "method": [StrOptions({"zca", "pca"})],
        "n_components": [Interval(Integral, 1, None, closed="left"), None],
        "regularization": [Interval(Real, 0, None, closed="left")],
    }

    def __init__(self, method="zca", *, n_components=None, regularization=1e-2):
        self.method = method
        self.n_components = n_components
        self.regularization = regularization

    def _fit(self, X) -> None:
        """Estimate the mean and the whitening matrix of ``X``."""
        X = check_input(self, X, reset=True)
        k = X.shape[1] if self.n_components is None else self.n_components
        if k > X.shape[1]:
            raise ValueError(f"n_components={k} must be at most n_features={X.shape[1]}.")
        self.mean_ = X.mean(axis=0)
        Xc = X - self.mean_
        cov = (Xc.T @ Xc) / X.shape[0]
        eigval, eigvec = np.linalg.eigh(cov.astype(np.float64))
        order = np.argsort(eigval)[::-1][:k]
        eigval, eigvec = np.clip(eigval[order], 0, None), eigvec[:, order]
        self.epsilon_ = float(self.regularization * max(eigval.mean(), 0.0)) if eigval.size else 0.0
        scale = 1.0 / np.sqrt(eigval + self.epsilon_)
        scale[~np.isfinite(scale)] = 0.0  # directions without variance (and no regulariser) are dropped
        W = scale[:, None] * eigvec.T
        if self.method == "zca":
            W = eigvec @ W
        self.components_ = W.astype(X.dtype)
        self.explained_variance_ = eigval.astype(X.dtype)
        self._dewhiten = (eigvec * np.sqrt(eigval + self.epsilon_)).T
        if self.method == "zca":
            self._dewhiten = eigvec @ self._dewhiten
        self._dewhiten = self._dewhiten.astype(X.dtype)

    def transform(self, X: ArrayLike) -> np.ndarray:
        """Whitened ``X``, shape (n_samples, n_components)."""
        check_is_fitted(self)
        X = check_input(self, X, reset=False)
        return (X - self.mean_.astype(X.dtype)) @ self.components_.T.astype(X.dtype)

    def inverse_transform(self, X: ArrayLike) -> np.ndarray:
        """Back to the input space (exact for ZCA and for PCA keeping every direction)."""
        check_is_fitted(self)
        X = check_codes(X, self._dewhiten.shape[0], "whitened features")
        return X @ self._dewhiten.astype(X.dtype) + self.mean_.astype(X.dtype)

    @property
    def _n_features_out(self):
        return self.components_.shape[0]


class ContrastNormalization(FitMixin, OneToOneFeatureMixin, FloatTransformerMixin, BaseEstimator):
    """Per-patch centring and scaling: ``(x - mean(x)) / sqrt(var(x) + regularization)``.

    Stateless: ``fit`` only records the number of features.

    Parameters
    ----------
    regularization : float, default=1e-8
        Added to each patch's variance; a larger value (e.g. a fraction of the mean variance) stops
        flat, noisy patches from being blown up.
    with_mean : bool, default=True
        Subtract each patch's mean.
    with_std : bool, default=True
        Divide by each patch's (regularised) standard deviation.

    Examples
    --------
    >>> ContrastNormalization().fit_transform([[1.0, 3.0], [5.0, 5.0]])
    array([[-1.,  1.],
           [ 0.,  0.]])
    """

    _parameter_constraints: dict = {
        "regularization": [Interval(Real, 0, None, closed="left")],
        "with_mean": ["boolean"],
        "with_std": ["boolean"],
    }
    _stateless = True

    def __init__(self, *, regularization=1e-8, with_mean=True, with_std=True):
        self.regularization = regularization
        self.with_mean = with_mean
        self.with_std = with_std

    def _fit(self, X) -> None:
        """Record ``n_features_in_`` (nothing is learned)."""
        check_input(self, X, reset=True)

    def transform(self, X: ArrayLike) -> np.ndarray:
        """Contrast-normalised rows of ``X``."""
        X = check_input(self, X, reset=False)
        mean = X.mean(axis=1, keepdims=True)
        out = X - mean if self.with_mean else X.copy()
        if self.with_std:
            std = np.sqrt(X.var(axis=1, keepdims=True) + self.regularization)
            out /= np.maximum(std, np.finfo(X.dtype).tiny)
        return out
