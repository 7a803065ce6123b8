"""LISTA and LCoD estimators: they beat FISTA(10) after training, learn a dictionary when none is
given, train without a teacher, pickle, clone, and work inside a grid-searched pipeline."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from estimators import LISTA, DictionaryLearning, LCoD
from sparsecode.models.lista import LR_DECAY
from sparsecode.solvers import fista, ista, lipschitz_constant


def _data(n=2500, m=24, p=16, seed=0):
    """Signals made of a few atoms of a unit-norm dictionary, plus noise."""
    rng = np.random.RandomState(seed)
    D = rng.randn(m, p)
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    codes = rng.randn(n, m) * (rng.rand(n, m) < 0.15)
    X = codes @ D + 0.05 * rng.randn(n, p)
    return X.astype(np.float32), D.astype(np.float32)


def _exact(X, D, alpha):
    return fista(
        torch.from_numpy(X), torch.from_numpy(D), alpha, tol=1e-7, max_iter=5000
    ).code.numpy()


def _rel_error(Z, Zs):
    return float(((Z - Zs) ** 2).sum() / (Zs**2).sum())


ALPHA = 0.1


@pytest.fixture(scope="module")
def problem():
    X, D = _data()
    return X[:2000], X[2000:], D, _exact(X[2000:], D, ALPHA)


@pytest.mark.parametrize("Est, n_layers", [(LISTA, 1), (LCoD, 12)])
def test_trained_encoder_beats_fista_10(problem, Est, n_layers):
    Xtr, Xte, D, Zte = problem
    enc = Est(dictionary=D, alpha=ALPHA, n_layers=n_layers, max_iter=15, tol=0, batch_size=32, learning_rate=3e-3,
              random_state=0, device="cpu").fit(Xtr)
    Xt, Dt = torch.from_numpy(Xte), torch.from_numpy(D)
    fista10 = fista(Xt, Dt, ALPHA, max_iter=10, tol=0, restart=False).code.numpy()
    assert _rel_error(enc.transform(Xte), Zte) < _rel_error(fista10, Zte)
    assert enc.transform(Xte).dtype == np.float32
    assert enc.n_iter_ == len(enc.loss_curve_) and enc.loss_curve_[-1] < enc.loss_curve_[0]


@pytest.mark.parametrize("Est", [LISTA, LCoD])
def test_default_rate_decays_with_the_samples_seen(problem, Est):
    """Adam at 3e-3, divided by 1 + LR_DECAY * (samples seen before the step) at every step."""
    Xtr, _, D, _ = problem
    enc = Est(dictionary=D, alpha=ALPHA, n_layers=1, max_iter=2, tol=0, random_state=0,
              device="cpu").fit(Xtr)
    state = enc._train_state
    assert enc.learning_rate_ == 3e-3 and state.n_samples_seen == 2 * len(Xtr)
    last = 3e-3 / (1 + LR_DECAY * (2 * len(Xtr) - len(Xtr) % 256))
    assert state.optimizer.param_groups[0]["lr"] == pytest.approx(last)


def test_energy_loss_improves_the_score_without_a_teacher(problem):
    Xtr, Xte, D, _ = problem
    enc = LISTA(
        dictionary=D,
        alpha=ALPHA,
        n_layers=2,
        loss="energy",
        max_iter=10, tol=0,
        random_state=0,
        device="cpu",
    ).fit(Xtr)
    Xt, Dt = torch.from_numpy(Xte), torch.from_numpy(D)
    Z3 = ista(Xt, Dt, ALPHA, max_iter=3, tol=0, L=lipschitz_constant(Dt)).code.numpy()
    energy_ista = np.mean(0.5 * ((Xte - Z3 @ D) ** 2).sum(1) + ALPHA * np.abs(Z3).sum(1))
    assert enc.score(Xte) > -energy_ista


@pytest.mark.parametrize(
    "options",
    [
        dict(tied=False),
        dict(parametrization="coupled"),
        dict(parametrization="step", tied=False),
        dict(inhibition_fraction=0.3),
    ],
)
def test_lista_variants_fit_and_improve(problem, options):
    Xtr, Xte, D, Zte = problem
    enc = LISTA(
        dictionary=D, alpha=ALPHA, n_layers=2, max_iter=3, tol=0, random_state=0, device="cpu", **options
    )
    init = clone(enc).set_params(max_iter=0).fit(Xtr)
    enc.fit(Xtr)
    assert _rel_error(enc.transform(Xte), Zte) < _rel_error(init.transform(Xte), Zte)


def test_dictionary_none_learns_one_first():
    X, _ = _data(n=300)
    enc = LISTA(n_components=10, alpha=ALPHA, n_layers=1, max_iter=2, tol=0, random_state=0, device="cpu")
    enc.fit(X)
    assert enc.components_.shape == (10, 16)
    assert np.all(np.linalg.norm(enc.components_, axis=1) <= 1 + 1e-5)
    learner = DictionaryLearning(
        n_components=6, alpha=ALPHA, max_iter=2, tol=0, random_state=0, device="cpu"
    )
    enc2 = LCoD(
        dictionary=learner, alpha=ALPHA, n_layers=3, max_iter=2, tol=0, random_state=0, device="cpu"
    ).fit(X)
    assert enc2.transform(X).shape == (300, 6)
    assert not hasattr(learner, "components_")  # the given estimator is cloned, not fitted


def test_float64_inverse_transform_and_errors(problem):
    Xtr, _, D, _ = problem
    X64 = Xtr[:200].astype(np.float64)
    enc = LCoD(
        dictionary=D.astype(np.float64),
        alpha=ALPHA,
        n_layers=4,
        max_iter=2, tol=0,
        random_state=0,
        device="cpu",
    ).fit(X64)
    Z = enc.transform(X64)
    assert Z.dtype == np.float64
    np.testing.assert_allclose(enc.inverse_transform(Z), Z @ D.astype(np.float64), rtol=1e-6)
    assert list(enc.get_feature_names_out()[:2]) == ["lcod0", "lcod1"]
    with pytest.raises(ValueError, match="features per atom"):
        LISTA(dictionary=D[:, :5], device="cpu").fit(Xtr)
    with pytest.raises(ValueError, match="components"):
        enc.inverse_transform(Z[:, :3])


def test_pickle_and_clone_roundtrip(problem):
    Xtr, Xte, D, _ = problem
    enc = LISTA(
        dictionary=D, alpha=ALPHA, n_layers=2, max_iter=2, tol=0, random_state=0, device="cpu"
    ).fit(Xtr)
    again = pickle.loads(pickle.dumps(enc))
    np.testing.assert_array_equal(again.transform(Xte), enc.transform(Xte))
    fresh = clone(enc)
    assert not hasattr(fresh, "components_") and fresh.get_params()["n_layers"] == 2
    again.set_params(warm_start=True, max_iter=1).fit(Xtr)  # continues the unpickled training
    assert again.n_iter_ == 3


def test_pipeline_in_grid_search():
    rng = np.random.RandomState(0)
    X, D = _data(n=240, seed=1)
    y = (X @ rng.randn(16) > 0).astype(int)
    pipe = Pipeline(
        [
            ("code", LISTA(dictionary=D, alpha=ALPHA, max_iter=2, tol=0, random_state=0, device="cpu")),
            ("clf", LogisticRegression(max_iter=200)),
        ]
    )
    search = GridSearchCV(pipe, {"code__n_layers": [0, 2]}, cv=2, n_jobs=2).fit(X, y)
    assert search.best_params_["code__n_layers"] in (0, 2)
    assert search.score(X, y) > 0.6
