"""Convolutional sparse coding: operator, Lipschitz constant, FISTA, smooth shrinkage, ConvPSD."""

import math

import numpy as np
import pytest
import torch

from sparsecode import (
    L1,
    ConvOperator,
    border_weights,
    code_size,
    conv_correlate,
    conv_fista,
    conv_ista,
    conv_lasso_energy,
    conv_lipschitz_constant,
    conv_reconstruct,
    smooth_shrink,
)
from sparsecode.models import ConvPSD
from sparsecode.prox import soft_threshold
from sparsecode.solvers import fista
from sparsecode.training import fit_module


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _unit(D):
    return D / torch.linalg.vector_norm(D.flatten(1), dim=1).view(-1, 1, 1, 1)


def _dense_operator(D, image_size):
    """The matrix of conv_reconstruct, one column per code entry, built from the definition."""
    K, C, kh, kw = D.shape
    h, w = code_size(image_size, (kh, kw))
    A = torch.zeros(C, *image_size, K, h, w, dtype=D.dtype)
    for k in range(K):
        for i in range(h):
            for j in range(w):
                A[:, i : i + kh, j : j + kw, k, i, j] = D[k]
    return A.reshape(C * image_size[0] * image_size[1], K * h * w)


def _circular_operator(D, image_size):
    """The matrix of the circular convolution on the H x W grid, maps on the whole grid."""
    K, C, kh, kw = D.shape
    H, W = image_size
    A = torch.zeros(C, H, W, K, H, W, dtype=D.dtype)
    padded = torch.zeros(K, C, H, W, dtype=D.dtype)
    padded[..., :kh, :kw] = D
    for i in range(H):
        for j in range(W):
            A[:, :, :, :, i, j] = torch.roll(padded, (i, j), dims=(2, 3)).permute(1, 2, 3, 0)
    return A.reshape(C * H * W, K * H * W)


@pytest.mark.parametrize("method", ["direct", "fft"])
@pytest.mark.parametrize("shape", [(3, 1, 3, 2), (4, 3, 2, 3), (2, 2, 5, 6)])
def test_operator_matches_definition_and_passes_adjoint_test(shape, method):
    D = torch.randn(shape, generator=_gen(), dtype=torch.float64)
    image_size = (7, 8)
    h, w = code_size(image_size, shape[2:])
    Z = torch.randn(2, shape[0], h, w, generator=_gen(1), dtype=torch.float64)
    X = torch.randn(2, shape[1], *image_size, generator=_gen(2), dtype=torch.float64)
    A = _dense_operator(D, image_size)
    op = ConvOperator(D, image_size, method)
    assert op.method == method and op.code_size == (h, w)
    torch.testing.assert_close(op.reconstruct(Z).flatten(1), Z.flatten(1) @ A.T)
    torch.testing.assert_close(op.correlate(X).flatten(1), X.flatten(1) @ A)
    torch.testing.assert_close(conv_reconstruct(Z, D).flatten(1), Z.flatten(1) @ A.T)
    torch.testing.assert_close(conv_correlate(X, D).flatten(1), X.flatten(1) @ A)
    lhs = (op.reconstruct(Z) * X).sum()
    rhs = (Z * op.correlate(X)).sum()
    assert abs(float(lhs - rhs)) <= 1e-12 * float(lhs.abs() + rhs.abs())


def test_auto_method_and_gradients_through_the_fft_reconstruction():
    assert ConvOperator(torch.ones(2, 1, 4, 4), (9, 9)).method == "direct"
    assert ConvOperator(torch.ones(2, 1, 5, 5), (9, 9)).method == "fft"
    with pytest.raises(ValueError, match="method"):
        ConvOperator(torch.ones(2, 1, 5, 5), (9, 9), "fourier")
    D = torch.randn(3, 2, 5, 4, generator=_gen(), dtype=torch.float64, requires_grad=True)
    Z = torch.randn(2, 3, 4, 6, generator=_gen(1), dtype=torch.float64, requires_grad=True)
    grads = []
    for method in ("fft", "direct"):
        ConvOperator(D, (8, 9), method).reconstruct(Z).pow(2).sum().backward()
        grads.append((D.grad.clone(), Z.grad.clone()))
        D.grad, Z.grad = None, None
    torch.testing.assert_close(grads[0], grads[1])


def test_single_channel_layouts_agree():
    D = torch.randn(3, 2, 2, generator=_gen(), dtype=torch.float64)
    X = torch.randn(2, 5, 5, generator=_gen(1), dtype=torch.float64)
    torch.testing.assert_close(conv_correlate(X, D), conv_correlate(X[:, None], D[:, None]))


