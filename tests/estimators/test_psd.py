"""PredictiveSparseDecomposition on image patches: energy, prediction error, API and persistence."""

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_sample_image
from sklearn.feature_extraction.image import extract_patches_2d
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline

from estimators import ContrastNormalization, PredictiveSparseDecomposition
from tests.estimators.conftest import fit_quietly


@pytest.fixture(scope="module")
def patches():
    """Contrast-normalised 6x6 patches of the china sample image: train and held-out."""
    img = load_sample_image("china.jpg").mean(axis=2) / 255.0
    X = extract_patches_2d(img, (6, 6), max_patches=2500, random_state=0).reshape(2500, -1)
    X = ContrastNormalization(regularization=0.01).fit_transform(X).astype(np.float32)
    return X[:2000], X[2000:]


_OPTIONS = dict(n_components=24, alpha=0.3, max_iter=6, batch_size=50, learning_rate=1e-2, random_state=0,
                device="cpu")


def _fit(X, **params):
    return fit_quietly(PredictiveSparseDecomposition(**{**_OPTIONS, **params}), X)


@pytest.fixture(scope="module")
def fitted(patches):
    return _fit(patches[0])


def _relative_prediction_error(model, X):
    prediction, code = model.predict_codes(X)
    return float(((prediction - code) ** 2).sum() / (code**2).sum())


def test_energy_decreases_and_prediction_error_falls_well_below_one(patches, fitted):
    Xtr, Xte = patches
    untrained = _fit(Xtr, max_iter=0)
    assert np.all(np.diff(fitted.loss_curve_) < 0)
    assert fitted.score(Xte) > untrained.score(Xte)  # minus the held-out energy
    error = _relative_prediction_error(fitted, Xte)
    assert error < 0.05 and error < 0.25 * _relative_prediction_error(untrained, Xte)


def test_atoms_are_unit_norm_and_codes_sparse(patches, fitted):
    np.testing.assert_allclose(np.linalg.norm(fitted.components_, axis=1), 1.0, rtol=1e-5)
    _, code = fitted.predict_codes(patches[1])
    assert 0.02 < np.mean(code != 0) < 0.6


def test_inference_transform_lowers_the_energy_of_the_encoder_codes(patches, fitted):
    Xte = patches[1]
    fast = fitted.transform(Xte)
    exact = pickle.loads(pickle.dumps(fitted)).set_params(transform_algorithm="inference")
    Z = exact.transform(Xte)
    alpha, beta = fitted.alpha, fitted.beta

    def energy(C):
        R = Xte - C @ fitted.components_
        return 0.5 * (R**2).sum(1) + alpha * np.abs(C).sum(1) + beta * ((C - fast) ** 2).sum(1)

    assert np.all(energy(Z) <= energy(fast) + 1e-4)
    np.testing.assert_allclose(fitted.inverse_transform(Z), Z @ fitted.components_, rtol=1e-6)


@pytest.mark.parametrize("encoder", ["shrink", "linear"])
def test_other_encoders_learn_to_predict(patches, encoder):
    model = _fit(patches[0], encoder=encoder, max_iter=4)
    assert _relative_prediction_error(model, patches[1]) < 0.3


def test_float64_is_kept(patches):
    X = patches[0][:200].astype(np.float64)
    model = _fit(X, max_iter=1, n_components=8)
    assert model.transform(X).dtype == np.float64 and model.components_.dtype == np.float64


def test_warm_start_continues_training(patches):
    model = _fit(patches[0][:500], max_iter=2, warm_start=True)
    fit_quietly(model, patches[0][:500])
    assert model.n_iter_ == 4 and len(model.loss_curve_) == 4


def test_pickle_and_clone(patches, fitted):
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(restored.transform(patches[1]), fitted.transform(patches[1]))
    assert clone(fitted).get_params() == fitted.get_params()
    assert not hasattr(clone(fitted), "components_")


def test_pipeline_in_grid_search():
    rng = np.random.RandomState(0)
    X = rng.randn(120, 6).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    pipe = make_pipeline(
        PredictiveSparseDecomposition(
            n_components=6, max_iter=2, batch_size=32, random_state=0, device="cpu"
        ),
        LogisticRegression(),
    )
    search = fit_quietly(
        GridSearchCV(pipe, {"predictivesparsedecomposition__alpha": [0.1, 0.5]}, cv=2, n_jobs=2), X, y
    )
    assert search.best_score_ > 0.6


def test_bad_input_is_rejected(fitted):
    with pytest.raises(ValueError, match="encoder"):
        PredictiveSparseDecomposition(encoder="relu").fit(np.ones((4, 3)))
    with pytest.raises(ValueError, match="expects 24"):
        fitted.inverse_transform(np.ones((2, 3)))
    with pytest.raises(ValueError, match="features"):
        fitted.transform(np.ones((2, 5)))
