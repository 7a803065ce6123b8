"""The one input-validation path of the estimators."""

from __future__ import annotations

import numpy as np
from sklearn.utils.validation import check_array, validate_data

__all__ = ["check_input", "check_dictionary", "check_codes", "check_range"]

_COMPLEX_ADVICE = (
    "Complex data not supported: {name} has a complex dtype. Pass real values, for example "
    "np.abs({name}), or the real and imaginary parts as separate features."
)


def check_input(estimator, X, y=None, *, reset: bool, **kwargs):
    """Validate ``X`` (and ``y``) for ``estimator``: a finite 2-D float array, float32 or float64.

    Wraps :func:`sklearn.utils.validation.validate_data` so that every estimator gives the same clear
    errors for NaN/inf, 1-D, empty, strings and complex input, and for values whose squares leave the
    range of their dtype (:func:`check_range`); records ``n_features_in_`` on ``reset``. Returns what
    ``validate_data`` returns.
    """
    options = dict(dtype=[np.float64, np.float32], ensure_all_finite=True, ensure_min_samples=1)
    options.update(kwargs)
    args = (X,) if y is None else (X, y)
    with _clear_complex_error("X"):
        out = validate_data(estimator, *args, reset=reset, **options)
    check_range(out if y is None else out[0])
    return out


def check_range(X, name: str = "X") -> None:
    """Refuse float values whose sum of squares overflows, or whose squares underflow, their dtype.

    Every energy, gradient and Gram matrix of the library sums such squares; beyond the range no
    estimator can compute them (float32 silently gives zeros, inf or NaN).

    Parameters
    ----------
    X : ndarray
        Validated floating data.
    name : str, default="X"
        Named in the error.

    Raises
    ------
    ValueError
        Naming the largest magnitude, the dtype's range and the remedy: float64 (for float32 data) or
        rescaling.
    """
    if not (isinstance(X, np.ndarray) and X.dtype.kind == "f" and X.size):
        return
    info = np.finfo(X.dtype)
    peak = max(float(X.max()), -float(X.min()))  # no |X| temporary: X may be a memmap larger than memory
    too_large = peak > np.sqrt(float(info.max) / X.size)
    if not (too_large or 0 < peak < np.sqrt(float(info.tiny))):
        return
    remedy = "pass it as float64 or rescale it" if X.dtype == np.float32 else "rescale it"
    what = "overflow" if too_large else "underflow"
    raise ValueError(
        f"{name} reaches at most {peak:.3g} in {X.dtype}: its squares (summed) {what} that dtype (range "
        f"{float(info.tiny):.3g} to {float(info.max):.3g}), so nothing can be computed on it; {remedy} "
        f"(e.g. sklearn.preprocessing.StandardScaler)."
    )


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
