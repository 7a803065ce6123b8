import os
import pickle

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA, MiniBatchDictionaryLearning
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import sparsecode.dictionary as engine
from estimators import DictionaryLearning


def _planted(seed=0, n=600, p=12, m=8, k=2):
    rng = np.random.RandomState(seed)
    D = rng.randn(m, p)
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    Z = np.zeros((n, m))
    for i in range(n):
        idx = rng.choice(m, k, replace=False)
        Z[i, idx] = rng.randn(k) * 2 + np.sign(rng.randn(k)) * 1
    return Z @ D + 0.01 * rng.randn(n, p), D


def test_recovers_a_planted_dictionary():
    # From a perturbed truth the planted atoms are a fixed point the updates converge to.
    X, D = _planted(k=2)
    init = D + 0.1 * np.random.RandomState(0).randn(*D.shape)
    dl = DictionaryLearning(n_components=8, alpha=0.05, max_iter=10, batch_size=64, dict_init=init,
                            random_state=0, device="cpu").fit(X)
    assert np.abs(dl.components_ @ D.T).max(0).min() > 0.999
    # From data samples, one-atom signals are found.
    X, D = _planted(k=1)
    dl = DictionaryLearning(n_components=8, alpha=0.05, max_iter=10, batch_size=64, random_state=0,
                            device="cpu").fit(X)
    assert (np.abs(dl.components_ @ D.T).max(0) > 0.99).sum() >= 7
    assert np.all(np.linalg.norm(dl.components_, axis=1) <= 1 + 1e-6)


def test_objective_matches_sklearn_minibatch_dictionary_learning():
    X = load_digits().data[:1000] / 16
    X = X - X.mean(0)
    common = dict(n_components=24, alpha=0.3, max_iter=5, batch_size=64, random_state=0)
    ours = DictionaryLearning(device="cpu", **common).fit(X)
    ref = MiniBatchDictionaryLearning(fit_algorithm="cd", **common).fit(X)
    # Score scikit-learn's atoms with our exact coder, so both energies use exact lasso codes.
    ref_score = DictionaryLearning(device="cpu", **{**common, "max_iter": 0}, dict_init=ref.components_).fit(X)
    assert ours.score(X) >= ref_score.score(X) - 0.01 * abs(ref_score.score(X))


def test_partial_fit_is_one_step_and_continues():
    X, _ = _planted(2)
    dl = DictionaryLearning(n_components=8, alpha=0.1, random_state=0, device="cpu")
    dl.partial_fit(X[:100])
    first = dl.components_.copy()
    dl.partial_fit(X[100:200])
    assert dl.n_steps_ == 2 and not np.allclose(first, dl.components_)
    with pytest.raises(ValueError, match="features"):
        dl.partial_fit(X[:10, :5])


def test_positivity_of_codes_and_atoms():
    X, _ = _planted(3)
    X = np.abs(X)
    dl = DictionaryLearning(n_components=6, alpha=0.1, max_iter=3, positive_code=True, positive_dict=True,
                            random_state=0, device="cpu").fit(X)
    assert (dl.components_ >= 0).all() and (dl.transform(X) >= 0).all()


def test_unused_atoms_are_redrawn_from_the_data():
    X, D = _planted(4, m=4)
    init = np.vstack([D, np.eye(D.shape[1])[:2] * 0])  # two atoms that no code will use
    init[4:, 0] = 1e-9
    dl = DictionaryLearning(n_components=6, alpha=0.05, max_iter=2, dict_init=init, random_state=0,
                            device="cpu").fit(X)
    assert np.linalg.norm(dl.components_[4:], axis=1).min() > 0.5


def test_stops_on_callback_and_on_ctrl_c_keeping_the_last_state():
    X, _ = _planted(5)
    dl = DictionaryLearning(n_components=8, alpha=0.1, max_iter=20, batch_size=50, tol=0,
                            max_no_improvement=None, random_state=0, device="cpu",
                            callback=lambda info: info["step"] == 3).fit(X)
    assert dl.n_steps_ == 3

    def interrupt(info):
        if info["step"] == 4:
            raise KeyboardInterrupt

    dl = DictionaryLearning(n_components=8, alpha=0.1, max_iter=20, batch_size=50, callback=interrupt,
                            random_state=0, device="cpu").fit(X)
    assert dl.n_steps_ == 4 and np.isfinite(dl.components_).all()


def test_max_iter_zero_and_verbose(capsys):
    X, _ = _planted(6)
    dl = DictionaryLearning(n_components=5, max_iter=0, random_state=0, device="cpu").fit(X)
    assert dl.n_iter_ == 0 and dl.components_.shape == (5, 12)
    DictionaryLearning(n_components=5, max_iter=1, verbose=1, random_state=0, device="cpu").fit(X)
    assert "[DictionaryLearning] pass 1/1" in capsys.readouterr().out


