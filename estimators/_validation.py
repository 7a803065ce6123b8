"""The one input-validation path of the estimators."""

from __future__ import annotations

import numpy as np
from sklearn.utils.validation import check_array, validate_data

__all__ = ["check_input", "check_dictionary", "check_codes"]

_COMPLEX_ADVICE = (
    "Complex data not supported: {name} has a complex dtype. Pass real values, for example "
    "np.abs({name}), or the real and imaginary parts as separate features."
)


def check_input(estimator, X, y=None, *, reset: bool, **kwargs):
    """Validate ``X`` (and ``y``) for ``estimator``: a finite 2-D float array, float32 or float64.

    Wraps :func:`sklearn.utils.validation.validate_data` so that every estimator gives the same clear
    errors for NaN/inf, 1-D, empty, strings and complex input, and records ``n_features_in_`` on
    ``reset``. Returns what ``validate_data`` returns.
    """
    options = dict(dtype=[np.float64, np.float32], ensure_all_finite=True, ensure_min_samples=1)
    options.update(kwargs)
    args = (X,) if y is None else (X, y)
    with _clear_complex_error("X"):
        return validate_data(estimator, *args, reset=reset, **options)


def check_dictionary(dictionary, name: str = "dictionary", dtype=None) -> np.ndarray:
    """Validate a user-supplied dictionary (rows are atoms): finite, 2-D, real."""
    with _clear_complex_error(name):
        return check_array(dictionary, dtype=dtype or [np.float64, np.float32], ensure_all_finite=True,
                           input_name=name)


def check_codes(X, n_columns: int, layout: str) -> np.ndarray:
    """Validate the input of ``inverse_transform``: a finite 2-D float array of ``n_columns`` columns.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_columns)
        Codes or features, as ``transform`` returns them.
    n_columns : int
        The width the estimator decodes.
    layout : str
        What the columns are (e.g. ``"n_components"``), named in the error.

    Returns
    -------
    ndarray of shape (n_samples, n_columns), float32 or float64

    Raises
    ------
    ValueError
        For NaN/inf, complex, non-2-D input, or another number of columns.
    """
    with _clear_complex_error("X"):
        X = check_array(X, dtype=[np.float64, np.float32], ensure_all_finite=True, input_name="X")
    if X.shape[1] != n_columns:
        raise ValueError(
            f"X has {X.shape[1]} columns but inverse_transform expects {n_columns} ({layout})."
        )
    return X


class _clear_complex_error:
    """Turn scikit-learn's terse complex-data error into one that says what to do."""

    def __init__(self, name: str):
        self.name = name

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is ValueError and "Complex data not supported" in str(exc):
            raise ValueError(_COMPLEX_ADVICE.format(name=self.name)) from None
        return False
