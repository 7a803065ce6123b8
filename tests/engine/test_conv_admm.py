"""The convolutional lasso by Fourier-domain ADMM: against the patch lasso, conv FISTA and SPORCO."""

import numpy as np
import pytest
import torch

from sparsecode import L1, GroupL1, LatentGroupL1, Pools, border_weights, conv_fista
from sparsecode.solvers import conv_admm, solve_conv_lasso, solve_lasso
from sparsecode.solvers.conv_admm import ADMMState, FourierKernels


def _problem(n=2, C=1, K=5, size=(18, 15), kernel=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, C, *size, generator=g, dtype=torch.float64)
    D = torch.randn(K, C, kernel, kernel, generator=g, dtype=torch.float64)
    return X, D / torch.linalg.vector_norm(D.flatten(1), dim=1).view(-1, 1, 1, 1)


@pytest.mark.parametrize("C, K", [(1, 1), (4, 6)])
def test_one_by_one_filters_equal_the_patch_lasso(C, K):
    """Each pixel's C channels coded in the K atoms ``D[:, :, 0, 0]`` (a unique lasso solution)."""
    X, D = _problem(C=C, K=K, kernel=1)
    res = conv_admm(X, D, 0.3, tol=1e-11, max_iter=5000)
    pixels = X.permute(0, 2, 3, 1).reshape(-1, C)
    ref = solve_lasso(pixels, D[:, :, 0, 0], 0.3, tol=1e-12).code
    assert res.converged.all()
    torch.testing.assert_close(res.code.permute(0, 2, 3, 1).reshape(-1, K), ref, atol=1e-6, rtol=0)


@pytest.mark.parametrize("C, positive, weighted", [(1, False, False), (1, True, False), (1, False, True),
                                                   (3, False, False), (3, True, True)])
def test_admm_and_fista_reach_the_same_optimum(C, positive, weighted):
    X, D = _problem(C=C)
    weights = border_weights(X.shape[-2:], D.shape[-2:], like=X) if weighted else None
    kw = dict(penalty=L1(positive), weights=weights, tol=1e-10)
    admm = conv_admm(X, D, 0.2, max_iter=5000, **kw)
    ref = conv_fista(X, D, 0.2, max_iter=50000, **kw)
    assert admm.converged.all() and ref.converged.all()
    assert admm.code.shape == ref.code.shape == (2, 5, 15, 12)
    torch.testing.assert_close(admm.code, ref.code, atol=1e-5, rtol=0)
    if positive:
        assert (admm.code >= 0).all()


def test_group_penalty_on_conv_maps():
    """Groups across the maps at each position: the same optimum as conv FISTA."""
    X, D = _problem(K=4)
    h, w = 15, 12
    groups = torch.arange(h * w).repeat(4)  # unit (k, i, j) in the group of position (i, j)
    penalty = GroupL1(groups)
    admm = conv_admm(X, D, 0.5, penalty=penalty, tol=1e-10, max_iter=5000)
    ref = conv_fista(X, D, 0.5, penalty=penalty, tol=1e-10, max_iter=50000)
    torch.testing.assert_close(admm.code, ref.code, atol=1e-5, rtol=0)


def test_circular_boundary_is_the_circular_convolution():
    X, D = _problem(n=1, size=(9, 8), kernel=3)
    res = conv_admm(X, D, 0.1, boundary="circular", tol=1e-12, max_iter=5000)
    assert res.code.shape == (1, 5, 9, 8)
    # optimality of the circular lasso: |A^T r| <= alpha, equal to alpha (with the sign) on the support
    fk = FourierKernels(D, (9, 8))
    c = fk.correlate(X - fk.reconstruct(res.code))
    assert float(c.abs().max()) <= 0.1 + 1e-6
    on = res.code != 0
    torch.testing.assert_close(c[on], 0.1 * res.code[on].sign(), atol=1e-6, rtol=0)


