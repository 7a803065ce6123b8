"""GroupSparseAutoencoder: disjoint groups and the topographic torus."""

import pickle
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.estimator_checks import (
    check_estimators_dtypes,
    check_estimators_pickle,
    check_fit_idempotent,
    check_transformer_general,
    check_transformers_unfitted,
)

from estimators import GroupSparseAutoencoder
from tests.estimators.conftest import fit_quietly


@pytest.fixture(scope="module")
def data():
    """Samples made of a few active groups of 3 atoms of a hidden dictionary."""
    rng = np.random.RandomState(0)
    D = rng.randn(12, 10)
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    active = np.repeat(rng.rand(600, 4) < 0.3, 3, axis=1)
    Z = rng.randn(600, 12) * active
    return (Z @ D + 0.05 * rng.randn(600, 10)).astype(np.float32)


_OPTIONS = dict(alpha=0.2, max_iter=4, batch_size=32, learning_rate=1e-2, inference_max_iter=50, random_state=0,
                device="cpu")


def _fit(X, **params):
    return fit_quietly(GroupSparseAutoencoder(**{**_OPTIONS, **params}), X)


def test_disjoint_groups_pool_to_group_norms(data):
    model = _fit(data, n_components=12, group_size=3, alpha=0.6)
    codes = model.transform(data)
    pooled = pickle.loads(pickle.dumps(model)).set_params(transform_output="pooled")
    np.testing.assert_allclose(
        pooled.transform(data),
        np.linalg.norm(codes.reshape(-1, 4, 3), axis=2),
        rtol=1e-5,
        atol=1e-6,
    )
    assert model.loss_curve_[-1] < model.loss_curve_[0]
    _, z = model.predict_codes(data)
    groups_on = np.linalg.norm(z.reshape(-1, 4, 3), axis=2) > 0
    units_on = z.reshape(-1, 4, 3) != 0
    # group sparsity: the zeros come by whole groups
    assert units_on[groups_on].all() and 0.1 < np.mean(groups_on) < 0.8


def test_topography_has_one_pool_per_unit_and_pooled_features(data):
    model = _fit(data, topography=(3, 4), pool_size=3, transform_output="pooled")
    assert model.components_.shape == (12, 10)
    assert model.pool_weights_.shape == (12, 12) and np.all((model.pool_weights_ > 0).sum(1) == 9)
    pooled = model.transform(data[:50])
    assert pooled.shape == (50, 12) and np.all(pooled >= 0)
    assert model.get_feature_names_out().shape == (12,)
    np.testing.assert_allclose(np.linalg.norm(model.components_, axis=1), 1.0, rtol=1e-5)
    with pytest.raises(ValueError, match="pooled"):
        model.inverse_transform(pooled)


def test_topographic_energy_decreases_and_prediction_improves(data):
    untrained = _fit(data, topography=(3, 4), max_iter=0)
    model = _fit(data, topography=(3, 4), max_iter=6)
    assert np.all(np.diff(model.loss_curve_) < 0)
    assert model.score(data) > untrained.score(data)

    def error(m):
        p, z = m.predict_codes(data)
        return ((p - z) ** 2).sum() / (z**2).sum()

    assert error(model) < 0.5 * error(untrained)


def test_topographic_configuration_passes_sklearn_checks(data):
    est = GroupSparseAutoencoder(topography=(2, 3), pool_size=2, alpha=0.1, max_iter=2, batch_size=16,
                                 inference_max_iter=20, random_state=0, device="cpu")
    name = type(est).__name__
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        # (the checks that set n_components=1 do not apply: the map fixes n_components)
        for check in (
            check_estimators_pickle,
            check_fit_idempotent,
            check_estimators_dtypes,
            check_transformer_general,
            check_transformers_unfitted,
        ):
            check(name, clone(est))


def test_pickle_keeps_pools_and_transform(data):
    model = _fit(data, topography=(3, 4), transform_output="pooled", max_iter=1)
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.transform(data[:20]), model.transform(data[:20]))


def test_inconsistent_structure_is_rejected(data):
    with pytest.raises(ValueError, match="does not match topography"):
        _fit(data, n_components=10, topography=(3, 4))
    with pytest.raises(ValueError, match="rows, cols"):
        _fit(data, topography=(3, 4, 1))
    with pytest.raises(ValueError, match="pool_size"):
        _fit(data, topography=(2, 2), pool_size=3)
