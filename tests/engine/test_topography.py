"""Pools, the group prox they feed, and the latent group lasso on the topographic torus."""

import math

import pytest
import torch

from sparsecode.penalties import L1, GroupL1, LatentGroupL1, make_penalty
from sparsecode.solvers import fista, solve_lasso
from sparsecode.topography import Pools


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _dictionary(m, n, seed=0, dtype=torch.float64):
    D = torch.randn(m, n, generator=_gen(seed), dtype=dtype)
    return D / D.norm(dim=1, keepdim=True)


@pytest.mark.parametrize("positive", [False, True])
def test_singleton_groups_reduce_to_the_l1_prox(positive):
    V = torch.randn(20, 9, generator=_gen(), dtype=torch.float64)
    groups = Pools.disjoint(9, 1).groups()
    out = GroupL1(groups, positive).prox(V, 0.35)
    torch.testing.assert_close(out, L1(positive).prox(V, 0.35), rtol=0, atol=1e-15)


def test_group_prox_shrinks_each_group_norm_by_exactly_tau():
    V = 2 * torch.randn(50, 12, generator=_gen(1), dtype=torch.float64)
    groups = Pools.disjoint(12, 3).groups()
    tau = 1.3
    out = GroupL1(groups).prox(V, tau)
    norms_in = V.view(50, 4, 3).norm(dim=2)
    norms_out = out.view(50, 4, 3).norm(dim=2)
    torch.testing.assert_close(norms_out, (norms_in - tau).clamp(min=0), rtol=0, atol=1e-12)
    assert bool((norms_in <= tau).any()) and bool((norms_in > tau).any())  # both regimes exercised
    # the direction of a surviving group is kept
    kept = norms_out > 0
    cos = (out.view(50, 4, 3) * V.view(50, 4, 3)).sum(2)[kept] / (norms_in * norms_out)[kept]
    torch.testing.assert_close(cos, torch.ones_like(cos), rtol=0, atol=1e-12)


def test_group_prox_is_non_expansive():
    A = torch.randn(200, 12, generator=_gen(2), dtype=torch.float64)
    B = A + 0.5 * torch.randn(200, 12, generator=_gen(3), dtype=torch.float64)
    prox = GroupL1(Pools.disjoint(12, 4).groups()).prox
    assert bool(((prox(A, 0.8) - prox(B, 0.8)).norm(dim=1) <= (A - B).norm(dim=1) + 1e-12).all())


def test_disjoint_pools_allow_a_smaller_last_group():
    pools = Pools.disjoint(5, 2)
    assert pools.is_partition and pools.n_pools == 3
    assert pools.groups().tolist() == [0, 0, 1, 1, 2]


