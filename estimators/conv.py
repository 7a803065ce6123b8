"""Convolutional sparse coding of whole images: ConvSparseCoder and ConvSparseAutoencoder.

Images enter as ``(n, H, W)``, ``(n, C, H, W)``, or, for pipelines, 2-D rows of ``H*W*C`` values:
each row is an ``(H, W, C)`` channel-last image flattened in C order (what ``images.reshape(n, -1)``
gives for numpy images such as :func:`sklearn.datasets.load_sample_images`; for one channel, an
``(H, W)`` image). ``image_shape=None`` reads a 2-D row as a one-row image ``(1, n_features / C)``,
i.e. a 1-D signal. ``transform`` returns 2-D features: the feature maps flattened map by map, or
their absolute values max- or average-pooled over ``pool_size`` windows (partial windows at the
right and bottom edges are kept). ``inverse_transform`` rebuilds the images
``sum_k D_k * z_k`` from unpooled features, as 2-D channel-last rows; pooled features (``|z|``
summaries) cannot be decoded and raise a ValueError.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_array, check_is_fitted

from sparsecode import ConvOperator, border_weights, code_size, conv_fista, conv_ista, conv_lipschitz_constant
from sparsecode.dictionary import init_dictionary
from sparsecode.models import CONV_ENCODERS, ConvPSD

from ._base import DEVICE_CONSTRAINT, TorchEstimatorMixin
from ._sparse_coding import SparseCodingMixin
from ._training import TRAINING_PARAMETER_CONSTRAINTS, TRAINING_PARAMETERS_DOC, TrainingMixin
from ._validation import check_dictionary, check_input

__all__ = ["ConvSparseCoder", "ConvSparseAutoencoder"]

# optimizers whose step is the base rate times the gradient (see ConvSparseAutoencoder._param_groups)
_PLAIN_GRADIENT_OPTIMIZERS = frozenset({"sgd", "momentum", "nesterov", "asgd"})

_SHAPE_PARAMETER_CONSTRAINTS = {
    "image_shape": [tuple, list, None],
    "pooling": [StrOptions({"max", "avg"}), None],
    "pool_size": [Interval(Integral, 1, None, closed="left"), tuple, list],
    "device": DEVICE_CONSTRAINT,
}

_IMAGE_SHAPE_DOC = """\
    image_shape : tuple (H, W) or (H, W, C), default=None
        Shape of the images behind 2-D rows of ``H*W*C`` values (channel-last, C order). None reads
        a row as a one-row image (a 1-D signal). With 3-D/4-D input it is only checked against the
        data.
"""

_POOLING_DOC = """\
    pooling : {"max", "avg"} or None, default=None
        None returns the feature maps flattened (``K*h*w`` features); otherwise the maximum or the
        mean of ``|z|`` over non-overlapping ``pool_size`` windows of every map.
    pool_size : int or (int, int), default=2
        Pooling window, clipped to the map size.
