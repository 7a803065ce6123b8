"""LISTA and LCoD modules: exact equality with ISTA / coordinate descent at their initialisation,
the variants, the losses, and training through the one loop."""

import pytest
import torch

from sparsecode.models import LISTA, LCoD, inhibition_mask, make_loss
from sparsecode.objectives import lasso_energy
from sparsecode.penalties import L1
from sparsecode.prox import shrink
from sparsecode.solvers import coordinate_descent, fista, ista, lipschitz_constant
from sparsecode.solvers.cd import cd_step
from sparsecode.training import fit_module


def _problem(n=64, m=24, p=16, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    D = torch.randn(m, p, generator=g, dtype=dtype)
    D /= torch.linalg.vector_norm(D, dim=1, keepdim=True)
    X = torch.randn(n, p, generator=g, dtype=dtype)
    return X, D


@pytest.mark.parametrize("parametrization", ["full", "coupled", "step"])
@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize("T", [0, 1, 3, 7])
def test_lista_at_init_is_T_plus_one_ista_iterations(parametrization, tied, T):
    X, D = _problem()
    L = lipschitz_constant(D)
    enc = LISTA(D, alpha=0.2, n_layers=T, parametrization=parametrization, tied=tied, L=L)
    expected = ista(X, D, 0.2, max_iter=T + 1, tol=0, L=L).code
    torch.testing.assert_close(enc(X), expected, rtol=0, atol=1e-12)


def test_lista_positive_at_init_is_nonnegative_ista():
    X, D = _problem()
    L = lipschitz_constant(D)
    enc = LISTA(D, alpha=0.1, n_layers=4, positive=True, L=L)
    expected = ista(X, D, 0.1, penalty=L1(positive=True), max_iter=5, tol=0, L=L).code
    torch.testing.assert_close(enc(X), expected, rtol=0, atol=1e-12)
    assert bool((enc(X) >= 0).all())


@pytest.mark.parametrize("T", [0, 1, 5, 30])
def test_lcod_at_init_is_T_coordinate_descent_steps(T):
    X, D = _problem()
    D = D * torch.linspace(0.5, 1.5, D.shape[0], dtype=D.dtype).unsqueeze(1)  # non-unit atoms too
    enc = LCoD(D, alpha=0.3, n_layers=T)
    G = D @ D.T
    diag = torch.diagonal(G)
    S = torch.diag(diag) - G
    B, Z = X @ D.T, torch.zeros(X.shape[0], D.shape[0], dtype=X.dtype)
    for _ in range(T):
        B, Z = cd_step(B, Z, S, diag, 0.3, False)
    B_enc, Z_enc = enc.forward_state(X)
    torch.testing.assert_close(Z_enc, Z, rtol=0, atol=1e-12)
    torch.testing.assert_close(enc(X), shrink(B, 0.3) / diag, rtol=0, atol=1e-12)


def test_lcod_steps_match_the_coordinate_descent_solver():
    """``n_sweeps * n_components`` LCoD steps at init are the solver's ``n_sweeps`` sweeps."""
    X, D = _problem()
    m = D.shape[0]
    enc = LCoD(D, alpha=0.3, n_layers=3 * m)
    ref = coordinate_descent(X, D, 0.3, max_iter=3, tol=0).code
    torch.testing.assert_close(enc.forward_state(X)[1], ref, rtol=0, atol=1e-10)


def test_lcod_converges_to_the_lasso_solution():
    X, D = _problem(n=16, m=12)
    enc = LCoD(D, alpha=0.3, n_layers=100 * D.shape[0])
    ref = fista(X, D, 0.3, tol=1e-12, max_iter=20000).code
    torch.testing.assert_close(enc(X), ref, rtol=0, atol=1e-6)


def test_inhibition_mask_keeps_the_largest_entries():
    S = torch.tensor([[3.0, -1.0, 0.2], [0.5, -4.0, 2.0], [0.1, 0.0, -5.0]])
    mask = inhibition_mask(S, 4 / 9)
    assert int(mask.sum()) == 4
    assert torch.equal(mask, S.abs() >= 2.0)
    with pytest.raises(ValueError, match="inhibition_fraction"):
        inhibition_mask(S, 0.0)


def test_partial_inhibition_stays_masked_after_training():
    X, D = _problem(dtype=torch.float32)
    enc = LISTA(D, alpha=0.2, n_layers=2, inhibition_fraction=0.25)
    Zs = fista(X, D, 0.2, tol=1e-5, max_iter=500).code
    loss, _ = make_loss("code")
    fit_module(
        enc, loss, (X, Zs), max_iter=3, batch_size=16, generator=torch.Generator().manual_seed(0)
    )
    kept = enc.mask.bool()
    assert int(kept.sum()) == round(0.25 * kept.numel())
    assert bool((enc.inhibition[0][~kept] == 0).all())
    assert bool((enc.inhibition[0][kept] != 0).any())


def test_lista_parameter_shapes_of_the_variants():
    _, D = _problem()
    m, p = D.shape
    untied = LISTA(D, n_layers=3, tied=False)
    assert untied.weight.shape == (4, m, p) and untied.inhibition.shape == (3, m, m)
    assert untied.threshold.shape == (4, m)
    coupled = LISTA(D, n_layers=3, parametrization="coupled")
    assert not hasattr(coupled, "inhibition") and coupled.weight.shape == (1, m, p)
    step = LISTA(D, n_layers=3, parametrization="step", tied=False)
    assert [n for n, _ in step.named_parameters()] == ["step"] and step.step.shape == (4,)


def test_bad_arguments():
    _, D = _problem()
    with pytest.raises(ValueError, match="parametrization"):
        LISTA(D, parametrization="nope")
    with pytest.raises(ValueError, match="inhibition_fraction"):
        LISTA(D, parametrization="coupled", inhibition_fraction=0.5)
    with pytest.raises(ValueError, match="n_layers"):
        LCoD(D, n_layers=-1)
    with pytest.raises(ValueError, match="loss"):
        make_loss("nope")
    with pytest.raises(ValueError, match="L > 0"):
        LISTA(torch.zeros(3, 2))


def test_float32_and_device_follow_the_dictionary():
    X, D = _problem(dtype=torch.float32)
    for enc in (LISTA(D, n_layers=2), LCoD(D, n_layers=3)):
        out = enc(X)
        assert out.dtype == torch.float32 and out.device == X.device


def test_lcod_backpropagates_through_the_chosen_coordinates():
    X, D = _problem()
    enc = LCoD(D, alpha=0.3, n_layers=5)
    enc(X).pow(2).sum().backward()
    assert all(p.grad is not None and bool(torch.isfinite(p.grad).all()) for p in enc.parameters())
    assert float(enc.inhibition.grad.abs().sum()) > 0


def test_project_keeps_thresholds_and_steps_nonnegative():
    _, D = _problem()
    for enc, name in (
        (LISTA(D), "threshold"),
        (LISTA(D, parametrization="step"), "step"),
        (LCoD(D), "threshold"),
    ):
        with torch.no_grad():
            getattr(enc, name).fill_(-1.0)
        enc.project_()
        assert bool((getattr(enc, name) == 0).all())


@pytest.mark.parametrize("kind", ["code", "energy"])
def test_training_beats_the_classical_algorithm_at_equal_steps(kind):
    """A few passes of either loss improve on T + 1 ISTA iterations, in code error and in energy."""
    X, D = _problem(n=512, m=24, p=16, dtype=torch.float32, seed=1)
    Xte, _ = _problem(n=256, m=24, p=16, dtype=torch.float32, seed=2)
    alpha = 0.1
    Zs = fista(X, D, alpha, tol=1e-6, max_iter=2000).code
    Zte = fista(Xte, D, alpha, tol=1e-6, max_iter=2000).code
    enc = LISTA(D, alpha=alpha, n_layers=2)
    before = enc(Xte).detach()
    loss_fn, residual = make_loss(kind, D, alpha)
    data = (X, Zs) if kind == "code" else (X,)
    res = fit_module(
        enc,
        loss_fn,
        data,
        learning_rate=3e-3,
        max_iter=10,
        batch_size=64,
        projection=type(enc).project_,
        residual_fn=residual,
        generator=torch.Generator().manual_seed(0),
    )
    assert res.loss_curve[-1] < res.loss_curve[0]
    after = enc(Xte).detach()
    assert float(lasso_energy(Xte, after, D, alpha).mean()) < float(
        lasso_energy(Xte, before, D, alpha).mean()
    )
    if kind == "code":
        assert float(((after - Zte) ** 2).sum()) < 0.5 * float(((before - Zte) ** 2).sum())


def test_code_loss_residual_is_consistent_with_the_loss():
    X, D = _problem()
    enc = LISTA(D, n_layers=1)
    Z = torch.zeros(X.shape[0], D.shape[0], dtype=X.dtype)
    loss_fn, residual = make_loss("code")
    r = residual(enc, X, Z)
    torch.testing.assert_close(loss_fn(enc, X, Z), 0.5 * (r * r).sum(1).mean())
