"""Batch OMP (compiled CPU kernel and its torch twin) against scikit-learn's ``orthogonal_mp_gram`` and
``orthogonal_mp``: supports, codes, early stops and the residual it reports."""

import importlib

import numpy as np
import pytest
import torch
from sklearn.linear_model import orthogonal_mp, orthogonal_mp_gram

from sparsecode.objectives import relative_residual
from sparsecode.solvers import omp

greedy_module = importlib.import_module("sparsecode.solvers.greedy")

# 245 atoms: SIMD blocks of every width (128 + 64 + 32 + 16 floats) and a scalar tail in the kernel
N_ATOMS = 245


def _problem(seed, n=30, p=40, m=N_ATOMS):
    rng = np.random.RandomState(seed)
    D = rng.randn(m, p)
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    return rng.randn(n, p), D


def _omp(X, D, k, dtype, compiled, monkeypatch):
    if not compiled:
        monkeypatch.setattr(greedy_module, "compiled_kernels", lambda: None)
    return omp(torch.tensor(X, dtype=dtype), torch.tensor(D, dtype=dtype), k)


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("k", [1, 9, 30])
def test_omp_matches_orthogonal_mp_gram_supports_and_codes(k, dtype, compiled, monkeypatch):
    X, D = _problem(0)
    ref = orthogonal_mp_gram(D @ D.T, D @ X.T, n_nonzero_coefs=k).T
    res = _omp(X, D, k, dtype, compiled, monkeypatch)
    code = res.code.double().numpy()
    assert ((code != 0) == (ref != 0)).all()
    assert np.abs(code - ref).max() < (1e-10 if dtype == torch.float64 else 2e-4)
    assert res.n_iter == k and bool(res.converged.all())
    expected = relative_residual(torch.tensor(X), torch.tensor(ref), torch.tensor(D))
    assert torch.allclose(res.gap.double(), expected, rtol=1e-8 if dtype == torch.float64 else 1e-3, atol=1e-7)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_omp_matches_orthogonal_mp_on_the_data(dtype):
    X, D = _problem(1, m=70)
    ref = orthogonal_mp(D.T, X.T, n_nonzero_coefs=12).T
    code = omp(torch.tensor(X, dtype=dtype), torch.tensor(D, dtype=dtype), 12).code.double().numpy()
    assert ((code != 0) == (ref != 0)).all()
    assert np.abs(code - ref).max() < (1e-10 if dtype == torch.float64 else 2e-4)


@pytest.mark.parametrize("compiled", [True, False])
def test_omp_stops_as_sklearn_once_the_atoms_span_the_data(compiled, monkeypatch):
    """k above n_features: the atoms become linearly dependent, both stop there (at most n_features atoms)."""
    X, D = _problem(2, n=6, p=12, m=40)
    with pytest.warns(RuntimeWarning, match="prematurely"):
        ref = orthogonal_mp_gram(D @ D.T, D @ X.T, n_nonzero_coefs=20).T
    res = _omp(X, D, 20, torch.float64, compiled, monkeypatch)
    code = res.code.numpy()
    assert ((code != 0) == (ref != 0)).all() and np.allclose(code, ref, atol=1e-8)
    assert (np.count_nonzero(code, axis=1) <= 12).all() and res.n_iter <= 13
    assert (res.gap.numpy() < 1e-20).all()


@pytest.mark.parametrize("compiled", [True, False])
def test_omp_stops_on_a_repeated_atom_and_on_zero_samples(compiled, monkeypatch):
    _, D = _problem(3, p=10, m=20)
    D = np.vstack([D, D[[4]]])  # atom 20 repeats atom 4
    X = np.vstack([D[4] + 0.5 * D[7], np.zeros(10)])
    with pytest.warns(RuntimeWarning, match="prematurely"):
        ref = orthogonal_mp_gram(D @ D.T, D @ X.T, n_nonzero_coefs=5).T
    res = _omp(X, D, 5, torch.float64, compiled, monkeypatch)
    code = res.code.numpy()
    assert np.flatnonzero(code[0]).tolist() == [4, 7] and np.allclose(code, ref)
    assert not code[1].any() and res.gap[1] == 0
    zeros = _omp(np.zeros((3, 10)), D, 5, torch.float64, compiled, monkeypatch)
    assert not zeros.code.any() and zeros.n_iter == 0 and not zeros.gap.any()


def test_omp_compiled_equals_its_torch_twin_on_strided_inputs(monkeypatch):
    X, D = _problem(4, n=17)
    Xt = torch.tensor(np.asfortranarray(X), dtype=torch.float32)  # neither X nor D row-contiguous
    Dt = torch.tensor(D.T.copy(), dtype=torch.float32).T
    compiled = omp(Xt, Dt, 25, chunk_size=5)
    monkeypatch.setattr(greedy_module, "compiled_kernels", lambda: None)
    twin = omp(Xt, Dt, 25, chunk_size=5)
    assert ((compiled.code != 0) == (twin.code != 0)).all()
    assert torch.allclose(compiled.code, twin.code, atol=1e-4)
    assert torch.allclose(compiled.gap, twin.gap, rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("k", [0, N_ATOMS + 1])
def test_omp_refuses_a_number_of_atoms_outside_the_dictionary(k):
    X, D = _problem(5, n=2)
    with pytest.raises(ValueError, match="n_nonzero_coefs must be between 1 and n_components"):
        omp(torch.tensor(X), torch.tensor(D), k)
