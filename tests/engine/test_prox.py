import torch

from sparsecode.prox import (
    group_soft_threshold,
    nonneg_soft_threshold,
    project_rows_to_ball,
    shrink,
    soft_threshold,
)


def test_soft_threshold_is_prox_of_l1():
    """h_theta(v) minimises 0.5*(z - v)^2 + theta*|z|: check against a fine grid."""
    v = torch.linspace(-3, 3, 61, dtype=torch.float64)
    grid = torch.linspace(-4, 4, 80001, dtype=torch.float64)
    obj = 0.5 * (grid[None, :] - v[:, None]) ** 2 + 0.7 * grid.abs()[None, :]
    best = grid[obj.argmin(1)]
    assert torch.allclose(soft_threshold(v, 0.7), best, atol=1e-4)


def test_per_unit_thresholds_broadcast():
    v = torch.tensor([[1.0, 1.0, -1.0]])
    theta = torch.tensor([0.5, 2.0, 0.25])
    assert torch.equal(soft_threshold(v, theta), torch.tensor([[0.5, 0.0, -0.75]]))


def test_nonneg_threshold_and_dispatch():
    v = torch.tensor([-2.0, 0.3, 2.0])
    assert torch.equal(nonneg_soft_threshold(v, 0.5), torch.tensor([0.0, 0.0, 1.5]))
    assert torch.equal(shrink(v, 0.5, positive=True), nonneg_soft_threshold(v, 0.5))
    assert torch.equal(shrink(v, 0.5), soft_threshold(v, 0.5))


def test_singleton_groups_reduce_to_l1_prox():
    v = torch.randn(5, 7, dtype=torch.float64)
    groups = torch.arange(7)
    assert torch.allclose(group_soft_threshold(v, 0.3, groups), soft_threshold(v, 0.3))
    assert torch.allclose(group_soft_threshold(v, 0.3, groups, positive=True), nonneg_soft_threshold(v, 0.3))


def test_group_prox_shrinks_each_group_norm_by_tau_and_is_nonexpansive():
    g = torch.Generator().manual_seed(1)
    v = torch.randn(50, 12, generator=g, dtype=torch.float64) * 2
    w = torch.randn(50, 12, generator=g, dtype=torch.float64) * 2
    groups = torch.arange(12) // 3
    tau = 1.1
    out = group_soft_threshold(v, tau, groups)
    norms_in = v.reshape(50, 4, 3).norm(dim=2)
    norms_out = out.reshape(50, 4, 3).norm(dim=2)
    assert torch.allclose(norms_out, (norms_in - tau).clamp(min=0), atol=1e-12)
    dist_out = (out - group_soft_threshold(w, tau, groups)).norm(dim=1)
    assert (dist_out <= (v - w).norm(dim=1) + 1e-12).all()


def test_project_rows_to_ball():
    W = torch.tensor([[3.0, 4.0], [0.3, 0.4], [-1.0, 0.0]])
    project_rows_to_ball(W, 1.0, positive=True)
    assert torch.allclose(W, torch.tensor([[0.6, 0.8], [0.3, 0.4], [0.0, 0.0]]))
