"""TrainedEstimator on a tiny estimator: sklearn attributes, warnings, divergence, warm start, docs."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import RegressorMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.validation import check_is_fitted, check_random_state, validate_data

from estimators import LISTA, DrSAE
from estimators._training import TrainedEstimator
from sparsecode.training import DivergenceError


class TinyRegressor(RegressorMixin, TrainedEstimator):
    """Least squares through the shared loop (test double for the trainable estimators).

    Parameters
    ----------
{training}"""

    def __init__(self, optimizer="adam", learning_rate=0.05, max_iter=50, batch_size=32,
                 tol=1e-4, n_iter_no_change=10, early_stopping=False, validation_fraction=0.1,
                 warm_start=False, verbose=0, random_state=None, device="cpu", distributed=None):
        super().__init__(optimizer, learning_rate, max_iter, batch_size, tol, n_iter_no_change,
                         early_stopping, validation_fraction, warm_start, verbose, random_state, device,
                         distributed)

    @staticmethod
    def _loss(module, x, t):
        return 0.5 * ((module(x).squeeze(1) - t) ** 2).mean()

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        X, y = validate_data(self, X, y, dtype=np.float64)
        seed = check_random_state(self.random_state).randint(2**31 - 1)
        if not (self.warm_start and hasattr(self, "_module")):
            torch.manual_seed(seed)
            self._module = torch.nn.Linear(X.shape[1], 1).double()
        self._train(self._module, self._loss, (torch.from_numpy(X), torch.from_numpy(y)),
                    generator=torch.Generator().manual_seed(seed))
        return self

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
