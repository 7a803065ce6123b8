"""The optimizer registry, ASGD, SDLM and the power method against ground truth."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch.func import functional_call

from sparsecode.training import fit_module
from sparsecode.training.optim import (
    ASGD,
    OPTIMIZERS,
    SDLM,
    asgd_schedule,
    estimate_max_learning_rate,
    gauss_newton_diagonal,
    make_optimizer,
    softmax_residuals,
)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    X = (X - X.mean(0)) / (X.std(0) + 1.0)
    return torch.tensor(X[:600], dtype=torch.float64), torch.tensor(y[:600])


def ce_loss(module, x, y):
    return torch.nn.functional.cross_entropy(module(x), y)


def ce_residuals(module, x, y):
    return softmax_residuals(module(x))


def logistic(n_features=64, n_classes=10, seed=0):
    torch.manual_seed(seed)
    return torch.nn.Linear(n_features, n_classes).double()


def flat_call(module, names, shapes, sizes):
    def call(flat, *inputs):
        pieces = torch.split(flat, sizes)
        params = {n: p.reshape(s) for n, p, s in zip(names, pieces, shapes)}
        return functional_call(module, params, inputs)

    return call


def flat_params(module):
    names, params = zip(*module.named_parameters())
    return (list(names), [p.shape for p in params], [p.numel() for p in params],
            torch.cat([p.detach().reshape(-1) for p in params]))


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_every_optimizer_lowers_logistic_loss(digits, name):
    X, y = digits[0][:300], digits[1][:300]
    module = logistic()
    with torch.no_grad():
        before = float(ce_loss(module, X, y))
    result = fit_module(
        module, ce_loss, (X, y), optimizer=name, learning_rate="auto", max_iter=3,
        batch_size=100, tol=0.0, residual_fn=ce_residuals,
        generator=torch.Generator().manual_seed(0),
    )
    with torch.no_grad():
        after = float(ce_loss(module, X, y))
    assert np.isfinite(result.learning_rate) and result.learning_rate > 0
    assert after < 0.5 * before, (name, before, after)


def test_make_optimizer_errors_and_forms():
    w = torch.nn.Parameter(torch.zeros(3))
    with pytest.raises(ValueError, match="'sgd', 'momentum'.*'lbfgs'"):
        make_optimizer("adagrad-ish", [w], 0.1)
    with pytest.raises(ValueError, match="positive"):
        make_optimizer("sgd", [w], -1.0)
    with pytest.raises(ValueError, match="does not accept"):
        make_optimizer("adam", [w], 0.1, momentum=0.9)
    assert isinstance(make_optimizer(torch.optim.Adagrad, [w], 0.1), torch.optim.Adagrad)
    opt = torch.optim.SGD([w], lr=0.3)
    assert make_optimizer(opt, [w], 0.1) is opt
    sgd = make_optimizer("nesterov", [w], 0.1)
    assert sgd.defaults["momentum"] == 0.9 and sgd.defaults["nesterov"]


def test_asgd_schedule_and_average_match_the_formula():
    lr, lambd, t0 = 0.3, 0.5, 2
    target = torch.tensor([1.0, -2.0], dtype=torch.float64)
    w = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    opt = ASGD([w], lr=lr, lambd=lambd, t0=t0)
    w_ref, a_ref = np.zeros(2), np.zeros(2)
    for t in range(8):
        eta = lr / (1 + lambd * lr * t) ** 0.75
        mu = 1.0 if t <= t0 else 1.0 / (1 + t - t0)
        assert asgd_schedule(t, lr, lambd, t0) == pytest.approx((eta, mu), rel=1e-15)
        grad = 2.0 * (w_ref - target.numpy())
        w_ref = w_ref - eta * grad
        a_ref = a_ref + mu * (w_ref - a_ref)
        opt.zero_grad()
        ((w - target) ** 2).sum().backward()
        opt.step()
        np.testing.assert_allclose(w.detach().numpy(), w_ref, rtol=1e-12)
        np.testing.assert_allclose(opt.state[w]["average"].numpy(), a_ref, rtol=1e-12)
    opt.swap_average()
    np.testing.assert_allclose(w.detach().numpy(), a_ref, rtol=1e-12)
    opt.zero_grad()
    ((w - target) ** 2).sum().backward()
    opt.step()  # swaps the iterate back before stepping
    assert not opt.swapped
    assert not np.allclose(w.detach().numpy(), a_ref)


def test_fit_module_keeps_the_asgd_average():
    torch.manual_seed(0)
    X = torch.randn(40, 3, dtype=torch.float64)
    y = X @ torch.tensor([1.0, 0.5, -1.0], dtype=torch.float64)
    lin = torch.nn.Linear(3, 1, bias=False).double()
    w0 = lin.weight.detach().clone().reshape(-1)

    def loss(m, x, t):
        return 0.5 * ((m(x).squeeze(1) - t) ** 2).mean()

    fit_module(lin, loss, (X, y), optimizer="asgd", learning_rate=0.1, max_iter=6,
               batch_size=None, shuffle=False, tol=0.0, optimizer_params={"t0": 2, "lambd": 0.1})
    H, b = X.T @ X / 40, X.T @ y / 40
    w, a = w0.clone(), w0.clone()
    for t in range(6):
        eta, mu = asgd_schedule(t, 0.1, 0.1, 2)
        w = w - eta * (H @ w - b)
        a = a + mu * (w - a)
    torch.testing.assert_close(lin.weight.detach().reshape(-1), a)


def tiny_net():
    torch.manual_seed(1)
    return torch.nn.Sequential(
        torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2)
    ).double()


def exact_gauss_newton(module, x, residual_of_output):
    names, shapes, sizes, flat = flat_params(module)
    call = flat_call(module, names, shapes, sizes)
    J = torch.autograd.functional.jacobian(
        lambda f: residual_of_output(call(f, x)).reshape(-1), flat, vectorize=True)
    return J.square().sum(0) / x.shape[0]


def test_sdlm_diagonal_matches_explicit_jacobians():
    torch.manual_seed(2)
    x, t = torch.randn(7, 3, dtype=torch.float64), torch.randn(7, 2, dtype=torch.float64)
    net = tiny_net()
    exact = exact_gauss_newton(net, x, lambda out: out - t)
    got = gauss_newton_diagonal(net, (x, t), residual_fn=lambda m, a, b: m(a) - b)
    torch.testing.assert_close(torch.cat([g.reshape(-1) for g in got]), exact)
    probes = gauss_newton_diagonal(net, (x, t), residual_fn=lambda m, a, b: m(a) - b,
                                   n_probes=4000, generator=torch.Generator().manual_seed(0))
    probes = torch.cat([g.reshape(-1) for g in probes])
    assert (probes - exact).abs().max() < 0.1 * exact.max()


def test_softmax_residuals_give_the_cross_entropy_gauss_newton():
    torch.manual_seed(3)
    x, y = torch.randn(5, 3, dtype=torch.float64), torch.tensor([0, 1, 1, 0, 1])
    net = tiny_net()
    names, shapes, sizes, flat = flat_params(net)
    call = flat_call(net, names, shapes, sizes)
    Jz = torch.autograd.functional.jacobian(lambda f: call(f, x), flat)  # (n, k, P)
    s = torch.softmax(net(x).detach(), 1)
    H = torch.diag_embed(s) - s.unsqueeze(2) * s.unsqueeze(1)
    exact = torch.einsum("nip,nij,njp->p", Jz, H, Jz) / x.shape[0]
    got = gauss_newton_diagonal(net, (x, y), residual_fn=ce_residuals)
    torch.testing.assert_close(torch.cat([g.reshape(-1) for g in got]), exact)


def test_fit_module_installs_the_exact_diagonal_for_sdlm(digits):
    X, y = digits[0][:50], digits[1][:50]
    module = logistic()
    exact = exact_gauss_newton(module, X, softmax_residuals)
    result = fit_module(module, ce_loss, (X, y), optimizer="sdlm", learning_rate=0.1,
                        max_iter=1, max_steps=1, residual_fn=ce_residuals,
                        optimizer_params={"hessian_samples": 50})
    opt = result.state.optimizer
    assert isinstance(opt, SDLM)
    stored = torch.cat([opt.state[p]["hessian"].reshape(-1) for p in opt.parameters()])
    torch.testing.assert_close(stored, exact)


@pytest.fixture(scope="module")
def small_logistic(digits):
    X, y = digits[0][:300, :24], digits[1][:300] % 3
    module = logistic(24, 3)
    names, shapes, sizes, flat = flat_params(module)
    call = flat_call(module, names, shapes, sizes)
    H = torch.autograd.functional.hessian(
        lambda f: torch.nn.functional.cross_entropy(call(f, X), y), flat)
    return module, (X, y), float(torch.linalg.eigvalsh(H)[-1])


@pytest.mark.parametrize("method", ["autograd", "finite_difference"])
def test_power_method_matches_eigvalsh(small_logistic, method):
    module, data, lam = small_logistic
    est = estimate_max_learning_rate(module, ce_loss, data, method=method, n_iter=500, tol=1e-7,
                                     fd_step=1e-5, generator=torch.Generator().manual_seed(0))
    assert est.lambda_max == pytest.approx(lam, rel=0.01)
    assert est.learning_rate == pytest.approx(1.0 / est.lambda_max)


def test_online_estimate_is_close(small_logistic):
    module, data, lam = small_logistic
    est = estimate_max_learning_rate(module, ce_loss, data, method="online", n_iter=1500,
                                     gamma=0.005, generator=torch.Generator().manual_seed(0))
    assert est.lambda_max == pytest.approx(lam, rel=0.1)


def test_asgd_averages_from_one_pass_unless_t0_is_given():
    X = torch.randn(40, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    y = X.sum(1)

    def loss(m, x, t):
        return 0.5 * ((m(x).squeeze(1) - t) ** 2).mean()

    for options, t0 in ((None, 4), ({"t0": 1}, 1)):
        result = fit_module(torch.nn.Linear(3, 1).double(), loss, (X, y), optimizer="asgd",
                            learning_rate=0.1, max_iter=1, batch_size=10, optimizer_params=options)
        assert result.state.optimizer.param_groups[0]["t0"] == t0


def test_sdlm_refreshes_its_diagonal_every_hessian_interval_samples(digits):
    X, y = digits[0][:50], digits[1][:50]
    calls = []

    class Counting(SDLM):
        def estimate_hessian_diagonal(self, context):
            calls.append(context.n_train)
            return super().estimate_hessian_diagonal(context)

    fit_module(logistic(), ce_loss, (X, y), optimizer=Counting, learning_rate=0.1, max_iter=2,
               batch_size=10, tol=0.0, residual_fn=ce_residuals,
               optimizer_params={"hessian_samples": 20, "hessian_interval": 20})
    assert calls == [50] * 5  # before the build, then before steps 3, 5, 7 and 9 of 10


@pytest.mark.parametrize("cls, options, message", [
    (ASGD, {"lr": 0.0}, "Invalid learning rate: 0.0"),
    (ASGD, {"lambd": -1.0}, "Invalid lambd"),
    (ASGD, {"power": 0.0}, "Invalid power"),
    (SDLM, {"mu": -0.1}, "Invalid mu"),
    (SDLM, {"hessian_interval": 0}, "Invalid hessian_interval"),
    (SDLM, {"hessian_samples": 0}, "Invalid hessian_samples"),
])
def test_optimizer_arguments_are_checked(cls, options, message):
    with pytest.raises(ValueError, match=message):
        cls([torch.nn.Parameter(torch.zeros(2))], **options)
