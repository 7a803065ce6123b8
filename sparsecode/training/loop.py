r"""The one training loop: minibatch passes over tensors with any optimizer of the registry.

Each pass draws a (seeded) permutation, steps the optimizer on every minibatch through a closure
(so L-BFGS works like the others), then runs ``projection(module)`` under ``torch.no_grad()``.
After the pass the mean training loss ``L_e`` is recorded and scikit-learn's MLP rule decides
convergence, on ``L_e`` or, with ``early_stopping``, on the validation loss ``V_e``:

.. math::

    c \leftarrow \begin{cases} c + 1 & L_e > L_{best} - tol \\ 0 & \text{otherwise} \end{cases},
    \qquad \text{stop when } c > \text{n\_iter\_no\_change}.

With early stopping the parameters of the best validation loss are restored at the end.

``lr_decay`` is Torch7's ``learningRateDecay`` counted in training samples seen, a schedule
(:class:`~sparsecode.training.schedules.InverseDecayLR`) built at the start of every call and stepped
between its optimizer steps (so the groups keep the rates of the last step): each parameter group's
rate is

.. math::

    \eta_t = \frac{\eta\, s_g}{1 + \text{lr\_decay}\; n_t},

with :math:`\eta` the base rate, :math:`s_g` the group's ``lr_scale`` and :math:`n_t` the samples seen
by the earlier steps of all calls (``TrainState.n_samples_seen``).

``learning_rate="auto"`` comes from the power method (:mod:`sparsecode.training.optim.lr`) and is
resolved before the optimizer is built, so that it is built once, with its real rates.

Optimizer hooks (:mod:`sparsecode.training.optim.hooks`): the loop names no optimizer. Before building
one from a name or class it calls ``prepare(context, options)``, which returns the options and the
preconditioner of ``"auto"``; then ``use_average(False)`` at the start of every call,
``before_step(n_batch, context)`` before every step, and ``use_average(True)`` around each
validation and at the end. SDLM estimates and refreshes its Gauss-Newton diagonal through them,
ASGD starts its average after one pass and keeps the averaged weights; torch's optimizers get
no-ops. ``context`` (a :class:`~sparsecode.training.optim.hooks.TrainContext`) holds the module,
``loss_fn``, ``residual_fn``, the training data, the parameters, the generator and the steps per pass.

Safety: the loss and the parameters are checked once per pass (one host sync). The fit has diverged
when they become non-finite or when the mean loss of a pass, or the loss of its first step, exceeds
``DIVERGENCE_GROWTH`` times the loss of the call's first step (the loss at its starting parameters), or
times the data's energy ``0.5 * mean ||x||^2`` when that is larger (a start already near zero).
It then restores the last parameters whose loss was sane (the start of the pass when its first step
was, else the start of the previous pass) and raises :class:`DivergenceError`, which blames the data
when they (or their squares) overflow the dtype and the rate otherwise. Ctrl-C stops the fit, keeps
the current parameters when sane (else the last sane ones) and reports ``interrupted=True``.

Faults and resuming: with ``checkpoint`` the state is saved after every pass and a call resumes from
a matching file (:mod:`sparsecode.training.checkpoint`); a failed collective (a rank died or timed out)
raises :class:`~sparsecode.training.faults.PeerLostError` (:mod:`sparsecode.training.faults`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import torch

from ._common import random_rows, trainable
from ._progress import Progress
from .checkpoint import as_checkpoint
from .distributed import Distributed, make_distributed
from .divergence import DIVERGENCE_GROWTH, divergence_error, sane
from .faults import is_communication_error, peer_lost_error
from .optim import TrainContext, estimate_max_learning_rate, hooks_of, make_optimizer, optimizer_factory
from .schedules import InverseDecayLR
from .state import TrainResult, TrainState

__all__ = ["fit_module"]


def _check_data(data: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    data = tuple(data)
    if not data or any(t.shape[0] != data[0].shape[0] for t in data):
        raise ValueError("data must be a non-empty tuple of tensors sharing dim 0.")
    return data


def _split(data, early_stopping, fraction, generator):
    if not early_stopping:
        return data, None
    n = data[0].shape[0]
    n_valid = max(1, int(round(fraction * n)))
    if n_valid >= n:
        raise ValueError(f"validation_fraction={fraction} leaves no training sample out of {n}.")
    rows = random_rows(n, generator, data[0])
    return tuple(t[rows[n_valid:]] for t in data), tuple(t[rows[:n_valid]] for t in data)


def _groups(module: torch.nn.Module, param_groups) -> list[dict]:
    if param_groups is None:
        return [{"params": trainable(module), "lr_scale": 1.0}]
    return [{"params": list(g["params"]), "lr_scale": float(g.get("lr_scale", 1.0))}
            for g in param_groups]


def _flat(groups: list[dict]) -> list[torch.Tensor]:
    return [p for g in groups for p in g["params"]]


def _rebind(optimizer: torch.optim.Optimizer, groups: list[dict]) -> torch.optim.Optimizer:
    """The same optimizer on ``groups``' tensors (they differ after unpickling a module apart)."""
    old = [p for g in optimizer.param_groups for p in g["params"]]
    new = _flat(groups)
    if len(old) == len(new) and all(a is b for a, b in zip(old, new)):
        return optimizer
    if [p.shape for p in old] != [p.shape for p in new]:
        raise ValueError("state.optimizer does not hold parameters shaped like the module's.")
    it = iter(new)
    rebuilt = [dict(g, params=[next(it) for _ in g["params"]]) for g in optimizer.param_groups]
    fresh = type(optimizer)(rebuilt)
    fresh.load_state_dict(optimizer.state_dict())
    return fresh


