"""Faults in a distributed fit (:mod:`sparsecode.training.faults`): a bad shard, a diverging rank and a killed
rank stop every surviving rank with an error (never a hang); a checkpoint written by rank 0 resumes a fit after
a rank was killed, to the uninterrupted run's parameters. 2 gloo processes, each spawn under a hard timeout; two
spawns in all (the kill ends its process group; the next one resumes, then tries a bad shard and divergence)."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
import torch
import torch.distributed as dist

from sparsecode.training import DivergenceError, fit_module
from sparsecode.training.distributed import EASGD
from sparsecode.training.faults import PeerLostError

from .test_distributed import spawn, values

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")

SPAWN_TIMEOUT = 120.0  # a hang guard on a loaded machine; the bound on a survivor's wait is tested inside


# --- a bad shard and a diverging rank ------------------------------------------------------------------------

def _bad_shard(rank, make):
    X = np.random.RandomState(rank).randn(40, 6)
    if rank == 1:
        X[3, 2] = np.nan
    try:
        make(n_components=4, max_iter=2, random_state=0, device="cpu", distributed="allreduce").fit(X)
    except Exception as exc:  # noqa: BLE001 -- returned to the test
        return f"{type(exc).__name__}: {exc}"
    return None


def _problem(rank, n=40):
    g = torch.Generator().manual_seed(rank)
    X = torch.randn(n, 5, generator=g, dtype=torch.float64)
    return X, torch.tanh(X @ torch.ones(5, dtype=torch.float64))


def _net():
    torch.manual_seed(1)
    return torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1)).double()


def _mse(module, x, t):
    return 0.5 * ((module(x).squeeze(1) - t) ** 2).mean()


def _diverging_rank(rank):
    X, y = _problem(rank)
    scale = 30.0 if rank == 1 else 1.0  # rank 1's steps (and only its own: EASGD) blow up
    torch.manual_seed(0)
    linear = torch.nn.Linear(5, 1).double()
    try:
        fit_module(linear, _mse, (X * scale, y), optimizer="sgd", learning_rate=0.05, max_iter=5, tol=0.0,
                   batch_size=8, distributed=EASGD(tau=1000))
    except DivergenceError as exc:
        return str(exc)
    return None


# --- a killed rank, and the checkpoint that resumes after it -------------------------------------------------

FIT = dict(optimizer="momentum", learning_rate=0.05, max_iter=3, tol=0.0, n_iter_no_change=100, batch_size=8,
           distributed="allreduce")


class _DiesAt:
    """The loss; rank 1's process exits abruptly at its ``call``-th evaluation (5 a pass)."""

    def __init__(self, rank, call):
        self.rank, self.call, self.calls = rank, call, 0

    def __call__(self, module, x, t):
        self.calls += 1
        if self.rank == 1 and self.calls == self.call:
            os._exit(1)
        return _mse(module, x, t)


def _fit(rank, loss, path):
    net = _net()
    fit_module(net, loss, _problem(rank), generator=torch.Generator().manual_seed(rank), checkpoint=path, **FIT)
    return torch.cat([p.detach().reshape(-1) for p in net.parameters()])


def _killed(rank, world, path):
    start = time.monotonic()
    try:
        _fit(rank, _DiesAt(rank, call=12), path)
    except PeerLostError as exc:
        return str(exc), time.monotonic() - start
    return None


def _after_the_kill(rank, world, path):
    from estimators import DictionaryLearning, PredictiveSparseDecomposition

    resumed = _fit(rank, _DiesAt(rank, call=None), path)
    return {"resumed": resumed, "reference": _fit(rank, _mse, None),
            "bad shard": [_bad_shard(rank, make) for make in (PredictiveSparseDecomposition, DictionaryLearning)],
            "diverged": _diverging_rank(rank)}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A fit whose rank 1 dies in pass 3; then, on two new processes, the fit resumed and the other faults."""
    path = str(tmp_path_factory.mktemp("faults") / "fit.pt")
    killed = spawn(2, _killed, path, exits=True, timeout=SPAWN_TIMEOUT)
    saved = os.path.exists(path)
    return killed, saved, values(spawn(2, _after_the_kill, path, timeout=SPAWN_TIMEOUT))


def test_a_killed_rank_stops_the_others_within_the_timeout(runs):
    (status0, out), (status1, code) = runs[0]
    assert (status1, code) == ("exited", 1)
    assert status0 == "ok" and out is not None and "a rank died" in out[0]
    assert out[1] < 30.0  # the fit's start to rank 0's error, with the process group's timeout at 15 s


def test_the_checkpoint_of_rank_0_resumes_the_fit_after_the_kill(runs):
    assert runs[1]  # written by rank 0 at the end of pass 2
    for rank in runs[2]:
        assert torch.equal(rank["resumed"], rank["reference"])


def test_a_bad_shard_on_one_rank_stops_every_rank_with_its_message(runs):
    rank0, rank1 = runs[2]
    for error0, error1 in zip(rank0["bad shard"], rank1["bad shard"]):  # PSD, DictionaryLearning
        assert error1.startswith("ValueError") and "NaN" in error1
        assert error0.startswith("PeerFailedError: rank 1") and "NaN" in error0


def test_a_diverging_rank_makes_every_rank_raise_divergence_error(runs):
    rank0, rank1 = runs[2]
    assert rank1["diverged"] is not None and rank0["diverged"] is not None  # rank 0's own loss was sane
