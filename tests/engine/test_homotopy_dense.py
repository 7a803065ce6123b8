"""The compiled homotopy on dense codes in overcomplete dictionaries, where every kind of event is frequent: atoms
join, leave and rejoin, and atoms that the active ones span stay out. The path keeps the Gram entries of its
active rows and inactive columns in a compact copy that follows each event; checked against the torch twin (which
reads the Gram matrix itself), the lasso's KKT conditions and FISTA."""

import importlib

import numpy as np
import pytest
import torch

from sparsecode._extension import compiled_kernels
from sparsecode.objectives import lasso_energy
from sparsecode.penalties import L1
from sparsecode.solvers import fista, homotopy
from sparsecode.solvers.homotopy import _follow_paths

from .test_homotopy import _kkt_violation

pytestmark = pytest.mark.skipif(compiled_kernels() is None, reason="checks the compiled homotopy")


def _overcomplete(seed, p=24, factor=2, n=40, duplicates=0, coherence=1.0, positive=False):
    """Unit-norm samples and ``factor * p`` coherent unit-norm atoms, the first ``duplicates`` of them twice; with
    ``positive``, samples from dense non-negative codes (plus noise)."""
    rng = np.random.RandomState(seed)
    D = rng.randn(factor * p, p) + coherence * rng.randn(1, p)
    D = np.vstack([D, D[:duplicates]])
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    X = np.abs(rng.randn(n, D.shape[0])) @ D + 0.3 * rng.randn(n, p) if positive else rng.randn(n, p)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return torch.tensor(X), torch.tensor(D)


@pytest.mark.parametrize("positive", [False, True])
def test_compiled_path_equals_the_torch_path_on_dense_codes(monkeypatch, positive):
    X, D = _overcomplete(0, positive=positive)
    alpha = 0.002
    compiled = homotopy(X, D, alpha, penalty=L1(positive), tol=0)
    nnz = int((compiled.code != 0).sum(1).max())
    assert nnz > 0.6 * X.shape[1] and compiled.n_iter > nnz  # dense codes; atoms left on the way
    monkeypatch.setattr(importlib.import_module("sparsecode.solvers.homotopy"), "compiled_kernels", lambda: None)
    batched = homotopy(X, D, alpha, penalty=L1(positive), tol=0)
    assert torch.allclose(compiled.code, batched.code, atol=1e-9)
    assert compiled.n_iter == batched.n_iter and bool(compiled.converged.all())


@pytest.mark.parametrize("factor", [1, 2, 4])
def test_compiled_path_meets_the_kkt_conditions_on_dense_codes(factor):
    """The path alone (no finishing solver) in float64, 1x to 4x overcomplete, 80-100% of the features active."""
    X, D = _overcomplete(factor, factor=factor)
    alpha = 0.001
    Z, steps, arrived, _ = _follow_paths(X, D, alpha, False, 2000, None, tol=0.0)
    assert bool(arrived.all()) and steps > int((Z != 0).sum(1).max())
    assert float((Z != 0).sum(1).double().mean()) > 0.8 * X.shape[1]
    assert float(_kkt_violation(X, Z, D, alpha).max()) < 1e-8


@pytest.mark.parametrize("positive", [False, True])
def test_duplicates_stay_out_of_dense_paths_and_the_codes_are_optimal(positive):
    """Repeated atoms: the lasso's codes are not unique (the torch twin may split the weights otherwise), its
    energy is."""
    X, D = _overcomplete(3, n=20, duplicates=6, positive=positive)
    res = homotopy(X, D, 0.003, penalty=L1(positive), tol=1e-10, max_iter=5000)
    assert bool(res.converged.all()) and res.n_iter < 4 * D.shape[0]  # the path alone: no finishing iterations
    assert float((res.code != 0).sum(1).double().mean()) > 0.8 * X.shape[1]
    ref = fista(X, D, 0.003, penalty=L1(positive), tol=1e-12, max_iter=200000, polish=True).code
    assert torch.allclose(lasso_energy(X, res.code, D, 0.003), lasso_energy(X, ref, D, 0.003), rtol=1e-8)
