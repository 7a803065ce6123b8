"""What SparseCoder and DictionaryLearning share: the transform parameters and the coding step."""

from __future__ import annotations

import warnings
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import ClassNamePrefixFeaturesOutMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from sparsecode.penalties import L1, Penalty, make_penalty
from sparsecode.solvers.encode import ALIASES, GREEDY, SOLVERS, encode_in_chunks, max_correlation
from sparsecode.topography import Pools

from ._base import DEVICE_CONSTRAINT, FitMixin, FloatTransformerMixin, LinearDecoderMixin, TorchEstimatorMixin
from ._validation import check_codes, check_input

__all__ = ["SparseCodingMixin", "TORCH_ALGORITHMS", "SKLEARN_ALGORITHMS", "group_index", "warn_all_zero"]

TORCH_ALGORITHMS = ["auto", *SOLVERS]
SKLEARN_ALGORITHMS = [*ALIASES, *GREEDY]

TRANSFORM_PARAMETER_CONSTRAINTS = {
    "transform_algorithm": [StrOptions(set(TORCH_ALGORITHMS + SKLEARN_ALGORITHMS))],
    "transform_n_nonzero_coefs": [Interval(Integral, 1, None, closed="left"), None],
    "transform_alpha": [Interval(Real, 0, None, closed="left"), None],
    "transform_max_iter": [Interval(Integral, 0, None, closed="left")],
    "transform_tol": [Interval(Real, 0, None, closed="left")],
    "split_sign": ["boolean"],
    "n_jobs": [Integral, None],
    "positive_code": ["boolean"],
    "groups": [Interval(Integral, 1, None, closed="left"), "array-like", None],
    "topography": [tuple, list, None],
    "pool_size": [Interval(Integral, 1, None, closed="left"), tuple, list],
    "device": DEVICE_CONSTRAINT,
}


def group_index(groups, n_components: int) -> torch.Tensor | None:
    """Group index per unit from ``groups``: None, a group size (int), labels per unit, or index lists.

    Follows celer/skglm: an int is a block size, a list of ints of length ``n_components`` labels each
    unit, a list of lists gives each group's unit indices (disjoint, covering every unit).
    """
    if groups is None:
        return None
    if isinstance(groups, Integral):
        return torch.arange(n_components, device="cpu") // int(groups)
    if len(groups) and not np.isscalar(groups[0]):
        members = [np.asarray(m).ravel() for m in groups]
        flat = np.concatenate(members) if members else np.zeros(0)
        if flat.dtype.kind not in "iu" or flat.size and not 0 <= flat.min() <= flat.max() < n_components:
            raise ValueError(f"groups given as index lists must hold integer unit indices in [0, {n_components}); "
                             f"got {sorted(set(flat.tolist()) - set(range(n_components)))[:5]}.")
        labels = np.full(n_components, -1)
        for g, m in enumerate(members):
            labels[m] = g
        if (labels < 0).any() or flat.size != n_components:
            raise ValueError("groups given as index lists must cover every component exactly once.")
        return torch.as_tensor(labels, dtype=torch.long, device="cpu")
    labels = np.asarray(groups)
    if labels.shape != (n_components,):
        raise ValueError(f"groups must give one label per component ({n_components}); got shape {labels.shape}.")
    _, inverse = np.unique(labels, return_inverse=True)
    return torch.as_tensor(inverse, dtype=torch.long, device="cpu")


def warn_all_zero(alpha: float, alpha_max: float, correlation: str, stacklevel: int) -> None:
    """The warning that every code is zero: ``alpha`` is at least ``alpha_max``, the largest correlation between
    the data and an atom (``correlation`` says which), above which the lasso's solution is zero."""
    warnings.warn(
        f"Every code is zero: alpha={alpha:g} is at least the largest correlation between the data and "
        f"an atom, {correlation} = {alpha_max:.4g}, above which the lasso's solution is zero. Choose "
        f"alpha below {alpha_max:.4g} (a fraction of it, such as 0.1 * {alpha_max:.4g}), or rescale the "
        "data.",
        UserWarning,
        stacklevel=stacklevel,
    )


