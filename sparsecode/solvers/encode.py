"""``sparse_encode``: the array-level entry point, mirroring ``sklearn.decomposition.sparse_encode``."""

from __future__ import annotations

import inspect
from numbers import Real

import numpy as np
import torch

from ..device import as_tensor, resolve_device, to_numpy
from ..penalties import L1, Penalty
from ._common import SolveResult
from .cd import coordinate_descent
from .homotopy import homotopy
from .ista import fista, ista

__all__ = ["sparse_encode", "SOLVERS", "solve_lasso"]

_HOMOTOPY_OPTIONS = set(inspect.signature(homotopy).parameters) - {"X", "D", "alpha", "penalty", "z0"}

SOLVERS = {"homotopy": homotopy, "fista": fista, "ista": ista, "cd": coordinate_descent}


def solve_lasso(X: torch.Tensor, D: torch.Tensor, alpha: float = 1.0, *, penalty: Penalty | None = None,
                algorithm: str = "auto", **options) -> SolveResult:
    """Dispatch to a solver by name; ``"auto"`` picks the fastest for the problem.

    ``"auto"`` is the homotopy for the plain lasso (:class:`~sparsecode.penalties.L1` without weights,
    ``alpha > 0``) from zero: each sample takes about as many steps as its code has non-zeros, where FISTA
    needs hundreds of iterations to settle the support of codes in a coherent dictionary
    (``benchmarks/bench_encode.py``: 20,000 patches, 256 atoms, float32 on the CPU, about 3x faster than
    FISTA with support polishing). With a warm start (``z0``), per-unit weights, group penalties,
    ``alpha=0`` or FISTA's own options (``L``, ``check_every``, ...) it is FISTA, polishing supports under
    L1 penalties.

    Examples
    --------
    >>> solve_lasso(torch.tensor([[2.0, 0.5]]), torch.eye(2), 1.0).code
    tensor([[1., 0.]])
    """
    if algorithm == "auto":
        given = {k: v for k, v in options.items() if v is not None}
        plain = penalty is None or (isinstance(penalty, L1) and penalty.weights is None)
        if given.keys() <= _HOMOTOPY_OPTIONS and plain and isinstance(alpha, Real) and alpha > 0:
            return homotopy(X, D, alpha, penalty=penalty, **given)
        algorithm = "fista"
        options.setdefault("polish", True)
    if algorithm not in SOLVERS:
        raise ValueError(f"algorithm={algorithm!r} is not one of {sorted(SOLVERS) + ['auto']}.")
    return SOLVERS[algorithm](X, D, alpha, penalty=penalty, **options)


def sparse_encode(
    X,
    dictionary,
    *,
    algorithm: str = "auto",
    alpha: float = 1.0,
    init=None,
    max_iter: int = 1000,
    tol: float = 1e-5,
    positive: bool = False,
    device="cpu",
    return_n_iter: bool = False,
    **options,
):
    """Sparse codes of ``X`` in ``dictionary``: ``argmin_Z 0.5*||X - Z D||^2 + alpha*||Z||_1`` row by row.

    Parameters
    ----------
    X : array-like or torch.Tensor, shape (n_samples, n_features)
    dictionary : array-like or torch.Tensor, shape (n_components, n_features)
        Rows are atoms.
    algorithm : {"auto", "homotopy", "fista", "ista", "cd"}
    alpha : float
    init : array-like, shape (n_samples, n_components), optional
        Warm start.
    max_iter, tol
        See :func:`sparsecode.solvers.fista`.
    positive : bool
        Constrain the codes to be non-negative.
    device : str or torch.device
        Where to compute; tensors given as input are moved there.
    return_n_iter : bool
        Also return the number of iterations.
    **options
        Passed to the solver (``L``, ``check_every``, ``chunk_size``, ...).

    Returns
    -------
    code : same type as ``X`` (numpy array, or tensor on ``device``), shape (n_samples, n_components)
    n_iter : int, only with ``return_n_iter=True``

    Examples
    --------
    >>> import numpy as np
    >>> sparse_encode(np.array([[2.0, 0.5]]), np.eye(2), alpha=1.0)
    array([[1., 0.]])
    """
    dev = resolve_device(device)
    Xt = as_tensor(X, dev)
    Dt = as_tensor(dictionary, dev, dtype=Xt.dtype)
    z0 = None if init is None else as_tensor(init, dev, dtype=Xt.dtype)
    res = solve_lasso(Xt, Dt, alpha, penalty=L1(positive), algorithm=algorithm, z0=z0, max_iter=max_iter,
                      tol=tol, **options)
    if isinstance(X, torch.Tensor):
        code = res.code
    else:
        dtype = np.asarray(X).dtype
        code = to_numpy(res.code).astype(dtype if dtype in (np.float32, np.float64) else np.float64)
    return (code, res.n_iter) if return_n_iter else code
