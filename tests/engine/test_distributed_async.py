"""Asynchronous strategies (:mod:`sparsecode.training.parameter_server`): 2 gloo processes spawned here, one thread
each, under a hard timeout (a hang is a failure)."""

from __future__ import annotations

import math
import time

import pytest
import torch
import torch.distributed as dist

from sparsecode.training import DivergenceError, fit_module, make_distributed
from sparsecode.training.distributed import AsyncEAMSGD, AsyncEASGD, Downpour

from .test_distributed import _mse, _net, _params, _regression, spawn, values

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")

SNAPSHOTS: list[list[int]] = []  # in rank 0's process: the server's exchange counts at each of its pass ends


class _Recording:
    """Records, on rank 0, how many exchanges the server has applied from each rank at every pass end."""

    def all_true(self, checks):
        if self.center is not None:
            SNAPSHOTS.append(list(self.exchanges))
        return super().all_true(checks)


class RecordingEASGD(_Recording, AsyncEASGD):
    pass


class RecordingDownpour(_Recording, Downpour):
    pass


SLOW_CASES = [(1, RecordingEASGD(tau=1)), (0, RecordingEASGD(tau=2)), (1, RecordingDownpour(tau=1))]
DELAY, N_STEPS = 0.05, 20  # seconds per step of the slow worker, steps of every worker


def _slow_worker(rank, slow, strategy):
    """``N_STEPS`` steps on every rank, ``DELAY`` seconds each on rank ``slow``: when each rank made its steps."""
    X, y = _regression(torch.float64, n=40, seed=rank)
    times = []

    def loss(module, x, t):
        if rank == slow:
            time.sleep(DELAY)
        times.append(time.monotonic())
        return _mse(module, x, t)

    SNAPSHOTS.clear()
    net = _net(torch.float64)
    res = fit_module(net, loss, (X, y), optimizer="sgd", learning_rate=0.1, batch_size=10, max_iter=N_STEPS // 4,
                     tol=0.0, n_iter_no_change=100, shuffle=False, distributed=strategy)
    return times[0], times[-1], res.loss_curve, _params(net), list(SNAPSHOTS)


def _uneven(rank):
    """Uneven shards, early stopping and local decisions: the models, passes, and losses before and after."""
    X, y = _regression(torch.float64, n=30 + 11 * rank, seed=rank)
    X_all, y_all = _regression(torch.float64, n=200, seed=7)
    out = []
    for strategy in ("async_easgd", AsyncEAMSGD(tau=2, momentum=0.5), Downpour(tau=2)):
        net = _net(torch.float64)
        start = float(_mse(net, X_all, y_all))
        res = fit_module(net, _mse, (X, y), optimizer="sgd", learning_rate=0.1, max_iter=6 + 3 * rank,
                         batch_size=5, early_stopping=True, validation_fraction=0.2, tol=0.0, n_iter_no_change=100,
                         generator=torch.Generator().manual_seed(rank), distributed=strategy)
        out.append((_params(net), res.n_iter, start, float(_mse(net, X_all, y_all))))
    from estimators import PredictiveSparseDecomposition

    psd = PredictiveSparseDecomposition(n_components=3, alpha=0.1, max_iter=2 + rank, batch_size=5,
                                        random_state=rank, device="cpu", distributed="downpour").fit(X.numpy())
    out.append(torch.as_tensor(psd.components_))
    return out


def _diverging(rank):
    """Rank 1's loss turns non-finite at the last step of its first pass: each rank's error message."""
    X, y = _regression(torch.float64, n=40, seed=rank)
    calls = []

    def loss(module, x, t):
        calls.append(1)
        return _mse(module, x, t) * (math.nan if rank == 1 and len(calls) == 4 else 1.0)

    try:
        fit_module(_net(torch.float64), loss, (X, y), optimizer="sgd", learning_rate=0.1, batch_size=10,
                   max_iter=30, tol=0.0, n_iter_no_change=100, distributed=AsyncEASGD(tau=1))
    except DivergenceError as exc:
        return str(exc)
    return "no error"


def _scenarios(rank, world):
    """Every scenario in one spawn (starting processes costs more than the runs)."""
    return {"slow": [_slow_worker(rank, slow, strategy) for slow, strategy in SLOW_CASES],
            "uneven": _uneven(rank), "diverging": _diverging(rank)}


@pytest.fixture(scope="module")
def runs():
    return values(spawn(2, _scenarios, timeout=90))


@pytest.mark.parametrize("case", range(len(SLOW_CASES)))
def test_a_slow_worker_does_not_slow_the_others(runs, case):
    """The fast worker makes all its steps while the slow one has made few (whether the slow one is a worker or
    rank 0, which also serves), the server applied more of its exchanges, and both end with one model."""
    slow, strategy = SLOW_CASES[case]
    outs = [r["slow"][case] for r in runs]
    fast = 1 - slow
    start = min(o[0] for o in outs)
    fast_done, slow_done = outs[fast][1] - start, outs[slow][1] - start
    assert slow_done >= DELAY * N_STEPS
    # waiting for the slow worker at every exchange would end the fast one's steps a step before the slow one's
    assert fast_done < slow_done - 0.5 * DELAY * N_STEPS, (fast_done, slow_done)
    assert outs[fast][2][-1] < outs[fast][2][0]  # the fast worker kept progressing
    assert torch.equal(outs[0][3], outs[1][3])  # every rank holds the server's model
    snapshots = outs[0][4]
    assert snapshots[-1][0] == N_STEPS // strategy.tau
    # at rank 0's last pass end when it is fast, its first when it is slow, the fast worker is ahead
    counts = snapshots[-1] if fast == 0 else snapshots[0]
    assert counts[slow] < counts[fast], snapshots


def test_every_rank_holds_the_center_after_its_own_passes(runs):
    """Each worker ran its own passes (6 and 9) on its own shard and stopped alone; all hold one better model."""
    for k in range(3):
        (p0, n0, start, end), (p1, n1, _, _) = (r["uneven"][k] for r in runs)
        assert torch.equal(p0, p1)
        assert (n0, n1) == (6, 9)  # each worker ran its own passes
        assert end < 0.9 * start
    assert torch.equal(runs[0]["uneven"][3], runs[1]["uneven"][3])  # through an estimator too


def test_a_divergence_on_one_worker_stops_every_worker(runs):
    msg0, msg1 = (r["diverging"] for r in runs)
    assert "diverged" in msg1 and "another worker" not in msg1
    assert "another worker diverged" in msg0 or "after this rank had finished" in msg0


def test_async_strategies_validate_and_need_a_process_group():
    from estimators import DictionaryLearning

    X, y = _regression(torch.float64)
    with pytest.raises(RuntimeError, match="process group"):
        fit_module(_net(torch.float64), _mse, (X, y), max_iter=1, distributed="downpour")
    for bad in (dict(tau=0), dict(tau=1.5)):
        with pytest.raises(ValueError, match="tau"):
            Downpour(**bad)
    with pytest.raises(ValueError, match="moving_rate"):
        AsyncEASGD(moving_rate=2.0)
    with pytest.raises(ValueError, match="Nesterov"):
        AsyncEAMSGD().local_optimizer("adam", {})
    assert isinstance(make_distributed("async_eamsgd"), AsyncEAMSGD)
    with pytest.raises(ValueError, match="distributed"):  # its updates are summed statistics, not gradient steps
        DictionaryLearning(n_components=2, distributed="downpour").fit(X.numpy())
