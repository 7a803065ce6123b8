"""PSD: the encoders, inference on the full energy, the training loss and a short training run."""

import pytest
import torch

from sparsecode.models import PSD, LinearEncoder, ShrinkEncoder, TanhEncoder
from sparsecode.models.psd import psd_energy, psd_inference, psd_loss
from sparsecode.prox import normalize_rows_, soft_threshold
from sparsecode.topography import Pools
from sparsecode.training import fit_module


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _dictionary(m, n, seed=0, dtype=torch.float64):
    D = torch.randn(m, n, generator=_gen(seed), dtype=dtype)
    return D / D.norm(dim=1, keepdim=True)


def test_encoders_follow_their_formulas():
    D = torch.randn(5, 4, generator=_gen(1))
    X = torch.randn(7, 4, generator=_gen(2))
    tanh, shrink, linear = TanhEncoder(D), ShrinkEncoder(D, alpha=0.3), LinearEncoder(D)
    L = torch.linalg.matrix_norm(D, ord=2) ** 2
    with torch.no_grad():
        tanh.gain.mul_(2.0)
        tanh.bias.fill_(0.1)
    torch.testing.assert_close(tanh(X), 2.0 * torch.tanh(X @ D.T / L + 0.1))
    torch.testing.assert_close(shrink(X), soft_threshold(X @ D.T / L, 0.3 / L))  # ISTA's first step from zero
    torch.testing.assert_close(linear(X), X @ D.T / L)
    # an offset is a shift of the inputs that the initial bias undoes: the same first step
    mu = torch.randn(4, generator=_gen(5))
    torch.testing.assert_close(ShrinkEncoder(D, alpha=0.3, offset=mu)(X), shrink(X))
    assert bool((ShrinkEncoder(D, alpha=0.3, positive=True)(X) >= 0).all())
    shrink(X).sum().backward()
    assert shrink.threshold.grad is not None and shrink.gain.grad is not None


def test_unknown_encoder_is_rejected():
    with pytest.raises(ValueError, match="encoder"):
        PSD(torch.eye(2), encoder="relu")


def test_inference_has_the_closed_form_for_an_orthonormal_dictionary():
    X = torch.randn(6, 5, generator=_gen(3), dtype=torch.float64)
    P = torch.randn(6, 5, generator=_gen(4), dtype=torch.float64)
    alpha, beta = 0.4, 0.75
    res = psd_inference(
        X, torch.eye(5, dtype=torch.float64), P, alpha, beta, tol=1e-14, max_iter=500
    )
    expected = soft_threshold((X + 2 * beta * P) / (1 + 2 * beta), alpha / (1 + 2 * beta))
    torch.testing.assert_close(res.code, expected, rtol=0, atol=1e-10)
    torch.testing.assert_close(res.penalty, alpha * expected.abs().sum(1), rtol=0, atol=1e-10)


def test_inference_meets_the_optimality_conditions_of_the_full_energy():
    X = torch.randn(20, 8, generator=_gen(5), dtype=torch.float64)
    D = _dictionary(12, 8)
    P = 0.3 * torch.randn(20, 12, generator=_gen(6), dtype=torch.float64)
    alpha, beta = 0.3, 0.5
    Z = psd_inference(X, D, P, alpha, beta, tol=1e-14, max_iter=20000).code
    grad = (Z @ D - X) @ D.T + 2 * beta * (Z - P)
    on = Z != 0
    torch.testing.assert_close(grad[on], -alpha * torch.sign(Z[on]), rtol=0, atol=1e-6)
    assert bool((grad[~on].abs() <= alpha + 1e-6).all())
    assert bool(on.any()) and bool((~on).any())


@pytest.mark.parametrize(
    "pools", [Pools.disjoint(12, 3), Pools.torus((3, 4), 3)], ids=["disjoint", "torus"]
)
def test_group_inference_beats_perturbed_codes(pools):
    X = torch.randn(10, 8, generator=_gen(7), dtype=torch.float64)
    D = _dictionary(12, 8, seed=1)
    P = torch.zeros(10, 12, dtype=torch.float64)
    res = psd_inference(X, D, P, 0.3, 1.0, pools=pools, tol=1e-12, max_iter=5000)
    energy = psd_energy(X, res.code, D, P, res.penalty, 1.0)
    for seed in range(5):
        Zp = res.code + 1e-3 * torch.randn(
            res.code.shape, generator=_gen(10 + seed), dtype=torch.float64
        )
        if pools.is_partition:
            penalty = 0.3 * pools.pool(Zp).sum(1)
        else:  # an upper bound of the latent norm at Zp: the penalty of its even split
            U = pools.split(Zp)
            penalty = 0.3 * torch.zeros(10, pools.n_pools, dtype=torch.float64).index_add_(
                1, pools.latent_groups(), U * U
            ).sqrt().sum(1)
        assert bool((psd_energy(X, Zp, D, P, penalty, 1.0) >= energy - 1e-10).all())