class SparseCodingMixin(
    FitMixin, LinearDecoderMixin, ClassNamePrefixFeaturesOutMixin, FloatTransformerMixin, TorchEstimatorMixin
):
    """Coding against a dictionary with the engine's solvers (scikit-learn's algorithm names included).

    Holds the transform parameters (set by ``__init__``, as scikit-learn's ``_BaseSparseCoding``) and
    ``transform`` / ``inverse_transform``; a subclass gives the dictionary in :meth:`_atoms`. A stateless
    subclass validates its parameters at every ``transform``, any other must be fitted first.
    """

    def __init__(self, transform_algorithm, transform_n_nonzero_coefs, transform_alpha, split_sign, n_jobs,
                 positive_code, transform_max_iter, transform_tol, groups, topography, pool_size, device):
        self.transform_algorithm = transform_algorithm
        self.transform_n_nonzero_coefs = transform_n_nonzero_coefs
        self.transform_alpha = transform_alpha
        self.split_sign = split_sign
        self.n_jobs = n_jobs
        self.positive_code = positive_code
        self.transform_max_iter = transform_max_iter
        self.transform_tol = transform_tol
        self.groups = groups
        self.topography = topography
        self.pool_size = pool_size
        self.device = device

    def _checked_codes(self, X) -> tuple[np.ndarray, np.ndarray]:
        """``X`` validated, and its codes in the dictionary of :meth:`_atoms`."""
        if self._stateless:
            self._validate_params()
        else:
            check_is_fitted(self)
        X = check_input(self, X, reset=False)
        return X, self._encode(X, self._atoms(X))

    def transform(self, X, y=None):
        """Sparse codes of ``X`` in the dictionary (``dictionary``, or the learned ``components_``).

        ``X`` is coded chunk by chunk into one output, so a ``np.memmap`` larger than memory is never
        loaded whole; for codes larger than memory too, write them into a memmap with
        :func:`sparsecode.sparse_encode` (``out=``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The data to encode (a float32 or float64 ``np.memmap`` is read as it is, without a copy).
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        code : ndarray of shape (n_samples, n_components)
            Twice as many columns with ``split_sign``; in the float dtype of ``X``.
        """
        return self._checked_codes(X)[1]

    def _transform_alpha(self) -> float:
        if self.transform_alpha is not None:
            return self.transform_alpha
        return getattr(self, "alpha", 1.0)

    def _pools(self, n_components: int) -> Pools | None:
        """The topographic pools of ``topography`` / ``pool_size``, or None."""
        if self.topography is None:
            return None
        if self.groups is not None:
            raise ValueError("Give either groups or topography, not both.")
        return Pools.from_topography(self.topography, self.pool_size, n_components=n_components)

    def _code_penalty(self, n_components: int, positive: bool = False) -> Penalty:
        """The penalty of ``groups`` / ``topography`` (L1 without them) on ``n_components`` codes."""
        return make_penalty(positive=positive, groups=group_index(self.groups, n_components),
                            pools=self._pools(n_components))

    def _encode(self, X: np.ndarray, dictionary, *, init=None) -> np.ndarray:
        """Codes of validated ``X`` (read chunk by chunk: a memmap is never loaded whole, and ``n_jobs``
        workers code chunks at the same time); ``dictionary`` is a numpy array or a tensor on the device."""
        algorithm = self.transform_algorithm
        alpha = self._transform_alpha()
        Dt = self._tensor(dictionary, dtype=X.dtype)
        n_components = Dt.shape[0]
        penalty = self._code_penalty(n_components, self.positive_code)
        if not isinstance(penalty, L1) and algorithm not in ("auto", "fista", "ista"):
            raise ValueError(f"transform_algorithm={algorithm!r} does not support groups or topography; use "
                             "'auto', 'fista' or 'ista'.")
        # split_sign: the signed codes go into the left half, then are split in place
        code = np.empty((X.shape[0], 2 * n_components), X.dtype) if self.split_sign else None
        res = encode_in_chunks(
            X, Dt, alpha, penalty=penalty, algorithm=algorithm, init=init,
            out=None if code is None else code[:, :n_components], n_jobs=self.n_jobs,
            n_nonzero_coefs=self._n_nonzero_coefs(Dt.shape) if algorithm in GREEDY else None,
            max_iter=self.transform_max_iter, tol=self.transform_tol)
        if algorithm not in GREEDY:
            self._warn_not_converged(res)
            self._warn_all_zero(res.code, X, Dt, alpha)
        if code is None:
            return res.code
        signed, negative = code[:, :n_components], code[:, n_components:]
        np.negative(np.minimum(signed, 0, out=negative), out=negative)
        np.maximum(signed, 0, out=signed)
        return code

    def _warn_all_zero(self, code: np.ndarray, X: np.ndarray, D: torch.Tensor, alpha: float) -> None:
        """Say so when every code is zero on non-zero data, naming the largest useful alpha."""
        if alpha <= 0 or code.any() or not X.any():
            return
        warn_all_zero(alpha, max_correlation(X, D, positive=self.positive_code), "max |X D^T|", stacklevel=5)

    def _penalty_value(self, code: np.ndarray) -> np.ndarray:
        """Per-sample penalty of (possibly split-sign) codes, for ``score``."""
        if self.split_sign:
            code = self._signed(code)
        Z = torch.as_tensor(code, dtype=torch.float64, device="cpu")
        return self._code_penalty(Z.shape[1]).value(Z, self._transform_alpha()).numpy()

    def _n_nonzero_coefs(self, shape) -> int:
        """Atoms per code for ``"omp"`` and ``"lars"``: as given, or ``n_features // 10`` clipped to
        ``[1, n_components]`` as scikit-learn does."""
        n_components, n_features = shape
        if self.transform_n_nonzero_coefs is None:
            return min(max(n_features // 10, 1), n_components)
        k = self.transform_n_nonzero_coefs
        if k > n_components:
            raise ValueError(
                f"transform_n_nonzero_coefs={k} exceeds the {n_components} atoms of the dictionary; "
                "choose at most n_components."
            )
        return k

    def _warn_not_converged(self, res) -> None:
        if self.transform_tol <= 0 or bool(res.converged.all()):
            return
        n_bad = int((~res.converged).sum())
        worst = float(res.gap.max())
        warnings.warn(
            f"Sparse coding did not converge for {n_bad} of {res.converged.numel()} samples within "
            f"transform_max_iter={self.transform_max_iter} iterations: the largest relative duality gap "
            f"is {worst:.2e} (transform_tol={self.transform_tol:g}). Increase transform_max_iter to "
            "improve convergence.",
            ConvergenceWarning,
            stacklevel=3,
        )

    def _inverse(self, code, atoms: np.ndarray) -> np.ndarray:
        """``code @ atoms``, split-sign codes first folded back to signed ones."""
        if not self.split_sign:
            return super()._inverse(code, atoms)
        code = self._signed(check_codes(code, 2 * atoms.shape[0], "2 x n_components"))
        return code @ atoms.astype(code.dtype, copy=False)

    @staticmethod
    def _signed(code: np.ndarray) -> np.ndarray:
        """Split-sign codes ``[max(z, 0), -min(z, 0)]`` folded back to ``z``."""
        half = code.shape[1] // 2
        return code[:, :half] - code[:, half:]
