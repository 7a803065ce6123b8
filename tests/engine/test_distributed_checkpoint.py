"""Exact resume of synchronous EASGD and EAMSGD (:mod:`sparsecode.training.checkpoint`): every rank's worker and
momentum, the center and the exchange schedule are saved by rank 0, and a fit resumed after a crash (an error on
every rank, or a rank killed) ends with the uninterrupted run's bits. 2 gloo processes, two spawns in all."""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist

from sparsecode.training import fit_module
from sparsecode.training.distributed import EAMSGD, EASGD
from sparsecode.training.faults import PeerLostError

from .test_checkpoint import Loss
from .test_distributed import spawn, values
from .test_distributed_faults import SPAWN_TIMEOUT, _DiesAt, _mse, _net, _problem

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")

# 5 loss calls a pass (40 rows, batch 8; with early stopping 4 steps and a validation); tau=3 puts the
# exchanges at other steps of every pass, so that a resume restarting the schedule would differ
FITS = {
    "eamsgd": dict(optimizer="sgd", learning_rate=0.05, distributed=EAMSGD(tau=3, momentum=0.5),
                   early_stopping=True, validation_fraction=0.2),
    "easgd": dict(optimizer="sgd", learning_rate=0.1, distributed=EASGD(tau=3)),
}


def _fit(rank, name, loss, path):
    net = _net()
    result = fit_module(net, loss, _problem(rank), max_iter=3, batch_size=8, tol=0.0, n_iter_no_change=100,
                        generator=torch.Generator().manual_seed(rank), checkpoint=path, **FITS[name])
    return torch.cat([p.detach().reshape(-1) for p in net.parameters()]), result.loss_curve


def _crashed(rank, world, paths):
    """EAMSGD stops with an error on every rank in pass 3, then EASGD loses rank 1 in pass 3."""
    with pytest.raises(RuntimeError, match="crash"):
        _fit(rank, "eamsgd", Loss(crash_at=12), paths["eamsgd"])
    try:
        _fit(rank, "easgd", _DiesAt(rank, call=12), paths["easgd"])
    except PeerLostError:
        return "peer lost"
    return None


def _resumed(rank, world, paths):
    with pytest.raises(ValueError, match="distributed=EASGD, not AllReduce"):
        fit_module(_net(), _mse, _problem(rank), max_iter=3, batch_size=8, distributed="allreduce",
                   checkpoint=paths["easgd"])
    out = {}
    for name, path in paths.items():
        loss = Loss()
        out[name] = _fit(rank, name, loss, path), loss.calls, _fit(rank, name, _mse, None)
    return out


def test_easgd_and_eamsgd_resume_to_the_uninterrupted_run(tmp_path):
    paths = {name: str(tmp_path / f"{name}.pt") for name in FITS}
    (s0, v0), (s1, v1) = spawn(2, _crashed, paths, exits=True, timeout=SPAWN_TIMEOUT)
    assert (s0, v0) == ("ok", "peer lost") and (s1, v1) == ("exited", 1)
    assert all(os.path.exists(p) for p in paths.values())  # written by rank 0 at the end of pass 2
    outs = values(spawn(2, _resumed, paths, timeout=SPAWN_TIMEOUT))
    for name in FITS:
        for rank in outs:
            (params, curve), calls, (ref_params, ref_curve) = rank[name]
            assert calls == 5  # the third pass only
            assert torch.equal(params, ref_params) and curve == ref_curve
        assert torch.equal(outs[0][name][0][0], outs[1][name][0][0])  # every rank holds the center


def test_a_file_of_another_format_is_refused(tmp_path):
    path = tmp_path / "old.pt"
    torch.save({"format": "sparsecode-checkpoint-1", "identity": None}, path)
    with pytest.raises(ValueError, match="format 'sparsecode-checkpoint-1' of another sparsecode version"):
        fit_module(_net(), _mse, _problem(0), max_iter=1, checkpoint=path)
