"""Images in and features out, for the convolutional estimators.

Images enter as ``(n, H, W)``, ``(n, C, H, W)``, or, for pipelines, 2-D rows of ``H*W*C`` values:
each row is an ``(H, W, C)`` channel-last image flattened in C order (what ``images.reshape(n, -1)``
gives for numpy images such as :func:`sklearn.datasets.load_sample_images`; for one channel, an
``(H, W)`` image). ``image_shape=None`` reads a 2-D row as a one-row image ``(1, n_features / C)``,
i.e. a 1-D signal. ``transform`` returns 2-D features: the feature maps flattened map by map, or
their absolute values max- or average-pooled over ``pool_size`` windows (partial windows at the
right and bottom edges are kept). ``inverse_transform`` rebuilds the images ``sum_k D_k * z_k`` from
unpooled features, as 2-D channel-last rows; pooled features (``|z|`` summaries) cannot be decoded
and raise a ValueError.
"""

from __future__ import annotations

from numbers import Integral

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import ClassNamePrefixFeaturesOutMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from sparsecode import L1, ConvOperator, MapGroupL1, Penalty, code_size

from ._base import DEVICE_CONSTRAINT, FloatTransformerMixin
from ._sparse_coding import group_index
from ._validation import check_codes, check_input

__all__ = ["ConvImagesMixin", "pair", "ConvCodingMixin"]


def pair(value, name: str) -> tuple[int, int]:
    """``value`` (an int or a pair of ints, all positive) as ``(int, int)``; a ValueError names ``name``."""
    both = (value, value) if isinstance(value, Integral) else tuple(value)
    if len(both) != 2 or not all(isinstance(v, Integral) and v >= 1 for v in both):
        raise ValueError(f"{name} must be a positive int or a pair of positive ints; got {value!r}.")
    return int(both[0]), int(both[1])


