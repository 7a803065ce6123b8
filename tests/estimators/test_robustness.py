"""Defaults that train on any reasonable scaling of the data, and fits that fail loudly and lose nothing.

Every trainable estimator runs with its defaults (fewer passes and units, to stay fast) on digits
under five preprocessings; its held-out score must be within ``MARGIN`` of the best of the five. The
score is scale-free: DrSAE's accuracy, and for the others the accuracy of a logistic regression on
their features. Whitening (estimated on 400 samples, 41 directions of equal weight) costs every
estimator some accuracy, hence the margin. DrSAE gets a wider one: after its four short passes on the
author schedule, whitened rows lag the others by about 0.35, a matter of geometry rather than scale
(raw, [0, 1] and unit-norm rows give it the same network). Then one test per
reproducer of issue 16 (items 8, 13 and 14 live with the solvers' tests).
"""

import warnings

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, Normalizer, StandardScaler
from sklearn.utils._param_validation import InvalidParameterError

import estimators.psd
from estimators import (
    LISTA,
    ContrastNormalization,
    ConvSparseAutoencoder,
    ConvSparseCoder,
    DictionaryLearning,
    DrSAE,
    GroupSparseAutoencoder,
    LCoD,
    PredictiveSparseDecomposition,
    SparseCoder,
    Whitening,
)
from sparsecode.solvers import fista
from sparsecode.solvers.encode import sparse_encode
from sparsecode.training import DivergenceError, fit_module

MARGIN = {"DrSAE": 0.4}  # held-out score within this of the best preprocessing; 0.15 for the others

PREPROCESSINGS = {
    "raw": lambda: FunctionTransformer(),
    "[0, 1]": lambda: FunctionTransformer(lambda a: a / 16.0),
    "standardised": StandardScaler,
    "unit-norm rows": Normalizer,
    "PCA-whitened": lambda: PCA(n_components=0.99, whiten=True, random_state=0),  # 41 directions
}

# the defaults, with fewer units and passes (the whole module runs in about a minute on 2 cores)
DEFAULTS = {
    "LISTA": lambda: LISTA(n_components=32, max_iter=5),
    "LCoD": lambda: LCoD(n_components=32, max_iter=5),
    "PredictiveSparseDecomposition": lambda: PredictiveSparseDecomposition(32, max_iter=5),
    "GroupSparseAutoencoder": lambda: GroupSparseAutoencoder(32, max_iter=5),
    "DrSAE": lambda: DrSAE(64, pretrain_iter=1, max_iter=3),
    "ConvSparseAutoencoder": lambda: ConvSparseAutoencoder(max_iter=2),
}


@pytest.fixture(scope="module")
def digits_split():
    X, y = load_digits(return_X_y=True)
    rows = np.random.RandomState(0).permutation(len(X))
    return X[rows[:400]], y[rows[:400]], X[rows[400:700]], y[rows[400:700]]


def held_out_score(name: str, preprocessing: str, digits_split) -> float:
    """The held-out score of estimator ``name`` with its defaults on digits under ``preprocessing``."""
    Xtr, ytr, Xte, yte = digits_split
    prep = PREPROCESSINGS[preprocessing]().fit(Xtr)
    Xtr, Xte = prep.transform(Xtr), prep.transform(Xte)
    est = DEFAULTS[name]().set_params(random_state=0, device="cpu")
    if name == "ConvSparseAutoencoder" and preprocessing != "PCA-whitened":
        est.set_params(image_shape=(8, 8))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(Xtr, ytr) if name == "DrSAE" else est.fit(Xtr)
    if name == "DrSAE":
        return est.score(Xte, yte)
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=200))
    return probe.fit(est.transform(Xtr), ytr).score(est.transform(Xte), yte)


@pytest.mark.parametrize("name", list(DEFAULTS))
def test_defaults_train_on_every_scaling(name, digits_split):
    scores = {p: held_out_score(name, p, digits_split) for p in PREPROCESSINGS}
    best = max(scores.values())
    assert best > (0.5 if name == "DrSAE" else 0.8), scores
    assert all(s >= best - MARGIN.get(name, 0.15) for s in scores.values()), scores


