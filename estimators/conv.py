"""ConvSparseCoder: convolutional sparse coding of whole images against fixed filters.

The image layouts and the features are those of :mod:`estimators._conv_images`.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils._param_validation import Interval, StrOptions

from sparsecode import border_weights, solve_conv_lasso
from sparsecode.convolution import conv_correlate
from sparsecode.penalties import L1

from ._base import FitMixin, TorchEstimatorMixin
from ._conv_images import ConvCodingMixin
from ._sparse_coding import SparseCodingMixin, warn_all_zero
from ._validation import check_dictionary

__all__ = ["ConvSparseCoder"]


class ConvSparseCoder(FitMixin, ConvCodingMixin, TorchEstimatorMixin, BaseEstimator):
    __doc__ = """Convolutional sparse coding of images against fixed filters (inference only).

    The convolutional analogue of :class:`estimators.SparseCoder`: for every image ``x``,
    ``argmin_z 0.5*||x - sum_k D_k * z_k||^2 + alpha*||z||_1`` with "valid" feature maps ``z_k``
    (``H-kh+1`` by ``W-kw+1``), solved batched over images by Fourier-domain ADMM
    (:func:`sparsecode.solvers.conv_admm`) or FISTA (:func:`sparsecode.solvers.conv.conv_fista`).

    Parameters
    ----------
    filters : array-like of shape (n_components, kh, kw) or (n_components, C, kh, kw)
        The kernels ``D_k``; they need not be unit-norm.
    image_shape : tuple (H, W) or (H, W, C), default=None
        Shape behind 2-D rows (channel-last, C order); None reads a row as a one-row image of
        ``n_features / C`` pixels (``C`` from ``filters``). With 3-D/4-D input it is only checked.
{pooling}    transform_algorithm : {"auto", "admm", "fista", "ista"}, default="auto"
        "auto": "admm" (Fourier-domain ADMM) for kernels of 6x6 taps and more, "fista" for smaller
        ones (:func:`sparsecode.solvers.solve_conv_lasso`).
    transform_alpha : float, default=None
        Penalty ``alpha``; 1.0 when None.
    positive_code : bool, default=False
        Constrain the codes to be non-negative.
{groups}    transform_max_iter : int, default=1000
    transform_tol : float, default=1e-5
        Stop an image when its duality gap is below ``transform_tol * 0.5*||x||^2``; an image that
        does not get there raises a ``ConvergenceWarning``.
    border_weighting : bool, default=False
        Weight each pixel's reconstruction error by the kernel placements covering it over their
        maximum (Kavukcuoglu et al. 2010).
    device : {"auto", "cpu", "cuda", "cuda:N"}, default="auto"

    Attributes
    ----------
    n_components_ : int
    image_shape_ : tuple (H, W, C)
        The image shape seen by ``fit``, which only validates.
{input_attributes}

    Examples
    --------
    >>> import numpy as np
    >>> from estimators import ConvSparseCoder
    >>> coder = ConvSparseCoder(np.ones((1, 1, 1)), transform_alpha=1.0, device="cpu")
    >>> coder.transform(np.array([[[2.0, 0.5], [0.0, 3.0]]])).round(4) + 0.0
    array([[1., 0., 0., 2.]])
    """

    _stateless = True
    _parameter_constraints: dict = {
        "filters": ["array-like"],
        **ConvCodingMixin._parameter_constraints,
        "transform_algorithm": [StrOptions({"auto", "admm", "fista", "ista"})],
        "transform_alpha": [Interval(Real, 0, None, closed="left"), None],
        "positive_code": ["boolean"],
        "groups": [Interval(Integral, 1, None, closed="left"), "array-like", None],
        "transform_max_iter": [Interval(Integral, 0, None, closed="left")],
        "transform_tol": [Interval(Real, 0, None, closed="left")],
        "border_weighting": ["boolean"],
    }

    def __init__(
        self,
        filters,
        *,
        image_shape=None,
        pooling=None,
        pool_size=2,
        transform_algorithm="auto",
        transform_alpha=None,
        positive_code=False,
        groups=None,
        transform_max_iter=1000,
        transform_tol=1e-5,
        border_weighting=False,
        device="auto",
    ):
        self.filters = filters
        self.image_shape = image_shape
        self.pooling = pooling
        self.pool_size = pool_size
        self.transform_algorithm = transform_algorithm
        self.transform_alpha = transform_alpha
        self.positive_code = positive_code
        self.groups = groups
        self.transform_max_iter = transform_max_iter
        self.transform_tol = transform_tol
        self.border_weighting = border_weighting
        self.device = device

    def _kernels(self) -> np.ndarray:
        D = np.asarray(self.filters)
        if D.ndim not in (3, 4):
            raise ValueError(
                f"filters must be (n_components, kh, kw) or (n_components, C, kh, kw); got shape "
                f"{D.shape}."
            )
        D = check_dictionary(D.reshape(D.shape[0], -1), name="filters").reshape(D.shape)
        return D if D.ndim == 4 else D[:, None]

    def _channels(self) -> int:
        return self._kernels().shape[1]

    def _images_and_kernels(self, X, *, reset: bool):
        X, shape = self._validated_images(X, reset=reset)
        D = self._kernels()
        H, W, C = shape
        if C != D.shape[1]:
            raise ValueError(f"The images have {C} channel(s) but the filters {D.shape[1]}.")
        if D.shape[2] > H or D.shape[3] > W:
            raise ValueError(
                f"X has n_features={X.shape[1]}: images of shape (H, W, C)={shape} are smaller "
                f"than the {D.shape[2]}x{D.shape[3]} filters; pass image_shape."
            )
        return X, shape, D

    def _fit(self, X) -> None:
        """Validate the filters and ``X`` (nothing is learned)."""
        _, self.image_shape_, D = self._images_and_kernels(X, reset=True)
        self.n_components_ = D.shape[0]

    def _codes(self, X) -> tuple[torch.Tensor, torch.Tensor, np.dtype]:
        """Validated images, their maps against the filters, and the input dtype."""
        X, shape, D = self._images_and_kernels(X, reset=False)
        Xt = self._to_images(X, shape)
        Dt = self._tensor(D, dtype=Xt.dtype)
        weights = border_weights(shape[:2], D.shape[2:], like=Xt) if self.border_weighting else None
        alpha = 1.0 if self.transform_alpha is None else float(self.transform_alpha)
        penalty = self._map_penalty(D.shape[0])
        res = solve_conv_lasso(
            Xt,
            Dt,
            alpha,
            algorithm=self.transform_algorithm,
            penalty=penalty,
            weights=weights,
            max_iter=self.transform_max_iter,
            tol=self.transform_tol,
        )
        SparseCodingMixin._warn_not_converged(self, res)
        if alpha > 0 and isinstance(penalty, L1) and not bool(res.code.any()) and bool(Xt.any()):
            C = conv_correlate(Xt if weights is None else Xt * weights, Dt)
            largest = float(C.amax() if self.positive_code else C.abs().amax())
            warn_all_zero(alpha, largest, "max |conv_correlate(X, D)|", stacklevel=4)
        return Xt, res.code, X.dtype

    def _decoder_kernels(self) -> np.ndarray:
        return self._kernels()
