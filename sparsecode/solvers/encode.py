"""``sparse_encode``: the array-level entry point, mirroring ``sklearn.decomposition.sparse_encode``."""

from __future__ import annotations

import inspect
import warnings
from functools import partial
from numbers import Real

import numpy as np
import torch

from ..device import as_tensor, resolve_device, resolve_dtype, to_numpy
from ..penalties import L1, Penalty
from ._common import SolveResult, check_problem, default_chunk_size, map_chunks, worker_count
from .cd import coordinate_descent, cyclic_coordinate_descent
from .greedy import least_squares, omp, threshold
from .homotopy import homotopy, lars
from .ista import fista, ista

__all__ = ["sparse_encode", "SOLVERS", "ALIASES", "GREEDY", "ALGORITHMS", "solve_lasso", "encode_in_chunks",
           "max_correlation", "SolverConvergenceWarning"]

_HOMOTOPY_OPTIONS = set(inspect.signature(homotopy).parameters) - {"X", "D", "alpha", "penalty", "z0"}

#: The lasso solvers by name.
SOLVERS = {"homotopy": homotopy, "fista": fista, "ista": ista, "cd": cyclic_coordinate_descent,
           "cod": coordinate_descent}
#: scikit-learn's names of lasso solvers, and the engine's solver that runs each.
ALIASES = {"lasso_lars": "homotopy", "lasso_cd": "cd"}
#: scikit-learn's codes that are not lasso solutions: ``n_nonzero_coefs`` atoms (OMP, LARS), thresholding.
GREEDY = ("omp", "lars", "threshold")
#: Every name :func:`solve_lasso` and :func:`sparse_encode` take.
ALGORITHMS = ("auto", *SOLVERS, *ALIASES, *GREEDY)


class SolverConvergenceWarning(RuntimeWarning):
    """Some samples stopped at ``max_iter`` above the tolerance (the engine's, not scikit-learn's, warning)."""


def solve_lasso(X: torch.Tensor, D: torch.Tensor, alpha: float = 1.0, *, penalty: Penalty | None = None,
                algorithm: str = "auto", n_nonzero_coefs: int | None = None, **options) -> SolveResult:
    """Dispatch to a solver by name; ``"auto"`` picks the fastest for the problem.

    ``"auto"`` is the homotopy for the plain lasso (:class:`~sparsecode.penalties.L1` without weights,
    ``alpha > 0``) from zero: each sample takes about as many steps as its code has non-zeros, where FISTA needs
    hundreds of iterations to settle the support of codes in a coherent dictionary. It is the homotopy whatever
    the size, the expected support and the conditioning, because no crossover was measured that these predict.
    On the whole 8x8 regime grid (``benchmarks/bench_encode.py --grid``: 500 patches; learned, Gaussian and
    strongly coherent dictionaries 1x to 8x overcomplete; unit-norm, standardised and whitened inputs; 5%, 30%
    and 90% non-zeros; float32 and float64; free and positive codes; 432 cells, 2 threads) the homotopy took
    0.087-0.86x the time of SPAMS' ``lasso`` (two 0.25 ms cells read 1.1x once, 0.73-0.86x in re-runs), and no
    other solver beat it by more than 10% on any cell. On 16x16 patches (1x to 8x) it took 0.38-1.0x SPAMS'
    time on the cells where SPAMS reaches the optimum
    (its path stops above it wherever two atoms are identical, and on some dense float32 codes); coordinate
    descent (``"cd"``) is faster with 30% non-zeros in Gaussian atoms 2x-4x overcomplete and strongly coherent
    ones 4x (0.43-0.59x SPAMS' time against 0.68-0.88x) but slower on learned atoms of the same sizes and
    supports (1.3-1.7x against 0.71-0.80x): the crossover follows the atoms' spectrum (patches concentrate on a
    few directions), which the sizes and the expected support do not tell. With ``alpha=0``
    and no sign constraint it is the exact least-squares solution
    (:func:`~sparsecode.solvers.greedy.least_squares`). With a warm start (``z0``), per-unit weights, group
    penalties, ``alpha=0`` with ``positive`` or FISTA's own options (``L``, ``check_every``, ...) it is FISTA,
    polishing supports under L1 penalties.

    scikit-learn's names run on the engine too: ``"lasso_lars"`` is the homotopy, ``"lasso_cd"`` cyclic
    coordinate descent (``"cd"``; ``"cod"`` is greedy coordinate descent); ``"omp"`` and ``"lars"`` give
    ``n_nonzero_coefs`` atoms per sample (``alpha`` unused; no sign constraint) and ``"threshold"`` the
    soft-thresholded correlations.

    Examples
    --------
    >>> solve_lasso(torch.tensor([[2.0, 0.5]]), torch.eye(2), 1.0).code
    tensor([[1., 0.]])
    """
    algorithm = ALIASES.get(algorithm, algorithm)
    if algorithm in GREEDY:
        return _greedy(X, D, alpha, penalty, algorithm, n_nonzero_coefs, options.get("chunk_size"))
    if algorithm == "auto":
        given = {k: v for k, v in options.items() if v is not None}
        plain = penalty is None or (isinstance(penalty, L1) and penalty.weights is None)
        if given.keys() <= _HOMOTOPY_OPTIONS and plain and isinstance(alpha, Real):
            if alpha > 0:
                return homotopy(X, D, alpha, penalty=penalty, **given)
            if alpha == 0 and (penalty is None or not penalty.positive):
                check_problem(X, D, alpha, penalty, None)
                return least_squares(X, D)
        algorithm = "fista"
        options.setdefault("polish", True)
    if algorithm not in SOLVERS:
        raise ValueError(f"algorithm={algorithm!r} is not one of {list(ALGORITHMS)}.")
    return SOLVERS[algorithm](X, D, alpha, penalty=penalty, **options)