@pytest.mark.parametrize("preprocessing", ["raw", "unit-norm rows", "standardised"])
@pytest.mark.parametrize("cls", [PredictiveSparseDecomposition, GroupSparseAutoencoder])
def test_the_encoder_reconstructs_data_far_from_zero_mean(cls, preprocessing, digits_split):
    """The encoders see inputs centred on the training mean: on raw and unit-norm digits, trained on the raw
    inputs, their codes reconstructed the data worse than its mean does (relative error 0.9-1.0 here, 1.8
    with the defaults on all of digits); now as well as on standardised digits, within a margin."""
    X = PREPROCESSINGS[preprocessing]().fit_transform(digits_split[0])
    model = _quiet(cls(32, batch_size=32, max_iter=30, random_state=0, device="cpu"), X)
    error = np.sum((X - model.inverse_transform(model.transform(X))) ** 2) / np.sum((X - X.mean(0)) ** 2)
    assert error < 0.6


@pytest.mark.parametrize("cls", [PredictiveSparseDecomposition, GroupSparseAutoencoder])
def test_the_defaults_train_an_encoder_on_a_few_hundred_samples(cls, digits_split):
    """200 digits in [0, 1] are one step a pass: started with W = D (a unit step), the encoder's codes rebuilt
    them ten times worse than their mean after the 100 passes; started as ISTA's first step, W = D / L, they
    rebuild them better than a third of their variance."""
    X = digits_split[0][:200] / 16.0
    model = _quiet(cls(random_state=0, device="cpu"), X)
    error = np.sum((X - model.inverse_transform(model.transform(X))) ** 2) / np.sum((X - X.mean(0)) ** 2)
    assert error < 0.35


# -- the reproducers of issue 16 (setup: X 40x8, D 12x8 with unit-norm rows) ---------------------
@pytest.fixture
def X():
    return np.random.RandomState(0).randn(40, 8)


@pytest.fixture
def D():
    D = np.random.RandomState(1).randn(12, 8)
    return D / np.linalg.norm(D, axis=1, keepdims=True)


