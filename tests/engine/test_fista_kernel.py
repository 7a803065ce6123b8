"""FISTA's compiled kernel (``sparsecode/kernels/fista.cpp``): the lasso's KKT conditions on sparse and dense codes
in strongly coherent atoms (where FISTA alone needs about 10^4 iterations), the torch twin's codes, weights, warm
starts and the iteration budget."""

import importlib
import warnings

import numpy as np
import pytest
import torch

from sparsecode._extension import compiled_kernels
from sparsecode.objectives import duality_gap
from sparsecode.penalties import L1
from sparsecode.solvers import SolverConvergenceWarning, fista, ista, sparse_encode

from .test_cd_dense import ALPHA, _dense_coherent
from .test_fista_screening import _alpha, _assert_kkt, _coherent

ista_module = importlib.import_module("sparsecode.solvers.ista")  # the module, not the function it exports
pytestmark = pytest.mark.skipif(compiled_kernels() is None, reason="the compiled CPU kernels are not available")


def _torch_path(monkeypatch):
    monkeypatch.setattr(ista_module, "compiled_kernels", lambda: None)


def _fista(X, D, alpha, dtype, **options):
    """FISTA with every warning an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return fista(torch.tensor(X, dtype=dtype), torch.tensor(D, dtype=dtype), alpha, **options)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("positive", [False, True])
def test_kkt_on_dense_codes_in_coherent_atoms_within_the_default_budget(dtype, positive):
    X, D = _dense_coherent(64, positive)
    res = _fista(X, D, ALPHA, dtype, penalty=L1(positive), tol=1e-6 if dtype == torch.float32 else 1e-10)
    assert res.code.dtype == dtype and bool(res.converged.all())
    assert res.n_iter < 1000  # plain FISTA: above 10^4 on these atoms
    Z = res.code.double()
    assert float((Z != 0).sum(1).float().mean()) >= 12  # of 16 features
    # float32 codes of coherent atoms are large and cancel: their rounding alone moves the correlations
    _assert_kkt(torch.tensor(X), Z, torch.tensor(D), ALPHA, positive,
                atol=(2e-2 if dtype == torch.float32 else 1e-7) * max(ALPHA, 1e-3))


@pytest.mark.parametrize("fraction", [0.5, 0.1])
@pytest.mark.parametrize("positive", [False, True])
def test_compiled_and_torch_paths_reach_the_same_codes(monkeypatch, fraction, positive):
    X, D = _coherent(6)
    alpha = _alpha(X, D, fraction)
    compiled = _fista(X, D, alpha, torch.float64, penalty=L1(positive), tol=1e-12, max_iter=20000)
    _torch_path(monkeypatch)
    twin = _fista(X, D, alpha, torch.float64, penalty=L1(positive), tol=1e-12, max_iter=20000)
    assert bool(compiled.converged.all()) and bool(twin.converged.all())
    assert torch.allclose(compiled.code, twin.code, atol=1e-5)
    for res in (compiled, twin):
        _assert_kkt(torch.tensor(X), res.code, torch.tensor(D), alpha, positive, atol=1e-6 * alpha)
    # the gaps reported are those of the returned codes
    assert torch.allclose(compiled.gap, duality_gap(torch.tensor(X), compiled.code, torch.tensor(D), alpha,
                                                    L1(positive)))


def test_weights_ista_and_warm_start(monkeypatch):
    X, D = _coherent(7)
    Xt, Dt = torch.tensor(X), torch.tensor(D)
    alpha = _alpha(X, D, 0.3)
    penalty = L1(weights=torch.linspace(0.5, 1.5, D.shape[0], dtype=torch.float64))
    res = fista(Xt, Dt, alpha, penalty=penalty, tol=1e-12, max_iter=20000)
    slow = ista(Xt, Dt, alpha, penalty=penalty, tol=1e-12, max_iter=20000)
    _torch_path(monkeypatch)
    twin = fista(Xt, Dt, alpha, penalty=penalty, tol=1e-12, max_iter=20000)
    assert bool(res.converged.all()) and bool(slow.converged.all()) and bool(twin.converged.all())
    assert torch.allclose(res.code, twin.code, atol=1e-6) and torch.allclose(slow.code, twin.code, atol=1e-6)
    monkeypatch.undo()
    # a warm start at the optimum takes no iteration; one from a short run finishes
    again = fista(Xt, Dt, alpha, penalty=penalty, z0=res.code, tol=1e-10)
    assert again.n_iter == 0 and bool(again.converged.all())
    short = fista(Xt, Dt, alpha, penalty=penalty, tol=1e-12, max_iter=5)
    assert short.n_iter <= 5
    finished = fista(Xt, Dt, alpha, penalty=penalty, z0=short.code, tol=1e-12, max_iter=20000)
    assert torch.allclose(finished.code, res.code, atol=1e-6)


def test_max_iter_is_respected_and_warned_about():
    X, D = _dense_coherent(64, False)
    res = fista(torch.tensor(X), torch.tensor(D), ALPHA, tol=1e-14, max_iter=3)
    assert res.n_iter <= 3 and not bool(res.converged.all())
    assert torch.allclose(res.gap, duality_gap(torch.tensor(X), res.code, torch.tensor(D), ALPHA))
    with pytest.warns(SolverConvergenceWarning, match="max_iter=3"):
        sparse_encode(X, D, algorithm="fista", alpha=ALPHA, max_iter=3, tol=1e-14)


def test_zero_atoms_and_zero_rows():
    D = np.vstack([np.eye(3), np.zeros((1, 3))])
    X = np.array([[2.0, 0.5, -3.0], [0.0, 0.0, 0.0]])
    res = _fista(X, D, 1.0, torch.float64, z0=torch.ones(2, 4, dtype=torch.float64))
    assert bool(res.converged.all())
    assert torch.equal(res.code, torch.tensor([[1.0, 0.0, -2.0, 0.0], [0.0, 0.0, 0.0, 0.0]], dtype=torch.float64))


def _smooth_centred(seed=0, n=8, p=64):
    """p centred unit atoms (rank p - 1: their Gram matrix is singular) with a decaying spectrum, like learned
    patches, and centred unit signals of the same kind: dense codes whose supports are near-singular."""
    rng = np.random.RandomState(seed)
    basis = np.linalg.qr(rng.randn(p, p))[0] * np.exp(-np.arange(p) / 32.0)
    D, X = rng.randn(p, p) @ basis.T, rng.randn(n, p) @ basis.T
    D, X = D - D.mean(1, keepdims=True), X - X.mean(1, keepdims=True)
    return X / np.linalg.norm(X, axis=1, keepdims=True), D / np.linalg.norm(D, axis=1, keepdims=True)


def test_kkt_on_dense_codes_in_near_singular_atoms():
    X, D = _smooth_centred()
    alpha = _alpha(X, D, 0.003)
    res = _fista(X, D, alpha, torch.float64, tol=1e-10)
    assert bool(res.converged.all()) and res.n_iter < 1000
    assert float((res.code != 0).sum(1).float().mean()) >= 0.8 * D.shape[0]
    _assert_kkt(torch.tensor(X), res.code, torch.tensor(D), alpha, False, atol=1e-5 * alpha)
    # a warm start at the optimum takes no iteration (its one polish may only round it)
    again = _fista(X, D, alpha, torch.float64, z0=res.code, tol=1e-10)
    assert again.n_iter == 0 and torch.allclose(again.code, res.code, atol=1e-10)
