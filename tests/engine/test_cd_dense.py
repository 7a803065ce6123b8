"""Cyclic coordinate descent ("cd") on dense codes in strongly coherent dictionaries (atoms sharing one direction,
mutual coherence above 0.95): plain sweeps crawl there (thousands of sweeps), the compiled kernel's active-set
solve on the working set reaches the lasso optimum within the default ``max_iter``, and so does the torch twin
(GPUs) with its batched active-set solve. Checked against the lasso's KKT conditions and scikit-learn's
``LassoLars``, in float64 and float32, plain and non-negative codes, on both paths."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.linear_model import LassoLars

from sparsecode._extension import compiled_kernels
from sparsecode.objectives import duality_gap
from sparsecode.penalties import L1
from sparsecode.solvers import cyclic_coordinate_descent

from .test_solvers_sparse_coding import _kkt_violation


@pytest.fixture(autouse=True, params=["compiled", "torch"])
def path(request):
    """Every test on the compiled kernel and on the torch twin that GPUs run."""
    if request.param == "torch":
        request.getfixturevalue("torch_paths")
    elif compiled_kernels() is None:
        pytest.skip("the compiled CPU kernels are not built here")
    return request.param

ALPHA = 1e-4  # 80-100% of the features non-zero
N_FEATURES = 16


def _dense_coherent(n_components, positive, seed=0, n=12):
    """Unit-norm atoms sqrt(0.97) u + sqrt(0.03) e_i and unit-norm data from dense (non-negative) codes."""
    rng = np.random.RandomState(seed)
    u = rng.randn(N_FEATURES)
    E = rng.randn(n_components, N_FEATURES)
    D = np.sqrt(0.97) * u / np.linalg.norm(u) + np.sqrt(0.03) * E / np.linalg.norm(E, axis=1, keepdims=True)
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    Z = rng.randn(n, n_components)
    X = (np.abs(Z) if positive else Z) @ D + 0.05 * rng.randn(n, N_FEATURES)
    return X / np.linalg.norm(X, axis=1, keepdims=True), D


def _energy(X, Z, D, alpha):
    return 0.5 * ((X - Z @ D) ** 2).sum(1) + alpha * np.abs(Z).sum(1)


def _solve(X, D, positive, dtype, tol, z0=None):
    """cd with every warning an error: it converges within the default max_iter."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = cyclic_coordinate_descent(torch.tensor(X, dtype=dtype), torch.tensor(D, dtype=dtype), ALPHA,
                                        penalty=L1(positive), tol=tol, z0=z0)
    assert res.code.dtype == dtype and bool(res.converged.all())
    assert res.n_iter < 50  # sweeps; plain sweeps take thousands
    return res


@pytest.mark.parametrize("n_components", [16, 64])
@pytest.mark.parametrize("positive", [False, True])
def test_cd_meets_the_kkt_conditions_on_dense_codes_in_coherent_atoms(n_components, positive):
    X, D = _dense_coherent(n_components, positive)
    assert np.abs(D @ D.T - np.eye(n_components)).max() > 0.95
    Z = _solve(X, D, positive, torch.float64, tol=1e-10).code.numpy()
    assert (Z != 0).sum(1).mean() >= 0.8 * N_FEATURES
    assert _kkt_violation(X, Z, D, ALPHA, positive) < 1e-6
    if not positive:  # the exact path (scikit-learn's positive LARS stops early on these atoms)
        ref = np.array([LassoLars(alpha=ALPHA / N_FEATURES, fit_intercept=False).fit(D.T, x).coef_ for x in X])
        assert (_energy(X, Z, D, ALPHA) <= _energy(X, ref, D, ALPHA) + 1e-12).all()
    # at the default tolerance: the relative duality gap, recomputed from the residual
    res = _solve(X, D, positive, torch.float64, tol=1e-6)
    gap = duality_gap(torch.tensor(X), res.code, torch.tensor(D), ALPHA, L1(positive))
    assert bool((gap <= 1e-6).all())


@pytest.mark.parametrize("n_components", [16, 64])
@pytest.mark.parametrize("positive", [False, True])
def test_cd_float32_reaches_the_float64_optimum_on_dense_coherent_codes(n_components, positive):
    """float32 codes of ill-conditioned supports: their rounding alone moves the correlations by more than tol,
    so the energy (in float64) is what meets it; with as many atoms as features, the signs are the optimum's
    (with 4x atoms, non-negative codes on other supports come within tol of the optimum's energy)."""
    X, D = _dense_coherent(n_components, positive, seed=1)
    X, D = X.astype(np.float32).astype(np.float64), D.astype(np.float32).astype(np.float64)
    ref = _solve(X, D, positive, torch.float64, tol=1e-12).code.numpy()
    assert _kkt_violation(X, ref, D, ALPHA, positive) < 1e-6
    Z = _solve(X, D, positive, torch.float32, tol=1e-6).code.double().numpy()
    assert ((_energy(X, Z, D, ALPHA) - _energy(X, ref, D, ALPHA)) <= 1e-6 * 0.5 * (X * X).sum(1)).all()
    if n_components == N_FEATURES:
        clear = np.abs(ref) > 1e-3 * np.abs(ref).max(1, keepdims=True)
        assert (np.sign(Z[clear]) == np.sign(ref[clear])).all()


@pytest.mark.parametrize("positive", [False, True])
def test_cd_converges_with_a_repeated_atom(positive):
    """A singular Gram matrix (one atom twice): the support solve leaves the copy out and still converges."""
    X, D = _dense_coherent(16, positive, seed=2)
    D = np.vstack([D, D[:1]])
    Z = _solve(X, D, positive, torch.float64, tol=1e-10).code.numpy()
    assert _kkt_violation(X, Z, D, ALPHA, positive) < 1e-6
    assert (Z != 0).sum(1).mean() >= 0.8 * N_FEATURES


def test_cd_from_a_dense_warm_start_on_more_atoms_than_features():
    """z0 non-zero on all 64 atoms of 16 features: the support solve starts from its largest independent atoms."""
    X, D = _dense_coherent(64, False, seed=3)
    z0 = torch.tensor(np.random.RandomState(3).randn(X.shape[0], 64))
    Z = _solve(X, D, False, torch.float64, tol=1e-10, z0=z0).code.numpy()
    assert _kkt_violation(X, Z, D, ALPHA, False) < 1e-6


def test_cd_on_dense_codes_in_a_numerically_rank_deficient_overcomplete_dictionary():
    """Twice as many atoms as features, their spectrum decaying as that of image patches (condition number 1e3):
    the supports reach the rank, where violators lie in the span of the support (the support solve swaps them
    in)."""
    rng = np.random.RandomState(4)
    D = rng.randn(2 * N_FEATURES, N_FEATURES) * np.logspace(0, -3, N_FEATURES)
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    X = rng.randn(10, N_FEATURES)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    Z = _solve(X, D, False, torch.float64, tol=1e-10).code.numpy()
    assert (Z != 0).sum(1).mean() >= 0.9 * N_FEATURES
    assert _kkt_violation(X, Z, D, ALPHA, False) < 1e-6
