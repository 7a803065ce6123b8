"""Device and dtype resolution, and numpy <-> torch conversion, in one place."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["resolve_device", "resolve_dtype", "as_tensor", "to_numpy", "make_generator", "draw_device"]

DeviceLike = str | torch.device | None


def resolve_device(device: DeviceLike = "auto") -> torch.device:
    """Turn a user's ``device`` argument into a :class:`torch.device`.

    Parameters
    ----------
    device : {"auto", "cpu", "cuda", "cuda:N"}, torch.device or None
        ``"auto"`` (and ``None``) picks CUDA when it is available, else the CPU.

    Returns
    -------
    torch.device

    Raises
    ------
    ValueError
        If the string does not name a device, or CUDA is asked for on a machine without it.

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if device is None or (isinstance(device, str) and device == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"device={device!r} is not a device; use 'auto', 'cpu', 'cuda' or 'cuda:N'."
        ) from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={device!r} was requested but CUDA is not available on this machine; "
                "use device='cpu' or device='auto'."
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r}: only {torch.cuda.device_count()} CUDA device(s) are present."
            )
    elif dev.type not in ("cpu", "mps"):
        raise ValueError(f"device={device!r} is not supported; use 'auto', 'cpu' or 'cuda'.")
    return dev


def resolve_dtype(dtype) -> torch.dtype:
    """Map a numpy or torch floating dtype to the torch dtype used for computation.

    float64 stays float64; every other input (float32, float16, integers) computes in float32.
    """
    if isinstance(dtype, torch.dtype):
        return torch.float64 if dtype == torch.float64 else torch.float32
    return torch.float64 if np.dtype(dtype) == np.float64 else torch.float32


def as_tensor(X, device: DeviceLike = "cpu", dtype=None) -> torch.Tensor:
    """Convert an array to a tensor on ``device`` without copying when nothing changes.

    Parameters
    ----------
    X : array-like or torch.Tensor
    device : see :func:`resolve_device`
    dtype : numpy/torch dtype, optional
        Defaults to the rule of :func:`resolve_dtype` applied to ``X``'s dtype.
    """
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    if isinstance(X, torch.Tensor):
        target = resolve_dtype(X.dtype) if dtype is None else resolve_dtype(dtype)
        return X.to(device=dev, dtype=target)
    arr = np.asarray(X)
    target = resolve_dtype(arr.dtype) if dtype is None else resolve_dtype(dtype)
    np_target = np.float64 if target == torch.float64 else np.float32
    if arr.dtype != np_target or not arr.flags.writeable:
        arr = arr.astype(np_target)
    return torch.from_numpy(np.ascontiguousarray(arr)).to(dev)


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """Detach a tensor and return it as a numpy array on the CPU."""
    return t.detach().cpu().numpy()


def make_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A seeded :class:`torch.Generator` for ``device`` (never touches the global seed)."""
    dev = torch.device(device)
    gen = torch.Generator(device=dev)
    gen.manual_seed(int(seed))
    return gen


def draw_device(generator: torch.Generator | None, like: torch.Tensor) -> torch.device:
    """Where random numbers are drawn: on ``generator``'s device, else on ``like``'s.

    Seeded draws happen on the generator's device, so one seed gives the same numbers wherever the
    data lives; move the draws to ``like.device`` afterwards.
    """
    return generator.device if generator is not None else like.device
