"""Training on 1 and 2 processes (``torch.distributed``, gloo, one thread each): speed-up and strategies.

(a) One pass of ``estimators.DictionaryLearning`` (256 atoms, alpha 0.1, float32) over 200,000 centred
unit-norm 8x8 patches of ``china.jpg``; at p = 2 each rank learns on every other patch with
``distributed="allreduce"`` (statistics summed, one update on every rank), with per-rank minibatches of
half the single process's (the same algorithm: one process on the concatenated minibatches) and of the
same size (twice the global minibatch, half the steps). Time of the fit (the slower rank), speed-up
over p = 1, and the mean lasso energy of exact codes of 5,000 held-out patches of ``flower.jpg``.

(b) LISTA (128 atoms from training patches, 3 tied layers) trained on the lasso energy with SGD at the
power method's rate (Nesterov momentum 0.9 at its own rate for the EAMSGD variants), minibatches of 32
per worker, ``--passes`` passes of each worker over its shard of 30,000 patches, with every strategy of
:data:`sparsecode.training.STRATEGIES`. Every few steps rank 0 evaluates the held-out energy (2,000
patches of ``flower.jpg``) of the model the fit would return now (the center for EASGD/EAMSGD, the
server's parameters for DOWNPOUR, the common parameters for allreduce); the time spent evaluating is
taken off its clock (the other rank keeps training then, which favours the asynchronous strategies by
a few percent). Reported: the time to reach the target held-out energy (by default the one plain SGD on
one process, i.e. ``allreduce`` at p = 1, reaches half-way through its run), the speed-up at p = 2 and
the payload a worker sends per step (from the messages' sizes: ``allreduce`` the gradient every step,
EASGD/EAMSGD their difference to the center every ``tau`` steps, the asynchronous ones a message to
rank 0 every ``tau`` steps, rank 0's own exchanges being local).

Run from the repository root (about 3 minutes on the 2-core machine at load 3; the spawned ranks import
the package as the parent does, so an editable install or ``PYTHONPATH=.``)::

    PYTHONPATH=. python benchmarks/bench_distributed.py [--part dictionary lista] [--passes 3] [--taus 1 4 16]

Each rank is bound to its own core (rank r to the r-th, as MPI launchers bind ranks; ``--no-pin`` leaves the
placement to the system): on the 2-core machine, a rank's communication threads then wake on its own core,
which took about 3% off the p = 2 pass of (a).

Rank 0 trains too in the asynchronous strategies (it serves the center from a thread), so p = 2 means
two workers for every strategy.
"""

from __future__ import annotations

import argparse
import datetime
import os
import socket
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from _common import mean_energy, patches

from estimators import DictionaryLearning
from sparsecode.dictionary import RESYNC_EVERY, init_dictionary
from sparsecode.models.lista import LISTA, make_loss
from sparsecode.solvers import sparse_encode
from sparsecode.training import STRATEGIES, estimate_max_learning_rate, fit_module

ALPHA = 0.1
RUN: dict = {}  # in rank 0's process: the current LISTA run's clock and held-out curve


# --- launching ----------------------------------------------------------------------------------------------

def _rank_main(rank, world, port, pin, task, args, queue):
    if pin:  # rank r on the r-th core, as MPI launchers bind ranks; the threads started below inherit it
        cores = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cores[rank % len(cores)]})
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=300))
    try:
        out = task(rank, world, *args)
        if rank == 0:
            queue.put(out)
    finally:
        dist.destroy_process_group()


