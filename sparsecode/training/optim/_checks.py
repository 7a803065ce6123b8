"""Argument checks shared by the optimizers of :mod:`sparsecode.training.optim`."""

from __future__ import annotations

__all__ = ["check_options"]


def check_options(positive: dict[str, float | None], non_negative: dict[str, float]) -> None:
    """Refuse an optimizer's out-of-range arguments, torch's way (``ValueError("Invalid <name>: <value>")``).

    Parameters
    ----------
    positive : dict
        Name -> value that must be > 0 (None: not set, not checked).
    non_negative : dict
        Name -> value that must be >= 0.

    Raises
    ------
    ValueError
        For the first value out of its range.

    Examples
    --------
    >>> check_options({"learning rate": 0.1}, {"mu": -1.0})
    Traceback (most recent call last):
    ...
    ValueError: Invalid mu: -1.0
    """
    checks = [(name, value, value is None or value > 0) for name, value in positive.items()]
    checks += [(name, value, value >= 0) for name, value in non_negative.items()]
    for name, value, valid in checks:
        if not valid:
            raise ValueError(f"Invalid {name}: {value}")
