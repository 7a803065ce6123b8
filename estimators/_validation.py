"""The one input-validation path of the estimators."""

from __future__ import annotations

import numpy as np
from sklearn.utils.validation import check_array, validate_data

__all__ = ["check_input", "check_dictionary"]

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
