"""Pieces every torch-backed estimator shares: the device, tensors in and out, and device-portable pickles."""

from __future__ import annotations

import io
import warnings

import numpy as np
import torch
from sklearn.base import TransformerMixin

from sparsecode.device import as_tensor, make_generator, resolve_device, to_numpy

__all__ = ["TorchEstimatorMixin", "FloatTransformerMixin", "DeviceWarning", "DEVICE_CONSTRAINT"]

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


class TorchEstimatorMixin:
    """Device resolution, numpy <-> tensor conversion and pickling that survives a CUDA -> CPU move.

    Torch state (tensors, modules, optimizers, training state) lives in private attributes. On pickling
    it is written with :func:`torch.save`; on unpickling it is loaded back on its device, or on the CPU
    with a :class:`DeviceWarning` when CUDA is not available.

    Docstrings share their common entries through placeholders: a subclass's own docstring has every
    ``{name}`` of :meth:`_doc_sections` replaced when the class is created.
    """

    _shared_docs: dict[str, str] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        doc = cls.__dict__.get("__doc__")
        if doc:
            for name, text in cls._doc_sections().items():
                doc = doc.replace("{" + name + "}", text)
            cls.__doc__ = doc

    @classmethod
    def _doc_sections(cls) -> dict[str, str]:
        """Placeholder name -> text for the class's docstring (``_shared_docs`` here)."""
        return cls._shared_docs

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
