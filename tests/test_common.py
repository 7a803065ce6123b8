"""scikit-learn's own estimator checks on every public estimator, found automatically."""

import inspect

import pytest
from sklearn.base import BaseEstimator, clone
from sklearn.utils.estimator_checks import parametrize_with_checks

import estimators
from tests.common_params import CHECK_PARAMS, EXPECTED_FAILED, PER_CHECK_PARAMS


def _all_estimators():
    for name in estimators.__all__:
        obj = getattr(estimators, name)
        if inspect.isclass(obj) and issubclass(obj, BaseEstimator):
            yield obj


def _instances():
    for cls in _all_estimators():
        params = CHECK_PARAMS.get(cls.__name__, {})
        yield cls(**params)


def _expected_failed(estimator):
    return EXPECTED_FAILED.get(type(estimator).__name__, {})


def test_every_estimator_has_check_params():
    """A new estimator gets cheap settings for the checks (small models, few iterations)."""
    missing = [c.__name__ for c in _all_estimators() if c.__name__ not in CHECK_PARAMS]
    assert not missing, f"add these to tests/common_params.py CHECK_PARAMS: {missing}"


@parametrize_with_checks(list(_instances()), expected_failed_checks=_expected_failed)
def test_sklearn_compatible(estimator, check):
    name = getattr(check, "func", check).__name__
    overrides = PER_CHECK_PARAMS.get(type(estimator).__name__, {}).get(name)
    if overrides:
        estimator = clone(estimator).set_params(**overrides)
    check(estimator)


@pytest.mark.parametrize("cls", list(_all_estimators()), ids=lambda c: c.__name__)
def test_no_torch_in_public_params(cls):
    """Hyperparameters are plain values: every default is a number, string, bool, None or array."""
    est = cls(**CHECK_PARAMS.get(cls.__name__, {}))
    for key, value in est.get_params(deep=False).items():
        assert not type(value).__module__.startswith("torch") or key == "device", key
