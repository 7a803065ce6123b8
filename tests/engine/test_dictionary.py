"""The dictionary's block-coordinate sweep (compiled and torch versions agree and descend the surrogate),
the redraw of unused atoms and online dictionary learning's loop."""

import pytest
import torch

import sparsecode.dictionary as module
from sparsecode.dictionary import (
    OnlineDictionaryState,
    init_dictionary,
    learn_dictionary_online,
    update_dictionary,
)


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
def test_compiled_sweep_equals_the_torch_sweep(monkeypatch, positive):
    D, A, B = _statistics(0)
    compiled = D.clone()
    update_dictionary(compiled, A, B, positive=positive)
    monkeypatch.setattr(module, "compiled_kernels", lambda: None)
    looped = D.clone()
    update_dictionary(looped, A, B, positive=positive)
    assert torch.allclose(compiled, looped, atol=1e-12)
    assert torch.equal(compiled[3], D[3])


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
