"""The DrSAE network: non-negative ISTA at initialisation, the losses, constraints and rate multipliers."""

import pytest
import torch

from sparsecode.models import DrSAE
from sparsecode.models.drsae import CLASSIFIER_BOUND, _UnrolledEncoder, supervised_loss, unsupervised_loss
from sparsecode.objectives import lasso_energy
from sparsecode.penalties import L1
from sparsecode.solvers import ista, lipschitz_constant
from sparsecode.training import fit_module


def _problem(n=40, m=12, k=20, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    D = torch.randn(k, m, generator=g, dtype=dtype)
    D = D / torch.linalg.vector_norm(D, dim=1, keepdim=True)
    X = torch.randn(n, m, generator=g, dtype=dtype)
    y = torch.randint(0, 3, (n,), generator=g)
    return X, y, D


@pytest.mark.parametrize("n_layers", [1, 2, 11])
def test_ista_initialisation_is_nonnegative_ista(n_layers):
    X, _, D = _problem()
    alpha = 0.1
    net = DrSAE(X.shape[1], D.shape[0], 3, n_layers, alpha, dtype=X.dtype)
    step = net.init_from_dictionary(D)
    assert 0 < step <= 1 / lipschitz_constant(D)
    expected = ista(X, D, alpha, penalty=L1(positive=True), max_iter=n_layers, tol=0, L=1 / step).code
    with torch.no_grad():
        Z = net(X)
    assert (Z > 0).any() and (Z == 0).any()
    torch.testing.assert_close(Z, expected, rtol=1e-12, atol=1e-12)


def test_explicit_step_gives_ista_with_that_step():
    X, _, D = _problem(seed=1)
    L = lipschitz_constant(D)
    net = DrSAE(X.shape[1], D.shape[0], 3, n_layers=6, alpha=0.05, dtype=X.dtype)
    assert net.init_from_dictionary(D, step=1 / L) == pytest.approx(1 / L)
    torch.testing.assert_close(net.encoder, D / L)
    torch.testing.assert_close(net.explain, torch.eye(D.shape[0], dtype=X.dtype) - D @ D.T / L)
    torch.testing.assert_close(net.bias, torch.full((D.shape[0],), 0.05 / L, dtype=X.dtype))
    expected = ista(X, D, 0.05, penalty=L1(positive=True), max_iter=6, tol=0, L=L).code
    torch.testing.assert_close(net(X).detach(), expected, rtol=1e-12, atol=1e-12)


def test_default_step_satisfies_the_constraints():
    X, _, D = _problem(k=30, m=8)
    for n_layers in (2, 11):
        net = DrSAE(X.shape[1], D.shape[0], 3, n_layers, dtype=X.dtype)
        net.init_from_dictionary(D)
        before = [p.detach().clone() for p in net.parameters()]
        net.project_()
        for a, b in zip(before, net.parameters()):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
        assert float(torch.linalg.vector_norm(net.encoder.detach(), dim=1).max()) <= 1.25 / (n_layers - 1) + 1e-12


def test_losses_match_their_definitions():
    X, y, D = _problem()
    net = DrSAE(X.shape[1], D.shape[0], 3, n_layers=4, alpha=0.1, dtype=X.dtype)
    net.init_from_dictionary(D)
    with torch.no_grad():
        net.classifier.copy_(torch.randn(3, D.shape[0], generator=torch.Generator().manual_seed(3),
                                         dtype=X.dtype))
        Z = net(X)
        energy = lasso_energy(X, Z, net.decoder, 0.1).mean()
        logits = (Z / torch.linalg.vector_norm(Z, dim=1, keepdim=True)) @ net.classifier.T
        nll = -torch.log_softmax(logits, dim=1)[torch.arange(len(y)), y].mean()
        torch.testing.assert_close(unsupervised_loss(net, X), energy)
        torch.testing.assert_close(unsupervised_loss(net, X, y), energy)
        torch.testing.assert_close(supervised_loss(net, X, y), energy + nll)
        net.reconstruction_weight = 5.0  # the author code's weight of L^U
        torch.testing.assert_close(unsupervised_loss(net, X), 5 * energy)
        torch.testing.assert_close(supervised_loss(net, X, y), 5 * energy + nll)


def test_zero_codes_give_zero_logits_and_finite_gradients():
    X, y, D = _problem(n=5)
    net = DrSAE(X.shape[1], D.shape[0], 3, n_layers=3, alpha=100.0, dtype=X.dtype)
    net.init_from_dictionary(D)
    with torch.no_grad():
        net.classifier.fill_(1.0)
    loss = supervised_loss(net, X, y)
    assert torch.count_nonzero(net(X)) == 0
    torch.testing.assert_close(net.logits(net(X)), torch.zeros(5, 3, dtype=X.dtype))
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)


class _SupervisedLoss(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, X, y):
        return supervised_loss(self.net, X, y)


