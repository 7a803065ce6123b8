"""solve_lasso(algorithm="auto") on the plain lasso from zero: the homotopy in every regime of the grid.

``benchmarks/bench_encode.py --grid`` measured no regime (size, expected support, conditioning) where
coordinate descent beats the homotopy (see solve_lasso's docstring), so the rule has one branch; these tests
pin it on one small problem per regime, and check that its codes are the lasso optimum there.
"""

import numpy as np
import pytest
import torch

from sparsecode.objectives import duality_gap
from sparsecode.penalties import L1
from sparsecode.solvers import homotopy, solve_lasso


def _regime(kind, factor, fraction, p=16, n=30, seed=0):
    """Unit-norm samples, ``factor * p`` unit-norm atoms (Gaussian, or sharing one direction: coherent) and an
    alpha leaving about ``fraction`` of p non-zeros (a fraction of the largest correlation)."""
    rng = np.random.RandomState(seed)
    D = rng.randn(factor * p, p) + (3.0 * rng.randn(1, p) if kind == "coherent" else 0.0)
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    X = rng.randn(n, p)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    X, D = torch.tensor(X), torch.tensor(D)
    return X, D, (0.5 if fraction < 0.5 else 0.005) * float((X @ D.T).abs().max())


@pytest.mark.parametrize("kind", ["gaussian", "coherent"])
@pytest.mark.parametrize("factor", [1, 4])
@pytest.mark.parametrize("fraction", [0.05, 0.9])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_auto_is_the_homotopy_in_every_regime(kind, factor, fraction, dtype):
    X, D, alpha = _regime(kind, factor, fraction)
    X, D = X.to(dtype), D.to(dtype)
    auto, ref = solve_lasso(X, D, alpha, tol=1e-6), homotopy(X, D, alpha, tol=1e-6)
    assert torch.equal(auto.code, ref.code) and bool(auto.converged.all())
    # float32: the path's float64 code is within tol; its rounding to float32 adds up to ~1e-5 on dense codes
    limit = 1e-6 if dtype == torch.float64 else 1e-4
    assert float(duality_gap(X.double(), auto.code.double(), D.double(), alpha).max()) <= limit
    nnz = float((auto.code != 0).sum(1).double().mean()) / X.shape[1]
    assert nnz < 0.3 if fraction < 0.5 else nnz > 0.6  # the regime is the one named


def test_auto_is_the_homotopy_for_positive_codes():
    X, D, alpha = _regime("coherent", 4, 0.9)
    auto = solve_lasso(X, D, alpha, penalty=L1(positive=True), tol=1e-6)
    assert torch.equal(auto.code, homotopy(X, D, alpha, penalty=L1(positive=True), tol=1e-6).code)
    assert bool(auto.converged.all()) and bool((auto.code >= 0).all())
