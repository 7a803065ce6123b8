"""sparsecode: the torch engine of the toolkit (solvers, proximal maps, encoders, optimizers, training).

This package imports torch only; the scikit-learn estimators live in the ``estimators`` package.
"""

from ._device import as_tensor, make_generator, resolve_device, resolve_dtype, to_numpy
from .dictionary import OnlineDictionaryState, init_dictionary, online_dictionary_step, update_dictionary
from .objectives import duality_gap, lasso_energy
from .penalties import L1, GroupL1, make_penalty
from .prox import group_soft_threshold, nonneg_soft_threshold, project_rows_to_ball, shrink, soft_threshold
from .solvers import (
    SolveResult,
    coordinate_descent,
    fista,
    homotopy,
    ista,
    lipschitz_constant,
    solve_lasso,
    sparse_encode,
)
from .train import DivergenceError, TrainResult, TrainState, fit_module

__version__ = "0.1.0"

__all__ = [
    "resolve_device", "resolve_dtype", "as_tensor", "to_numpy", "make_generator",
    "soft_threshold", "nonneg_soft_threshold", "shrink", "group_soft_threshold", "project_rows_to_ball",
    "L1", "GroupL1", "make_penalty", "lasso_energy", "duality_gap",
    "SolveResult", "homotopy", "ista", "fista", "coordinate_descent", "lipschitz_constant", "solve_lasso",
    "sparse_encode",
    "OnlineDictionaryState", "init_dictionary", "update_dictionary", "online_dictionary_step",
    "fit_module", "TrainState", "TrainResult", "DivergenceError",
]
