"""ConvSparseAutoencoder: convolutional predictive sparse decomposition of whole images.

The image layouts and the features are those of :mod:`estimators._conv_images`; the model, its
initialisation and its rate scaling are :class:`sparsecode.models.ConvPSD`'s.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import torch
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from sparsecode.models import CONV_ENCODERS, ConvPSD

from ._base import EnergyScoreMixin
from ._conv_images import ConvImagesMixin, pair
from ._training import TrainedEstimator, TrainedTransformer

__all__ = ["ConvSparseAutoencoder"]


class ConvSparseAutoencoder(EnergyScoreMixin, ConvImagesMixin, TrainedTransformer):
    __doc__ = """Convolutional predictive sparse decomposition (ConvPSD; Kavukcuoglu et al. 2010).

    Learns unit-norm decoder kernels ``D_k`` and a convolutional encoder ``f(W_k * x)`` by minimising
    the mean over images of the energy
    ``0.5*||sqrt(w)(x - sum_k D_k * z_k)||^2 + alpha*||z||_1 + prediction_weight*||z - f(W * x)||^2``
    at the optimal maps ``z*``, with ``w`` the border weighting (pixels weighted by the number of
    kernel placements covering them, over the maximum). Each training step predicts ``f(W * x)``,
    infers ``z*`` by convolutional FISTA from the prediction, steps all parameters on the energy at
    ``z*`` through the shared training loop, and renormalises the kernels. With plain gradient steps
    ("sgd", "momentum", "nesterov", "asgd") the encoder's ``W`` and ``b`` step at
    ``learning_rate / L`` (``L`` the decoder's Lipschitz constant at the start of ``fit``): they start
    ``L`` times smaller than the unit-norm kernels. ``transform`` then needs only the encoder (one
    convolution and a nonlinearity), or runs the full inference.

    The model runs on ``(X - mean_) / input_scale_`` with the penalty ``alpha_ / input_scale_`` and its
    maps are scaled back: ``mean_`` is the training images' mean per channel and ``input_scale_`` the
    root-mean-square norm of the centred patches a kernel sees (``sqrt(mean((X - mean_)**2) * C*kh*kw)``),
    both fixed by the first fit, so the defaults train alike on any scaling and offset of the images.
    :meth:`inverse_transform` adds ``mean_`` back. The authors' images were contrast-normalised (zero mean,
    locally); sparse maps represent an image's mean level poorly, and with pixel values in [0, 1] the
    encoder trained on the raw images reconstructed them no better than their mean after 100 passes.

    Parameters
    ----------
    n_components : int, default=8
        Number of kernels / feature maps.
    kernel_size : int or (int, int), default=5
        Kernel height and width, clipped to the image size (the fitted size is ``kernel_size_``).
    alpha : float, default=None
        Sparsity penalty; None uses ``0.1 * input_scale_`` (scale-free; the resolved value is ``alpha_``).
    encoder : {"shrink", "tanh"}, default="shrink"
        ``sh_(beta_k, b_k)(W_k * x)``, the smooth shrinkage
        ``sign(s)*((1/beta)*log(exp(beta*b) + exp(beta*|s|) - 1) - b)`` with ``beta_k`` and ``b_k``
        learned per map, or ``g_k*tanh(W_k * x)`` with a learned gain.
    prediction_weight : float, default=1.0
        Weight of the encoder prediction term (no 1/2 on it, as in the authors' code).
    border_weighting : bool, default=True
        Weight the reconstruction error by kernel coverage (training and inference).
{shape}{pooling}    transform_algorithm : {"encoder", "inference"}, default="encoder"
        ``"encoder"`` returns ``f(W * x)``; ``"inference"`` minimises the energy from it, as in
        training.
    inference_max_iter : int, default=50
        FISTA iterations per inference.
    inference_tol : float, default=1e-4
        Relative duality-gap tolerance of the inference.
{training}
    Attributes
    ----------
    components_ : ndarray of shape (n_components, C, kh, kw)
        The unit-norm decoder kernels.
    encoder_kernels_ : ndarray of shape (n_components, C, kh, kw)
        The encoder kernels ``W_k``.
    image_shape_ : tuple (H, W, C)
    kernel_size_ : tuple (kh, kw)
    mean_ : ndarray of shape (C,)
        The training images' mean per channel, which the model subtracts.
{scaled_attributes}
    loss_curve_ : list of float
        Mean energy at the inferred maps in each pass.
    n_iter_ : int
        Passes over the data.
    learning_rate_ : float
{input_attributes}

    Examples
    --------
    >>> import numpy as np
    >>> from estimators import ConvSparseAutoencoder
    >>> X = np.random.RandomState(0).randn(20, 6, 6)
    >>> ae = ConvSparseAutoencoder(n_components=3, kernel_size=3, max_iter=2, tol=0,
    ...                            random_state=0, device="cpu")
    >>> ae.fit_transform(X).shape
    (20, 48)
    """

    _training_notes = {
        "random_state": "Also seeds the initial kernels (image patches at random places, unit norm).",
    }

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "kernel_size": [Interval(Integral, 1, None, closed="left"), tuple, list],
        "alpha": [Interval(Real, 0, None, closed="left"), None],
        "encoder": [StrOptions(set(CONV_ENCODERS))],
        "prediction_weight": [Interval(Real, 0, None, closed="left")],
        "border_weighting": ["boolean"],
        **ConvImagesMixin._parameter_constraints,
        "transform_algorithm": [StrOptions({"encoder", "inference"})],
        "inference_max_iter": [Interval(Integral, 0, None, closed="left")],
        "inference_tol": [Interval(Real, 0, None, closed="left")],
        **TrainedEstimator._parameter_constraints,
    }

    def __init__(
        self,
        n_components=8,
        *,
        kernel_size=5,
        alpha=None,
        encoder="shrink",
        prediction_weight=1.0,
        border_weighting=True,
        image_shape=None,
        pooling=None,
        pool_size=2,
        transform_algorithm="encoder",
        inference_max_iter=50,
        inference_tol=1e-4,
        optimizer="adam", learning_rate=1e-3, max_iter=100, batch_size=256, tol=1e-4, n_iter_no_change=10,
        early_stopping=False, validation_fraction=0.1, warm_start=False, verbose=0, random_state=None,
        device="auto", distributed=None, checkpoint=None,
    ):
        super().__init__(optimizer, learning_rate, max_iter, batch_size, tol, n_iter_no_change, early_stopping,
                         validation_fraction, warm_start, verbose, random_state, device, distributed,
                         checkpoint)
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

    def _new_module(self, X: np.ndarray, generator: torch.Generator) -> ConvPSD:
        shape = self.image_shape_
        kh, kw = pair(self.kernel_size, "kernel_size")
        self.kernel_size_ = (min(kh, shape[0]), min(kw, shape[1]))
        self.mean_ = self._data_mean(X).reshape(-1, shape[2]).mean(0)
        centred = X - np.tile(self.mean_, shape[0] * shape[1]).astype(X.dtype)
        self.input_scale_ = self._data_scale(centred, shape[2] * self.kernel_size_[0] * self.kernel_size_[1])
        self._resolve_alpha(self.input_scale_)
        Xt = self._scaled(self._to_images(X, shape))
        return ConvPSD.from_images(
            Xt,
            self.n_components,
            self.kernel_size_,
            generator,
            border_weighting=self.border_weighting,
            alpha=self.alpha_ / self.input_scale_,
            encoder=self.encoder,
            prediction_weight=float(self.prediction_weight),
            inference_max_iter=self.inference_max_iter,
            inference_tol=self.inference_tol,
        )

    def _fit(self, X) -> None:
        """Learn the kernels and the encoder from images ``X``."""
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
            self._module = self._new_module(X, self._generator(random_state))
        module = self._module
        self._resolve_alpha(self.input_scale_)
        module.alpha, module.prediction_weight = self.alpha_ / self.input_scale_, float(self.prediction_weight)
        module.inference_max_iter, module.inference_tol = (
            self.inference_max_iter,
            self.inference_tol,
        )
        Xt = self._scaled(self._to_images(X, shape, dtype=module.decoder_weight.dtype))
        self._train(
            module,
            ConvPSD.training_loss,
            (Xt,),
            projection=ConvPSD.project_,
            param_groups=module.param_groups(Xt, self.optimizer),
            residual_fn=ConvPSD.training_residuals,
            generator=self._generator(random_state),
        )
        self.components_ = self._numpy(module.decoder_weight)
        self.encoder_kernels_ = self._numpy(module.encoder_weight)

    def _input(self, X) -> tuple[torch.Tensor, np.dtype]:
        check_is_fitted(self)
        X, shape = self._validated_images(X, reset=False)
        if shape != self.image_shape_:
            raise ValueError(
                f"X holds images of shape (H, W, C)={shape}; this model was fitted on "
                f"{self.image_shape_}."
            )
        return self._to_images(X, shape, dtype=self._module.decoder_weight.dtype), X.dtype

    def _scaled(self, Xt: torch.Tensor) -> torch.Tensor:
        """Images ``Xt`` in the model's units: less ``mean_``, over ``input_scale_``."""
        mean = torch.as_tensor(self.mean_, dtype=Xt.dtype, device=Xt.device)
        return (Xt - mean.view(-1, 1, 1)) / self.input_scale_

    def _image_mean(self) -> np.ndarray:
        return self.mean_

    @torch.no_grad()
    def _maps(self, Xt: torch.Tensor) -> torch.Tensor:
        """The maps of images ``Xt`` (in the data's units)."""
        Xs = self._scaled(Xt)
        maps = self._module.infer(Xs) if self.transform_algorithm == "inference" else self._module(Xs)
        return maps * self.input_scale_

    def _features_of(self, Xt: torch.Tensor) -> torch.Tensor:
        """The encoder's maps, or the inferred maps with ``"inference"``, as features."""
        return self._features(self._maps(Xt))

    def _energies(self, X) -> torch.Tensor:
        """The energy of every image of ``X`` at its inferred maps."""
        Xs = self._scaled(self._input(X)[0])
        return self._module.energy(Xs, self._module.infer(Xs)) * self.input_scale_**2

    def _decoder_kernels(self) -> torch.Tensor:
        return self._module.decoder_weight.detach()
