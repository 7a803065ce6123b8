"""Whitening (ZCA, PCA) and per-patch contrast normalisation."""

import pickle

import numpy as np
import pytest
from sklearn.pipeline import make_pipeline

from estimators import ContrastNormalization, Whitening


@pytest.fixture(scope="module")
def X():
    rng = np.random.RandomState(0)
    mixing = rng.randn(6, 6) * np.array([3.0, 2.0, 1.0, 0.5, 0.2, 0.1])[:, None]
    return rng.randn(2000, 6) @ mixing + 5.0


def _cov(Y):
    Yc = Y - Y.mean(0)
    return Yc.T @ Yc / Y.shape[0]


def test_zca_decorrelates_to_unit_variance_and_is_symmetric(X):
    zca = Whitening("zca", regularization=0.0).fit(X)
    np.testing.assert_allclose(_cov(zca.transform(X)), np.eye(6), atol=1e-8)
    np.testing.assert_allclose(zca.components_, zca.components_.T, atol=1e-10)
    np.testing.assert_allclose(zca.inverse_transform(zca.transform(X)), X, atol=1e-8)


def test_zca_is_the_whitening_closest_to_the_input(X):
    """Among whitenings Q W (Q orthogonal), ZCA minimises the distance to the centred input."""
    zca = Whitening("zca", regularization=0.0).fit(X)
    Xc, Y = X - X.mean(0), zca.transform(X)
    Q, _ = np.linalg.qr(np.random.RandomState(1).randn(6, 6))
    assert np.linalg.norm(Y - Xc) < np.linalg.norm(Y @ Q.T - Xc)


def test_pca_keeps_the_leading_directions(X):
    pca = Whitening("pca", n_components=3, regularization=0.0).fit(X)
    Y = pca.transform(X)
    assert Y.shape == (2000, 3) and pca.get_feature_names_out().shape == (3,)
    np.testing.assert_allclose(_cov(Y), np.eye(3), atol=1e-8)
    eig = np.sort(np.linalg.eigvalsh(_cov(X)))[::-1]
    np.testing.assert_allclose(pca.explained_variance_, eig[:3], rtol=1e-8)


def test_regularization_shrinks_the_whitened_variances(X):
    w = Whitening("pca", regularization=0.5).fit(X)
    eig = w.explained_variance_
    assert w.epsilon_ == pytest.approx(0.5 * eig.mean())
    np.testing.assert_allclose(np.diag(_cov(w.transform(X))), eig / (eig + w.epsilon_), rtol=1e-8)


def test_float32_is_kept_and_pickle_roundtrips(X):
    X32 = X.astype(np.float32)
    w = Whitening().fit(X32)
    assert w.transform(X32).dtype == np.float32
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(w)).transform(X32), w.transform(X32))


def test_too_many_components_are_rejected(X):
    with pytest.raises(ValueError, match="n_components"):
        Whitening("pca", n_components=7).fit(X)


def test_contrast_normalization_centres_and_scales_each_row(X):
    Y = ContrastNormalization(regularization=0.0).fit_transform(X)
    np.testing.assert_allclose(Y.mean(1), 0.0, atol=1e-12)
    np.testing.assert_allclose(Y.std(1), 1.0, rtol=1e-10)
    flat = ContrastNormalization().fit_transform(np.full((2, 4), 3.0))
    np.testing.assert_array_equal(flat, 0.0)
    reg = ContrastNormalization(regularization=1.0).fit_transform(X)
    var = X.var(1)
    np.testing.assert_allclose(reg.var(1), var / (var + 1.0), rtol=1e-10)


def test_contrast_normalization_options(X):
    only_mean = ContrastNormalization(with_std=False).fit_transform(X)
    np.testing.assert_allclose(only_mean, X - X.mean(1, keepdims=True))
    only_std = ContrastNormalization(with_mean=False, regularization=0.0).fit_transform(X)
    np.testing.assert_allclose(only_std, X / X.std(1, keepdims=True))


def test_pipeline_of_both(X):
    Y = make_pipeline(ContrastNormalization(), Whitening(regularization=1e-3)).fit_transform(X)
    assert Y.shape == X.shape and np.all(np.isfinite(Y))