def test_torus_pools_wrap_around_with_gaussian_weights():
    sigma = 1.5
    pools = Pools.torus((4, 5), 3, sigma=sigma)
    W = pools.weights
    assert W.shape == (20, 20) and not pools.is_partition
    assert bool(((W > 0).sum(1) == 9).all()) and bool(((W > 0).sum(0) == 9).all())
    # pool of unit 0 = (0, 0): its 3x3 window wraps to rows {3, 0, 1} and columns {4, 0, 1}
    members = {(int(j) // 5, int(j) % 5) for j in W[0].nonzero().flatten()}
    assert members == {(r, c) for r in (3, 0, 1) for c in (4, 0, 1)}
    assert W[0, 0] == 1.0
    torch.testing.assert_close(W[0, 1], torch.tensor(math.exp(-1 / (2 * sigma**2)), dtype=W.dtype))
    torch.testing.assert_close(
        W[0, 3 * 5 + 4], torch.tensor(math.exp(-2 / (2 * sigma**2)), dtype=W.dtype)
    )


def test_pool_values_follow_the_definition():
    pools = Pools.torus((3, 3), (2, 3))
    Z = torch.randn(4, 9, generator=_gen(4), dtype=torch.float64)
    expected = torch.stack([(pools.weights[i] * Z**2).sum(1).sqrt() for i in range(9)], dim=1)
    torch.testing.assert_close(pools.pool(Z), expected)


def test_split_is_a_right_inverse_of_the_lift():
    pools = Pools.torus((4, 4), 3)
    Z = torch.randn(6, 16, generator=_gen(5), dtype=torch.float64)
    torch.testing.assert_close(pools.split(Z) @ pools.lift_matrix(Z), Z)


def test_latent_group_lasso_with_singleton_pools_is_the_lasso():
    X = torch.randn(10, 8, generator=_gen(6), dtype=torch.float64)
    D = _dictionary(12, 8)
    lat = solve_lasso(X, D, 0.3, penalty=LatentGroupL1(Pools.torus((3, 4), 1)), tol=1e-12, max_iter=5000).code
    ref = fista(X, D, 0.3, tol=1e-12, max_iter=5000).code
    torch.testing.assert_close(lat, ref, rtol=0, atol=1e-7)


def test_latent_group_lasso_with_a_partition_is_the_group_lasso():
    X = torch.randn(10, 8, generator=_gen(7), dtype=torch.float64)
    D = _dictionary(12, 8, seed=1)
    pools = Pools.disjoint(12, 3)
    lat = solve_lasso(X, D, 0.4, penalty=LatentGroupL1(pools), tol=1e-12, max_iter=5000).code
    ref = fista(X, D, 0.4, penalty=GroupL1(pools.groups()), tol=1e-12, max_iter=5000).code
    torch.testing.assert_close(lat, ref, rtol=0, atol=1e-7)


def test_latent_group_lasso_on_the_torus_meets_the_optimality_conditions():
    X = 2 * torch.randn(8, 10, generator=_gen(8), dtype=torch.float64)
    D = _dictionary(16, 10, seed=2)
    pools, alpha = Pools.torus((4, 4), 3), 0.8
    penalty = LatentGroupL1(pools)
    res = solve_lasso(X, D, alpha, penalty=penalty, tol=1e-14, max_iter=20000)
    U = res.latent
    torch.testing.assert_close(penalty.solution_value(res, alpha), alpha * U.view(8, 16, 9).norm(dim=2).sum(1))
    A = pools.lift_matrix(D)
    torch.testing.assert_close(U @ A, res.code)
    G = (U @ A @ D - X) @ (A @ D).T  # gradient of the smooth part in the lifted variables
    groups = pools.latent_groups()
    for g in range(pools.n_pools):
        u, grad = U[:, groups == g], G[:, groups == g]
        norm = u.norm(dim=1, keepdim=True)
        active = norm.squeeze(1) > 1e-10
        torch.testing.assert_close(
            grad[active], -alpha * u[active] / norm[active], rtol=0, atol=1e-6
        )
        assert bool((grad[~active].norm(dim=1) <= alpha * (1 + 1e-6)).all())
    assert bool((U.view(8, 16, 9).norm(dim=2) == 0).any())  # some pools are switched off


def test_latent_group_lasso_keeps_device_and_dtype():
    X = torch.randn(3, 5, generator=_gen(9))
    res = fista(X, _dictionary(9, 5, dtype=torch.float32), 0.1, penalty=LatentGroupL1(Pools.torus((3, 3), 2)))
    assert res.code.dtype == torch.float32 and res.code.shape == (3, 9)
    assert res.latent.dtype == torch.float32 and res.latent.shape == (3, 9 * 4)


def test_make_penalty_follows_the_structure():
    groups = torch.tensor([0, 0, 1])
    assert type(make_penalty()) is L1 and make_penalty(positive=True).positive
    assert type(make_penalty(groups=groups)) is GroupL1
    partition = make_penalty(pools=Pools.disjoint(4, 2), positive=True)
    assert type(partition) is GroupL1 and partition.positive and partition.groups.tolist() == [0, 0, 1, 1]
    assert type(make_penalty(pools=Pools.torus((3, 3), 2))) is LatentGroupL1
    with pytest.raises(ValueError, match="not both"):
        make_penalty(groups=groups, pools=Pools.disjoint(3, 1))


def test_pools_from_topography_checks_the_map():
    pools = Pools.from_topography([3, 4], [2, 3], n_components=12)
    torch.testing.assert_close(pools.weights, Pools.torus((3, 4), (2, 3)).weights)
    with pytest.raises(ValueError, match="rows, cols"):
        Pools.from_topography((3, 4, 1), 2)
    with pytest.raises(ValueError, match="does not match topography"):
        Pools.from_topography((3, 4), 2, n_components=10)


@pytest.mark.parametrize(
    "bad", [torch.ones(3), -torch.ones(2, 2), torch.tensor([[1.0, 0.0], [0.0, 0.0]])]
)
def test_invalid_pool_weights_are_rejected(bad):
    with pytest.raises(ValueError):
        Pools(bad)


def test_invalid_torus_is_rejected():
    with pytest.raises(ValueError, match="pool_size"):
        Pools.torus((3, 3), 4)
    with pytest.raises(ValueError, match="groups"):
        Pools.torus((3, 3), 2).groups()
