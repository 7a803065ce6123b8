"""Pieces every torch-backed estimator shares: the device, tensors in and out, and device-portable pickles."""

from __future__ import annotations

import copy
import io
import warnings
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np
import torch
from numpy.typing import ArrayLike
from sklearn.base import TransformerMixin, _fit_context
from sklearn.utils.validation import check_is_fitted

from sparsecode.device import as_tensor, make_generator, resolve_device, to_numpy

from ._validation import check_codes

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = [
    "TorchEstimatorMixin",
    "FloatTransformerMixin",
    "FitMixin",
    "EnergyScoreMixin",
    "LinearDecoderMixin",
    "DeviceWarning",
    "DEVICE_CONSTRAINT",
    "unchanged_on_failure",
    "ArrayLike",
]

DEVICE_CONSTRAINT = [str, torch.device, None]

class DeviceWarning(UserWarning):
    """A model saved on a GPU was loaded on a machine without one, so it moved to the CPU."""


def _is_torch_state(value) -> bool:
    module = type(value).__module__
    return module.startswith("torch") or module.startswith("sparsecode")


class FloatTransformerMixin(TransformerMixin):
    """A transformer that keeps float32 and float64 input in its precision.

    A stateless transformer (nothing learned; ``transform`` works unfitted) sets ``_stateless = True``.
    """

    _stateless = False

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = not self._stateless
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


@contextmanager
def unchanged_on_failure(estimator):
    """Leave ``estimator`` exactly as it was when the block raises (any exception, Ctrl-C included).

    Every attribute that is not a parameter (fitted attributes, torch modules, optimizer state) is
    deep-copied on entry; on failure the attributes are restored and those the block added removed,
    then the exception propagates. A fit (or ``partial_fit``) wrapped in it fails atomically.
    """
    params = set(estimator.get_params(deep=False))
    saved = copy.deepcopy({k: v for k, v in vars(estimator).items() if k not in params})
    try:
        yield
    except BaseException:
        for key in [k for k in vars(estimator) if k not in params]:
            delattr(estimator, key)
        vars(estimator).update(saved)
        raise


