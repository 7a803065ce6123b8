"""The one training loop: divergence, auto rate, Ctrl-C, continuation, early stopping, hooks."""

import pickle

import pytest
import torch

from sparsecode.training import DivergenceError, TrainState, fit_module
from sparsecode.training.optim import TrainingHooks


def quadratic(seed=0, n=200):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 2, generator=g, dtype=torch.float64) @ torch.tensor(
        [[2.0, 0.0], [1.0, 0.5]], dtype=torch.float64)
    y = X @ torch.tensor([1.0, -1.0], dtype=torch.float64)
    return X, y


def linear(seed=0, n_in=2):
    torch.manual_seed(seed)
    return torch.nn.Linear(n_in, 1, bias=False).double()


def mse(module, x, t):
    return 0.5 * ((module(x).squeeze(1) - t) ** 2).mean()


def test_batch_gd_diverges_above_two_over_lambda_and_auto_converges():
    X, y = quadratic()
    lam = float(torch.linalg.eigvalsh(X.T @ X / X.shape[0])[-1])  # Hessian of mse
    module = linear()
    w0 = module.weight.detach().clone()
    with pytest.raises(DivergenceError, match=r"learning_rate=.*power method.*learning_rate=") as err:
        fit_module(module, mse, (X, y), optimizer="sgd", learning_rate=2.5 / lam, max_iter=2000,
                   batch_size=None, tol=0.0, n_iter_no_change=2000)
    assert err.value.learning_rate == pytest.approx(2.5 / lam)
    assert err.value.suggested_learning_rate == pytest.approx(1.0 / lam, rel=0.01)
    assert torch.isfinite(module.weight).all() and not torch.equal(module.weight, w0)
    module = linear()
    result = fit_module(module, mse, (X, y), optimizer="sgd", learning_rate="auto",
                        max_iter=2000, batch_size=None, tol=1e-12)
    assert result.learning_rate == pytest.approx(1.0 / lam, rel=0.01)
    assert result.converged
    torch.testing.assert_close(module.weight.detach().reshape(-1),
                               torch.tensor([1.0, -1.0], dtype=torch.float64), atol=1e-5, rtol=0)


def test_ctrl_c_keeps_the_last_good_state():
    X, y = quadratic()
    calls = {"n": 0}

    def interrupting(module, x, t):
        calls["n"] += 1
        if calls["n"] == 8:
            raise KeyboardInterrupt
        return mse(module, x, t)

    module = linear()
    result = fit_module(module, interrupting, (X, y), optimizer="sgd", learning_rate=0.05,
                        batch_size=50, shuffle=False, max_iter=10)
    assert result.interrupted and not result.converged
    assert result.n_iter == 1 and result.state.n_steps == 7
    reference = linear()
    fit_module(reference, mse, (X, y), optimizer="sgd", learning_rate=0.05, batch_size=50,
               shuffle=False, max_iter=10, max_steps=7)
    torch.testing.assert_close(module.weight, reference.weight)


def test_state_continues_the_same_optimizer_and_pickles():
    X, y = quadratic()
    kwargs = dict(optimizer="adam", learning_rate=0.05, batch_size=None, tol=0.0, shuffle=False)
    once = linear()
    fit_module(once, mse, (X, y), max_iter=5, **kwargs)
    twice = linear()
    first = fit_module(twice, mse, (X, y), max_iter=3, **kwargs)
    twice, state = pickle.loads(pickle.dumps((twice, first.state)))
    second = fit_module(twice, mse, (X, y), max_iter=2, state=state, **kwargs)
    assert second.n_iter == 2 and second.state.epoch == 5 and len(second.state.loss_curve) == 5
    torch.testing.assert_close(twice.weight, once.weight)
    apart = pickle.loads(pickle.dumps(linear()))  # a module unpickled apart from its state
    apart.load_state_dict(twice.state_dict())
    fit_module(apart, mse, (X, y), max_iter=1, state=pickle.loads(pickle.dumps(second.state)),
               **kwargs)
    fit_module(twice, mse, (X, y), max_iter=1, state=second.state, **kwargs)
    torch.testing.assert_close(apart.weight, twice.weight)


def test_early_stopping_restores_the_best_parameters():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(60, 20, generator=g, dtype=torch.float64)
    y = torch.randn(60, generator=g, dtype=torch.float64)  # pure noise: validation loss rises
    module = linear(n_in=20)
    result = fit_module(module, mse, (X, y), optimizer="adam", learning_rate=0.05, max_iter=60,
                        batch_size=10, early_stopping=True, validation_fraction=0.2,
                        n_iter_no_change=5, generator=torch.Generator().manual_seed(1))
    scores = result.validation_scores
    best = max(range(len(scores)), key=scores.__getitem__)
    assert result.converged and best < len(scores) - 1
    rows = torch.randperm(60, generator=torch.Generator().manual_seed(1))[:12]
    with torch.no_grad():
        assert -float(mse(module, X[rows], y[rows])) == pytest.approx(scores[best])


def test_projection_runs_after_every_step_and_param_groups_scale_rates():
    X, y = quadratic()
    module = torch.nn.Linear(2, 1).double()
    bias0 = module.bias.detach().clone()
    calls = []

    def unit_rows(m):
        calls.append(1)
        m.weight.div_(m.weight.norm(dim=1, keepdim=True))

    result = fit_module(
        module, mse, (X, y), optimizer="sgd", learning_rate=0.1, max_iter=3, batch_size=40,
        tol=0.0, projection=unit_rows,
        param_groups=[{"params": [module.weight], "lr_scale": 2.0},
                      {"params": [module.bias], "lr_scale": 0.0}],
    )
    assert len(calls) == result.state.n_steps == 15
    assert module.weight.norm().item() == pytest.approx(1.0)
    assert torch.equal(module.bias, bias0)
    assert [g["lr"] for g in result.state.optimizer.param_groups] == [0.2, 0.0]


