"""Training on several processes (:mod:`sparsecode.training.distributed`): 2 and 3 gloo processes spawned here,
one thread each, each run under a hard timeout (a hang is a failure)."""

from __future__ import annotations

import datetime
import math
import multiprocessing
import pickle
import queue
import socket
import time
import traceback

import numpy as np
import pytest
import torch
import torch.distributed as dist

from sparsecode.training import DivergenceError, fit_module, make_distributed
from sparsecode.training.distributed import EAMSGD, EASGD, AsyncEASGD, easgd_quadratic_map

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")

TIMEOUT = 60.0  # seconds for a whole spawn, start-up included


def _worker(rank, world, port, fn, args, results):
    torch.set_num_threads(1)
    try:
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world,
                                timeout=datetime.timedelta(seconds=15))
        out = fn(rank, world, *args)
        results.put((rank, "ok", pickle.dumps(out)))  # plain pickle: no shared memory outliving the child
    except BaseException as exc:  # noqa: BLE001 -- reported to the parent, which fails the test
        results.put((rank, "error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def spawn(world: int, fn, *args, timeout: float = TIMEOUT, exits: bool = False) -> list:
    """``fn(rank, world, *args)`` on ``world`` gloo processes; the ranks' return values, or the test fails.

    With ``exits``, a rank whose process ends without reporting gives ``("exited", exit code)``."""
    ctx = multiprocessing.get_context("spawn")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    results = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(r, world, port, fn, args, results), daemon=True)
             for r in range(world)]
    for p in procs:
        p.start()
    outs = {}
    try:
        deadline = time.monotonic() + timeout
        while len(outs) < world:
            try:
                rank, status, value = results.get(timeout=0.5 if exits else max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                outs.update({r: ("exited", p.exitcode) for r, p in enumerate(procs)
                             if exits and r not in outs and not p.is_alive()})
                if time.monotonic() < deadline:
                    continue
                pytest.fail(f"distributed run hung: ranks {sorted(set(range(world)) - set(outs))} did not "
                            f"finish within {timeout} s")
            outs[rank] = (status, pickle.loads(value) if status == "ok" else value)
    finally:
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
    return [outs[r] for r in range(world)]


def values(outs: list) -> list:
    errors = [v for s, v in outs if s != "ok"]
    assert not errors, "\n".join(errors)
    return [v for _, v in outs]


# --- the problems -------------------------------------------------------------------------------------------

def _regression(dtype, n=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 5, generator=g, dtype=dtype)
    y = torch.tanh(X @ torch.randn(5, generator=g, dtype=dtype))
    return X, y


def _net(dtype):
    torch.manual_seed(1)
    return torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1)).to(dtype)


def _mse(module, x, t):
    return 0.5 * ((module(x).squeeze(1) - t) ** 2).mean()


def _params(module):
    return torch.cat([p.detach().reshape(-1) for p in module.parameters()])


FIT = dict(optimizer="momentum", learning_rate=0.05, max_iter=3, tol=0.0, n_iter_no_change=100, shuffle=False)


def _allreduce_vs_one(rank, world, b):
    """Rank r's k-th minibatch is the r-th b rows of block k (world*b rows): one process trains on the blocks."""
    out = {}
    for dtype in (torch.float32, torch.float64):
        X, y = _regression(dtype)
        starts = range(rank * b, X.shape[0], world * b)
        shard = torch.cat([torch.arange(k, k + b) for k in starts])
        net = _net(dtype)
        res = fit_module(net, _mse, (X[shard], y[shard]), batch_size=b, distributed="allreduce", **FIT)
        out[dtype] = (_params(net), res.loss_curve)
        if rank == 0:
            ref = _net(dtype)
            ref_res = fit_module(ref, _mse, (X, y), batch_size=world * b, **FIT)
            out[dtype, "ref"] = (_params(ref), ref_res.loss_curve)
    return out


