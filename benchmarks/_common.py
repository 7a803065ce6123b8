"""Shared setup for the benchmarks: the patch data set, timing, the SPAMS import and the energy."""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from sklearn.datasets import load_sample_image
from sklearn.feature_extraction.image import extract_patches_2d

SPAMS_MISSING = ("SPAMS is not installed (it is GPL and only used here, as a peer): `pip install spams-bin`; "
                 "its rows are skipped.")


def import_spams():
    """``spams`` or None, with a message when it is missing."""
    try:
        import spams
    except ImportError:
        print(SPAMS_MISSING)
        return None
    return spams


def parser(description: str) -> argparse.ArgumentParser:
    """Command line shared by the benchmarks (``--device``, ``--threads``, ``--n-samples``, ...)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--device", default="cpu", help='"cpu" (default) or "cuda"')
    p.add_argument("--threads", type=int, default=2, help="CPU threads for every method (default 2)")
    p.add_argument("--n-samples", type=int, default=20000)
    p.add_argument("--n-components", type=int, default=256)
    p.add_argument("--alpha", type=float, default=0.1)
    p.add_argument("--skip", nargs="*", default=[], help="peer names to leave out")
    return p


def patches(n: int, seed: int = 0, size: int = 8, image: str = "china.jpg", raw: bool = False) -> np.ndarray:
    """``n`` centred, unit-norm ``size x size`` patches of scikit-learn's sample ``image``, float64; with
    ``raw``, the grey pixels in [0, 1] as extracted."""
    img = load_sample_image(image).mean(2) / 255.0
    P = extract_patches_2d(img, (size, size), max_patches=n, random_state=seed).reshape(n, -1)
    if raw:
        return P
    P -= P.mean(1, keepdims=True)
    P /= np.linalg.norm(P, axis=1, keepdims=True) + 1e-8
    return P


def mean_energy(X: np.ndarray, Z: np.ndarray, D: np.ndarray, alpha: float) -> float:
    """Mean lasso energy ``0.5*||x - z D||^2 + alpha*||z||_1`` in float64."""
    X, Z, D = (np.asarray(a, dtype=np.float64) for a in (X, Z, D))
    R = X - Z @ D
    return float(np.mean(0.5 * (R * R).sum(1) + alpha * np.abs(Z).sum(1)))


def timed(fn, device: torch.device | None = None):
    """``(seconds, result)`` of ``fn()``, synchronising CUDA around it."""
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)
    t = time.perf_counter()
    out = fn()
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t, out


def fastest(fn, budget: float = 0.5, runs: int = 20, device: torch.device | None = None):
    """``timed(fn, device)``, repeated (up to ``runs`` times) while the runs so far took under ``budget``
    seconds: the fastest run. Millisecond cells take many runs, so that a late-waking thread's spike is left
    out; ``budget=float("inf")`` makes it exactly ``runs`` runs."""
    t, out = timed(fn, device)
    total = t
    for _ in range(runs - 1):
        if total > budget:
            break
        t_run = timed(fn, device)[0]
        t, total = min(t, t_run), total + t_run
    return t, out


def report(rows: list[tuple[str, float, float]], ours: str = "sparsecode") -> None:
    """Print name, time, energy, and time ratio ours / peer for every row."""
    t_ours = dict((r[0], r[1]) for r in rows)[ours]
    e_ref = min(r[2] for r in rows)
    print(f"{'method':<34}{'time (s)':>10}{'ours/peer':>11}{'energy':>14}{'rel. to best':>14}")
    for name, t, e in rows:
        print(f"{name:<34}{t:>10.3f}{t_ours / t:>11.2f}{e:>14.8f}{(e - e_ref) / abs(e_ref):>14.2e}")


def patches_scaled(X: np.ndarray, scaling: str, fit_on: np.ndarray) -> np.ndarray:
    """Unit-norm patches ``X`` as ``"unit"`` (kept), ``"standard"`` (mean 0, std 1 per patch, norm about
    ``sqrt(n_features)``) or ``"whitened"`` (ZCA with a whitening learned on ``fit_on``)."""
    if scaling == "unit":
        return X
    if scaling == "standard":
        return (X - X.mean(1, keepdims=True)) / (X.std(1, keepdims=True) + 1e-8)
    mean = fit_on.mean(0)
    vals, vecs = np.linalg.eigh(np.cov(fit_on - mean, rowvar=False))
    W = vecs @ np.diag(1 / np.sqrt(vals + 1e-2 * vals.max())) @ vecs.T
    return (X - mean) @ W


def regime_dictionary(kind: str, m: int, size: int, seed: int = 1) -> np.ndarray:
    """``m`` unit-norm atoms of ``size x size`` features: ``"learned"`` (other patches: coherent),
    ``"gaussian"``, or ``"coherent"`` (atoms sharing one direction: mutual coherence above 0.95)."""
    rng = np.random.RandomState(seed)
    p = size * size
    if kind == "learned":
        D = patches(m, seed=seed + 100, size=size)
    elif kind == "gaussian":
        D = rng.randn(m, p)
    else:
        u = rng.randn(p)
        E = rng.randn(m, p)
        D = np.sqrt(0.97) * u / np.linalg.norm(u) + np.sqrt(0.03) * E / np.linalg.norm(E, axis=1, keepdims=True)
    return D / np.linalg.norm(D, axis=1, keepdims=True)
