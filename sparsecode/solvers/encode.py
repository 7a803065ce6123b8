"""``sparse_encode``: the array-level entry point, mirroring ``sklearn.decomposition.sparse_encode``."""

from __future__ import annotations

import inspect
import warnings
from numbers import Real

import numpy as np
import torch

from ..device import as_tensor, resolve_device, to_numpy
from ..penalties import L1, Penalty
from ._common import SolveResult, check_problem
from .cd import coordinate_descent, cyclic_coordinate_descent
from .greedy import least_squares, omp, threshold
from .homotopy import homotopy, lars
from .ista import fista, ista

__all__ = ["sparse_encode", "SOLVERS", "ALIASES", "GREEDY", "ALGORITHMS", "solve_lasso",
           "SolverConvergenceWarning"]

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
    ``alpha > 0``) from zero: each sample takes about as many steps as its code has non-zeros, where FISTA
    needs hundreds of iterations to settle the support of codes in a coherent dictionary
    (``benchmarks/bench_encode.py``: 20,000 patches, 256 atoms, float32 on the CPU, about 3x faster than
    FISTA with support polishing). With ``alpha=0`` and no sign constraint it is the exact least-squares
    solution (:func:`~sparsecode.solvers.greedy.least_squares`). With a warm start (``z0``), per-unit
    weights, group penalties, ``alpha=0`` with ``positive`` or FISTA's own options (``L``, ``check_every``,
    ...) it is FISTA, polishing supports under L1 penalties.

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
    **options,
):
    """Sparse codes of ``X`` in ``dictionary``: ``argmin_Z 0.5*||X - Z D||^2 + alpha*||Z||_1`` row by row.

    Takes ``sklearn.decomposition.sparse_encode``'s signature and algorithm names, all run on the engine
    (:func:`solve_lasso`), plus ``tol``, ``device`` and ``return_n_iter``.

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
        Accepted for scikit-learn's signature; the solvers run on torch's threads.
    positive : bool
        Constrain the codes to be non-negative (not for ``"omp"`` and ``"lars"``).
    device : {"auto", "cpu", "cuda", "cuda:N"}, torch.device or None, default=None
        Where to compute: the device of ``X`` when it is a tensor, else ``"auto"`` (CUDA when available,
        as the estimators' default) when None; tensors given as input are moved there.
    return_n_iter : bool
        Also return the number of iterations.
    **options
        Passed to the solver (``L``, ``check_every``, ``chunk_size``, ...).

    Returns
    -------
    code : same type as ``X`` (numpy array, or tensor on ``device``), shape (n_samples, n_components)
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
    Xt = as_tensor(X, dev)
    Dt = as_tensor(dictionary, dev, dtype=Xt.dtype)
    z0 = None if init is None else as_tensor(init, dev, dtype=Xt.dtype)
    alpha = 1.0 if alpha is None else alpha
    if algorithm in GREEDY:
        res = solve_lasso(Xt, Dt, alpha, penalty=L1(positive), algorithm=algorithm,
                          n_nonzero_coefs=n_nonzero_coefs, **options)
    else:
        res = solve_lasso(Xt, Dt, alpha, penalty=L1(positive), algorithm=algorithm, z0=z0, max_iter=max_iter,
                          tol=tol, **options)
        if tol > 0 and not bool(res.converged.all()):
            warnings.warn(f"sparse_encode did not converge for {int((~res.converged).sum())} of "
                          f"{res.converged.numel()} samples within max_iter={max_iter}: the largest relative "
                          f"duality gap is {float(res.gap.max()):.2e} (tol={tol:g}).", SolverConvergenceWarning,
                          stacklevel=2)
    if isinstance(X, torch.Tensor):
        code = res.code
    else:
        dtype = np.asarray(X).dtype
        code = to_numpy(res.code).astype(dtype if dtype in (np.float32, np.float64) else np.float64)
    return (code, res.n_iter) if return_n_iter else code
