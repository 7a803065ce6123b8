"""The dictionary's block-coordinate sweep (compiled and torch versions agree and descend the surrogate),
the redraw of unused atoms and online dictionary learning's loop."""

import pytest
import torch

import sparsecode.dictionary as module
from sparsecode.dictionary import (
    OnlineDictionaryState,
    init_dictionary,
    learn_dictionary_online,
    online_dictionary_step,
    update_dictionary,
)
from sparsecode.topography import Pools


def _statistics(seed, n=200, m=24, p=10):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, p, generator=g, dtype=torch.float64)
    Z = torch.randn(n, m, generator=g, dtype=torch.float64) * (torch.rand(n, m, generator=g) < 0.2)
    D = torch.randn(m, p, generator=g, dtype=torch.float64)
    D /= D.norm(dim=1, keepdim=True)
    Z[:, 3] = 0  # an unused atom: A_kk = 0 is skipped
    return D, Z.T @ Z / n, Z.T @ X / n


def _surrogate(D, A, B):
    """Mairal et al.'s surrogate 0.5 tr(D^T A D) - tr(D^T B) (rows of D are atoms)."""
    return 0.5 * torch.sum(D * (A @ D)) - torch.sum(D * B)


@pytest.mark.parametrize("positive", [False, True])
@pytest.mark.parametrize("m", [24, 80], ids=["one block", "blocks of 32 and a partial one"])
def test_compiled_sweep_equals_the_torch_sweep_on_every_device(monkeypatch, device, positive, m):
    D, A, B = _statistics(0, m=m)
    compiled = D.clone()
    update_dictionary(compiled, A, B, positive=positive)
    monkeypatch.setattr(module, "compiled_kernels", lambda: None)
    looped = D.to(device)
    update_dictionary(looped, A.to(device), B.to(device), positive=positive)
    assert torch.allclose(compiled, looped.cpu(), atol=1e-12)
    assert torch.equal(compiled[3], D[3]) and torch.equal(looped[3].cpu(), D[3])


@pytest.mark.parametrize("positive", [False, True])
def test_sweeps_descend_the_surrogate_and_keep_atoms_in_the_ball(positive):
    D, A, B = _statistics(1)
    if positive:
        D = D.abs()
    values = [_surrogate(D, A, B)]
    for _ in range(5):
        update_dictionary(D, A, B, positive=positive)
        values.append(_surrogate(D, A, B))
    assert all(b <= a + 1e-12 for a, b in zip(values, values[1:]))
    assert bool((D.norm(dim=1) <= 1 + 1e-12).all())
    if positive:
        assert bool((D >= 0).all())


def test_an_unused_atom_is_redrawn_from_a_sample_unless_the_sample_is_zero():
    D, A, B = _statistics(2)
    X = torch.zeros(5, D.shape[1], dtype=D.dtype)
    kept = D.clone()
    assert update_dictionary(kept, A, B, X=X) == 1
    assert torch.equal(kept[3], D[3])
    X[:] = 2.0
    assert update_dictionary(D, A, B, X=X) == 1
    assert torch.allclose(D[3], X[0] / X[0].norm())


def _online(n=200, **kwargs):
    g = torch.Generator().manual_seed(0)
    X = torch.randn(n, 8, generator=g, dtype=torch.float64)
    D = init_dictionary(X, 6, g)
    return D, learn_dictionary_online(X, D, OnlineDictionaryState.zeros(D), 0.1, batch_size=50, **kwargs)


def test_online_loop_stops_on_the_rules_only_after_the_warm_up():
    # Warm-up: min(100, n_samples / batch_size) = 4 steps, so a huge tol stops the fifth.
    _, res = _online(max_iter=10, tol=1e9)
    assert (res.n_steps, res.n_passes, res.interrupted) == (5, 2, False)
    _, res = _online(max_iter=3, tol=0, max_no_improvement=None, shuffle=False)
    assert (res.n_steps, res.n_passes) == (12, 3)


def test_online_loop_stops_on_callback_and_on_ctrl_c(capsys):
    seen = []
    _, res = _online(max_iter=5, tol=0, callback=lambda info: seen.append(info) or info["step"] == 3)
    assert res.n_steps == 3 and [info["step"] for info in seen] == [1, 2, 3]
    assert seen[0]["n_steps"] == 20 and isinstance(seen[0]["dictionary"], torch.Tensor)

    def interrupt(info):
        if info["step"] == 6:
            raise KeyboardInterrupt

    D, res = _online(max_iter=5, tol=0, callback=interrupt, verbose=True)
    assert (res.n_steps, res.n_passes, res.interrupted) == (6, 2, True)
    assert bool(torch.isfinite(D).all())
    out = capsys.readouterr().out
    assert "pass 1/5, step 4" in out and "interrupted after 6 steps" in out