class ConvImagesMixin(ClassNamePrefixFeaturesOutMixin, FloatTransformerMixin):
    """Images (in any of three layouts) in and features out, shared by both convolutional estimators.

    A subclass gives its kernels in :meth:`_decoder_kernels` and sets ``image_shape_`` in ``fit``.
    """

    _parameter_constraints: dict = {
        "image_shape": [tuple, list, None],
        "pooling": [StrOptions({"max", "avg"}), None],
        "pool_size": [Interval(Integral, 1, None, closed="left"), tuple, list],
        "device": DEVICE_CONSTRAINT,
    }

    _shared_docs = {
        "shape": """\
    image_shape : tuple (H, W) or (H, W, C), default=None
        Shape of the images behind 2-D rows of ``H*W*C`` values (channel-last, C order). None reads
        a row as a one-row image (a 1-D signal). With 3-D/4-D input it is only checked against the
        data.
""",
        "pooling": """\
    pooling : {"max", "avg"} or None, default=None
        None returns the feature maps flattened (``K*h*w`` features); otherwise the maximum or the
        mean of ``|z|`` over non-overlapping ``pool_size`` windows of every map.
    pool_size : int or (int, int), default=2
        Pooling window, clipped to the map size.
""",
    }

    def _decoder_kernels(self):
        """The fitted decoder kernels ``(K, C, kh, kw)``, an ndarray or a tensor."""
        raise NotImplementedError

    def _channels(self) -> int:
        """Channels implied by the estimator when ``image_shape`` does not give them."""
        return 1

    def _geometry(self, X) -> tuple[np.ndarray, tuple[int, int, int]]:
        """``X`` as 2-D channel-last rows, and the ``(H, W, C)`` image shape."""
        if not hasattr(X, "ndim"):
            X = np.asarray(X)
        if X.ndim == 3:
            shape = (X.shape[1], X.shape[2], 1)
        elif X.ndim == 4:
            shape = (X.shape[2], X.shape[3], X.shape[1])
            X = np.moveaxis(X, 1, -1)
        else:
            return X, None
        if self.image_shape is not None and self._row_shape(int(np.prod(shape))) != shape:
            raise ValueError(
                f"image_shape={self.image_shape!r} does not match images of shape (H, W, C)={shape} in X."
            )
        return X.reshape(X.shape[0], -1), shape

    def _row_shape(self, n_features: int) -> tuple[int, int, int]:
        """``(H, W, C)`` of 2-D rows with ``n_features`` values."""
        if self.image_shape is None:
            C = self._channels()
            if n_features % C:
                raise ValueError(
                    f"X has n_features={n_features}, not a multiple of the {C} channels of the filters; "
                    "pass image_shape."
                )
            return 1, n_features // C, C
        shape = tuple(int(v) for v in self.image_shape)
        if len(shape) == 2:
            shape = (*shape, 1)
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(
                f"image_shape must be (H, W) or (H, W, C) of positive ints; got {self.image_shape!r}."
            )
        if int(np.prod(shape)) != n_features:
            raise ValueError(
                f"image_shape={self.image_shape!r} holds {int(np.prod(shape))} values but X has "
                f"n_features={n_features}."
            )
        return shape

    def _validated_images(self, X, *, reset: bool) -> tuple[np.ndarray, tuple[int, int, int]]:
        """Validated 2-D rows (n_features_in_ recorded on ``reset``) and their ``(H, W, C)``."""
        X, shape = self._geometry(X)
        X = check_input(self, X, reset=reset)
        return X, shape if shape is not None else self._row_shape(X.shape[1])

    def _to_images(self, X: np.ndarray, shape, dtype=None) -> torch.Tensor:
        H, W, C = shape
        return self._tensor(X, dtype=dtype).view(-1, H, W, C).permute(0, 3, 1, 2).contiguous()

    def _pool_window(self, map_size) -> tuple[int, int] | None:
        if self.pooling is None:
            return None
        ph, pw = pair(self.pool_size, "pool_size")
        return min(ph, map_size[0]), min(pw, map_size[1])

    def _features(self, Z: torch.Tensor) -> torch.Tensor:
        """Maps ``(n, K, h, w)`` -> 2-D features (flattened, or pooled ``|z|``)."""
        window = self._pool_window(Z.shape[-2:])
        if window is not None:
            pool = F.max_pool2d if self.pooling == "max" else F.avg_pool2d
            Z = pool(Z.abs(), window, stride=window, ceil_mode=True)
        return Z.flatten(1)

    def inverse_transform(self, X):
        """Images ``sum_k D_k * z_k`` decoded from unpooled features (``pooling=None``).

        Plus the fitted mean where the model subtracts one (:class:`ConvSparseAutoencoder`'s ``mean_``).

        ``D`` is used in the dtype of ``X`` (float64, else float32).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_components * h * w)
            Flattened feature maps, as :meth:`transform` returns them.

        Returns
        -------
        ndarray of shape (n_samples, H*W*C)
            Channel-last rows of the image shape seen by ``fit`` (``(H, W)`` images flattened for one
            channel), whatever the layout ``fit`` saw.
        """
        check_is_fitted(self, "image_shape_")  # a stateless coder learns its image shape in fit
        if self.pooling is not None:
            raise ValueError(
                f"inverse_transform needs the feature maps themselves: features pooled with "
                f"pooling={self.pooling!r} (|z| summaries) cannot be decoded; use pooling=None."
            )
        D = self._decoder_kernels()
        K, (h, w), (H, W) = D.shape[0], self._map_size(D), self.image_shape_[:2]
        X = check_codes(X, K * h * w, f"{K} maps of {h}x{w}")
        Z = self._tensor(X).view(-1, K, h, w)
        D = D.to(Z) if isinstance(D, torch.Tensor) else self._tensor(D, dtype=Z.dtype)
        with torch.no_grad():
            images = ConvOperator(D, (H, W)).reconstruct(Z)
            mean = self._image_mean()
            if mean is not None:
                images += torch.as_tensor(mean, dtype=images.dtype, device=images.device).view(-1, 1, 1)
        return self._numpy(images.permute(0, 2, 3, 1).reshape(len(X), -1), X.dtype)

    def _image_mean(self) -> np.ndarray | None:
        """The mean per channel that :meth:`inverse_transform` adds back (None: none)."""
        return None

    def _map_size(self, D) -> tuple[int, int]:
        """The size ``(h, w)`` of the "valid" feature maps of kernels ``D`` on the fitted images."""
        return code_size(self.image_shape_[:2], D.shape[2:])

    @property
    def _n_features_out(self):
        check_is_fitted(self)
        D = self._decoder_kernels()
        map_size = self._map_size(D)
        window = self._pool_window(map_size)
        if window is None:
            return D.shape[0] * map_size[0] * map_size[1]
        return D.shape[0] * int(np.prod([-(-m // p) for m, p in zip(map_size, window)]))


class ConvCodingMixin(ConvImagesMixin):
    """``transform`` of the estimators that code images against kernels with the convolutional solvers.

    A subclass gives, in :meth:`_codes`, the validated images, their feature maps and the input dtype;
    its ``groups`` and ``positive_code`` give the penalty of the maps (:meth:`_map_penalty`).
    """

    _shared_docs = {
        "groups": """\
    groups : int, array-like or None, default=None
        Group sparsity across feature maps: the maps of a group are penalised together at each
        position, by the norm of their values there (:class:`sparsecode.MapGroupL1`; the group-sparse
        convolutional model). As in :class:`estimators.SparseCoder`: an int is a group size
        (consecutive maps, the last group may be smaller), a sequence of ``n_components`` labels
        gives each map's group, a list of index lists gives each group's maps. None: the L1 penalty.
""",
    }

    def _map_penalty(self, n_components: int) -> Penalty:
        """The penalty of the maps: :class:`L1`, or the :class:`MapGroupL1` of ``groups``."""
        index = group_index(self.groups, n_components)
        return L1(self.positive_code) if index is None else MapGroupL1(index, self.positive_code)

    def _codes(self, X) -> tuple[torch.Tensor, torch.Tensor, np.dtype]:
        raise NotImplementedError

    def transform(self, X, y=None):
        """Sparse feature maps of every image, as 2-D features.

        Parameters
        ----------
        X : array-like of shape (n_samples, H*W*C), (n_samples, H, W) or (n_samples, C, H, W)
            The images, in any of the three layouts.
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        features : ndarray of shape (n_samples, n_features_out)
            The feature maps flattened map by map, or pooled; in the float dtype of ``X``.
        """
        self._validate_params()
        _, Z, dtype = self._codes(X)
        return self._numpy(self._features(Z), dtype)
