"""GroupSparseAutoencoder: PSD with a group-sparse or topographic penalty (CVPR 2009)."""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import torch
from sklearn.utils._param_validation import Interval, StrOptions

from sparsecode.topography import Pools

from ._base import ArrayLike
from .psd import PredictiveSparseDecomposition

__all__ = ["GroupSparseAutoencoder"]


class GroupSparseAutoencoder(PredictiveSparseDecomposition):
    __doc__ = """PSD with a group penalty: disjoint groups or a topographic map.

    Minimises the mean of ``0.5*||x - z D||^2 + alpha*sum_i v_i(z) + beta*||z - F(x)||^2`` at the
    optimal codes, where ``v_i(z) = sqrt(sum_{j in P_i} w_j z_j^2)`` pools the units of ``P_i``,
    trained as :class:`PredictiveSparseDecomposition`. With ``group_size`` the pools are consecutive
    disjoint groups (weights 1; exact block soft threshold). With ``topography=(rows, cols)`` the
    units form a map that wraps around and every unit has a ``pool_size`` window of Gaussian weights;
    these pools overlap, and the penalty is taken in its latent group lasso form (each pool owns a
    copy of its units and the code is their sum), which keeps an exact block soft threshold.
    Neighbouring units then learn similar filters, and the pooled values ``v_i`` are locally
    invariant features (``transform_output="pooled"``).

    Parameters
    ----------
    n_components : int, default=None
        Code units; ``n_features`` when None, ``rows * cols`` with ``topography``.
    group_size : int, default=4
        Units per disjoint group (the last group may be smaller). Ignored with ``topography``.
    topography : (int, int), default=None
        Shape of the 2-D toroidal map of the units.
    pool_size : int or (int, int), default=3
        Window of each pool on the map.
    sigma : float, default=None
        Width of the Gaussian pool weights; half the larger window side when None.
    alpha : float, default=None
        Group sparsity penalty; None uses ``0.1 * input_scale_`` (see
        :class:`PredictiveSparseDecomposition`; the resolved value is ``alpha_``).
    beta : float, default=1.0
        Weight of the prediction term.
    encoder : {"tanh", "shrink", "linear"}, default="tanh"
        As in :class:`PredictiveSparseDecomposition`.
    transform_output : {"codes", "pooled"}, default="codes"
        ``transform`` returns the codes, or their pooled values (one per group or per map unit).
    transform_algorithm, positive_code, inference_max_iter, inference_tol
        As in :class:`PredictiveSparseDecomposition`.
{training}
    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
    pool_weights_ : ndarray of shape (n_pools, n_components)
        Weight of every unit in every pool (zero outside the pool);
        ``pooled = sqrt(codes**2 @ pool_weights_.T)``.
    loss_curve_, n_iter_, learning_rate_, n_features_in_, feature_names_in_
        As in :class:`PredictiveSparseDecomposition`.

    Examples
    --------
    >>> import numpy as np
    >>> from estimators import GroupSparseAutoencoder
    >>> X = np.random.RandomState(0).randn(100, 8)
    >>> gsa = GroupSparseAutoencoder(topography=(3, 3), pool_size=3, alpha=0.3, max_iter=2, tol=0,
    ...                              transform_output="pooled", random_state=0, device="cpu")
    >>> gsa.fit_transform(X).shape
    (100, 9)
    """

    _parameter_constraints: dict = {
        **PredictiveSparseDecomposition._parameter_constraints,
        "group_size": [Interval(Integral, 1, None, closed="left")],
        "topography": [tuple, list, None],
        "pool_size": [Interval(Integral, 1, None, closed="left"), tuple, list],
        "sigma": [Interval(Real, 0, None, closed="right"), None],
        "transform_output": [StrOptions({"codes", "pooled"})],
    }

    def __init__(
        self,
        n_components=None,
        *,
        group_size=4,
        topography=None,
        pool_size=3,
        sigma=None,
        alpha=None,
        beta=1.0,
        encoder="tanh",
        transform_output="codes",
        transform_algorithm="encoder",
        positive_code=False,
        inference_max_iter=100,
        inference_tol=1e-4,
        optimizer="adam", learning_rate=1e-3, max_iter=100, batch_size=256, tol=1e-4, n_iter_no_change=10,
        early_stopping=False, validation_fraction=0.1, warm_start=False, verbose=0, random_state=None,
        device="auto", distributed=None, checkpoint=None,
    ):
        super().__init__(
            n_components, alpha=alpha, beta=beta, encoder=encoder, transform_algorithm=transform_algorithm,
            positive_code=positive_code, inference_max_iter=inference_max_iter, inference_tol=inference_tol,
            optimizer=optimizer, learning_rate=learning_rate, max_iter=max_iter, batch_size=batch_size, tol=tol,
            n_iter_no_change=n_iter_no_change, early_stopping=early_stopping,
            validation_fraction=validation_fraction, warm_start=warm_start, verbose=verbose,
            random_state=random_state, device=device, distributed=distributed, checkpoint=checkpoint,
        )
        self.group_size = group_size
        self.topography = topography
        self.pool_size = pool_size
        self.sigma = sigma
        self.transform_output = transform_output

    def _resolve_structure(self, n_features: int) -> None:
        if self.topography is None:
            self._pools = Pools.disjoint(self.n_components or n_features, self.group_size)
        else:
            self._pools = Pools.from_topography(self.topography, self.pool_size, self.sigma, self.n_components)
        m = self._pools.n_components
        self._n_components = m
        self.pool_weights_ = self._pools.weights.numpy()

    def _output(self, Z: torch.Tensor) -> torch.Tensor:
        return self._pools.pool(Z) if self.transform_output == "pooled" else Z

    def inverse_transform(self, X: ArrayLike) -> np.ndarray:
        """Reconstruction ``Z @ components_`` from codes (``transform_output="codes"`` only)."""
        if self.transform_output == "pooled":
            raise ValueError("pooled features cannot be decoded; set transform_output='codes'.")
        return super().inverse_transform(X)

    @property
    def _n_features_out(self):
        return (
            self.pool_weights_.shape[0]
            if self.transform_output == "pooled"
            else self.components_.shape[0]
        )
