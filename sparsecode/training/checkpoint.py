r"""Saving a fit at the end of every pass and resuming it after a crash (``fit_module(checkpoint=...)``).

A :class:`Checkpoint` is a file path plus what identifies the fit (``identity``: for an estimator, its
class and parameters). :func:`~sparsecode.training.fit_module` writes it at the end of every pass and of
the call: what the call has done so far (shared by the ranks) and, for every rank, its module's
``state_dict``, its :class:`~sparsecode.training.TrainState` (its local optimizer included), its
generator, its divergence limit and its strategy's state (EASGD's center and exchange schedule). The
file is written whole to a temporary file, then renamed over the old one (:func:`os.replace`), so a
crash leaves the previous pass's file. In a distributed fit every rank sends its part to rank 0, which
alone writes the file (every process when not distributed); on resuming rank 0 reads it and sends each
rank its own part only.

A fit given an existing file resumes from it, losing at most the pass under way, when the file matches:
the same format, the same ``identity``, the same number of ranks, the same data on every rank (a hash
of each rank's tensors) and the same starting point of the call (its :class:`TrainState` counters; a
file from an earlier call of a continued fit is overwritten). Resuming reproduces the uninterrupted run
exactly for the deterministic algorithms (one process, ``"allreduce"``, ``"easgd"``, ``"eamsgd"``: every
worker resumes with its own parameters and momentum, the center and the exchange schedule where they
were), rate schedules and early stopping included. The asynchronous strategies refuse a checkpoint:
their ranks end their passes apart, so no moment holds a consistent state of every worker and of the
server, and the order of their exchanges depends on timing, so that no resumed run could reproduce the
uninterrupted one. A file that does not match raises :class:`ValueError`: delete it or choose another
path. A finished fit's file stays: fitting again returns the saved result (with a larger ``max_iter`` it
continues from the last pass); delete the file to train anew.

Several calls of :func:`fit_module` sharing one :class:`Checkpoint` are the stages of one fit (an
estimator's pretraining then training): the file keeps the end of every finished stage, and a fit
resumed in a later stage restores the earlier ones' results, parameters and generators without
running them. The file holds pickled objects: load only files you wrote (as with :func:`torch.load`).
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

from .distributed import Distributed, check_process_group
from .state import TrainResult, TrainState

__all__ = ["Checkpoint", "as_checkpoint", "fingerprint", "describe_params"]

# 2: each rank's own part (module, state, generator, limit, strategy) serialized apart
_FORMAT = "sparsecode-checkpoint-2"
_RESULT_FIELDS = ("loss_curve", "validation_scores", "n_iter", "learning_rate", "converged", "interrupted")


def fingerprint(data: tuple[torch.Tensor, ...]) -> str:
    """A hash of the shapes, dtypes and values of ``data`` (what a resumed fit must train on again)."""
    digest = hashlib.blake2b(digest_size=16)
    for t in data:
        digest.update(f"{tuple(t.shape)}{t.dtype}".encode())
        digest.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def describe_params(params: dict) -> dict[str, str]:
    """Each value of ``params`` as a short string that changes with it (a hash of its pickle)."""
    def describe(value) -> str:
        try:
            return hashlib.blake2b(pickle.dumps(value, protocol=4), digest_size=12).hexdigest()
        except Exception:  # noqa: BLE001 -- unpicklable (a lambda): its qualified name
            return f"{type(value).__module__}.{getattr(value, '__qualname__', type(value).__qualname__)}"
    return {name: describe(value) for name, value in params.items()}


def _read(path: str):
    try:
        return torch.load(path, weights_only=False)
    except Exception as exc:  # noqa: BLE001 -- reported on every rank by Checkpoint._check_file
        return f"{type(exc).__name__}: {exc}"


def _pack(part: dict) -> bytes:
    """A rank's own part as bytes: rank 0 stores the other ranks' parts without loading their tensors."""
    buffer = io.BytesIO()
    torch.save(part, buffer)
    return buffer.getvalue()


def _unpack(blob: bytes) -> dict:
    return torch.load(io.BytesIO(blob), weights_only=False)


def _generator_state(generator: torch.Generator | None) -> bytes | None:
    return None if generator is None else generator.get_state().numpy().tobytes()


def _own_parts(file, rank: int):
    """``file`` as rank ``rank`` keeps it: in every snapshot, its own part only."""
    if not isinstance(file, dict) or file.get("format") != _FORMAT:
        return file

    def own(snap):
        return None if snap is None else {**snap, "parts": [b if r == rank else None
                                                            for r, b in enumerate(snap["parts"])]}

    return {**file, "finished": {k: own(v) for k, v in file["finished"].items()}, "current": own(file["current"])}


@dataclass
class _Ranks:
    """The ranks a call spans (collectives when ``spans``, a distributed fit; else this process alone) and
    the strategy that links them."""

    spans: bool
    group: object = None
    strategy: Distributed = field(default_factory=Distributed)

    def gather(self, value) -> list:
        """Every rank's ``value``, on every rank."""
        if not self.spans:
            return [value]
        out = [None] * dist.get_world_size(self.group)
        dist.all_gather_object(out, value, group=self.group)
        return out

    def to_writer(self, value) -> list:
        """Every rank's ``value`` on rank 0; elsewhere, a list holding this rank's only."""
        if not self.spans:
            return [value]
        out = [None] * dist.get_world_size(self.group)
        dist.gather_object(value, out if self.writes else None, dst=self._writer, group=self.group)
        if not self.writes:
            out[self.rank] = value
        return out

    def from_writer(self, values: list | None):
        """On each rank, its own entry of rank 0's ``values`` (one per rank)."""
        if not self.spans:
            return values[0]
        box = [None]
        dist.scatter_object_list(box, values, src=self._writer, group=self.group)
        return box[0]

    @property
    def _writer(self) -> int:
        return dist.get_global_rank(self.group, 0) if self.group else 0

    @property
    def writes(self) -> bool:
        return not self.spans or dist.get_rank(self.group) == 0

    @property
    def rank(self) -> int:
        return dist.get_rank(self.group) if self.spans else 0

    @property
    def size(self) -> int:
        return dist.get_world_size(self.group) if self.spans else 1


