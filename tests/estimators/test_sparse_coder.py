import pickle
import warnings

import numpy as np
import pytest
import torch
from sklearn.decomposition import SparseCoder as SkSparseCoder
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Lasso

from estimators import SparseCoder
from estimators._base import DeviceWarning
from sparsecode.objectives import lasso_energy


def _problem(seed=0, n=15, p=16, m=32):
    rng = np.random.RandomState(seed)
    D = rng.randn(m, p)
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    X = (rng.randn(n, m) * (rng.rand(n, m) < 0.15)) @ D + 0.05 * rng.randn(n, p)
    return X, D


def _energy(X, Z, D, alpha):
    return lasso_energy(torch.tensor(X), torch.tensor(Z, dtype=torch.float64), torch.tensor(D), alpha).numpy()


@pytest.mark.parametrize("algorithm", ["auto", "fista", "ista", "cd"])
@pytest.mark.parametrize("positive", [False, True])
def test_codes_reach_the_lasso_optimum(algorithm, positive):
    X, D = _problem(1)
    alpha = 0.2
    coder = SparseCoder(D, transform_algorithm=algorithm, transform_alpha=alpha, positive_code=positive,
                        transform_tol=1e-10, transform_max_iter=50000, device="cpu")
    Z = coder.transform(X)
    lasso = Lasso(alpha=alpha / X.shape[1], fit_intercept=False, tol=1e-14, max_iter=100000, positive=positive)
    ref = np.array([lasso.fit(D.T, x).coef_ for x in X])
    e, e_ref = _energy(X, Z, D, alpha), _energy(X, ref, D, alpha)
    assert np.all((e - e_ref) / e_ref <= 1e-6)


@pytest.mark.parametrize("algorithm", ["lasso_lars", "lasso_cd", "omp", "threshold", "lars"])
def test_sklearn_algorithm_names_give_sklearn_results(algorithm):
    """Every name runs on the engine; scikit-learn's lasso_cd stops at its looser default tolerance."""
    X, D = _problem(2)
    ours = SparseCoder(D, transform_algorithm=algorithm, transform_alpha=0.3, device="cpu").transform(X)
    ref = SkSparseCoder(D, transform_algorithm=algorithm, transform_alpha=0.3).transform(X)
    assert np.allclose(ours, ref, atol=1e-3 if algorithm == "lasso_cd" else 1e-8)
    assert ((ours != 0) == (ref != 0)).all()


def test_transform_alpha_none_means_one_and_split_sign_round_trips():
    X, D = _problem(3)
    a = SparseCoder(D, device="cpu").transform(X)
    b = SparseCoder(D, transform_alpha=1.0, device="cpu").transform(X)
    assert np.allclose(a, b)
    coder = SparseCoder(D, transform_alpha=0.1, split_sign=True, device="cpu")
    split = coder.transform(X)
    assert split.shape == (X.shape[0], 2 * D.shape[0]) and (split >= 0).all()
    plain = SparseCoder(D, transform_alpha=0.1, device="cpu").transform(X)
    assert np.allclose(coder.inverse_transform(split), plain @ D)


def test_too_small_budget_warns_with_the_distance_to_convergence():
    X, D = _problem(4)
    with pytest.warns(ConvergenceWarning, match=r"relative duality gap is .*Increase transform_max_iter"):
        SparseCoder(D, transform_alpha=0.01, transform_max_iter=3, transform_algorithm="ista",
                    device="cpu").transform(X)


def test_float32_is_preserved():
    X, D = _problem(5)
    Z = SparseCoder(D.astype(np.float32), transform_alpha=0.2, device="cpu").transform(X.astype(np.float32))
    assert Z.dtype == np.float32


def test_group_penalty_gives_block_sparse_codes():
    X, D = _problem(6)
    Z = SparseCoder(D, transform_alpha=0.5, groups=4, device="cpu").transform(X)
    blocks = Z.reshape(len(X), -1, 4) != 0
    assert (blocks.all(2) | ~blocks.any(2)).all() and blocks.any()
    with pytest.raises(ValueError, match="does not support groups"):
        SparseCoder(D, groups=4, transform_algorithm="cd", device="cpu").transform(X)


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.array([[np.nan] * 16]), "NaN"),
        (np.array([[np.inf] * 16]), "infinity"),
        (np.ones(16), "2D array"),
        (np.ones((0, 16)), "minimum of 1 is required"),
        (np.ones((3, 5)), "X has 5 features"),
        (np.array([["a"] * 16]), "convert"),
        (np.ones((3, 16)) * 1j, "Complex data not supported"),
    ],
)
def test_bad_input_raises_a_clear_error(bad, match):
    _, D = _problem(7)
    coder = SparseCoder(D, device="cpu")
    with pytest.raises(ValueError, match=match):
        coder.fit_transform(bad)


def test_bad_parameters_and_dictionary():
    X, D = _problem(8)
    with pytest.raises(ValueError, match="transform_algorithm"):
        SparseCoder(D, transform_algorithm="nope").fit(X)
    with pytest.raises(ValueError, match="device"):
        SparseCoder(D, device="tpu").transform(X)
    with pytest.raises(ValueError, match="NaN"):
        SparseCoder(np.full_like(D, np.nan), device="cpu").transform(X)
    with pytest.raises(ValueError, match="exceeds"):
        SparseCoder(D[:2], transform_algorithm="omp", transform_n_nonzero_coefs=5, device="cpu").transform(X)


