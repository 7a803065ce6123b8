"""Batched lasso solvers, dense and convolutional: plain functions of tensors returning :class:`SolveResult`."""

from ._common import SolveResult
from .cd import coordinate_descent
from .conv import conv_fista, conv_ista, conv_lasso_energy
from .encode import solve_lasso, sparse_encode
from .homotopy import homotopy
from .ista import fista, ista
from .lipschitz import lipschitz_constant

__all__ = [
    "SolveResult", "homotopy", "ista", "fista", "coordinate_descent", "lipschitz_constant", "solve_lasso",
    "sparse_encode", "conv_fista", "conv_ista", "conv_lasso_energy",
]
