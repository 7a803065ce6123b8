"""SparseCoder: a drop-in for ``sklearn.decomposition.SparseCoder`` on the torch solvers."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator

from ._sparse_coding import TRANSFORM_PARAMETER_CONSTRAINTS, SparseCodingMixin
from ._validation import check_dictionary, check_input

__all__ = ["SparseCoder"]


class SparseCoder(SparseCodingMixin, BaseEstimator):
    """Sparse coding against a fixed dictionary.

    Finds, for every row ``x`` of ``X``, ``argmin_z 0.5*||x - z D||^2 + alpha*||z||_1`` (optionally
    ``z >= 0``, or with a group penalty). Same parameters as scikit-learn's ``SparseCoder`` so that
    changing the import keeps code running, plus ``transform_tol``, ``groups`` and ``device``.

    Parameters
    ----------
    dictionary : ndarray of shape (n_components, n_features)
        Atoms (rows). They need not be unit-norm.
    transform_algorithm : {"auto", "homotopy", "fista", "ista", "cd", "cod", "lasso_lars", "lasso_cd", "lars", \
"omp", "threshold"}, default="auto"
        Every name runs on the engine, on the CPU or a GPU. ``"auto"`` picks the fastest exact solver for the
        problem (the homotopy for the plain lasso, the least-squares solve at ``transform_alpha=0``, FISTA for
        group penalties); ``"homotopy"`` (batched LARS-lasso, also ``"lasso_lars"``), ``"fista"``,
        ``"ista"``, ``"cd"`` (cyclic coordinate descent, also ``"lasso_cd"``) and ``"cod"`` (greedy
        coordinate descent) solve the lasso; ``"omp"`` (batch OMP) and ``"lars"`` give
        ``transform_n_nonzero_coefs`` atoms per sample, ``"threshold"`` the soft-thresholded correlations,
        as scikit-learn's.
    transform_n_nonzero_coefs : int, default=None
        Non-zeros for ``"omp"`` and ``"lars"``; ``n_features // 10`` (at least 1, at most ``n_components``)
        when None.
    transform_alpha : float, default=None
        Penalty ``alpha``; 1.0 when None (a SparseCoder has no ``alpha`` of its own). When every code comes
        out zero, a warning names the largest useful value, ``max |X D^T|``.
    split_sign : bool, default=False
        Return ``[max(z, 0), -min(z, 0)]`` side by side.
    n_jobs : int, default=None
        Chunks of ``transform`` coded at the same time in joblib workers (-1: one per CPU): threads, or
        what an enclosing ``joblib.parallel_backend`` (``"dask"``, ``"ray"``) gives. None or 1: one chunk
        after the other, each on torch's threads (see :func:`sparsecode.solvers.encode.encode_in_chunks`).
    positive_code : bool, default=False
        Constrain the codes to be non-negative.
    transform_max_iter : int, default=1000
        Iterations at most.
    transform_tol : float, default=1e-5
        Stop a sample when its duality gap is below ``transform_tol * 0.5*||x||^2``. A sample that does
        not get there raises a ``ConvergenceWarning`` saying how far it is.
    groups : int, array-like or None, default=None
        Group lasso ``alpha * sum_g ||z_g||_2``: a group size, a label per atom, or lists of atom indices.
    topography : (int, int) or None, default=None
        Arrange the atoms on a ``rows x cols`` torus and penalise overlapping ``pool_size`` windows with
        Gaussian weights (the topographic penalty of Kavukcuoglu et al. 2009, as a latent group lasso).
    pool_size : int or (int, int), default=3
        Window of each pool on the map.
    device : {"auto", "cpu", "cuda", "cuda:N"}, default="auto"
        Where the torch solvers run.

    Attributes
    ----------
    n_components_ : int
{input_attributes}

    Examples
    --------
    >>> import numpy as np
    >>> from estimators import SparseCoder
    >>> coder = SparseCoder(np.eye(3), transform_alpha=0.5, device="cpu")
    >>> coder.transform(np.array([[2.0, 0.2, -1.0]]))
    array([[ 1.5,  0. , -0.5]])
    """

    _parameter_constraints: dict = {"dictionary": ["array-like"], **TRANSFORM_PARAMETER_CONSTRAINTS}
    _stateless = True

    def __init__(
        self,
        dictionary,
        *,
        transform_algorithm="auto",
        transform_n_nonzero_coefs=None,
        transform_alpha=None,
        split_sign=False,
        n_jobs=None,
        positive_code=False,
        transform_max_iter=1000,
        transform_tol=1e-5,
        groups=None,
        topography=None,
        pool_size=3,
        device="auto",
    ):
        super().__init__(transform_algorithm, transform_n_nonzero_coefs, transform_alpha, split_sign, n_jobs,
                         positive_code, transform_max_iter, transform_tol, groups, topography, pool_size, device)
        self.dictionary = dictionary

    def _atoms(self, X=None) -> np.ndarray:
        """The validated ``dictionary``; with ``X``, checked to have its number of features."""
        D = check_dictionary(self.dictionary)
        if X is not None and X.shape[1] != D.shape[1]:
            raise ValueError(
                f"X has {X.shape[1]} features but the dictionary has {D.shape[1]} "
                f"(dictionary.shape={D.shape}); pass data with one column per dictionary feature."
            )
        return D

    def _fit(self, X) -> None:
        """Validate ``X`` against the dictionary (nothing is learned)."""
        X = check_input(self, X, reset=True)
        self.n_components_ = self._atoms(X).shape[0]

    @property
    def _n_features_out(self):
        return np.asarray(self.dictionary).shape[0] * (2 if self.split_sign else 1)
