"""The lasso solvers against ground truth: scikit-learn's Lasso, KKT conditions, FISTA's bound."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import Lasso

from sparsecode.objectives import duality_gap, lasso_energy
from sparsecode.penalties import L1, GroupL1
from sparsecode.solvers import (
    coordinate_descent,
    cyclic_coordinate_descent,
    fista,
    ista,
    lipschitz_constant,
    sparse_encode,
)

SOLVERS = {"fista": fista, "ista": ista, "cd": cyclic_coordinate_descent, "cod": coordinate_descent}


def _problem(seed, n=12, p=20, m=40, unit=True):
    rng = np.random.RandomState(seed)
    D = rng.randn(m, p)
    if unit:
        D /= np.linalg.norm(D, axis=1, keepdims=True)
    Z = rng.randn(n, m) * (rng.rand(n, m) < 0.1)
    X = Z @ D + 0.05 * rng.randn(n, p)
    return X, D


def _sklearn_codes(X, D, alpha, positive=False):
    # Lasso minimises 1/(2 n_features)||x - D^T z||^2 + a||z||_1, so a = alpha / n_features.
    lasso = Lasso(alpha=alpha / X.shape[1], fit_intercept=False, tol=1e-14, max_iter=200000, positive=positive)
    return np.array([lasso.fit(D.T, x).coef_ for x in X])


@pytest.mark.parametrize("name", ["fista", "ista", "cd"])
@pytest.mark.parametrize("seed,alpha,positive",
                         [(0, 0.1, False), (1, 0.5, False), (2, 0.05, True), (3, 0.3, True)])
def test_reaches_sklearn_lasso_optimum(name, seed, alpha, positive):
    X, D = _problem(seed)
    ref = _sklearn_codes(X, D, alpha, positive)
    Xt, Dt = torch.tensor(X), torch.tensor(D)
    res = SOLVERS[name](Xt, Dt, alpha, penalty=L1(positive), tol=1e-9, max_iter=30000)
    e = lasso_energy(Xt, res.code, Dt, alpha)
    e_ref = lasso_energy(Xt, torch.tensor(ref), Dt, alpha)
    assert torch.all((e - e_ref) / e_ref <= 1e-6)
    if positive:
        assert bool((res.code >= 0).all())


@pytest.mark.parametrize("name", ["fista", "cd"])
def test_kkt_conditions(name):
    X, D = _problem(4)
    alpha = 0.2
    Xt, Dt = torch.tensor(X), torch.tensor(D)
    Z = SOLVERS[name](Xt, Dt, alpha, tol=1e-13, max_iter=100000).code
    corr = (Xt - Z @ Dt) @ Dt.T  # minus the gradient of the smooth part
    on = Z != 0
    assert torch.allclose(corr[on], alpha * torch.sign(Z[on]), atol=1e-6)
    assert bool((corr[~on].abs() <= alpha + 1e-6).all())


def test_fista_convergence_bound():
    """Beck & Teboulle Thm 4.4: F(x_k) - F* <= 2 L ||x0 - x*||^2 / (k+1)^2 for every k."""
    X, D = _problem(5, n=8, p=30, m=60, unit=False)
    Xt, Dt = torch.tensor(X), torch.tensor(D)
    alpha = 0.1 * float(np.abs(X @ D.T).max())
    L = float(torch.linalg.matrix_norm(Dt, 2) ** 2)
    star = fista(Xt, Dt, alpha, tol=1e-14, max_iter=50000, L=L).code
    f_star = lasso_energy(Xt, star, Dt, alpha)
    radius = (star**2).sum(1)
    for k in (1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144):
        zk = fista(Xt, Dt, alpha, tol=0, max_iter=k, L=L, restart=False).code
        gap = lasso_energy(Xt, zk, Dt, alpha) - f_star
        assert bool((gap <= 2 * L * radius / (k + 1) ** 2 + 1e-10).all()), k


def test_ista_is_monotone_and_meets_its_bound():
    X, D = _problem(6, unit=False)
    Xt, Dt = torch.tensor(X), torch.tensor(D)
    alpha, L = 0.3, float(torch.linalg.matrix_norm(Dt, 2) ** 2)
    star = fista(Xt, Dt, alpha, tol=1e-14, max_iter=50000).code
    f_star, radius = lasso_energy(Xt, star, Dt, alpha), (star**2).sum(1)
    previous = None
    for k in range(1, 60):
        e = lasso_energy(Xt, ista(Xt, Dt, alpha, tol=0, max_iter=k, L=L).code, Dt, alpha)
        assert bool((e - f_star <= L * radius / (2 * k) + 1e-10).all())
        if previous is not None:
            assert bool((e <= previous + 1e-12).all())
        previous = e


def test_cd_fixed_point_equals_fista_and_energy_never_increases():
    from sparsecode.solvers.cd import cd_step

    X, D = _problem(7)
    Xt, Dt = torch.tensor(X), torch.tensor(D)
    alpha = 0.15
    G = Dt @ Dt.T
    S = torch.eye(G.shape[0], dtype=G.dtype) - G
    B, Z = Xt @ Dt.T, torch.zeros(X.shape[0], D.shape[0], dtype=torch.float64)
    energy = lasso_energy(Xt, Z, Dt, alpha)
    for _ in range(400):
        B, Z = cd_step(B, Z, S, torch.diagonal(G), alpha, False)
        new = lasso_energy(Xt, Z, Dt, alpha)
        assert bool((new <= energy + 1e-12).all())
        energy = new
    ref = fista(Xt, Dt, alpha, tol=1e-14, max_iter=50000).code
    assert torch.allclose(coordinate_descent(Xt, Dt, alpha, tol=1e-14, max_iter=10000).code, ref, atol=1e-6)


def test_warm_start_from_the_solution_stops_at_once():
    X, D = _problem(8)
    Xt, Dt = torch.tensor(X), torch.tensor(D)
    star = fista(Xt, Dt, 0.2, tol=1e-13, max_iter=50000).code
    res = fista(Xt, Dt, 0.2, z0=star, tol=1e-8, check_every=1)
    assert res.n_iter <= 1 and bool(res.converged.all())  # 0: the working sets check first


def test_max_iter_zero_returns_init_and_reports_gap():
    X, D = _problem(9)
    res = fista(torch.tensor(X), torch.tensor(D), 0.2, max_iter=0)
    assert res.n_iter == 0 and bool((res.code == 0).all()) and not bool(res.converged.any())


def test_per_sample_stopping_and_chunking_agree_with_one_batch():
    X, D = _problem(10, n=50)
    Xt, Dt = torch.tensor(X), torch.tensor(D)
    whole = fista(Xt, Dt, 0.3, tol=1e-12, max_iter=20000)
    chunked = fista(Xt, Dt, 0.3, tol=1e-12, max_iter=20000, chunk_size=7)
    assert torch.allclose(whole.code, chunked.code, atol=1e-8)
    assert bool(whole.converged.all()) and (whole.gap <= 1e-12).all()


def test_unconverged_samples_are_reported():
    X, D = _problem(11)
    res = ista(torch.tensor(X), torch.tensor(D), 0.01, tol=1e-12, max_iter=5)
    assert not bool(res.converged.all())
    assert bool((res.gap > 1e-12).any())


def test_lipschitz_constant_matches_spectral_norm():
    _, D = _problem(12, unit=False)
    Dt = torch.tensor(D)
    exact = float(torch.linalg.matrix_norm(Dt, 2) ** 2)
    assert abs(lipschitz_constant(Dt) - exact) / exact < 1e-4
    assert lipschitz_constant(torch.zeros(3, 4)) == 0.0


def test_zero_dictionary_gives_zero_codes():
    res = fista(torch.randn(4, 3), torch.zeros(5, 3), 0.1)
    assert bool((res.code == 0).all())


@pytest.mark.parametrize("alpha", [-0.1, float("nan"), torch.tensor(0.1), "0.1", None])
def test_alpha_must_be_a_non_negative_number(alpha):
    with pytest.raises(ValueError, match="alpha must be a non-negative number"):
        fista(torch.randn(4, 3), torch.randn(5, 3), alpha)
    with pytest.raises(ValueError, match="alpha must be a non-negative number"):
        lasso_energy(torch.randn(4, 3), torch.zeros(4, 5), torch.randn(5, 3), alpha)


def test_group_lasso_duality_gap_closes():
    X, D = _problem(13)
    Xt, Dt = torch.tensor(X), torch.tensor(D)
    groups = torch.arange(D.shape[0]) // 4
    res = fista(Xt, Dt, 0.3, penalty=GroupL1(groups), tol=1e-12, max_iter=50000)
    assert bool(res.converged.all())
    # every group is either all zero or all active: block sparsity
    blocks = (res.code.reshape(X.shape[0], -1, 4) != 0)
    assert bool((blocks.all(2) | ~blocks.any(2)).all())


def test_float32_stays_float32_and_matches_float64():
    X, D = _problem(14)
    r32 = fista(torch.tensor(X, dtype=torch.float32), torch.tensor(D, dtype=torch.float32), 0.2, tol=1e-6)
    r64 = fista(torch.tensor(X), torch.tensor(D), 0.2, tol=1e-12, max_iter=50000)
    assert r32.code.dtype == torch.float32
    assert torch.allclose(r32.code.double(), r64.code, atol=1e-3)


def test_duality_gap_is_zero_at_the_optimum_and_positive_elsewhere():
    X, D = _problem(15)
    Xt, Dt = torch.tensor(X), torch.tensor(D)
    star = fista(Xt, Dt, 0.2, tol=1e-14, max_iter=50000).code
    gap = duality_gap(Xt, star, Dt, 0.2)
    assert bool((gap.abs() < 1e-10).all())
    gap0 = duality_gap(Xt, torch.zeros_like(star), Dt, 0.2)
    nonzero = (star != 0).any(1)
    assert bool((gap0[nonzero] > 0).all()) and bool((gap0[~nonzero].abs() < 1e-12).all())


def test_sparse_encode_mirrors_sklearn_and_keeps_numpy():
    from sklearn.decomposition import sparse_encode as sk_encode

    X, D = _problem(16)
    ours = sparse_encode(X, D, alpha=0.2, tol=1e-12, max_iter=50000)
    ref = sk_encode(X, D, alpha=0.2, algorithm="lasso_cd", max_iter=100000)
    assert isinstance(ours, np.ndarray) and ours.dtype == np.float64
    assert np.allclose(ours, ref, atol=1e-4)


def test_device_is_followed(device):
    X, D = _problem(17)
    res = fista(torch.tensor(X, device=device), torch.tensor(D, device=device), 0.2)
    assert res.code.device.type == device.type
