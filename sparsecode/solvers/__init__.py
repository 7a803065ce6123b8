"""Batched lasso solvers: plain functions of tensors returning :class:`SolveResult`."""

from ._result import SolveResult
from .cd import coordinate_descent
from .encode import solve_lasso, sparse_encode
from .homotopy import homotopy
from .ista import fista, ista
from .lipschitz import lipschitz_constant

__all__ = [
    "SolveResult", "homotopy", "ista", "fista", "coordinate_descent", "lipschitz_constant", "solve_lasso",
    "sparse_encode",
]