@pytest.mark.parametrize("weighted", [False, True])
def test_power_lipschitz_constant_matches_dense_eigenvalue(weighted):
    D = _unit(torch.randn(4, 2, 3, 3, generator=_gen(), dtype=torch.float64))
    image_size = (9, 8)
    A = _dense_operator(D, image_size)
    weights = border_weights(image_size, (3, 3), like=D) if weighted else None
    if weighted:
        A = A * weights.flatten().repeat(2).sqrt().unsqueeze(1)
    exact = float(torch.linalg.eigvalsh(A.T @ A).max())
    estimate = conv_lipschitz_constant(D, image_size, weights=weights, method="power")
    assert exact * 0.999 <= estimate <= exact * 1.02
    bound = conv_lipschitz_constant(D, image_size, weights=weights)
    assert bound >= exact * (1 - 1e-12)


@pytest.mark.parametrize("shape", [(4, 1, 3, 3), (3, 2, 3, 2), (2, 3, 2, 3)])
def test_fft_lipschitz_constant_is_the_circular_norm_and_bounds_the_valid_one(shape):
    """Every channel/kernel count branch: C = 1, C <= K and C > K."""
    D = _unit(torch.randn(shape, generator=_gen(), dtype=torch.float64))
    image_size = (7, 6)
    circular = _circular_operator(D, image_size)
    exact_circular = float(torch.linalg.eigvalsh(circular.T @ circular).max())
    valid = _dense_operator(D, image_size)
    exact_valid = float(torch.linalg.eigvalsh(valid.T @ valid).max())
    bound = conv_lipschitz_constant(D, image_size)
    assert bound == pytest.approx(exact_circular, rel=1e-10)
    assert bound >= exact_valid
    half = 0.5 * torch.ones(image_size, dtype=torch.float64)
    assert conv_lipschitz_constant(D, image_size, weights=half) == pytest.approx(0.5 * bound)
    with pytest.raises(ValueError, match="method"):
        conv_lipschitz_constant(D, image_size, method="exact")


def test_border_weights_count_kernel_placements():
    H, W, kh, kw = 6, 7, 3, 2
    count = np.zeros((H, W))
    for i in range(H - kh + 1):
        for j in range(W - kw + 1):
            count[i : i + kh, j : j + kw] += 1
    np.testing.assert_allclose(
        border_weights((H, W), (kh, kw)).numpy(), count / count.max(), rtol=1e-6
    )


def _kkt_violation(X, Z, D, alpha, weights=None):
    """Largest violation of the lasso optimality conditions of the maps Z."""
    R = X - conv_reconstruct(Z, D)
    C = conv_correlate(R if weights is None else weights * R, D)
    on = Z != 0
    return max(
        float((C[on] - alpha * torch.sign(Z[on])).abs().max()) if on.any() else 0.0,
        float((C[~on].abs() - alpha).clamp(min=0).max()),
    )


def test_one_by_one_kernels_equal_the_patch_lasso_on_pixels():
    """With 1x1 kernels every pixel is an independent lasso in the channel values."""
    X = torch.randn(3, 3, 6, 7, generator=_gen(), dtype=torch.float64)
    D = torch.randn(5, 3, 1, 1, generator=_gen(1), dtype=torch.float64)
    conv = conv_fista(X, D, 0.3, tol=0, max_iter=2000, method="direct")  # to machine precision
    pixels = X.permute(0, 2, 3, 1).reshape(-1, 3)
    dense = fista(pixels, D.reshape(5, 3), 0.3, tol=0, max_iter=2000)
    assert float(conv.gap.max()) < 1e-13 and float(dense.gap.max()) < 1e-13
    expected = dense.code.reshape(3, 6, 7, 5).permute(0, 3, 1, 2)
    torch.testing.assert_close(conv.code, expected, atol=1e-10, rtol=0)


def test_ista_energy_decreases_and_fista_reaches_the_optimum():
    X = torch.randn(2, 1, 12, 12, generator=_gen(), dtype=torch.float64)
    D = _unit(torch.randn(4, 1, 4, 4, generator=_gen(1), dtype=torch.float64))
    alpha, L = 0.2, conv_lipschitz_constant(D, (12, 12))
    Z = torch.zeros(2, 4, 9, 9, dtype=torch.float64)
    energies = [conv_lasso_energy(X, Z, D, alpha)]
    for _ in range(30):
        Z = conv_ista(X, D, alpha, z0=Z, max_iter=1, tol=0, L=L).code
        energies.append(conv_lasso_energy(X, Z, D, alpha))
    E = torch.stack(energies)
    assert bool((E[1:] <= E[:-1] + 1e-12).all())
    assert bool((E[-1] < 0.8 * E[0]).all())
    res = conv_fista(X, D, alpha, tol=1e-10, max_iter=5000, L=L)
    assert bool(res.converged.all()) and float(res.gap.max()) <= 1e-10
    assert _kkt_violation(X, res.code, D, alpha) < 1e-5
    assert bool((conv_lasso_energy(X, res.code, D, alpha) < E[-1]).all())


