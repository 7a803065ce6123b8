"""Nothing depends on torch's default device: ``torch.set_default_device`` in a user's session changes nothing.

Every tensor the library makes names its device: the host-side ones the CPU, the rest their inputs' device.
Under ``with torch.device("meta")`` a tensor made without one lands on the meta device and fails its first
use with real data. (``tests/engine/test_device_placement.py`` runs the engine's torch paths that way.)
"""

import ast
import pathlib
import warnings

import numpy as np
import pytest
import torch
from sklearn.base import clone

from tests.common_params import CHECK_PARAMS
from tests.test_common import _all_estimators

ROOT = pathlib.Path(__file__).resolve().parents[1]
# the factories that take torch's default device when given none (``torch.utils._device``'s list, in part)
FACTORIES = {"arange", "as_tensor", "asarray", "empty", "empty_strided", "eye", "full", "linspace", "logspace",
             "ones", "rand", "randint", "randn", "randperm", "range", "scalar_tensor", "tensor", "tril_indices",
             "triu_indices", "zeros"}


def test_every_tensor_factory_call_names_its_device():
    """``torch.zeros(...)`` and the like, in both packages, pass ``device=`` (or ``**options`` that hold it)."""
    unnamed = []
    for path in [*(ROOT / "sparsecode").rglob("*.py"), *(ROOT / "estimators").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in FACTORIES
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch"
                    and not any(k.arg in ("device", None) for k in node.keywords)):
                unnamed.append(f"{path.relative_to(ROOT)}:{node.lineno} torch.{node.func.attr}")
    assert not unnamed, unnamed


def _fit_and_use(estimator, X, y) -> list:
    """What a user gets from ``estimator``: its outputs on ``X`` after fitting, and its score."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tiny settings may not converge; the two runs must agree all the same
        estimator.fit(X, y)
        return [getattr(estimator, method)(X, *((y,) if method == "score" else ()))
                for method in ("transform", "predict", "score") if hasattr(estimator, method)]


@pytest.mark.parametrize("cls", list(_all_estimators()), ids=lambda c: c.__name__)
def test_every_estimator_gives_the_same_results_under_another_default_device(cls):
    X, y = np.random.RandomState(0).rand(40, 3), np.arange(40) % 2
    estimator = cls(**CHECK_PARAMS[cls.__name__])
    expected = _fit_and_use(clone(estimator), X, y)
    with torch.device("meta"):
        got = _fit_and_use(clone(estimator), X, y)
    assert len(got) == len(expected) > 0
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_array_equal(g, e)