def _build(optimizer, groups: list[dict], learning_rate, options: dict | None, context: TrainContext,
           distributed: Distributed):
    """Create the optimizer with its real rates, ``"auto"`` resolved first; returns (optimizer, base rate)."""
    optimizer, options = distributed.local_optimizer(optimizer, dict(options or {}))
    if isinstance(optimizer, torch.optim.Optimizer):
        return optimizer, float(optimizer.param_groups[0]["lr"])
    options, preconditioner = hooks_of(optimizer_factory(optimizer)).prepare(context, dict(options or {}))
    if learning_rate == "auto":
        learning_rate = estimate_max_learning_rate(
            context.module, context.loss_fn, context.train, optimizer=optimizer, params=context.params,
            momentum=options.get("momentum", 0.9), preconditioner=preconditioner, generator=context.generator,
        ).learning_rate
    learning_rate = distributed.agree(float(learning_rate))
    torch_groups = [{"params": g["params"], "lr": learning_rate * g["lr_scale"]} for g in groups]
    return make_optimizer(optimizer, torch_groups, learning_rate, **options), learning_rate


@torch.no_grad()
def _mean_loss(module, loss_fn, data, batch_size) -> float:
    n = data[0].shape[0]
    total = data[0].new_zeros(())
    for start in range(0, n, batch_size):
        batch = tuple(t[start : start + batch_size] for t in data)
        total = total + loss_fn(module, *batch).detach() * batch[0].shape[0]
    return float(total / n)