def _quiet(est, *args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(*args)


def _plain(value):
    """``value`` with its torch state as numpy arrays and plain containers (for ``assert_equal``)."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy().copy()
    if isinstance(value, (torch.nn.Module, torch.optim.Optimizer)):
        return _plain(value.state_dict())
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.random.RandomState):
        return _plain(value.get_state())
    if type(value).__module__.startswith("sparsecode"):  # training state, pools
        return _plain(vars(value))
    return value


def _state(est) -> dict:
    """Every attribute of ``est`` but its parameters, as plain values, to compare before and after a call."""
    params = est.get_params(deep=False)
    return _plain({k: v for k, v in vars(est).items() if k not in params})


TRAINED = [
    lambda: PredictiveSparseDecomposition(12),
    lambda: GroupSparseAutoencoder(12),
    lambda: ConvSparseAutoencoder(3, kernel_size=3),
    lambda: LISTA(n_components=6),
    lambda: LCoD(n_components=6, n_layers=3),
]


@pytest.mark.parametrize("make", TRAINED)
def test_item1_growth_without_inf_is_divergence(make, X):
    est = make().set_params(optimizer="sgd", learning_rate=1e12, max_iter=5, random_state=0, device="cpu")
    with pytest.raises(DivergenceError, match="learning_rate") as info:
        est.fit(X)
    assert info.value.cause == "learning_rate"
    assert not hasattr(est, "components_")  # an unfitted estimator stays unfitted


@pytest.mark.parametrize("cls", [LISTA, LCoD])
def test_item2_failed_warm_refit_keeps_the_sane_model(cls, X, D):
    est = _quiet(cls(D, alpha=0.1, warm_start=True, optimizer="sgd", learning_rate=1e-2, max_iter=3,
                     random_state=0, device="cpu"), X)
    before, codes = _state(est), est.transform(X)
    with pytest.raises(DivergenceError):
        est.fit(X * 1e3)
    np.testing.assert_equal(_state(est), before)
    np.testing.assert_array_equal(est.transform(X), codes)


def test_item2_engine_restores_the_last_sane_parameters():
    X = torch.randn(64, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    lin = torch.nn.Linear(3, 1).double()
    start = [p.detach().clone() for p in lin.parameters()]
    loss = lambda m, x: 0.5 * (m(x) ** 2).mean()  # noqa: E731
    with pytest.raises(DivergenceError, match="1e\\+06 times"):
        fit_module(lin, loss, (X,), optimizer="sgd", learning_rate=30.0, max_iter=50, batch_size=None)
    grown = [p.detach() for p in lin.parameters()]
    limit = 1e6 * float(loss(torch.nn.Linear(3, 1).double().requires_grad_(False), X)) + 1
    assert all(torch.isfinite(p).all() for p in grown)
    with torch.no_grad():
        assert float(loss(lin, X)) < limit * 1e6 and any((a != b).any() for a, b in zip(grown, start))


@pytest.mark.parametrize("make", TRAINED + [lambda: DrSAE(16, n_layers=3, pretrain_iter=1, batch_size=20)])
def test_item3_failed_refit_leaves_the_fitted_model(make, X):
    y = np.arange(40) % 2
    est = make().set_params(max_iter=2, random_state=0, device="cpu")
    _quiet(est, X, y)
    before, features = _state(est), est.transform(X)
    with pytest.raises(DivergenceError):
        est.set_params(optimizer="sgd", learning_rate=1e12, max_iter=5).fit(X, y)
    np.testing.assert_equal(_state(est), before)
    np.testing.assert_array_equal(est.transform(X), features)


def test_item3_failed_partial_fit_leaves_the_model(X):
    dl = DictionaryLearning(6, alpha=0.1, random_state=0).partial_fit(X)
    before = _state(dl)
    with pytest.raises(ValueError):
        dl.partial_fit(X[:, :5])
    with pytest.raises(ValueError, match="float64"):
        dl.partial_fit((X * 1e30).astype(np.float32))
    np.testing.assert_equal(_state(dl), before)


def _interrupt_after(fn, calls: int):
    """``fn`` that raises KeyboardInterrupt on its ``calls``-th call (a Ctrl-C in the middle of a fit)."""
    count = [0]

    def wrapped(*args, **kwargs):
        count[0] += 1
        if count[0] == calls:
            raise KeyboardInterrupt
        return fn(*args, **kwargs)

    return wrapped


def test_item4_ctrl_c_in_drsae_pretraining_skips_the_supervised_stage(X, monkeypatch):
    import estimators.drsae

    monkeypatch.setattr(estimators.drsae, "unsupervised_loss",
                        _interrupt_after(estimators.drsae.unsupervised_loss, 3))
    clf = DrSAE(16, n_layers=3, pretrain_iter=5, max_iter=5, batch_size=10, random_state=0, device="cpu")
    clf.fit(X, np.arange(40) % 2)
    assert clf.interrupted_ and clf.loss_curve_ == [] and clf.n_iter_ == 0
    assert np.isfinite(clf.predict_proba(X)).all()


def test_item4_ctrl_c_in_the_dictionary_stage_skips_training(X):
    def ctrl_c(info):
        raise KeyboardInterrupt

    enc = LISTA(DictionaryLearning(6, alpha=0.1, max_iter=5, callback=ctrl_c, random_state=0), alpha=0.1,
                random_state=0, device="cpu").fit(X)
    assert enc.interrupted_ and enc.n_iter_ == 0 and enc.loss_curve_ == []
    assert enc.transform(X).shape == (40, 6)


def test_item4_ctrl_c_in_training_keeps_the_state(X, monkeypatch):
    monkeypatch.setattr(estimators.psd, "psd_loss", _interrupt_after(estimators.psd.psd_loss, 4))
    psd = PredictiveSparseDecomposition(6, max_iter=10, batch_size=20, random_state=0, device="cpu").fit(X)
    assert psd.interrupted_ and psd.n_iter_ == 1
    assert np.isfinite(psd.transform(X)).all()


@pytest.mark.parametrize("fit", [
    lambda X: DictionaryLearning(6, alpha=0.1, max_iter=3).fit((X * 1e30).astype(np.float32)),
    lambda X: DictionaryLearning(6, alpha=0.1, max_iter=3).fit((X * 3e18).astype(np.float32)),
    lambda X: ContrastNormalization().fit((X * 1e20).astype(np.float32)),
    lambda X: ContrastNormalization().transform((X * 1e20).astype(np.float32)),
    lambda X: Whitening().fit((X * 1e-30).astype(np.float32)),
    lambda X: ConvSparseAutoencoder(3, kernel_size=3).fit((X * 1e30).astype(np.float32)),
    lambda X: PredictiveSparseDecomposition(6).fit((X * 1e30).astype(np.float32)),
    lambda X: LISTA(n_components=6).fit((X * 1e30).astype(np.float32)),
])
def test_item5_float32_overflow_is_a_clear_error(fit, X):
    with pytest.raises(ValueError, match="float64 or rescale"):
        fit(X)


def test_item5_engine_blames_the_data_for_an_overflow():
    X = torch.full((8, 2), 1e30)
    lin = torch.nn.Linear(2, 1)
    with pytest.raises(DivergenceError, match="overflows torch.float32.*float64") as info:
        fit_module(lin, lambda m, x: (m(x) ** 2).mean(), (X,), optimizer="sgd", learning_rate=1e-3, max_iter=2)
    assert info.value.cause == "data"


def test_item6_later_fits_convert_to_the_fitted_dtype(X, D):
    dl = DictionaryLearning(6, alpha=0.1, random_state=0).partial_fit(X.astype(np.float32))
    dl.partial_fit(X)
    assert dl.components_.dtype == np.float32
    for cls in (LISTA, LCoD):
        enc = _quiet(cls(D, alpha=0.1, warm_start=True, max_iter=2, random_state=0, device="cpu"), X)
        _quiet(enc, X.astype(np.float32))
        assert enc.components_.dtype == np.float64 and enc.n_iter_ == 4
    y = np.arange(40) % 2
    clf = _quiet(DrSAE(16, n_layers=3, pretrain_iter=1, max_iter=1, warm_start=True, random_state=0,
                       device="cpu"), X, y)
    _quiet(clf, X.astype(np.float32), y)
    assert clf.n_iter_ == 2 and clf.coef_.dtype == np.float64


def test_item7_warm_start_rebuilds_the_optimizer_on_set_params(X, D):
    enc = _quiet(LISTA(D, alpha=0.1, warm_start=True, max_iter=2, random_state=0, device="cpu"), X)
    assert isinstance(enc._train_state.optimizer, torch.optim.Adam)
    _quiet(enc.set_params(optimizer="sgd", learning_rate=1e-3), X)
    optimizer = enc._train_state.optimizer
    assert isinstance(optimizer, torch.optim.SGD) and enc.learning_rate_ == 1e-3 and enc.n_iter_ == 4
    _quiet(enc, X)  # unchanged settings continue the same optimizer
    assert enc._train_state.optimizer is optimizer


def test_item9_drsae_refuses_lbfgs_at_validation(X):
    with pytest.raises(InvalidParameterError, match="optimizer"):
        DrSAE(optimizer="lbfgs").fit(X, np.arange(40) % 2)


def test_item10_engine_refuses_a_negative_alpha(X, D):
    Xt, Dt = torch.as_tensor(X), torch.as_tensor(D)
    with pytest.raises(ValueError, match="alpha"):
        sparse_encode(Xt, Dt, alpha=-1.0)
    with pytest.raises(ValueError, match="alpha"):
        fista(Xt, Dt, -1.0)


@pytest.mark.parametrize("make", [
    lambda X: Whitening().fit(X),
    lambda X: _quiet(PredictiveSparseDecomposition(6, max_iter=1, device="cpu"), X),
    lambda X: _quiet(GroupSparseAutoencoder(6, max_iter=1, device="cpu"), X),
])
def test_item11_one_validation_path_for_inverse_transform(make, X):
    est = make(X)
    width = est.transform(X).shape[1]
    bad = np.ones((2, width))
    bad[0, 0] = np.nan
    for codes, match in [(bad, "NaN"), (np.ones(width), "2D"), (np.ones((2, width + 1)), "columns")]:
        with pytest.raises(ValueError, match=match):
            est.inverse_transform(codes)


def test_item12_unfitted_conv_coder_and_bad_group_indices(X, D):
    F = np.random.RandomState(0).randn(3, 3, 3)
    with pytest.raises(NotFittedError):
        ConvSparseCoder(F, image_shape=(6, 6)).inverse_transform(np.zeros((2, 48)))
    for groups in ([[0, 1, 99]], [[0, 1, -1], list(range(2, 12))], [[0.5], list(range(12))]):
        with pytest.raises(ValueError, match=r"indices in \[0, 12\)"):
            SparseCoder(D, groups=groups).fit(X).transform(X)
    with pytest.raises(ValueError, match="exactly once"):
        SparseCoder(D, groups=[list(range(12)), [2]]).fit(X).transform(X)


def test_drsae_author_schedule_is_reachable(X):
    """``normalize_input=False`` feeds X as given; on unit-norm rows both settings are the same network."""
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    y = np.arange(40) % 2
    a = _quiet(DrSAE(16, n_layers=3, pretrain_iter=1, max_iter=2, random_state=0, device="cpu"), Xn, y)
    b = _quiet(clone(a).set_params(normalize_input=False), Xn, y)
    np.testing.assert_allclose(a.coef_, b.coef_, atol=1e-10)