def test_seeded_fits_are_identical_and_pickle():
    X, _ = _planted(7)
    a = DictionaryLearning(n_components=6, alpha=0.1, max_iter=2, random_state=3, device="cpu").fit(X)
    b = DictionaryLearning(n_components=6, alpha=0.1, max_iter=2, random_state=3, device="cpu").fit(X)
    assert np.array_equal(a.components_, b.components_)
    loaded = pickle.loads(pickle.dumps(a))
    assert np.allclose(loaded.transform(X), a.transform(X))
    loaded.partial_fit(X[:50])
    assert loaded.n_steps_ == a.n_steps_ + 1


def test_grid_search_with_two_jobs_does_not_oversubscribe():
    X, _ = _planted(8, n=200)
    pipe = make_pipeline(StandardScaler(), DictionaryLearning(n_components=6, max_iter=2, random_state=0,
                                                              device="cpu"))
    search = GridSearchCV(pipe, {"dictionarylearning__alpha": [0.1, 1.0]}, cv=2, n_jobs=2).fit(X)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    threads = GridSearchCV(pipe, {"dictionarylearning__alpha": [0.1]}, cv=2, n_jobs=2,
                           scoring=lambda est, X, y=None: torch.get_num_threads()).fit(X)
    assert threads.cv_results_["mean_test_score"][0] <= max(1, (os.cpu_count() or 2) // 2)


def test_fit_on_the_device(device):
    X, _ = _planted(9, n=100)
    dl = DictionaryLearning(n_components=4, max_iter=1, random_state=0, device=device).fit(X)
    assert isinstance(dl.components_, np.ndarray) and dl.components_.dtype == np.float64


def test_group_and_topographic_dictionary_learning():
    X, _ = _planted(10, m=8)
    # the structure is what is checked, so a loose coding tolerance will do
    grouped = DictionaryLearning(n_components=8, alpha=0.2, groups=2, max_iter=3, transform_tol=1e-3,
                                 random_state=0, device="cpu").fit(X)
    blocks = grouped.transform(X).reshape(len(X), 4, 2) != 0
    assert (blocks.all(2) | ~blocks.any(2)).all()
    topo = DictionaryLearning(n_components=9, alpha=0.2, topography=(3, 3), pool_size=3, max_iter=3,
                              transform_tol=1e-3, random_state=0, device="cpu").fit(X)
    assert np.isfinite(topo.score(X)) and topo.score(X) < 0
    assert np.all(np.linalg.norm(topo.components_, axis=1) <= 1 + 1e-6)


def test_whitened_digits_code_every_step_within_the_solver_budget(monkeypatch):
    # Issue 15: PCA-whitened digits (rows of norm about 100: directions of near-zero variance blown up)
    # took 100x the raw digits' time in float32: the coder stopped at its max_iter on every step
    # (more than 1000 iterations, not converged). Every step must now converge well within it.
    X = PCA(whiten=True).fit_transform(load_digits().data[:1257]).astype(np.float32)
    steps = []

    def recorded(*args, **kwargs):
        result = solve_lasso(*args, **kwargs)
        steps.append((result.n_iter, kwargs["max_iter"], bool(result.converged.all())))
        return result

    solve_lasso = engine.solve_lasso
    monkeypatch.setattr(engine, "solve_lasso", recorded)
    dl = DictionaryLearning(n_components=64, max_iter=1, random_state=0, device="cpu").fit(X)
    assert len(steps) == dl.n_steps_ == 5
    assert all(converged and n_iter < max_iter for n_iter, max_iter, converged in steps)
    assert np.isfinite(dl.components_).all() and dl.score(X[:200]) > -0.5 * (X[:200] ** 2).sum(1).mean()


def test_checkpoint_resume_stops_early_where_the_uninterrupted_fit_does(tmp_path, monkeypatch):
    # the stopping rules' warm-up, smoothed cost and patience continue from the file, not from scratch
    from sparsecode.training.checkpoint import Checkpoint

    X = np.random.RandomState(0).randn(200, 8)
    params = dict(n_components=6, alpha=0.2, max_iter=20, batch_size=20, tol=0, max_no_improvement=5,
                  random_state=0, device="cpu")
    ref = DictionaryLearning(**params).fit(X)
    assert 20 < ref.n_steps_ < 30  # stopped early in the third pass of 10 steps: after the crash below
    save, calls = Checkpoint.save, []

    def crash_after_two_passes(self, *args, **kwargs):
        save(self, *args, **kwargs)
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("crash")

    monkeypatch.setattr(Checkpoint, "save", crash_after_two_passes)
    est = DictionaryLearning(**params, checkpoint=tmp_path / "dl.pt")
    with pytest.raises(RuntimeError, match="crash"):
        est.fit(X)
    monkeypatch.setattr(Checkpoint, "save", save)
    est.fit(X)
    assert (est.n_iter_, est.n_steps_) == (ref.n_iter_, ref.n_steps_)
    assert np.array_equal(est.components_, ref.components_)
