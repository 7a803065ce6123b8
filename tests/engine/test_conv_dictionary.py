"""Convolutional dictionary learning: the Fourier-domain dictionary update and the learning step."""

import torch

from sparsecode import conv_reconstruct
from sparsecode.conv_dictionary import (
    ConvDictionaryState,
    conv_dictionary_step,
    init_conv_dictionary,
    update_conv_dictionary,
)


def _images_and_codes(seed=0, n=3, K=3, size=(12, 11), kernel=(3, 4)):
    g = torch.Generator().manual_seed(seed)
    h, w = size[0] - kernel[0] + 1, size[1] - kernel[1] + 1
    Z = torch.randn(n, K, h, w, generator=g, dtype=torch.float64) * (torch.rand(n, K, h, w, generator=g) < 0.2)
    X = torch.randn(n, 2, *size, generator=g, dtype=torch.float64)
    return X, Z


def _fit(X, Z, D):
    return 0.5 * float(((X - conv_reconstruct(Z, D)) ** 2).sum())


def test_dictionary_update_solves_the_constrained_least_squares():
    """At fixed codes: the update equals projected gradient descent on the kernels (same optimum)."""
    X, Z = _images_and_codes()
    D0 = init_conv_dictionary(X, 3, (3, 4), torch.Generator().manual_seed(1))
    state = ConvDictionaryState.empty(D0, X.shape[-2:])
    Zh = torch.fft.rfft2(Z, s=X.shape[-2:]).permute(2, 3, 0, 1)
    Xh = torch.fft.rfft2(X, s=X.shape[-2:]).permute(2, 3, 0, 1)
    state.A = Zh.conj().transpose(-2, -1) @ Zh
    state.B = Zh.conj().transpose(-2, -1) @ Xh
    D = update_conv_dictionary(D0, state, max_iter=2000)
    ref = D0.clone().requires_grad_(True)
    step = 1 / float(torch.linalg.eigvalsh(state.A).amax())
    for _ in range(5000):
        loss = 0.5 * ((X - conv_reconstruct(Z, ref)) ** 2).sum()
        (grad,) = torch.autograd.grad(loss, ref)
        with torch.no_grad():
            ref -= step * grad
            ref /= ref.flatten(1).norm(dim=1).clamp(min=1).view(-1, 1, 1, 1)
    assert D.flatten(1).norm(dim=1).max() <= 1 + 1e-9
    assert _fit(X, Z, D) <= _fit(X, Z, D0)
    torch.testing.assert_close(D, ref.detach(), atol=1e-6, rtol=0)


def test_full_batch_steps_decrease_the_objective():
    X = torch.randn(2, 1, 20, 20, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    D = init_conv_dictionary(X, 4, (5, 5), torch.Generator().manual_seed(0))
    state = ConvDictionaryState.empty(D, (20, 20))
    energies = []
    for _ in range(4):
        D, res = conv_dictionary_step(X, D, state, 0.3, full_batch=True, coding_tol=1e-8, coding_max_iter=3000)
        energies.append(_fit(X, res.code, D) + 0.3 * float(res.code.abs().sum()))  # E(Z_t, D_t+1)
    assert all(b <= a + 1e-9 for a, b in zip(energies, energies[1:]))
    assert state.n_steps == 4
    torch.testing.assert_close(D.flatten(1).norm(dim=1), torch.ones(4, dtype=torch.float64), atol=1e-3, rtol=0)


def test_low_rank_full_batch_update_equals_the_explicit_one():
    """A full batch of fewer images than kernels keeps A = Z^H Z implicit (Woodbury): the same kernels."""
    g = torch.Generator().manual_seed(3)
    X = torch.randn(2, 1, 12, 11, generator=g, dtype=torch.float64)
    D = init_conv_dictionary(X, 5, (3, 3), g)
    implicit = ConvDictionaryState.empty(D, (12, 11))
    D1, res = conv_dictionary_step(X, D, implicit, 0.2, full_batch=True)
    assert implicit.codes is not None
    explicit = ConvDictionaryState.empty(D, (12, 11))
    explicit.n_steps, explicit.codes, explicit.B = 1, implicit.codes, implicit.B
    explicit.gram()  # forms A from the codes and drops them
    assert explicit.codes is None
    torch.testing.assert_close(update_conv_dictionary(D, explicit), D1)


def test_initial_kernels_do_not_depend_on_the_dtype():
    """A kernel drawn on a flat patch is its noise; drawn in the data's dtype, the noise (so the kernels, and
    the fits) of float32 and float64 images differed entirely."""
    X = torch.rand(6, 1, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    X[:, :, :10, :10] = 0.5  # flat regions
    D64, D32 = (init_conv_dictionary(X.to(dt), 12, (5, 5), torch.Generator().manual_seed(1))
                for dt in (torch.float64, torch.float32))
    assert D32.dtype == torch.float32 and torch.allclose(D64, D32.double(), atol=1e-5)