def _greedy(X, D, alpha, penalty, algorithm, n_nonzero_coefs, chunk_size) -> SolveResult:
    """OMP, LARS or thresholding, under scikit-learn's rules for their parameters."""
    if penalty is not None and not (type(penalty) is L1 and penalty.weights is None):
        raise ValueError(f"algorithm={algorithm!r} takes no groups, weights or other penalties.")
    positive = penalty is not None and penalty.positive
    if algorithm == "threshold":
        return threshold(X, D, alpha, positive=positive)
    if positive:
        raise ValueError(f"Positive constraint not supported for {algorithm!r} coding method.")
    m, n_features = D.shape
    k = min(max(n_features // 10, 1), m) if n_nonzero_coefs is None else int(n_nonzero_coefs)
    return (omp if algorithm == "omp" else lars)(X, D, k, chunk_size=chunk_size)


def encode_in_chunks(X, D: torch.Tensor, alpha: float = 1.0, *, penalty: Penalty | None = None,
                     algorithm: str = "auto", init=None, out: np.ndarray | None = None, n_jobs: int | None = None,
                     chunk_size: int | None = None, **options) -> SolveResult:
    """:func:`solve_lasso` on ``X`` chunk by chunk, the codes written into one output.

    Only ``X``, the output and the chunks being coded are held: ``X`` may be a ``np.memmap`` larger than
    memory, and so may ``out``. Each sample is solved on its own, so the codes do not depend on ``n_jobs``
    or ``chunk_size`` beyond the rounding of the batched products, which depends on the chunk's shape: the
    homotopy (``"auto"``), coordinate descent and the greedy codes agree to about 1e-7 in float32; FISTA
    and ISTA agree to rounding in float64, while in float32 a sample whose duality gap is within rounding
    of ``tol`` at a check may stop one check earlier or later (a difference that ``tol`` allows).

    Parameters
    ----------
    X : array-like (ndarray, np.memmap) or torch.Tensor, shape (n_samples, n_features)
        Read one chunk at a time; each chunk becomes a tensor on ``D``'s device in ``D``'s dtype.
    D : torch.Tensor, shape (n_components, n_features)
    alpha, penalty, algorithm, **options
        As :func:`solve_lasso` (``n_nonzero_coefs``, ``max_iter``, ``tol``, ...).
    init : array-like or torch.Tensor, shape (n_samples, n_components), optional
        Warm start, read chunk by chunk as ``X``.
    out : ndarray or np.memmap, shape (n_samples, n_components), optional
        Writeable, of ``X``'s float dtype (float64 for other dtypes; float32 for a float32 tensor). When
        None: a new ndarray for an array ``X``, a new tensor on ``D``'s device for a tensor ``X``.
    n_jobs : int, optional
        Chunks coded at the same time by joblib workers (-1: one per CPU); None or 1: one after the other,
        here. Threads unless an enclosing ``joblib.parallel_backend`` chooses otherwise: on one machine the
        solvers already spread a chunk's samples over torch's threads, so process workers would add no
        cores, only their start-up (a torch import each), and threads overlap reading a memmap and torch's
        operations with coding (the compiled CPU kernels release the GIL, so thread workers run them at once).
        A cluster backend (``"dask"``, ``"ray"``) ships each chunk with the solver and ``D`` (pickled, on
        ``D``'s device) to a worker and its codes back.
    chunk_size : int, optional
        Rows per chunk (also the solvers' own chunk size). When None: rows of ``max(n_features,
        n_components)`` elements filling about 32 MB of float32, and with workers few enough rows
        (at least 256) for 4 chunks per worker.

    Returns
    -------
    SolveResult
        ``code`` is the output (``out`` when given); ``n_iter`` the largest over the chunks; ``converged``
        and ``gap`` per sample on the CPU; ``latent`` None unless ``X`` is a tensor coded in one chunk.

    Raises
    ------
    TypeError, ValueError
        When ``out`` is not a writeable ndarray of the codes' shape and dtype.
    """
    X = X if isinstance(X, torch.Tensor) else np.asanyarray(X)
    init = init if init is None or isinstance(init, torch.Tensor) else np.asanyarray(init)
    alpha, penalty = check_problem(X, D, alpha, penalty, init)
    n = X.shape[0]
    shape, dtype = (n, D.shape[0]), _code_dtype(X)
    if out is not None:
        _check_out(out, shape, dtype)
    chunk = chunk_size or _rows_per_chunk(D, n, n_jobs)
    host = out is not None or not isinstance(X, torch.Tensor)
    solve = partial(_solve_chunk, D=D, alpha=alpha, penalty=penalty, algorithm=algorithm, host=host,
                    options={**options, "chunk_size": chunk_size})
    converged, gap = torch.ones(n, dtype=torch.bool, device="cpu"), torch.zeros(n, dtype=D.dtype, device="cpu")
    n_iter = 0
    for s, res in map_chunks(solve, chunk, X, init, n_jobs=n_jobs, prefer="threads"):
        if out is None and res.code.shape[0] == n:  # one chunk: its codes are the output
            code = res.code.astype(dtype, copy=False) if host else res.code
            return res._replace(code=code)
        if out is None:
            out = np.empty(shape, dtype) if host else D.new_empty(shape)
        e = s + res.code.shape[0]
        out[s:e], converged[s:e], gap[s:e] = res.code, res.converged, res.gap
        n_iter = max(n_iter, res.n_iter)
    return SolveResult(out, n_iter, converged, gap)


def _solve_chunk(X, init, *, D, alpha, penalty, algorithm, host, options) -> SolveResult:
    """One chunk of :func:`encode_in_chunks` (module-level, so that process and cluster workers can run it);
    with ``host`` the codes come back as numpy, the rest on the CPU."""
    z0 = None if init is None else as_tensor(init, D.device, dtype=D.dtype)
    res = solve_lasso(as_tensor(X, D.device, dtype=D.dtype), D, alpha, penalty=penalty, algorithm=algorithm,
                      z0=z0, **options)
    return SolveResult(to_numpy(res.code) if host else res.code, res.n_iter, res.converged.cpu(), res.gap.cpu(),
                       res.latent)


def _rows_per_chunk(D: torch.Tensor, n: int, n_jobs: int | None) -> int:
    """Rows per chunk: about 32 MB of the widest row, and with workers small enough for 4 chunks each."""
    chunk = default_chunk_size(max(D.shape), D.device, cache_sized=False)
    workers = worker_count(n_jobs)
    return chunk if workers == 1 else min(chunk, max(256, -(-n // (4 * workers))))


def _code_dtype(X) -> np.dtype:
    """The codes' numpy dtype: ``X``'s float dtype (float32 for a tensor computed in float32), else float64."""
    if isinstance(X, torch.Tensor):
        return np.dtype(np.float64 if resolve_dtype(X.dtype) == torch.float64 else np.float32)
    return X.dtype if X.dtype in (np.float32, np.float64) else np.dtype(np.float64)


def _check_out(out, shape: tuple[int, int], dtype: np.dtype) -> None:
    """Refuse an ``out`` the codes cannot be written into, saying how to allocate one."""
    how = (f"np.empty({shape}, dtype=np.{dtype.name}) or np.memmap(path, dtype=np.{dtype.name}, mode='w+', "
           f"shape={shape})")
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy array or np.memmap, got {type(out).__name__}; allocate it with "
                        f"{how}.")
    if out.shape != shape or out.dtype != dtype:
        raise ValueError(f"out must have shape {shape} (n_samples, n_components) and dtype {dtype.name} (that of "
                         f"X), got shape {out.shape} and dtype {out.dtype.name}; allocate it with {how}.")
    if not out.flags.writeable:
        raise ValueError("out is read-only (a memmap opened with mode='r'?): open it with mode='w+' or 'r+'.")


def max_correlation(X, D: torch.Tensor, *, positive: bool = False, chunk_size: int | None = None) -> float:
    """The smallest ``alpha`` at which every lasso code of ``X`` is zero, read chunk by chunk.

    ``max |X D^T|``, or ``max(max X D^T, 0)`` with ``positive``; ``X`` as in :func:`encode_in_chunks`.

    Examples
    --------
    >>> max_correlation(np.array([[2.0, -3.0]]), torch.eye(2, dtype=torch.float64))
    3.0
    """
    def corr(Xc):
        C = as_tensor(Xc, D.device, dtype=D.dtype) @ D.T
        return float((C.amax() if positive else C.abs().amax()).clamp(min=0)) if C.numel() else 0.0

    return max(c for _, c in map_chunks(corr, chunk_size or _rows_per_chunk(D, X.shape[0], None), X))


def sparse_encode(
    X,
    dictionary,
    *,
    gram=None,
    cov=None,
    algorithm: str = "auto",
    n_nonzero_coefs: int | None = None,
    alpha: float | None = None,
    copy_cov: bool = True,
    init=None,
    max_iter: int = 1000,
    n_jobs: int | None = None,
    check_input: bool = True,
    verbose: int = 0,
    positive: bool = False,
    tol: float = 1e-5,
    device=None,
    return_n_iter: bool = False,
    out: np.ndarray | None = None,
    **options,
):
    """Sparse codes of ``X`` in ``dictionary``: ``argmin_Z 0.5*||X - Z D||^2 + alpha*||Z||_1`` row by row.

    Takes ``sklearn.decomposition.sparse_encode``'s signature and algorithm names, all run on the engine
    (:func:`solve_lasso`), plus ``tol``, ``device``, ``return_n_iter`` and ``out``.

    Parameters
    ----------
    X : array-like or torch.Tensor, shape (n_samples, n_features)
    dictionary : array-like or torch.Tensor, shape (n_components, n_features)
        Rows are atoms.
    gram, cov : ignored
        scikit-learn's precomputed ``D D^T`` and ``D X^T``; the engine forms them per chunk.
    algorithm : {"auto", "homotopy", "fista", "ista", "cd", "cod", "lasso_lars", "lasso_cd", "lars", \
"omp", "threshold"}
        See :func:`solve_lasso`; ``"lasso_lars"`` is the homotopy and ``"lasso_cd"`` is ``"cd"``.
    n_nonzero_coefs : int, optional
        Atoms per sample for ``"omp"`` and ``"lars"``; ``min(max(n_features // 10, 1), n_components)``
        when None, as scikit-learn.
    alpha : float, optional
        Penalty (threshold for ``"threshold"``); 1.0 when None.
    copy_cov, check_input, verbose : ignored
        Accepted for scikit-learn's signature.
    init : array-like, shape (n_samples, n_components), optional
        Warm start.
    max_iter, tol
        See :func:`sparsecode.solvers.fista`.
    n_jobs : int, optional
        Chunks coded at the same time in joblib workers (-1: one per CPU; None or 1: one after the other);
        see :func:`encode_in_chunks`.
    positive : bool
        Constrain the codes to be non-negative (not for ``"omp"`` and ``"lars"``).
    device : {"auto", "cpu", "cuda", "cuda:N"}, torch.device or None, default=None
        Where to compute: the device of ``X`` when it is a tensor, else ``"auto"`` (CUDA when available,
        as the estimators' default) when None; tensors given as input are moved there.
    return_n_iter : bool
        Also return the number of iterations.
    out : ndarray or np.memmap, shape (n_samples, n_components), optional
        Where to write the codes, in ``X``'s float dtype (float64 for other dtypes). ``X`` (a ``np.memmap``
        for data larger than memory) is read and coded chunk by chunk, so that only ``X``, ``out`` and the
        chunks being coded are held: a memmap ``out`` keeps codes larger than memory on disk.
    **options
        Passed to the solver (``L``, ``check_every``, ...); ``chunk_size`` is the rows per chunk.

    Returns
    -------
    code : ``out`` when given, else same type as ``X`` (numpy array, or tensor on ``device``), shape \
(n_samples, n_components)
    n_iter : int, only with ``return_n_iter=True``

    Warns
    -----
    SolverConvergenceWarning
        When samples stop at ``max_iter`` with a relative duality gap above ``tol``.

    Examples
    --------
    >>> import numpy as np
    >>> sparse_encode(np.array([[2.0, 0.5]]), np.eye(2), alpha=1.0)
    array([[1., 0.]])
    """
    dev = X.device if device is None and isinstance(X, torch.Tensor) else resolve_device(device)
    X = X if isinstance(X, torch.Tensor) else np.asanyarray(X)
    Dt = as_tensor(dictionary, dev, dtype=resolve_dtype(X.dtype))
    res = encode_in_chunks(X, Dt, 1.0 if alpha is None else alpha, penalty=L1(positive), algorithm=algorithm,
                           init=init, out=out, n_jobs=n_jobs, n_nonzero_coefs=n_nonzero_coefs, max_iter=max_iter,
                           tol=tol, **options)
    if algorithm not in GREEDY and tol > 0 and not bool(res.converged.all()):
        warnings.warn(f"sparse_encode did not converge for {int((~res.converged).sum())} of "
                      f"{res.converged.numel()} samples within max_iter={max_iter}: the largest relative "
                      f"duality gap is {float(res.gap.max()):.2e} (tol={tol:g}).", SolverConvergenceWarning,
                      stacklevel=2)
    return (res.code, res.n_iter) if return_n_iter else res.code
