"""The batched active-set method (the torch twin of the compiled kernels' exact solve, run on GPUs): the lasso
optimum from any start (KKT conditions, scikit-learn's energy), per-unit thresholds, the start support without
joins (the polishing of FISTA's iterates), singular Gram matrices (a repeated atom, more atoms than the features
span), and the torch paths of "cd", "fista" and the homotopy that it finishes, on every device."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.linear_model import Lasso

from sparsecode.penalties import L1
from sparsecode.solvers import solve_lasso
from sparsecode.solvers.active_set import active_set

from .test_cd_dense import ALPHA, _dense_coherent
from .test_solvers_sparse_coding import _coherent, _kkt_violation, _problem


def _solve(X, D, alpha, positive=False, Z=None, **kwargs):
    Xt, Dt = torch.tensor(X), torch.tensor(D)
    Z = torch.zeros(X.shape[0], D.shape[0], dtype=torch.float64) if Z is None else torch.tensor(Z)
    exact = active_set(Xt @ Dt.T, Dt @ Dt.T, Z, alpha, positive, **kwargs)
    return Z.numpy(), exact.numpy()


def _energy(X, Z, D, alpha):
    return 0.5 * ((X - Z @ D) ** 2).sum(1) + alpha * np.abs(Z).sum(1)


@pytest.mark.parametrize("kind, alpha", [("gaussian", 0.3), ("dense", 0.01), ("coherent", 0.05)])
@pytest.mark.parametrize("positive", [False, True])
@pytest.mark.parametrize("start", ["zero", "random"])
def test_the_lasso_optimum_from_any_start(kind, alpha, positive, start):
    X, D = _coherent(0) if kind == "coherent" else _problem(1)
    rng = np.random.RandomState(2)
    Z0 = None
    if start == "random":  # a warm start on the wrong support with the wrong signs, more atoms than features
        Z0 = rng.randn(X.shape[0], D.shape[0]) * (rng.rand(X.shape[0], D.shape[0]) < 0.6)
        Z0 = np.abs(Z0) if positive else Z0
    Z, exact = _solve(X, D, alpha, positive, Z0, rank=D.shape[1])
    assert exact.all()
    assert _kkt_violation(X, Z, D, alpha, positive) < 1e-9
    if kind == "dense":
        assert (Z != 0).sum(1).mean() > 0.6 * D.shape[1]
    ref = np.array([Lasso(alpha=alpha / X.shape[1], fit_intercept=False, positive=positive, tol=1e-12,
                          max_iter=100000).fit(D.T, x).coef_ for x in X])
    assert (_energy(X, Z, D, alpha) <= _energy(X, ref, D, alpha) + 1e-10).all()


def test_per_unit_thresholds():
    X, D = _problem(3)
    w = np.linspace(0.5, 2.0, D.shape[0])
    Z, exact = _solve(X, D, torch.tensor(0.1 * w))
    assert exact.all()
    # the weighted lasso is the plain one in the atoms d_j / w_j, with codes w_j z_j
    assert _kkt_violation(X, Z * w, D / w[:, None], 0.1) < 1e-9


def test_without_joins_units_only_leave_and_the_energy_falls():
    X, D = _problem(4)
    rng = np.random.RandomState(4)
    support = rng.rand(X.shape[0], D.shape[0]) < 0.2
    Z0 = np.where(support, rng.randn(*support.shape), 0.0)
    Z, exact = _solve(X, D, 0.05, Z=Z0, join=False)
    assert exact.all() and not (Z[~support] != 0).any()
    assert (_energy(X, Z, D, 0.05) <= _energy(X, Z0, D, 0.05)).all()
    on = Z != 0  # the optimum on the orthant of the support left: c_j = alpha sign(z_j) there
    assert np.abs(((X - Z @ D) @ D.T - 0.05 * np.sign(Z))[on]).max() < 1e-9


def test_a_repeated_atom_and_a_rank_deficient_dictionary():
    """Singular Gram matrices: a copy of an atom never joins beside it; with more atoms than the features span,
    violators within the support's span swap in for an atom of it (the ray)."""
    X, D = _problem(5, p=10, m=30)
    D = np.vstack([D, D[:1]])
    Z, exact = _solve(X, D, 1e-3, rank=D.shape[1])
    assert exact.all() and _kkt_violation(X, Z, D, 1e-3) < 1e-8
    assert not ((Z[:, 0] != 0) & (Z[:, -1] != 0)).any()
    rng = np.random.RandomState(6)
    D = rng.randn(20, 8) * np.logspace(0, -3, 8)
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    X = rng.randn(10, 8)
    Z, exact = _solve(X, D, 1e-4, rank=8)
    assert exact.all() and _kkt_violation(X, Z, D, 1e-4) < 1e-6
    assert (Z != 0).sum(1).mean() >= 7


def test_no_step_leaves_the_start():
    X, D = _problem(7)
    Z0 = np.random.RandomState(7).randn(X.shape[0], D.shape[0])
    Z, exact = _solve(X, D, 0.1, Z=Z0, max_steps=0)
    assert not exact.any() and np.array_equal(Z, Z0)


@pytest.mark.parametrize("algorithm", ["cd", "fista", "homotopy"])
@pytest.mark.parametrize("positive", [False, True])
def test_the_torch_paths_reach_tol_on_dense_codes_in_coherent_atoms(device, torch_paths, algorithm, positive):
    """The GPU's paths (the torch twins, here also on the CPU) in float32, within the default max_iter: the
    active-set solve finishes what sweeps and FISTA leave (both stopped above tol before it)."""
    X, D = _dense_coherent(64, positive)
    Xt, Dt = (torch.tensor(a, dtype=torch.float32, device=device) for a in (X, D))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = solve_lasso(Xt, Dt, ALPHA, penalty=L1(positive), algorithm=algorithm, tol=1e-6)
    assert res.code.device == Xt.device and bool(res.converged.all())
    # float32 codes of ill-conditioned supports: their rounding alone moves the correlations by more than tol,
    # so the energy (in float64) is what meets it, against the exact solution of the float32 data
    X, D = Xt.double().cpu().numpy(), Dt.double().cpu().numpy()
    ref, exact = _solve(X, D, ALPHA, positive, rank=D.shape[1])
    assert exact.all()
    Z = res.code.double().cpu().numpy()
    assert ((_energy(X, Z, D, ALPHA) - _energy(X, ref, D, ALPHA)) <= 1e-6 * 0.5 * (X * X).sum(1)).all()
    assert (Z != 0).sum(1).mean() >= 0.8 * D.shape[1]