def test_supervised_gradient_is_exact():
    X, y, D = _problem(n=6, m=5, k=7)
    net = DrSAE(5, 7, 3, n_layers=3, alpha=0.05, dtype=torch.float64)
    net.init_from_dictionary(D)
    with torch.no_grad():
        net.classifier.normal_(generator=torch.Generator().manual_seed(0))
    wrapped = _SupervisedLoss(net)
    names = [name for name, _ in wrapped.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_() for p in wrapped.parameters())

    def loss(*values):
        return torch.func.functional_call(wrapped, dict(zip(names, values)), (X, y))

    assert torch.autograd.gradcheck(loss, params, fast_mode=True)


@pytest.mark.parametrize("n_layers", [1, 2, 5])
def test_hand_written_backward_matches_finite_differences_to_second_order(n_layers):
    """The encoder's own backward (and its double backward, used by the power method's
    Hessian-vector products) against finite differences, input gradient included."""
    g = torch.Generator().manual_seed(n_layers)
    X = torch.rand(4, 6, generator=g, dtype=torch.float64).requires_grad_()
    E = (0.3 * torch.randn(5, 6, generator=g, dtype=torch.float64)).requires_grad_()
    S = (0.2 * torch.randn(5, 5, generator=g, dtype=torch.float64)).requires_grad_()
    b = (0.05 * torch.rand(5, generator=g, dtype=torch.float64)).requires_grad_()

    def encode(X, E, S, b):
        return _UnrolledEncoder.apply(X, E, S, b, n_layers)

    assert (encode(X, E, S, b) > 0).any() and (encode(X, E, S, b) == 0).any()
    assert torch.autograd.gradcheck(encode, (X, E, S, b))
    assert torch.autograd.gradgradcheck(encode, (X, E, S, b))


def test_training_forward_equals_the_no_grad_forward():
    X, y, D = _problem()
    net = DrSAE(X.shape[1], D.shape[0], 3, n_layers=11, alpha=0.1, dtype=X.dtype)
    net.init_from_dictionary(D)
    with torch.no_grad():
        expected = net(X)
    Z = net(X)
    assert Z.grad_fn is not None
    torch.testing.assert_close(Z.detach(), expected, rtol=0, atol=0)


def test_param_groups_scale_rates_by_repeat_count():
    net = DrSAE(6, 5, 4, n_layers=11)
    groups = net.param_groups()
    scales = {id(g["params"][0]): g["lr_scale"] for g in groups}
    assert scales[id(net.encoder)] == pytest.approx(1 / 11)
    assert scales[id(net.bias)] == pytest.approx(1 / 11)
    assert scales[id(net.explain)] == pytest.approx(1 / 10)
    assert scales[id(net.decoder)] == pytest.approx(1.0)
    assert scales[id(net.classifier)] == pytest.approx(1 / CLASSIFIER_BOUND)
    assert sorted(scales) == sorted(id(p) for p in net.parameters())
    pretrain = {id(p) for g in net.param_groups(supervised=False) for p in g["params"]}
    assert id(net.classifier) not in pretrain and len(pretrain) == 4
    single = DrSAE(6, 5, 4, n_layers=1)
    assert id(single.explain) not in {id(p) for g in single.param_groups() for p in g["params"]}
    assert single.encoder_bound == float("inf")


def test_constraints_hold_after_every_step():
    X, y, D = _problem(n=64, m=10, k=16, dtype=torch.float32)
    net = DrSAE(10, 16, 3, n_layers=5, alpha=0.05)
    net.init_from_dictionary(D, step=0.5)
    with torch.no_grad():  # start outside every constraint on purpose
        net.decoder.mul_(1.5)
        net.classifier.normal_(std=10.0, generator=torch.Generator().manual_seed(1))
    worst = {"D": 0.0, "E": 0.0, "C": 0.0}

    def project_and_record(module):
        DrSAE.project_(module)
        for key, W in (("D", module.decoder), ("E", module.encoder), ("C", module.classifier)):
            worst[key] = max(worst[key], float(torch.linalg.vector_norm(W, dim=1).max()))

    for loss_fn, supervised in ((unsupervised_loss, False), (supervised_loss, True)):
        fit_module(net, loss_fn, (X, y), optimizer="sgd", learning_rate=0.1, batch_size=8,
                   max_iter=3, tol=0, projection=project_and_record,
                   param_groups=net.param_groups(supervised), generator=torch.Generator().manual_seed(0))
    tol = 1e-6
    assert worst["D"] <= 1 + tol and worst["E"] <= 1.25 / 4 + tol and worst["C"] <= 5 + tol
    # the bounds were active (the parameters started outside them), not just satisfied
    assert worst["D"] > 1 - 1e-3 and worst["E"] > 1.25 / 4 - 1e-3 and worst["C"] > 5 - 1e-3


def test_dtype_and_device_follow_the_parameters():
    X, y, D = _problem(dtype=torch.float32)
    net = DrSAE(X.shape[1], D.shape[0], 3, n_layers=3)
    net.init_from_dictionary(D.double())
    assert net.decoder.dtype == torch.float32
    Z = net(X)
    assert Z.dtype == torch.float32 and Z.device == X.device
    assert supervised_loss(net, X, y).dtype == torch.float32
    with pytest.raises(ValueError, match="n_layers"):
        DrSAE(3, 2, 2, n_layers=0)