@dataclass
class Checkpoint:
    """A file where :func:`~sparsecode.training.fit_module` saves its state every pass (module doc).

    Parameters
    ----------
    path : str or os.PathLike
        The file; its directory must exist.
    identity : picklable, optional
        What the fit is (compared with ``==``; e.g. a class name and :func:`describe_params`); a file
        of another identity is refused.

    Examples
    --------
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "fit.pt")
    >>> X = torch.randn(32, 3, generator=torch.Generator().manual_seed(0))
    >>> lin, loss = torch.nn.Linear(3, 1), lambda m, x: (m(x) ** 2).mean()
    >>> from sparsecode.training import fit_module
    >>> _ = fit_module(lin, loss, (X,), max_iter=2, checkpoint=path)
    >>> os.path.exists(path)
    True
    """

    path: str | os.PathLike
    identity: object = None
    stage: int = field(default=0, init=False)
    _file: dict | None = field(default=None, init=False, repr=False)
    _read: bool = field(default=False, init=False, repr=False)

    def __post_init__(self):
        self.path = os.fspath(self.path)
        folder = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(folder):
            raise ValueError(f"checkpoint={self.path!r}: its directory {folder!r} does not exist: create it.")

    def _refuse(self, why: str):
        return ValueError(f"checkpoint file {self.path!r} was written by another fit ({why}): delete it to start "
                          "this fit anew, or pass another checkpoint path.")

    def restore(self, module: torch.nn.Module, data: tuple[torch.Tensor, ...], state: TrainState,
                generator: torch.Generator | None, ranks: _Ranks, max_iter: int) -> dict | None:
        """At the start of a call (stage): the saved snapshot of this stage, loaded into ``module``,
        ``generator`` and the strategy of ``ranks``, or None to train from the start. Called on every rank,
        after the strategy's ``begin``; all take the same decision. ``module`` may be anything with
        ``state_dict`` and ``load_state_dict`` (DictionaryLearning's atoms).

        The snapshot is the stage's end when it converged or ran ``max_iter`` passes, else its last pass;
        its ``"state"`` and ``"limit"`` are this rank's."""
        self._ranks, self._strategy = ranks, type(ranks.strategy).__name__
        self._start = (state.epoch, state.n_steps)
        self._prints = ranks.gather(fingerprint(data))
        if not self._read:
            self._read = True
            file = _read(self.path) if ranks.writes and os.path.exists(self.path) else None
            views = [file] + [_own_parts(file, r) for r in range(1, ranks.size)] if ranks.writes else None
            self._file = ranks.from_writer(views)  # rank 0 keeps every part: it writes them back
            self._check_file()
        if self._file is None:
            return None
        snap, current = self._file["finished"].get(self.stage), self._file["current"]
        if snap is None or not (snap["result"]["converged"] or snap["result"]["n_iter"] >= max_iter):
            snap = current if current is not None and current["stage"] == self.stage else None
        if snap is None:
            return None
        if snap["start"] != self._start:  # an earlier call of a continued fit: train anew, overwrite
            self._file = None
            return None
        if snap["fingerprints"] != self._prints:
            bad = [r for r, (a, b) in enumerate(zip(snap["fingerprints"], self._prints)) if a != b]
            raise self._refuse(f"other data on rank(s) {bad}")
        if snap["strategy"] != self._strategy:
            raise self._refuse(f"distributed={snap['strategy']}, not {self._strategy}")
        part = _unpack(snap["parts"][ranks.rank])
        module.load_state_dict(part["module"])
        if generator is not None and part["generator"] is not None:
            generator.set_state(torch.frombuffer(bytearray(part["generator"]), dtype=torch.uint8))
        ranks.strategy.load_state_dict(part["strategy"])
        return {**snap, "state": part["state"], "limit": part["limit"]}

    def _check_file(self) -> None:
        file = self._file
        if file is None:
            return
        found = file.get("format") if isinstance(file, dict) else None
        if isinstance(found, str) and found.startswith("sparsecode-checkpoint-") and found != _FORMAT:
            raise self._refuse(f"format {found!r} of another sparsecode version, this one reads {_FORMAT!r}")
        if found != _FORMAT:
            raise self._refuse(f"it is not a sparsecode checkpoint: {str(file)[:200]}")
        if file["identity"] != self.identity:
            mine, theirs = self.identity, file["identity"]
            if isinstance(mine, dict) and isinstance(theirs, dict):
                keys = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
                raise self._refuse(f"it differs in {', '.join(map(str, keys))}")
            raise self._refuse("another identity")
        if len(file["ranks"]) != len(self._prints):
            raise self._refuse(f"{len(file['ranks'])} ranks, not {len(self._prints)}")

    def save(self, module: torch.nn.Module, state: TrainState, result: TrainResult,
             generator: torch.Generator | None, *, steps: int = 0, limit: float = float("inf"),
             finished: bool = False) -> None:
        """Write the call's state after a pass (or, ``finished``, at its end): every rank sends its own
        part to rank 0, which writes the file."""
        part = _pack({"module": module.state_dict(), "state": state, "generator": _generator_state(generator),
                      "limit": limit, "strategy": self._ranks.strategy.state_dict()})
        snap = {
            "stage": self.stage, "start": self._start, "fingerprints": self._prints, "strategy": self._strategy,
            "steps": steps, "finished": finished, "result": {k: getattr(result, k) for k in _RESULT_FIELDS},
            "parts": self._ranks.to_writer(part),
        }
        file = self._file if self._file is not None else {"finished": {}}
        finished_stages = {k: v for k, v in file["finished"].items() if k < self.stage}
        if finished:  # the last pass's snapshot stays: a later call with a larger max_iter resumes from it
            finished_stages[self.stage] = snap
        self._file = {"format": _FORMAT, "identity": self.identity, "ranks": list(range(len(self._prints))),
                      "finished": finished_stages, "current": file.get("current") if finished else snap}
        if not self._ranks.writes:
            return
        tmp = f"{self.path}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            torch.save(self._file, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def end_call(self) -> None:
        """The call is over: the next call on this checkpoint is the next stage."""
        self.stage += 1


def as_checkpoint(spec, distributed: Distributed) -> tuple[Checkpoint | None, _Ranks]:
    """``fit_module``'s ``checkpoint`` argument as a :class:`Checkpoint` (a path makes a one-stage one),
    with the ranks of the strategy ``distributed`` it is written for."""
    ranks = _Ranks(type(distributed) is not Distributed, getattr(distributed, "group", None), distributed)
    if ranks.spans and spec is not None:
        check_process_group("checkpoint")
        if type(distributed).end_pass is Distributed.end_pass:  # each rank runs its own passes
            raise ValueError(f"checkpoint= needs ranks that end their passes together (allreduce, easgd, "
                             f"eamsgd); {type(distributed).__name__} is asynchronous (its ranks are never "
                             f"all at one pass's end, and their exchanges' order depends on timing).")
    if spec is None or isinstance(spec, Checkpoint):
        return spec, ranks
    if isinstance(spec, (str, os.PathLike)):
        return Checkpoint(spec), ranks
    raise TypeError(f"checkpoint must be a path, a Checkpoint or None, got {type(spec).__name__}.")