def test_weighted_and_positive_solutions_satisfy_their_optimality_conditions():
    X = torch.randn(2, 2, 10, 9, generator=_gen(), dtype=torch.float64)
    D = _unit(torch.randn(3, 2, 3, 3, generator=_gen(1), dtype=torch.float64))
    weights = border_weights((10, 9), (3, 3), like=X)
    res = conv_fista(X, D, 0.1, weights=weights, tol=1e-11, max_iter=5000)
    assert _kkt_violation(X, res.code, D, 0.1, weights) < 1e-5
    plain = conv_fista(X, D, 0.1, tol=1e-11, max_iter=5000).code
    assert float((plain - res.code).abs().max()) > 1e-3
    ones = conv_fista(
        X, D, 0.1, weights=torch.ones(10, 9, dtype=torch.float64), tol=1e-11, max_iter=5000
    )
    torch.testing.assert_close(ones.code, plain, atol=1e-6, rtol=0)
    pos = conv_fista(X, D, 0.1, penalty=L1(positive=True), tol=1e-11, max_iter=5000).code
    assert bool((pos >= 0).all()) and bool((pos > 0).any())
    C = conv_correlate(X - conv_reconstruct(pos, D), D)
    assert float((C - 0.1).clamp(min=0).max()) < 1e-5
    assert float((C[pos > 0] - 0.1).abs().max()) < 1e-5


@pytest.mark.parametrize("weighted", [False, True])
def test_fft_and_direct_paths_solve_the_same_problem(weighted):
    X = torch.randn(3, 2, 14, 13, generator=_gen(), dtype=torch.float64)
    D = _unit(torch.randn(4, 2, 5, 5, generator=_gen(1), dtype=torch.float64))
    weights = border_weights((14, 13), (5, 5), like=X) if weighted else None
    L = conv_lipschitz_constant(D, (14, 13), weights=weights)
    runs = {
        method: conv_fista(X, D, 0.2, weights=weights, L=L, tol=0, max_iter=60, method=method)
        for method in ("fft", "direct")
    }
    # the same iterates, up to rounding, and both converge to the same optimum
    torch.testing.assert_close(runs["fft"].code, runs["direct"].code, atol=1e-9, rtol=0)
    exact = conv_fista(X, D, 0.2, weights=weights, tol=1e-11, max_iter=5000, method="fft")
    assert _kkt_violation(X, exact.code, D, 0.2, weights) < 1e-5
    reference = conv_fista(X, D, 0.2, weights=weights, tol=1e-11, max_iter=5000, method="direct")
    torch.testing.assert_close(exact.code, reference.code, atol=1e-6, rtol=0)


def test_batching_warm_start_dtype_and_errors():
    X = torch.randn(5, 1, 8, 8, generator=_gen())
    D = _unit(torch.randn(3, 1, 3, 3, generator=_gen(1)))
    together = conv_fista(X, D, 0.3, tol=1e-6)
    one_by_one = conv_fista(X, D, 0.3, tol=1e-6, chunk_size=1)
    assert together.code.dtype == torch.float32 and together.gap.shape == (5,)
    torch.testing.assert_close(together.code, one_by_one.code)
    warm = conv_fista(X, D, 0.3, z0=together.code, tol=1e-5, check_every=5)
    assert warm.n_iter == 5
    unchanged = conv_fista(X, D, 0.3, z0=together.code, max_iter=0)
    torch.testing.assert_close(unchanged.code, together.code)
    assert conv_fista(X[:0], D, 0.3).code.shape == (0, 3, 6, 6)
    with pytest.raises(ValueError, match="channel"):
        conv_fista(torch.randn(1, 2, 8, 8), D)
    with pytest.raises(ValueError, match="does not fit"):
        conv_fista(torch.randn(1, 1, 2, 8), D)


