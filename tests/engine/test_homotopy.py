"""The homotopy (LARS-lasso) path against ground truth: scikit-learn's Lasso, KKT, FISTA, edge cases."""

import importlib
import os
import shutil

import numpy as np
import pytest
import torch
from sklearn.linear_model import Lasso
from torch.utils._python_dispatch import TorchDispatchMode

from sparsecode._extension import compiled_kernels
from sparsecode.objectives import duality_gap, lasso_energy
from sparsecode.penalties import L1, GroupL1
from sparsecode.solvers import fista, homotopy, solve_lasso
from sparsecode.solvers.homotopy import _argmax_rows_, _follow_paths, _path_chunk


def _problem(seed, n=30, p=16, m=48, coherence=2.5):
    """Atoms sharing a common direction (coherent, as patch dictionaries are)."""
    rng = np.random.RandomState(seed)
    D = rng.randn(m, p) + coherence * rng.randn(1, p)
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    X = (rng.randn(n, m) * (rng.rand(n, m) < 0.15)) @ D + 0.05 * rng.randn(n, p)
    return torch.tensor(X), torch.tensor(D)


def _path(X, D, alpha, positive=False):
    """The path alone, without the finish."""
    return _path_chunk(X, D, D @ D.T, alpha, positive, 1000)


@pytest.mark.parametrize("seed,alpha,positive",
                         [(0, 0.05, False), (1, 0.2, False), (2, 0.02, True), (3, 0.1, True)])
def test_path_reaches_sklearn_lasso_optimum(seed, alpha, positive):
    X, D = _problem(seed)
    lasso = Lasso(alpha=alpha / X.shape[1], fit_intercept=False, tol=1e-14, max_iter=500000, positive=positive)
    ref = torch.tensor(np.array([lasso.fit(D.numpy().T, x).coef_ for x in X.numpy()]))
    Z, steps, arrived = _path(X, D, alpha, positive)
    assert bool(arrived.all()) and steps < 4 * D.shape[0]
    e, e_ref = lasso_energy(X, Z, D, alpha), lasso_energy(X, ref, D, alpha)
    assert torch.all((e - e_ref) <= 1e-6 * e_ref)
    assert torch.all(duality_gap(X, Z, D, alpha, L1(positive)) <= 1e-10)
    if positive:
        assert bool((Z >= 0).all())


def test_path_meets_the_kkt_conditions():
    X, D = _problem(4, m=64)
    alpha = 0.03
    Z, _, arrived = _path(X, D, alpha)
    corr = (X - Z @ D) @ D.T
    on = Z != 0
    assert bool(arrived.all())
    assert torch.allclose(corr[on], alpha * torch.sign(Z[on]), atol=1e-9)
    assert bool((corr[~on].abs() <= alpha + 1e-9).all())


def test_atoms_leave_the_path_and_the_answer_stays_exact():
    """Small alpha on coherent atoms: the path drops atoms on its way (steps > non-zeros)."""
    X, D = _problem(5, n=40, m=64, coherence=4.0)
    Z, steps, arrived = _path(X, D, 0.005)
    assert bool(arrived.all()) and steps > int((Z != 0).sum(1).max())
    ref = fista(X, D, 0.005, tol=1e-12, max_iter=200000, polish=True).code
    assert torch.allclose(lasso_energy(X, Z, D, 0.005), lasso_energy(X, ref, D, 0.005), rtol=1e-9)


def _complete(seed, p=16, n=200, coherence=0.0):
    """Unit-norm samples and a complete (p x p) dictionary: dense codes at small alpha, where atoms leave the path
    often, and with ``coherence`` an ill-conditioned active Gram matrix."""
    rng = np.random.RandomState(seed)
    D = rng.randn(p, p) + coherence * rng.randn(1, p)
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    X = rng.randn(n, p)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return torch.tensor(X), torch.tensor(D)


def _kkt_violation(X, Z, D, alpha):
    """The largest violation of the lasso's optimality conditions per sample, relative to alpha."""
    corr = (X.double() - Z.double() @ D.double()) @ D.double().T
    on = Z != 0
    active = torch.where(on, (corr - alpha * torch.sign(Z.double())).abs(), 0.0).amax(1)
    inactive = torch.where(on, 0.0, corr.abs() - alpha).amax(1).clamp(min=0)
    return torch.maximum(active, inactive) / alpha


