"""The documentation's API reference lists every public name (CI builds the site itself)."""

import pathlib
import re

import pytest

import estimators
import sparsecode
import sparsecode.models
import sparsecode.training
import sparsecode.training.optim

API = pathlib.Path(__file__).resolve().parents[1] / "docs" / "api.rst"


@pytest.mark.parametrize(
    "package", [estimators, sparsecode, sparsecode.models, sparsecode.training, sparsecode.training.optim],
    ids=lambda p: p.__name__,
)
def test_every_public_name_is_in_the_api_reference(package):
    listed = set(re.findall(r"^   (\w+)$", API.read_text(), flags=re.M))
    missing = sorted(set(package.__all__) - listed)
    assert not missing, f"docs/api.rst does not list {missing} (exported by {package.__name__})"
