r"""What the ranks of a distributed fit do when one of them fails: stop with a clear error, never hang.

A fit on several processes (:mod:`sparsecode.training.distributed`) meets in collectives; a rank that
stops taking part would leave the others waiting. Three kinds of failure, and what every other rank
sees:

a bad shard (its input fails validation, NaN data)
    The failing rank raises before training, while the others would wait in the first collective.
    :class:`RankAgreement` makes the ranks of a fit meet once before training: each brings its error
    (or None) and, when one failed, every other rank raises :class:`PeerFailedError` with that rank's
    number and message.
divergence on one rank
    The loop agrees on its sanity checks at the end of every pass (``Distributed.all_true``): every
    rank raises :class:`~sparsecode.training.DivergenceError` at the same pass.
a killed or stuck process
    gloo raises on a closed connection, and every collective gives up after the process group's
    timeout, which bounds how long the survivors wait::

        torch.distributed.init_process_group("gloo", timeout=datetime.timedelta(seconds=60))

    (torch's default is 30 minutes, 10 for NCCL). The loop turns such an error into
    :class:`PeerLostError`, which says so (a fit with a ``checkpoint`` resumes from its last pass).
    Before training, :class:`RankAgreement` meets the others in a ``monitored_barrier`` (gloo), whose
    error on rank 0 names the ranks that did not arrive.
"""

from __future__ import annotations

import torch.distributed as dist

from .distributed import check_process_group

__all__ = ["PeerFailedError", "PeerLostError", "RankAgreement", "is_communication_error", "peer_lost_error"]


class PeerFailedError(RuntimeError):
    """Another rank of the process group failed before training; this rank stops too.

    Attributes
    ----------
    rank : int
        The first rank that failed.
    """

    def __init__(self, message: str, rank: int):
        super().__init__(message)
        self.rank = rank


class PeerLostError(RuntimeError):
    """A collective failed: another rank died, closed its connection or did not answer in time."""


def is_communication_error(exc: BaseException) -> bool:
    """Whether ``exc`` is torch.distributed's report of a failed collective (lost peer, timeout)."""
    return isinstance(exc, dist.DistError) or (
        type(exc) is RuntimeError and any(word in str(exc) for word in ("Gloo", "gloo", "NCCL", "Connection")))


def peer_lost_error(exc: BaseException) -> PeerLostError:
    """The error a rank raises when ``exc`` (:func:`is_communication_error`) stopped its fit."""
    return PeerLostError(
        "a collective with the other ranks failed: a rank died, closed its connection or did not answer within "
        "the process group's timeout (torch.distributed.init_process_group(timeout=...)); the other ranks "
        f"stop too. Fit again on every rank (with checkpoint=, from the last pass saved). Cause: {exc}")


class RankAgreement:
    """Every rank of a fit meets once before training and stops there when any of them failed.

    Use it around what precedes training (input validation, preparation), and call :meth:`agree` right
    before training. A rank that raises inside the block takes part with its error (then re-raises
    it); the others raise :class:`PeerFailedError`. Leaving the block without an error and without
    :meth:`agree` agrees then, so every rank meets exactly once.

    Parameters
    ----------
    active : bool
        False (one process): nothing is done.
    group : ProcessGroup, optional
        torch.distributed's default group when None.

    Examples
    --------
    >>> with RankAgreement(active=False) as agreement:  # doctest: +SKIP
    ...     X = validate(X)
    ...     agreement.agree()
    ...     train(X)
    """

    def __init__(self, active: bool, group=None):
        self.active, self.group, self.done = active, group, not active

    def __enter__(self) -> RankAgreement:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if self.done:
            return False
        if exc is None:
            self.agree()
        else:
            try:
                self.agree(exc)
            except Exception:  # noqa: BLE001 -- this rank's own error is the one to report
                pass
        return False

    def agree(self, error: BaseException | None = None) -> None:
        """Meet the other ranks (once); raise :class:`PeerFailedError` when another one brings an error.

        Parameters
        ----------
        error : exception, optional
            This rank's failure, passed on to the others.
        """
        if self.done:
            return
        self.done = True
        check_process_group("distributed")
        try:
            if dist.get_backend(self.group) == "gloo":  # names the ranks that do not arrive in time
                dist.monitored_barrier(self.group, wait_all_ranks=True)
            errors = [None] * dist.get_world_size(self.group)
            dist.all_gather_object(errors, None if error is None else f"{type(error).__name__}: {error}",
                                   group=self.group)
        except Exception as exc:  # noqa: BLE001 -- a rank is gone
            if is_communication_error(exc):
                raise peer_lost_error(exc) from exc
            raise
        failed = [(rank, message) for rank, message in enumerate(errors) if message is not None]
        if error is None and failed:
            rank, message = failed[0]
            raise PeerFailedError(f"rank {rank} of the process group failed before training, so this rank "
                                  f"stops too: {message}", rank)
