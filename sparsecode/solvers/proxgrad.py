"""The proximal-gradient loop (ISTA/FISTA with adaptive restart) shared by the dense and convolutional solvers."""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["prox_grad_loop", "fista_momentum"]


def fista_momentum(Znew: torch.Tensor, Zprev: torch.Tensor, Y: torch.Tensor, t: torch.Tensor,
                   restart: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """FISTA's extrapolation with adaptive restart, batched over the first axis; returns ``(Y, t)``.

    ``Y`` (the previous extrapolated point) is consumed: it is overwritten in place.
    """
    t_next = 0.5 * (1 + torch.sqrt(1 + 4 * t * t))
    diff = Znew - Zprev
    if restart:
        bad = Y.sub_(Znew).mul_(diff).flatten(1).sum(1) > 0
        t = t.masked_fill(bad, 1.0)
        t_next = t_next.masked_fill(bad, 1.0)
    beta = ((t - 1) / t_next).view(-1, *([1] * (Znew.ndim - 1)))
    return torch.addcmul(Znew, diff, beta), t_next


def prox_grad_loop(Z: torch.Tensor, batch: list, step: Callable, gap: Callable, *, max_iter: int, tol: float,
                   momentum: bool, restart: bool, check_every: int, refine: Callable | None = None):
    """ISTA/FISTA iterations with per-sample stopping: the loop the dense and convolutional solvers share.

    Parameters
    ----------
    Z : torch.Tensor, shape (n, ...)
        Starting codes.
    batch : list of tensors (or None)
        Per-sample data sharing dim 0 with ``Z``; converged samples leave it with their codes.
    step : callable
        ``step(Y, batch)``: the proximal gradient step from the extrapolated point ``Y``.
    gap : callable
        ``gap(Z, batch)``: relative duality gaps, checked every ``check_every`` iterations.
    refine : callable, optional
        ``refine(Z, gaps, batch) -> (Z, gaps, restarted, batch)`` at each check: better codes for some
        samples (their momentum restarts from them: ``restarted`` indexes them) and updated ``batch``.

    Returns
    -------
    codes, iterations, converged mask, relative gaps
    """
    n = Z.shape[0]
    out = Z.clone()
    gaps = gap(Z, batch) if max_iter == 0 else Z.new_full((n,), float("inf"))
    converged = gaps <= tol
    active = torch.arange(n, device=Z.device)
    Za, Y = Z, Z.clone()
    t = Z.new_ones(n)
    n_iter = 0
    for it in range(1, max_iter + 1):
        Znew = step(Y, batch)
        if momentum:
            Y, t = fista_momentum(Znew, Za, Y, t, restart)
        else:
            Y = Znew
        Za = Znew
        n_iter = it
        last = it == max_iter
        if not last and (tol <= 0 or it % check_every):
            continue
        rel = gap(Za, batch)
        if refine is not None:
            Za, rel, restarted, batch = refine(Za, rel, batch)
            Y = Y.index_put((restarted,), Za[restarted])
            t = t.index_put((restarted,), t.new_ones(restarted.numel()))
        done = rel <= tol
        out[active] = Za
        gaps[active] = rel
        converged[active] = done
        if last or bool(done.all()):
            break
        if bool(done.any()):
            keep = ~done
            active, Za, Y, t = (a[keep] for a in (active, Za, Y, t))
            batch = [None if b is None else b[keep] for b in batch]
    return out, n_iter, converged, gaps