"""


def _pair(value, name: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, Integral) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, Integral) and v >= 1 for v in pair):
        raise ValueError(
            f"{name} must be a positive int or a pair of positive ints; got {value!r}."
        )
    return int(pair[0]), int(pair[1])


def _patch_kernels(
    Xt: torch.Tensor, n_kernels: int, kernel_size: tuple[int, int], generator: torch.Generator
) -> torch.Tensor:
    """``n_kernels`` unit-norm kernels ``(K, C, kh, kw)``: patches of the images at random places.

    As :func:`sparsecode.dictionary.init_dictionary` starts a patch dictionary from data rows: a
    decoder started from image structure learns clean oriented filters, one started from white
    noise keeps much of its noise within a short training budget.
    """
    (n, _, H, W), (kh, kw) = Xt.shape, kernel_size
    where = dict(generator=generator, device=generator.device)
    img = torch.randint(n, (n_kernels,), **where).tolist()
    row = torch.randint(H - kh + 1, (n_kernels,), **where).tolist()
    col = torch.randint(W - kw + 1, (n_kernels,), **where).tolist()
    patches = torch.stack([Xt[i, :, r : r + kh, c : c + kw] for i, r, c in zip(img, row, col)])
    return init_dictionary(patches.flatten(1), n_kernels, generator).view(patches.shape)


class _ConvImagesMixin:
    """Images in (any of three layouts) and features out, shared by both estimators."""

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
                f"image_shape={self.image_shape!r} does not match images of shape "
                f"(H, W, C)={shape} in X."
            )
        return X.reshape(X.shape[0], -1), shape

    def _row_shape(self, n_features: int) -> tuple[int, int, int]:
        """``(H, W, C)`` of 2-D rows with ``n_features`` values."""
        if self.image_shape is None:
            C = self._channels()
            if n_features % C:
                raise ValueError(
                    f"X has n_features={n_features}, not a multiple of the {C} channels of "
                    "the filters; pass image_shape."
                )
            return 1, n_features // C, C
        shape = tuple(int(v) for v in self.image_shape)
        if len(shape) == 2:
            shape = (*shape, 1)
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(
                "image_shape must be (H, W) or (H, W, C) of positive ints; got "
                f"{self.image_shape!r}."
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
        ph, pw = _pair(self.pool_size, "pool_size")
        return min(ph, map_size[0]), min(pw, map_size[1])

    def _features(self, Z: torch.Tensor) -> torch.Tensor:
        """Maps ``(n, K, h, w)`` -> 2-D features (flattened, or pooled ``|z|``)."""
        window = self._pool_window(Z.shape[-2:])
        if window is not None:
            pool = F.max_pool2d if self.pooling == "max" else F.avg_pool2d
            Z = pool(Z.abs(), window, stride=window, ceil_mode=True)
        return Z.flatten(1)

    def _decode(self, X, D, map_size) -> np.ndarray:
        """Unpooled 2-D features -> images ``sum_k D_k * z_k`` as 2-D channel-last rows.

        ``D`` (kernels, ndarray or tensor) is used in the dtype of ``X`` (float64, else float32).
        """
        if self.pooling is not None:
            raise ValueError(
                f"inverse_transform needs the feature maps themselves: features pooled with "
                f"pooling={self.pooling!r} (|z| summaries) cannot be decoded; use pooling=None."
            )
        X = check_array(X, dtype=[np.float64, np.float32])
        K, (h, w), (H, W) = D.shape[0], map_size, self.image_shape_[:2]
        if X.shape[1] != K * h * w:
            raise ValueError(
                f"X has {X.shape[1]} features; inverse_transform expects {K * h * w} "
                f"({K} maps of {h}x{w})."
            )
        Z = self._tensor(X).view(-1, K, h, w)
        D = D.to(Z) if isinstance(D, torch.Tensor) else self._tensor(D, dtype=Z.dtype)
        with torch.no_grad():
            images = ConvOperator(D, (H, W)).reconstruct(Z)
        return self._numpy(images.permute(0, 2, 3, 1).reshape(len(X), -1), X.dtype)

    def _n_features_for(self, n_components: int, map_size) -> int:
        window = self._pool_window(map_size)
        if window is None:
            return n_components * map_size[0] * map_size[1]
        return n_components * int(np.prod([-(-m // p) for m, p in zip(map_size, window)]))


class ConvSparseCoder(
    _ConvImagesMixin,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    TorchEstimatorMixin,
    BaseEstimator,
):
    __doc__ = """Convolutional sparse coding of images against fixed filters (inference only).

    The convolutional analogue of :class:`estimators.SparseCoder`: for every image ``x``,
    ``argmin_z 0.5*||x - sum_k D_k * z_k||^2 + alpha*||z||_1`` with "valid" feature maps ``z_k``
    (``H-kh+1`` by ``W-kw+1``), solved by FISTA (:func:`sparsecode.solvers.conv.conv_fista`) batched over
    images.

    Parameters
    ----------
    filters : array-like of shape (n_components, kh, kw) or (n_components, C, kh, kw)
        The kernels ``D_k``; they need not be unit-norm.
    image_shape : tuple (H, W) or (H, W, C), default=None
        Shape behind 2-D rows (channel-last, C order); None reads a row as a one-row image of
        ``n_features / C`` pixels (``C`` from ``filters``). With 3-D/4-D input it is only checked.
{pooling}    transform_algorithm : {{"fista", "ista"}}, default="fista"
    transform_alpha : float, default=None
        Penalty ``alpha``; 1.0 when None.
    positive_code : bool, default=False
        Constrain the codes to be non-negative.
    transform_max_iter : int, default=1000
    transform_tol : float, default=1e-5
        Stop an image when its duality gap is below ``transform_tol * 0.5*||x||^2``; an image that
        does not get there raises a ``ConvergenceWarning``.
    border_weighting : bool, default=False
        Weight each pixel's reconstruction error by the kernel placements covering it over their
        maximum (Kavukcuoglu et al. 2010).
    device : {{"auto", "cpu", "cuda", "cuda:N"}}, default="auto"

    Attributes
    ----------
    n_components_ : int
    image_shape_ : tuple (H, W, C)
        The image shape seen by ``fit``, which only validates.
    n_features_in_ : int
        ``H*W*C``.

    Examples
    --------
    >>> import numpy as np
    >>> from estimators import ConvSparseCoder
    >>> coder = ConvSparseCoder(np.ones((1, 1, 1)), transform_alpha=1.0, device="cpu")
    >>> coder.transform(np.array([[[2.0, 0.5], [0.0, 3.0]]]))
    array([[1., 0., 0., 2.]])
    """.format(pooling=_POOLING_DOC)

    _parameter_constraints: dict = {
        "filters": ["array-like"],
        **_SHAPE_PARAMETER_CONSTRAINTS,
        "transform_algorithm": [StrOptions({"fista", "ista"})],
        "transform_alpha": [Interval(Real, 0, None, closed="left"), None],
        "positive_code": ["boolean"],
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
        transform_algorithm="fista",
        transform_alpha=None,
        positive_code=False,
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

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Validate the parameters, the filters and ``X`` (nothing is learned).

        Parameters
        ----------
        X : array-like of shape (n_samples, H*W*C), (n_samples, H, W) or (n_samples, C, H, W)
        y : Ignored

        Returns
        -------
        self
        """
        _, self.image_shape_, D = self._images_and_kernels(X, reset=True)
        self.n_components_ = D.shape[0]
        return self

    def transform(self, X, y=None):
        """Sparse feature maps of every image, as 2-D features.

        Parameters
        ----------
        X : array-like of shape (n_samples, H*W*C), (n_samples, H, W) or (n_samples, C, H, W)
        y : Ignored

        Returns
        -------
        ndarray of shape (n_samples, n_features_out)
        """
        self._validate_params()
        X, shape, D = self._images_and_kernels(X, reset=False)
        Xt = self._to_images(X, shape)
        Dt = self._tensor(D, dtype=Xt.dtype)
        weights = border_weights(shape[:2], D.shape[2:], like=Xt) if self.border_weighting else None
        solver = conv_fista if self.transform_algorithm == "fista" else conv_ista
        alpha = 1.0 if self.transform_alpha is None else float(self.transform_alpha)
        res = solver(
            Xt,
            Dt,
            alpha,
            positive=self.positive_code,
            weights=weights,
            max_iter=self.transform_max_iter,
            tol=self.transform_tol,
        )
        SparseCodingMixin._warn_not_converged(self, res)
        return self._numpy(self._features(res.code), X.dtype)

    def inverse_transform(self, X):
        """Images ``sum_k D_k * z_k`` rebuilt from unpooled features (``pooling=None``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_components * h * w)
            Flattened feature maps, as :meth:`transform` returns them.

        Returns
        -------
        ndarray of shape (n_samples, H*W*C)
            Channel-last rows of the image shape seen by ``fit``.
        """
        check_is_fitted(self)
        D = self._kernels()
        return self._decode(X, D, code_size(self.image_shape_[:2], D.shape[2:]))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    @property
    def _n_features_out(self):
        check_is_fitted(self)
        D = self._kernels()
        return self._n_features_for(D.shape[0], code_size(self.image_shape_[:2], D.shape[2:]))