def test_circular_boundary_equals_sporco():
    """SPORCO's ``ConvBPDN`` on the same problem: ``D[..., k]`` is our ``D[k]`` (no flip), maps ``(H, W)``."""
    cbpdn = pytest.importorskip("sporco.admm.cbpdn")
    rng = np.random.RandomState(0)
    S = rng.randn(16, 14, 2)
    D = rng.randn(5, 4, 3)
    D /= np.sqrt((D**2).sum((0, 1)))
    opt = cbpdn.ConvBPDN.Options({"Verbose": False, "MaxMainIter": 3000, "RelStopTol": 1e-12,
                                  "AutoRho": {"Enabled": False}, "rho": 1.0, "RelaxParam": 1.0})
    ref = cbpdn.ConvBPDN(D, S, 0.2, opt, dimK=1).solve()[:, :, 0].transpose(2, 3, 0, 1)
    res = conv_admm(torch.tensor(S.transpose(2, 0, 1)), torch.tensor(D.transpose(2, 0, 1)), 0.2,
                    boundary="circular", tol=1e-12, max_iter=5000)
    np.testing.assert_allclose(res.code.numpy(), ref, atol=1e-6)


def test_float32_and_warm_start():
    X, D = _problem()
    res = conv_admm(X.float(), D.float(), 0.2, tol=1e-5)
    assert res.converged.all() and res.code.dtype == torch.float32
    warm = conv_admm(X, D, 0.2, z0=res.code.double(), tol=1e-5)
    assert warm.n_iter <= res.n_iter
    same = conv_admm(X, D, 0.2, z0=res.code.double(), max_iter=0)
    torch.testing.assert_close(same.code, res.code.double())


def test_rejects_bad_arguments():
    X, D = _problem()
    with pytest.raises(ValueError, match="boundary"):
        conv_admm(X, D, boundary="same")
    with pytest.raises(ValueError, match="z0"):
        conv_admm(X, D, z0=torch.zeros(2, 5, 18, 15, dtype=torch.float64))
    with pytest.raises(ValueError, match="LatentGroupL1"):
        conv_admm(X, D, penalty=LatentGroupL1(Pools.torus((1, 5), (1, 2))))
    with pytest.raises(ValueError, match="relax"):
        conv_admm(X, D, relax=2.0)


def test_solve_conv_lasso_chooses_by_kernel_size():
    X, D = _problem(n=1, kernel=3)
    torch.testing.assert_close(solve_conv_lasso(X, D, 0.2).code, conv_fista(X, D, 0.2).code)
    X, D = _problem(n=1, kernel=6)
    torch.testing.assert_close(solve_conv_lasso(X, D, 0.2).code, conv_admm(X, D, 0.2).code)
    assert solve_conv_lasso(X, D, 0.2, boundary="circular").code.shape == (1, 5, 18, 15)
    with pytest.raises(ValueError, match="valid model only"):
        solve_conv_lasso(X, D, 0.2, algorithm="fista", boundary="circular")


@pytest.mark.parametrize("boundary", ["valid", "circular"])
def test_resume_continues_the_iterations(boundary):
    """Two runs of 10 iterations through one ADMMState are one run of 20 (codes, dual and rho carried)."""
    X, D = _problem()
    straight = conv_admm(X, D, 0.2, boundary=boundary, max_iter=20, tol=0)
    state = ADMMState()
    first = conv_admm(X, D, 0.2, boundary=boundary, max_iter=10, tol=0, resume=state)
    assert state.dual.shape == (2, 5, 18, 15) and state.rho.shape == (2,)
    second = conv_admm(X, D, 0.2, boundary=boundary, max_iter=10, tol=0, z0=first.code, resume=state)
    torch.testing.assert_close(second.code, straight.code)
    with pytest.raises(ValueError, match="unweighted"):
        conv_admm(X, D, 0.2, weights=torch.ones(18, 15, dtype=X.dtype), resume=state)
