"""PredictiveSparseDecomposition: a sparse decoder and a fast encoder trained together."""

from __future__ import annotations

from functools import partial
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions

from sparsecode.dictionary import init_dictionary
from sparsecode.models import ENCODERS, PSD
from sparsecode.models.psd import psd_energy, psd_inference, psd_loss

from ._base import ArrayLike, EnergyScoreMixin, LinearDecoderMixin
from ._training import TrainedEstimator, TrainedTransformer
from ._validation import check_input

__all__ = ["PredictiveSparseDecomposition"]


class PredictiveSparseDecomposition(EnergyScoreMixin, LinearDecoderMixin, TrainedTransformer):
    __doc__ = """Predictive sparse decomposition (Kavukcuoglu, Ranzato & LeCun 2008).

    Learns unit-norm atoms ``D`` (rows) and an encoder ``F`` that predicts the sparse codes, by
    minimising the mean of the energy
    ``0.5*||x - z D||^2 + alpha*||z||_1 + beta*||z - F(x)||^2`` at the optimal code ``z*`` of every
    sample. Each training step predicts ``F(x)``, infers ``z*`` by FISTA started from the prediction,
    then steps the decoder (reconstruction at ``z*``) and the encoder (toward ``z*``), and
    renormalises the atoms. ``transform`` then needs only ``F`` (one product and a nonlinearity).

    The model runs on ``X / input_scale_`` (``input_scale_``, the root-mean-square norm of the training
    rows, fixed by the first fit) with the penalty ``alpha_ / input_scale_``, and its codes are scaled
    back: every result is that of the energy above on ``X`` itself, while the initialisation and the
    optimizer's steps see data of unit scale, so the defaults train alike on any scaling of the data.

    Parameters
    ----------
    n_components : int, default=None
        Number of atoms and code units; ``n_features`` when None.
    alpha : float, default=None
        Sparsity penalty; None uses ``0.1 * input_scale_`` (scale-free; the resolved value is ``alpha_``).
    beta : float, default=1.0
        Weight of the prediction term ``beta*||z - F(x)||^2``.
    encoder : {"tanh", "shrink", "linear"}, default="tanh"
        ``g*tanh(x W^T + b)`` with a diagonal gain (the paper's), ``g*shrink_theta(x W^T + b)`` with
        learned thresholds, or ``x W^T + b``.
    transform_algorithm : {"encoder", "inference"}, default="encoder"
        ``"encoder"`` returns ``F(x)``; ``"inference"`` minimises the energy from it (as in training).
    positive_code : bool, default=False
        Non-negative codes in the inference (and a non-negative shrinkage encoder).
    inference_max_iter : int, default=100
        FISTA iterations per inference.
    inference_tol : float, default=1e-4
        Relative duality-gap tolerance of the inference.
{training}
    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
        The unit-norm atoms.
{scaled_attributes}
    loss_curve_ : list of float
        Mean energy at the inferred codes in each pass.
    n_iter_ : int
        Passes over the data.
    learning_rate_ : float
{input_attributes}

    Examples
    --------
    >>> import numpy as np
    >>> from estimators import PredictiveSparseDecomposition
    >>> X = np.random.RandomState(0).randn(100, 8)
    >>> psd = PredictiveSparseDecomposition(n_components=6, alpha=0.5, max_iter=3, tol=0, random_state=0,
    ...                                     device="cpu")
    >>> psd.fit_transform(X).shape
    (100, 6)
    """

    _training_notes = {"random_state": "Also seeds the initial atoms."}

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left"), None],
        "alpha": [Interval(Real, 0, None, closed="left"), None],
        "beta": [Interval(Real, 0, None, closed="neither")],
        "encoder": [StrOptions(set(ENCODERS))],
        "transform_algorithm": [StrOptions({"encoder", "inference"})],
        "positive_code": ["boolean"],
        "inference_max_iter": [Interval(Integral, 0, None, closed="left")],
        "inference_tol": [Interval(Real, 0, None, closed="left")],
        **TrainedEstimator._parameter_constraints,
    }

    def __init__(
        self,
        n_components=None,
        *,
        alpha=None,
        beta=1.0,
        encoder="tanh",
        transform_algorithm="encoder",
        positive_code=False,
        inference_max_iter=100,
        inference_tol=1e-4,
        optimizer="adam", learning_rate=1e-3, max_iter=100, batch_size=256, tol=1e-4, n_iter_no_change=10,
        early_stopping=False, validation_fraction=0.1, warm_start=False, verbose=0, random_state=None,
        device="auto", distributed=None, checkpoint=None,
    ):
        super().__init__(optimizer, learning_rate, max_iter, batch_size, tol, n_iter_no_change, early_stopping,
                         validation_fraction, warm_start, verbose, random_state, device, distributed,
                         checkpoint)
        self.n_components = n_components
        self.alpha = alpha
        self.beta = beta
        self.encoder = encoder
        self.transform_algorithm = transform_algorithm
        self.positive_code = positive_code
        self.inference_max_iter = inference_max_iter
        self.inference_tol = inference_tol

    # -- hooks for the group-sparse subclass ---------------------------------------------
    def _resolve_structure(self, n_features: int) -> None:
        """Set ``self._n_components`` and ``self._pools`` (None: the L1 penalty)."""
        self._n_components = self.n_components or n_features
        self._pools = None

    def _output(self, Z: torch.Tensor) -> torch.Tensor:
        return Z

    # -- fitting ---------------------------------------------------------------------------
    def _options(self) -> dict:
        return dict(
            alpha=self.alpha_ / self.input_scale_,
            beta=float(self.beta),
            pools=self._pools,
            positive=self.positive_code,
            max_iter=self.inference_max_iter,
            tol=self.inference_tol,
        )

    def _fit(self, X) -> None:
        """Learn the atoms and the encoder from ``X``."""
        first = not (self.warm_start and hasattr(self, "_module"))
        X = check_input(self, X, reset=first)
        random_state = check_random_state(self.random_state)
        if first:
            self._resolve_device()
            self._resolve_structure(X.shape[1])
            self.input_scale_ = self._data_scale(X)
            mean = self._data_mean(X)
        self._resolve_alpha(self.input_scale_)
        if first:
            Xt = self._scaled(self._tensor(X))
            D = init_dictionary(Xt, self._n_components, self._generator(random_state))
            self._module = PSD(D, self.encoder, alpha=self.alpha_ / self.input_scale_, positive=self.positive_code,
                               offset=self._scaled(self._tensor(mean, dtype=D.dtype)))
        Xt = self._scaled(self._tensor(X, dtype=self._module.dictionary.dtype))
        self._train(
            self._module,
            partial(psd_loss, **self._options()),
            (Xt,),
            projection=PSD.project_,
            generator=self._generator(random_state),
        )
        self.components_ = self._numpy(self._module.dictionary)

    # -- inference -------------------------------------------------------------------------
    def _scaled(self, Xt: torch.Tensor) -> torch.Tensor:
        """``Xt`` in the model's units (divided by ``input_scale_``)."""
        return Xt / self.input_scale_

    @torch.no_grad()
    def _infer(self, Xt: torch.Tensor):
        """Prediction ``F(x)`` and the inference from it, in the model's units (of ``X / input_scale_``)."""
        Xs = self._scaled(Xt)
        P = self._module(Xs)
        return P, psd_inference(Xs, self._module.dictionary, P, **self._options())

    @torch.no_grad()
    def _codes(self, Xt: torch.Tensor) -> torch.Tensor:
        if self.transform_algorithm == "inference":
            return self._infer(Xt)[1].code * self.input_scale_
        return self._module(self._scaled(Xt)) * self.input_scale_

    def _features_of(self, Xt: torch.Tensor) -> torch.Tensor:
        """The encoder's prediction, or the inferred codes with ``"inference"``."""
        return self._output(self._codes(Xt))

    def predict_codes(self, X: ArrayLike) -> np.ndarray:
        """The encoder's prediction ``F(x)`` and the inferred optimal codes ``z*``, side by side.

        Returns
        -------
        prediction, code : ndarray of shape (n_samples, n_components)
        """
        Xt, dtype = self._input(X)
        P, inf = self._infer(Xt)
        return self._numpy(P * self.input_scale_, dtype), self._numpy(inf.code * self.input_scale_, dtype)

    def _energies(self, X) -> torch.Tensor:
        """The energy of every sample of ``X`` at its inferred codes."""
        Xt, _ = self._input(X)
        P, inf = self._infer(Xt)
        energy = psd_energy(self._scaled(Xt), inf.code, self._module.dictionary, P, inf.penalty, float(self.beta))
        return energy * self.input_scale_**2
