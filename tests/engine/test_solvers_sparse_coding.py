"""OMP, LARS, thresholding and cyclic coordinate descent on the engine, against scikit-learn and the lasso's KKT
conditions; scikit-learn's algorithm names in ``sparse_encode``."""

import importlib
import warnings

import numpy as np
import pytest
import torch
from sklearn.decomposition import sparse_encode as sk_sparse_encode
from sklearn.linear_model import orthogonal_mp_gram

from sparsecode.penalties import L1
from sparsecode.solvers import (
    SolverConvergenceWarning,
    cyclic_coordinate_descent,
    lars,
    omp,
    solve_lasso,
    sparse_encode,
    threshold,
)
from sparsecode.solvers import cd as cd_module
from sparsecode.solvers.encode import ALGORITHMS

homotopy_module = importlib.import_module("sparsecode.solvers.homotopy")
greedy_module = importlib.import_module("sparsecode.solvers.greedy")


def _problem(seed, n=25, p=20, m=50):
    rng = np.random.RandomState(seed)
    D = rng.randn(m, p)
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    return rng.randn(n, p), D


def _coherent(seed, n=20, p=16, m=48, shared=0.95):
    """Atoms sharing one direction (mutual coherence about ``shared``), data from a few of them plus noise."""
    rng = np.random.RandomState(seed)
    u = rng.randn(p)
    u /= np.linalg.norm(u)
    E = rng.randn(m, p)
    E /= np.linalg.norm(E, axis=1, keepdims=True)
    D = np.sqrt(shared) * u + np.sqrt(1 - shared) * E
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    Z = rng.randn(n, m) * (rng.rand(n, m) < 0.2)
    return Z @ D + 0.1 * rng.randn(n, p), D


def _kkt_violation(X, Z, D, alpha, positive=False):
    """Largest violation of the lasso's optimality conditions, relative to alpha."""
    C = (X - Z @ D) @ D.T
    on = Z != 0
    sign = np.sign(Z)
    active = np.abs(C - alpha * sign)[on]
    inactive = (np.maximum(C, 0) if positive else np.abs(C))[~on] - alpha
    return max(active.max(initial=0), inactive.max(initial=0)) / alpha


@pytest.mark.parametrize("k", [1, 3, 6])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_omp_matches_sklearn_orthogonal_mp_gram(k, dtype):
    X, D = _problem(0)
    ref = orthogonal_mp_gram(D @ D.T, D @ X.T, n_nonzero_coefs=k).T
    code = omp(torch.tensor(X, dtype=dtype), torch.tensor(D, dtype=dtype), k).code.double().numpy()
    assert ((code != 0) == (ref != 0)).all()
    assert np.allclose(code, ref, atol=1e-10 if dtype == torch.float64 else 1e-4)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_omp_compiled_equals_its_torch_twin(dtype, monkeypatch):
    X, D = _coherent(9, m=40)
    Xt, Dt = torch.tensor(X, dtype=dtype), torch.tensor(D, dtype=dtype)
    compiled = omp(Xt, Dt, 7)
    monkeypatch.setattr(greedy_module, "compiled_kernels", lambda: None)
    twin = omp(Xt, Dt, 7)
    assert ((compiled.code != 0) == (twin.code != 0)).all()
    assert torch.allclose(compiled.code, twin.code, atol=1e-10 if dtype == torch.float64 else 1e-4)


