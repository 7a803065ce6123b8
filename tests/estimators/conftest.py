"""Helpers shared by the estimator tests."""

import warnings

from sklearn.exceptions import ConvergenceWarning


def fit_quietly(estimator, X, y=None):
    """``estimator.fit(X, y)`` with ``ConvergenceWarning`` silenced: the tests train for a few passes only."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator.fit(X, y)
