"""sparsecode: the torch engine of the toolkit (solvers, proximal maps, model families, training).

The engine depends on torch (and numpy at its array boundary, :mod:`sparsecode.device`), never on
scikit-learn; the scikit-learn estimators live in the ``estimators`` package. The layout follows the
roles:

- :mod:`sparsecode.prox`, :mod:`sparsecode.penalties`, :mod:`sparsecode.objectives`: shrinkage
  operators, penalties as objects, energies;
- :mod:`sparsecode.solvers`: every lasso solver, dense and convolutional (plain functions of tensors);
- :mod:`sparsecode.convolution`: the convolution operators of convolutional sparse coding;
- :mod:`sparsecode.dictionary`: online dictionary learning;
- :mod:`sparsecode.models`: one file per model family (module, inference, loss, initialisation);
- :mod:`sparsecode.training`: the one training loop and the optimizer registry;
- :mod:`sparsecode.device`: device, dtype and numpy <-> torch conversion.
"""

from .conv_dictionary import (
    ConvDictionaryState,
    conv_dictionary_step,
    init_conv_dictionary,
    update_conv_dictionary,
)
from .convolution import (
    ConvOperator,
    border_weights,
    code_size,
    conv_correlate,
    conv_lipschitz_constant,
    conv_reconstruct,
)
from .device import as_tensor, make_generator, resolve_device, resolve_dtype, to_numpy
from .dictionary import (
    OnlineDictionaryState,
    OnlineLearningResult,
    init_dictionary,
    learn_dictionary_online,
    online_dictionary_step,
    update_dictionary,
)
from .objectives import duality_gap, lasso_energy
from .penalties import L1, GroupL1, LatentGroupL1, MapGroupL1, Penalty, make_penalty
from .prox import (
    group_soft_threshold,
    nonneg_soft_threshold,
    project_rows_to_ball,
    shrink,
    smooth_shrink,
    soft_threshold,
)
from .solvers import (
    SolverConvergenceWarning,
    SolveResult,
    conv_admm,
    conv_fista,
    conv_ista,
    conv_lasso_energy,
    coordinate_descent,
    cyclic_coordinate_descent,
    fista,
    homotopy,
    ista,
    lars,
    least_squares,
    lipschitz_constant,
    omp,
    solve_conv_lasso,
    solve_lasso,
    sparse_encode,
    threshold,
)
from .topography import Pools
from .training import DivergenceError, TrainResult, TrainState, fit_module

__version__ = "0.1.0"

__all__ = [
    "resolve_device", "resolve_dtype", "as_tensor", "to_numpy", "make_generator",
    "soft_threshold", "nonneg_soft_threshold", "shrink", "group_soft_threshold", "project_rows_to_ball",
    "smooth_shrink",
    "Penalty", "L1", "GroupL1", "MapGroupL1", "LatentGroupL1", "make_penalty", "Pools", "lasso_energy",
    "duality_gap",
    "SolveResult", "SolverConvergenceWarning", "homotopy", "lars", "omp", "threshold", "least_squares", "ista",
    "fista", "coordinate_descent", "cyclic_coordinate_descent", "lipschitz_constant", "solve_lasso",
    "sparse_encode",
    "ConvOperator", "code_size", "border_weights", "conv_lipschitz_constant", "conv_reconstruct", "conv_correlate",
    "conv_admm", "conv_fista", "conv_ista", "conv_lasso_energy", "solve_conv_lasso",
    "OnlineDictionaryState", "init_dictionary", "update_dictionary", "online_dictionary_step",
    "learn_dictionary_online", "OnlineLearningResult",
    "ConvDictionaryState", "init_conv_dictionary", "update_conv_dictionary", "conv_dictionary_step",
    "fit_module", "TrainState", "TrainResult", "DivergenceError",
]