def test_loss_gradients_are_the_decoder_and_prediction_gradients():
    X = torch.randn(16, 6, generator=_gen(8), dtype=torch.float64)
    model = PSD(_dictionary(9, 6, seed=3), encoder="linear")
    alpha, beta = 0.2, 0.7
    loss = psd_loss(model, X, alpha=alpha, beta=beta, tol=1e-12, max_iter=2000)
    loss.backward()
    with torch.no_grad():
        P = model(X)
        Z = psd_inference(X, model.dictionary, P, alpha, beta, tol=1e-12, max_iter=2000).code
        R = X - Z @ model.dictionary
    torch.testing.assert_close(model.dictionary.grad, -(Z.T @ R) / 16)
    torch.testing.assert_close(model.encoder.weight.grad, 2 * beta * (P - Z).T @ X / 16)
    torch.testing.assert_close(model.encoder.bias.grad, 2 * beta * (P - Z).mean(0))


def test_project_gives_unit_atoms_and_keeps_zero_atoms():
    model = PSD(torch.tensor([[3.0, 4.0], [0.0, 0.0]]), encoder="linear")
    model.project_()
    torch.testing.assert_close(model.dictionary.detach(), torch.tensor([[0.6, 0.8], [0.0, 0.0]]))


def _patches(n, seed):
    """Sparse synthetic 'patches': a few atoms of a hidden dictionary, plus noise."""
    D = _dictionary(16, 12, seed=100, dtype=torch.float32)
    g = _gen(seed)
    Z = torch.randn(n, 16, generator=g) * (torch.rand(n, 16, generator=g) < 0.15)
    return Z @ D + 0.05 * torch.randn(n, 12, generator=g)


@pytest.mark.parametrize("encoder", ["tanh", "shrink"])
def test_training_lowers_the_energy_and_the_prediction_error(encoder):
    Xtr, Xte = _patches(2000, 0), _patches(500, 1)
    D0 = Xtr[torch.randperm(2000, generator=_gen(2))[:16]]
    model = PSD(normalize_rows_(D0.clone()), encoder=encoder, alpha=0.1)
    opts = dict(alpha=0.1, beta=1.0, max_iter=50, tol=1e-4)

    def held_out():
        with torch.no_grad():
            P = model(Xte)
            inf = psd_inference(Xte, model.dictionary, P, 0.1, 1.0)
            energy = psd_energy(Xte, inf.code, model.dictionary, P, inf.penalty, 1.0).mean()
            return float(energy), float(((P - inf.code) ** 2).sum() / (inf.code**2).sum())

    energy0, err0 = held_out()
    res = fit_module(
        model,
        lambda m, x: psd_loss(m, x, **opts),
        (Xtr,),
        optimizer="adam",
        learning_rate=1e-2,
        max_iter=8,
        batch_size=100,
        generator=_gen(3),
        projection=PSD.project_,
    )
    energy1, err1 = held_out()
    assert res.loss_curve[-1] < 0.8 * res.loss_curve[0]
    assert energy1 < 0.8 * energy0
    assert err1 < 0.1 and err1 < 0.25 * err0
    torch.testing.assert_close(model.dictionary.norm(dim=1), torch.ones(16))


@pytest.mark.parametrize(
    "pools", [None, Pools.disjoint(6, 2), Pools.torus((2, 3), 2)], ids=["l1", "groups", "torus"]
)
def test_training_step_follows_the_device_and_dtype(device, pools):
    X = torch.randn(8, 4, generator=_gen(11)).to(device)
    model = PSD(_dictionary(6, 4, dtype=torch.float32).to(device), encoder="shrink")
    loss = psd_loss(model, X, alpha=0.1, beta=1.0, pools=pools, max_iter=20)
    loss.backward()
    assert loss.device.type == device.type and model.dictionary.grad.dtype == torch.float32
    assert model.encoder.weight.grad.device.type == device.type
