"""Encoding benchmark: lasso codes of 20,000 8x8 patches in 256 atoms, side by side with the peers.

Run ``python benchmarks/bench_encode.py [--device cuda]``, or ``--grid`` for the regime grid
(:func:`grid`, on ``--device`` too; ``--skip sklearn`` leaves scikit-learn out). sparsecode runs
``"auto"`` (the batched homotopy) in float32 and float64, and FISTA with support polishing for
comparison. The atoms are other unit-norm patches; every
method minimises ``0.5*||x - z D||^2 + alpha*||z||_1`` per patch (scikit-learn's ``sparse_encode``
scales ``alpha`` the same way, SPAMS' ``lasso`` ``mode=2`` too). Prints each method's time, the ratio
``time(sparsecode) / time(peer)`` and the mean energy reached.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from _common import (
    fastest,
    import_spams,
    mean_energy,
    parser,
    patches,
    patches_scaled,
    regime_dictionary,
    report,
    timed,
)
from threadpoolctl import threadpool_limits

from sparsecode.device import resolve_device
from sparsecode.solvers import sparse_encode

GRID_SOLVERS = ("auto", "homotopy", "cd", "fista", "omp")


def _alpha_for(X: np.ndarray, D: np.ndarray, fraction: float, positive: bool) -> float:
    """The alpha whose lasso codes of ``X`` have ``fraction * n_features`` non-zeros on average (bisection)."""
    Xt, Dt = torch.as_tensor(X[:200]), torch.as_tensor(D)
    C = (Xt @ Dt.T).abs().amax(1).mean().item()
    lo, hi = np.log(C * 1e-5), np.log(C)
    for _ in range(18):
        mid = 0.5 * (lo + hi)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            codes = sparse_encode(Xt, Dt, alpha=float(np.exp(mid)), positive=positive)
        nnz = (codes != 0).sum(1).float().mean()
        lo, hi = (mid, hi) if nnz > fraction * X.shape[1] else (lo, mid)
    return float(np.exp(0.5 * (lo + hi)))


def grid(args) -> None:
    """Every solver, SPAMS and scikit-learn side by side on each cell of the regime grid, as ratios.

    Cells: patch sizes (``--patch``), dictionaries (learned: other patches, coherent; Gaussian; strongly
    coherent: atoms sharing one direction, mutual coherence above 0.95) 1x to 8x overcomplete
    (``--overcomplete``), inputs unit-norm, standardised (per patch) and ZCA-whitened, alpha giving
    ``--fractions`` of n_features non-zero, ``--positive`` codes, ``--dtypes``. Each cell prints the time of
    every method over SPAMS' ``lasso`` and, where above ``--tol``, its relative energy gap to the best energy of
    the cell, SPAMS' own gap after its time (``nan`` where its codes hold NaN, as its float32 ``lasso`` returns
    on some dense positive cells). OMP: over SPAMS' ``omp`` at the same number of atoms, no gap; ``*``: over
    its float64 ``omp``, where its float32 one returned all-zero codes. Where no alpha gives the requested
    non-zeros (positive codes in atoms sharing one direction have about one), the non-zeros reached follow
    in parentheses (% of n_features).
    """
    spams = import_spams()
    header = ["patch", "dict", "x", "input", "nnz%", "dtype"] + [*args.solvers, "skl cd", "spams s"]
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    n = args.grid_samples
    for size in args.patch:
        P = patches(n + 1000, size=size)
        for kind in args.dicts:
            for factor in args.overcomplete:
                m = factor * size * size
                D = regime_dictionary(kind, m, size)
                for scaling in args.inputs:
                    X = patches_scaled(P[:n], scaling, P[n:])
                    for frac in args.fractions:
                        alpha = _alpha_for(X, D, frac, args.positive)
                        for dtype in args.dtypes:
                            cells, reached = _grid_cell(X, D, alpha, args, dtype, spams)
                            target = f"{100 * frac:.0f}"
                            if abs(reached - frac) > 0.25 * frac:  # no alpha gives that many non-zeros
                                target += f" ({100 * reached:.2g})"
                            row = [f"{size}x{size}", kind, f"{factor}x", scaling, target, dtype, *cells]
                            print("| " + " | ".join(row) + " |", flush=True)


def _grid_cell(X, D, alpha, args, dtype, spams) -> tuple[list[str], float]:
    """Ratios (and gaps) of every method on one cell, formatted, and the non-zeros per feature reached."""
    device = resolve_device(args.device)
    Xt, Dt = (torch.as_tensor(a, dtype=getattr(torch, dtype), device=device) for a in (X, D))
    Xf, Df = np.asfortranarray(X.T, dtype=dtype), np.asfortranarray(D.T, dtype=dtype)
    t_ref, Zs = fastest(lambda: spams.lasso(Xf, D=Df, lambda1=alpha, mode=2, pos=args.positive,
                                          numThreads=args.threads))
    Zs = Zs.toarray().T
    k = max(int(round((Zs != 0).sum(1).mean())), 1)
    t_omp, Zo = fastest(lambda: spams.omp(Xf, D=Df, L=k, numThreads=args.threads))
    omp_mark = ""
    if dtype == "float32" and (Zo.toarray() != 0).sum(0).mean() < 0.9 * k:
        # SPAMS' float32 omp returns all-zero codes in some processes (not reproducibly): time its float64 one
        Xd, Dd = (np.asfortranarray(a, dtype=np.float64) for a in (Xf, Df))
        t_omp, Zo = fastest(lambda: spams.omp(Xd, D=Dd, L=k, numThreads=args.threads))
        omp_mark = "*"
    spams_omp_ok = (Zo.toarray() != 0).sum(0).mean() >= 0.9 * k  # SPAMS' omp returns zeros on some dictionaries
    energies, times = {"spams": mean_energy(X, Zs, D, alpha)}, {}
    for name in args.solvers:
        options = dict(n_nonzero_coefs=k) if name == "omp" else dict(alpha=alpha, positive=args.positive,
                                                                         tol=args.tol)
        if name == "omp" and (args.positive or not spams_omp_ok):
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sparse_encode(Xt[:64], Dt, algorithm=name, **options)  # warm-up
            t, Z = fastest(lambda: sparse_encode(Xt, Dt, algorithm=name, **options), device=device)
        times[name] = t / (t_omp if name == "omp" else t_ref)
        if name != "omp":
            energies[name] = mean_energy(X, Z.cpu().numpy(), D, alpha)
    if "sklearn" not in args.skip:
        with threadpool_limits(args.threads), warnings.catch_warnings():
            from sklearn.decomposition import sparse_encode as sk_encode
            warnings.simplefilter("ignore")
            t, Z = fastest(lambda: sk_encode(X.astype(dtype), D.astype(dtype), algorithm="lasso_cd", alpha=alpha,
                                           positive=args.positive, max_iter=1000))
            times["skl cd"], energies["skl cd"] = t / t_ref, mean_energy(X, Z, D, alpha)
    best = min(e for e in energies.values() if np.isfinite(e))  # SPAMS' float32 lasso can return NaN

    def gap(name):
        if name not in energies:
            return ""
        g = (energies[name] - best) / abs(best)
        return f" ({g:.0e})" if not g <= args.tol else ""

    def cell(name):
        if name not in times:
            return "-"
        return f"{times[name]:.2g}" + gap(name) + (omp_mark if name == "omp" else "")

    reached = (Zs != 0).sum(1).mean() / X.shape[1]
    return [cell(n) for n in (*args.solvers, "skl cd")] + [f"{1e3 * t_ref:.2g} ms" + gap("spams")], reached


def main():
    args = grid_parser().parse_args()
    torch.set_num_threads(args.threads)
    if args.grid:
        return grid(args)
    device = resolve_device(args.device)
    P = patches(args.n_samples + args.n_components)
    X, D = P[:args.n_samples], P[args.n_samples:]
    D = D / np.linalg.norm(D, axis=1, keepdims=True)
    print(f"Encoding {X.shape[0]} patches (8x8) with {D.shape[0]} atoms, alpha={args.alpha}, "
          f"{args.threads} threads, sparsecode on {device}.")
    rows = []
    variants = [("sparsecode", torch.float32, "auto"), ("sparsecode float64", torch.float64, "auto"),
                ("sparsecode fista+polish", torch.float32, "fista")]
    for name, dtype, algorithm in variants:
        Xt = torch.as_tensor(X, dtype=dtype, device=device)
        Dt = torch.as_tensor(D, dtype=dtype, device=device)
        options = dict(alpha=args.alpha, device=device, algorithm=algorithm)
        if algorithm == "fista":
            options["polish"] = True
        sparse_encode(Xt[:256], Dt, **options)  # warm-up
        t, Z = timed(lambda: sparse_encode(Xt, Dt, **options), device)
        rows.append((name, t, mean_energy(X, Z.cpu().numpy(), D, args.alpha)))
    with threadpool_limits(args.threads):
        from sklearn.decomposition import sparse_encode as sk_encode
        for algo in ("lasso_cd", "lasso_lars"):
            if algo not in args.skip:
                t, Z = timed(lambda: sk_encode(X, D, algorithm=algo, alpha=args.alpha, max_iter=10000))
                rows.append((f"sklearn sparse_encode {algo}", t, mean_energy(X, Z, D, args.alpha)))
    spams = None if "spams" in args.skip else import_spams()
    if spams is not None:
        Xf, Df = np.asfortranarray(X.T), np.asfortranarray(D.T)
        t, Z = fastest(lambda: spams.lasso(Xf, D=Df, lambda1=args.alpha, mode=2, numThreads=args.threads))
        rows.append(("spams.lasso (LARS)", t, mean_energy(X, Z.toarray().T, D, args.alpha)))
    report(rows)


def grid_parser():
    """The shared command line plus the grid's options."""
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--grid", action="store_true", help="run the regime grid instead")
    p.add_argument("--grid-samples", type=int, default=500, help="samples per cell of the grid")
    p.add_argument("--patch", type=int, nargs="*", default=[8], help="patch sizes of the grid (8 16)")
    p.add_argument("--dicts", nargs="*", default=["learned", "gaussian", "coherent"])
    p.add_argument("--overcomplete", type=int, nargs="*", default=[1, 4], help="atoms per feature (1 2 4 8)")
    p.add_argument("--inputs", nargs="*", default=["unit", "whitened"], help="unit standard whitened")
    p.add_argument("--fractions", type=float, nargs="*", default=[0.05, 0.3, 0.9],
                   help="non-zeros per code as fractions of n_features")
    p.add_argument("--dtypes", nargs="*", default=["float32"], help="float32 float64")
    p.add_argument("--positive", action="store_true", help="non-negative codes")
    p.add_argument("--tol", type=float, default=1e-6, help="relative gap the solvers stop at")
    p.add_argument("--solvers", nargs="*", default=list(GRID_SOLVERS), choices=GRID_SOLVERS,
                   help="the engine's solvers to run on each cell")
    return p


if __name__ == "__main__":
    main()