def test_pickle_and_device_portable_load(monkeypatch):
    X, D = _problem(9)
    coder = SparseCoder(D, device="cpu").fit(X)
    coder._device = torch.device("cuda")  # as if fitted on a GPU
    blob = pickle.dumps(coder)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.warns(DeviceWarning):
        loaded = pickle.loads(blob)
    assert loaded._device == torch.device("cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.allclose(loaded.transform(X), SparseCoder(D, device="cpu").transform(X))


def test_topographic_penalty_matches_the_latent_group_lasso():
    from sparsecode.penalties import LatentGroupL1
    from sparsecode.solvers import solve_lasso
    from sparsecode.topography import Pools

    X, D = _problem(10, m=16)
    Z = SparseCoder(D, transform_alpha=0.3, topography=(4, 4), pool_size=3, transform_tol=1e-8,
                    transform_max_iter=20000, device="cpu").transform(X)
    ref = solve_lasso(torch.tensor(X), torch.tensor(D), 0.3, penalty=LatentGroupL1(Pools.torus((4, 4), 3)),
                      tol=1e-8, max_iter=20000).code
    assert np.allclose(Z, ref.numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="rows \\* cols"):
        SparseCoder(D, topography=(3, 3), device="cpu").transform(X)
    with pytest.raises(ValueError, match="not both"):
        SparseCoder(D, topography=(4, 4), groups=2, device="cpu").transform(X)


def test_sklearn_names_run_on_the_engine_with_clipped_default_n_nonzero_coefs():
    """scikit-learn's ``test_dict_learning``: a 2-atom dictionary of 64 features codes with OMP's default."""
    rng = np.random.RandomState(0)
    D = rng.randn(2, 64)
    X = rng.randn(5, 64)
    for algorithm in ("omp", "lars"):
        ours = SparseCoder(D, transform_algorithm=algorithm, device="cpu").transform(X)
        ref = SkSparseCoder(D, transform_algorithm=algorithm).transform(X)
        assert ours.shape == (5, 2) and np.allclose(ours, ref)


def test_alpha_zero_gives_least_squares_without_a_convergence_warning():
    """Issue 16, item 8: ``transform_alpha=0`` is the exact least-squares solve, not an unconverged FISTA."""
    rng = np.random.RandomState(0)
    D, X = rng.randn(6, 8), rng.randn(40, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Z = SparseCoder(D, transform_alpha=0.0, device="cpu").transform(X)
    assert np.allclose(Z, np.linalg.lstsq(D.T, X.T, rcond=None)[0].T)


@pytest.mark.parametrize("positive", [False, True])
def test_all_zero_codes_warn_and_name_the_largest_useful_alpha(positive):
    """Issue 16, item 13: alpha above every correlation gives zero codes; say so and name max |X D^T|."""
    X, D = _problem(3)
    X = X / np.linalg.norm(X, axis=1, keepdims=True)
    C = X @ D.T
    alpha_max = C.max() if positive else np.abs(C).max()
    with pytest.warns(UserWarning, match=f"max \\|X D\\^T\\| = {alpha_max:.4g}"):
        Z = SparseCoder(D, transform_alpha=1.01 * alpha_max, positive_code=positive, device="cpu").transform(X)
    assert not Z.any()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        coder = SparseCoder(D, transform_alpha=0.5 * alpha_max, positive_code=positive, device="cpu")
        assert coder.transform(X).any()


def _memmap(path, array):
    mm = np.memmap(path, dtype=array.dtype, mode="w+", shape=array.shape)
    mm[:] = array
    mm.flush()
    return np.memmap(path, dtype=array.dtype, mode="r", shape=array.shape)


@pytest.mark.parametrize("split_sign", [False, True])
def test_memmap_and_workers_give_the_in_memory_codes(tmp_path, split_sign):
    """Issue 17, item 3: a read-only memmap is coded as it is, ``n_jobs`` workers give the same codes."""
    X, D = _problem(11, n=600)
    X = X.astype(np.float32)
    ref = SparseCoder(D, transform_alpha=0.1, split_sign=split_sign, device="cpu").transform(X)
    coder = SparseCoder(D, transform_alpha=0.1, split_sign=split_sign, n_jobs=2, device="cpu")
    Z = coder.transform(_memmap(tmp_path / "X.dat", X))
    assert type(Z) is np.ndarray and Z.dtype == np.float32
    np.testing.assert_allclose(Z, ref, rtol=0, atol=1e-6)


def test_dictionary_learning_transform_reads_a_memmap_with_workers(tmp_path):
    from estimators import DictionaryLearning

    X, _ = _problem(12, n=400)
    dl = DictionaryLearning(n_components=8, alpha=0.1, max_iter=2, tol=0, random_state=0, device="cpu").fit(X)
    ref = dl.transform(X)
    Z = dl.set_params(n_jobs=2).transform(_memmap(tmp_path / "X.dat", X))
    np.testing.assert_allclose(Z, ref, rtol=0, atol=1e-12)


def test_transform_of_a_memmap_holds_the_output_and_a_chunk(tmp_path, monkeypatch):
    """tracemalloc counts numpy's allocations: validation and coding never copy the whole memmap."""
    import tracemalloc

    import sparsecode.solvers.encode as encode

    monkeypatch.setattr(encode, "_rows_per_chunk", lambda D, n, n_jobs: 2048)
    rng = np.random.RandomState(13)
    X = _memmap(tmp_path / "X.dat", rng.randn(100_000, 64).astype(np.float32))  # 26 MB
    D = rng.randn(8, 64)
    coder = SparseCoder(D, transform_algorithm="threshold", transform_alpha=1.0, split_sign=True, device="cpu")
    tracemalloc.start()
    try:
        Z = coder.transform(X)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert Z.nbytes == 2 * 100_000 * 8 * 4
    assert peak < Z.nbytes + 4 * 2048 * 64 * 4 < X.nbytes / 2