@pytest.mark.parametrize("world", [2, 3])
def test_allreduce_equals_one_process_on_the_union_of_the_minibatches(world):
    outs = values(spawn(world, _allreduce_vs_one, 4))
    for dtype, tol in ((torch.float32, 1e-5), (torch.float64, 1e-10)):
        ref, ref_curve = outs[0][dtype, "ref"]
        for params, curve in (o[dtype] for o in outs):
            torch.testing.assert_close(params, ref, rtol=tol, atol=tol)
            torch.testing.assert_close(torch.tensor(curve), torch.tensor(ref_curve), rtol=tol, atol=tol)
        assert all(torch.equal(o[dtype][0], outs[0][dtype][0]) for o in outs)  # the same model on every rank


def _exchange(rank, world):
    """One elastic exchange with tau=1 and alpha=1/p on rank-dependent parameters."""
    strategy = make_distributed(EASGD(tau=1, moving_rate=1.0 / world))
    w = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    strategy.begin((torch.zeros(2, 1),), [w])  # w becomes rank 0's: the center starts there
    center0 = strategy.center.clone()
    with torch.no_grad():
        w.copy_(torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64) * (rank + 1))
    before = w.detach().clone()
    strategy.after_backward([w], 1)
    strategy.after_backward([w], 1)  # a second closure call in the same step does not exchange again
    return center0, before, w.detach().clone(), strategy.center.clone()


