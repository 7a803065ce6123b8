"""The torch paths make every tensor on their inputs' device, as a GPU run needs, checked on the CPU.

Under ``with torch.device("meta")`` a tensor made without ``device=`` lands on the meta device, and the first
operation mixing it with the CPU inputs raises; on a GPU that tensor would have been on the CPU, with the
same failure. Each path runs here on the torch twins of the compiled kernels (what GPUs run), and must give
exactly what it gives outside the context. Host-side tensors (topographies, statistics for ``.item()``) are
made before the context, as the estimators make them.
"""

import pytest
import torch

from sparsecode.conv_dictionary import ConvDictionaryState, conv_dictionary_step, init_conv_dictionary
from sparsecode.dictionary import OnlineDictionaryState, learn_dictionary_online
from sparsecode.models.conv_psd import ConvPSD
from sparsecode.models.drsae import DrSAE, supervised_loss
from sparsecode.models.lcod import LCoD
from sparsecode.models.lista import LISTA, make_loss
from sparsecode.models.psd import PSD, psd_loss
from sparsecode.penalties import L1, GroupL1, make_penalty
from sparsecode.solvers import solve_conv_lasso, solve_lasso
from sparsecode.topography import Pools

gen = torch.Generator().manual_seed(0)
D = torch.nn.functional.normalize(torch.randn(32, 12, generator=gen, dtype=torch.float64), dim=1)
X = torch.randn(40, 12, generator=gen, dtype=torch.float64)
IMAGES = torch.randn(3, 1, 10, 10, generator=gen, dtype=torch.float64)
KERNELS = init_conv_dictionary(IMAGES, 4, (3, 3), torch.Generator().manual_seed(0))
TORUS = Pools.torus((4, 8), 3)


def _codes(algorithm, **options):
    return lambda: solve_lasso(X, D, 0.1, algorithm=algorithm, **options).code


def _dictionary_learning():
    D1 = D.clone()
    learn_dictionary_online(X, D1, OnlineDictionaryState.zeros(D1), 0.1, batch_size=16, max_iter=2,
                            generator=torch.Generator().manual_seed(0))
    return D1


def _conv_dictionary_step():
    K = KERNELS.clone()
    conv_dictionary_step(IMAGES, K, ConvDictionaryState.empty(K, (10, 10)), 0.1)
    return K


def _gradients(module, loss):
    """``module``'s outputs on ``X`` and the gradients of ``loss(module)``, as one tuple."""
    def run():
        module.zero_grad()
        loss(module).backward()
        return tuple(p.grad.clone() for p in module.parameters() if p.grad is not None)
    return run


def _drsae():
    module = DrSAE(12, 32, 3, n_layers=4, dtype=torch.float64)
    module.init_from_dictionary(D)
    y = torch.arange(40) % 3
    return _gradients(module, lambda m: supervised_loss(m, X, y))


PATHS = {
    **{name: _codes(name) for name in ("homotopy", "cd", "fista", "ista", "threshold")},
    **{f"{name}, positive": _codes(name, penalty=L1(positive=True)) for name in ("homotopy", "cd", "fista")},
    "omp": _codes("omp", n_nonzero_coefs=5),
    "lars": _codes("lars", n_nonzero_coefs=5),
    "fista, group lasso": _codes("fista", penalty=GroupL1(torch.arange(32) // 4)),
    "fista, latent group lasso": _codes("fista", penalty=make_penalty(pools=TORUS)),
    "dictionary learning": _dictionary_learning,
    **{f"conv {name}": (lambda name=name: solve_conv_lasso(IMAGES, KERNELS, 0.1, algorithm=name).code)
       for name in ("admm", "fista", "ista")},
    "conv dictionary step": _conv_dictionary_step,
    "LISTA": _gradients(LISTA(D, 0.1, 3), lambda m: make_loss("energy", D, 0.1)[0](m, X)),
    "LCoD": _gradients(LCoD(D, 0.1, 3), lambda m: make_loss("energy", D, 0.1)[0](m, X)),
    "DrSAE": _drsae(),
    "PSD": _gradients(PSD(D, "shrink", alpha=0.1, offset=X.mean(0)),
                      lambda m: psd_loss(m, X, alpha=0.1, beta=1.0)),
    "PSD, topographic": _gradients(PSD(D, "shrink", alpha=0.1),
                                   lambda m: psd_loss(m, X, alpha=0.1, beta=1.0, pools=TORUS)),
    "ConvPSD": _gradients(ConvPSD(KERNELS, 10.0, alpha=0.1), lambda m: m.training_loss(IMAGES)),
}


@pytest.mark.parametrize("path", sorted(PATHS))
def test_the_torch_paths_keep_to_their_inputs_device(path, torch_paths):
    expected = PATHS[path]()
    with torch.device("meta"):
        got = PATHS[path]()
    for g, e in zip(*(o if isinstance(o, tuple) else (o,) for o in (got, expected)), strict=True):
        assert g.device == e.device
        torch.testing.assert_close(g, e, rtol=0, atol=0)