def test_omp_stops_early_as_sklearn_on_an_exact_fit():
    """A sample made of two atoms: the residual vanishes after two steps, the third is not taken."""
    _, D = _problem(1)
    X = 2 * D[[3]] - D[[7]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ref = orthogonal_mp_gram(D @ D.T, D @ X.T, n_nonzero_coefs=5).T
    code = omp(torch.tensor(X), torch.tensor(D), 5).code.numpy()
    assert np.flatnonzero(code).tolist() == [3, 7] and np.allclose(code, ref)


@pytest.mark.parametrize("k", [1, 4, 8, 12])
@pytest.mark.parametrize("compiled", [True, False])
def test_lars_matches_sklearn_on_the_cpu_path_and_its_torch_twin(k, compiled, monkeypatch):
    X, D = _problem(2)
    if not compiled:
        monkeypatch.setattr(homotopy_module, "compiled_kernels", lambda: None)
    ref = sk_sparse_encode(X, D, algorithm="lars", n_nonzero_coefs=k)
    res = lars(torch.tensor(X), torch.tensor(D), k)
    assert bool(res.converged.all())
    assert ((res.code.numpy() != 0) == (ref != 0)).all()
    assert np.allclose(res.code.numpy(), ref, atol=1e-10)


@pytest.mark.parametrize("positive", [False, True])
def test_threshold_matches_sklearn(positive):
    X, D = _problem(3)
    ref = sk_sparse_encode(X, D, algorithm="threshold", alpha=0.4, positive=positive)
    assert np.allclose(threshold(torch.tensor(X), torch.tensor(D), 0.4, positive=positive).code.numpy(), ref)


@pytest.mark.parametrize("positive", [False, True])
def test_cyclic_cd_compiled_equals_its_torch_twin(positive, monkeypatch):
    X, D = _coherent(4)
    Xt, Dt = torch.tensor(X), torch.tensor(D)
    compiled = cyclic_coordinate_descent(Xt, Dt, 0.05, penalty=L1(positive), max_iter=7, tol=0)
    monkeypatch.setattr(cd_module, "compiled_kernels", lambda: None)
    twin = cyclic_coordinate_descent(Xt, Dt, 0.05, penalty=L1(positive), max_iter=7, tol=0)
    assert torch.allclose(compiled.code, twin.code, atol=1e-12) and compiled.n_iter == twin.n_iter == 7
    conv = cyclic_coordinate_descent(Xt, Dt, 0.05, penalty=L1(positive), tol=1e-10, max_iter=100000)
    conv_twin = cyclic_coordinate_descent(Xt, Dt, 0.05, penalty=L1(positive), tol=1e-10, max_iter=100000)
    assert bool(conv.converged.all()) and bool(conv_twin.converged.all())
    assert torch.allclose(conv.code, conv_twin.code, atol=1e-6)


@pytest.mark.parametrize("kind, dtype, twin", [
    ("coherent", torch.float32, False), ("coherent", torch.float64, False), ("dense", torch.float32, False),
    ("dense", torch.float64, False), ("sparse", torch.float64, True),
])
def test_cyclic_cd_screening_keeps_every_nonzero_of_the_homotopy(kind, dtype, twin, monkeypatch):
    """Gap-safe screening and working sets (compiled kernel; screening only in the twin, whose plain sweeps
    take thousands on coherent atoms or dense codes) never drop an atom the exact path keeps, and the codes
    meet the lasso's optimality conditions, in float32 and float64."""
    X, D = _coherent(9, n=30, m=64) if kind == "coherent" else _problem(9, m=30 if kind == "dense" else 50)
    alpha = {"coherent": 0.05, "dense": 0.02, "sparse": 0.2}[kind]
    Xt, Dt = torch.tensor(X, dtype=dtype), torch.tensor(D, dtype=dtype)
    ref = solve_lasso(Xt.double(), Dt.double(), alpha, algorithm="homotopy", tol=1e-12).code.numpy()
    if twin:
        monkeypatch.setattr(cd_module, "compiled_kernels", lambda: None)
    loose = dtype == torch.float32 or twin  # a float32 gap, or the twin's plain sweeps: tol=1e-6
    tol = 1e-6 if loose else 1e-12
    res = cyclic_coordinate_descent(Xt, Dt, alpha, tol=tol, max_iter=100000)
    Z = res.code.double().numpy()
    assert res.code.dtype == dtype and bool(res.converged.all())
    kept = np.abs(ref) > 1e-3 * np.abs(ref).max()  # the homotopy's clear non-zeros
    assert (Z[kept] != 0).all() and (np.sign(Z[kept]) == np.sign(ref[kept])).all()
    assert _kkt_violation(X, Z, D, alpha) < (2e-2 if loose else 1e-5)


@pytest.mark.parametrize("algorithm", ["auto", "homotopy", "lasso_lars", "fista", "cd", "lasso_cd", "cod"])
@pytest.mark.parametrize("kind", ["coherent", "dense"])
@pytest.mark.parametrize("positive", [False, True])
def test_every_lasso_solver_reaches_the_kkt_conditions(algorithm, kind, positive):
    """Coherent atoms (shared direction) and dense codes (small alpha, most atoms active)."""
    X, D = _coherent(5) if kind == "coherent" else _problem(5, m=30)
    alpha = 0.05 if kind == "coherent" else 0.02
    res = solve_lasso(torch.tensor(X), torch.tensor(D), alpha, penalty=L1(positive), algorithm=algorithm,
                      tol=1e-12, max_iter=200000)
    Z = res.code.numpy()
    assert bool(res.converged.all())
    assert _kkt_violation(X, Z, D, alpha, positive) < 1e-4
    if kind == "dense":
        assert (Z != 0).mean() > 0.3


def test_sparse_encode_takes_sklearn_names_and_signature():
    X, D = _problem(6)
    assert set(ALGORITHMS) >= {"lasso_lars", "lasso_cd", "lars", "omp", "threshold"}
    for algorithm in ("lasso_lars", "lasso_cd", "lars", "omp", "threshold"):
        kwargs = {"n_nonzero_coefs": 3} if algorithm in ("lars", "omp") else {"alpha": 0.3}
        ours = sparse_encode(X, D, algorithm=algorithm, n_jobs=2, gram=D @ D.T, cov=D @ X.T, copy_cov=False,
                             check_input=True, verbose=0, **kwargs)
        ref = sk_sparse_encode(X, D, algorithm=algorithm, **kwargs)
        # scikit-learn's LARS can leave an atom that left the path at a rounding residue (1e-18): not support
        on = np.abs(ref) > 1e-12 * np.abs(ref).max()
        assert ours.shape == ref.shape and ((ours != 0) == on).all(), algorithm
    # scikit-learn's default number of atoms: n_features // 10 clipped to [1, n_components]
    assert ((sparse_encode(X, D[:1], algorithm="omp") != 0).sum(1) == 1).all()
    assert ((sparse_encode(X, D, algorithm="omp") != 0).sum(1) == 2).all()
    with pytest.raises(ValueError, match="Positive constraint"):
        sparse_encode(X, D, algorithm="omp", positive=True)


def test_sparse_encode_warns_when_max_iter_stops_samples_above_tol():
    X, D = _coherent(7)
    with pytest.warns(SolverConvergenceWarning, match="did not converge"):
        sparse_encode(X, D, algorithm="fista", alpha=0.05, max_iter=3, tol=1e-10)


def test_auto_at_alpha_zero_is_the_exact_least_squares_solution():
    rng = np.random.RandomState(8)
    D, X = rng.randn(6, 8), rng.randn(10, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = solve_lasso(torch.tensor(X), torch.tensor(D), 0.0)
    ref = np.linalg.lstsq(D.T, X.T, rcond=None)[0].T
    assert bool(res.converged.all()) and np.allclose(res.code.numpy(), ref)
