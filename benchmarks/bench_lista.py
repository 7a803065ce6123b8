"""Gregor & LeCun (2010) on natural-image patches: LISTA and LCoD against ISTA, FISTA and CoD.

10x10 grayscale patches of scikit-learn's sample images (china + flower), each centred and divided by
its standard deviation (patches with std below 0.02 of the pixel range dropped); a dictionary learned by
``estimators.DictionaryLearning`` with ``alpha = 0.5``; exact codes ``z*`` by FISTA with support
polishing. Reported: the relative code error ``sum ||z - z*||^2 / sum ||z*||^2`` on held-out patches
against the operation count (multiply-adds per patch: ``n m`` for ``W x`` then ``m^2`` per ISTA/FISTA/
LISTA step and ``m`` per CoD/LCoD step), the number of (non-restarted, the paper's) FISTA iterations each
LISTA depth is worth, and how many CoD steps each LCoD depth is worth. LISTA and LCoD are trained with
the estimators' default training parameters (Adam, rate 3e-3 decayed per sample seen, minibatches of
256), except ``max_iter`` (``--passes``, 30 by default: the 85k training patches of m = 100 make that
about 10k steps).

Run ``python benchmarks/bench_lista.py [--atoms 100 400] [--device cpu] [--threads 1] [--quick]``
(``--patches-per-image``, ``--passes``, ``--lista-depths`` and ``--lcod-depths`` override the settings).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from sklearn.datasets import load_sample_images
from sklearn.feature_extraction.image import extract_patches_2d

from estimators import LISTA, DictionaryLearning, LCoD
from sparsecode.prox import shrink
from sparsecode.solvers import fista, ista, lipschitz_constant
from sparsecode.solvers.cd import cd_step
from sparsecode.solvers.encode import solve_lasso

ALPHA = 0.5


def load_patches(n_per_image: int, size: int = 10, seed: int = 0) -> np.ndarray:
    """Contrast-normalised ``size x size`` patches of china.jpg and flower.jpg, shuffled, float32."""
    rng = np.random.RandomState(seed)
    patches = []
    for image in load_sample_images().images:
        gray = image.astype(np.float64).mean(2) / 255.0
        p = extract_patches_2d(gray, (size, size), max_patches=n_per_image, random_state=rng)
        patches.append(p.reshape(len(p), -1))
    P = np.concatenate(patches)
    P -= P.mean(1, keepdims=True)
    std = P.std(1)
    P = P[std > 0.02] / std[std > 0.02, None]
    return P[rng.permutation(len(P))].astype(np.float32)


def relative_error(Z: torch.Tensor, Zs: torch.Tensor) -> float:
    return float(((Z - Zs) ** 2).sum() / (Zs**2).sum())


def fista_iterations(max_iter: int) -> list[int]:
    """Every count up to 50, then every tenth: FISTA restarts from zero for each count."""
    return list(range(1, min(max_iter, 50) + 1)) + list(range(60, max_iter + 1, 10))


def classical_curves(X, D, Zs, max_iter: int, cod_steps: set[int]):
    """Errors of ISTA after 1..max_iter iterations, of FISTA after each of :func:`fista_iterations`,
    and of CoD after each of ``cod_steps``, as {steps: error} dicts."""
    L = lipschitz_constant(D)
    ista_err, Z = {}, None
    for k in range(
        1, max_iter + 1
    ):  # ISTA is memoryless: one iteration at a time from the last iterate
        Z = ista(X, D, ALPHA, z0=Z, max_iter=1, tol=0, L=L).code
        ista_err[k] = relative_error(Z, Zs)
    fista_err = {
        k: relative_error(fista(X, D, ALPHA, max_iter=k, tol=0, L=L, restart=False).code, Zs)
        for k in fista_iterations(max_iter)
    }
    G = D @ D.T
    diag = torch.diagonal(G).clone()
    S = torch.diag(diag) - G
    B, Zc, cod_err = X @ D.T, X.new_zeros(X.shape[0], D.shape[0]), {}
    for step in range(1, max(cod_steps) + 1):
        B, Zc = cd_step(B, Zc, S, diag, ALPHA, False)
        if step in cod_steps:
            cod_err[step] = relative_error(shrink(B, ALPHA) / diag, Zs)
    return ista_err, fista_err, cod_err


def worth(error: float, curve) -> float:
    """The first number of steps at which ``curve`` ({steps: error}) is at most ``error``."""
    return next((k for k, e in sorted(curve.items()) if e <= error), float("inf"))


def steps_text(k: float, curve) -> str:
    """``k`` as text, ``>N`` when the curve (measured up to ``N`` steps) never got that low."""
    return str(k) if k != float("inf") else f">{max(curve)}"


def run(
    n_components: int,
    *,
    n_per_image: int,
    n_test: int,
    lista_depths,
    lcod_depths,
    device: str,
    max_iter: int | None = None,
    classical_iter: int = 200,
    verbose: bool = True,
) -> dict:
    """The whole experiment for one dictionary size; returns every curve and figure."""
    t0 = time.perf_counter()
    P = load_patches(n_per_image)
    Xtr, Xte = P[:-n_test], P[-n_test:]
    dl = DictionaryLearning(
        n_components=n_components, alpha=ALPHA, max_iter=5, random_state=0, device=device
    ).fit(Xtr[:20000])
    D = dl.components_
    dev = torch.device(device)
    Xt, Dt = torch.from_numpy(Xte).to(dev), torch.from_numpy(D).to(dev)
    Zs = solve_lasso(Xt, Dt, ALPHA, tol=1e-6, max_iter=10000).code
    m, n = D.shape
    cod_steps = set(range(1, 40 * max(lcod_depths) + 1))
    ista_err, fista_err, cod_err = classical_curves(Xt, Dt, Zs, classical_iter, cod_steps)
    if verbose:
        print(
            f"m={m}: {len(Xtr)} training and {n_test} test patches, dictionary and curves in "
            f"{time.perf_counter() - t0:.0f} s; FISTA(10) error {fista_err[10]:.4f}"
        )
    extra = {} if max_iter is None else {"max_iter": max_iter, "tol": 0}  # a fixed number of passes
    out = dict(
        n_components=m,
        n_features=n,
        ista=ista_err,
        fista=fista_err,
        cod=cod_err,
        lista={},
        lcod={},
        n_train=len(Xtr),
    )
    def trained_error(estimator, T):
        """Train ``estimator`` at depth ``T``; its test error, passes and seconds."""
        t = time.perf_counter()
        enc = estimator(dictionary=D, alpha=ALPHA, n_layers=T, random_state=0, device=device, **extra).fit(Xtr)
        e = relative_error(torch.from_numpy(enc.transform(Xte)).to(dev), Zs)
        return e, dict(error=e, passes=enc.n_iter_, seconds=time.perf_counter() - t)

    for T in lista_depths:
        e, r = trained_error(LISTA, T)
        r.update(fista_worth=worth(e, fista_err), ista_worth=worth(e, ista_err))
        out["lista"][T] = r
        if verbose:
            print(
                f"  LISTA T={T}: error {e:.4f} = FISTA({steps_text(r['fista_worth'], fista_err)}) = "
                f"ISTA({steps_text(r['ista_worth'], ista_err)}); "
                f"{r['passes']} passes, {r['seconds']:.0f} s",
                flush=True,
            )
    for T in lcod_depths:
        e, r = trained_error(LCoD, T)
        k = worth(e, cod_err)
        r.update(cod_worth=k, ratio=k / T, cod_at_T=cod_err[T])
        out["lcod"][T] = r
        if verbose:
            print(
                f"  LCoD T={T}: error {e:.4f} (CoD at {T} steps: {cod_err[T]:.4f}) = "
                f"CoD({steps_text(k, cod_err)}) steps: "
                f"{k / T:.1f}x fewer operations; {r['passes']} passes, {r['seconds']:.0f} s",
                flush=True,
            )
    return out


# Depths per dictionary size: m = 400 steps are 16 times dearer, so fewer depths.
FULL = {
    100: dict(n_per_image=100_000, lista_depths=list(range(1, 8)), lcod_depths=[5, 10, 20]),
    400: dict(n_per_image=100_000, lista_depths=[1, 3], lcod_depths=[10, 20]),
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--atoms", type=int, nargs="+", default=[100], choices=sorted(FULL))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--patches-per-image", type=int, default=None,
                        help="patches drawn per image before the low-contrast ones are dropped")
    parser.add_argument("--passes", type=int, default=30, help="max_iter of LISTA and LCoD")
    parser.add_argument("--lista-depths", type=int, nargs="+", default=None)
    parser.add_argument("--lcod-depths", type=int, nargs="+", default=None)
    parser.add_argument("--quick", action="store_true", help="fewer patches, depths and passes")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    for m in args.atoms:
        t0 = time.perf_counter()
        if args.quick:
            settings = dict(n_per_image=3000, n_test=1000, lista_depths=[1, 3], lcod_depths=[5],
                            max_iter=10, classical_iter=60)
        else:
            settings = dict(FULL[m], n_test=4000, max_iter=args.passes)
        for key in ("patches_per_image", "lista_depths", "lcod_depths"):
            if getattr(args, key) is not None:
                settings["n_per_image" if key == "patches_per_image" else key] = getattr(args, key)
        res = run(m, device=args.device, **settings)
        print(
            f"summary m={m}: FISTA iterations each LISTA depth is worth: "
            + ", ".join(f"T={T}: {steps_text(r['fista_worth'], res['fista'])}" for T, r in res["lista"].items())
        )
        print(
            f"summary m={m}: CoD steps / LCoD steps at equal error: "
            + ", ".join(f"T={T}: {r['ratio']:.1f}" for T, r in res["lcod"].items())
        )
        print(f"summary m={m}: {time.perf_counter() - t0:.0f} s in all", flush=True)


if __name__ == "__main__":
    main()