class ConvSparseAutoencoder(
    _ConvImagesMixin,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    TrainingMixin,
    TorchEstimatorMixin,
    BaseEstimator,
):
    __doc__ = """Convolutional predictive sparse decomposition (ConvPSD; Kavukcuoglu et al. 2010).

    Learns unit-norm decoder kernels ``D_k`` and a convolutional encoder ``f(W_k * x)`` by
    minimising
    the mean over images of the energy
    ``0.5*||sqrt(w)(x - sum_k D_k * z_k)||^2 + alpha*||z||_1 + prediction_weight*||z - f(W *
    x)||^2`` at
    the optimal maps ``z*``, with ``w`` the border weighting (pixels weighted by the number of
    kernel
    placements covering them, over the maximum). Each training step predicts ``f(W * x)``, infers
    ``z*``
    by convolutional FISTA from the prediction, steps all parameters on the energy at ``z*`` through
    the shared training loop, and renormalises the kernels. With plain gradient steps ("sgd",
    "momentum", "nesterov", "asgd") the encoder's ``W`` and ``b`` step at ``learning_rate / L``
    (``L`` the decoder's Lipschitz constant at the start of ``fit``): they start ``L`` times
    smaller than the unit-norm kernels. ``transform`` then needs only the
    encoder
    (one convolution and a nonlinearity), or runs the full inference.

    Parameters
    ----------
    n_components : int, default=8
        Number of kernels / feature maps.
    kernel_size : int or (int, int), default=5
        Kernel height and width, clipped to the image size (the fitted size is ``kernel_size_``).
    alpha : float, default=0.5
        Sparsity penalty.
    encoder : {{"shrink", "tanh"}}, default="shrink"
        ``sh_(beta_k, b_k)(W_k * x)``, the smooth shrinkage
        ``sign(s)*((1/beta)*log(exp(beta*b) + exp(beta*|s|) - 1) - b)`` with ``beta_k`` and ``b_k``
        learned per map, or ``g_k*tanh(W_k * x)`` with a learned gain.
    prediction_weight : float, default=1.0
        Weight of the encoder prediction term (no 1/2 on it, as in the authors' code).
    border_weighting : bool, default=True
        Weight the reconstruction error by kernel coverage (training and inference).
{shape}{pooling}    transform_algorithm : {{"encoder", "inference"}}, default="encoder"
        ``"encoder"`` returns ``f(W * x)``; ``"inference"`` minimises the energy from it, as in
        training.
    inference_max_iter : int, default=50
        FISTA iterations per inference.
    inference_tol : float, default=1e-4
        Relative duality-gap tolerance of the inference.
{training}    random_state : int, RandomState instance or None, default=None
        Seeds the initial kernels (image patches at random places, unit norm) and the minibatch
        order.
    device : {{"auto", "cpu", "cuda", "cuda:N"}}, default="auto"
        Where to compute; arrays come back as numpy.

    Attributes
    ----------
    components_ : ndarray of shape (n_components, C, kh, kw)
        The unit-norm decoder kernels.
    encoder_kernels_ : ndarray of shape (n_components, C, kh, kw)
        The encoder kernels ``W_k``.
    image_shape_ : tuple (H, W, C)
    kernel_size_ : tuple (kh, kw)
    loss_curve_ : list of float
        Mean energy at the inferred maps in each pass.
    n_iter_ : int
        Passes over the data.
    learning_rate_ : float
    n_features_in_ : int
        ``H*W*C``.

    Examples
    --------
    >>> import numpy as np
    >>> from estimators import ConvSparseAutoencoder
    >>> X = np.random.RandomState(0).randn(20, 6, 6)
    >>> ae = ConvSparseAutoencoder(n_components=3, kernel_size=3, max_iter=2, random_state=0,
    ...                            device="cpu")
    >>> ae.fit_transform(X).shape
    (20, 48)
    """.format(shape=_IMAGE_SHAPE_DOC, pooling=_POOLING_DOC, training=TRAINING_PARAMETERS_DOC)

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "kernel_size": [Interval(Integral, 1, None, closed="left"), tuple, list],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "encoder": [StrOptions(set(CONV_ENCODERS))],
        "prediction_weight": [Interval(Real, 0, None, closed="left")],
        "border_weighting": ["boolean"],
        **_SHAPE_PARAMETER_CONSTRAINTS,
        "transform_algorithm": [StrOptions({"encoder", "inference"})],
        "inference_max_iter": [Interval(Integral, 0, None, closed="left")],
        "inference_tol": [Interval(Real, 0, None, closed="left")],
        **TRAINING_PARAMETER_CONSTRAINTS,
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        n_components=8,
        *,
        kernel_size=5,
        alpha=0.5,
        encoder="shrink",
        prediction_weight=1.0,
        border_weighting=True,
        image_shape=None,
        pooling=None,
        pool_size=2,
        transform_algorithm="encoder",
        inference_max_iter=50,
        inference_tol=1e-4,
        optimizer="adam",
        learning_rate=1e-3,
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
        self.n_components = n_components
        self.kernel_size = kernel_size
        self.alpha = alpha
        self.encoder = encoder
        self.prediction_weight = prediction_weight
        self.border_weighting = border_weighting
        self.image_shape = image_shape
        self.pooling = pooling
        self.pool_size = pool_size
        self.transform_algorithm = transform_algorithm
        self.inference_max_iter = inference_max_iter
        self.inference_tol = inference_tol
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

    def _new_module(self, Xt: torch.Tensor, generator: torch.Generator) -> ConvPSD:
        H, W = Xt.shape[-2:]
        kh, kw = _pair(self.kernel_size, "kernel_size")
        self.kernel_size_ = (min(kh, H), min(kw, W))
        D = _patch_kernels(Xt, self.n_components, self.kernel_size_, generator)
        weights = (
            border_weights((H, W), self.kernel_size_, like=Xt) if self.border_weighting else None
        )
        return ConvPSD(
            D,
            conv_lipschitz_constant(D, (H, W), weights=weights),
            alpha=float(self.alpha),
            encoder=self.encoder,
            prediction_weight=float(self.prediction_weight),
            border_weighting=self.border_weighting,
            inference_max_iter=self.inference_max_iter,
            inference_tol=self.inference_tol,
        )

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Learn the kernels and the encoder from images ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, H*W*C), (n_samples, H, W) or (n_samples, C, H, W)
        y : Ignored

        Returns
        -------
        self
        """
        first = not (self.warm_start and hasattr(self, "_module"))
        X, shape = self._validated_images(X, reset=first)
        if not first and shape != self.image_shape_:
            raise ValueError(
                f"warm_start: images of shape {shape} differ from the fitted {self.image_shape_}."
            )
        random_state = check_random_state(self.random_state)
        if first:
            self._resolve_device()
            self.image_shape_ = shape
            self._module = self._new_module(
                self._to_images(X, shape), self._generator(random_state)
            )
        module = self._module
        module.alpha, module.prediction_weight = float(self.alpha), float(self.prediction_weight)
        module.inference_max_iter, module.inference_tol = (
            self.inference_max_iter,
            self.inference_tol,
        )
        Xt = self._to_images(X, shape, dtype=module.decoder_weight.dtype)
        self._train(
            module,
            ConvPSD.training_loss,
            (Xt,),
            projection=ConvPSD.project_,
            param_groups=self._param_groups(module, Xt),
            residual_fn=ConvPSD.training_residuals,
            generator=self._generator(random_state),
        )
        self.components_ = self._numpy(module.decoder_weight)
        self.encoder_kernels_ = self._numpy(module.encoder_weight)
        return self

    def _param_groups(self, module: ConvPSD, Xt: torch.Tensor) -> list[dict] | None:
        """For plain gradient steps: the decoder (and ``beta``, ``gain``) at the base rate, ``W``
        and ``b`` at ``1 / L``; None (one rate) for the optimizers that scale their own steps.

        The encoder starts as one ISTA step, ``W = D / L`` and ``b = alpha / L``, so its
        parameters are ``L`` times smaller than the unit-norm kernels while its gradient is not
        (it is larger: every position of every map feeds it). With one SGD rate for both, the
        kernels stay near their initialisation or the encoder diverges; scaling the encoder's rate
        by ``1 / L`` (``L`` of the current kernels) lets the kernels take large steps. Adam,
        RMSprop, SDLM and L-BFGS normalise each step by the gradient or the curvature already.
        """
        if not (isinstance(self.optimizer, str) and self.optimizer in _PLAIN_GRADIENT_OPTIMIZERS):
            return None
        weights = module.reconstruction_weights(Xt)
        L = conv_lipschitz_constant(module.decoder_weight.detach(), Xt.shape[-2:], weights=weights)
        encoder = [module.encoder_weight]
        if module.encoder == "shrink":
            encoder.append(module.threshold)
        others = [p for p in module.parameters() if all(p is not q for q in encoder)]
        return [{"params": others, "lr_scale": 1.0}, {"params": encoder, "lr_scale": 1.0 / L}]

    def _input(self, X) -> tuple[torch.Tensor, np.dtype]:
        check_is_fitted(self)
        X, shape = self._validated_images(X, reset=False)
        if shape != self.image_shape_:
            raise ValueError(
                f"X holds images of shape (H, W, C)={shape}; this model was fitted on "
                f"{self.image_shape_}."
            )
        return self._to_images(X, shape, dtype=self._module.decoder_weight.dtype), X.dtype

    @torch.no_grad()
    def _maps(self, Xt: torch.Tensor) -> torch.Tensor:
        if self.transform_algorithm == "inference":
            return self._module.infer(Xt)
        return self._module(Xt)

    def transform(self, X):
        """Features of every image: the encoder's maps, or the inferred maps with ``"inference"``.

        Parameters
        ----------
        X : array-like of shape (n_samples, H*W*C), (n_samples, H, W) or (n_samples, C, H, W)

        Returns
        -------
        ndarray of shape (n_samples, n_features_out)
        """
        Xt, dtype = self._input(X)
        return self._numpy(self._features(self._maps(Xt)), dtype)

    def inverse_transform(self, X):
        """Images ``sum_k D_k * z_k`` decoded from unpooled features (``pooling=None``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_components * h * w)
            Flattened feature maps, as :meth:`transform` returns them.

        Returns
        -------
        ndarray of shape (n_samples, H*W*C)
            Channel-last rows (``(H, W)`` images flattened for one channel), whatever the layout
            ``fit`` saw.
        """
        check_is_fitted(self)
        return self._decode(
            X,
            self._module.decoder_weight.detach(),
            code_size(self.image_shape_[:2], self.kernel_size_),
        )

    def score(self, X, y=None):
        """Minus the mean energy of the images at their inferred maps (higher is better)."""
        Xt, _ = self._input(X)
        with torch.no_grad():
            return -float(self._module.energy(Xt, self._module.infer(Xt)).mean())

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    @property
    def _n_features_out(self):
        check_is_fitted(self)
        return self._n_features_for(
            self.n_components, code_size(self.image_shape_[:2], self.kernel_size_)
        )