def test_smooth_shrink_tends_to_the_soft_threshold_and_is_zero_at_zero():
    s = torch.linspace(-4, 4, 801, dtype=torch.float64)
    b = torch.tensor(0.7, dtype=torch.float64)
    soft = soft_threshold(s, b)
    previous = math.inf
    for beta in [1.0, 10.0, 100.0, 1e4]:
        sh = smooth_shrink(s, beta, b)
        assert float(smooth_shrink(torch.zeros(1, dtype=torch.float64), beta, b)) == 0.0
        torch.testing.assert_close(smooth_shrink(-s, beta, b), -sh)
        excess = sh.abs() - soft.abs()
        assert float(excess.min()) >= -1e-12 and float(excess.max()) <= math.log(2) / beta + 1e-12
        deviation = float((sh - soft).abs().max())
        assert deviation < previous
        previous = deviation
    assert previous < 1e-4
    big = smooth_shrink(torch.tensor([1e4, -1e4]), 1e3, 1.0)
    torch.testing.assert_close(big, torch.tensor([1e4 - 1.0, -(1e4 - 1.0)]))


def test_smooth_shrink_matches_its_formula_and_has_finite_gradients():
    s = torch.linspace(-2, 2, 41, dtype=torch.float64, requires_grad=True)
    beta = torch.tensor([2.0, 5.0], dtype=torch.float64).view(2, 1)
    b = torch.tensor([0.5, 0.1], dtype=torch.float64).view(2, 1)
    sh = smooth_shrink(s, beta, b)
    formula = torch.sign(s) * (
        torch.log(torch.exp(beta * b) + torch.exp(beta * s.abs()) - 1) / beta - b
    )
    torch.testing.assert_close(sh, formula)
    sh.sum().backward()
    assert bool(torch.isfinite(s.grad).all())


@pytest.mark.parametrize("encoder", ["shrink", "tanh"])
def test_conv_psd_module(encoder):
    D = torch.randn(4, 2, 3, 3, generator=_gen(), dtype=torch.float64)
    X = torch.randn(6, 2, 9, 9, generator=_gen(1), dtype=torch.float64)
    L = conv_lipschitz_constant(_unit(D), (9, 9))
    m = ConvPSD(D, L, alpha=0.2, encoder=encoder, beta=1e4, inference_max_iter=200)
    norms = torch.linalg.vector_norm(m.decoder_weight.flatten(1), dim=1)
    torch.testing.assert_close(norms, torch.ones(4, dtype=torch.float64))
    pred = m(X).detach()
    assert pred.shape == (6, 4, 7, 7) and m.decode(pred).shape == X.shape
    if encoder == "shrink":  # one ISTA step from zero, up to the smooth shrinkage's log(2)/beta
        step = soft_threshold(conv_correlate(X, m.decoder_weight.detach()) / L, 0.2 / L)
        assert float((pred - step).abs().max()) <= math.log(2) / 1e4 + 1e-12
    z = m.infer(X)
    r = m.residuals(X, z)
    assert r.shape == (6, 2 * 81 + 4 * 49)
    weights = border_weights((9, 9), (3, 3), like=X)
    recon = 0.5 * (weights * (X - m.decode(z)) ** 2).flatten(1).sum(1)
    expected = recon + 0.2 * z.abs().flatten(1).sum(1) + ((z - pred) ** 2).flatten(1).sum(1)
    torch.testing.assert_close(m.energy(X, z).detach(), expected)
    # z* minimises the decoder's (weighted) lasso, warm-started at the prediction (author code
    # psd.lua)
    D = m.decoder_weight.detach()
    assert bool(
        (
            conv_lasso_energy(X, z, D, 0.2, weights)
            <= conv_lasso_energy(X, pred, D, 0.2, weights) + 1e-10
        ).all()
    )


def test_conv_psd_trains_through_fit_module():
    X = torch.randn(16, 1, 10, 10, generator=_gen())
    D = torch.randn(3, 1, 3, 3, generator=_gen(1))
    m = ConvPSD(D, conv_lipschitz_constant(_unit(D), (10, 10)), alpha=0.1, inference_max_iter=20)
    res = fit_module(
        m,
        ConvPSD.training_loss,
        (X,),
        learning_rate=1e-2,
        max_iter=8,
        batch_size=8,
        projection=ConvPSD.project_,
        generator=_gen(2),
    )
    assert res.loss_curve[-1] < 0.9 * res.loss_curve[0]
    norms = torch.linalg.vector_norm(m.decoder_weight.flatten(1), dim=1)
    torch.testing.assert_close(norms, torch.ones(3))
    assert bool((m.threshold >= 0).all()) and bool((m.beta > 0).all())
