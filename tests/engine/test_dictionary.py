"""The dictionary's block-coordinate sweep: compiled and torch versions agree and descend the surrogate."""

import pytest
import torch

import sparsecode.dictionary as module
from sparsecode.dictionary import update_dictionary


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