def test_easgd_with_tau_1_and_alpha_1_over_p_puts_the_center_at_the_workers_average():
    outs = values(spawn(3, _exchange))
    average = torch.stack([o[1] for o in outs]).mean(0)
    for center0, before, after, center in outs:
        torch.testing.assert_close(center, average, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(after, before - (before - center0) / 3, rtol=1e-12, atol=1e-12)


def _quadratic_run(rank, world, cases):
    """EASGD on f(w) = h w^2 / 2 (the same on every worker): the center after each case's steps, or 'diverged'."""
    out = []
    for h, eta, alpha, tau, n_steps in cases:
        w = torch.nn.Parameter(torch.ones((), dtype=torch.float64))
        module = torch.nn.Module()
        module.w = w
        loss = lambda m, x: 0.5 * h * m.w ** 2 + 0.0 * x.sum()  # noqa: E731
        try:
            fit_module(module, loss, (torch.zeros(1, 1, dtype=torch.float64),), optimizer="sgd",
                       learning_rate=eta, max_iter=n_steps, batch_size=None, tol=0.0, n_iter_no_change=10**6,
                       distributed=EASGD(tau=tau, moving_rate=alpha))
            out.append(float(w.detach()))
        except DivergenceError:
            out.append("diverged")
    return out


def test_easgd_quadratic_case_stability_region():
    """The seed's "Analysis, quadratic case": inside the region (spectral radius of the period map < 1) the
    center converges as the map predicts, outside it diverges (p=2; beta = p * alpha)."""
    p = 2
    cases = [  # h, eta, alpha, tau, steps
        (1.0, 0.5, 0.45, 1, 40),  # inside
        (1.0, 1.9, 0.45, 4, 40),  # inside: |1 - eta h| < 1 and the exchange damps
        (1.0, 0.5, 0.45, 16, 48),  # inside, long period
        (1.0, 1.95, 0.45, 1, 40),  # outside although eta h < 2: the elastic force destabilises plain SGD
        (1.0, 2.05, 0.45, 4, 40),  # outside: eta h > 2
    ]
    assert _inside(cases, p) == [True, True, True, False, False]
    outs = values(spawn(p, _quadratic_run, cases))
    assert outs[0] == outs[1]
    _check_against_the_map(cases, p, outs[0])


def _inside(cases, p) -> list[bool]:
    return [float(torch.linalg.eigvals(easgd_quadratic_map(h, eta, a, p, tau)).abs().max()) < 1
            for h, eta, a, tau, _ in cases]


def _check_against_the_map(cases, p, centers):
    for (h, eta, a, tau, n), ok, got in zip(cases, _inside(cases, p), centers):
        M = torch.linalg.matrix_power(easgd_quadratic_map(h, eta, a, p, tau), n // tau)
        predicted = float((M @ torch.ones(2, dtype=torch.float64))[1])
        if ok:
            assert got == pytest.approx(predicted, rel=1e-9, abs=1e-12) and abs(got) < 0.05
        else:
            assert got == "diverged" or (abs(got) > 10 and got == pytest.approx(predicted, rel=1e-9))


def _one_process(rank, world):
    """Each elastic strategy on one process, and the same fit without a process group, same seed."""
    X, y = _regression(torch.float64)
    nesterov = {"optimizer": "nesterov", "optimizer_params": {"momentum": 0.9}}
    out = []
    for strategy, local in (("easgd", {}), ("eamsgd", nesterov), ("async_easgd", {}), ("async_eamsgd", nesterov),
                            (EASGD(tau=1, moving_rate=0.9), {})):
        fits = []
        for distributed, opt in ((strategy, {}), (None, local)):
            net = _net(torch.float64)
            fit_module(net, _mse, (X, y), batch_size=8, generator=torch.Generator().manual_seed(0),
                       distributed=distributed, **{**FIT, "optimizer": "sgd", **opt})
            fits.append(_params(net))
        out.append(fits)
    centers = []  # after every step, whether the center is the worker's parameters
    for base in (EASGD, AsyncEASGD):
        class Watched(base):
            def after_step(self, params):
                super().after_step(params)
                centers.append(torch.equal(self.center, torch.cat([p.detach().reshape(-1) for p in params])))

        fit_module(_net(torch.float64), _mse, (X, y), batch_size=8, distributed=Watched(), **{**FIT,
                                                                                          "optimizer": "sgd"})
    return out, centers


def test_elastic_strategies_on_one_process_are_plain_sgd():
    """p = 1: no other worker to average with, so no elastic exchange; the center is the worker (EAMSGD:
    Nesterov momentum), whatever the moving rate, at every step (what a probe of the center reads)."""
    ((fits, centers),) = values(spawn(1, _one_process))
    for with_group, alone in fits:
        assert torch.equal(with_group, alone)
    assert len(centers) > 10 and all(centers)


def _uneven(rank, world):
    """Shards of different sizes, early stopping, every strategy: all ranks agree and hold one model."""
    X, y = _regression(torch.float64, n=20 + 7 * rank, seed=rank)
    out = []
    for strategy in ("allreduce", EASGD(tau=2), EAMSGD(tau=2, momentum=0.5)):
        net = _net(torch.float64)
        res = fit_module(net, _mse, (X, y), optimizer="sgd", learning_rate=0.1, max_iter=4, batch_size=5,
                         early_stopping=True, validation_fraction=0.2, tol=0.0, n_iter_no_change=100,
                         generator=torch.Generator().manual_seed(rank), distributed=strategy)
        out.append((_params(net), res.loss_curve, res.validation_scores, res.state.n_steps))
    from estimators import PredictiveSparseDecomposition

    psd = PredictiveSparseDecomposition(n_components=3, alpha=0.1, max_iter=2, batch_size=5, random_state=rank,
                                        device="cpu", distributed="easgd").fit(X.numpy())
    out.append((torch.as_tensor(psd.components_), psd.loss_curve_, [], 0))
    return out


def test_uneven_shards_all_strategies_keep_one_model_and_one_decision():
    outs = values(spawn(2, _uneven))
    for k in range(4):
        params, curve, scores, n_steps = outs[0][k]
        assert k == 3 or n_steps == 4 * math.ceil(math.ceil(27 * 0.8) / 5)  # the largest shard sets the steps
        assert all(math.isfinite(v) for v in curve)
        for other in outs[1:]:
            assert torch.equal(other[k][0], params)
            assert other[k][1] == curve and other[k][2] == scores


def _failing(rank, world):
    X, y = _regression(torch.float64)
    if rank == 1:
        raise ValueError("bad shard")
    return fit_module(_net(torch.float64), _mse, (X, y), optimizer="sgd", learning_rate=0.1, max_iter=2,
                      distributed="allreduce")


def test_a_failing_rank_stops_the_others_with_an_error_not_a_hang():
    (s0, v0), (s1, v1) = spawn(2, _failing, timeout=40)
    assert s1 == "error" and "bad shard" in v1
    assert s0 == "error"  # a clear error from the collective (peer gone or timeout), within the bound


def test_strategies_need_a_process_group_and_validate():
    X, y = _regression(torch.float64)
    with pytest.raises(RuntimeError, match="process group"):
        fit_module(_net(torch.float64), _mse, (X, y), max_iter=1, distributed="allreduce")
    with pytest.raises(ValueError, match="distributed must be"):
        make_distributed("downhill")
    with pytest.raises(ValueError, match="tau"):
        EASGD(tau=0)
    with pytest.raises(ValueError, match="Nesterov"):
        EAMSGD().local_optimizer("adam", {})
    assert EAMSGD(momentum=0.5).local_optimizer("sgd", {}) == ("nesterov", {"momentum": 0.5})


def _dictionary(rank, world, b, redraw=False):
    from estimators import DictionaryLearning

    g = torch.Generator().manual_seed(0)
    X = torch.randn(24, 6, generator=g, dtype=torch.float64).numpy()
    D0 = torch.randn(5, 6, generator=g, dtype=torch.float64).numpy()
    if redraw:  # five more atoms, orthogonal to the data: unused, so redrawn from the minibatches
        X[:, 3:] = 0.0
        D0 = np.vstack([D0, np.hstack([np.zeros((5, 3)), torch.randn(5, 3, generator=g, dtype=torch.float64)])])
    shard = torch.cat([torch.arange(k, k + b) for k in range(rank * b, X.shape[0], world * b)]).numpy()
    params = dict(n_components=len(D0), alpha=0.1, max_iter=2, shuffle=False, dict_init=D0, tol=0.0,
                  max_no_improvement=None, random_state=0, device="cpu")
    out = {"fit": DictionaryLearning(batch_size=b, distributed="allreduce", **params).fit(X[shard]).components_}
    partial = DictionaryLearning(distributed="allreduce", **params)
    for k in range(2):
        partial.partial_fit(X[shard][k * b:(k + 1) * b])
    out["partial"] = partial.components_
    if rank == 0:
        out["ref"] = DictionaryLearning(batch_size=world * b, **params).fit(X).components_
        ref = DictionaryLearning(**params)
        for k in range(2):
            ref.partial_fit(X[k * world * b:(k + 1) * world * b])
        out["ref partial"] = ref.components_
    return out


@pytest.mark.parametrize("redraw", [False, True], ids=["all atoms used", "an unused atom redrawn"])
def test_dictionary_learning_across_ranks_equals_one_process_on_the_concatenated_minibatches(redraw):
    outs = values(spawn(2, _dictionary, 4, redraw))
    if redraw:
        assert (np.linalg.norm(outs[0]["ref"][5:, :3], axis=1) > 0.5).all()  # redrawn: now mostly in the data
    for o in outs:
        torch.testing.assert_close(torch.as_tensor(o["fit"]), torch.as_tensor(outs[0]["ref"]), rtol=1e-10,
                                   atol=1e-10)
        torch.testing.assert_close(torch.as_tensor(o["partial"]), torch.as_tensor(outs[0]["ref partial"]),
                                   rtol=1e-10, atol=1e-10)


def _default_alpha(rank, world):
    from estimators import LISTA, PredictiveSparseDecomposition

    g = torch.Generator().manual_seed(rank)
    X = (1 + 2 * rank) * torch.randn(40 + 8 * rank, 6, generator=g, dtype=torch.float64).numpy()
    params = dict(n_components=4, max_iter=2, tol=0.0, random_state=0, device="cpu", distributed="allreduce")
    lista = LISTA(**params).fit(X)
    psd = PredictiveSparseDecomposition(**params).fit(X)
    return lista.alpha_, lista.components_, psd.alpha_, psd.input_scale_, psd.components_


def test_scale_free_defaults_and_learned_dictionaries_are_shared_by_all_ranks():
    # shards of different scales: the default alpha (and PSD's input scale) come from all of them at once
    outs = values(spawn(2, _default_alpha))
    for got, want in zip(outs[1], outs[0]):
        np.testing.assert_array_equal(got, want)