def test_online_loop_draws_without_a_generator():
    X = torch.randn(60, 5, dtype=torch.float64)
    D = init_dictionary(X, 4)
    res = learn_dictionary_online(X, D, OnlineDictionaryState.zeros(D), 0.1, batch_size=20, max_iter=2)
    assert res.n_steps == 6 and bool((D.norm(dim=1) <= 1 + 1e-12).all())


def _two_steps(**options):
    g = torch.Generator().manual_seed(0)
    X = torch.randn(100, 8, generator=g, dtype=torch.float64)
    D = init_dictionary(X, 6, g)
    state = OnlineDictionaryState.zeros(D)
    online_dictionary_step(D, state, X[:50], 0.1, batch_size=50, **options)
    first = state.A.clone()
    online_dictionary_step(D, state, X[50:], 0.1, batch_size=50, **options)
    return first, state.A


def test_forgetting_scales_the_past_statistics_by_the_minibatch_factor_to_its_power():
    # The first step's update is the same for every exponent, so the second step's codes are too and
    # A_2 = beta**forgetting * A_1 + Z_2^T Z_2 / n, beta = (theta + 1 - b) / (theta + 1), theta = 2b.
    beta = (2 * 50 + 1 - 50) / (2 * 50 + 1)
    first, kept = _two_steps(forgetting=0.0)
    for forgetting in (1.0, 4.0):
        again, A = _two_steps(forgetting=forgetting)
        assert torch.allclose(again, first, atol=1e-12)
        assert torch.allclose(kept - A, (1 - beta**forgetting) * first, atol=1e-12)


def test_n_sweeps_are_that_many_sweeps_on_the_new_statistics():
    g = torch.Generator().manual_seed(1)
    X = torch.randn(40, 8, generator=g, dtype=torch.float64)
    D = init_dictionary(X, 6, g)
    once, thrice = D.clone(), D.clone()
    state = OnlineDictionaryState.zeros(D)
    online_dictionary_step(once, state, X, 0.1, batch_size=40, n_sweeps=1)
    for _ in range(2):
        update_dictionary(once, state.A, state.B)
    online_dictionary_step(thrice, OnlineDictionaryState.zeros(D), X, 0.1, batch_size=40, n_sweeps=3)
    assert torch.allclose(once, thrice, atol=1e-12)


@pytest.mark.parametrize("structure", [{"groups": torch.tensor([0, 0, 1, 1, 2, 2])},
                                       {"pools": Pools.torus((2, 3), 2)}], ids=["groups", "pools"])
def test_a_step_with_structure_given_on_the_cpu_runs_on_the_data_device(device, structure):
    # groups and pools are built on the CPU (as the estimators do) whatever the device of the data
    g = torch.Generator().manual_seed(2)
    X = torch.randn(40, 8, generator=g, dtype=torch.float64)
    D = init_dictionary(X, 6, g)
    on_cpu = D.clone()
    cost_cpu = online_dictionary_step(on_cpu, OnlineDictionaryState.zeros(on_cpu), X, 0.1, batch_size=40,
                                      **structure)
    D = D.to(device)
    cost = online_dictionary_step(D, OnlineDictionaryState.zeros(D), X.to(device), 0.1, batch_size=40,
                                  **structure)
    assert D.device.type == device.type
    torch.testing.assert_close(cost.cpu(), cost_cpu)
    torch.testing.assert_close(D.cpu(), on_cpu)


@pytest.mark.parametrize("options", [{"forgetting": -1.0}, {"forgetting": float("nan")}, {"n_sweeps": 0},
                                     {"n_sweeps": 1.5}])
def test_bad_forgetting_or_sweeps_are_refused(options):
    D = init_dictionary(torch.randn(10, 4, dtype=torch.float64), 3)
    with pytest.raises(ValueError, match="forgetting must be"):
        online_dictionary_step(D, OnlineDictionaryState.zeros(D), torch.randn(10, 4, dtype=torch.float64), 0.1,
                               batch_size=10, **options)
