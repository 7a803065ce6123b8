"""Group sparsity across feature maps (MapGroupL1) in the convolutional solvers: patch group lasso, KKT."""

import pytest
import torch

from sparsecode import GroupL1, MapGroupL1, conv_correlate, conv_reconstruct
from sparsecode.solvers import conv_admm, conv_fista, solve_lasso

GROUPS = torch.tensor([0, 1, 0, 2, 1, 2])  # six maps in three groups of two, interleaved


def _problem(C=1, kernel=3, size=(14, 13), seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(2, C, *size, generator=g, dtype=torch.float64)
    D = torch.randn(len(GROUPS), C, kernel, kernel, generator=g, dtype=torch.float64)
    return X, D / torch.linalg.vector_norm(D.flatten(1), dim=1).view(-1, 1, 1, 1)


def test_map_group_penalty_is_the_group_lasso_of_each_position():
    Z = torch.randn(2, 6, 4, 5, dtype=torch.float64)
    penalty, alpha = MapGroupL1(GROUPS), 0.7
    by_position = Z.permute(0, 2, 3, 1).reshape(-1, 6)  # one row per (image, position)
    patch = GroupL1(GROUPS)
    torch.testing.assert_close(penalty.value(Z.flatten(1), alpha),
                               patch.value(by_position, alpha).view(2, -1).sum(1))
    tau = torch.tensor([[0.3], [1.1]], dtype=torch.float64)
    prox = penalty.prox(Z.flatten(1), tau).view_as(Z).permute(0, 2, 3, 1).reshape(2, -1, 6)
    for i in range(2):
        torch.testing.assert_close(prox[i], patch.prox(by_position.view(2, -1, 6)[i], float(tau[i])))
    torch.testing.assert_close(penalty.dual_norm(Z.flatten(1)),
                               patch.dual_norm(by_position).view(2, -1).amax(1))


@pytest.mark.parametrize("solver, positive", [(conv_admm, False), (conv_fista, False), (conv_admm, True)])
def test_one_by_one_filters_equal_the_patch_group_lasso(solver, positive):
    """With 1x1 kernels each pixel's channels are coded alone: the group lasso of the pixels."""
    X, D = _problem(C=8, kernel=1, size=(6, 5))  # 8 channels, 6 maps: a unique solution
    res = solver(X, D, 0.4, penalty=MapGroupL1(GROUPS, positive), tol=1e-11, max_iter=20000)
    pixels = X.permute(0, 2, 3, 1).reshape(-1, 8)
    ref = solve_lasso(pixels, D[:, :, 0, 0], 0.4, penalty=GroupL1(GROUPS, positive), tol=1e-12,
                      max_iter=20000).code
    assert res.converged.all()
    codes = res.code.permute(0, 2, 3, 1).reshape(-1, 6)
    torch.testing.assert_close(codes, ref, atol=1e-6, rtol=0)
    assert (codes[:, GROUPS == 0] != 0).any() and (codes == 0).any()


@pytest.mark.parametrize("positive", [False, True])
def test_group_sparse_conv_codes_satisfy_kkt(positive):
    """At the optimum, per group g and position p with correlations c = A^T(x - Az): ``||c_gp|| <= alpha``
    where ``z_gp = 0``, ``c_gp = alpha z_gp / ||z_gp||`` elsewhere (of the positive part with ``positive``)."""
    X, D = _problem()
    alpha = 0.5
    res = conv_admm(X, D, alpha, penalty=MapGroupL1(GROUPS, positive), tol=1e-12, max_iter=5000)
    ref = conv_fista(X, D, alpha, penalty=MapGroupL1(GROUPS, positive), tol=1e-10, max_iter=50000)
    torch.testing.assert_close(res.code, ref.code, atol=1e-5, rtol=0)
    Z = res.code
    C = conv_correlate(X - conv_reconstruct(Z, D), D)
    if positive:
        assert (Z >= 0).all()
        C = torch.where(Z > 0, C, C.clamp(min=0))  # where z = 0 only c <= 0 is free (within the orthant)
    for g in range(3):
        Zg, Cg = Z[:, GROUPS == g], C[:, GROUPS == g]
        norm = torch.linalg.vector_norm(Zg, dim=1, keepdim=True)
        active = (norm > 0).expand_as(Zg)
        assert torch.linalg.vector_norm(Cg, dim=1).max() <= alpha + 1e-6
        torch.testing.assert_close(Cg[active], (alpha * Zg / norm.clamp(min=1e-300))[active], atol=1e-5, rtol=0)
        assert active.any() and not active.all()