def fit_module(
    module: torch.nn.Module,
    loss_fn: Callable[..., torch.Tensor],
    data: tuple[torch.Tensor, ...],
    *,
    optimizer="adam",
    learning_rate: float | str = 1e-3,
    max_iter: int = 100,
    batch_size: int | None = 256,
    shuffle: bool = True,
    tol: float = 1e-4,
    n_iter_no_change: int = 10,
    early_stopping: bool = False,
    validation_fraction: float = 0.1,
    projection: Callable[[torch.nn.Module], None] | None = None,
    param_groups: Sequence[dict] | None = None,
    optimizer_params: dict | None = None,
    residual_fn: Callable[..., torch.Tensor] | None = None,
    generator: torch.Generator | None = None,
    verbose: int = 0,
    label: str = "",
    state: TrainState | None = None,
    max_steps: int | None = None,
    lr_decay: float = 0.0,
    distributed=None,
    checkpoint=None,
) -> TrainResult:
    """Train ``module`` by minimizing ``loss_fn`` over ``data`` (see the module doc).

    Parameters
    ----------
    module : torch.nn.Module
    loss_fn : callable
        ``loss_fn(module, *batch) -> scalar`` tensor, the mean loss over the batch.
    data : tuple of tensors
        Sharing dim 0, already on the module's device.
    optimizer : str, torch.optim.Optimizer subclass or instance, default="adam"
        A name of :data:`sparsecode.training.optim.OPTIMIZERS`.
    learning_rate : float or "auto", default=1e-3
        Base rate; ``"auto"`` uses the power method (:mod:`sparsecode.training.optim.lr`).
    max_iter : int, default=100
        Passes over the data (0: nothing is done).
    batch_size : int or None, default=256
        None: the whole (training) set.
    shuffle : bool, default=True
    tol : float, default=1e-4
    n_iter_no_change : int, default=10
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of ``data``; stop on its loss; restore the best.
    validation_fraction : float, default=0.1
    projection : callable, optional
        ``projection(module)`` run under ``torch.no_grad()`` after every step.
    param_groups : list of dict, optional
        ``{"params": [...], "lr_scale": float}``: parameters trained and their rate multipliers
        (default: all parameters of ``module`` requiring grad, scale 1).
    optimizer_params : dict, optional
        Extra optimizer options (``momentum``, ``betas``, ``mu``, ``t0``, ...).
    residual_fn : callable, optional
        ``residual_fn(module, *batch) -> (n, k)`` for SDLM's exact Gauss-Newton diagonal.
    generator : torch.Generator, optional
        Shuffling, the validation split, SDLM's samples and the power method's start.
    verbose : int, default=0
        1: a line per pass; 2: also a progress bar over each pass's steps.
    label : str, default=""
        Printed in brackets before each of those lines (the estimator, and the stage of a fit in stages).
    state : TrainState, optional
        Continue from it: the same optimizer, counters and curves.
    max_steps : int, optional
        Cap on optimizer steps in this call (an unfinished pass counts as a pass).
    lr_decay : float, default=0.0
        Torch7's ``learningRateDecay`` in samples: step ``t`` uses ``rate / (1 + lr_decay * n_t)``
        in every group (``lr_scale`` kept), ``n_t`` the samples seen before it in all calls.
    distributed : {"allreduce", "easgd", "eamsgd"}, Distributed or None, default=None
        Train with the other ranks of the ``torch.distributed`` process group, each on its own shard
        ``data`` (:mod:`sparsecode.training.distributed`); None: this process alone.
    checkpoint : str, os.PathLike or Checkpoint, optional
        Save the state at the end of every pass (rank 0 only when distributed) and resume from this
        file when it matches (:mod:`sparsecode.training.checkpoint`; a mismatch is a ValueError).

    Returns
    -------
    TrainResult
        What this call did; its ``state`` continues the fit.

    Raises
    ------
    DivergenceError
        When the loss or the parameters become non-finite, or the loss grows beyond
        ``DIVERGENCE_GROWTH`` times its starting value.
    PeerLostError
        When a collective with the other ranks fails (a rank died or the group's timeout passed).

    Examples
    --------
    >>> X = torch.randn(64, 3, generator=torch.Generator().manual_seed(0))
    >>> y = X @ torch.tensor([1.0, -2.0, 0.5])
    >>> lin = torch.nn.Linear(3, 1)
    >>> loss = lambda m, x, t: 0.5 * ((m(x).squeeze(1) - t) ** 2).mean()
    >>> res = fit_module(lin, loss, (X, y), optimizer="sgd", learning_rate="auto", max_iter=50)
    >>> res.loss_curve[-1] < 1e-6
    True
    """
    data = _check_data(data)
    if not (lr_decay >= 0.0 and math.isfinite(lr_decay)):
        raise ValueError(f"lr_decay must be a finite number >= 0, got {lr_decay}.")
    train, valid = _split(data, early_stopping, validation_fraction, generator)
    groups = _groups(module, param_groups)
    params = _flat(groups)
    distributed = make_distributed(distributed)
    state = TrainState() if state is None else state
    prefix = f"[{label}] " if label else ""
    if state.no_improvement_count > n_iter_no_change:
        state.no_improvement_count = 0  # the previous call converged; let this one train
    result = TrainResult([], [], 0, float("nan"), False, False, state)
    checkpoint, ranks = as_checkpoint(checkpoint, distributed)
    train = distributed.begin(train, params)  # before restoring: it gives every rank rank 0's parameters
    snap = None if checkpoint is None else checkpoint.restore(module, data, state, generator, ranks, max_iter)
    if snap is not None:  # resume: the state, progress and generator of the last pass (or stage end) saved
        state = snap["state"]
        result = TrainResult(**snap["result"], state=state)
        if snap["finished"]:
            checkpoint.end_call()
            return result
    n_train = train[0].shape[0]
    batch_size = n_train if batch_size is None else min(int(batch_size), n_train)
    context = TrainContext(module, loss_fn, residual_fn, train, params, generator, math.ceil(n_train / batch_size))
    if state.optimizer is None:
        if max_iter == 0 or max_steps == 0:  # nothing to train: "auto" stays unresolved (nan)
            result.learning_rate = math.nan if learning_rate == "auto" else float(learning_rate)
            return result
        state.optimizer, state.learning_rate = _build(optimizer, groups, learning_rate, optimizer_params, context,
                                                      distributed)
    else:
        state.optimizer = _rebind(state.optimizer, groups)
    opt = state.optimizer
    hooks = hooks_of(opt)
    schedule = InverseDecayLR(opt, lr_decay, state)
    result.learning_rate = state.learning_rate
    hooks.use_average(False)
    was_training = module.training
    module.train()
    good = [p.detach().clone() for p in params]  # the start of the current pass
    older = [p.detach().clone() for p in params]  # the start of the previous pass
    loss_sum = first = params[0].new_zeros(())
    limit = params[0].new_full((), math.inf if snap is None else snap["limit"])
    # a start that is already near zero measures growth against the data's own energy instead
    floor = 0.5 * train[0].detach().to(params[0]).square().sum() / max(n_train, 1)
    steps = n_seen = 0
    resumed_steps = 0 if snap is None else snap["steps"]  # this call's steps before a crash
    max_steps = None if max_steps is None else max_steps - resumed_steps

    def restoresane(checks: list[bool]) -> None:
        """Back to the start of the pass if its first step's loss was sane, else of the previous pass."""
        with torch.no_grad():
            torch._foreach_copy_(params, good if checks[1] else older)

    def closure():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(module, *batch)
        loss.backward()
        distributed.after_backward(params, batch[0].shape[0])
        return loss

    try:
        while result.n_iter < max_iter and (max_steps is None or steps < max_steps) and not result.converged:
            t_start = time.perf_counter()
            order = random_rows(n_train, generator, train[0]) if shuffle else None
            bar = Progress(context.steps_per_pass, f"{prefix}pass {state.epoch + 1}") if verbose >= 2 else None
            loss_sum, n_seen = params[0].new_zeros(()), 0
            for start in range(0, n_train, batch_size):
                if max_steps is not None and steps >= max_steps:
                    break
                rows = slice(start, start + batch_size) if order is None else order[start : start + batch_size]
                batch = tuple(t[rows] for t in train)
                m = batch[0].shape[0]
                hooks.before_step(m, context)
                if steps:  # after the previous step, as in torch; the groups keep the last step's rates
                    schedule.step()
                loss = opt.step(closure)
                if steps == 0 and snap is None:  # the loss at the call's starting parameters sets the limit
                    limit = DIVERGENCE_GROWTH * torch.maximum(loss.detach().abs(), floor)
                if n_seen == 0:
                    first = loss.detach()
                state.n_samples_seen += m
                if projection is not None:
                    with torch.no_grad():
                        projection(module)
                distributed.after_step(params)
                loss_sum = loss_sum + loss.detach() * m
                n_seen += m
                steps += 1
                state.n_steps += 1
                if bar is not None:
                    bar.update()
            if bar is not None:
                bar.close()
            loss_sum, n_seen = distributed.end_pass(loss_sum, n_seen)
            checks = sane([loss_sum / n_seen, first], params, limit)
            checks = distributed.all_true(checks)  # every rank takes the same decision
            if not all(checks):
                restoresane(checks)
                raise divergence_error(module, loss_fn, train, params, optimizer, state.learning_rate,
                                  state.epoch, generator)
            with torch.no_grad():
                torch._foreach_copy_(older, good)
                torch._foreach_copy_(good, params)
            mean = float(loss_sum) / n_seen
            state.epoch += 1
            result.n_iter += 1
            state.loss_curve.append(mean)
            result.loss_curve.append(mean)
            monitored = mean
            if valid is not None:
                hooks.use_average(True)
                module.eval()
                monitored = distributed.average(_mean_loss(module, loss_fn, valid, batch_size))
                module.train()
                state.validation_scores.append(-monitored)
                result.validation_scores.append(-monitored)
                if monitored < state.best_loss:
                    state.best_params = [p.detach().clone() for p in params]
                hooks.use_average(False)
            if monitored > state.best_loss - tol:
                state.no_improvement_count += 1
            else:
                state.no_improvement_count = 0
            state.best_loss = min(state.best_loss, monitored)
            if verbose:
                extra = f", validation loss {monitored:.6g}" if valid is not None else ""
                print(f"{prefix}pass {state.epoch}: loss {mean:.6g}{extra}, "
                      f"{time.perf_counter() - t_start:.2f} s")
            result.converged = state.no_improvement_count > n_iter_no_change
            if checkpoint is not None:
                checkpoint.save(module, state, result, generator, steps=resumed_steps + steps, limit=float(limit))
    except KeyboardInterrupt:
        result.interrupted = True
        checks = sane([loss_sum / max(n_seen, 1), first], params, limit)
        if not all(checks):
            restoresane(checks)
    except Exception as exc:
        if ranks.spans and is_communication_error(exc):
            raise peer_lost_error(exc) from exc
        raise
    finally:
        module.train(was_training)
    hooks.use_average(True)
    if valid is not None and state.best_params is not None:
        with torch.no_grad():
            torch._foreach_copy_(params, state.best_params)
    if distributed.finish(params) and projection is not None:  # EASGD's center was not projected
        with torch.no_grad():
            projection(module)
    if checkpoint is not None:
        if not result.interrupted:  # a call stopped by Ctrl-C resumes from its last pass
            checkpoint.save(module, state, result, generator, finished=True)
        checkpoint.end_call()
    return result
