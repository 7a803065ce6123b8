"""The solvers' speed paths against ground truth: the cancellation-free gap, the polish, chunk sizes."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import Lasso

from sparsecode.objectives import duality_gap, lasso_energy
from sparsecode.penalties import L1, make_penalty
from sparsecode.solvers import fista, solve_lasso
from sparsecode.solvers._common import default_chunk_size


def _coherent_problem(seed, n=10, p=16, m=48):
    """Atoms sharing a common direction (coherence near 0.9), as patch dictionaries do."""
    rng = np.random.RandomState(seed)
    D = rng.randn(m, p) + 2.5 * rng.randn(1, p)
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    X = (rng.randn(n, m) * (rng.rand(n, m) < 0.15)) @ D + 0.05 * rng.randn(n, p)
    return torch.tensor(X), torch.tensor(D)


@pytest.mark.parametrize("kind", ["l1", "positive", "weights", "group"])
def test_relative_gap_equals_textbook_duality_gap(kind):
    X, D = _coherent_problem(0)
    Z = torch.randn(X.shape[0], D.shape[0], dtype=X.dtype, generator=torch.Generator().manual_seed(0)) * 0.1
    alpha = 0.2
    groups = torch.arange(D.shape[0]) // 4 if kind == "group" else None
    penalty = make_penalty(positive=kind == "positive", groups=groups)
    if kind == "weights":
        penalty = L1(weights=torch.linspace(0.5, 1.5, D.shape[0], dtype=X.dtype))
    if kind == "positive":
        Z = Z.abs()
    # the textbook form: primal minus the dual value at nu = r min(1, alpha / Omega*(r D^T))
    R = X - Z @ D
    primal = 0.5 * (R * R).sum(1) + penalty.value(Z, alpha)
    scale = (alpha / penalty.dual_norm(R @ D.T)).clamp(max=1).unsqueeze(1)
    dual = 0.5 * (X * X).sum(1) - 0.5 * ((X - scale * R) ** 2).sum(1)
    expected = (primal - dual) / (0.5 * (X * X).sum(1))
    assert torch.allclose(duality_gap(X, Z, D, alpha, penalty), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("positive", [False, True])
def test_polish_reaches_sklearn_optimum_on_coherent_atoms(positive):
    X, D = _coherent_problem(1)
    alpha = 0.05
    lasso = Lasso(alpha=alpha / X.shape[1], fit_intercept=False, tol=1e-12, max_iter=500000, positive=positive)
    ref = torch.tensor(np.array([lasso.fit(D.numpy().T, x).coef_ for x in X.numpy()]))
    res = fista(X, D, alpha, penalty=L1(positive), tol=1e-10, max_iter=50000, polish=True)
    assert bool(res.converged.all())
    e, e_ref = lasso_energy(X, res.code, D, alpha), lasso_energy(X, ref, D, alpha)
    assert torch.all((e - e_ref) <= 1e-6 * e_ref)


def test_float32_gap_test_is_reachable():
    X, D = _coherent_problem(2, n=40)
    res = solve_lasso(X.float(), D.float(), 0.05, tol=1e-6, max_iter=20000)
    assert bool(res.converged.all()) and res.code.dtype == torch.float32


def test_default_chunks_are_cache_sized_on_cpu_and_large_elsewhere():
    assert default_chunk_size(256, min_rows=256) == 2048 and default_chunk_size(4096, min_rows=256) == 256
    assert default_chunk_size(256, torch.device("cuda")) == 32768
    assert default_chunk_size(1 << 20) == 1
    X, D = _coherent_problem(3, n=30)
    whole = fista(X, D, 0.1, tol=1e-12, max_iter=20000, polish=True)
    chunked = fista(X, D, 0.1, tol=1e-12, max_iter=20000, polish=True, chunk_size=7)
    assert torch.allclose(whole.code, chunked.code, atol=1e-8)