def launch(world: int, pin: bool, task, *args):
    """``task(rank, world, *args)`` on ``world`` gloo processes (with ``pin``, each bound to its own core);
    rank 0's result."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    queue = mp.get_context("spawn").SimpleQueue()
    processes = mp.spawn(_rank_main, args=(world, port, pin, task, args, queue), nprocs=world, join=False)
    result = []
    while not processes.join(timeout=0.2):  # raises when a rank fails
        if not queue.empty():  # read while rank 0 writes: a large result fills the pipe
            result.append(queue.get())
    return result[0] if result else queue.get()


# --- (a) dictionary learning --------------------------------------------------------------------------------

def dictionary_task(rank, world, n_samples, n_components, batch_size):
    X = patches(n_samples).astype(np.float32)[rank::world]
    est = DictionaryLearning(n_components=n_components, alpha=ALPHA, max_iter=1, batch_size=batch_size,
                             random_state=0, tol=0, max_no_improvement=None, device="cpu",
                             distributed="allreduce" if world > 1 else None)
    dist.barrier()
    t = time.perf_counter()
    est.fit(X)
    dist.barrier()
    return time.perf_counter() - t, est.components_


def held_out_energy(D: np.ndarray, n_test: int) -> float:
    X = patches(n_test, image="flower.jpg")
    Z = sparse_encode(X, D.astype(np.float64), alpha=ALPHA, tol=1e-9, max_iter=100000)
    return mean_energy(X, Z, D, ALPHA)


def part_dictionary(args) -> None:
    K, n, b = args.n_components, args.dl_samples, args.batch_size
    print(f"\n(a) DictionaryLearning, one pass over {n} 8x8 patches, {K} atoms, alpha {ALPHA}, float32")
    print(f"{'processes':<12}{'batch/rank':>11}{'steps':>7}{'time (s)':>10}{'speed-up':>10}"
          f"{'held-out energy':>17}{'bytes/step/rank':>17}")
    # the summed statistics every step, rank 0's dictionary every RESYNC_EVERY steps (and after redraws)
    message = round((K * K + K * 64 + 2 + K * 64 / RESYNC_EVERY) * 4)
    t1 = None
    for world, per_rank in ((1, b), (2, b // 2), (2, b)):
        t, D = launch(world, args.pin, dictionary_task, n, K, per_rank)
        t1 = t if t1 is None else t1
        steps = -(-n // (world * per_rank))
        print(f"{world:<12}{per_rank:>11}{steps:>7}{t:>10.2f}{t1 / t:>10.2f}"
              f"{held_out_energy(D, args.n_test):>17.6f}{message if world > 1 else 0:>17,}")


# --- (b) LISTA ----------------------------------------------------------------------------------------------

class Timed:
    """Rank 0 evaluates the model the fit would return every ``every`` of its steps, off the clock."""

    every = 100
    evaluate = None

    def begin(self, train, params):
        out = super().begin(train, params)
        RUN.update(t0=time.perf_counter(), off=0.0, curve=[])
        return out

    def after_step(self, params):
        super().after_step(params)
        if dist.get_rank() == 0 and self._steps % self.every == 0:
            RUN["curve"].append((time.perf_counter() - RUN["t0"] - RUN["off"], self._model(params)))

    def _model(self, params) -> float:
        t = time.perf_counter()
        center = getattr(self, "center", None)
        loss = self.evaluate(torch.cat([p.detach().reshape(-1) for p in params]) if center is None else center)
        RUN["off"] += time.perf_counter() - t
        return loss


class TimedAllReduce(Timed, STRATEGIES["allreduce"]):
    _steps = 0

    def after_step(self, params):
        self._steps += 1
        super().after_step(params)


def timed_strategy(name: str, tau: int | None, every: int, evaluate):
    base = TimedAllReduce if name == "allreduce" else type(f"Timed{STRATEGIES[name].__name__}",
                                                           (Timed, STRATEGIES[name]), {})
    strategy = base() if tau is None else base(tau=tau)
    strategy.every, strategy.evaluate = every, evaluate
    return strategy


def lista_task(rank, world, D, configs, rates, args):
    X = torch.as_tensor(patches(args.n_train, seed=1), dtype=torch.float32)[rank::world]
    X_test = torch.as_tensor(patches(args.n_test_lista, image="flower.jpg"), dtype=torch.float32)
    loss_fn, _ = make_loss("energy", D, ALPHA)
    probe = LISTA(D, ALPHA, n_layers=3)

    @torch.no_grad()
    def evaluate(flat: torch.Tensor) -> float:
        torch.nn.utils.vector_to_parameters(flat, probe.parameters())
        return float(loss_fn(probe, X_test))

    every = max(1, -(-X.shape[0] // args.lista_batch) // args.evals_per_pass)
    # warm-up off the clock: first calls load the compiled kernels and allocate
    fit_module(LISTA(D, ALPHA, n_layers=3), loss_fn, (X,), optimizer="sgd", learning_rate=rates[False],
               max_steps=20, batch_size=args.lista_batch, tol=0.0)
    out = []
    for name, tau in configs:
        torch.manual_seed(0)
        module = LISTA(D, ALPHA, n_layers=3)
        momentum = "eamsgd" in name
        dist.barrier()
        fit_module(module, loss_fn, (X,), optimizer="sgd", learning_rate=rates[momentum], max_iter=args.passes,
                   batch_size=args.lista_batch, tol=0.0, n_iter_no_change=10**6,
                   generator=torch.Generator().manual_seed(rank),
                   distributed=timed_strategy(name, tau, every, evaluate))
        if rank == 0:
            RUN["curve"].append((time.perf_counter() - RUN["t0"] - RUN["off"],
                                 evaluate(torch.nn.utils.parameters_to_vector(module.parameters()))))
            out.append(list(RUN["curve"]))
    return out


def time_to(curve, target: float) -> float:
    return next((t for t, loss in curve if loss <= target), float("nan"))


def part_lista(args) -> None:
    X = torch.as_tensor(patches(args.n_train, seed=1), dtype=torch.float32)
    D = init_dictionary(X, 128, torch.Generator().manual_seed(0))
    loss_fn, _ = make_loss("energy", D, ALPHA)
    rates = {m: estimate_max_learning_rate(LISTA(D, ALPHA, n_layers=3), loss_fn, (X,),
                                           optimizer="nesterov" if m else "sgd", momentum=0.9).learning_rate
             for m in (False, True)}
    configs = [("allreduce", None)] + [(name, tau) for name in ("easgd", "async_easgd", "downpour")
                                       for tau in args.taus] + [("eamsgd", 4), ("async_eamsgd", 4)]
    n_params = sum(p.numel() for p in LISTA(D, ALPHA, n_layers=3).parameters())
    print(f"\n(b) LISTA, 3 tied layers, {D.shape[0]} atoms ({n_params} parameters), {args.n_train} training "
          f"patches, minibatch {args.lista_batch} per worker, {args.passes} passes per worker, rate "
          f"{rates[False]:.3g} (SGD) / {rates[True]:.3g} (Nesterov 0.9)")
    curves = {world: launch(world, args.pin, lista_task, D, configs, rates, args) for world in (1, 2)}
    sgd = curves[1][0]
    target = args.target if args.target is not None else sgd[len(sgd) // 2][1]
    print(f"target held-out energy {target:.6f} (start {sgd[0][1]:.6f})")
    print(f"{'strategy':<14}{'tau':>4}{'p=1 (s)':>9}{'p=2 (s)':>9}{'speed-up':>10}{'final p=1':>11}"
          f"{'final p=2':>11}{'bytes/step/worker':>19}")
    found = {}
    for k, (name, tau) in enumerate(configs):
        t1, t2 = (time_to(curves[w][k], target) for w in (1, 2))
        found[name, tau] = t2
        # floats per message: the gradient and the minibatch size; the difference to the center; a message
        # to rank 0 with its kind (the asynchronous ones)
        floats = n_params + (name not in ("easgd", "eamsgd"))
        print(f"{name:<14}{tau or '':>4}{_s(t1):>9}{_s(t2):>9}{_s(t1 / t2):>10}{curves[1][k][-1][1]:>11.6f}"
              f"{curves[2][k][-1][1]:>11.6f}{floats * 4 / (tau or 1):>19,.0f}")
    for tau in args.taus:
        e, a, d = found["easgd", tau], found["async_easgd", tau], found["downpour", tau]
        print(f"tau={tau}: time to the target at p=2: EASGD {_s(e)} s, async EASGD {_s(a)} s, DOWNPOUR {_s(d)} s")


def _s(value: float) -> str:
    """Seconds or a ratio; '-' when the target was not reached."""
    return "-" if value != value else f"{value:.2f}"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--part", nargs="*", default=["dictionary", "lista"])
    p.add_argument("--dl-samples", type=int, default=200_000)
    p.add_argument("--n-components", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=256, help="DictionaryLearning's minibatch at p = 1")
    p.add_argument("--n-test", type=int, default=5000)
    p.add_argument("--n-train", type=int, default=30_000)
    p.add_argument("--n-test-lista", type=int, default=2000)
    p.add_argument("--lista-batch", type=int, default=32)
    p.add_argument("--passes", type=int, default=3)
    p.add_argument("--evals-per-pass", type=int, default=6)
    p.add_argument("--taus", type=int, nargs="*", default=[1, 4, 16])
    p.add_argument("--target", type=float, default=None, help="held-out energy to reach (default: see above)")
    p.add_argument("--no-pin", dest="pin", action="store_false",
                   help="let the system place the ranks (default: rank r bound to the r-th core)")
    args = p.parse_args()
    torch.set_num_threads(1)
    if "dictionary" in args.part:
        part_dictionary(args)
    if "lista" in args.part:
        part_lista(args)


if __name__ == "__main__":
    main()