class FitMixin:
    """``fit`` written once for the unsupervised estimators: the parameters validated, then :meth:`_fit`.

    A fit that raises leaves the estimator as it was before the call (:func:`unchanged_on_failure`).
    """

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: ArrayLike, y: None = None) -> Self:
        """Fit the estimator on ``X`` (the class description says what it learns).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data. The convolutional estimators also take images of shape (n_samples, H, W) or
            (n_samples, C, H, W).
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        with unchanged_on_failure(self):
            self._fit(X)
        return self

    def _fit(self, X: ArrayLike) -> None:
        """Validate ``X`` and learn from it; the parameters are already validated."""
        raise NotImplementedError


class EnergyScoreMixin:
    """``score`` written once: minus the mean of the per-sample energies of :meth:`_energies`."""

    def score(self, X: ArrayLike, y: None = None) -> float:
        """Minus the mean energy of ``X`` at its codes (higher is better), for model selection.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples to score, in any layout ``fit`` takes.
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        score : float
            Minus the mean over samples of the estimator's energy (see the class description).
        """
        with torch.no_grad():
            return -float(self._energies(X).mean())

    def _energies(self, X):
        """The energy of every sample of ``X`` at its codes, an ndarray or a tensor."""
        raise NotImplementedError


class LinearDecoderMixin:
    """``inverse_transform`` written once for codes that decode linearly: ``code @ atoms``."""

    def _atoms(self, X=None) -> np.ndarray:
        """The atoms (rows) of the codes; the fitted ``components_`` unless a subclass says otherwise.

        ``X``, the data about to be coded, lets a subclass check it against the atoms.
        """
        check_is_fitted(self)
        return self.components_

    def _inverse(self, code, atoms: np.ndarray) -> np.ndarray:
        """Validated ``code`` times ``atoms`` (in the dtype of the code)."""
        code = check_codes(code, atoms.shape[0], "n_components")
        return code @ atoms.astype(code.dtype, copy=False)

    def inverse_transform(self, X: ArrayLike) -> np.ndarray:
        """Data rebuilt from codes: ``code @ atoms``, the atoms given or learned (``components_``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_components)
            Codes, as ``transform`` returns them.

        Returns
        -------
        X_original : ndarray of shape (n_samples, n_features)
            The reconstruction, in the float dtype of ``X``.
        """
        return self._inverse(X, self._atoms())


class TorchEstimatorMixin:
    """Device resolution, numpy <-> tensor conversion and pickling that survives a CUDA -> CPU move.

    Torch state (tensors, modules, optimizers, training state) lives in private attributes. On pickling
    it is written with :func:`torch.save`; on unpickling it is loaded back on its device, or on the CPU
    with a :class:`DeviceWarning` when CUDA is not available.

    Docstrings share their common entries through placeholders: a subclass's own docstring has every
    ``{name}`` of :meth:`_doc_sections` replaced when the class is created.
    """

    _shared_docs: dict[str, str] = {
        "input_attributes": """\
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of shape (``n_features_in_``,)
        Names of the features seen during ``fit``; only when ``X`` has string feature names.""",
    }

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        doc = cls.__dict__.get("__doc__")
        if doc:
            sections = cls._doc_sections()
            for _ in range(2):  # a section may itself use a placeholder
                for name, text in sections.items():
                    doc = doc.replace("{" + name + "}", text)
            cls.__doc__ = doc

    @classmethod
    def _doc_sections(cls) -> dict[str, str]:
        """Placeholder name -> text for the class's docstring: the ``_shared_docs`` of its bases and its own."""
        return {k: v for base in reversed(cls.__mro__) for k, v in vars(base).get("_shared_docs", {}).items()}

    def _resolve_device(self) -> torch.device:
        self._device = resolve_device(getattr(self, "device", "auto"))
        return self._device

    def _tensor(self, X, dtype=None) -> torch.Tensor:
        """``X`` as a tensor on the fitted device (float64 stays float64, else float32)."""
        device = getattr(self, "_device", None) or resolve_device(getattr(self, "device", "auto"))
        return as_tensor(X, device, dtype)

    @staticmethod
    def _numpy(t: torch.Tensor, dtype=None) -> np.ndarray:
        out = to_numpy(t)
        return out if dtype is None else out.astype(dtype, copy=False)

    def _generator(self, random_state: np.random.RandomState) -> torch.Generator:
        """A torch generator on the fitted device, seeded from a numpy RandomState."""
        return make_generator(random_state.randint(np.iinfo(np.int32).max), self._device)

    def __getstate__(self):
        state = super().__getstate__() if hasattr(super(), "__getstate__") else self.__dict__.copy()
        state = dict(state)
        torch_state = {k: v for k, v in state.items() if _is_torch_state(v)}
        if torch_state:
            buffer = io.BytesIO()
            torch.save(torch_state, buffer)
            for k in torch_state:
                del state[k]
            state["_torch_state_bytes"] = buffer.getvalue()
            state["_torch_state_cuda"] = any(
                getattr(v, "type", None) == "cuda" for v in torch_state.values() if isinstance(v, torch.device)
            )
        return state

    def __setstate__(self, state):
        state = dict(state)
        blob = state.pop("_torch_state_bytes", None)
        was_cuda = state.pop("_torch_state_cuda", False)
        if blob is not None:
            map_location = None
            if not torch.cuda.is_available():
                map_location = "cpu"
                if was_cuda:
                    warnings.warn(
                        "This model was fitted on CUDA, which is not available here; it was loaded on the CPU.",
                        DeviceWarning,
                        stacklevel=2,
                    )
            loaded = torch.load(io.BytesIO(blob), map_location=map_location, weights_only=False)
            if map_location == "cpu":
                loaded = {k: (torch.device("cpu") if isinstance(v, torch.device) else v)
                          for k, v in loaded.items()}
            state.update(loaded)
        if hasattr(super(), "__setstate__"):
            super().__setstate__(state)
        else:
            self.__dict__.update(state)
