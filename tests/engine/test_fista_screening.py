"""FISTA with gap-safe screening and working sets: KKT conditions on strongly coherent atoms, safe screening."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import Lasso

from sparsecode.objectives import duality_gap, lasso_energy
from sparsecode.penalties import L1
from sparsecode.solvers import fista, ista
from sparsecode.solvers.lipschitz import restricted_lipschitz
from sparsecode.solvers.working_set import _full_gap, gap_safe_screen


def _coherent(seed=0, n=24, p=16, m=48):
    """Unit atoms sharing one direction (mutual coherence above 0.95), and signals of a few of them."""
    rng = np.random.RandomState(seed)
    u = rng.randn(p)
    E = rng.randn(m, p)
    D = np.sqrt(0.97) * u / np.linalg.norm(u) + np.sqrt(0.03) * E / np.linalg.norm(E, axis=1, keepdims=True)
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    X = (rng.randn(n, m) * (rng.rand(n, m) < 0.1)) @ D + 0.1 * rng.randn(n, p)
    return X, D


def _alpha(X, D, fraction):
    return fraction * float(np.abs(X @ D.T).max(1).mean())


def _assert_kkt(X, Z, D, alpha, positive, atol):
    """Lasso optimality: c_j = alpha sign(z_j) on the support, |c_j| <= alpha (c_j <= alpha if z >= 0) off it."""
    C = (X - Z @ D) @ D.T
    on = Z != 0
    assert torch.all((C - alpha * torch.sign(Z))[on].abs() <= atol)
    off = C[~on] if positive else C[~on].abs()
    assert torch.all(off <= alpha + atol)
    if positive:
        assert torch.all(Z >= 0)


def test_dictionary_is_strongly_coherent():
    _, D = _coherent()
    G = np.abs(D @ D.T)[~np.eye(D.shape[0], dtype=bool)]
    assert G.min() > 0.9 and G.max() > 0.95


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("positive", [False, True])
@pytest.mark.parametrize("fraction", [0.5, 0.1])  # sparse and medium codes
def test_kkt_conditions_and_sklearn_energy_on_coherent_atoms(dtype, positive, fraction):
    X, D = _coherent(1)
    alpha = _alpha(X, D, fraction)
    Xt, Dt = torch.tensor(X, dtype=dtype), torch.tensor(D, dtype=dtype)
    tol = 1e-6 if dtype == torch.float32 else 1e-10
    res = fista(Xt, Dt, alpha, penalty=L1(positive), tol=tol, max_iter=20000)
    assert bool(res.converged.all())
    # the reported gaps are those of the returned codes
    assert torch.allclose(res.gap.double(), duality_gap(Xt.double(), res.code.double(), Dt.double(), alpha,
                                                        L1(positive)), rtol=0.1, atol=2 * tol)
    Z = res.code.double()
    _assert_kkt(torch.tensor(X), Z, torch.tensor(D), alpha, positive,
                atol=(2e-3 if dtype == torch.float32 else 1e-6) * alpha)
    lasso = Lasso(alpha=alpha / X.shape[1], fit_intercept=False, tol=1e-14, max_iter=200000, positive=positive)
    ref = torch.tensor(np.array([lasso.fit(D.T, x).coef_ for x in X]))
    e, e_ref = lasso_energy(torch.tensor(X), Z, torch.tensor(D), alpha), lasso_energy(torch.tensor(X), ref,
                                                                                      torch.tensor(D), alpha)
    assert torch.all(e - e_ref <= (1e-5 if dtype == torch.float32 else 1e-9) * e_ref)
    assert (ref != 0).sum(1).float().mean() < (8 if fraction == 0.5 else 24)


@pytest.mark.parametrize("positive", [False, True])
def test_screening_never_removes_a_unit_of_the_optimum(positive):
    X, D = _coherent(2)
    Xt, Dt = torch.tensor(X), torch.tensor(D)
    alpha, penalty = _alpha(X, D, 0.3), L1(positive)
    star = fista(Xt, Dt, alpha, penalty=penalty, tol=1e-14, max_iter=50000, screen=False, polish=True)
    assert bool(star.converged.all())
    norms = torch.linalg.vector_norm(Dt, dim=1)
    screened_any = 0
    for k in (1, 5, 20, 100, 400):  # iterates from far to near the optimum
        Z = fista(Xt, Dt, alpha, penalty=penalty, tol=0, max_iter=k, screen=False).code
        rel, C = _full_gap(Xt, Z, Dt, alpha, penalty)
        out = gap_safe_screen(Xt, C, rel, norms, alpha, penalty)
        assert not bool((out & (star.code != 0)).any())
        screened_any = max(screened_any, int(out.sum()))
    # near the optimum most zeros of the solution are proven zero
    assert screened_any > 0.5 * int((star.code == 0).sum())


def test_weighted_l1_and_ista_on_working_sets():
    X, D = _coherent(3)
    Xt, Dt = torch.tensor(X), torch.tensor(D)
    alpha = _alpha(X, D, 0.3)
    weights = torch.linspace(0.5, 1.5, D.shape[0], dtype=torch.float64)
    res = fista(Xt, Dt, alpha, penalty=L1(weights=weights), tol=1e-10, max_iter=20000)
    ref = fista(Xt, Dt, alpha, penalty=L1(weights=weights), tol=1e-12, max_iter=50000, screen=False,
                polish=True)
    assert bool(res.converged.all()) and bool(ref.converged.all())
    assert torch.allclose(res.code, ref.code, atol=1e-6)
    # ISTA (no momentum) on working sets: honest gaps, and no worse than plain ISTA on the same budget
    ws = ista(Xt, Dt, alpha, tol=1e-6, max_iter=3000)
    plain = fista(Xt, Dt, alpha, tol=1e-6, max_iter=3000, momentum=False, screen=False)
    assert torch.allclose(ws.gap, duality_gap(Xt, ws.code, Dt, alpha))
    assert int(ws.converged.sum()) >= int(plain.converged.sum()) and ws.gap.mean() <= plain.gap.mean()


def test_budget_and_warm_start_are_honoured():
    X, D = _coherent(4)
    Xt, Dt = torch.tensor(X), torch.tensor(D)
    alpha = _alpha(X, D, 0.3)
    short = fista(Xt, Dt, alpha, tol=1e-12, max_iter=7)
    assert short.n_iter <= 7
    assert torch.allclose(short.gap, duality_gap(Xt, short.code, Dt, alpha))
    again = fista(Xt, Dt, alpha, z0=short.code, tol=1e-10, max_iter=20000)
    assert bool(again.converged.all())


def test_restricted_lipschitz_bounds_the_restricted_spectrum():
    gen = torch.Generator().manual_seed(0)
    _, Dc = _coherent(5)
    for D in (torch.randn(40, 12, generator=gen, dtype=torch.float64), torch.tensor(Dc)):
        G = D @ D.T
        keep = torch.rand(6, D.shape[0], generator=gen) < 0.3
        bound = restricted_lipschitz(G.abs(), keep)
        for i in range(keep.shape[0]):
            idx = keep[i].nonzero().squeeze(1)
            top = float(torch.linalg.eigvalsh(G[idx][:, idx]).max())
            assert top <= float(bound[i]) <= 1.5 * top
        # the batched form (one block per row) gives the same bounds
        blocks = G.abs().expand(keep.shape[0], -1, -1)
        assert torch.allclose(restricted_lipschitz(blocks, keep), bound)
    # atoms of one sign: the bound is tight
    idx = keep[0].nonzero().squeeze(1)
    assert float(bound[0]) <= 1.01 * float(torch.linalg.eigvalsh(G[idx][:, idx]).max())