def test_max_iter_zero_does_nothing():
    X, y = quadratic()
    module = linear()
    w0 = module.weight.detach().clone()
    result = fit_module(module, mse, (X, y), max_iter=0)
    assert result.n_iter == 0 and result.loss_curve == [] and not result.converged
    assert result.state.optimizer is None and torch.equal(module.weight, w0)


def test_lbfgs_reaches_the_least_squares_solution():
    X, y = quadratic()
    module = linear()
    result = fit_module(module, mse, (X, y), optimizer="lbfgs", learning_rate="auto",
                        max_iter=5, batch_size=None, tol=1e-10)
    assert result.learning_rate == 1.0
    torch.testing.assert_close(module.weight.detach().reshape(-1),
                               torch.tensor([1.0, -1.0], dtype=torch.float64), atol=1e-5, rtol=0)


def test_verbose_prints_only_when_asked(capsys):
    X, y = quadratic()
    fit_module(linear(), mse, (X, y), max_iter=2, tol=0.0)
    assert capsys.readouterr().out == ""
    fit_module(linear(), mse, (X, y), max_iter=2, tol=0.0, verbose=2)
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and out[0].startswith("pass 1: loss")
    fit_module(linear(), mse, (X, y), max_iter=1, tol=0.0, verbose=1, label="Model stage")
    assert capsys.readouterr().out.startswith("[Model stage] pass 1: loss")


def test_bad_data_is_refused():
    with pytest.raises(ValueError, match="dim 0"):
        fit_module(linear(), mse, (torch.zeros(3, 2), torch.zeros(4)), state=TrainState())


def test_lr_decay_is_torch7_learning_rate_decay_in_samples():
    """SGD with ``lr_decay``: step t uses rate * lr_scale / (1 + d * samples seen before it)."""
    X, y = quadratic(n=60)
    decay, rate, scales = 0.01, 0.1, (1.0, 0.5)
    module = torch.nn.Linear(2, 1).double()
    w, b = module.weight.detach().clone(), module.bias.detach().clone()
    groups = [{"params": [module.weight], "lr_scale": scales[0]},
              {"params": [module.bias], "lr_scale": scales[1]}]
    first = fit_module(module, mse, (X, y), optimizer="sgd", learning_rate=rate, max_iter=2,
                       batch_size=25, shuffle=False, tol=0.0, param_groups=groups, lr_decay=decay)
    fit_module(module, mse, (X, y), optimizer="sgd", learning_rate=rate, max_iter=1, batch_size=25,
               shuffle=False, tol=0.0, param_groups=groups, lr_decay=decay, state=first.state)
    seen = 0
    for _ in range(3):  # the second call continues the clock of the first
        for start in range(0, 60, 25):
            xb, yb = X[start:start + 25], y[start:start + 25]
            eta = rate / (1.0 + decay * seen)
            r = (xb @ w.T).squeeze(1) + b - yb
            w = w - eta * scales[0] * (r @ xb / len(xb)).unsqueeze(0)
            b = b - eta * scales[1] * r.mean()
            seen += len(xb)
    torch.testing.assert_close(module.weight.detach(), w)
    torch.testing.assert_close(module.bias.detach(), b)
    assert first.state.n_samples_seen == seen
    last = rate / (1.0 + decay * (seen - 10))
    groups = first.state.optimizer.param_groups
    assert [g["lr"] for g in groups] == pytest.approx([last * s for s in scales])
    assert [g["initial_lr"] for g in groups] == pytest.approx([rate * s for s in scales])
    assert first.learning_rate == rate
    with pytest.raises(ValueError, match="lr_decay"):
        fit_module(linear(), mse, (X, y), lr_decay=-1.0)


def test_lr_decay_continues_through_a_pickled_state():
    X, y = quadratic(n=60)
    kwargs = dict(optimizer="momentum", learning_rate=0.05, batch_size=25, shuffle=False, tol=0.0,
                  lr_decay=0.02)
    once = linear()
    fit_module(once, mse, (X, y), max_iter=4, **kwargs)
    twice = linear()
    first = fit_module(twice, mse, (X, y), max_iter=2, **kwargs)
    apart = pickle.loads(pickle.dumps(twice))  # rebinds the optimizer to the unpickled tensors
    fit_module(apart, mse, (X, y), max_iter=2, state=pickle.loads(pickle.dumps(first.state)), **kwargs)
    assert torch.equal(apart.weight, once.weight)


def test_the_loop_calls_the_optimizer_hooks():
    calls = []

    class Recording(TrainingHooks, torch.optim.SGD):
        @classmethod
        def prepare(cls, context, options):
            calls.append(("prepare", context.steps_per_pass, context.n_train))
            return {**options, "momentum": 0.5}, None

        def before_step(self, n_batch, context):
            calls.append(("step", n_batch))

        def use_average(self, flag):
            calls.append(("average", flag))

    X, y = quadratic(n=50)
    result = fit_module(linear(), mse, (X, y), optimizer=Recording, learning_rate=0.01, max_iter=2,
                        batch_size=20, tol=0.0, early_stopping=True, validation_fraction=0.2)
    assert result.state.optimizer.defaults["momentum"] == 0.5
    steps, validation = [("step", 20), ("step", 20)], [("average", True), ("average", False)]
    assert calls == ([("prepare", 2, 40), ("average", False)] + steps + validation + steps + validation
                     + [("average", True)])
