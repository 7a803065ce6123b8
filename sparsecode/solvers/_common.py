"""What every solver shares: the result type, the input check, the chunk size and the chunked drivers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import torch

from ..convolution import as_images, as_kernels
from ..objectives import duality_gap
from ..penalties import L1, Penalty, check_alpha

__all__ = [
    "SolveResult", "check_problem", "check_conv_problem", "default_chunk_size", "in_chunks", "worker_count",
    "map_chunks", "chunked_gap", "zero_result",
]


class SolveResult(NamedTuple):
    """What every lasso solver returns.

    Attributes
    ----------
    code : torch.Tensor, shape (n_samples, n_components)
    n_iter : int
        Iterations run by the slowest sample (coordinate updates for coordinate descent).
    converged : torch.BoolTensor, shape (n_samples,)
        Whether each sample met the stopping rule.
    gap : torch.Tensor, shape (n_samples,)
        Relative duality gap of each sample at exit (gap divided by ``0.5*||x||^2``).
    latent : torch.Tensor or None
        The lifted solution of a lifted penalty (:class:`sparsecode.penalties.LatentGroupL1`), else None.
    """

    code: torch.Tensor
    n_iter: int
    converged: torch.Tensor
    gap: torch.Tensor
    latent: torch.Tensor | None = None


def check_problem(X: torch.Tensor, D: torch.Tensor, alpha, penalty: Penalty | None, z0,
                  kinds: tuple[type, ...] = (Penalty,)) -> tuple[float, Penalty]:
    """A dense lasso problem checked: ``(alpha, penalty)`` with :class:`L1` for ``penalty=None``.

    ValueError unless ``X`` is (n_samples, n_features), ``D`` (n_components, n_features), ``z0`` the codes'
    shape, ``alpha`` a non-negative number and ``penalty`` one of ``kinds`` (the solver's penalties).
    """
    penalty = L1() if penalty is None else penalty
    if not isinstance(penalty, kinds):
        raise ValueError(f"{type(penalty).__name__} is not a penalty this solver takes "
                         f"({', '.join(k.__name__ for k in kinds)}); use fista for the others.")
    if X.ndim != 2 or D.ndim != 2 or X.shape[1] != D.shape[1]:
        raise ValueError(
            f"X must be (n_samples, n_features) and D (n_components, n_features) with the same "
            f"n_features; got X {tuple(X.shape)} and D {tuple(D.shape)}."
        )
    if z0 is not None and tuple(z0.shape) != (X.shape[0], D.shape[0]):
        raise ValueError(f"z0 must have shape {(X.shape[0], D.shape[0])}, got {tuple(z0.shape)}.")
    return check_alpha(alpha), penalty


def check_conv_problem(X: torch.Tensor, D: torch.Tensor, alpha, penalty: Penalty | None
                       ) -> tuple[torch.Tensor, torch.Tensor, float, Penalty]:
    """A convolutional lasso problem checked: images ``(n, C, H, W)``, kernels ``(K, C, kh, kw)`` in the
    images' dtype, ``alpha`` a non-negative number, and the penalty (:class:`L1` for None) on ``X``'s device.
    """
    X, D = as_images(X), as_kernels(D).to(X)
    if X.shape[1] != D.shape[1]:
        raise ValueError(f"images have {X.shape[1]} channel(s) but the kernels {D.shape[1]}.")
    return X, D, check_alpha(alpha), (L1() if penalty is None else penalty).to(X)


def default_chunk_size(row_size: int, device: torch.device | None = None, min_rows: int = 1,
                       cache_sized: bool = True) -> int:
    """Rows per chunk, for rows of ``row_size`` elements: cache-sized on the CPU, large elsewhere.

    On the CPU the dense solvers' work arrays are kept near 2 MB of float32 (2048 rows of 256 elements),
    where their elementwise ops run several times faster per element than on arrays that spill out of
    cache; on accelerators, and for work that is not elementwise-bound (``cache_sized=False``: the
    convolutional solvers, whose FFTs dwarf the elementwise ops), near 32 MB, so that kernels stay large.
    At least ``min_rows`` rows.
    """
    on_cpu = device is None or torch.device(device).type == "cpu"
    budget = 1 << 19 if on_cpu and cache_sized else 1 << 23
    return max(min_rows, budget // max(row_size, 1))


def in_chunks(solve: Callable[..., tuple], chunk: int, *arrays: torch.Tensor) -> tuple:
    """``solve`` on consecutive chunks of ``chunk`` rows of ``arrays`` (at least one row).

    Returns ``solve``'s outputs over the whole batch: tensors gathered along rows, integers (iteration
    counts) as their maximum. Each chunk's tensors are written into outputs allocated once for the whole
    batch (a single chunk's are returned as they are), so the peak memory is the outputs plus one chunk's.
    """
    n = arrays[0].shape[0]
    out = None
    for s in range(0, max(n, 1), chunk):
        part = solve(*(a[s:s + chunk] for a in arrays))
        if out is None:
            if part and isinstance(part[0], torch.Tensor) and part[0].shape[0] == n:
                return tuple(part)
            out = [p.new_empty((n, *p.shape[1:])) if isinstance(p, torch.Tensor) else p for p in part]
        for i, p in enumerate(part):
            if isinstance(p, torch.Tensor):
                out[i][s:s + p.shape[0]] = p
            else:
                out[i] = max(out[i], p)
    return tuple(out)


def worker_count(n_jobs: int | None) -> int:
    """How many joblib workers ``n_jobs`` asks for (-1: one per CPU); 1 for None or 1, without joblib."""
    if n_jobs == 0:
        raise ValueError("n_jobs=0 runs nothing: use None or 1 to run here, k > 1 for k workers, -1 for one "
                         "per CPU.")
    if n_jobs in (None, 1):
        return 1
    from joblib import effective_n_jobs

    return effective_n_jobs(n_jobs)


def map_chunks(fn: Callable[..., Any], chunk: int, *arrays, n_jobs: int | None = None,
               prefer: str | None = None) -> Iterator[tuple[int, Any]]:
    """``(start, fn(*chunks))`` for consecutive chunks of ``chunk`` rows of ``arrays``, in order.

    ``arrays`` are row-aligned arrays (numpy arrays, memmaps, tensors) or None (passed as None); only a
    slice of each reaches ``fn``, so an array larger than memory is read one chunk at a time. With
    ``n_jobs`` None or 1 the chunks run here, one after the other, lazily. Otherwise they run in joblib
    workers (joblib is imported only then), ``prefer`` (``"threads"`` or ``"processes"``) being a hint that
    an enclosing ``joblib.parallel_backend`` (Dask, Ray) overrides. Results come in order, as they are
    ready; joblib starts a chunk whenever one finishes, so finished chunks are held only while the
    consumer is behind the workers (a consumer copying codes into an output keeps up with any solver).
    For process and cluster backends ``fn`` (a module-level function or a ``functools.partial`` of one)
    and its arguments are pickled.
    """
    n = arrays[0].shape[0]
    starts = range(0, max(n, 1), chunk)

    def chunks(s):
        return (None if a is None else a[s:s + chunk] for a in arrays)

    if worker_count(n_jobs) == 1:
        return ((s, fn(*chunks(s))) for s in starts)
    from joblib import Parallel, delayed

    results = Parallel(n_jobs=n_jobs, prefer=prefer, return_as="generator")(
        delayed(fn)(*chunks(s)) for s in starts)
    return zip(starts, results)


def chunked_gap(X: torch.Tensor, Z: torch.Tensor, D: torch.Tensor, alpha: float, penalty: Penalty) -> torch.Tensor:
    """:func:`~sparsecode.objectives.duality_gap` of the codes ``Z`` measured in float64, chunk by chunk.

    Chunks keep the (n, n_components) temporaries small; float64 keeps the gap of float32 codes from
    being float32's rounding of it (which alone can exceed ``1e-6`` in coherent dictionaries).
    """
    chunk = default_chunk_size(max(D.shape), X.device, min_rows=256)
    D64, pen64 = D.double(), penalty.to(D.double())

    def gap(Xc, Zc):
        return (duality_gap(Xc.double(), Zc.double(), D64, alpha, pen64).to(X.dtype),)

    return in_chunks(gap, chunk, X, Z)[0]


def zero_result(Z: torch.Tensor) -> SolveResult:
    """The result of the codes ``Z`` taken as they are: zero iterations, converged, zero gap."""
    n = Z.shape[0]
    return SolveResult(Z, 0, torch.ones(n, dtype=torch.bool, device=Z.device), Z.new_zeros(n))