def test_an_atom_that_leaves_may_join_with_the_other_sign_in_the_next_step():
    """Dense codes in a complete dictionary: an atom that leaves (its correlation at +-lambda) can cross to the
    other side within the next step; barring it from joining there left a quarter of these paths off the
    optimum (KKT violated by up to 50%)."""
    X, D = _complete(1)
    res = homotopy(X, D, 0.005, tol=0)
    assert bool(res.converged.all()) and res.n_iter > int((res.code != 0).sum(1).max())  # atoms left
    assert float(_kkt_violation(X, res.code, D, 0.005).max()) < 1e-9
    Z, _, arrived = _path(X, D, 0.005)  # the torch twin
    assert bool(arrived.all()) and float(_kkt_violation(X, Z, D, 0.005).max()) < 1e-9


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("coherence", [0.0, 2.5])
def test_dense_codes_reach_the_sklearn_optimum_on_the_path_alone(dtype, coherence):
    """90% of the atoms active: the path arrives within tol on every sample, without FISTA (whose iterations
    n_iter would count), in float32 too (the path runs in float64)."""
    X, D = _complete(2, p=24, n=40, coherence=coherence)
    alpha = 0.002
    res = homotopy(X.to(dtype), D.to(dtype), alpha, tol=1e-7)
    assert res.code.dtype == dtype and bool(res.converged.all()) and res.n_iter < 4 * D.shape[0]
    assert float((res.code != 0).sum(1).double().mean()) > 0.85 * D.shape[0]
    lasso = Lasso(alpha=alpha / X.shape[1], fit_intercept=False, tol=1e-14, max_iter=1000000)
    ref = torch.tensor(np.array([lasso.fit(D.numpy().T, x).coef_ for x in X.numpy()[:10]]))
    e, e_ref = lasso_energy(X[:10], res.code[:10].double(), D, alpha), lasso_energy(X[:10], ref, D, alpha)
    assert torch.all(e - e_ref <= 1e-6 * e_ref)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_gap_is_that_of_the_returned_codes(dtype):
    """The compiled path measures the gap from the Gram form: it equals the residual form's, measured in
    float64 on the codes as returned (rounded to float32 for float32 data)."""
    X, D = (t.to(dtype) for t in _problem(15, n=80))
    res = homotopy(X, D, 0.03, tol=1e-6)
    ref = duality_gap(X.double(), res.code.double(), D.double(), 0.03)
    assert res.gap.dtype == dtype and torch.allclose(res.gap.double(), ref, rtol=1e-3, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
def test_codes_and_gaps_come_back_in_the_data_dtype(dtype):
    """The kernel returns float32 or float64 outputs; other dtypes (half) get theirs converted back."""
    X, D = (t.to(dtype) for t in _problem(16, n=20))
    res = homotopy(X, D, 0.05, tol=0)
    assert res.code.dtype == dtype and res.gap.dtype == dtype
    ref = homotopy(X.double(), D.double(), 0.05, tol=0).code
    assert torch.allclose(res.code.double(), ref, atol=1e-2 if dtype == torch.float16 else 1e-5)


def test_float32_path_meets_tol_in_all_but_parallel_atoms():
    """Where a float64 copy of the Gram entries the correlation updates read would outgrow the cache (here 96 x
    1500 entries), float32 data run those updates on a float32 copy; in atoms sharing 97% of one direction its
    rounding reorders events (3% of these codes missed tol=1e-6), and those paths are followed again in
    float64: every code converges on the path, without the finishing solver."""
    rng = np.random.RandomState(0)
    u, E = rng.randn(96), rng.randn(1500, 96)
    D = np.sqrt(0.97) * u / np.linalg.norm(u) + np.sqrt(0.03) * E / np.linalg.norm(E, axis=1, keepdims=True)
    X = rng.randn(300, 96)
    X, D = (torch.tensor(a / np.linalg.norm(a, axis=1, keepdims=True), dtype=torch.float32) for a in (X, D))
    Z, steps, converged, gap = _follow_paths(X, D, 1.5e-6, True, 1000, None, tol=1e-6)
    assert bool(converged.all()) and steps <= 8
    assert float(duality_gap(X.double(), Z.double(), D.double(), 1.5e-6, L1(True)).max()) < 1e-4


def test_float32_reaches_the_gap_tolerance():
    X, D = _problem(6, n=200)
    res = homotopy(X.float(), D.float(), 0.05, tol=1e-6)
    assert res.code.dtype == torch.float32 and bool(res.converged.all())
    ref = homotopy(X, D, 0.05, tol=1e-12).code
    assert torch.allclose(res.code.double(), ref, atol=1e-3)


@pytest.mark.parametrize("compiled", [True, False])
def test_duplicate_atoms_stay_out_of_the_path(compiled, monkeypatch):
    """An atom that would make the active Gram matrix singular stays out (as lars_path drops a degenerate
    regressor): the path reaches the optimum without FISTA (whose iterations n_iter would count)."""
    if not compiled:
        module = importlib.import_module("sparsecode.solvers.homotopy")  # the name alone is the function
        monkeypatch.setattr(module, "compiled_kernels", lambda: None)
    X, D = _problem(7)
    D = torch.cat([D, D[:4]])
    res = homotopy(X, D, 0.05, tol=1e-10, max_iter=5000)
    ref = fista(X, D, 0.05, tol=1e-12, max_iter=100000).code
    assert bool(res.converged.all()) and res.n_iter < 2 * D.shape[0]
    assert torch.allclose(lasso_energy(X, res.code, D, 0.05), lasso_energy(X, ref, D, 0.05), rtol=1e-8)


def test_large_alpha_zero_rows_and_empty_input():
    X, D = _problem(8)
    X[3] = 0
    lam_max = float((X @ D.T).abs().max())
    res = homotopy(X, D, lam_max * 1.01)
    assert bool((res.code == 0).all()) and res.n_iter == 0 and bool(res.converged.all())
    assert bool((homotopy(X, D, 0.1).code[3] == 0).all())
    empty = homotopy(X[:0], D, 0.1)
    assert empty.code.shape == (0, D.shape[0]) and empty.converged.shape == (0,)


def test_too_few_steps_are_reported_and_finished_and_tol_zero_trusts_the_path():
    X, D = _problem(9)
    _, steps, arrived, _ = _follow_paths(X, D, 0.02, False, 3, None, tol=1e-5)
    assert steps == 3 and not bool(arrived.all())
    # the codes the path left are finished from there, by coordinate descent where it is compiled
    short = homotopy(X, D, 0.02, max_iter=3)
    assert bool((short.gap[short.converged] <= 1e-5).all())
    assert bool(short.converged.all()) or compiled_kernels() is None
    exact = homotopy(X, D, 0.02, tol=0)
    assert bool(exact.converged.all()) and bool((exact.gap <= 1e-10).all())


def test_chunks_agree_with_one_batch():
    X, D = _problem(10, n=50)
    whole, chunked = homotopy(X, D, 0.05), homotopy(X, D, 0.05, chunk_size=7)
    assert torch.allclose(whole.code, chunked.code, atol=1e-12)


def test_bad_penalties_are_refused():
    X, D = _problem(11)
    with pytest.raises(ValueError, match="non-negative number"):
        homotopy(X, D, torch.full((D.shape[0],), 0.1, dtype=X.dtype))
    with pytest.raises(ValueError, match="without weights"):
        homotopy(X, D, 0.1, penalty=L1(weights=torch.ones(D.shape[0], dtype=X.dtype)))
    with pytest.raises(ValueError, match="GroupL1 is not a penalty this solver takes"):
        homotopy(X, D, 0.1, penalty=GroupL1(torch.arange(D.shape[0]) // 2))
    with pytest.raises(ValueError, match="alpha > 0"):
        homotopy(X, D, 0.0)


def test_auto_is_the_homotopy_from_zero_and_fista_from_a_warm_start():
    X, D = _problem(12)
    assert torch.equal(solve_lasso(X, D, 0.05).code, homotopy(X, D, 0.05).code)
    warm = solve_lasso(X, D, 0.05, z0=torch.zeros(X.shape[0], D.shape[0], dtype=X.dtype), tol=1e-12,
                       max_iter=50000)
    assert torch.allclose(warm.code, homotopy(X, D, 0.05, tol=1e-12).code, atol=1e-8)
    weights = L1(weights=torch.linspace(0.02, 0.08, D.shape[0], dtype=X.dtype))
    assert bool(solve_lasso(X, D, 1.0, penalty=weights, tol=1e-10, max_iter=50000).converged.all())
    assert bool(solve_lasso(X, D, 0.0, tol=1e-8, max_iter=50000).converged.any())
    with_fista_options = solve_lasso(X, D, 0.05, L=float(torch.linalg.matrix_norm(D, 2) ** 2), check_every=5,
                                     tol=1e-12, max_iter=50000)
    assert torch.allclose(with_fista_options.code, homotopy(X, D, 0.05, tol=1e-12).code, atol=1e-8)


def test_argmax_rows_finds_the_first_maximum(device):
    h = torch.tensor([[0.0, 3.0, 1.0, 3.0], [5.0, 0.0, 5.0, 2.0], [0.0, 0.0, 0.0, 0.0]], device=device)
    top, idx = _argmax_rows_(h.clone(), torch.arange(4, 0, -1, dtype=h.dtype, device=device))
    assert top.tolist() == [3.0, 5.0, 0.0] and idx.tolist() == [1, 0, 0]


class _Syncs(TorchDispatchMode):
    """Counts the operations that make the host wait for the device: ``.item()``, ``nonzero``, copies to the host
    (a ``.tolist()`` of a CPU tensor dispatches nothing: the path's one transfer a step is not counted here)."""

    count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += func in (torch.ops.aten._local_scalar_dense.default, torch.ops.aten.nonzero.default)
        return func(*args, **(kwargs or {}))


def test_the_torch_path_waits_for_the_device_only_to_drop_samples():
    """A step's joins, leaves and arrivals reach the host in one transfer; the other waits are the drops of
    samples that have arrived (each a few, and rarer as the batch shrinks). Five waits a step made GPU paths
    wait for every step's kernels before launching the next's."""
    X, D = _complete(1)
    with _Syncs() as syncs:
        Z, steps, arrived = _path(X, D, 0.005)
    assert bool(arrived.all()) and steps > 30
    assert syncs.count < steps / 2


def test_device_is_followed(device):
    X, D = _problem(13)
    res = homotopy(X.to(device), D.to(device), 0.05)
    assert res.code.device.type == device.type and bool(res.converged.all())


@pytest.mark.parametrize("positive", [False, True])
def test_compiled_path_equals_the_torch_path(monkeypatch, positive):
    module = importlib.import_module("sparsecode.solvers.homotopy")  # the name alone is the function
    X, D = _problem(14, n=60, m=64)
    compiled = homotopy(X, D, 0.02, penalty=L1(positive), tol=0)
    monkeypatch.setattr(module, "compiled_kernels", lambda: None)
    batched = homotopy(X, D, 0.02, penalty=L1(positive), tol=0)
    assert torch.allclose(compiled.code, batched.code, atol=1e-10)
    assert compiled.n_iter == batched.n_iter and bool(compiled.converged.all())


@pytest.mark.parametrize("m", [16, 64])
def test_the_torch_path_follows_float32_data_in_float64(monkeypatch, m):
    # the path GPUs run: dense codes in atoms sharing one direction reach tol on the path alone, as on the
    # compiled path; followed in float32 they stopped above it and FISTA ran to max_iter
    for name in ("homotopy", "ista", "cd"):  # no compiled path, nor a compiled finishing solver
        module = importlib.import_module(f"sparsecode.solvers.{name}")
        monkeypatch.setattr(module, "compiled_kernels", lambda: None)
    rng = np.random.RandomState(0)
    D = rng.randn(m, 16) + 3.0 * rng.randn(1, 16)
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    X = rng.randn(30, 16)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    X, D = torch.tensor(X), torch.tensor(D)
    alpha = 0.005 * float((X @ D.T).abs().max())
    res = homotopy(X.float(), D.float(), alpha, tol=1e-6)
    assert res.code.dtype == torch.float32 and bool(res.converged.all())
    assert res.n_iter < 4 * m  # no finishing iterations
    assert float(duality_gap(X, res.code.double(), D, alpha).max()) <= 1e-4


@pytest.mark.skipif(shutil.which("c++") is None or os.environ.get("SPARSECODE_EXTENSION") == "0",
                    reason="no C++ compiler, or the extension is switched off")
def test_compiled_kernels_are_built_where_a_compiler_exists():
    assert compiled_kernels() is not None
