"""``sparse_encode``: the array-level entry point, mirroring ``sklearn.decomposition.sparse_encode``."""

from __future__ import annotations

import numpy as np
import torch

from .._device import as_tensor, resolve_device, to_numpy
from ._result import SolveResult
from .cd import coordinate_descent
from .ista import fista, ista

__all__ = ["sparse_encode", "SOLVERS", "solve_lasso"]

SOLVERS = {"fista": fista, "ista": ista, "cd": coordinate_descent}


def solve_lasso(X: torch.Tensor, D: torch.Tensor, alpha, *, algorithm: str = "auto", **options) -> SolveResult:
    """Dispatch to a solver by name; ``"auto"`` is FISTA with support polishing.

    FISTA's batched matrix products suit both CPU and GPU, and the polish (an exact solve on each
    sample's support once its sign pattern is stable between two checks) ends a sample as soon as its
    support is right and lands on the exact optimum: on 2,000 patches of ``benchmarks/bench_encode.py``
    it takes 0.8-0.9x plain FISTA's time and reaches a 1000x smaller energy error, while greedy coordinate
    descent takes 1.7x. Group penalties (``groups=``) fall back to plain FISTA.
    """
    if algorithm == "auto":
        algorithm = "fista"
        options.setdefault("polish", options.get("groups") is None)
    if algorithm not in SOLVERS:
        raise ValueError(f"algorithm={algorithm!r} is not one of {sorted(SOLVERS) + ['auto']}.")
    return SOLVERS[algorithm](X, D, alpha, **options)


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
    algorithm : {"auto", "fista", "ista", "cd"}
    alpha : float
    init : array-like, shape (n_samples, n_components), optional
        Warm start.
    max_iter, tol, positive
        See :func:`sparsecode.solvers.fista`.
    device : str or torch.device
        Where to compute; tensors given as input are moved there.
    return_n_iter : bool
        Also return the number of iterations.
    **options
        Passed to the solver (``L``, ``check_every``, ``chunk_size``, ``groups``, ...).

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
    res = solve_lasso(Xt, Dt, alpha, algorithm=algorithm, z0=z0, max_iter=max_iter, tol=tol,
                      positive=positive, **options)
    code = res.code if isinstance(X, torch.Tensor) else to_numpy(res.code).astype(np.asarray(X).dtype
                                                                                  if np.asarray(X).dtype in (np.float32, np.float64) else np.float64)
    return (code, res.n_iter) if return_n_iter else code
