"""TrainedEstimator on a tiny estimator: sklearn attributes, warnings, divergence, warm start, docs."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import RegressorMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.validation import check_is_fitted, check_random_state, validate_data

from estimators import (
    LISTA,
    ConvSparseAutoencoder,
    DictionaryLearning,
    DrSAE,
    GroupSparseAutoencoder,
    LCoD,
    PredictiveSparseDecomposition,
)
from estimators._training import TrainedEstimator
from sparsecode.training import DivergenceError
from sparsecode.training.checkpoint import Checkpoint


class TinyRegressor(RegressorMixin, TrainedEstimator):
    """Least squares through the shared loop (test double for the trainable estimators).

    Parameters
    ----------
{training}"""

    def __init__(self, optimizer="adam", learning_rate=0.05, max_iter=50, batch_size=32,
                 tol=1e-4, n_iter_no_change=10, early_stopping=False, validation_fraction=0.1,
                 warm_start=False, verbose=0, random_state=None, device="cpu", distributed=None,
                 checkpoint=None):
        super().__init__(optimizer, learning_rate, max_iter, batch_size, tol, n_iter_no_change,
                         early_stopping, validation_fraction, warm_start, verbose, random_state, device,
                         distributed, checkpoint)

    @staticmethod
    def _loss(module, x, t):
        return 0.5 * ((module(x).squeeze(1) - t) ** 2).mean()

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        self._fit(X, y)
        return self

    def _fit(self, X, y):
        X, y = validate_data(self, X, y, dtype=np.float64)
        seed = check_random_state(self.random_state).randint(2**31 - 1)
        if not (self.warm_start and hasattr(self, "_module")):
            torch.manual_seed(seed)
            self._module = torch.nn.Linear(X.shape[1], 1).double()
        self._train(self._module, self._loss, (torch.from_numpy(X), torch.from_numpy(y)),
                    generator=torch.Generator().manual_seed(seed))

    def predict(self, X):
        check_is_fitted(self, "n_iter_")
        X = validate_data(self, X, dtype=np.float64, reset=False)
        with torch.no_grad():
            return self._module(torch.from_numpy(X)).squeeze(1).numpy()


@pytest.fixture
def data():
    rng = np.random.RandomState(0)
    X = rng.randn(120, 3)
    return X, X @ np.array([1.0, -2.0, 0.5]) + 0.3


def test_fitted_attributes_and_auto_rate(data):
    X, y = data
    est = TinyRegressor(optimizer="sgd", learning_rate="auto", max_iter=300, batch_size=None,
                        tol=1e-10, random_state=0).fit(X, y)
    lam = np.linalg.eigvalsh(np.c_[X, np.ones(len(X))].T @ np.c_[X, np.ones(len(X))] / len(X))[-1]
    assert est.learning_rate_ == pytest.approx(1.0 / lam, rel=0.01)
    assert est.n_iter_ == len(est.loss_curve_) < 300
    assert est.best_loss_ == pytest.approx(min(est.loss_curve_))
    assert not hasattr(est, "validation_scores_")
    assert est.score(X, y) > 0.999


def test_convergence_warning_when_max_iter_runs_out(data):
    with pytest.warns(ConvergenceWarning, match="Increase max_iter"):
        TinyRegressor(max_iter=2, random_state=0).fit(*data)


def test_max_iter_zero_sets_attributes_without_warning(data, recwarn):
    est = TinyRegressor(max_iter=0, random_state=0).fit(*data)
    assert est.n_iter_ == 0 and est.loss_curve_ == []
    assert not [w for w in recwarn if issubclass(w.category, ConvergenceWarning)]


def test_divergence_names_the_rate_and_leaves_the_estimator_usable(data):
    X, y = data
    est = TinyRegressor(optimizer="sgd", learning_rate=50.0, max_iter=500, batch_size=None,
                        tol=0.0, n_iter_no_change=500, random_state=0)
    with pytest.raises(DivergenceError, match=r"learning_rate=50.*power method"):
        est.fit(X, y)
    assert all(torch.isfinite(p).all() for p in est._module.parameters())
    est.set_params(learning_rate="auto", tol=1e-8, n_iter_no_change=10).fit(X, y)
    assert np.isfinite(est.predict(X)).all() and est.score(X, y) > 0.99


def test_warm_start_continues_and_survives_pickling(data):
    X, y = data
    est = TinyRegressor(max_iter=4, tol=1e-12, warm_start=True, random_state=0)
    with pytest.warns(ConvergenceWarning):
        est.fit(X, y)
    steps = est._train_state.n_steps
    est = pickle.loads(pickle.dumps(est))
    with pytest.warns(ConvergenceWarning):
        est.fit(X, y)
    assert est.n_iter_ == 8 and len(est.loss_curve_) == 8
    assert est._train_state.n_steps == 2 * steps
    cold = TinyRegressor(max_iter=4, tol=1e-12, random_state=0)
    with pytest.warns(ConvergenceWarning):
        cold.fit(X, y)
    with pytest.warns(ConvergenceWarning):
        cold.fit(X, y)
    assert cold.n_iter_ == 4


def test_early_stopping_records_validation_scores(data):
    est = TinyRegressor(early_stopping=True, max_iter=200, random_state=0).fit(*data)
    assert len(est.validation_scores_) == est.n_iter_
    assert -est.best_loss_ == pytest.approx(max(est.validation_scores_))


@pytest.mark.parametrize("params, name", [
    ({"optimizer": "adagrad"}, "optimizer"),
    ({"learning_rate": 0.0}, "learning_rate"),
    ({"learning_rate": "fast"}, "learning_rate"),
    ({"max_iter": -1}, "max_iter"),
    ({"validation_fraction": 1.0}, "validation_fraction"),
])
def test_parameter_constraints(data, params, name):
    with pytest.raises(InvalidParameterError, match=name):
        TinyRegressor(**params).fit(*data)


def test_lr_decay_passes_through_to_the_loop(data):
    X, y = data
    est = TinyRegressor(optimizer="sgd", learning_rate=0.05, max_iter=3, batch_size=40, tol=0.0,
                        random_state=0)
    module = torch.nn.Linear(3, 1).double()
    result = est._train(module, est._loss, (torch.from_numpy(X), torch.from_numpy(y)),
                        lr_decay=0.1)
    assert result.state.n_samples_seen == 3 * len(X)
    assert result.state.optimizer.param_groups[0]["lr"] == pytest.approx(
        0.05 / (1 + 0.1 * (3 * len(X) - 40)))
    assert est.learning_rate_ == 0.05


def test_docstrings_list_each_estimators_own_training_defaults():
    assert 'optimizer : {"sgd"' in TinyRegressor.__doc__
    assert "learning_rate : float or \"auto\", default=0.05\n" in TinyRegressor.__doc__
    assert "batch_size : int or None, default=32\n" in TinyRegressor.__doc__
    assert "learning_rate : float or \"auto\", default=0.003\n" in LISTA.__doc__
    drsae = DrSAE.__doc__
    assert 'optimizer : {"sgd", ' in drsae and 'default="sgd"\n' in drsae and "The paper's: plain SGD." in drsae
    assert "batch_size : int or None, default=10\n" in drsae
    assert "{training}" not in drsae and "{training}" not in LISTA.__doc__


@pytest.fixture
def crash_after_save(monkeypatch):
    """``crash_after_save(n, error)``: the n-th checkpoint write is the last one before ``error``."""
    def arm(n, error=RuntimeError):
        calls, save = [], Checkpoint.save

        def failing_save(self, *args, **kwargs):
            save(self, *args, **kwargs)
            calls.append(1)
            if len(calls) == n:
                raise error("crash")
        monkeypatch.setattr(Checkpoint, "save", failing_save)
        return lambda: monkeypatch.setattr(Checkpoint, "save", save)
    return arm


def _same_parameters(a, b):
    return all(torch.equal(p, q) for p, q in zip(a._module.parameters(), b._module.parameters()))


def test_checkpoint_resumes_a_crashed_fit_to_the_uninterrupted_result(data, tmp_path, crash_after_save):
    params = dict(optimizer="sgd", learning_rate=0.05, max_iter=3, tol=0.0, random_state=0)
    ref = TinyRegressor(**params).fit(*data)
    est = TinyRegressor(**params, checkpoint=str(tmp_path / "tiny.pt"))
    disarm = crash_after_save(2)
    with pytest.raises(RuntimeError, match="crash"):
        est.fit(*data)
    disarm()
    est.fit(*data)
    assert _same_parameters(est, ref) and est.loss_curve_ == ref.loss_curve_ and est.n_iter_ == 3
    with pytest.raises(ValueError, match=r"differs in learning_rate.*delete it"):
        est.set_params(learning_rate=0.1).fit(*data)


def test_checkpoint_resumes_drsae_in_its_supervised_stage(tmp_path, crash_after_save):
    rng = np.random.RandomState(0)
    X, y = rng.rand(60, 12), rng.randint(0, 3, 60)
    params = dict(n_components=8, n_layers=2, pretrain_iter=2, max_iter=2, tol=0, batch_size=10,
                  random_state=0, device="cpu")
    ref = DrSAE(**params).fit(X, y)
    est = DrSAE(**params, checkpoint=tmp_path / "drsae.pt")
    disarm = crash_after_save(4, KeyboardInterrupt)  # pretraining: 2 passes and its end; then 1 pass
    assert est.fit(X, y).interrupted_
    disarm()
    est.fit(X, y)
    assert _same_parameters(est, ref) and not est.interrupted_
    assert est.pretrain_loss_curve_ == ref.pretrain_loss_curve_ and est.loss_curve_ == ref.loss_curve_


def test_checkpoint_resumes_dictionary_learning(tmp_path, crash_after_save):
    X = np.random.RandomState(0).randn(90, 8)
    params = dict(n_components=6, alpha=0.2, max_iter=3, batch_size=20, tol=0, max_no_improvement=None,
                  random_state=0, device="cpu")
    ref = DictionaryLearning(**params).fit(X)
    est = DictionaryLearning(**params, checkpoint=tmp_path / "dl.pt")
    disarm = crash_after_save(2)
    with pytest.raises(RuntimeError, match="crash"):
        est.fit(X)
    disarm()
    est.fit(X)
    assert np.array_equal(est.components_, ref.components_)
    assert (est.n_iter_, est.n_steps_) == (ref.n_iter_, ref.n_steps_) == (3, 15)
    steps = []
    again = DictionaryLearning(**params, checkpoint=tmp_path / "dl.pt", callback=steps.append).fit(X)
    assert not steps and np.array_equal(again.components_, ref.components_)  # the finished fit, not retrained
    with pytest.raises(ValueError, match=r"differs in alpha"):
        DictionaryLearning(**{**params, "alpha": 0.3}, checkpoint=tmp_path / "dl.pt").fit(X)


_D = np.linalg.qr(np.random.RandomState(1).randn(16, 8))[0].T


@pytest.mark.parametrize("cls, params", [
    (LISTA, dict(dictionary=_D, alpha=0.1, n_layers=2)),
    (LCoD, dict(dictionary=_D, alpha=0.1, n_layers=2)),
    (PredictiveSparseDecomposition, dict(n_components=8)),
    (GroupSparseAutoencoder, dict(n_components=8, group_size=2)),
    (ConvSparseAutoencoder, dict(n_components=3, kernel_size=3, image_shape=(4, 4))),
], ids=lambda v: getattr(v, "__name__", ""))
def test_every_trained_estimator_continues_its_checkpoint_to_a_larger_max_iter(cls, params, tmp_path):
    X = np.random.RandomState(0).randn(48, 16)
    params = dict(params, max_iter=2, tol=0, batch_size=16, random_state=0, device="cpu")
    cls(**params, checkpoint=tmp_path / "fit.pt").fit(X)
    resumed = cls(**{**params, "max_iter": 3}, checkpoint=tmp_path / "fit.pt").fit(X)
    ref = cls(**{**params, "max_iter": 3}).fit(X)
    assert _same_parameters(resumed, ref) and resumed.loss_curve_ == ref.loss_curve_ and resumed.n_iter_ == 3
