"""Batched lasso solvers, dense and convolutional: plain functions of tensors returning :class:`SolveResult`."""

from ._common import SolveResult
from .cd import coordinate_descent, cyclic_coordinate_descent
from .conv import conv_fista, conv_ista, conv_lasso_energy, solve_conv_lasso
from .conv_admm import conv_admm
from .encode import SolverConvergenceWarning, solve_lasso, sparse_encode
from .greedy import least_squares, omp, threshold
from .homotopy import homotopy, lars
from .ista import fista, ista
from .lipschitz import lipschitz_constant

__all__ = [
    "SolveResult", "SolverConvergenceWarning", "homotopy", "lars", "omp", "threshold", "least_squares", "ista",
    "fista", "coordinate_descent", "cyclic_coordinate_descent", "lipschitz_constant", "solve_lasso",
    "sparse_encode", "conv_fista", "conv_ista", "conv_lasso_energy", "conv_admm", "solve_conv_lasso",
]
